// Plan factorized (runtime/plans/factorized.py): stream y, symbols round(y - median[c]), table = channel; tables "y"
// (or "z" when the bundle names them so, as SlimCAE's exporter does); plan field y_stride.
#include "plans.hpp"

#include <algorithm>

namespace lictrt {
namespace plans {

Tensor decode_factorized_latent(PlanContext& c, const std::string& kind, const std::string& model, int stride, int ph,
                                int pw) {
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

Tensor encode_factorized_latent(PlanContext& c, const std::string& kind, const std::string& model, const Tensor& v) {
  const EntropyModel& m = c.tables(model);
  if (m.medians.empty()) throw BundleError("tables '" + m.name + "' have no medians");
  if (v.shape.size() != 4 || v.shape[0] != 1 || v.shape[1] != int64_t(m.medians.size()))
    throw InvalidArgument("cannot encode: latent '" + kind + "' has " +
                          std::to_string(v.shape.size() == 4 ? v.shape[1] : 0) + " channels, tables '" + m.name +
                          "' have " + std::to_string(m.medians.size()) + " medians");
  const size_t hw = size_t(v.shape[2] * v.shape[3]);
  std::vector<int32_t> sym(v.data.size()), idx(v.data.size());
  Tensor hat(v.shape, std::vector<float>(v.data.size()));
  for (size_t k = 0; k < sym.size(); ++k) {
    const float med = m.medians[k / hw];
    sym[k] = to_symbol(v.data[k], med);
    idx[k] = int32_t(k / hw);
    hat.data[k] = float(sym[k]) + med;
  }
  c.encode(kind, model, sym, idx);
  return hat;
}

const Tensor& latent(TensorMap& outs, const char* name, const std::string& graph) {
  const Tensor& t = outs[name];
  if (t.shape.size() != 4 || t.shape[0] != 1)
    throw BundleError("graph '" + graph + "' output '" + name + "' must be [1, C, h, w]");
  return t;
}

namespace {

std::string model_of(const PlanContext& c) { return c.bundle.has_entropy(c.prefix + "y") ? "y" : "z"; }

void check(const Bundle&, const std::string&) {}

Tensor decode(PlanContext& c, int ph, int pw) {
  ++c.stats.sequential_steps;
  return decode_factorized_latent(c, "y", model_of(c), c.plan_int("y_stride", c.bundle.pad_multiple()), ph, pw);
}

void encode(PlanContext& c, Tensor x) {
  TensorMap a = c.run("analysis", feed("x", std::move(x)), {"y"});
  encode_factorized_latent(c, "y", model_of(c), latent(a, "y", "analysis"));
  ++c.stats.sequential_steps;
}

}  // namespace

const Plan kFactorized{"factorized", check, decode, encode};

}  // namespace plans
}  // namespace lictrt
