// Plan hyperprior (runtime/plans/hyperprior.py): streams z then y; y's scales (and means, for mean_scale) from the
// parse-critical hyper_synthesis(z_hat); plan field z_stride.
#include "plans.hpp"

namespace lictrt {
namespace plans {

Tensor decode_z(PlanContext& c, int ph, int pw) {
  return decode_factorized_latent(c, "z", "z", c.plan_int("z_stride", c.bundle.pad_multiple()), ph, pw);
}

Tensor decode_hyperprior_y(PlanContext& c, int ph, int pw, bool means) {
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap out = means ? c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"scales", "means"})
                        : c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"scales"});
  const Tensor& scales = out["scales"];
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  std::vector<int32_t> idx(scales.data.size());
  m.scales(scales.data.data(), idx.data(), idx.size());
  auto q = c.decode("y", "y", idx);
  Tensor y(scales.shape, std::vector<float>(q.size()));
  auto mu = out.find("means");
  if (mu != out.end()) expect_count(mu->second, q.size(), "hyper_synthesis 'means'");
  for (size_t k = 0; k < q.size(); ++k) y.data[k] = mu == out.end() ? float(q[k]) : float(q[k]) + mu->second.data[k];
  c.stats.sequential_steps += 2;
  return y;
}

Tensor encode_z(PlanContext& c, const Tensor& z) { return encode_factorized_latent(c, "z", "z", z); }

void encode_hyperprior(PlanContext& c, Tensor x, bool means) {
  TensorMap a = c.run("analysis", feed("x", std::move(x)), {"y", "z"});
  const Tensor& y = latent(a, "y", "analysis");
  Tensor z_hat = encode_z(c, latent(a, "z", "analysis"));
  TensorMap out = means ? c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"scales", "means"})
                        : c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"scales"});
  const Tensor& scales = out["scales"];
  if (scales.shape != y.shape) throw InvalidArgument("cannot encode: hyper_synthesis scales do not have y's shape");
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  auto mu = out.find("means");
  if (mu != out.end()) expect_count(mu->second, y.data.size(), "hyper_synthesis 'means'");
  std::vector<int32_t> idx(y.data.size()), sym(y.data.size());
  m.scales(scales.data.data(), idx.data(), idx.size());
  for (size_t k = 0; k < sym.size(); ++k) sym[k] = to_symbol(y.data[k], mu == out.end() ? 0.0f : mu->second.data[k]);
  c.encode("y", "y", sym, idx);
  c.stats.sequential_steps += 2;
}

namespace {

void check(const Bundle&, const std::string&) {}

Tensor decode(PlanContext& c, int ph, int pw) { return decode_hyperprior_y(c, ph, pw, false); }

void encode(PlanContext& c, Tensor x) { encode_hyperprior(c, std::move(x), false); }

}  // namespace

const Plan kHyperprior{"hyperprior", check, decode, encode};

}  // namespace plans
}  // namespace lictrt
