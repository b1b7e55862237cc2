// The codec bundle schema (docs/FORMATS.md), defined once: the C++ bundle reader checks manifests against it and
// the Python runtime reads it from the extension (runtime._lictrt.BUNDLE_FORMAT, PLAN_GRAPHS, ...), so the exporter
// and both runtimes agree on one definition.
#pragma once

namespace lictrt {

inline constexpr const char* kBundleFormat = "lictrt-bundle";
inline constexpr int kBundleFormatVersion = 1;
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kTablesFile = "tables.npz";

/// The graphs a plan kind needs (per width prefix). Plans with more graphs count them from the manifest:
/// channel_slices one slice<i> / lrp<i> pair per slice, grouped_context one graph per level-axis value.
struct PlanGraphs {
  const char* kind;
  const char* graphs[5];  ///< nullptr-terminated
};

inline constexpr PlanGraphs kPlanGraphs[] = {
    {"factorized", {"analysis", "synthesis", nullptr}},
    {"hyperprior", {"analysis", "hyper_synthesis", "synthesis", nullptr}},
    {"mean_scale", {"analysis", "hyper_synthesis", "synthesis", nullptr}},
    {"spatial_context", {"analysis", "hyper_synthesis", "context_step", "synthesis", nullptr}},
    {"channel_slices", {"analysis", "hyper_synthesis", "synthesis", nullptr}},
    {"grouped_context", {nullptr}},
    {"grouped_slices", {"analysis", "hyper_synthesis", "slice0", "synthesis", nullptr}},
};

/// grouped_context (BaSIC): the transform level axes, in order, and the base name of their `w<W>.<base>` graphs.
struct LevelGraph {
  const char* axis;
  const char* graph;
};

inline constexpr LevelGraph kLevelGraphs[] = {
    {"g_a", "analysis"}, {"h_a", "hyper_analysis"}, {"h_s", "hyper_synthesis"}, {"g_s", "synthesis"}};

}  // namespace lictrt
