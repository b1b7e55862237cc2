// Plan mean_scale (runtime/plans/mean_scale.py): hyperprior whose hyper_synthesis also gives the means;
// y symbols = round(y - mean).
#include "plans.hpp"

namespace lictrt {
namespace plans {
namespace {

void check(const Bundle&, const std::string&) {}

Tensor decode(PlanContext& c, int ph, int pw) { return decode_hyperprior_y(c, ph, pw, true); }

void encode(PlanContext& c, const Tensor& x) { encode_hyperprior(c, x, true); }

}  // namespace

const Plan kMeanScale{"mean_scale", check, decode, encode};

}  // namespace plans
}  // namespace lictrt
