// Plan mean_scale (runtime/plans/mean_scale.py): hyperprior whose hyper_synthesis also gives the means;
// y symbols = round(y - mean).
#include "plans.hpp"

namespace lictrt {
namespace plans {
namespace {

void check(const Bundle&, const std::string&) {}

Tensor decode(PlanContext& c, int ph, int pw) { return decode_hyperprior_y(c, ph, pw, true); }

}  // namespace

const Plan kMeanScale{"mean_scale", check, decode};

}  // namespace plans
}  // namespace lictrt
