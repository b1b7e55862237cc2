// The plan registry (runtime/plans/__init__.py).
#include "plans.hpp"

namespace lictrt {
namespace plans {

const Plan* find(const std::string& kind) noexcept {
  for (const Plan* p :
       {&kFactorized, &kHyperprior, &kMeanScale, &kSpatialContext, &kChannelSlices, &kGroupedContext, &kGroupedSlices})
    if (kind == p->kind) return p;
  return nullptr;
}

}  // namespace plans
}  // namespace lictrt
