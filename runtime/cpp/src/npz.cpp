// .npy and stored-zip .npz (np.savez) readers, bounds-checked, and a small .npy writer.
#include "lictrt/npz.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

namespace lictrt {

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
  if (h[b] == '\'')
    e = h.find('\'', b + 1) + 1;
  else if (h[b] == '(')
    e = h.find(')', b) + 1;
  else
    e = h.find_first_of(",}", b);
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

void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape, const void* data) {
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
    if (le(d + p, 4) == 0x06054b50) {
      eocd = p;
      break;
    }
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
    if (method != 0)
      throw BundleError(what + ": entry " + name + " is compressed (use np.savez, not savez_compressed)");
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

}  // namespace lictrt
