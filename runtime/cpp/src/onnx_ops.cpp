// lictrt_op_versions: a walk over the protobuf wire format of onnx.proto, just deep enough to reach the
// attributes of the main graph's nodes: ModelProto.graph (7) -> GraphProto.node (1) -> NodeProto.domain (7) and
// NodeProto.attribute (5) -> AttributeProto.name (1) and .s (4). Everything else is skipped by its length.
#include "lictrt/onnx_ops.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string_view>

namespace lictrt {
namespace {

/// One length-delimited protobuf message; next() yields its fields in order, stopping at the end or at the first
/// malformed byte (ok() false then).
class Fields {
 public:
  explicit Fields(std::string_view m) : p_(m.data()), end_(m.data() + m.size()) {}

  bool next(uint32_t& field, std::string_view& bytes) {
    while (p_ < end_) {
      uint64_t key;
      if (!varint(key)) return fail();
      field = uint32_t(key >> 3);
      switch (key & 7) {
        case 0: {  // varint
          uint64_t v;
          if (!varint(v)) return fail();
          break;
        }
        case 1:  // 64-bit
          if (end_ - p_ < 8) return fail();
          p_ += 8;
          break;
        case 2: {  // length-delimited
          uint64_t n;
          if (!varint(n) || n > uint64_t(end_ - p_)) return fail();
          bytes = std::string_view(p_, size_t(n));
          p_ += n;
          return true;
        }
        case 5:  // 32-bit
          if (end_ - p_ < 4) return fail();
          p_ += 4;
          break;
        default:  // groups (3, 4) and unknown types: not in ONNX files
          return fail();
      }
    }
    return false;
  }
  bool ok() const { return ok_; }

 private:
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const uint8_t b = uint8_t(*p_++);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool fail() {
    ok_ = false;
    p_ = end_;
    return false;
  }

  const char* p_;
  const char* end_;
  bool ok_ = true;
};

/// The length-delimited field `want` of message m (the last one, as protobuf merges), or nothing.
bool field_of(std::string_view m, uint32_t want, std::string_view& out) {
  Fields f(m);
  uint32_t k;
  std::string_view v;
  bool found = false;
  while (f.next(k, v))
    if (k == want) out = v, found = true;
  return found && f.ok();
}

}  // namespace

std::vector<std::string> lictrt_op_versions(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  const std::string model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string_view graph;
  if (!field_of(model, 7, graph)) return {};
  std::vector<std::string> found;
  Fields nodes(graph);
  uint32_t k;
  std::string_view node;
  while (nodes.next(k, node)) {
    if (k != 1) continue;
    std::string_view domain;
    if (!field_of(node, 7, domain) || domain != "lictrt") continue;
    Fields attrs(node);
    uint32_t a;
    std::string_view attr;
    while (attrs.next(a, attr)) {
      std::string_view name, value;
      if (a == 5 && field_of(attr, 1, name) && name == "plugin_version" && field_of(attr, 4, value))
        found.emplace_back(value);
    }
  }
  if (!nodes.ok()) return {};
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

}  // namespace lictrt
