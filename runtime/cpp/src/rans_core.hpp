// Private rANS core: table layout, the two rANS flavours (compat rans64, fast rans32) and the decode primitives shared
// by the one-shot, incremental and AVX2 decoders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lictrt/coder.hpp"

namespace lictrt {
namespace detail {

constexpr int kCompatPrecision = 16;
constexpr int kFastPrecision = 14;  // fast mode, unless a table has more than 2^14 bins (then 16)
constexpr int kBypassBits = 4;
constexpr uint32_t kBypassMax = (1u << kBypassBits) - 1;
constexpr int kMaxNibbles = 9;        // zig-zag overflow of an int32 symbol minus an int32 offset: < 2^34
constexpr int kHintEntriesLog2 = 12;  // decode hint: 4096 entries per table (8 KiB) at any precision
constexpr int kFastCoarseLog2 = 10;   // AVX2 fast hint: 1024 buckets of 16 slots for coarse tables (see TableData)
constexpr uint32_t kEscapeFlag = 1u << 15;  // set in the info word of escape bins at precisions < 16
constexpr int kMaxLanes = 32;

/// Compat flavour: CompressAI's rans64, state in [2^31, 2^63), 32-bit renormalization words.
struct Rans64 {
  using State = uint64_t;
  using Word = uint32_t;
  static constexpr int kWordBits = 32;
  static constexpr State kL = State{1} << 31;
};

/// Fast flavour: state in [2^16, 2^32), 16-bit words, so a decode step reads at most one word.
struct Rans32 {
  using State = uint32_t;
  using Word = uint16_t;
  static constexpr int kWordBits = 16;
  static constexpr State kL = State{1} << 16;
};

/// Per-table scalars, packed for one cache line touch per symbol.
struct Row {
  int32_t offset;
  int32_t max_value;  // escape bin = cdf_length - 2
  uint32_t base;      // row start in the info arrays (t * stride)
  uint32_t pad;
};

/// Coding parameters at one precision: info = start | escape flag << 15 (precisions < 16) | (freq - 1) << 16
/// per (table, bin), and a slot->bin lookup table with one entry per 2^(prec-12) slots (hint: the bin holding
/// the bucket's first slot), from which decoding steps forward while the slot lies past the bin's end.
struct Coding {
  int prec = 16;
  uint32_t start_mask = 0xFFFFu;  // 0x7FFF below precision 16 (bit 15 is the escape flag)
  std::vector<uint32_t> info;
  std::vector<uint16_t> hint;  // T << 12 entries
  int hint_shift() const { return prec - kHintEntriesLog2; }
};

struct TableData {
  int T = 0, stride = 0;
  std::vector<Row> rows;
  std::vector<int32_t> offsets;  // rows[t].offset, contiguous for SIMD gathers
  /// The AVX2 fast decoder's hint (precision 14 only): one 64-bit entry per (table t, bucket), holding the
  /// c14.info word of the bin s containing the bucket's first slot (low half) and its output symbol
  /// uint32(s + offset[t]) (high half), so one gather yields both; lanes whose slot lies past that bin step
  /// forward through c14.info. The leading run of tables t < coarse_tables whose 16-slot buckets rarely span
  /// two bins gets 2^10 buckets (8 KiB, at entry t << 10); the others get 2^12 buckets of 4 slots, at entry
  /// (coarse_tables << 10) + ((t - coarse_tables) << 12). Small per-table footprints keep the hot part of the
  /// hint in L2 when a stream uses many narrow tables.
  std::vector<uint64_t> fast_hint;
  int coarse_tables = 0;
  Coding c16;  // compat (and fast when a table is too wide for 14 bits)
  Coding c14;  // fast (empty when fast_prec == 16)
  int fast_prec = kFastPrecision;
  const Coding& coding(Mode m) const { return (m == Mode::Fast && fast_prec == kFastPrecision) ? c14 : c16; }
};

inline uint32_t load_le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

inline void store_le32(uint8_t* p, uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  std::memcpy(p, &v, 4);
}

inline uint16_t load_le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

inline void store_le16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

template <class Word>
inline Word load_word(const uint8_t* p) {
  if constexpr (sizeof(Word) == 4)
    return load_le32(p);
  else
    return load_le16(p);
}

inline uint32_t bin_end(uint32_t inf, uint32_t start_mask) { return (inf & start_mask) + (inf >> 16) + 1; }

/// Encode one (start, freq) at P bits; writes at most one word backwards through `w` (branch-free: w[-1] is
/// always stored, w moves only when the word is kept; the caller guarantees w[-1] is inside the buffer).
template <class Tr, int P>
inline void enc_put(typename Tr::State& x, typename Tr::Word*& w, uint32_t start, uint32_t freq) {
  using State = typename Tr::State;
  const uint64_t x_max = (static_cast<uint64_t>(Tr::kL >> P) << Tr::kWordBits) * freq;  // <= 2^63
  const bool emit = x >= x_max;
  w[-1] = static_cast<typename Tr::Word>(x);
  w -= emit;
  x = emit ? static_cast<State>(x >> Tr::kWordBits) : x;
  const State q = x / freq;  // x < 2^32 (fast) or 2^63 (compat)
  x = static_cast<State>((q << P) + (x - q * freq) + start);
}

/// Bounded forward word reader over a byte range. In a valid stream the state is back in [L, L << word bits)
/// after every renormalization; a state still below L can only come from corrupt data (`bad_state`).
template <class Tr>
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool overrun = false;
  bool bad_state = false;
  inline void renorm(typename Tr::State& x) {
    constexpr ptrdiff_t kBytes = sizeof(typename Tr::Word);
    if (x < Tr::kL) {
      if (end - p >= kBytes) {
        x = (x << Tr::kWordBits) | load_word<typename Tr::Word>(p);
        p += kBytes;
        bad_state |= x < Tr::kL;
      } else {
        overrun = true;
        x = Tr::kL;  // keep going deterministically; the caller reports the overrun
      }
    }
  }
};

template <class Tr>
inline uint32_t dec_bits(typename Tr::State& x, Reader<Tr>& r) {
  const uint32_t v = static_cast<uint32_t>(x) & kBypassMax;
  x >>= kBypassBits;
  r.renorm(x);
  return v;
}

/// The bin whose cumulative range [start, start + freq) contains `slot`; sets `inf` to its info word.
/// The row's last bin ends at 2^prec > slot, so the forward step stays inside the row.
inline uint32_t find_bin(const Coding& c, uint32_t t, uint32_t base, uint32_t slot, uint32_t& inf) {
  uint32_t s = c.hint[(static_cast<size_t>(t) << kHintEntriesLog2) | (slot >> c.hint_shift())];
  inf = c.info[base + s];
  while (slot >= bin_end(inf, c.start_mask)) inf = c.info[base + ++s];
  return s;
}

/// Escape tail of a symbol that decoded to the escape bin: the nibble count (4-bit chunks, 15 = "more"),
/// then the zig-zagged overflow's nibbles LSB first. Returns false (with `err`) on an impossible escape.
template <class Tr>
__attribute__((noinline)) bool decode_escape(typename Tr::State& x, Reader<Tr>& r, const Row& rw, int32_t& out,
                                             const char*& err) {
  uint32_t val = dec_bits(x, r);
  uint32_t nb = val;
  while (val == kBypassMax && nb <= kMaxNibbles) {
    val = dec_bits(x, r);
    nb += val;
  }
  if (nb > kMaxNibbles) {
    err = "escape longer than any encoder writes";
    return false;
  }
  uint64_t raw = 0;
  for (uint32_t j = 0; j < nb; ++j) raw |= static_cast<uint64_t>(dec_bits(x, r)) << (kBypassBits * j);
  const int64_t v = (raw & 1) ? -static_cast<int64_t>(raw >> 1) - 1 : static_cast<int64_t>(raw >> 1) + rw.max_value;
  const int64_t sym = v + rw.offset;
  if (sym < INT32_MIN || sym > INT32_MAX) {
    err = "escaped value outside the int32 range";
    return false;
  }
  out = static_cast<int32_t>(sym);
  return true;
}

/// Rare path of the hot decoder, by value so the lane state never leaves registers in the common path.
template <class Tr>
struct EscapeOut {
  typename Tr::State x;
  const uint8_t* p;
  int32_t value;
  bool ok, overrun, bad_state;
  const char* err;
};

template <class Tr>
__attribute__((noinline, cold)) EscapeOut<Tr> hot_escape(typename Tr::State x, const uint8_t* p, const uint8_t* end,
                                                         const Row* rw) {
  Reader<Tr> r{p, end};
  EscapeOut<Tr> o{};
  o.err = nullptr;
  o.ok = decode_escape<Tr>(x, r, *rw, o.value, o.err);
  o.x = x;
  o.p = r.p;
  o.overrun = r.overrun;
  o.bad_state = r.bad_state;
  return o;
}

/// Words one symbol can read at most: one renormalization plus an escape's bypass nibbles (count + 9 values).
constexpr ptrdiff_t kMaxWordsPerSymbol = 1 + 1 + kMaxNibbles;

/// Read-only view of one precision's decode tables, hoisted out of the hot loop.
struct HotTables {
  const Row* __restrict rows;
  const uint16_t* __restrict hint;
  const uint32_t* __restrict info;
};

/// Decode one symbol of table t on lane state x. Checked = bounded word reads (the last blocks of a stream);
/// unchecked reads are only used while at least kMaxWordsPerSymbol words per remaining block symbol are left,
/// so they never pass `end`. A decode step leaves x' >= x >> P >= 1, so one renormalization word brings a
/// state back to [L, L << word bits) (>= 2^(63-P) for rans64). Returns false on an invalid escape (err set).
template <class Tr, int P, bool Checked>
__attribute__((always_inline)) inline bool hot_step(const HotTables& tb, typename Tr::State& x, const uint8_t*& p,
                                                    const uint8_t* end, uint32_t t, int32_t* out, bool& overrun,
                                                    bool& bad_state, const char*& err) {
  using State = typename Tr::State;
  using Word = typename Tr::Word;
  constexpr ptrdiff_t kBytes = sizeof(Word);
  constexpr int SH = P - kHintEntriesLog2;
  constexpr uint32_t mask = (1u << P) - 1;
  constexpr uint32_t start_mask = P < 16 ? 0x7FFFu : 0xFFFFu;
  const Row* rw = tb.rows + t;
  const uint32_t slot = static_cast<uint32_t>(x) & mask;
  uint32_t s = tb.hint[(t << kHintEntriesLog2) | (slot >> SH)];
  const uint32_t* inf_row = tb.info + rw->base;
  uint32_t inf = inf_row[s];
  while (__builtin_expect(slot >= bin_end(inf, start_mask), 0)) inf = inf_row[++s];
  x = static_cast<State>((inf >> 16) + 1) * (x >> P) + (slot - (inf & start_mask));
  const bool need = x < Tr::kL;
  if constexpr (Checked) {
    static const uint8_t kZeroWord[4] = {0, 0, 0, 0};
    const bool have = end - p >= kBytes;
    const State y = (x << Tr::kWordBits) | load_word<Word>(have ? p : kZeroWord);
    overrun |= need & !have;
    x = need ? y : x;
    p += (need & have) ? kBytes : 0;
  } else {
    const State y = (x << Tr::kWordBits) | load_word<Word>(p);
    x = need ? y : x;
    p += need ? kBytes : 0;
  }
  if (__builtin_expect(static_cast<int32_t>(s) == rw->max_value, 0)) {
    const EscapeOut<Tr> e = hot_escape<Tr>(x, p, end, rw);
    x = e.x;
    p = e.p;
    overrun |= e.overrun;
    bad_state |= e.bad_state;
    *out = e.value;
    if (!e.ok) {
      err = e.err;
      return false;
    }
    return true;
  }
  *out = static_cast<int32_t>(s + static_cast<uint32_t>(rw->offset));  // wraps (never UB) on absurd offsets
  return true;
}

/// One block of N fast-mode symbols (lane j = symbol j) with unchecked reads, in scalar order. Returns the
/// lane that failed (err set) or -1. Shared by the scalar block loop and the AVX2 decoder's escape groups.
template <int N, int P>
inline int scalar_block(const HotTables& tb, uint32_t* x, const uint8_t*& p, const uint8_t* end, const int32_t* idx,
                        int32_t* out, const char*& err) {
  bool overrun = false, bad_state = false;  // impossible with unchecked reads and rans32 states
#pragma GCC unroll 32
  for (int j = 0; j < N; ++j)
    if (__builtin_expect(!hot_step<Rans32, P, false>(tb, x[j], p, end, static_cast<uint32_t>(idx[j]), out + j, overrun,
                                                     bad_state, err),
                         0))
      return j;
  return -1;
}

/// Bytes a whole block of N symbols may read at most (unchecked decoding runs while this much is left).
template <int N>
constexpr ptrdiff_t block_bytes() {
  return static_cast<ptrdiff_t>(sizeof(Rans32::Word)) * kMaxWordsPerSymbol * N;
}

/// The AVX2 fast decoder (coder_avx2.cpp): whole blocks of N = 8, 16 or 32 lanes at precision 14 while
/// i + N <= n and at least block_bytes<N>() bytes remain. Returns the next symbol position; on an invalid
/// escape returns the failing position with err set. Only call when simd_enabled().
size_t decode_blocks_avx2(int N, const TableData& d, uint32_t* x, const uint8_t*& p, const uint8_t* end,
                          const int32_t* idx, size_t i, size_t n, int32_t* out, const char*& err);

/// True when the AVX2 decoder is compiled in, the CPU has AVX2 and neither LICTRT_CODER_SCALAR=1 (read once)
/// nor force_scalar(true) asks for the portable path.
bool simd_enabled();
/// Test hook: force the portable scalar decoder (true) or restore the default dispatch (false).
void force_scalar(bool on);

}  // namespace detail
}  // namespace lictrt
