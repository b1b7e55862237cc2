// Bundle reader: a small JSON parser, a stored-zip (.npz) reader and a .npy parser, all bounds-checked.
#include "lictrt/bundle.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

namespace lictrt {

// ------------------------------------------------------------------------------------------------- JSON
struct JsonParser {
  const std::string& s;
  size_t i = 0;
  int depth = 0;

  [[noreturn]] void fail(const char* what) const {
    throw BundleError(std::string("json: ") + what + " at offset " + std::to_string(i));
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (s.compare(i, n, w) == 0) {
      i += n;
      return true;
    }
    return false;
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (i + 4 > s.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string string() {
    if (i >= s.size() || s[i] != '"') fail("expected string");
    ++i;
    std::string out;
    for (;;) {
      if (i >= s.size()) fail("unterminated string");
      char c = s[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) fail("unterminated escape");
      char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= s.size() && s[i] == '\\' && s[i + 1] == 'u') {
            i += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  Json value() {
    if (++depth > 64) fail("nesting deeper than 64");
    ws();
    if (i >= s.size()) fail("unexpected end");
    Json v;
    char c = s[i];
    if (c == '{') {
      v.type_ = Json::Type::Object;
      ++i;
      ws();
      if (i < s.size() && s[i] == '}') {
        ++i;
      } else {
        for (;;) {
          ws();
          std::string k = string();
          ws();
          if (i >= s.size() || s[i] != ':') fail("expected ':'");
          ++i;
          v.o_.emplace_back(std::move(k), value());
          ws();
          if (i < s.size() && s[i] == ',') { ++i; continue; }
          if (i < s.size() && s[i] == '}') { ++i; break; }
          fail("expected ',' or '}'");
        }
      }
    } else if (c == '[') {
      v.type_ = Json::Type::Array;
      ++i;
      ws();
      if (i < s.size() && s[i] == ']') {
        ++i;
      } else {
        for (;;) {
          v.a_.push_back(value());
          ws();
          if (i < s.size() && s[i] == ',') { ++i; continue; }
          if (i < s.size() && s[i] == ']') { ++i; break; }
          fail("expected ',' or ']'");
        }
      }
    } else if (c == '"') {
      v.type_ = Json::Type::String;
      v.s_ = string();
    } else if (lit("true")) {
      v.type_ = Json::Type::Bool;
      v.b_ = true;
    } else if (lit("false")) {
      v.type_ = Json::Type::Bool;
    } else if (lit("null")) {
    } else if (lit("NaN")) {  // Python's json.dumps writes these for non-finite floats
      v.type_ = Json::Type::Number;
      v.n_ = NAN;
    } else if (lit("Infinity")) {
      v.type_ = Json::Type::Number;
      v.n_ = INFINITY;
    } else if (lit("-Infinity")) {
      v.type_ = Json::Type::Number;
      v.n_ = -INFINITY;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t b = i;
      if (s[i] == '-') ++i;
      auto digits = [&] {
        size_t d = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == d) fail("bad number");
      };
      digits();
      if (i < s.size() && s[i] == '.') { ++i; digits(); }
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
        digits();
      }
      v.type_ = Json::Type::Number;
      v.n_ = std::strtod(s.substr(b, i - b).c_str(), nullptr);
    } else {
      fail("unexpected character");
    }
    --depth;
    return v;
  }
};

Json Json::parse(const std::string& text) {
  JsonParser p{text};
  Json v = p.value();
  p.ws();
  if (p.i != text.size()) p.fail("trailing characters");
  return v;
}

static const Json& null_json() {
  static const Json n;
  return n;
}

bool Json::has(const std::string& key) const noexcept {
  for (auto& kv : o_)
    if (kv.first == key) return true;
  return false;
}
const Json& Json::get(const std::string& key) const noexcept {
  for (auto& kv : o_)
    if (kv.first == key) return kv.second;
  return null_json();
}
const Json& Json::at(const std::string& key) const {
  if (type_ != Type::Object) throw BundleError("json: looking up '" + key + "' in a non-object");
  for (auto& kv : o_)
    if (kv.first == key) return kv.second;
  throw BundleError("json: missing key '" + key + "'");
}
const Json& Json::at(size_t i) const {
  if (type_ != Type::Array || i >= a_.size()) throw BundleError("json: array index " + std::to_string(i) + " out of range");
  return a_[i];
}
size_t Json::size() const noexcept { return type_ == Type::Array ? a_.size() : type_ == Type::Object ? o_.size() : 0; }
const std::string& Json::str() const {
  if (type_ != Type::String) throw BundleError("json: expected a string");
  return s_;
}
double Json::num() const {
  if (type_ != Type::Number) throw BundleError("json: expected a number");
  return n_;
}
int64_t Json::integer() const {
  double d = num();
  if (!(d == std::floor(d)) || std::fabs(d) > 9.0e15) throw BundleError("json: expected an integer");
  return int64_t(d);
}
bool Json::boolean() const {
  if (type_ != Type::Bool) throw BundleError("json: expected true or false");
  return b_;
}
const std::vector<std::pair<std::string, Json>>& Json::items() const {
  if (type_ != Type::Object) throw BundleError("json: expected an object");
  return o_;
}

// ------------------------------------------------------------------------------------------------- files
std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw BundleError("cannot read " + path);
  std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw BundleError("cannot read " + path);
  return d;
}

// ------------------------------------------------------------------------------------------------- .npy
size_t NpyArray::count() const noexcept {
  size_t n = 1;
  for (auto d : shape) n *= size_t(d);
  return n;
}
size_t NpyArray::item_size() const noexcept {
  if (dtype.size() < 3) return 0;
  return size_t(std::atoi(dtype.c_str() + 2));
}
std::vector<int32_t> NpyArray::as_int32() const {
  if (dtype != "<i4") throw BundleError("array has dtype " + dtype + ", expected int32 (<i4)");
  std::vector<int32_t> v(count());
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}
std::vector<float> NpyArray::as_float32() const {
  if (dtype != "<f4") throw BundleError("array has dtype " + dtype + ", expected float32 (<f4)");
  std::vector<float> v(count());
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

static std::string npy_field(const std::string& h, const std::string& key, const std::string& what) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) throw BundleError(what + ": .npy header lacks '" + key + "'");
  size_t c = h.find(':', k);
  if (c == std::string::npos) throw BundleError(what + ": bad .npy header");
  size_t b = h.find_first_not_of(' ', c + 1);
  if (b == std::string::npos) throw BundleError(what + ": bad .npy header");
  size_t e;
  if (h[b] == '\'') e = h.find('\'', b + 1) + 1;
  else if (h[b] == '(') e = h.find(')', b) + 1;
  else e = h.find_first_of(",}", b);
  if (e == std::string::npos || e == 0 || e <= b) throw BundleError(what + ": bad .npy header");
  return h.substr(b, e - b);
}

NpyArray parse_npy(const uint8_t* data, size_t len, const std::string& what) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (len < 10 || std::memcmp(data, magic, 6) != 0) throw BundleError(what + ": not a .npy array");
  uint8_t major = data[6];
  size_t hlen, off;
  if (major == 1) {
    hlen = size_t(data[8]) | size_t(data[9]) << 8;
    off = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) throw BundleError(what + ": truncated .npy header");
    hlen = size_t(data[8]) | size_t(data[9]) << 8 | size_t(data[10]) << 16 | size_t(data[11]) << 24;
    off = 12;
  } else {
    throw BundleError(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (hlen > len - off) throw BundleError(what + ": truncated .npy header");
  std::string h(reinterpret_cast<const char*>(data + off), hlen);
  NpyArray a;
  std::string descr = npy_field(h, "descr", what);
  if (descr.size() < 3 || descr.front() != '\'') throw BundleError(what + ": bad dtype " + descr);
  a.dtype = descr.substr(1, descr.size() - 2);
  static const char* ok[] = {"<i4", "<f4", "|u1", "<i8", "<f8"};
  if (std::find_if(std::begin(ok), std::end(ok), [&](const char* d) { return a.dtype == d; }) == std::end(ok))
    throw BundleError(what + ": unsupported dtype " + a.dtype);
  if (npy_field(h, "fortran_order", what) != "False") throw BundleError(what + ": Fortran-order arrays unsupported");
  std::string shp = npy_field(h, "shape", what);
  if (shp.front() != '(') throw BundleError(what + ": bad shape " + shp);
  size_t p = 1;
  size_t count = 1;
  while (p < shp.size()) {
    while (p < shp.size() && (shp[p] == ' ' || shp[p] == ',' || shp[p] == ')')) ++p;
    if (p >= shp.size()) break;
    if (shp[p] < '0' || shp[p] > '9') throw BundleError(what + ": bad shape " + shp);
    int64_t d = 0;
    while (p < shp.size() && shp[p] >= '0' && shp[p] <= '9') {
      d = d * 10 + (shp[p++] - '0');
      if (d > (int64_t(1) << 40)) throw BundleError(what + ": shape too large");
    }
    a.shape.push_back(d);
    count *= size_t(d);
    if (count > (size_t(1) << 40)) throw BundleError(what + ": shape too large");
  }
  size_t need = count * a.item_size();
  size_t body = off + hlen;
  if (len - body != need)
    throw BundleError(what + ": .npy holds " + std::to_string(len - body) + " data bytes, shape needs " +
                      std::to_string(need));
  a.bytes.assign(data + body, data + len);
  return a;
}

NpyArray read_npy(const std::string& path) {
  auto d = read_file(path);
  return parse_npy(d.data(), d.size(), path);
}

void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape,
               const void* data) {
  size_t isz = dtype == "|u1" ? 1 : (dtype == "<f4" || dtype == "<i4") ? 4 : 0;
  if (!isz) throw BundleError("write_npy: unsupported dtype " + dtype);
  std::string s = "(";
  size_t n = 1;
  for (auto d : shape) {
    s += std::to_string(d) + (shape.size() == 1 ? ",)" : ", ");
    n *= size_t(d);
  }
  if (shape.size() != 1) {
    if (shape.size() > 1) s.resize(s.size() - 2);
    s += ")";
  }
  std::string h = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': " + s + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  const char pre[8] = {char(0x93), 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(pre, 8);
  const char hl[2] = {char(h.size() & 0xFF), char(h.size() >> 8)};
  f.write(hl, 2);
  f.write(h.data(), std::streamsize(h.size()));
  f.write(static_cast<const char*>(data), std::streamsize(n * isz));
  if (!f) throw BundleError("cannot write " + path);
}

// ------------------------------------------------------------------------------------------------- .npz (zip)
static uint32_t le(const uint8_t* p, int n) {
  uint32_t v = 0;
  for (int k = n - 1; k >= 0; --k) v = v << 8 | p[k];
  return v;
}
static uint64_t le64(const uint8_t* p) { return uint64_t(le(p, 4)) | uint64_t(le(p + 4, 4)) << 32; }

std::map<std::string, NpyArray> parse_npz(const uint8_t* d, size_t len, const std::string& what) {
  // End of central directory: the last "PK\5\6" within the final 22 + 65535 bytes.
  if (len < 22) throw BundleError(what + ": not a zip (.npz) file");
  size_t eocd = std::string::npos;
  size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
  for (size_t p = len - 22 + 1; p-- > lo;)
    if (le(d + p, 4) == 0x06054b50) { eocd = p; break; }
  if (eocd == std::string::npos) throw BundleError(what + ": not a zip (.npz) file");
  uint64_t entries = le(d + eocd + 10, 2);
  uint64_t cd_size = le(d + eocd + 12, 4), cd_off = le(d + eocd + 16, 4);
  if (cd_off == 0xFFFFFFFFu || entries == 0xFFFF) {  // zip64 end record via its locator
    if (eocd < 20 || le(d + eocd - 20, 4) != 0x07064b50) throw BundleError(what + ": bad zip64 locator");
    uint64_t z = le64(d + eocd - 20 + 8);
    if (z > len || len - z < 56 || le(d + z, 4) != 0x06064b50) throw BundleError(what + ": bad zip64 end record");
    entries = le64(d + z + 32);
    cd_size = le64(d + z + 40);
    cd_off = le64(d + z + 48);
  }
  if (cd_off > len || cd_size > len - cd_off) throw BundleError(what + ": central directory out of bounds");
  std::map<std::string, NpyArray> out;
  size_t p = size_t(cd_off), end = size_t(cd_off + cd_size);
  for (uint64_t e = 0; e < entries; ++e) {
    if (end - p < 46 || le(d + p, 4) != 0x02014b50) throw BundleError(what + ": bad central directory entry");
    uint32_t method = le(d + p + 10, 2);
    uint64_t csize = le(d + p + 20, 4), usize = le(d + p + 24, 4);
    size_t nlen = le(d + p + 28, 2), xlen = le(d + p + 30, 2), clen = le(d + p + 32, 2);
    uint64_t loff = le(d + p + 42, 4);
    if (end - p - 46 < nlen + xlen + clen) throw BundleError(what + ": central directory entry out of bounds");
    std::string name(reinterpret_cast<const char*>(d + p + 46), nlen);
    // zip64 extra field: the 0xFFFFFFFF fields follow in order usize, csize, offset.
    const uint8_t* x = d + p + 46 + nlen;
    for (size_t q = 0; q + 4 <= xlen;) {
      uint32_t id = le(x + q, 2), sz = le(x + q + 2, 2);
      if (q + 4 + sz > xlen) break;
      if (id == 1) {
        size_t r = q + 4;
        auto take = [&](uint64_t& f) {
          if (f == 0xFFFFFFFFu) {
            if (r + 8 > q + 4 + sz) throw BundleError(what + ": bad zip64 extra field");
            f = le64(x + r);
            r += 8;
          }
        };
        take(usize);
        take(csize);
        take(loff);
      }
      q += 4 + sz;
    }
    p += 46 + nlen + xlen + clen;
    if (method != 0) throw BundleError(what + ": entry " + name + " is compressed (use np.savez, not savez_compressed)");
    if (csize != usize) throw BundleError(what + ": entry " + name + " has inconsistent sizes");
    if (loff > len || len - loff < 30 || le(d + loff, 4) != 0x04034b50)
      throw BundleError(what + ": entry " + name + " has a bad local header");
    uint64_t data = loff + 30 + le(d + loff + 26, 2) + le(d + loff + 28, 2);
    if (data > len || csize > len - data) throw BundleError(what + ": entry " + name + " is out of bounds");
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    std::string key = name.substr(0, name.size() - 4);
    out[key] = parse_npy(d + data, size_t(csize), what + ":" + key);
  }
  return out;
}

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  auto d = read_file(path);
  return parse_npz(d.data(), d.size(), path);
}

// ------------------------------------------------------------------------------------------------- bundle
int32_t EntropyModel::scale_index(float scale) const noexcept {
  if (std::isnan(scale)) return int32_t(scale_table.size()) - 1;
  float s = std::max(scale, scale_bound);
  // number of entries of scale_table[:-1] strictly below s (the table is increasing)
  auto it = std::lower_bound(scale_table.begin(), scale_table.end() - 1, s);
  return int32_t(it - scale_table.begin());
}

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
      m.scale_table = g.second["scale_table"]->as_float32();
      if (int(m.scale_table.size()) != T) throw BundleError("tables '" + name + "': scale_table must have T entries");
      for (size_t k = 1; k < m.scale_table.size(); ++k)
        if (!(m.scale_table[k] > m.scale_table[k - 1]))
          throw BundleError("tables '" + name + "': scale_table must be increasing");
      auto b = need("scale_bound").as_float32();
      if (b.size() != 1) throw BundleError("tables '" + name + "': scale_bound must be a scalar");
      m.scale_bound = b[0];
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

static const char* kRequired[][5] = {
    {"factorized", "analysis", "synthesis", nullptr, nullptr},
    {"hyperprior", "analysis", "hyper_synthesis", "synthesis", nullptr},
    {"mean_scale", "analysis", "hyper_synthesis", "synthesis", nullptr},
    {"spatial_context", "analysis", "hyper_synthesis", "context_step", "synthesis"},
    {"channel_slices", "analysis", "hyper_synthesis", "synthesis", nullptr},
};

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
    if (!m.is_object() || !m.get("format").is_string() || m.get("format").str() != "lictrt-bundle")
      throw BundleError("manifest format is not 'lictrt-bundle'");
    if (!m.get("format_version").is_number() || m.get("format_version").integer() != 1)
      throw BundleError("unsupported bundle format_version (this reader reads 1)");
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
      for (size_t k = 0; k < widths.size(); ++k) b.prefixes_.push_back("w" + std::to_string(widths.at(k).integer()) + ".");
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
  for (auto& r : kRequired) {
    if (b.plan_kind_ != r[0]) continue;
    known = true;
    for (auto& prefix : b.prefixes_)
      for (int k = 1; k < 5 && r[k]; ++k)
        if (!b.graphs_.count(prefix + r[k]))
          throw BundleError("plan '" + b.plan_kind_ + "' needs graph '" + prefix + r[k] + "'");
  }
  if (!known) throw BundleError("unknown plan kind '" + b.plan_kind_ + "'");
  b.entropy_ = entropy_models(parse_npz(npz, npz_len, join(dir, "tables.npz")));
  return b;
}

Bundle Bundle::load(const std::string& dir) {
  std::vector<uint8_t> m;
  try {
    m = read_file(join(dir, "manifest.json"));
  } catch (const BundleError&) {
    throw BundleError("no bundle at " + dir + " (manifest.json missing or unreadable)");
  }
  auto t = read_file(join(dir, "tables.npz"));
  return from_memory(std::string(m.begin(), m.end()), t.data(), t.size(), dir);
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
