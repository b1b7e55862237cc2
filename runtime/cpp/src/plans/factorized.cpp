// Plan factorized (runtime/plans/factorized.py): stream y, symbols round(y - median[c]), table = channel; tables "y"
// (or "z" when the bundle names them so, as SlimCAE's exporter does); plan field y_stride.
#include "plans.hpp"

#include <algorithm>

namespace lictrt {
namespace plans {

Tensor decode_factorized_latent(PlanContext& c, const std::string& kind, const std::string& model, int stride,
                                int ph, int pw) {
  const EntropyModel& m = c.tables(model);
  if (m.medians.empty()) throw BundleError("tables '" + m.name + "' have no medians");
  if (stride < 1 || ph % stride || pw % stride) throw BundleError("latent stride does not divide the padded size");
  int64_t C = m.num_tables, h = ph / stride, w = pw / stride;
  size_t hw = size_t(h * w);
  std::vector<int32_t> idx(size_t(C) * hw);
  for (int64_t ch = 0; ch < C; ++ch) std::fill_n(idx.begin() + ch * hw, hw, int32_t(ch));
  auto q = c.decode(kind, model, idx);
  Tensor t({1, C, h, w}, std::vector<float>(q.size()));
  for (size_t k = 0; k < q.size(); ++k) t.data[k] = float(q[k]) + m.medians[k / hw];
  return t;
}

namespace {

std::string model_of(const PlanContext& c) { return c.bundle.has_entropy(c.prefix + "y") ? "y" : "z"; }

void check(const Bundle&, const std::string&) {}

Tensor decode(PlanContext& c, int ph, int pw) {
  ++c.stats.sequential_steps;
  return decode_factorized_latent(c, "y", model_of(c), c.plan_int("y_stride", c.bundle.pad_multiple()), ph, pw);
}

}  // namespace

const Plan kFactorized{"factorized", check, decode};

}  // namespace plans
}  // namespace lictrt
