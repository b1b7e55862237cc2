// Container pack/unpack with bounded parsing (see lictrt/container.hpp and docs/FORMATS.md).
#include "lictrt/container.hpp"

#include <cstring>

#include "rans_core.hpp"
#include "lictrt/crc32.hpp"

namespace lictrt {
namespace {

using detail::load_le32;
using detail::store_le32;

constexpr uint8_t kMagic[4] = {'L', 'I', 'C', 'T'};

uint16_t load_le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void store_le16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

bool kind_ok(const std::string& kind) {
  if (kind.empty() || kind.size() > kKindBytes) return false;
  for (unsigned char ch : kind)
    if (ch < 0x20 || ch > 0x7E) return false;
  return true;
}

}  // namespace

std::vector<uint8_t> pack_container(const ContainerHeader& h, const std::vector<ContainerStream>& streams) {
  if (streams.size() > 0xFFFF) throw InvalidArgument("container: more than 65535 streams");
  if (h.level.size() > kMaxLevelBytes) throw InvalidArgument("container: level of more than 16 choices");
  const size_t level_bytes = h.level.empty() ? 0 : 1 + h.level.size();
  const size_t head = kContainerFixedBytes + kContainerStreamBytes * streams.size() + level_bytes + 4;
  size_t total = head;
  for (const auto& s : streams) {
    if (!kind_ok(s.kind))
      throw InvalidArgument("container: stream kind '" + s.kind + "' must be 1-16 printable ASCII characters");
    if (s.payload.size() > UINT32_MAX) throw InvalidArgument("container: stream '" + s.kind + "' payload over 4 GiB");
    total += s.payload.size();
  }
  std::vector<uint8_t> out(total, 0);
  uint8_t* p = out.data();
  std::memcpy(p, kMagic, 4);
  p[4] = h.major;
  p[5] = h.minor;
  store_le16(p + 6, static_cast<uint16_t>((h.flags & ~kFlagLevel) | (h.level.empty() ? 0 : kFlagLevel)));
  std::memcpy(p + 8, h.model_hash.data(), 32);
  store_le32(p + 40, h.height);
  store_le32(p + 44, h.width);
  store_le16(p + 48, h.pad_multiple);
  p[50] = h.coder_mode;
  p[51] = h.parse_path;
  p[52] = h.plan_kind;
  p[53] = h.width_index;
  store_le16(p + 54, static_cast<uint16_t>(streams.size()));
  uint8_t* e = p + kContainerFixedBytes;
  size_t at = head;
  for (const auto& s : streams) {
    std::memcpy(e, s.kind.data(), s.kind.size());
    store_le32(e + 16, s.symbols);
    store_le32(e + 20, static_cast<uint32_t>(s.payload.size()));
    store_le32(e + 24, crc32(s.payload.data(), s.payload.size()));
    store_le32(e + 28, s.symbols_crc);
    e += kContainerStreamBytes;
    if (!s.payload.empty()) std::memcpy(p + at, s.payload.data(), s.payload.size());
    at += s.payload.size();
  }
  if (level_bytes) {
    *e++ = static_cast<uint8_t>(h.level.size());
    std::memcpy(e, h.level.data(), h.level.size());
    e += h.level.size();
  }
  store_le32(e, crc32(p, head - 4));
  return out;
}

void unpack_container(const uint8_t* data, size_t len, ContainerHeader& h, std::vector<ContainerStream>& streams) {
  streams.clear();
  if (len < kContainerFixedBytes + 4) throw BitstreamError("container: truncated header");
  if (std::memcmp(data, kMagic, 4) != 0) throw BitstreamError("container: bad magic (not a lictrt .lic bitstream)");
  h.major = data[4];
  h.minor = data[5];
  if (h.major != kContainerMajor)
    throw BitstreamError("container: unsupported major version " + std::to_string(h.major) +
                         " (this reader: " + std::to_string(kContainerMajor) + ")");
  const size_t count = load_le16(data + 54);
  const size_t table_end = kContainerFixedBytes + kContainerStreamBytes * count;
  size_t level_n = 0;
  if (load_le16(data + 6) & kFlagLevel) {
    if (len < table_end + 1) throw BitstreamError("container: truncated level block");
    level_n = data[table_end];
    if (level_n < 1 || level_n > kMaxLevelBytes)
      throw BitstreamError("container: level block of " + std::to_string(level_n) + " choices (1-16 allowed)");
  }
  const size_t head = table_end + (level_n ? 1 + level_n : 0) + 4;
  if (len < head) throw BitstreamError("container: truncated stream table");
  if (crc32(data, head - 4) != load_le32(data + head - 4)) throw BitstreamError("container: header CRC mismatch");
  h.flags = load_le16(data + 6);
  std::memcpy(h.model_hash.data(), data + 8, 32);
  h.height = load_le32(data + 40);
  h.width = load_le32(data + 44);
  if (h.height == 0 || h.width == 0)
    throw BitstreamError("container: image size " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                         " in header (width and height must be at least 1)");
  h.pad_multiple = load_le16(data + 48);
  h.coder_mode = data[50];
  h.parse_path = data[51];
  h.plan_kind = data[52];
  h.width_index = data[53];
  h.level.assign(data + table_end + (level_n ? 1 : 0), data + table_end + (level_n ? 1 + level_n : 0));
  // Check names and sizes before allocating anything proportional to them.
  uint64_t total = head;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* e = data + kContainerFixedBytes + kContainerStreamBytes * i;
    size_t n = 0;
    while (n < kKindBytes && e[n]) ++n;
    for (size_t j = n; j < kKindBytes; ++j)
      if (e[j]) throw BitstreamError("container: stream " + std::to_string(i) + " kind is not NUL-padded");
    if (!kind_ok(std::string(reinterpret_cast<const char*>(e), n)))
      throw BitstreamError("container: stream " + std::to_string(i) + " has an invalid kind name");
    total += load_le32(e + 20);
  }
  if (total != len)
    throw BitstreamError("container: sizes do not add up (header says " + std::to_string(total) + " bytes, got " +
                         std::to_string(len) + ")");
  streams.resize(count);
  size_t at = head;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* e = data + kContainerFixedBytes + kContainerStreamBytes * i;
    ContainerStream& s = streams[i];
    size_t n = 0;
    while (n < kKindBytes && e[n]) ++n;
    s.kind.assign(reinterpret_cast<const char*>(e), n);
    s.symbols = load_le32(e + 16);
    const uint32_t bytes = load_le32(e + 20);
    s.symbols_crc = load_le32(e + 28);
    if (crc32(data + at, bytes) != load_le32(e + 24))
      throw BitstreamError("container: stream '" + s.kind + "' payload CRC mismatch");
    s.payload.assign(data + at, data + at + bytes);
    at += bytes;
  }
}

}  // namespace lictrt
