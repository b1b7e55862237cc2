// Table validation and the derived per-precision coding data (built once per Tables object).
#include <algorithm>
#include <string>

#include "rans_core.hpp"

namespace lictrt {
namespace detail {
namespace {

/// Fill info and the decode hint for one row whose cumulative starts at `prec` bits are cum[0..len-1].
/// Below precision 16 the escape bin (the last one) carries kEscapeFlag, so the AVX2 decoder spots escapes
/// from the info word alone.
void fill_row(Coding& c, int t, uint32_t base, const std::vector<uint32_t>& cum) {
  const int bins = static_cast<int>(cum.size()) - 1;
  for (int s = 0; s < bins; ++s) c.info[base + s] = cum[s] | ((cum[s + 1] - cum[s] - 1) << 16);
  if (c.prec < 16) c.info[base + bins - 1] |= kEscapeFlag;
  const uint32_t entries = 1u << kHintEntriesLog2;
  uint16_t* hint = c.hint.data() + static_cast<size_t>(t) * entries;
  int s = 0;
  for (uint32_t k = 0; k < entries; ++k) {
    const uint32_t slot = k << c.hint_shift();
    while (cum[s + 1] <= slot) ++s;
    hint[k] = static_cast<uint16_t>(s);
  }
}

void allocate(Coding& c, int prec, int T, int stride) {
  c.prec = prec;
  c.start_mask = prec < 16 ? 0x7FFFu : 0xFFFFu;
  c.info.assign(static_cast<size_t>(T) * stride, 0);
  c.hint.assign(static_cast<size_t>(T) << kHintEntriesLog2, 0);
}

/// TableData::fast_hint, from the 14-bit hint and info tables (c14.hint[t << 12 | j] is the bin of slot 4j). A
/// table is coarse-eligible when at most 1/16 of its slots lie past the first bin of their 16-slot bucket (each
/// such slot costs the decoder a forward step); the coarse tables are the leading run of eligible ones, so the
/// decoder tells them apart with one compare (scale tables grow with t).
void fill_fast_hint(TableData& d) {
  constexpr int kSlots = 1 << kFastPrecision;
  constexpr int kCoarseSlots = kSlots >> kFastCoarseLog2;
  const Coding& c = d.c14;
  auto hint_bin = [&](int t, uint32_t slot) {
    return c.hint[(static_cast<size_t>(t) << kHintEntriesLog2) | (slot >> (kFastPrecision - kHintEntriesLog2))];
  };
  d.coarse_tables = 0;
  for (int t = 0; t < d.T; ++t, ++d.coarse_tables) {
    int past = 0;
    for (uint32_t slot = 0; slot < kSlots; slot += kCoarseSlots) {
      const uint32_t end = bin_end(c.info[d.rows[t].base + hint_bin(t, slot)], c.start_mask);
      past += static_cast<int>(slot + kCoarseSlots - std::min(end, slot + kCoarseSlots));
    }
    if (past > kSlots / 16) break;
  }
  const size_t coarse = static_cast<size_t>(d.coarse_tables);
  d.fast_hint.assign((coarse << kFastCoarseLog2) + ((d.T - coarse) << kHintEntriesLog2), 0);
  for (int t = 0; t < d.T; ++t) {
    const bool is_coarse = static_cast<size_t>(t) < coarse;
    const int log2 = is_coarse ? kFastCoarseLog2 : kHintEntriesLog2;
    uint64_t* e = d.fast_hint.data() + (is_coarse ? static_cast<size_t>(t) << kFastCoarseLog2
                                                  : (coarse << kFastCoarseLog2) + ((t - coarse) << kHintEntriesLog2));
    for (uint32_t k = 0; k < (1u << log2); ++k) {
      const uint32_t s = hint_bin(t, k << (kFastPrecision - log2));
      const uint32_t sym = s + static_cast<uint32_t>(d.rows[t].offset);  // wraps like the scalar decoder's output
      e[k] = c.info[d.rows[t].base + s] | static_cast<uint64_t>(sym) << 32;
    }
  }
}

}  // namespace

/// Requantize a 16-bit CDF to 14 bits: round each boundary, then force strictly increasing boundaries in a
/// forward pass (>= previous + 1) and a backward pass (<= next - 1). Exact integer arithmetic, so encoder and
/// decoder derive identical tables everywhere; every bin keeps a frequency >= 1 (needs bins <= 2^14).
std::vector<uint32_t> requantize(const int32_t* cdf16, int len, int prec) {
  const int shift = 16 - prec;
  const uint32_t total = 1u << prec;
  std::vector<uint32_t> c(len);
  c[0] = 0;
  for (int i = 1; i < len - 1; ++i) {
    const uint32_t r = (static_cast<uint32_t>(cdf16[i]) + (1u << (shift - 1))) >> shift;
    c[i] = std::max(r, c[i - 1] + 1);
  }
  c[len - 1] = total;
  for (int i = len - 2; i >= 1; --i) c[i] = std::min(c[i], c[i + 1] - 1);
  return c;
}

}  // namespace detail

Tables::Tables(const int32_t* cdf, int T, int Lmax, const int32_t* cdf_length, const int32_t* offset) {
  using namespace detail;
  if (T < 1) throw InvalidArgument("tables: need at least one CDF row");
  if (Lmax < 2 || Lmax > 65537) throw InvalidArgument("tables: CDF row width must be in [2, 65537]");
  auto d = std::make_shared<TableData>();
  d->T = T;
  d->stride = Lmax;
  d->rows.resize(T);
  int max_bins = 0;
  for (int t = 0; t < T; ++t) {
    const int len = cdf_length[t];
    const int32_t* row = cdf + static_cast<size_t>(t) * Lmax;
    const std::string where = "tables: row " + std::to_string(t);
    if (len < 2 || len > Lmax)
      throw InvalidArgument(where + ": cdf_length " + std::to_string(len) + " not in [2, " + std::to_string(Lmax) +
                            "]");
    if (row[0] != 0 || row[len - 1] != 65536) throw InvalidArgument(where + ": CDF must start at 0 and end at 65536");
    for (int i = 0; i + 1 < len; ++i)
      if (row[i + 1] <= row[i]) throw InvalidArgument(where + ": CDF not strictly increasing (zero-frequency bin)");
    d->rows[t] = Row{offset[t], len - 2, static_cast<uint32_t>(t) * static_cast<uint32_t>(Lmax), 0};
    d->offsets.push_back(offset[t]);
    max_bins = std::max(max_bins, len - 1);
  }
  d->fast_prec = max_bins <= (1 << kFastPrecision) ? kFastPrecision : 16;

  allocate(d->c16, 16, T, Lmax);
  if (d->fast_prec == kFastPrecision) allocate(d->c14, kFastPrecision, T, Lmax);
  std::vector<uint32_t> cum;
  for (int t = 0; t < T; ++t) {
    const int len = cdf_length[t];
    const int32_t* row = cdf + static_cast<size_t>(t) * Lmax;
    cum.assign(row, row + len);
    fill_row(d->c16, t, d->rows[t].base, cum);
    if (d->fast_prec == kFastPrecision) fill_row(d->c14, t, d->rows[t].base, requantize(row, len, kFastPrecision));
  }
  if (d->fast_prec == kFastPrecision) fill_fast_hint(*d);
  d_ = std::move(d);
}

int Tables::num_tables() const noexcept { return d_->T; }
int Tables::max_length() const noexcept { return d_->stride; }
int Tables::fast_precision() const noexcept { return d_->fast_prec; }

size_t Tables::memory_bytes() const noexcept {
  auto sz = [](const detail::Coding& c) { return c.info.size() * 4 + c.hint.size() * 2; };
  return d_->rows.size() * (sizeof(detail::Row) + 4) + sz(d_->c16) + sz(d_->c14) + d_->fast_hint.size() * 8;
}

}  // namespace lictrt
