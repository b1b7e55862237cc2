// lictrt codec bundle reader for C++ embedding (docs/FORMATS.md "Codec bundle"): the manifest.json subset the
// plans need (lictrt/json.hpp) and tables.npz (lictrt/npz.hpp). Malformed input raises lictrt::BundleError.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "lictrt/coder.hpp"
#include "lictrt/json.hpp"
#include "lictrt/npz.hpp"
#include "lictrt/scale_index.hpp"

namespace lictrt {

/// The integer coder tables of one entropy model (tables.npz group `<name>.*`).
struct EntropyModel {
  std::string name;
  std::shared_ptr<const Tables> tables;
  int num_tables = 0;
  std::vector<float> medians;  ///< EntropyBottleneck: [C] (empty otherwise)
  ScaleIndex scales;           ///< GaussianConditional: scales(s) is CompressAI's build_indexes (empty otherwise)
  bool gaussian() const noexcept { return !scales.empty(); }
};

struct TensorSpec {
  std::string name;
  std::vector<std::string> shape;  ///< each dimension as written: "1", "H", "H/16"
};

struct GraphInfo {
  std::string name, file, role, precision;
  bool parse_critical = false;
  std::vector<TensorSpec> inputs, outputs;
};

/// A TensorRT engine listed in manifest["engines"] (key = file stem, e.g. "synthesis.tensorrt.fp32.sm90").
struct EngineInfo {
  std::string key, file, graph, backend, precision, gpu;
  bool plugins = false;
};

/// A loaded codec bundle. Construct with Bundle::load(dir).
class Bundle {
 public:
  static Bundle load(const std::string& dir);
  /// Build from manifest text and tables.npz bytes (dir is used only to resolve graph/engine files).
  static Bundle from_memory(const std::string& manifest_json, const uint8_t* npz, size_t npz_len,
                            const std::string& dir = "");

  const std::string& dir() const noexcept { return dir_; }
  const Json& manifest() const noexcept { return manifest_; }
  const Json& plan() const { return manifest_.at("plan"); }
  const std::string& plan_kind() const noexcept { return plan_kind_; }
  int pad_multiple() const noexcept { return pad_multiple_; }
  const std::array<uint8_t, 32>& model_hash() const noexcept { return hash_; }
  const std::string& arch() const noexcept { return arch_; }
  /// Graph/table name prefixes, one per width ("w48.") for slimmable bundles, else {""}.
  const std::vector<std::string>& prefixes() const noexcept { return prefixes_; }
  const std::map<std::string, GraphInfo>& graphs() const noexcept { return graphs_; }
  const GraphInfo& graph(const std::string& name) const;
  bool has_entropy(const std::string& name) const noexcept { return entropy_.count(name) != 0; }
  const EntropyModel& entropy(const std::string& name) const;
  const std::vector<EngineInfo>& engines() const noexcept { return engines_; }
  /// Path of an engine for `graph` (first manifest entry whose backend matches `backend`, "" = any); "" if none.
  std::string engine_path(const std::string& graph, const std::string& backend = "") const;

 private:
  std::string dir_, plan_kind_, arch_;
  Json manifest_;
  int pad_multiple_ = 0;
  std::array<uint8_t, 32> hash_{};
  std::vector<std::string> prefixes_;
  std::map<std::string, GraphInfo> graphs_;
  std::map<std::string, EntropyModel> entropy_;
  std::vector<EngineInfo> engines_;
};

}  // namespace lictrt
