// One-shot and incremental rANS coding (compat and fast modes), see lictrt/coder.hpp for the formats.
#include <algorithm>
#include <atomic>
#include <exception>
#include <string>
#include <thread>

#include "detail.hpp"

namespace lictrt {
namespace {
using namespace detail;

// ---------------------------------------------------------------- helpers

void check_indexes(const TableData& d, const int32_t* idx, size_t n) {
  uint32_t bad = 0;
  const uint32_t T = static_cast<uint32_t>(d.T);
  for (size_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>(static_cast<uint32_t>(idx[i]) >= T);
  if (!bad) return;
  for (size_t i = 0; i < n; ++i)
    if (static_cast<uint32_t>(idx[i]) >= T)
      throw InvalidArgument("index " + std::to_string(idx[i]) + " at position " + std::to_string(i) +
                            " is outside the " + std::to_string(T) + " tables");
}

/// Interleaved lanes for a substream of m symbols (each lane costs 8 bytes of final state).
int lanes_for(size_t m) { return m < 256 ? 1 : m < 1024 ? 2 : m < 4096 ? 4 : 8; }

/// Run fn(i) for i in [0, k) on up to `threads` threads; rethrows the first failure (lowest i).
template <class Fn>
void parallel_for(int k, int threads, Fn fn) {
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, k);
  std::vector<std::exception_ptr> errors(k);
  auto run = [&](int i) {
    try {
      fn(i);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  };
  if (threads <= 1) {
    for (int i = 0; i < k; ++i) run(i);
  } else {
    std::atomic<int> next{0};
    std::vector<std::thread> pool;
    for (int w = 0; w < threads; ++w)
      pool.emplace_back([&] {
        for (int i; (i = next.fetch_add(1)) < k;) run(i);
      });
    for (auto& th : pool) th.join();
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// ---------------------------------------------------------------- encoder

/// Escape: bypass-code the zig-zagged overflow (nibble count in 4-bit chunks, 15 = "more", then the
/// nibbles LSB first), written in reverse of the decoding order.
void put_escape(uint64_t& x, uint32_t*& w, int64_t v, int32_t max_value) {
  const uint64_t raw = v < 0 ? static_cast<uint64_t>(-2 * v - 1) : static_cast<uint64_t>(2 * (v - max_value));
  int nb = 0;
  while (nb < 16 && (raw >> (kBypassBits * nb)) != 0) ++nb;
  for (int j = nb - 1; j >= 0; --j)
    enc_put(x, w, static_cast<uint32_t>(raw >> (kBypassBits * j)) & kBypassMax, 1, kBypassBits);
  enc_put(x, w, static_cast<uint32_t>(nb % kBypassMax), 1, kBypassBits);
  for (int k = nb / kBypassMax; k > 0; --k) enc_put(x, w, kBypassMax, 1, kBypassBits);
}

/// Encode n symbols on N interleaved lanes (symbol i on lane i % N) and append the stream to `dst`:
/// N final states (lo, hi words each) then the renormalization words, all little-endian.
template <int N>
void encode_lanes(const TableData& d, const Coding& c, const int32_t* sym, const int32_t* idx, size_t n,
                  std::vector<uint8_t>& dst) {
  constexpr ptrdiff_t kSlack = 24;  // words one symbol can emit (1 + escape) plus margin
  size_t cap = n / 2 + 2 * N + kSlack + 64;
  std::unique_ptr<uint32_t[]> buf(new uint32_t[cap]);
  uint32_t* end = buf.get() + cap;
  uint32_t* w = end;
  uint64_t st[N];
  for (int j = 0; j < N; ++j) st[j] = kRansL;
  const int prec = c.prec;
  const uint32_t* info = c.info.data();
  const Row* rows = d.rows.data();
  for (size_t i = n; i-- > 0;) {
    if (w - buf.get() < kSlack) {  // grow, keeping the written tail at the end
      const size_t used = static_cast<size_t>(end - w);
      const size_t ncap = cap * 2 + kSlack;
      std::unique_ptr<uint32_t[]> nbuf(new uint32_t[ncap]);
      std::copy(w, end, nbuf.get() + ncap - used);
      buf = std::move(nbuf);
      cap = ncap;
      end = buf.get() + cap;
      w = end - used;
    }
    const Row r = rows[idx[i]];
    uint64_t& x = st[i & (N - 1)];
    int64_t v = static_cast<int64_t>(sym[i]) - r.offset;
    if (v < 0 || v >= r.max_value) {
      put_escape(x, w, v, r.max_value);
      v = r.max_value;
    }
    const uint32_t inf = info[r.base + static_cast<uint32_t>(v)];
    enc_put(x, w, inf & 0xFFFFu, (inf >> 16) + 1, prec);
  }
  for (int j = N - 1; j >= 0; --j) {
    *--w = static_cast<uint32_t>(st[j] >> 32);
    *--w = static_cast<uint32_t>(st[j]);
  }
  const size_t words = static_cast<size_t>(end - w);
  const size_t at = dst.size();
  dst.resize(at + words * 4);
  for (size_t k = 0; k < words; ++k) store_le32(dst.data() + at + 4 * k, w[k]);
}

void encode_lanes_n(int lanes, const TableData& d, const Coding& c, const int32_t* sym, const int32_t* idx,
                    size_t n, std::vector<uint8_t>& dst) {
  switch (lanes) {
    case 1: return encode_lanes<1>(d, c, sym, idx, n, dst);
    case 2: return encode_lanes<2>(d, c, sym, idx, n, dst);
    case 4: return encode_lanes<4>(d, c, sym, idx, n, dst);
    default: return encode_lanes<8>(d, c, sym, idx, n, dst);
  }
}

// ---------------------------------------------------------------- decoder

/// Escape tail of a symbol that decoded to the escape bin (kept out of line: rare).
__attribute__((noinline)) bool decode_escape(uint64_t& x, Reader& r, const Row& rw, int32_t& out, const char*& err) {
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

/// Decode one symbol of table row `t` from lane state x. Returns false (with `err`) on an invalid escape.
inline bool decode_symbol(const TableData& d, const Coding& c, uint64_t& x, Reader& r, uint32_t t, int32_t& out,
                          const char*& err) {
  const Row rw = d.rows[t];
  const uint32_t slot = static_cast<uint32_t>(x) & ((1u << c.prec) - 1);
  uint32_t inf;
  const uint32_t s = find_bin(c, t, rw.base, slot, inf);
  x = static_cast<uint64_t>((inf >> 16) + 1) * (x >> c.prec) + slot - (inf & 0xFFFFu);
  r.renorm(x);
  if (static_cast<int32_t>(s) != rw.max_value) {
    out = static_cast<int32_t>(s + static_cast<uint32_t>(rw.offset));  // wraps (never UB) on absurd offsets
    return true;
  }
  return decode_escape(x, r, rw, out, err);
}

struct LaneStates {
  int n = 0;
  uint64_t x[8];
};

/// Read N initial states; they must lie in the normalized interval [L, 2^63).
void read_states(const uint8_t*& p, const uint8_t* end, int N, LaneStates& st, const std::string& where) {
  if (end - p < 8 * N) throw BitstreamError(where + ": stream shorter than its initial rANS states");
  st.n = N;
  for (int j = 0; j < N; ++j, p += 8) {
    st.x[j] = load_le32(p) | (static_cast<uint64_t>(load_le32(p + 4)) << 32);
    if (st.x[j] < kRansL || st.x[j] >> 63) throw BitstreamError(where + ": invalid initial rANS state");
  }
}

void check_end(const LaneStates& st, const Reader& r, const std::string& where) {
  if (r.overrun) throw BitstreamError(where + ": truncated stream (read past the end)");
  if (r.bad_state) throw BitstreamError(where + ": corrupt stream (rANS state out of range)");
  for (int j = 0; j < st.n; ++j)
    if (st.x[j] != kRansL) throw BitstreamError(where + ": final rANS state check failed");
  if (r.p != r.end)
    throw BitstreamError(where + ": " + std::to_string(r.end - r.p) + " bytes left over after the last symbol");
}

alignas(4) const uint8_t kZeroWord[4] = {0, 0, 0, 0};

/// Rare path of the hot decoder, by value so the lane state never leaves registers in the common path.
struct EscapeOut {
  uint64_t x;
  const uint8_t* p;
  int32_t value;
  bool ok, overrun, bad_state;
  const char* err;
};

__attribute__((noinline, cold)) EscapeOut hot_escape(uint64_t x, const uint8_t* p, const uint8_t* end, const Row* rw) {
  Reader r{p, end};
  EscapeOut o{};
  o.err = nullptr;
  o.ok = decode_escape(x, r, *rw, o.value, o.err);
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

/// Decode symbol i on lane state x. Checked = bounded word reads (the last blocks of a stream); unchecked
/// reads are only used while at least kMaxWordsPerSymbol words per remaining block symbol are left, so they
/// never pass `end`. States stay in [L, 2^63) by construction: x' >= x >> P >= 2^(31-P) after a decode step,
/// so a renormalized state is >= 2^(63-P) >= L, and x' < 2^31 before the shift keeps it below 2^63.
/// Returns false on an invalid escape (err set).
template <int P, bool Checked>
__attribute__((always_inline)) inline bool hot_step(const HotTables& tb, uint64_t& x, const uint8_t*& p,
                                                    const uint8_t* end, uint32_t t, int32_t* out, bool& overrun,
                                                    bool& bad_state, const char*& err) {
  constexpr int SH = P - kHintEntriesLog2;
  constexpr uint32_t mask = (1u << P) - 1;
  const Row* rw = tb.rows + t;
  const uint32_t slot = static_cast<uint32_t>(x) & mask;
  uint32_t s = tb.hint[(t << kHintEntriesLog2) | (slot >> SH)];
  const uint32_t* inf_row = tb.info + rw->base;
  uint32_t inf = inf_row[s];
  while (__builtin_expect(slot >= bin_end(inf), 0)) inf = inf_row[++s];
  x = static_cast<uint64_t>((inf >> 16) + 1) * (x >> P) + (slot - (inf & 0xFFFFu));
  const bool need = x < kRansL;
  if constexpr (Checked) {
    const bool have = end - p >= 4;
    const uint64_t y = (x << 32) | load_le32(have ? p : kZeroWord);
    overrun |= need & !have;
    x = need ? y : x;
    p += (need & have) ? 4 : 0;
  } else {
    const uint64_t y = (x << 32) | load_le32(p);
    x = need ? y : x;
    p += need ? 4 : 0;
  }
  if (__builtin_expect(static_cast<int32_t>(s) == rw->max_value, 0)) {
    const EscapeOut e = hot_escape(x, p, end, rw);
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

/// Hot one-shot decoder: N interleaved lanes at precision P (symbol i on lane i % N); slot->bin lookup with a
/// forward step. Whole blocks of N symbols run with unchecked reads while the stream has room for the worst
/// case; the tail runs with bounded reads.
template <int N, int P>
void decode_lanes(const TableData& d, const Coding& c, const uint8_t* p, const uint8_t* end,
                  const int32_t* __restrict idx, size_t n, int32_t* __restrict out, const std::string& where) {
  if ((end - p) % 4) throw BitstreamError(where + ": stream length is not a multiple of 4 bytes");
  if (c.prec != P) throw BitstreamError(where + ": internal precision mismatch");
  LaneStates ls;
  read_states(p, end, N, ls, where);
  uint64_t st[N];
  for (int j = 0; j < N; ++j) st[j] = ls.x[j];
  const HotTables tb{d.rows.data(), c.hint.data(), c.info.data()};
  bool overrun = false, bad_state = false;
  const char* err = nullptr;
  size_t i = 0;
  constexpr ptrdiff_t kBlockBytes = 4 * kMaxWordsPerSymbol * N;
  {
    // Lane states as named scalars (never indexed dynamically) so they stay in registers.
    uint64_t x0 = st[0], x1 = st[N > 1 ? 1 : 0], x2 = st[N > 2 ? 2 : 0], x3 = st[N > 3 ? 3 : 0];
    uint64_t x4 = st[N > 4 ? 4 : 0], x5 = st[N > 5 ? 5 : 0], x6 = st[N > 6 ? 6 : 0], x7 = st[N > 7 ? 7 : 0];
#define LICTRT_LANE(X, J)                                                                                  \
  if ((J) < N && __builtin_expect(!hot_step<P, false>(tb, X, p, end, static_cast<uint32_t>(idx[i + (J)]),  \
                                                      out + i + (J), overrun, bad_state, err), 0)) {        \
    i += (J);                                                                                              \
    goto failed;                                                                                           \
  }
    for (; i + N <= n && end - p >= kBlockBytes; i += N) {
      LICTRT_LANE(x0, 0)
      LICTRT_LANE(x1, 1)
      LICTRT_LANE(x2, 2)
      LICTRT_LANE(x3, 3)
      LICTRT_LANE(x4, 4)
      LICTRT_LANE(x5, 5)
      LICTRT_LANE(x6, 6)
      LICTRT_LANE(x7, 7)
    }
#undef LICTRT_LANE
    const uint64_t xs[8] = {x0, x1, x2, x3, x4, x5, x6, x7};
    for (int j = 0; j < N; ++j) st[j] = xs[j];
  }
  for (; i < n && !overrun; ++i)
    if (!hot_step<P, true>(tb, st[i % N], p, end, static_cast<uint32_t>(idx[i]), out + i, overrun, bad_state, err))
      goto failed;
  for (int j = 0; j < N; ++j) ls.x[j] = st[j];
  {
    Reader r{p, end};
    r.overrun = overrun;
    r.bad_state = bad_state;
    check_end(ls, r, where);
  }
  return;
failed:
  throw BitstreamError(where + ": " + err + " at symbol " + std::to_string(i));
}

void decode_lanes_n(int lanes, const TableData& d, const Coding& c, const uint8_t* p, const uint8_t* end,
                    const int32_t* idx, size_t n, int32_t* out, const std::string& where) {
  const bool p14 = c.prec == 14;
#define LICTRT_CASE(N)                                                    \
  case N:                                                                 \
    return p14 ? decode_lanes<N, 14>(d, c, p, end, idx, n, out, where)   \
               : decode_lanes<N, 16>(d, c, p, end, idx, n, out, where);
  switch (lanes) {
    LICTRT_CASE(1)
    LICTRT_CASE(2)
    LICTRT_CASE(4)
    LICTRT_CASE(8)
    default: throw BitstreamError(where + ": invalid lane count");
  }
#undef LICTRT_CASE
}

// ---------------------------------------------------------------- fast-mode framing

struct FastHeader {
  int lanes = 1, prec = 14, k = 1;
  std::vector<size_t> begin, size;  // byte range of each substream
};

FastHeader parse_fast_header(const uint8_t* data, size_t len, int expected_prec) {
  if (len < 2) throw BitstreamError("fast stream: shorter than its 2-byte header");
  FastHeader h;
  const int log2_lanes = data[0] & 0x0F;
  h.prec = 12 + (data[0] >> 4);
  h.k = data[1];
  if (log2_lanes > 3) throw BitstreamError("fast stream: invalid lane count");
  h.lanes = 1 << log2_lanes;
  if (h.prec != expected_prec)
    throw BitstreamError("fast stream: precision " + std::to_string(h.prec) + " does not match the tables (" +
                         std::to_string(expected_prec) + ")");
  if (h.k < 1) throw BitstreamError("fast stream: zero substreams");
  const size_t table = 2 + 4 * static_cast<size_t>(h.k - 1);
  if (len < table) throw BitstreamError("fast stream: truncated substream table");
  size_t at = table;
  for (int i = 0; i < h.k; ++i) {
    const size_t sz = i + 1 < h.k ? load_le32(data + 2 + 4 * i) : len - std::min(len, at);
    if (sz > len - at) throw BitstreamError("fast stream: substream sizes exceed the stream");
    h.begin.push_back(at);
    h.size.push_back(sz);
    at += sz;
  }
  return h;
}

}  // namespace

// ---------------------------------------------------------------- public API

std::vector<uint8_t> encode(const Tables& tables, const int32_t* symbols, const int32_t* indexes, size_t n,
                            const EncodeOptions& opt) {
  const TableData& d = tables.data();
  check_indexes(d, indexes, n);
  std::vector<uint8_t> out;
  if (opt.mode == Mode::Compat) {
    encode_lanes<1>(d, d.c16, symbols, indexes, n, out);
    return out;
  }
  if (opt.mode != Mode::Fast) throw InvalidArgument("unknown coder mode");
  const Coding& c = d.coding(Mode::Fast);
  const int k = static_cast<int>(std::min<size_t>({static_cast<size_t>(std::max(opt.substreams, 1)),
                                                   std::max<size_t>(n, 1), 255}));
  const int lanes = lanes_for((n + k - 1) / k);
  std::vector<std::vector<uint8_t>> parts(k);
  parallel_for(k, opt.threads, [&](int i) {
    const size_t a = n * i / k, b = n * (i + 1) / k;
    encode_lanes_n(lanes, d, c, symbols + a, indexes + a, b - a, parts[i]);
  });
  size_t total = 2 + 4 * static_cast<size_t>(k - 1);
  for (auto& p : parts) total += p.size();
  out.resize(total);
  out[0] = static_cast<uint8_t>(__builtin_ctz(lanes) | ((c.prec - 12) << 4));
  out[1] = static_cast<uint8_t>(k);
  size_t at = 2 + 4 * static_cast<size_t>(k - 1);
  for (int i = 0; i < k; ++i) {
    if (i + 1 < k) {
      if (parts[i].size() > UINT32_MAX) throw InvalidArgument("substream larger than 4 GiB");
      store_le32(out.data() + 2 + 4 * i, static_cast<uint32_t>(parts[i].size()));
    }
    std::copy(parts[i].begin(), parts[i].end(), out.begin() + at);
    at += parts[i].size();
  }
  return out;
}

void decode(const Tables& tables, const uint8_t* data, size_t len, const int32_t* indexes, size_t n, int32_t* out,
            Mode mode, int threads) {
  const TableData& d = tables.data();
  check_indexes(d, indexes, n);
  if (mode == Mode::Compat) {
    decode_lanes<1, 16>(d, d.c16, data, data + len, indexes, n, out, "compat stream");
    return;
  }
  if (mode != Mode::Fast) throw InvalidArgument("unknown coder mode");
  const Coding& c = d.coding(Mode::Fast);
  const FastHeader h = parse_fast_header(data, len, c.prec);
  const int k = h.k;
  parallel_for(k, threads, [&](int i) {
    const size_t a = n * i / k, b = n * (i + 1) / k;
    const std::string where = k == 1 ? std::string("fast stream") : "fast substream " + std::to_string(i);
    decode_lanes_n(h.lanes, d, c, data + h.begin[i], data + h.begin[i] + h.size[i], indexes + a, b - a, out + a,
                   where);
  });
}

// ---------------------------------------------------------------- incremental coders

StreamEncoder::StreamEncoder(std::shared_ptr<const Tables> tables, Mode mode) : tables_(std::move(tables)), mode_(mode) {
  if (!tables_) throw InvalidArgument("StreamEncoder: null tables");
  if (mode != Mode::Compat && mode != Mode::Fast) throw InvalidArgument("unknown coder mode");
}

void StreamEncoder::encode(const int32_t* symbols, const int32_t* indexes, size_t n) {
  check_indexes(tables_->data(), indexes, n);
  symbols_.insert(symbols_.end(), symbols, symbols + n);
  indexes_.insert(indexes_.end(), indexes, indexes + n);
}

std::vector<uint8_t> StreamEncoder::flush() {
  EncodeOptions opt;
  opt.mode = mode_;
  auto out = lictrt::encode(*tables_, symbols_.data(), indexes_.data(), symbols_.size(), opt);
  symbols_.clear();
  indexes_.clear();
  return out;
}

struct StreamDecoder::Impl {
  std::vector<uint8_t> data;
  const Coding* c = nullptr;
  LaneStates st;
  Reader r{nullptr, nullptr};
  size_t pos = 0;
  bool failed = false;
  std::string where;
};

StreamDecoder::StreamDecoder(std::shared_ptr<const Tables> tables, const uint8_t* data, size_t len, Mode mode)
    : tables_(std::move(tables)), impl_(new Impl) {
  if (!tables_) throw InvalidArgument("StreamDecoder: null tables");
  const TableData& d = tables_->data();
  Impl& m = *impl_;
  m.data.assign(data, data + len);
  const uint8_t* p = m.data.data();
  const uint8_t* end = p + len;
  int lanes = 1;
  if (mode == Mode::Compat) {
    m.c = &d.c16;
    m.where = "compat stream";
  } else if (mode == Mode::Fast) {
    m.c = &d.coding(Mode::Fast);
    m.where = "fast stream";
    const FastHeader h = parse_fast_header(p, len, m.c->prec);
    if (h.k != 1) throw BitstreamError("fast stream: incremental decoding needs a single-substream stream");
    lanes = h.lanes;
    p += h.begin[0];
  } else {
    throw InvalidArgument("unknown coder mode");
  }
  if ((end - p) % 4) throw BitstreamError(m.where + ": stream length is not a multiple of 4 bytes");
  read_states(p, end, lanes, m.st, m.where);
  m.r = Reader{p, end};
}

StreamDecoder::~StreamDecoder() = default;

size_t StreamDecoder::decoded() const noexcept { return impl_->pos; }

void StreamDecoder::decode(const int32_t* indexes, size_t n, int32_t* out) {
  Impl& m = *impl_;
  if (m.failed) throw BitstreamError(m.where + ": decoding already failed");
  const TableData& d = tables_->data();
  check_indexes(d, indexes, n);
  const char* err = nullptr;
  for (size_t i = 0; i < n; ++i, ++m.pos) {
    uint64_t& x = m.st.x[m.pos % m.st.n];
    const uint32_t t = static_cast<uint32_t>(indexes[i]);
    const bool ok = decode_symbol(d, *m.c, x, m.r, t, out[i], err);
    if (!ok || m.r.overrun || m.r.bad_state) {
      m.failed = true;
      throw BitstreamError(m.where + ": " + (!ok ? err : m.r.overrun ? "truncated stream (read past the end)" : "corrupt stream (rANS state out of range)") + " at symbol " +
                           std::to_string(m.pos));
    }
  }
}

void StreamDecoder::finish() {
  Impl& m = *impl_;
  if (m.failed) throw BitstreamError(m.where + ": decoding already failed");
  check_end(m.st, m.r, m.where);
}

}  // namespace lictrt
