// Private: the coding plans, one file each (src/plans/<kind>.cpp mirrors runtime/plans/<kind>.py). A plan's decode
// rebuilds y_hat [1, M, h, w] from the streams for a padded image of ph x pw; the decoder runs synthesis on it.
#pragma once

#include <string>

#include "context.hpp"

namespace lictrt {
namespace plans {

struct Plan {
  const char* kind;
  /// BundleError if the bundle (at width prefix `prefix`) lacks what the plan needs.
  void (*check)(const Bundle& bundle, const std::string& prefix);
  Tensor (*decode)(PlanContext& ctx, int ph, int pw);
};

/// The plan of a kind, or nullptr when the C++ runtime does not implement it.
const Plan* find(const std::string& kind) noexcept;

// factorized.cpp: a latent coded with a per-channel factorized prior (value = q + median[c], table = channel).
Tensor decode_factorized_latent(PlanContext& ctx, const std::string& kind, const std::string& model, int stride,
                                int ph, int pw);

// hyperprior.cpp: z with the factorized prior ("z" stream and tables, plan field z_stride).
Tensor decode_z(PlanContext& ctx, int ph, int pw);
Tensor decode_hyperprior_y(PlanContext& ctx, int ph, int pw, bool means);

extern const Plan kFactorized, kHyperprior, kMeanScale, kSpatialContext, kChannelSlices;

}  // namespace plans
}  // namespace lictrt
