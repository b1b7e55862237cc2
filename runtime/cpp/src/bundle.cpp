// Bundle reader: manifest.json (through lictrt/json.hpp) and tables.npz (through lictrt/npz.hpp) into a Bundle.
#include "lictrt/bundle.hpp"

#include "lictrt/bundle_schema.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "lictrt/sha256.hpp"

namespace lictrt {

static std::map<std::string, EntropyModel> entropy_models(const std::map<std::string, NpyArray>& arrays) {
  std::map<std::string, std::map<std::string, const NpyArray*>> groups;
  for (auto& kv : arrays) {
    size_t dot = kv.first.rfind('.');
    if (dot == std::string::npos || dot == 0)
      throw BundleError("tables.npz key '" + kv.first + "' has no '<model>.' prefix");
    groups[kv.first.substr(0, dot)][kv.first.substr(dot + 1)] = &kv.second;
  }
  std::map<std::string, EntropyModel> out;
  for (auto& g : groups) {
    const std::string& name = g.first;
    auto need = [&](const char* k) -> const NpyArray& {
      auto it = g.second.find(k);
      if (it == g.second.end()) throw BundleError("tables '" + name + "' lack '" + k + "'");
      return *it->second;
    };
    const NpyArray& cdf = need("cdf");
    if (cdf.shape.size() != 2 || cdf.shape[0] < 1 || cdf.shape[1] < 2)
      throw BundleError("tables '" + name + ".cdf' must be a 2-D int32 array");
    int T = int(cdf.shape[0]), L = int(cdf.shape[1]);
    auto c = cdf.as_int32();
    auto len = need("cdf_length").as_int32();
    auto off = need("offset").as_int32();
    if (int(len.size()) != T || int(off.size()) != T)
      throw BundleError("tables '" + name + "': cdf, cdf_length and offset do not agree");
    EntropyModel m;
    m.name = name;
    m.num_tables = T;
    try {
      m.tables = std::make_shared<const Tables>(c.data(), T, L, len.data(), off.data());
    } catch (const InvalidArgument& e) {
      throw BundleError("tables '" + name + "': " + e.what());
    }
    if (g.second.count("medians")) {
      m.medians = g.second["medians"]->as_float32();
      if (int(m.medians.size()) != T) throw BundleError("tables '" + name + "': medians do not match the channels");
    }
    if (g.second.count("scale_table")) {
      auto table = g.second["scale_table"]->as_float32();
      if (int(table.size()) != T) throw BundleError("tables '" + name + "': scale_table must have T entries");
      auto b = need("scale_bound").as_float32();
      if (b.size() != 1) throw BundleError("tables '" + name + "': scale_bound must be a scalar");
      try {
        m.scales = ScaleIndex(std::move(table), b[0]);
      } catch (const InvalidArgument& e) {
        throw BundleError("tables '" + name + "': " + e.what());
      }
    }
    out.emplace(name, std::move(m));
  }
  return out;
}

static std::string join(const std::string& dir, const std::string& f) {
  if (dir.empty() || f.empty() || f[0] == '/') return f;
  return dir.back() == '/' ? dir + f : dir + "/" + f;
}

static std::vector<TensorSpec> tensor_specs(const Json& list) {
  std::vector<TensorSpec> v;
  if (!list.is_array()) return v;
  for (size_t k = 0; k < list.size(); ++k) {
    TensorSpec t;
    t.name = list.at(k).at("name").str();
    const Json& s = list.at(k).get("shape");
    for (size_t d = 0; d < s.size(); ++d)
      t.shape.push_back(s.at(d).is_string() ? s.at(d).str() : std::to_string(s.at(d).integer()));
    v.push_back(std::move(t));
  }
  return v;
}

static void check_format(const Json& m) {
  if (!m.is_object() || !m.get("format").is_string() || m.get("format").str() != kBundleFormat)
    throw BundleError(std::string("manifest format is not '") + kBundleFormat + "'");
  if (!m.get("format_version").is_number() || m.get("format_version").integer() != kBundleFormatVersion)
    throw BundleError("unsupported bundle format_version (this reader reads " + std::to_string(kBundleFormatVersion) +
                      ")");
}

static std::vector<std::string> referenced_files(const Json& m) {
  static const Json none;
  const Json& graphs = m.get("graphs").is_object() ? m.get("graphs") : none;
  const Json& engines = m.get("engines").is_object() ? m.get("engines") : none;
  std::vector<std::string> out{kTablesFile};
  auto add = [&](const Json& j) {
    if (j.is_string() && !j.str().empty()) out.push_back(j.str());
  };
  for (size_t k = 0; k < graphs.size(); ++k)
    if (graphs.items()[k].second.is_object()) add(graphs.items()[k].second.get("file"));
  for (size_t k = 0; k < engines.size(); ++k) {
    const Json& e = engines.items()[k].second;
    add(e.is_object() ? e.get("file") : e);
  }
  return out;
}

static std::string safe_member(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  if (name.empty() || name.find('\\') != std::string::npos || name.find('\0') != std::string::npos)
    throw BundleError("manifest path '" + name + "' is not a relative file name");
  const fs::path p(name);
  bool dotdot = false;
  for (auto& part : p) dotdot = dotdot || part == "..";
  if (p.is_absolute() || dotdot || name[0] == '~')
    throw BundleError("manifest path '" + name + "' points outside the bundle (absolute or '..' paths are refused)");
  const std::string full = join(dir.empty() ? "." : dir, name);
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(dir.empty() ? "." : dir, ec);
  const fs::path real = ec ? fs::path() : fs::weakly_canonical(full, ec);
  // inside the bundle: every component of the bundle's real path starts the file's real path
  auto r = root.begin(), f = real.begin();
  for (; !ec && r != root.end() && f != real.end() && *r == *f; ++r, ++f) {
  }
  if (ec || r != root.end()) throw BundleError("manifest path '" + name + "' leads outside the bundle through a link");
  return full;
}

static void verify_files(const std::string& dir, const Json& m) {
  const std::vector<std::string> names = referenced_files(m);
  for (auto& name : names) safe_member(dir, name);
  const Json& files = m.get("files");
  if (files.is_null()) return;  // a manifest written by hand, without digests: paths checked only
  if (!files.is_object()) throw BundleError("manifest 'files' must map file names to sha256 digests");
  for (auto& name : names) {
    bool listed = false;
    for (auto& kv : files.items()) listed = listed || kv.first == name;
    if (!listed) throw BundleError("manifest has no digest for " + name + " (the bundle was changed after export)");
  }
  for (auto& kv : files.items()) {
    const std::string full = safe_member(dir, kv.first);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(full, ec))
      throw BundleError("bundle file " + kv.first + " is missing from " + dir);
    if (!kv.second.is_string() || file_digest(full) != kv.second.str())
      throw BundleError("bundle file " + kv.first +
                        " does not match its digest in the manifest (edited, damaged, or left from another export): "
                        "re-export the bundle");
  }
}

Bundle Bundle::from_memory(const std::string& manifest_json, const uint8_t* npz, size_t npz_len,
                           const std::string& dir) {
  Bundle b;
  b.dir_ = dir;
  try {
    b.manifest_ = Json::parse(manifest_json);
  } catch (const BundleError& e) {
    throw BundleError("manifest.json is not valid JSON: " + std::string(e.what()));
  }
  const Json& m = b.manifest_;
  try {
    check_format(m);
    b.pad_multiple_ = int(m.at("pad_multiple").integer());
    if (b.pad_multiple_ < 1 || b.pad_multiple_ > 65535) throw BundleError("bad pad_multiple");
    b.plan_kind_ = m.at("plan").at("kind").str();
    b.arch_ = m.at("model").get("arch").is_string() ? m.at("model").get("arch").str() : "?";
    const std::string& h = m.at("model").at("hash").str();
    if (h.size() != 64) throw BundleError("manifest model.hash must be 64 hex digits");
    for (int k = 0; k < 32; ++k) {
      auto nib = [&](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        throw BundleError("manifest model.hash must be 64 hex digits");
      };
      b.hash_[size_t(k)] = uint8_t(nib(h[size_t(2 * k)]) << 4 | nib(h[size_t(2 * k + 1)]));
    }
    const Json& widths = m.at("plan").get("widths");
    if (widths.is_array() && widths.size() > 0) {
      for (size_t k = 0; k < widths.size(); ++k)
        b.prefixes_.push_back("w" + std::to_string(widths.at(k).integer()) + ".");
    } else {
      b.prefixes_.push_back("");
    }
    for (auto& kv : m.at("graphs").items()) {
      GraphInfo g;
      g.name = kv.first;
      const Json& j = kv.second;
      g.file = j.get("file").is_string() ? j.get("file").str() : "";
      g.role = j.get("role").is_string() ? j.get("role").str() : "";
      g.precision = j.get("precision").is_string() ? j.get("precision").str() : "fp32";
      g.parse_critical = j.get("parse_critical").type() == Json::Type::Bool && j.get("parse_critical").boolean();
      g.inputs = tensor_specs(j.get("inputs"));
      g.outputs = tensor_specs(j.get("outputs"));
      b.graphs_.emplace(g.name, std::move(g));
    }
    const Json& eng = m.get("engines");
    if (eng.is_object()) {
      for (auto& kv : eng.items()) {
        EngineInfo e;
        e.key = kv.first;
        const Json& j = kv.second;
        if (j.is_string()) {
          e.file = j.str();
        } else if (j.is_object()) {
          auto s = [&](const char* k) { return j.get(k).is_string() ? j.get(k).str() : std::string(); };
          e.file = s("file");
          e.graph = s("graph");
          e.backend = s("backend");
          e.precision = s("precision");
          e.gpu = s("gpu");
          e.plugins = j.get("plugins").type() == Json::Type::Bool && j.get("plugins").boolean();
        }
        if (e.graph.empty()) e.graph = e.key.substr(0, e.key.find('.'));
        if (!e.file.empty()) b.engines_.push_back(std::move(e));
      }
    }
  } catch (const BundleError& e) {
    throw BundleError(std::string("manifest.json: ") + e.what());
  }
  bool known = false;
  for (auto& r : kPlanGraphs) {
    if (b.plan_kind_ != r.kind) continue;
    known = true;
    for (auto& prefix : b.prefixes_)
      for (const char* const* g = r.graphs; *g; ++g)
        if (!b.graphs_.count(prefix + *g))
          throw BundleError("plan '" + b.plan_kind_ + "' needs graph '" + prefix + *g + "'");
  }
  if (!known) throw BundleError("unknown plan kind '" + b.plan_kind_ + "'");
  b.entropy_ = entropy_models(parse_npz(npz, npz_len, join(dir, kTablesFile)));
  return b;
}

Bundle Bundle::load(const std::string& dir) {
  std::vector<uint8_t> m;
  try {
    m = read_file(join(dir, kManifestFile));
  } catch (const BundleError&) {
    throw BundleError("no bundle at " + dir + " (" + kManifestFile + " missing or unreadable)");
  }
  const std::string text(m.begin(), m.end());
  Json j;
  bool readable = true;  // else from_memory below words what is wrong with the manifest
  try {
    j = Json::parse(text);
    check_format(j);
  } catch (const BundleError&) {
    readable = false;
  }
  if (readable) verify_files(dir, j);  // paths and digests first: an edited file is named, not misread
  auto t = read_file(join(dir, kTablesFile));
  return from_memory(text, t.data(), t.size(), dir);
}

const GraphInfo& Bundle::graph(const std::string& name) const {
  auto it = graphs_.find(name);
  if (it == graphs_.end()) throw BundleError("bundle has no graph '" + name + "'");
  return it->second;
}

const EntropyModel& Bundle::entropy(const std::string& name) const {
  auto it = entropy_.find(name);
  if (it == entropy_.end()) throw BundleError("tables.npz has no entropy model '" + name + "'");
  return it->second;
}

std::string Bundle::engine_path(const std::string& graph, const std::string& backend) const {
  for (auto& e : engines_)
    if (e.graph == graph && (backend.empty() || e.backend == backend)) return join(dir_, e.file);
  return "";
}

}  // namespace lictrt
