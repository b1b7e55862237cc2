// Plan grouped_slices (runtime/plans/grouped_slices.py, GIT-SSIC): streams mask (the labels + 1 of the mask-grid
// cells, raster order, fixed table "mask"; absent when coded without a mask: one group, 0), z, then per slice i and
// group g (ascending) the stream g<g>.y<i>: round(y - mu) at that group's latent cells in (channel, row, column)
// order, table = the nearest scale of y's scale_table to sigma. Graphs: analysis (x, mask) -> y, z; hyper_synthesis
// z_hat -> hyper; slice<i> (hyper, y_hat_0..y_hat_<i-1>) -> mu, scale; synthesis (y_hat, mask) -> x_hat, where mask
// is the grid labels repeated to latent resolution [1, 1, H/16, W/16] (float32). Decoding a subset of groups reads
// only their streams; y_hat is zero at every other cell.
#include "plans.hpp"

#include <algorithm>
#include <cmath>

#include "lictrt/encoder.hpp"

namespace lictrt {
namespace plans {
namespace {

constexpr int kMaskGrid = 32;      // pixels per mask cell (plan field mask_grid)
constexpr int kLatentStride = 16;  // pixels per latent cell

// Slice count S: the graphs slice0..sliceS-1 (consecutive from 0).
int num_slices(const Bundle& b, const std::string& prefix) {
  int n = 0;
  while (b.graphs().count(prefix + "slice" + std::to_string(n))) ++n;
  if (n == 0) throw BundleError("plan grouped_slices: the bundle needs graphs slice0..sliceN-1");
  return n;
}

int mask_grid(const PlanContext& c) {
  const int g = c.plan_int("mask_grid", kMaskGrid);
  if (g < kLatentStride || g % kLatentStride)
    throw BundleError("plan grouped_slices: mask_grid " + std::to_string(g) + " is not a multiple of " +
                      std::to_string(kLatentStride));
  return g;
}

void check(const Bundle& b, const std::string& prefix) { num_slices(b, prefix); }

std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}

std::vector<int32_t> sorted_unique(std::vector<int32_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// The user's labels -> labels of the grid x grid cells of the padded ph x pw image (coarse_mask): the mask covers the
// h x w image at full, latent or grid size; each cell takes the label at its top-left pixel, padding is label 0.
std::vector<int32_t> coarse_mask(const GroupMask* m, uint32_t h, uint32_t w, int ph, int pw, int grid) {
  const int ch = ph / grid, cw = pw / grid;
  std::vector<int32_t> out(size_t(ch) * size_t(cw), 0);
  if (!m) return out;
  const int top = (ph - int(h)) / 2, left = (pw - int(w)) / 2;
  auto up = [](uint32_t v, int f) { return (v + uint32_t(f) - 1) / uint32_t(f); };
  int f = 0;
  for (int k : {1, kLatentStride, grid})
    if (m->height == up(h, k) && m->width == up(w, k)) {
      f = k;
      break;
    }
  if (!f)
    throw InvalidArgument("cannot encode: the group mask is " + std::to_string(m->width) + "x" +
                          std::to_string(m->height) + "; for a " + std::to_string(w) + "x" + std::to_string(h) +
                          " image it must be " + std::to_string(w) + "x" + std::to_string(h) + ", " +
                          std::to_string(up(w, kLatentStride)) + "x" + std::to_string(up(h, kLatentStride)) + " or " +
                          std::to_string(up(w, grid)) + "x" + std::to_string(up(h, grid)) + " (image, 1/" +
                          std::to_string(kLatentStride) + " or 1/" + std::to_string(grid) + " size)");
  if (m->labels.size() != size_t(m->height) * m->width)
    throw InvalidArgument("cannot encode: the group mask holds " + std::to_string(m->labels.size()) + " labels for " +
                          std::to_string(m->width) + "x" + std::to_string(m->height));
  for (int32_t v : m->labels)
    if (v < 0 || v >= 65536) throw InvalidArgument("cannot encode: group labels must be in [0, 65535]");
  for (int r = 0; r < ch; ++r)
    for (int q = 0; q < cw; ++q) {
      const int i = r * grid - top, j = q * grid - left;  // the cell's top-left pixel in the unpadded image
      if (i >= 0 && i < int(h) && j >= 0 && j < int(w))
        out[size_t(r * cw + q)] = m->labels[size_t(i / f) * m->width + size_t(j / f)];
    }
  return out;
}

// The grid labels repeated to latent resolution: the graphs' mask input [1, 1, ph/16, pw/16] (float32).
Tensor latent_mask(const std::vector<int32_t>& coarse, int ph, int pw, int grid) {
  const int r = grid / kLatentStride, cw = pw / grid, lh = ph / grid * r, lw = cw * r;
  Tensor t({1, 1, lh, lw}, std::vector<float>(size_t(lh) * size_t(lw)));
  for (int i = 0; i < lh; ++i)
    for (int j = 0; j < lw; ++j) t.data[size_t(i * lw + j)] = float(coarse[size_t(i / r * cw + j / r)]);
  return t;
}

// The nearest table scale to sigma after clamping sigma to the table's range, first index on ties (float32
// |sigma - s_k|, numpy's argmin; NaN -> 0 as argmin over NaN distances).
int32_t nearest_index(float s, const std::vector<float>& t) {
  if (std::isnan(s)) return 0;
  s = std::min(std::max(s, t.front()), t.back());
  int32_t best = 0;
  float d = std::fabs(s - t[0]);
  for (size_t k = 1; k < t.size(); ++k) {
    const float e = std::fabs(s - t[k]);
    if (e < d) d = e, best = int32_t(k);
  }
  return best;
}

// A latent cell's (float32) label equals group g, compared exactly as numpy compares float32 with an int.
inline bool is_group(float label, int32_t g) { return double(label) == double(g); }

std::string stream_name(int32_t group, int i) { return "g" + std::to_string(group) + ".y" + std::to_string(i); }

// The slice<i> call on hyper and the slices before i: (mu, scale), of `count` values each unless count is 0.
TensorMap run_slice(PlanContext& c, int i, const Tensor& hyper, const std::vector<Tensor>& hats, size_t count) {
  TensorMap in{{"hyper", hyper}};
  for (int j = 0; j < i; ++j) in.emplace("y_hat_" + std::to_string(j), hats[size_t(j)]);
  const std::string g = "slice" + std::to_string(i);
  TensorMap p = c.run(g, in, {"mu", "scale"});
  if (count) {  // encoding: the slice of y it codes
    expect_count(p["mu"], count, "graph '" + g + "' output 'mu'");
    expect_count(p["scale"], count, "graph '" + g + "' output 'scale'");
  }
  return p;
}

Tensor concat_channels(const std::vector<Tensor>& hats, int64_t cs, int64_t lh, int64_t lw) {
  Tensor y_hat({1, cs * int64_t(hats.size()), lh, lw});  // N = 1: concatenating channels appends the blocks
  y_hat.data.reserve(size_t(cs * int64_t(hats.size()) * lh * lw));
  for (auto& h : hats) y_hat.data.insert(y_hat.data.end(), h.data.begin(), h.data.end());
  return y_hat;
}

void encode(PlanContext& c, Tensor x) {
  const int grid = mask_grid(c), ph = int(x.shape[2]), pw = int(x.shape[3]);
  const std::vector<int32_t> coarse = coarse_mask(c.mask, c.image_h, c.image_w, ph, pw, grid);
  if (c.mask) {  // without a mask: one group and no mask stream (the seed's "woStructure" mode)
    std::vector<int32_t> sym(coarse.size()), idx(coarse.size(), 0);
    for (size_t k = 0; k < sym.size(); ++k) sym[k] = coarse[k] + 1;
    c.encode("mask", "mask", sym, idx);
  }
  Tensor lat = latent_mask(coarse, ph, pw, grid);
  const std::vector<float>& lab = lat.data;
  TensorMap in = feed("x", std::move(x));
  in.emplace("mask", lat);
  TensorMap a = c.run("analysis", in, {"y", "z"});
  Tensor z_hat = encode_z(c, latent(a, "z", "analysis"));
  TensorMap hs = c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"hyper"});
  const int n = num_slices(c.bundle, c.prefix);
  const Tensor& y = latent(a, "y", "analysis");
  if (y.shape[1] % n)
    throw InvalidArgument("cannot encode: y with " + std::to_string(y.shape[1]) + " channels does not split into " +
                          std::to_string(n) + " slices");
  const int64_t cs = y.shape[1] / n, lh = y.shape[2], lw = y.shape[3], hw = lh * lw;
  if (lh != lat.shape[2] || lw != lat.shape[3])
    throw BundleError("analysis 'y' is not at the mask's latent resolution");
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  const std::vector<int32_t> groups = sorted_unique(coarse);
  const size_t count = size_t(cs * hw);
  std::vector<Tensor> hats;
  for (int i = 0; i < n; ++i) {
    TensorMap p = run_slice(c, i, hs["hyper"], hats, count);
    const std::vector<float>& mu = p["mu"].data;
    std::vector<int32_t> q(count), idx(count);
    for (size_t k = 0; k < count; ++k) {
      q[k] = to_symbol(y.data[size_t(i) * count + k], mu[k]);
      idx[k] = nearest_index(p["scale"].data[k], m.scales.table());
    }
    for (int32_t g : groups) {
      std::vector<int32_t> gs, gi;
      for (size_t k = 0; k < count; ++k)
        if (is_group(lab[k % size_t(hw)], g)) gs.push_back(q[k]), gi.push_back(idx[k]);
      c.encode(stream_name(g, i), "y", gs, gi);
    }
    Tensor hat({1, cs, lh, lw}, std::vector<float>(count));
    for (size_t k = 0; k < count; ++k) hat.data[k] = float(q[k]) + mu[k];
    hats.push_back(std::move(hat));
    ++c.stats.sequential_steps;
  }
}

Tensor decode(PlanContext& c, int ph, int pw) {
  const int grid = mask_grid(c);
  std::vector<int32_t> coarse(size_t(ph / grid) * size_t(pw / grid), 0);  // no mask stream: all group 0
  if (c.in_streams.count("mask")) {
    coarse = c.decode("mask", "mask", std::vector<int32_t>(coarse.size(), 0));
    for (int32_t& v : coarse) {
      if (v < 1) throw BitstreamError("stream 'mask' holds a negative group label");
      --v;
    }
  }
  const std::vector<int32_t> present = sorted_unique(coarse);
  const std::vector<int32_t> wanted = c.groups ? sorted_unique(*c.groups) : present;
  std::vector<int32_t> unknown;
  for (int32_t g : wanted)
    if (!std::binary_search(present.begin(), present.end(), g)) unknown.push_back(g);
  if (!unknown.empty())
    throw GroupError("group(s) " + join(unknown) + " are not in this bitstream (it has " + join(present) + ")");
  Tensor lat = latent_mask(coarse, ph, pw, grid);
  const std::vector<float>& lab = lat.data;
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap hs = c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"hyper"});
  const int n = num_slices(c.bundle, c.prefix);
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  std::vector<Tensor> hats;
  int64_t cs = 0;
  const int64_t lh = lat.shape[2], lw = lat.shape[3], hw = lh * lw;
  for (int i = 0; i < n; ++i) {
    TensorMap p = run_slice(c, i, hs["hyper"], hats, 0);
    const Tensor &mu = p["mu"], &scale = p["scale"];
    if (mu.shape.size() != 4 || mu.shape[0] != 1 || mu.shape[2] != lh || mu.shape[3] != lw || scale.shape != mu.shape ||
        (i > 0 && mu.shape[1] != cs))
      throw BundleError("graph 'slice" + std::to_string(i) + "': 'mu' and 'scale' must be [1, C, " +
                        std::to_string(lh) + ", " + std::to_string(lw) + "] (the mask's latent size)");
    cs = mu.shape[1];
    const size_t count = size_t(cs * hw);
    Tensor hat({1, cs, lh, lw}, std::vector<float>(count, 0.0f));
    for (int32_t g : wanted) {
      std::vector<size_t> at;
      std::vector<int32_t> gi;
      for (size_t k = 0; k < count; ++k)
        if (is_group(lab[k % size_t(hw)], g))
          at.push_back(k), gi.push_back(nearest_index(scale.data[k], m.scales.table()));
      const std::vector<int32_t> q = c.decode(stream_name(g, i), "y", gi);
      for (size_t k = 0; k < at.size(); ++k) hat.data[at[k]] = float(q[k]) + mu.data[at[k]];
    }
    hats.push_back(std::move(hat));
    ++c.stats.sequential_steps;
  }
  c.groups_decoded = wanted;
  c.synthesis_inputs["mask"] = std::move(lat);
  return concat_channels(hats, cs, lh, lw);
}

}  // namespace

const Plan kGroupedSlices{"grouped_slices", check, decode, encode};

}  // namespace plans
}  // namespace lictrt
