// CRC-32 (IEEE), slicing-by-8 over tables generated at first use.
#include "lictrt/crc32.hpp"

#include <array>

#include "rans_core.hpp"

namespace lictrt {
namespace {

struct CrcTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
      t[0][i] = c;
    }
    for (int s = 1; s < 8; ++s)
      for (uint32_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};

const CrcTables& tables() {
  static const CrcTables instance;
  return instance;
}

}  // namespace

uint32_t crc32(const void* data, size_t len, uint32_t crc) noexcept {
  const auto& t = tables().t;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  while (len >= 8) {
    const uint32_t a = detail::load_le32(p) ^ crc, b = detail::load_le32(p + 4);
    crc = t[7][a & 0xFF] ^ t[6][(a >> 8) & 0xFF] ^ t[5][(a >> 16) & 0xFF] ^ t[4][a >> 24] ^ t[3][b & 0xFF] ^
          t[2][(b >> 8) & 0xFF] ^ t[1][(b >> 16) & 0xFF] ^ t[0][b >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
  return ~crc;
}

uint32_t symbols_crc32(const int32_t* symbols, size_t n) noexcept {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  uint32_t crc = 0;
  for (size_t i = 0; i < n; ++i) {
    uint8_t b[4];
    detail::store_le32(b, static_cast<uint32_t>(symbols[i]));
    crc = crc32(b, 4, crc);
  }
  return crc;
#else
  return crc32(symbols, n * sizeof(int32_t), 0);
#endif
}

}  // namespace lictrt
