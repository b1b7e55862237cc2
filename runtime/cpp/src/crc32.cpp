// CRC-32 (IEEE): slicing-by-8 over tables generated at first use, and on x86-64 CPUs with PCLMULQDQ (chosen at
// run time) carry-less-multiply folding for long buffers (the symbol CRCs of whole latents).
//
// Folding keeps four 128-bit accumulators; each step replaces an accumulator A by A.lo * K1 ^ A.hi * K2 ^ the
// block 64 bytes further on, where K1 = x^(512+32) mod P and K2 = x^(512-32) mod P in the reflected bit order
// (shifted left by one, as PCLMULQDQ's product of reflected operands is one bit short): the message keeps its
// CRC. The four then fold into one with the 128-bit distance constants (x^(128+32), x^(128-32)), remaining
// 16-byte blocks fold in the same way, and the last accumulator's 16 bytes and the tail go through the table
// path from state 0 (no Barrett reduction needed). Intel, "Fast CRC Computation for Generic Polynomials Using
// PCLMULQDQ Instruction" (2009) derives the constants.
#include "lictrt/crc32.hpp"

#include <array>

#include "crc32_detail.hpp"
#include "rans_core.hpp"

#if !defined(LICTRT_NO_SIMD) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LICTRT_HAVE_CLMUL_PATH 1
#include <immintrin.h>
#else
#define LICTRT_HAVE_CLMUL_PATH 0
#endif

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

// The state update of slicing-by-8 (no pre- or post-inversion).
uint32_t update(uint32_t crc, const uint8_t* p, size_t len) noexcept {
  const auto& t = tables().t;
  while (len >= 8) {
    const uint32_t a = detail::load_le32(p) ^ crc, b = detail::load_le32(p + 4);
    crc = t[7][a & 0xFF] ^ t[6][(a >> 8) & 0xFF] ^ t[5][(a >> 16) & 0xFF] ^ t[4][a >> 24] ^ t[3][b & 0xFF] ^
          t[2][(b >> 8) & 0xFF] ^ t[1][(b >> 16) & 0xFF] ^ t[0][b >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
  return crc;
}

#if LICTRT_HAVE_CLMUL_PATH

__attribute__((target("pclmul,sse2"))) inline __m128i fold(__m128i a, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x00), _mm_clmulepi64_si128(a, k, 0x11)), next);
}

/// len >= 64: folds whole 16-byte blocks, then the table path for the last accumulator and the tail.
__attribute__((target("pclmul,sse2"))) uint32_t update_clmul(uint32_t crc, const uint8_t* p, size_t len) noexcept {
  const __m128i k512 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);  // (hi: K2, lo: K1) for 4 x 128 bits
  const __m128i k128 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);  // for 128 bits
  auto load = [](const uint8_t* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
  __m128i a0 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(int(crc))), a1 = load(p + 16), a2 = load(p + 32),
          a3 = load(p + 48);
  p += 64;
  len -= 64;
  for (; len >= 64; p += 64, len -= 64) {
    a0 = fold(a0, k512, load(p));
    a1 = fold(a1, k512, load(p + 16));
    a2 = fold(a2, k512, load(p + 32));
    a3 = fold(a3, k512, load(p + 48));
  }
  __m128i a = fold(fold(fold(a0, k128, a1), k128, a2), k128, a3);
  for (; len >= 16; p += 16, len -= 16) a = fold(a, k128, load(p));
  alignas(16) uint8_t last[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(last), a);
  return update(update(0, last, 16), p, len);
}

bool cpu_has_clmul() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
}

#endif

}  // namespace

namespace detail {

uint32_t crc32_portable(const void* data, size_t len, uint32_t crc) noexcept {
  return ~update(~crc, static_cast<const uint8_t*>(data), len);
}

bool crc32_clmul_enabled() noexcept {
#if LICTRT_HAVE_CLMUL_PATH
  static const bool available = cpu_has_clmul();
  return available;
#else
  return false;
#endif
}

}  // namespace detail

uint32_t crc32(const void* data, size_t len, uint32_t crc) noexcept {
#if LICTRT_HAVE_CLMUL_PATH
  if (len >= 256 && detail::crc32_clmul_enabled()) return ~update_clmul(~crc, static_cast<const uint8_t*>(data), len);
#endif
  return detail::crc32_portable(data, len, crc);
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
