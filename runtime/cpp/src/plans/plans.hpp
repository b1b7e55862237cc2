// Private: the coding plans, one file each (src/plans/<kind>.cpp mirrors runtime/plans/<kind>.py). A plan's encode
// runs analysis on the padded image x [1, 3, ph, pw] and adds its streams to the context; its decode rebuilds y_hat
// [1, M, h, w] from the streams for a padded image of ph x pw (the decoder runs synthesis on it). Encoder and decoder
// make the same parse-critical graph calls with the same inputs.
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
  void (*encode)(PlanContext& ctx, Tensor x);
};

/// The plan of a kind, or nullptr when the C++ runtime does not implement it.
const Plan* find(const std::string& kind) noexcept;

// factorized.cpp: a latent coded with a per-channel factorized prior (value = q + median[c], table = channel).
Tensor decode_factorized_latent(PlanContext& ctx, const std::string& kind, const std::string& model, int stride, int ph,
                                int pw);
/// Encode latent `v` [1, C, h, w] as stream `kind`; returns its dequantized value (what the decoder rebuilds).
Tensor encode_factorized_latent(PlanContext& ctx, const std::string& kind, const std::string& model, const Tensor& v);

// hyperprior.cpp: z with the factorized prior ("z" stream and tables, plan field z_stride).
Tensor decode_z(PlanContext& ctx, int ph, int pw);
Tensor decode_hyperprior_y(PlanContext& ctx, int ph, int pw, bool means);
Tensor encode_z(PlanContext& ctx, const Tensor& z);
void encode_hyperprior(PlanContext& ctx, Tensor x, bool means);

// spatial_context.cpp: code stream y position by position, one batched `step_graph` (params [P, 2M], windows
// [P, M, 5, 5]) -> scales, means [P, M] call per wavefront (or raster) step. `params` [1, 2M, h, w] from the
// hyper-synthesis; `y` [1, M, h, w] when encoding, nullptr when decoding. Returns y_hat [1, M, h, w].
Tensor context_loop(PlanContext& ctx, const Tensor& params, const Tensor* y, const std::string& step_graph,
                    bool raster);

/// Output `name` of `outs`, which must be a 4-d [1, C, h, w] tensor.
const Tensor& latent(TensorMap& outs, const char* name, const std::string& graph);

extern const Plan kGroupedSlices;
extern const Plan kFactorized, kHyperprior, kMeanScale, kSpatialContext, kChannelSlices;
extern const Plan kGroupedContext;

}  // namespace plans
}  // namespace lictrt
