// lictrt codec bundle reader for C++ embedding (docs/FORMATS.md "Codec bundle"): the manifest.json subset the
// decoder needs (own small JSON reader) and tables.npz (own zip + .npy reader; np.savez = stored zip entries).
// Every read is bounds-checked; malformed input raises lictrt::BundleError with a one-line message.
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

namespace lictrt {

/// A bundle directory, manifest, tables.npz or .npy file that is missing, malformed or inconsistent.
class BundleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A parsed JSON value (RFC 8259 subset: no \u surrogate checks beyond UTF-8 encoding; numbers as double).
class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  static Json parse(const std::string& text);  ///< throws BundleError "json: <what> at offset N"

  Type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == Type::Null; }
  bool is_object() const noexcept { return type_ == Type::Object; }
  bool is_array() const noexcept { return type_ == Type::Array; }
  bool is_string() const noexcept { return type_ == Type::String; }
  bool is_number() const noexcept { return type_ == Type::Number; }
  bool has(const std::string& key) const noexcept;
  /// Member `key` of an object (BundleError if absent or not an object).
  const Json& at(const std::string& key) const;
  /// Member `key`, or a null value when absent.
  const Json& get(const std::string& key) const noexcept;
  const Json& at(size_t i) const;
  size_t size() const noexcept;  ///< elements of an array / members of an object, else 0
  const std::string& str() const;  ///< BundleError unless a string
  double num() const;              ///< BundleError unless a number
  int64_t integer() const;         ///< BundleError unless an integral number
  bool boolean() const;            ///< BundleError unless true/false
  const std::vector<std::pair<std::string, Json>>& items() const;  ///< object members in file order

 private:
  friend struct JsonParser;
  Type type_ = Type::Null;
  bool b_ = false;
  double n_ = 0;
  std::string s_;
  std::vector<Json> a_;
  std::vector<std::pair<std::string, Json>> o_;
};

/// One array from a .npy file: little-endian dtype '<i4', '<f4', '|u1', '<i8' or '<f8', C order.
struct NpyArray {
  std::string dtype;            ///< numpy descr, e.g. "<f4"
  std::vector<int64_t> shape;   ///< empty for a 0-d array
  std::vector<uint8_t> bytes;   ///< raw element bytes
  size_t count() const noexcept;
  size_t item_size() const noexcept;
  std::vector<int32_t> as_int32() const;  ///< dtype must be <i4 (BundleError otherwise)
  std::vector<float> as_float32() const;  ///< dtype must be <f4
};

/// Parse .npy bytes (format versions 1-3). `what` names the source in errors.
NpyArray parse_npy(const uint8_t* data, size_t len, const std::string& what);
NpyArray read_npy(const std::string& path);
/// Write a float32 / int32 / uint8 .npy file (format 1.0), used by tools and tests.
void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape,
               const void* data);
/// All arrays of an uncompressed .npz (np.savez) keyed by name without ".npy".
std::map<std::string, NpyArray> parse_npz(const uint8_t* data, size_t len, const std::string& what);
std::map<std::string, NpyArray> read_npz(const std::string& path);

/// Read a whole file (BundleError naming the path when it cannot be read).
std::vector<uint8_t> read_file(const std::string& path);

/// The integer coder tables of one entropy model (tables.npz group `<name>.*`).
struct EntropyModel {
  std::string name;
  std::shared_ptr<const Tables> tables;
  int num_tables = 0;
  std::vector<float> medians;      ///< EntropyBottleneck: [C] (empty otherwise)
  std::vector<float> scale_table;  ///< GaussianConditional: [T] increasing (empty otherwise)
  float scale_bound = 0.0f;
  bool gaussian() const noexcept { return !scale_table.empty(); }
  /// CompressAI build_indexes: #{ t in scale_table[:-1] : t < max(scale, bound) } (NaN -> T-1).
  int32_t scale_index(float scale) const noexcept;
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
