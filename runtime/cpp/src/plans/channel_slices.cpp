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
    complete = b.graphs().count(prefix + "slice" + std::to_string(i)) && b.graphs().count(prefix + "lrp" + std::to_string(i));
  if (!complete)
    throw BundleError("plan channel_slices: the bundle needs graphs slice0..sliceN-1 and lrp0..lrpN-1");
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

// z, then per slice i: (mu, scale) = slice<i>(supports), q from stream y<i>, y_hat_i = mu + q fed to lrp<i>, and
// the slice's y_hat = mu + q + lrp (what later slices see); y_hat = concat over channels.
Tensor decode(PlanContext& c, int ph, int pw) {
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap known = c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"latent_means", "latent_scales"});
  const int n = num_slices(c.bundle, c.prefix);
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  std::vector<Tensor> hats;
  for (int i = 0; i < n; ++i) {
    const std::string si = std::to_string(i), slice = "slice" + si, lrp_g = "lrp" + si, yi = "y_hat_" + si;
    TensorMap p = c.run(slice, feeds(c, slice, known), {"mu", "scale"});
    const Tensor &mu = p["mu"], &scale = p["scale"];
    if (mu.shape != scale.shape) throw BundleError("graph '" + slice + "': 'mu' and 'scale' differ in shape");
    std::vector<int32_t> idx(scale.data.size());
    for (size_t k = 0; k < idx.size(); ++k) idx[k] = m.scale_index(scale.data[k]);
    auto q = c.decode("y" + si, "y", idx);
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
  Tensor y({1, M, s0[2], s0[3]});  // N = 1: the channel blocks are contiguous, so concat = append
  y.data.reserve(size_t(M * s0[2] * s0[3]));
  for (auto& h : hats) y.data.insert(y.data.end(), h.data.begin(), h.data.end());
  return y;
}

}  // namespace

const Plan kChannelSlices{"channel_slices", check, decode};

}  // namespace plans
}  // namespace lictrt
