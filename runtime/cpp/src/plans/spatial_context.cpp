// Plan spatial_context (runtime/plans/spatial_context.py): streams z then one incremental y stream; per step one
// batched context_step(params [P, 2M], windows [P, M, 5, 5]) -> scales, means [P, M] call and one coder call, in
// wavefront order (t = 3i + j, 3(h-1) + w steps) or raster order (header flag).
#include "plans.hpp"

#include <algorithm>

namespace lictrt {

std::vector<std::vector<std::pair<int, int>>> wavefront_schedule(int h, int w) {
  std::vector<std::vector<std::pair<int, int>>> steps;
  if (h < 1 || w < 1) return steps;
  for (int t = 0; t < 3 * (h - 1) + w; ++t) {
    std::vector<std::pair<int, int>> s;
    for (int i = std::max(0, (t - w + 1 + 2) / 3); i <= std::min(h - 1, t / 3); ++i)
      if (t - 3 * i >= 0 && t - 3 * i < w) s.emplace_back(i, t - 3 * i);
    if (!s.empty()) steps.push_back(std::move(s));
  }
  return steps;
}

namespace plans {
namespace {
constexpr int K = 5;  // context window
}  // namespace

Tensor context_loop(PlanContext& c, const Tensor& params, const Tensor* y, const std::string& step_graph, bool raster) {
  if (params.shape.size() != 4 || params.shape[0] != 1 || params.shape[1] % 2)
    throw BundleError("hyper_synthesis 'params' must be [1, 2M, h, w]");
  const int64_t M = params.shape[1] / 2, h = params.shape[2], w = params.shape[3];
  if (y && (y->shape.size() != 4 || y->shape[1] != M || y->shape[2] != h || y->shape[3] != w))
    throw InvalidArgument("cannot encode: analysis y does not match hyper_synthesis params");
  const int64_t hp = h + K - 1, wp = w + K - 1;
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  std::vector<float> y_pad(size_t(M * hp * wp), 0.0f);
  std::vector<std::vector<std::pair<int, int>>> steps;
  if (raster) {
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) steps.push_back({{i, j}});
  } else {
    steps = wavefront_schedule(int(h), int(w));
  }
  IncrementalStream stream(c, "y", "y", y != nullptr);
  const int64_t hw = h * w;
  const double t_loop = now_s();
  std::vector<int32_t> idx, sym;
  for (auto& step : steps) {
    const int64_t P = int64_t(step.size());
    Tensor pin({P, 2 * M}, std::vector<float>(size_t(P * 2 * M)));
    Tensor win({P, M, K, K}, std::vector<float>(size_t(P * M * K * K)));
    for (int64_t p = 0; p < P; ++p) {
      const int64_t r = step[size_t(p)].first, q = step[size_t(p)].second;
      for (int64_t ch = 0; ch < 2 * M; ++ch)
        pin.data[size_t(p * 2 * M + ch)] = params.data[size_t(ch * hw + r * w + q)];
      for (int64_t ch = 0; ch < M; ++ch)
        for (int a = 0; a < K; ++a)
          for (int bb = 0; bb < K; ++bb)
            win.data[size_t(((p * M + ch) * K + a) * K + bb)] = y_pad[size_t((ch * hp + r + a) * wp + q + bb)];
    }
    TensorMap out = c.run(step_graph, {{"params", std::move(pin)}, {"windows", std::move(win)}}, {"scales", "means"});
    const size_t PM = size_t(P * M);
    expect_count(out["scales"], PM, step_graph + " 'scales'");
    expect_count(out["means"], PM, step_graph + " 'means'");
    const std::vector<float>& mu = out["means"].data;
    idx.resize(PM);
    m.scales(out["scales"].data.data(), idx.data(), PM);
    if (y) {
      sym.resize(PM);
      for (int64_t p = 0; p < P; ++p) {
        const int64_t r = step[size_t(p)].first, q = step[size_t(p)].second;
        for (int64_t ch = 0; ch < M; ++ch)
          sym[size_t(p * M + ch)] = to_symbol(y->data[size_t(ch * hw + r * w + q)], mu[size_t(p * M + ch)]);
      }
    }
    stream.code(sym, idx);
    for (int64_t p = 0; p < P; ++p) {
      const int64_t r = step[size_t(p)].first, q = step[size_t(p)].second;
      for (int64_t ch = 0; ch < M; ++ch)
        y_pad[size_t((ch * hp + r + K / 2) * wp + q + K / 2)] = float(sym[size_t(p * M + ch)]) + mu[size_t(p * M + ch)];
    }
    ++c.stats.sequential_steps;
  }
  stream.close();
  c.stats.loop_s += now_s() - t_loop;
  Tensor y_hat({1, M, h, w}, std::vector<float>(size_t(M * hw)));
  for (int64_t ch = 0; ch < M; ++ch)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        y_hat.data[size_t(ch * hw + i * w + j)] = y_pad[size_t((ch * hp + i + K / 2) * wp + j + K / 2)];
  return y_hat;
}

namespace {

void check(const Bundle&, const std::string&) {}

Tensor decode(PlanContext& c, int ph, int pw) {
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap hs = c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"params"});
  return context_loop(c, hs["params"], nullptr, "context_step", c.raster);
}

void encode(PlanContext& c, Tensor x) {
  TensorMap a = c.run("analysis", feed("x", std::move(x)), {"y", "z"});
  Tensor z_hat = encode_z(c, latent(a, "z", "analysis"));
  TensorMap hs = c.run("hyper_synthesis", {{"z_hat", z_hat}}, {"params"});
  context_loop(c, hs["params"], &latent(a, "y", "analysis"), "context_step", c.raster);
}

}  // namespace

const Plan kSpatialContext{"spatial_context", check, decode, encode};

}  // namespace plans
}  // namespace lictrt
