// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), identical to zlib.crc32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lictrt {

/// CRC-32 of `len` bytes, continuing from `crc` (0 to start).
uint32_t crc32(const void* data, size_t len, uint32_t crc = 0) noexcept;

/// CRC-32 of int32 symbols serialized little-endian (the container's symbol CRC).
uint32_t symbols_crc32(const int32_t* symbols, size_t n) noexcept;

}  // namespace lictrt
