// Plan channel_slices (runtime/plans/channel_slices.py, MambaVC): streams z, y0..yS-1; per slice i the graphs
// slice<i> (-> mu, scale) then lrp<i> (y_hat_<i> = mu + q -> lrp); later slices see mu + q + lrp; graph inputs as
// the manifest lists them.
#include "plans.hpp"

#include <algorithm>

namespace lictrt {
namespace plans {
namespace {

// Number of slices S: the graphs `<prefix>slice<i>`; slice0..S-1 and lrp0..S-1 must all exist.
int num_slices(const Bundle& b, const std::string& prefix) {
  auto is_slice = [&](const std::string& g) {  // prefix + "slice" + digits
    const size_t k = prefix.size() + 5;
    return g.size() > k && g.compare(0, k, prefix + "slice") == 0 &&
           std::all_of(g.begin() + long(k), g.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  };
  int n = 0;
  for (auto& kv : b.graphs()) n += is_slice(kv.first);
  bool complete = n > 0;
  for (int i = 0; i < n && complete; ++i)
    complete =
        b.graphs().count(prefix + "slice" + std::to_string(i)) && b.graphs().count(prefix + "lrp" + std::to_string(i));
  if (!complete) throw BundleError("plan channel_slices: the bundle needs graphs slice0..sliceN-1 and lrp0..lrpN-1");
  return n;
}

// The inputs graph `graph` lists in the manifest, taken from `known` (the plan's tensors so far).
TensorMap feeds(const PlanContext& c, const std::string& graph, const TensorMap& known) {
  TensorMap in;
  for (const TensorSpec& t : c.bundle.graph(c.prefix + graph).inputs) {
    auto it = known.find(t.name);
    if (it == known.end())
      throw BundleError("graph '" + graph + "' needs input '" + t.name + "', which this plan does not produce");
    in.emplace(t.name, it->second);
  }
  return in;
}

void check(const Bundle& b, const std::string& prefix) { num_slices(b, prefix); }

// Per slice i: (mu, scale) = slice<i>(supports), q coded as stream y<i> (encoded from `y` when given, else
// decoded), y_hat_i = mu + q fed to lrp<i>, and the slice's y_hat = mu + q + lrp (what later slices see); returns
// y_hat = concat over channels. `known` holds hyper_synthesis's outputs.
Tensor run(PlanContext& c, TensorMap known, const Tensor* y) {
  const int n = num_slices(c.bundle, c.prefix);
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  int64_t size = 0, hw = 0;
  if (y) {  // torch.chunk: slices of ceil(M / n) channels
    if (y->shape.size() != 4 || y->shape[0] != 1) throw BundleError("analysis 'y' must be [1, M, h, w]");
    size = (y->shape[1] + n - 1) / n;
    hw = y->shape[2] * y->shape[3];
    if ((y->shape[1] + size - 1) / size != n)
      throw InvalidArgument("cannot encode: y with " + std::to_string(y->shape[1]) + " channels does not split into " +
                            std::to_string(n) + " slices");
  }
  std::vector<Tensor> hats;
  for (int i = 0; i < n; ++i) {
    const std::string si = std::to_string(i), slice = "slice" + si, lrp_g = "lrp" + si, yi = "y_hat_" + si;
    TensorMap p = c.run(slice, feeds(c, slice, known), {"mu", "scale"});
    const Tensor &mu = p["mu"], &scale = p["scale"];
    if (mu.shape != scale.shape) throw BundleError("graph '" + slice + "': 'mu' and 'scale' differ in shape");
    std::vector<int32_t> idx(scale.data.size());
    m.scales(scale.data.data(), idx.data(), idx.size());
    std::vector<int32_t> q;
    if (y) {
      const int64_t c0 = i * size, c1 = std::min<int64_t>(y->shape[1], c0 + size);
      const size_t base = size_t(c0 * hw), count = size_t((c1 - c0) * hw);
      if (count != mu.data.size())
        throw InvalidArgument("cannot encode: graph '" + slice + "' gives " + std::to_string(mu.data.size()) +
                              " values for a slice of " + std::to_string(count));
      q.resize(count);
      for (size_t k = 0; k < count; ++k) q[k] = to_symbol(y->data[base + k], mu.data[k]);
      c.encode("y" + si, "y", q, idx);
    } else {
      q = c.decode("y" + si, "y", idx);
    }
    Tensor yq(scale.shape, std::vector<float>(q.size()));
    for (size_t k = 0; k < q.size(); ++k) yq.data[k] = float(q[k]) + mu.data[k];
    Tensor& hat = known[yi] = std::move(yq);  // lrp<i> sees mu + q as y_hat_<i> ...
    TensorMap l = c.run(lrp_g, feeds(c, lrp_g, known), {"lrp"});
    const Tensor& lrp = l["lrp"];
    if (lrp.shape != hat.shape) throw BundleError("graph '" + lrp_g + "': 'lrp' does not have the slice's shape");
    for (size_t k = 0; k < hat.data.size(); ++k) hat.data[k] += lrp.data[k];  // ... later slices mu + q + lrp
    hats.push_back(hat);
    ++c.stats.sequential_steps;
  }
  const std::vector<int64_t>& s0 = hats[0].shape;
  if (s0.size() != 4 || s0[0] != 1) throw BundleError("slice latents must be [1, C, h, w]");
  int64_t M = 0;
  for (size_t i = 0; i < hats.size(); ++i) {
    const std::vector<int64_t>& s = hats[i].shape;
    if (s.size() != 4 || s[0] != 1 || s[2] != s0[2] || s[3] != s0[3])
      throw BundleError("slice " + std::to_string(i) + " latent does not match slice 0's [1, C, h, w]");
    M += s[1];
  }
  Tensor y_hat({1, M, s0[2], s0[3]});  // N = 1: the channel blocks are contiguous, so concat = append
  y_hat.data.reserve(size_t(M * s0[2] * s0[3]));
  for (auto& h : hats) y_hat.data.insert(y_hat.data.end(), h.data.begin(), h.data.end());
  return y_hat;
}

Tensor decode(PlanContext& c, int ph, int pw) {
  Tensor z_hat = decode_z(c, ph, pw);
  return run(c, c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"latent_means", "latent_scales"}), nullptr);
}

void encode(PlanContext& c, Tensor x) {
  TensorMap a = c.run("analysis", feed("x", std::move(x)), {"y", "z"});
  Tensor z_hat = encode_z(c, latent(a, "z", "analysis"));
  run(c, c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"latent_means", "latent_scales"}), &latent(a, "y", "analysis"));
}

}  // namespace

const Plan kChannelSlices{"channel_slices", check, decode, encode};

}  // namespace plans
}  // namespace lictrt
