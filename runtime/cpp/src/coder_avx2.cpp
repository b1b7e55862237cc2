// AVX2 fast-mode block decoder: 8 rans32 lanes per 256-bit vector (1, 2 or 4 vectors per block), selected at
// run time (no global -mavx2: the library runs on any x86-64 and builds on other ISAs with the scalar path).
//
// Per vector of 8 lanes: slot = x & (2^14 - 1); gather the slot's 64-bit fast-hint entry (TableData::fast_hint:
// info word start | escape << 15 | (freq - 1) << 16 of the bucket's first bin, and that bin's output symbol);
// step forward through the info table while some lane's slot lies past its bin (rare); x' = freq * (x >> 14) +
// slot - start; lanes with x' < 2^16 take the next 16-bit words in lane order (the k-th such lane gets word k:
// one 16-byte load, widened and permuted by a table indexed by the lane mask). A vector holding an escape bin
// runs its 8 lanes on the scalar path instead (same words, same order), so both paths read identical streams
// and fail identically.
#include <atomic>
#include <cstdlib>

#include "rans_core.hpp"

// Compiled in on x86 with GCC or Clang (define LICTRT_NO_SIMD to leave it out); elsewhere only the scalar path.
#if !defined(LICTRT_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define LICTRT_HAVE_AVX2_PATH 1
#include <immintrin.h>
#else
#define LICTRT_HAVE_AVX2_PATH 0
#endif

namespace lictrt {
namespace detail {
namespace {

std::atomic<bool> g_force_scalar{false};

}  // namespace

void force_scalar(bool on) { g_force_scalar.store(on, std::memory_order_relaxed); }

#if LICTRT_HAVE_AVX2_PATH

namespace {

/// For each 8-bit mask of lanes that renormalize: lane j takes word (number of set bits below j).
struct PermTable {
  alignas(32) uint32_t idx[256][8];
  constexpr PermTable() : idx() {
    for (int m = 0; m < 256; ++m) {
      uint32_t k = 0;
      for (int j = 0; j < 8; ++j) idx[m][j] = (m >> j) & 1 ? k++ : 0;
    }
  }
};
constexpr PermTable kPerm{};

/// LICTRT_CODER_SCALAR set to anything but "" or "0".
bool env_scalar() {
  const char* v = std::getenv("LICTRT_CODER_SCALAR");
  return v && v[0] && !(v[0] == '0' && !v[1]);
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
}

struct Lanes8 {
  __m256i t, slot, sym, inf;
};

/// Per-block constants of the lookup.
struct LookupConsts {
  const long long* fast_hint;
  const int* info;
  const int* offsets;
  __m256i stride, coarse_tables, fine_bias;
};

/// Table lookups for one vector of lanes: the info word and symbol of the slot's hint bin (one 64-bit entry per
/// lane, two 4-lane gathers), stepping forward through the info table where the hint falls short.
__attribute__((target("avx2,popcnt"), always_inline)) inline void lookup(Lanes8& v, __m256i x, const int32_t* idx,
                                                                         const LookupConsts& k) {
  const __m256i slot_mask = _mm256_set1_epi32((1 << kFastPrecision) - 1);
  const __m256i start_mask = _mm256_set1_epi32(0x7FFF);
  v.t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx));
  v.slot = _mm256_and_si256(x, slot_mask);
  // Entry: t << 10 | slot >> 4 for coarse tables, (t << 12) - coarse_tables * 3 * 2^10 + (slot >> 2) otherwise.
  const __m256i coarse = _mm256_cmpgt_epi32(k.coarse_tables, v.t);
  const __m256i row = _mm256_blendv_epi8(_mm256_sub_epi32(_mm256_slli_epi32(v.t, kHintEntriesLog2), k.fine_bias),
                                         _mm256_slli_epi32(v.t, kFastCoarseLog2), coarse);
  const __m256i shift = _mm256_blendv_epi8(_mm256_set1_epi32(kFastPrecision - kHintEntriesLog2),
                                           _mm256_set1_epi32(kFastPrecision - kFastCoarseLog2), coarse);
  const __m256i h = _mm256_add_epi32(row, _mm256_srlv_epi32(v.slot, shift));
  // Gather lanes 0,1,4,5 into a and 2,3,6,7 into b, so that one in-lane shuffle restores the lane order.
  const __m256i hp = _mm256_permute4x64_epi64(h, _MM_SHUFFLE(3, 1, 2, 0));
  const __m256 a = _mm256_castsi256_ps(_mm256_i32gather_epi64(k.fast_hint, _mm256_castsi256_si128(hp), 8));
  const __m256 b = _mm256_castsi256_ps(_mm256_i32gather_epi64(k.fast_hint, _mm256_extracti128_si256(hp, 1), 8));
  v.inf = _mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
  v.sym = _mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  // slot >= start + freq  <=>  slot > start + (freq - 1); all values < 2^15, so a signed compare is exact.
  __m256i past =
      _mm256_cmpgt_epi32(v.slot, _mm256_add_epi32(_mm256_and_si256(v.inf, start_mask), _mm256_srli_epi32(v.inf, 16)));
  if (__builtin_expect(_mm256_testz_si256(past, past), 1)) return;
  // Info index of the hint bin: t * stride + (symbol - offset[t]) (mod 2^32, like the symbol).
  __m256i at = _mm256_add_epi32(_mm256_mullo_epi32(v.t, k.stride),
                                _mm256_sub_epi32(v.sym, _mm256_i32gather_epi32(k.offsets, v.t, 4)));
  do {
    at = _mm256_sub_epi32(at, past);  // +1 where past (all ones)
    v.sym = _mm256_sub_epi32(v.sym, past);
    v.inf = _mm256_mask_i32gather_epi32(v.inf, k.info, at, past, 4);
    past = _mm256_and_si256(past, _mm256_cmpgt_epi32(v.slot, _mm256_add_epi32(_mm256_and_si256(v.inf, start_mask),
                                                                              _mm256_srli_epi32(v.inf, 16))));
  } while (!_mm256_testz_si256(past, past));
}

/// State update and renormalization of one vector (words taken from p in lane order); writes the symbols.
__attribute__((target("avx2,popcnt"), always_inline)) inline __m256i advance(const Lanes8& v, __m256i x,
                                                                             const uint8_t*& p, int32_t* out) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i start_mask = _mm256_set1_epi32(0x7FFF);
  const __m256i freq = _mm256_add_epi32(_mm256_srli_epi32(v.inf, 16), one);
  const __m256i start = _mm256_and_si256(v.inf, start_mask);
  const __m256i xn =
      _mm256_add_epi32(_mm256_mullo_epi32(freq, _mm256_srli_epi32(x, kFastPrecision)), _mm256_sub_epi32(v.slot, start));
  const __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(xn, 16), _mm256_setzero_si256());
  const unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(need)));
  const __m256i words = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i w =
      _mm256_permutevar8x32_epi32(words, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPerm.idx[m])));
  p += 2 * __builtin_popcount(m);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), v.sym);
  return _mm256_blendv_epi8(xn, _mm256_or_si256(_mm256_slli_epi32(xn, 16), w), need);
}

/// Scalar decoding of 8 lanes whose symbols include an escape (kept out of line so the hot loop stays small).
__attribute__((noinline, cold)) int escape_group(const HotTables& tb, uint32_t* xs, const uint8_t*& p,
                                                 const uint8_t* end, const int32_t* idx, int32_t* out,
                                                 const char*& err) {
  return scalar_block<8, kFastPrecision>(tb, xs, p, end, idx, out, err);
}

/// Blocks of N = 8V lanes. Each vector (8 consecutive lanes, so a contiguous run of the scalar order) runs on
/// its own dependency chain; only the word pointer links them.
template <int V>
__attribute__((target("avx2,popcnt"))) size_t blocks(const TableData& d, uint32_t* st, const uint8_t*& p_io,
                                                     const uint8_t* end, const int32_t* idx, size_t i, size_t n,
                                                     int32_t* out, const char*& err) {
  constexpr int N = 8 * V;
  const Coding& c = d.c14;
  const HotTables tb{d.rows.data(), c.hint.data(), c.info.data()};
  const LookupConsts k{reinterpret_cast<const long long*>(d.fast_hint.data()),
                       reinterpret_cast<const int*>(c.info.data()),
                       d.offsets.data(),
                       _mm256_set1_epi32(d.stride),
                       _mm256_set1_epi32(d.coarse_tables),
                       _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(d.coarse_tables) *  // mod 2^32
                                                          ((1u << kHintEntriesLog2) - (1u << kFastCoarseLog2))))};
  const __m256i esc = _mm256_set1_epi32(static_cast<int>(kEscapeFlag));
  const uint8_t* p = p_io;
  __m256i x[V];
  for (int v = 0; v < V; ++v) x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(st + 8 * v));
  for (; i + N <= n && end - p >= block_bytes<N>(); i += N) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      Lanes8 l;
      lookup(l, x[v], idx + i + 8 * v, k);
      if (__builtin_expect(_mm256_testz_si256(l.inf, esc), 1)) {
        x[v] = advance(l, x[v], p, out + i + 8 * v);
        continue;
      }
      // An escape among these 8 lanes: decode them in scalar order (same words, same errors).
      alignas(32) uint32_t xs[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(xs), x[v]);
      const int j = escape_group(tb, xs, p, end, idx + i + 8 * v, out + i + 8 * v, err);
      if (j >= 0) {
        p_io = p;
        return i + 8 * v + j;
      }
      x[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(xs));
    }
  }
  for (int v = 0; v < V; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(st + 8 * v), x[v]);
  p_io = p;
  return i;
}

}  // namespace

bool simd_enabled() {
  static const bool available = cpu_has_avx2() && !env_scalar();
  return available && !g_force_scalar.load(std::memory_order_relaxed);
}

size_t decode_blocks_avx2(int N, const TableData& d, uint32_t* x, const uint8_t*& p, const uint8_t* end,
                          const int32_t* idx, size_t i, size_t n, int32_t* out, const char*& err) {
  switch (N) {
    case 8:
      return blocks<1>(d, x, p, end, idx, i, n, out, err);
    case 16:
      return blocks<2>(d, x, p, end, idx, i, n, out, err);
    default:
      return blocks<4>(d, x, p, end, idx, i, n, out, err);
  }
}

#else  // no AVX2 path on this target

bool simd_enabled() { return false; }

size_t decode_blocks_avx2(int, const TableData&, uint32_t*, const uint8_t*&, const uint8_t*, const int32_t*, size_t i,
                          size_t, int32_t*, const char*&) {
  return i;
}

#endif

}  // namespace detail
}  // namespace lictrt
