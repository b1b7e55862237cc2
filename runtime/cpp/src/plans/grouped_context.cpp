// Plan grouped_context (runtime/plans/grouped_context.py, BaSIC): a scalable mean-scale hyperprior whose level
// (lictrt/levels.hpp) picks a width per transform and a context coder; the encoder takes it from its options, the
// decoder from the header's level block. Graphs w<W>.analysis (g_a), w<W>.hyper_analysis (h_a),
// w<W>.hyper_synthesis (h_s, parse-critical), w<W>.synthesis (g_s) and one per coder (parse-critical). Streams z then
// y (tables z, y); y's coder is plan.coders[<context>]:
//   scanline: the spatial-context loop (spatial_context.cpp context_loop) with the coder's graph, wavefront order;
//   staged:   symbol (c, h, w) is in stage A[c / (M / G)][h % 2][w % 2] (0 outside the 2x2 tiling when h or w is
//             odd); one step per non-empty stage in ascending order: ONE call of the graph (y_hat [1, M, h, w] with
//             the symbols decoded so far and zeros elsewhere, params) -> scales, means [1, M, h, w], then that
//             stage's symbols in (c, h, w) order.
#include <map>

#include "lictrt/bundle_schema.hpp"
#include "plans.hpp"

namespace lictrt {
namespace plans {
namespace {

const char* const kPlan = "plan 'grouped_context'";

// The graph of transform `axis` (g_a, h_a, h_s, g_s) at the level's width (runtime.bundle.level_graph).
std::string level_graph(const std::string& axis, const Level& level) {
  for (const auto& g : kLevelGraphs)
    if (axis == g.axis) return "w" + Levels::value(level, axis) + "." + g.graph;
  throw BundleError("no transform '" + axis + "'");
}

// The [G][2][2] stage table of a staged coder, flattened (G = size / 4).
std::vector<int> stage_table(const Json& coder, const std::string& name) {
  const Json& a = coder.get("stage_table");
  std::vector<int> out;
  bool ok = a.is_array() && a.size() > 0;
  for (size_t g = 0; ok && g < a.size(); ++g) {
    ok = a.at(g).is_array() && a.at(g).size() == 2;
    for (size_t i = 0; ok && i < 2; ++i) {
      const Json& row = a.at(g).at(i);
      ok = row.is_array() && row.size() == 2;
      for (size_t j = 0; ok && j < 2; ++j) {
        ok = row.at(j).is_number() && row.at(j).num() >= 0 && row.at(j).num() == double(int(row.at(j).num()));
        if (ok) out.push_back(int(row.at(j).num()));
      }
    }
  }
  if (!ok) throw BundleError(std::string(kPlan) + " coder '" + name + "': stage_table must be [G][2][2] of stages");
  return out;
}

// runtime.bundle.level_graphs: the level axes, every coder of the context axis, and every graph they name.
void check(const Bundle& b, const std::string&) {
  std::optional<Levels> levels = levels_of(b.plan());
  if (!levels) throw BundleError(std::string(kPlan) + " needs 'levels'");
  auto axis = [&](const std::string& name) -> const Levels::Axis* {
    for (auto& a : levels->axes())
      if (a.name == name) return &a;
    return nullptr;
  };
  std::string missing;
  for (const char* m : {"g_a", "h_a", "h_s", "g_s", "context"})
    if (!axis(m)) missing += std::string(missing.empty() ? "" : ", ") + "'" + m + "'";
  if (!missing.empty()) throw BundleError(std::string(kPlan) + " levels lack the axes [" + missing + "]");
  std::vector<std::string> graphs;
  for (const auto& g : kLevelGraphs)
    for (auto& w : axis(g.axis)->values) graphs.push_back("w" + w + "." + g.graph);
  const Json& coders = b.plan().get("coders");
  for (auto& name : axis("context")->values) {
    const Json& c = coders.get(name);
    const std::string kind = c.get("kind").is_string() ? c.get("kind").str() : "";
    if (!c.is_object() || (kind != "scanline" && kind != "staged") || !c.get("graph").is_string())
      throw BundleError(std::string(kPlan) + " coder '" + name + "' needs kind (scanline, staged) and graph");
    if (kind == "staged") stage_table(c, name);
    graphs.push_back(c.get("graph").str());
  }
  for (auto& g : graphs)
    if (!b.graphs().count(g)) throw BundleError(std::string(kPlan) + " needs graph '" + g + "'");
}

const Level& level_of(const PlanContext& c) {
  if (!c.level) throw BundleError(std::string(kPlan) + " is coded at a level, and none was given");
  return *c.level;
}

// Stream y stage by stage; `params` [1, 2M, h, w], `y` [1, M, h, w] when encoding. Returns y_hat [1, M, h, w].
Tensor staged_loop(PlanContext& c, const Tensor& params, const Tensor* y, const Json& coder, const std::string& name) {
  if (params.shape.size() != 4 || params.shape[0] != 1 || params.shape[1] % 2)
    throw BundleError("hyper_synthesis 'params' must be [1, 2M, h, w]");
  const int64_t M = params.shape[1] / 2, h = params.shape[2], w = params.shape[3], hw = h * w;
  if (y && (y->shape.size() != 4 || y->shape[0] != 1 || y->shape[1] != M || y->shape[2] != h || y->shape[3] != w))
    throw InvalidArgument("cannot encode: analysis y does not match hyper_synthesis params");
  const std::vector<int> A = stage_table(coder, name);
  const int64_t G = int64_t(A.size() / 4);
  if (M % G)
    throw BundleError("stage table of shape (" + std::to_string(G) + ", 2, 2) does not fit " + std::to_string(M) +
                      " channels");
  // the symbols of each stage, in (c, h, w) order
  std::map<int, std::vector<size_t>> stages;
  const int64_t he = h - h % 2, we = w - w % 2;
  for (int64_t ch = 0; ch < M; ++ch)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        const int s = i < he && j < we ? A[size_t((ch / (M / G)) * 4 + (i % 2) * 2 + j % 2)] : 0;
        stages[s].push_back(size_t(ch * hw + i * w + j));
      }
  const EntropyModel& m = c.tables("y");
  if (!m.gaussian()) throw BundleError("tables '" + m.name + "' have no scale_table");
  const std::string graph = coder.get("graph").str();
  IncrementalStream stream(c, "y", "y", y != nullptr);
  TensorMap feeds;
  feeds.emplace("params", params);
  Tensor& y_hat = feeds["y_hat"] = Tensor({1, M, h, w}, std::vector<float>(size_t(M * hw), 0.0f));
  const size_t n = size_t(M * hw);
  std::vector<int32_t> idx, sym;
  const double t_loop = now_s();
  for (auto& st : stages) {
    const std::vector<size_t>& pos = st.second;
    TensorMap out = c.run(graph, feeds, {"scales", "means"});
    expect_count(out["scales"], n, graph + " 'scales'");
    expect_count(out["means"], n, graph + " 'means'");
    const std::vector<float>&scales = out["scales"].data, &mu = out["means"].data;
    idx.resize(pos.size());
    for (size_t k = 0; k < pos.size(); ++k) idx[k] = m.scales(scales[pos[k]]);
    if (y) {
      sym.resize(pos.size());
      for (size_t k = 0; k < pos.size(); ++k) sym[k] = to_symbol(y->data[pos[k]], mu[pos[k]]);
    }
    stream.code(sym, idx);
    for (size_t k = 0; k < pos.size(); ++k) y_hat.data[pos[k]] = float(sym[k]) + mu[pos[k]];
    ++c.stats.sequential_steps;
  }
  stream.close();
  c.stats.loop_s += now_s() - t_loop;
  return std::move(y_hat);
}

Tensor code_y(PlanContext& c, const Tensor& params, const Tensor* y, const Level& level) {
  const std::string& name = Levels::value(level, "context");
  const Json& coder = c.bundle.plan().at("coders").at(name);
  const std::string kind = coder.at("kind").str();
  if (kind == "scanline") {
    const std::string order = coder.get("order").is_string() ? coder.get("order").str() : "wavefront";
    if (order != "wavefront" && order != "raster")
      throw BundleError("unknown context order '" + order + "' (wavefront, raster)");
    return context_loop(c, params, y, coder.at("graph").str(), order == "raster");
  }
  if (kind == "staged") return staged_loop(c, params, y, coder, name);
  throw BundleError("unknown context coder kind '" + kind + "' (scanline, staged)");
}

void encode(PlanContext& c, Tensor x) {
  const Level& level = level_of(c);
  const std::string g_a = level_graph("g_a", level), h_a = level_graph("h_a", level);
  const std::string h_s = level_graph("h_s", level);
  TensorMap a = c.run(g_a, feed("x", std::move(x)), {"y"});
  const Tensor& y = latent(a, "y", g_a);
  TensorMap ha = c.run(h_a, {{"y", y}}, {"z"});
  Tensor z_hat = encode_z(c, latent(ha, "z", h_a));
  TensorMap hs = c.run(h_s, feed("z_hat", std::move(z_hat)), {"params"});
  code_y(c, hs["params"], &y, level);
}

Tensor decode(PlanContext& c, int ph, int pw) {
  const Level& level = level_of(c);
  Tensor z_hat = decode_z(c, ph, pw);
  TensorMap hs = c.run(level_graph("h_s", level), feed("z_hat", std::move(z_hat)), {"params"});
  c.synthesis = level_graph("g_s", level);
  return code_y(c, hs["params"], nullptr, level);
}

}  // namespace

const Plan kGroupedContext{"grouped_context", check, decode, encode};

}  // namespace plans
}  // namespace lictrt
