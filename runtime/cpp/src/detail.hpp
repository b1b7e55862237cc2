// Private: table layout and the rans64 primitives shared by the one-shot and incremental coders.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "lictrt/coder.hpp"

namespace lictrt {
namespace detail {

constexpr uint64_t kRansL = 1ull << 31;  // lower bound of the normalized state interval [L, 2^63)
constexpr int kCompatPrecision = 16;
constexpr int kBypassBits = 4;
constexpr uint32_t kBypassMax = (1u << kBypassBits) - 1;
constexpr int kMaxNibbles = 9;  // zig-zag overflow of an int32 symbol minus an int32 offset: < 2^34
constexpr int kHintEntriesLog2 = 12;  // decode hint: 4096 entries per table (8 KiB) at any precision

/// Per-table scalars, packed for one cache line touch per symbol.
struct Row {
  int32_t offset;
  int32_t max_value;  // escape bin = cdf_length - 2
  uint32_t base;      // row start in the info arrays (t * stride)
  uint32_t pad;
};

/// Coding parameters at one precision: info = start | (freq - 1) << 16 per (table, bin), and a slot->bin
/// lookup table with one entry per 2^(prec-12) slots (hint: the bin holding the bucket's first slot), from
/// which decoding steps forward while the slot lies past the bin's end (rarely more than once).
struct Coding {
  int prec = 16;
  std::vector<uint32_t> info;
  std::vector<uint16_t> hint;
  int hint_shift() const { return prec - kHintEntriesLog2; }
};

inline uint32_t bin_end(uint32_t inf) { return (inf & 0xFFFFu) + (inf >> 16) + 1; }

struct TableData {
  int T = 0, stride = 0;
  std::vector<Row> rows;
  Coding c16;   // compat (and fast when a table is too wide for 14 bits)
  Coding c14;   // fast (empty when fast_prec == 16)
  int fast_prec = 14;
  const Coding& coding(Mode m) const { return (m == Mode::Fast && fast_prec == 14) ? c14 : c16; }
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

/// Encode one (start, freq) at `prec` bits; writes at most one word backwards through `w`.
inline void enc_put(uint64_t& x, uint32_t*& w, uint32_t start, uint32_t freq, int prec) {
  const uint64_t x_max = ((kRansL >> prec) << 32) * freq;
  if (x >= x_max) {
    *--w = static_cast<uint32_t>(x);
    x >>= 32;
  }
  x = ((x / freq) << prec) + (x % freq) + start;
}

/// Bounded forward word reader over a byte range. In a valid stream the state is back in [L, 2^63) after
/// every renormalization; a state still below L can only come from corrupt data (flagged as `bad_state`).
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool overrun = false;
  bool bad_state = false;
  inline void renorm(uint64_t& x) {
    if (x < kRansL) {
      if (end - p >= 4) {
        x = (x << 32) | load_le32(p);
        p += 4;
        bad_state |= x < kRansL;
      } else {
        overrun = true;
        x = kRansL;  // keep going deterministically; the caller reports the overrun
      }
    }
  }
};

inline uint32_t dec_bits(uint64_t& x, Reader& r) {
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
  while (slot >= bin_end(inf)) inf = c.info[base + ++s];
  return s;
}

}  // namespace detail
}  // namespace lictrt
