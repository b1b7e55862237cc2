// lictrt: encode / decode images with a codec bundle on ONNX Runtime (CPU), inspect .lic files. The C++ twin of
// `python -m runtime` (runtime/cli.py conventions): same commands, one-line errors "error: <what>" and exit codes
// (0 ok, 1 bad input or corrupt bitstream, 2 usage); --verbose adds the error's kind.
//
//   lictrt encode BUNDLE IN.png -o OUT.lic [--mode fast|compat] [--substreams N] [--width W]
//                 [--context-order wavefront|raster] [--mask LABELS.png] [--level LEVEL] [--threads N]
//                 [--onnxruntime LIB] [--ort-custom-ops LIB]
//   lictrt decode BUNDLE IN.lic -o OUT.png [--groups 1,3] [--threads N] [--onnxruntime LIB] [--ort-custom-ops LIB]
//   lictrt info IN.lic [--bundle BUNDLE]
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "lictrt/bundle.hpp"
#include "lictrt/container.hpp"
#include "lictrt/decoder.hpp"
#include "lictrt/encoder.hpp"
#include "lictrt/format.hpp"
#include "lictrt/levels.hpp"
#include "lictrt/onnxruntime_runner.hpp"
#include "png_io.hpp"

namespace {

namespace fs = std::filesystem;

const char* const kUsage =
    "usage: lictrt encode BUNDLE IN.png -o OUT.lic [--mode fast|compat] [--substreams N] [--width W]\n"
    "                     [--context-order wavefront|raster] [--threads N] [--onnxruntime LIB] [--ort-custom-ops LIB]\n"
    "                     [--mask LABELS.png|FOLDER]   (grouped plans: the groups; default: one group, 0)\n"
    "                     [--level LEVEL]  (scalable bundles: a preset such as fastest or full, or e.g.\n"
    "                                       g_a=48,g_s=96,context=4stage; written into the file)\n"
    "       lictrt decode BUNDLE IN.lic -o OUT.png [--threads N] [--onnxruntime LIB] [--ort-custom-ops LIB]\n"
    "                     [--groups 1,3]   (grouped plans: decode only these groups)\n"
    "       lictrt info IN.lic [--bundle BUNDLE]  (scalable bundles: name the file's level with the bundle's levels)\n";

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct CodecError : std::runtime_error {  // bad arguments or input that is not a bitstream (Python: CodecError)
  using std::runtime_error::runtime_error;
};
struct OutputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct FileNotFound : std::runtime_error {  // Python: FileNotFoundError
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string cmd;
  std::vector<std::string> pos;
  std::map<std::string, std::string> opt;
  bool verbose = false;
};

Args parse(int argc, char** argv) {
  static const std::map<std::string, std::vector<std::string>> kOptions = {
      {"encode",
       {"-o", "--output", "--mode", "--substreams", "--width", "--context-order", "--threads", "--onnxruntime",
        "--ort-custom-ops", "--mask", "--level"}},
      {"decode", {"-o", "--output", "--threads", "--onnxruntime", "--ort-custom-ops", "--groups"}},
      {"info", {"--bundle"}}};
  Args a;
  if (argc < 2) throw Usage("a command is required (encode, decode, info)");
  a.cmd = argv[1];
  if (a.cmd == "-h" || a.cmd == "--help") throw Usage("");
  auto known = kOptions.find(a.cmd);
  if (known == kOptions.end()) throw Usage("unknown command '" + a.cmd + "' (encode, decode, info)");
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--verbose") {
      a.verbose = true;
    } else if (s == "-h" || s == "--help") {
      throw Usage("");
    } else if (s.size() > 1 && s[0] == '-') {
      std::string key = s, value;
      const size_t eq = s.find('=');
      if (eq != std::string::npos) key = s.substr(0, eq);
      bool ok = false;
      for (auto& k : known->second) ok |= k == key;
      if (!ok) throw Usage("unrecognized option " + key);
      if (eq != std::string::npos) {
        value = s.substr(eq + 1);
      } else {
        if (i + 1 >= argc) throw Usage("option " + key + " needs a value");
        value = argv[++i];
      }
      a.opt[key == "--output" ? "-o" : key] = value;
    } else {
      a.pos.push_back(s);
    }
  }
  const size_t want = a.cmd == "info" ? 1 : 2;
  if (a.pos.size() != want)
    throw Usage(a.cmd + " takes " + (want == 1 ? "IN.lic" : a.cmd == "encode" ? "BUNDLE IN.png" : "BUNDLE IN.lic"));
  if (a.cmd != "info" && !a.opt.count("-o")) throw Usage("the following arguments are required: -o/--output");
  return a;
}

int to_int(const Args& a, const std::string& key, int dflt) {
  auto it = a.opt.find(key);
  if (it == a.opt.end()) return dflt;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end || errno || v < 0 || v > 1 << 20)
    throw Usage("argument " + key + ": invalid int value: '" + it->second + "'");
  return int(v);
}

std::string choice(const Args& a, const std::string& key, const std::vector<std::string>& allowed, std::string dflt) {
  auto it = a.opt.find(key);
  if (it == a.opt.end()) return dflt;
  for (auto& s : allowed)
    if (s == it->second) return s;
  std::string list;
  for (auto& s : allowed) list += (list.empty() ? "" : ", ") + s;
  throw Usage("argument " + key + ": invalid choice: '" + it->second + "' (choose from " + list + ")");
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw CodecError("cannot read " + path + ": Is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw CodecError("cannot read " + path + ": " + std::strerror(errno));
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The output must not be the input: the atomic rename would replace it (same path, a link or a hard link to it).
void check_distinct(const std::string& out, const std::string& in) {
  struct stat so, si;
  bool same = false;
  if (stat(out.c_str(), &so) == 0 && stat(in.c_str(), &si) == 0) {
    same = so.st_dev == si.st_dev && so.st_ino == si.st_ino;
  } else {
    std::error_code e1, e2;
    same = fs::weakly_canonical(out, e1) == fs::weakly_canonical(in, e2) && !e1 && !e2;
  }
  if (same)
    throw OutputError("output " + out + " is the input " + in + ": refusing to overwrite it (choose another -o)");
}

void write_atomic(const std::string& path, const std::vector<uint8_t>& data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw CodecError("cannot write " + path + ": " + std::strerror(errno));
    f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw CodecError("cannot write " + path + ": " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw CodecError("cannot write " + path + ": " + std::strerror(e));
  }
}

lictrt::Bundle load_bundle(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw lictrt::BundleError("no bundle directory at " + dir);
  return lictrt::Bundle::load(dir);
}

lictrt::OnnxRuntimeOptions ort_options(const Args& a) {
  lictrt::OnnxRuntimeOptions o;
  o.threads = to_int(a, "--threads", 0);
  if (a.opt.count("--onnxruntime")) o.library = a.opt.at("--onnxruntime");
  if (a.opt.count("--ort-custom-ops")) o.custom_ops_library = a.opt.at("--ort-custom-ops");
  return o;
}

// --groups: comma-separated integers as Python's int() reads them (spaces around, a sign, '_' between digits);
// empty items are skipped, so "" is an empty list (the decoder then says there are no groups to decode).
std::vector<int32_t> parse_groups(const std::string& text) {
  std::vector<int32_t> out;
  const Usage bad("--groups takes comma-separated group labels, got '" + text + "'");
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string v = text.substr(start, end - start);
    start = end + 1;
    const size_t a = v.find_first_not_of(" \t\n\r\f\v"), b = v.find_last_not_of(" \t\n\r\f\v");
    if (a == std::string::npos) continue;
    v = v.substr(a, b - a + 1);
    size_t k = v[0] == '+' || v[0] == '-' ? 1 : 0;
    int64_t n = 0;
    bool digit = false;
    for (; k < v.size(); ++k) {
      if (v[k] == '_' && digit && k + 1 < v.size() && v[k + 1] >= '0' && v[k + 1] <= '9') continue;
      if (v[k] < '0' || v[k] > '9') throw bad;
      n = n * 10 + (v[k] - '0');
      digit = true;
      if (n > int64_t(1) << 31) throw bad;
    }
    if (!digit) throw bad;
    n = v[0] == '-' ? -n : n;
    if (n < INT32_MIN || n > INT32_MAX) throw bad;
    out.push_back(int32_t(n));
  }
  return out;
}

char fmt_buf[512];
template <class... T>
std::string fmt(const char* f, T... v) {
  std::snprintf(fmt_buf, sizeof fmt_buf, f, v...);
  return fmt_buf;
}

int encode(const Args& a) {
  const std::string out = a.opt.at("-o");
  check_distinct(out, a.pos[1]);
  lictrt::EncoderOptions eo;
  eo.mode = choice(a, "--mode", {"fast", "compat"}, "fast") == "fast" ? lictrt::Mode::Fast : lictrt::Mode::Compat;
  eo.substreams = to_int(a, "--substreams", 1);
  if (eo.substreams < 1) throw CodecError("substreams must be >= 1, got " + std::to_string(eo.substreams));
  eo.width = to_int(a, "--width", 0);
  eo.context_order = choice(a, "--context-order", {"wavefront", "raster"}, "");
  if (a.opt.count("--level")) eo.level = a.opt.at("--level");
  lictrt::Bundle bundle = load_bundle(a.pos[0]);
  std::string mask_path;
  if (a.opt.count("--mask")) {  // a label PNG, or a folder of them named like the image
    std::error_code ec;
    mask_path = a.opt.at("--mask");
    if (fs::is_directory(mask_path, ec)) {
      mask_path = (fs::path(mask_path) / fs::path(a.pos[1]).stem()).string() + ".png";
      if (!fs::is_regular_file(mask_path, ec)) throw Usage("no mask " + mask_path + " for " + a.pos[1]);
    }
  }
  lictrt_cli::Image im = lictrt_cli::read_png(a.pos[1]);
  lictrt::GroupMask mask;
  if (!mask_path.empty()) {
    if (!lictrt::plan_has_groups(bundle.plan_kind()))
      throw CodecError("plan '" + bundle.plan_kind() + "' codes no groups: it takes no mask");
    mask = lictrt_cli::read_label_png(mask_path);
  }
  lictrt::OnnxRuntimeRunner runner(bundle, ort_options(a));
  lictrt::Encoder enc(bundle, runner, eo);
  lictrt::EncodeResult r = enc.encode(im.rgb.data(), im.height, im.width, mask_path.empty() ? nullptr : &mask);
  write_atomic(out, r.data);
  std::printf(
      "%s", fmt("%s: %zu bytes, %.4f bpp, %.1f ms (network %.1f ms, entropy %.1f ms)%s\n", out.c_str(), r.data.size(),
                8.0 * double(r.data.size()) / (double(im.height) * im.width), 1e3 * r.stats.total_s,
                1e3 * r.stats.network_s, 1e3 * r.stats.entropy_s, r.level.empty() ? "" : (", level " + r.level).c_str())
                .c_str());
  return 0;
}

int decode(const Args& a) {
  std::vector<int32_t> groups;
  if (a.opt.count("--groups")) groups = parse_groups(a.opt.at("--groups"));
  const std::string out = a.opt.at("-o");
  check_distinct(out, a.pos[1]);
  lictrt::Bundle bundle = load_bundle(a.pos[0]);
  std::vector<uint8_t> data = read_bytes(a.pos[1]);
  lictrt::OnnxRuntimeRunner runner(bundle, ort_options(a));
  lictrt::Decoder dec(bundle, runner);
  lictrt::DecodeResult r = dec.decode(data, a.opt.count("--groups") ? &groups : nullptr);
  lictrt_cli::write_png(out, lictrt_cli::Image{r.height, r.width, std::move(r.rgb)});
  std::printf("%s", fmt("%s: %ux%u, %.1f ms (network %.1f ms, entropy %.1f ms)%s\n", out.c_str(), r.width, r.height,
                        1e3 * r.stats.total_s, 1e3 * r.stats.network_s, 1e3 * r.stats.entropy_s,
                        r.level.empty() ? "" : (", level " + r.level).c_str())
                        .c_str());
  return 0;
}

int info(const Args& a) {
  const std::string& path = a.pos[0];
  std::error_code ec;
  if (!fs::exists(path, ec)) throw FileNotFound("No such file or directory: " + path);
  std::vector<uint8_t> data = read_bytes(path);
  lictrt::ContainerHeader h;
  std::vector<lictrt::ContainerStream> streams;
  lictrt::unpack_container(data.data(), data.size(), h, streams);
  size_t payload = 0;
  for (auto& s : streams) payload += s.payload.size();
  const double px = double(h.height) * h.width;
  std::string hash;
  for (uint8_t b : h.model_hash) hash += fmt("%02x", b);
  std::string level;  // as python -m runtime info: the indexes, or the values with --bundle
  if (!h.level.empty()) {
    for (uint8_t v : h.level) level += (level.empty() ? "" : ", ") + std::to_string(v);
    level = "  level indexes [" + level + "]";
    if (a.opt.count("--bundle")) {
      const std::optional<lictrt::Levels> levels = lictrt::levels_of(load_bundle(a.opt.at("--bundle")).plan());
      if (levels) level = "  level " + lictrt::Levels::format(levels->from_bytes(h.level));
    }
  }
  std::string text = fmt("%s: lictrt container %u.%u, %zu bytes, image %ux%u (pad %u), %.4f bpp (%.4f bpp payload)\n",
                         path.c_str(), h.major, h.minor, data.size(), h.width, h.height, h.pad_multiple,
                         8 * double(data.size()) / px, 8 * double(payload) / px);
  text += "  model " + hash + "\n";
  text += "  plan " + lictrt::code_name(lictrt::kPlanKinds, h.plan_kind) +
          fmt(", width index %u, coder ", h.width_index) + lictrt::code_name(lictrt::kCoderModes, h.coder_mode) +
          ", parse path " + lictrt::code_name(lictrt::kParsePaths, h.parse_path) + fmt(", flags 0x%04x", h.flags) +
          level + "\n";
  text += fmt("  %-16s%10s%10s%10s  symbols crc\n", "stream", "symbols", "bytes", "bits/sym");
  for (auto& s : streams) {
    const double bps = s.symbols ? 8.0 * double(s.payload.size()) / s.symbols : 0.0;
    text += fmt("  %-16s%10u%10zu%10.3f  %08x\n", s.kind.c_str(), s.symbols, s.payload.size(), bps, s.symbols_crc);
  }
  // grouped plans: bytes per group from the streams g<label>.<name> (runtime/codec.py group_bytes)
  std::map<long long, size_t> groups;
  std::string shared;
  for (auto& s : streams) {
    const size_t dot = s.kind.find('.');
    if (dot != std::string::npos && dot > 1 && s.kind[0] == 'g' && s.kind.find_first_not_of("0123456789", 1) == dot)
      groups[std::stoll(s.kind.substr(1, dot - 1))] += s.payload.size();
    if (s.kind == "mask" || s.kind == "z")
      shared += fmt("%s%s %zu", shared.empty() ? "" : ", ", s.kind.c_str(), s.payload.size());
  }
  if (!groups.empty()) {
    text += fmt("  %zu groups (bytes; shared: ", groups.size()) + shared + ")\n";
    for (auto& g : groups) text += fmt("  group %-10lld%10zu\n", g.first, g.second);
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  Args a;
  try {
    a = parse(argc, argv);
  } catch (const Usage& e) {
    std::fputs(kUsage, stderr);
    if (*e.what()) std::fprintf(stderr, "lictrt: error: %s\n", e.what());
    return *e.what() ? 2 : 0;
  }
  const char* kind = "Error";
  std::string msg;
  try {
    if (a.cmd == "encode") return encode(a);
    if (a.cmd == "decode") return decode(a);
    return info(a);
  } catch (const Usage& e) {
    std::fputs(kUsage, stderr);
    std::fprintf(stderr, "lictrt: error: %s\n", e.what());
    return 2;
  } catch (const lictrt::BitstreamError& e) {
    kind = "BitstreamError", msg = e.what();
  } catch (const lictrt::BundleError& e) {
    kind = "BundleError", msg = e.what();
  } catch (const lictrt::OnnxRuntimeError& e) {
    kind = "BackendError", msg = e.what();
  } catch (const lictrt_cli::ImageError& e) {
    kind = "ImageError", msg = e.what();
  } catch (const FileNotFound& e) {
    kind = "FileNotFoundError", msg = e.what();
  } catch (const OutputError& e) {
    kind = "OutputError", msg = e.what();
  } catch (const lictrt::GroupError& e) {
    kind = "GroupError", msg = e.what();
  } catch (const lictrt::InvalidArgument& e) {
    kind = "CodecError", msg = e.what();
  } catch (const CodecError& e) {
    kind = "CodecError", msg = e.what();
  } catch (const std::exception& e) {
    kind = "Error", msg = e.what();
  }
  if (a.verbose) std::fprintf(stderr, "lictrt: %s: %s\n", kind, msg.c_str());
  std::fprintf(stderr, "error: %s\n", first_line(msg).c_str());
  return 1;
}
