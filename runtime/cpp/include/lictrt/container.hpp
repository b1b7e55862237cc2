// lictrt bitstream container (.lic): see docs/FORMATS.md. Little-endian throughout.
//
//   "LICT" u8 major u8 minor u16 flags u8[32] model_hash u32 height u32 width u16 pad_multiple
//   u8 coder_mode u8 parse_path u8 plan_kind u8 width_index u16 stream_count
//   stream_count x { char[16] kind (NUL-padded ASCII) u32 symbols u32 bytes u32 payload_crc u32 symbols_crc }
//   [minor >= 1, flags bit 1 set: u8 n (1..16) then n bytes: the operating level, one u8 choice per level axis]
//   u32 CRC-32 of every header byte before it, then the payloads in order (nothing after them).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lictrt/errors.hpp"
#include "lictrt/format.hpp"

namespace lictrt {

constexpr uint8_t kContainerMajor = 1;
constexpr uint8_t kContainerMinor = 1;
constexpr size_t kContainerFixedBytes = 56;   // header before the stream table
constexpr size_t kContainerStreamBytes = 32;  // one stream-table entry
constexpr size_t kKindBytes = 16;

struct ContainerHeader {
  uint8_t major = kContainerMajor;
  uint8_t minor = kContainerMinor;
  uint16_t flags = 0;
  std::array<uint8_t, 32> model_hash{};
  uint32_t height = 0, width = 0;
  uint16_t pad_multiple = 0;
  uint8_t coder_mode = 1, parse_path = 0, plan_kind = 0, width_index = 0;
  /// Operating level of a scalable codec (e.g. a width per module and a context coder), one u8 choice per
  /// level axis of the bundle; empty: none. pack sets or clears kFlagLevel from it.
  std::vector<uint8_t> level;
};

struct ContainerStream {
  std::string kind;  ///< at most 16 printable ASCII characters
  uint32_t symbols = 0;
  uint32_t symbols_crc = 0;
  std::vector<uint8_t> payload;
};

/// Serialize; computes the payload CRCs and the header CRC. Throws InvalidArgument on a bad kind name,
/// more than 65535 streams, a payload over 4 GiB or a level of more than kMaxLevelBytes choices.
std::vector<uint8_t> pack_container(const ContainerHeader& header, const std::vector<ContainerStream>& streams);

/// Parse and verify (magic, major version, header CRC, sizes, payload CRCs). Throws BitstreamError.
void unpack_container(const uint8_t* data, size_t len, ContainerHeader& header, std::vector<ContainerStream>& streams);

}  // namespace lictrt
