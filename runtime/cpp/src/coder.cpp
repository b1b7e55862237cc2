// One-shot and incremental rANS coding (compat and fast modes), see lictrt/coder.hpp for the formats.
#include <algorithm>
#include <climits>
#include <atomic>
#include <exception>
#include <string>
#include <thread>

#include "rans_core.hpp"

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

/// Interleaved lanes for a substream of m symbols (each lane costs 4 bytes of final state, at most 1/64 byte
/// per symbol; 8, 16 and 32 lanes decode on the AVX2 path).
int lanes_for(size_t m) { return m < 256 ? 1 : m < 1024 ? 4 : m < 4096 ? 8 : m < 8192 ? 16 : 32; }

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
/// Returns the new write position (by value, so the hot loop's pointer never needs an address).
template <class Tr>
__attribute__((noinline)) typename Tr::Word* put_escape(typename Tr::State& x, typename Tr::Word* w, int64_t v,
                                                        int32_t max_value) {
  const uint64_t raw = v < 0 ? static_cast<uint64_t>(-2 * v - 1) : static_cast<uint64_t>(2 * (v - max_value));
  int nb = 0;
  while (nb < 16 && (raw >> (kBypassBits * nb)) != 0) ++nb;
  for (int j = nb - 1; j >= 0; --j)
    enc_put<Tr, kBypassBits>(x, w, static_cast<uint32_t>(raw >> (kBypassBits * j)) & kBypassMax, 1);
  enc_put<Tr, kBypassBits>(x, w, static_cast<uint32_t>(nb % kBypassMax), 1);
  for (int k = nb / kBypassMax; k > 0; --k) enc_put<Tr, kBypassBits>(x, w, kBypassMax, 1);
  return w;
}

/// Encode n symbols on N interleaved lanes (symbol i on lane i % N) and append the stream to `dst`:
/// N final states (little-endian State each) then the renormalization words (little-endian Word each).
template <class Tr, int N, int P>
void encode_lanes(const TableData& d, const Coding& c, const int32_t* sym, const int32_t* idx, size_t n,
                  std::vector<uint8_t>& dst) {
  using State = typename Tr::State;
  using Word = typename Tr::Word;
  constexpr int kWordsPerState = sizeof(State) / sizeof(Word);
  // Free words kept before each symbol: what one symbol can emit (1 + escape <= 11) plus the final states.
  constexpr ptrdiff_t kSlack = 16 + kWordsPerState * N;
  size_t cap = n / 2 + kSlack + 64;
  std::unique_ptr<Word[]> buf(new Word[cap]);
  Word* end = buf.get() + cap;
  Word* w = end;
  State st[N];
  for (int j = 0; j < N; ++j) st[j] = Tr::kL;
  constexpr uint32_t start_mask = P < 16 ? 0x7FFFu : 0xFFFFu;
  const uint32_t* info = c.info.data();
  const Row* rows = d.rows.data();
  for (size_t i = n; i-- > 0;) {
    if (w - buf.get() < kSlack) {  // grow, keeping the written tail at the end
      const size_t used = static_cast<size_t>(end - w);
      const size_t ncap = cap * 2 + kSlack;
      std::unique_ptr<Word[]> nbuf(new Word[ncap]);
      std::copy(w, end, nbuf.get() + ncap - used);
      buf = std::move(nbuf);
      cap = ncap;
      end = buf.get() + cap;
      w = end - used;
    }
    const Row r = rows[idx[i]];
    State& x = st[i % N];
    int64_t v = static_cast<int64_t>(sym[i]) - r.offset;
    if (v < 0 || v >= r.max_value) {
      w = put_escape<Tr>(x, w, v, r.max_value);
      v = r.max_value;
    }
    const uint32_t inf = info[r.base + static_cast<uint32_t>(v)];
    enc_put<Tr, P>(x, w, inf & start_mask, (inf >> 16) + 1);
  }
  for (int j = N - 1; j >= 0; --j)
    for (int k = kWordsPerState - 1; k >= 0; --k) *--w = static_cast<Word>(st[j] >> (Tr::kWordBits * k));
  const size_t words = static_cast<size_t>(end - w);
  const size_t at = dst.size();
  dst.resize(at + words * sizeof(Word));
  for (size_t k = 0; k < words; ++k) {
    if constexpr (sizeof(Word) == 4)
      store_le32(dst.data() + at + 4 * k, w[k]);
    else
      store_le16(dst.data() + at + 2 * k, w[k]);
  }
}

template <int P>
void encode_fast_lanes(int lanes, const TableData& d, const Coding& c, const int32_t* sym, const int32_t* idx, size_t n,
                       std::vector<uint8_t>& dst) {
  switch (lanes) {
    case 1:
      return encode_lanes<Rans32, 1, P>(d, c, sym, idx, n, dst);
    case 2:
      return encode_lanes<Rans32, 2, P>(d, c, sym, idx, n, dst);
    case 4:
      return encode_lanes<Rans32, 4, P>(d, c, sym, idx, n, dst);
    case 8:
      return encode_lanes<Rans32, 8, P>(d, c, sym, idx, n, dst);
    case 16:
      return encode_lanes<Rans32, 16, P>(d, c, sym, idx, n, dst);
    default:
      return encode_lanes<Rans32, 32, P>(d, c, sym, idx, n, dst);
  }
}

// ---------------------------------------------------------------- decoder

/// Decode one symbol of table row `t` from lane state x. Returns false (with `err`) on an invalid escape.
template <class Tr>
inline bool decode_symbol(const TableData& d, const Coding& c, typename Tr::State& x, Reader<Tr>& r, uint32_t t,
                          int32_t& out, const char*& err) {
  using State = typename Tr::State;
  const Row rw = d.rows[t];
  const uint32_t slot = static_cast<uint32_t>(x) & ((1u << c.prec) - 1);
  uint32_t inf;
  const uint32_t s = find_bin(c, t, rw.base, slot, inf);
  x = static_cast<State>((inf >> 16) + 1) * (x >> c.prec) + slot - (inf & c.start_mask);
  r.renorm(x);
  if (static_cast<int32_t>(s) != rw.max_value) {
    out = static_cast<int32_t>(s + static_cast<uint32_t>(rw.offset));  // wraps (never UB) on absurd offsets
    return true;
  }
  return decode_escape<Tr>(x, r, rw, out, err);
}

template <class Tr>
struct LaneStates {
  int n = 0;
  typename Tr::State x[kMaxLanes];
};

/// Read N initial states; they must lie in the normalized interval [L, L << word bits).
template <class Tr>
void read_states(const uint8_t*& p, const uint8_t* end, int N, LaneStates<Tr>& st, const std::string& where) {
  using State = typename Tr::State;
  constexpr ptrdiff_t kBytes = sizeof(State);
  if (end - p < kBytes * N) throw BitstreamError(where + ": stream shorter than its initial rANS states");
  st.n = N;
  for (int j = 0; j < N; ++j, p += kBytes) {
    State v = 0;
    for (ptrdiff_t k = 0; k < kBytes; ++k) v |= static_cast<State>(p[k]) << (8 * k);
    st.x[j] = v;
    if (v < Tr::kL || (sizeof(State) == 8 && (static_cast<uint64_t>(v) >> 63)))
      throw BitstreamError(where + ": invalid initial rANS state");
  }
}

template <class Tr>
void check_end(const LaneStates<Tr>& st, const Reader<Tr>& r, const std::string& where) {
  if (r.overrun) throw BitstreamError(where + ": truncated stream (read past the end)");
  if (r.bad_state) throw BitstreamError(where + ": corrupt stream (rANS state out of range)");
  for (int j = 0; j < st.n; ++j)
    if (st.x[j] != Tr::kL) throw BitstreamError(where + ": final rANS state check failed");
  if (r.p != r.end)
    throw BitstreamError(where + ": " + std::to_string(r.end - r.p) + " bytes left over after the last symbol");
}

/// check_end for the one-shot decoders, which carry the reader's flags in locals.
template <class Tr>
void check_end(const LaneStates<Tr>& st, const uint8_t* p, const uint8_t* end, bool overrun, bool bad_state,
               const std::string& where) {
  Reader<Tr> r{p, end};
  r.overrun = overrun;
  r.bad_state = bad_state;
  check_end(st, r, where);
}

/// Compat decoder: one rans64 state at precision 16.
void decode_compat(const TableData& d, const uint8_t* p, const uint8_t* end, const int32_t* __restrict idx, size_t n,
                   int32_t* __restrict out, const std::string& where) {
  if ((end - p) % 4) throw BitstreamError(where + ": stream length is not a multiple of 4 bytes");
  LaneStates<Rans64> ls;
  read_states(p, end, 1, ls, where);
  uint64_t x = ls.x[0];
  const HotTables tb{d.rows.data(), d.c16.hint.data(), d.c16.info.data()};
  bool overrun = false, bad_state = false;
  const char* err = nullptr;
  constexpr ptrdiff_t kSymbolBytes = 4 * kMaxWordsPerSymbol;
  size_t i = 0;
  for (; i < n && end - p >= kSymbolBytes; ++i)
    if (!hot_step<Rans64, 16, false>(tb, x, p, end, static_cast<uint32_t>(idx[i]), out + i, overrun, bad_state, err))
      goto failed;
  for (; i < n && !overrun; ++i)
    if (!hot_step<Rans64, 16, true>(tb, x, p, end, static_cast<uint32_t>(idx[i]), out + i, overrun, bad_state, err))
      goto failed;
  ls.x[0] = x;
  check_end(ls, p, end, overrun, bad_state, where);
  return;
failed:
  throw BitstreamError(where + ": " + err + " at symbol " + std::to_string(i));
}

/// Fast decoder: N interleaved rans32 lanes at precision P (symbol i on lane i % N); slot->bin lookup with a
/// forward step. Whole blocks of N symbols run with unchecked reads while the stream has room for the worst
/// case (on the AVX2 path when available, else scalar; both read the same words and fail the same way); the
/// tail runs with bounded reads.
template <int N, int P>
void decode_fast(const TableData& d, const Coding& c, const uint8_t* p, const uint8_t* end,
                 const int32_t* __restrict idx, size_t n, int32_t* __restrict out, const std::string& where) {
  if ((end - p) % 2) throw BitstreamError(where + ": stream length is not a multiple of 2 bytes");
  if (c.prec != P) throw BitstreamError(where + ": internal precision mismatch");
  LaneStates<Rans32> ls;
  read_states(p, end, N, ls, where);
  uint32_t st[N];
  for (int j = 0; j < N; ++j) st[j] = ls.x[j];
  const HotTables tb{d.rows.data(), c.hint.data(), c.info.data()};
  bool overrun = false, bad_state = false;
  const char* err = nullptr;
  size_t i = 0;
  if constexpr (P == kFastPrecision && N >= 8) {
    if (simd_enabled() && c.info.size() <= INT32_MAX && d.fast_hint.size() <= INT32_MAX) {  // int32 indexes
      i = decode_blocks_avx2(N, d, st, p, end, idx, 0, n, out, err);
      if (err) goto failed;
    }
  }
  for (; i + N <= n && end - p >= block_bytes<N>(); i += N) {
    const int j = scalar_block<N, P>(tb, st, p, end, idx + i, out + i, err);
    if (__builtin_expect(j >= 0, 0)) {
      i += j;
      goto failed;
    }
  }
  for (; i < n && !overrun; ++i)
    if (!hot_step<Rans32, P, true>(tb, st[i % N], p, end, static_cast<uint32_t>(idx[i]), out + i, overrun, bad_state,
                                   err))
      goto failed;
  for (int j = 0; j < N; ++j) ls.x[j] = st[j];
  check_end(ls, p, end, overrun, bad_state, where);
  return;
failed:
  throw BitstreamError(where + ": " + err + " at symbol " + std::to_string(i));
}

void decode_fast_lanes(int lanes, const TableData& d, const Coding& c, const uint8_t* p, const uint8_t* end,
                       const int32_t* idx, size_t n, int32_t* out, const std::string& where) {
  const bool fp = c.prec == kFastPrecision;
#define LICTRT_CASE(N)                                                           \
  case N:                                                                        \
    return fp ? decode_fast<N, kFastPrecision>(d, c, p, end, idx, n, out, where) \
              : decode_fast<N, 16>(d, c, p, end, idx, n, out, where);
  switch (lanes) {
    LICTRT_CASE(1)
    LICTRT_CASE(2)
    LICTRT_CASE(4)
    LICTRT_CASE(8)
    LICTRT_CASE(16)
    LICTRT_CASE(32)
    default:
      throw BitstreamError(where + ": invalid lane count");
  }
#undef LICTRT_CASE
}

// ---------------------------------------------------------------- fast-mode framing

/// Byte 0 of a fast stream: bits 0-3 log2(lanes), bits 4-5 precision code (precision = 12 + 2 * code),
/// bits 6-7 format version. Version 2 = rans32 states and 16-bit words. The retired 64-bit-state format
/// wrote 0 or 1 into bits 6-7 (its precision field was 4 bits wide), so it can never be mistaken for this one.
constexpr int kFastFormat = 2;

uint8_t fast_header_byte(int lanes, int prec) {
  return static_cast<uint8_t>(__builtin_ctz(lanes) | (((prec - 12) / 2) << 4) | (kFastFormat << 6));
}

struct FastHeader {
  int lanes = 1, prec = kFastPrecision, k = 1;
  std::vector<size_t> begin, size;  // byte range of each substream
};

FastHeader parse_fast_header(const uint8_t* data, size_t len, int expected_prec) {
  if (len < 2) throw BitstreamError("fast stream: shorter than its 2-byte header");
  FastHeader h;
  const int version = data[0] >> 6;
  if (version != kFastFormat)
    throw BitstreamError(version < 2 ? std::string("fast stream: format v1 (64-bit states) is no longer supported")
                                     : "fast stream: unknown format version " + std::to_string(version));
  const int log2_lanes = data[0] & 0x0F;
  h.prec = 12 + 2 * ((data[0] >> 4) & 3);
  h.k = data[1];
  if (log2_lanes > 5) throw BitstreamError("fast stream: invalid lane count");
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
    encode_lanes<Rans64, 1, kCompatPrecision>(d, d.c16, symbols, indexes, n, out);
    return out;
  }
  if (opt.mode != Mode::Fast) throw InvalidArgument("unknown coder mode");
  const Coding& c = d.coding(Mode::Fast);
  const int k = static_cast<int>(
      std::min<size_t>({static_cast<size_t>(std::max(opt.substreams, 1)), std::max<size_t>(n, 1), 255}));
  const int lanes = lanes_for((n + k - 1) / k);
  std::vector<std::vector<uint8_t>> parts(k);
  parallel_for(k, opt.threads, [&](int i) {
    const size_t a = n * i / k, b = n * (i + 1) / k;
    if (c.prec == kFastPrecision)
      encode_fast_lanes<kFastPrecision>(lanes, d, c, symbols + a, indexes + a, b - a, parts[i]);
    else
      encode_fast_lanes<16>(lanes, d, c, symbols + a, indexes + a, b - a, parts[i]);
  });
  size_t total = 2 + 4 * static_cast<size_t>(k - 1);
  for (auto& p : parts) total += p.size();
  out.resize(total);
  out[0] = fast_header_byte(lanes, c.prec);
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
    decode_compat(d, data, data + len, indexes, n, out, "compat stream");
    return;
  }
  if (mode != Mode::Fast) throw InvalidArgument("unknown coder mode");
  const Coding& c = d.coding(Mode::Fast);
  const FastHeader h = parse_fast_header(data, len, c.prec);
  const int k = h.k;
  parallel_for(k, threads, [&](int i) {
    const size_t a = n * i / k, b = n * (i + 1) / k;
    const std::string where = k == 1 ? std::string("fast stream") : "fast substream " + std::to_string(i);
    decode_fast_lanes(h.lanes, d, c, data + h.begin[i], data + h.begin[i] + h.size[i], indexes + a, b - a, out + a,
                      where);
  });
}

// ---------------------------------------------------------------- incremental coders

StreamEncoder::StreamEncoder(std::shared_ptr<const Tables> tables, Mode mode)
    : tables_(std::move(tables)), mode_(mode) {
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

/// Per-flavour state of an incremental decoder.
template <class Tr>
struct StreamLanes {
  LaneStates<Tr> st;
  Reader<Tr> r{nullptr, nullptr};

  /// Decode n symbols from position `pos` on (advanced per symbol); returns nullptr or the error message.
  const char* decode(const TableData& d, const Coding& c, const int32_t* indexes, size_t n, int32_t* out, size_t& pos) {
    const char* err = nullptr;
    for (size_t i = 0; i < n; ++i, ++pos) {
      const bool ok = decode_symbol<Tr>(d, c, st.x[pos % st.n], r, static_cast<uint32_t>(indexes[i]), out[i], err);
      if (!ok) return err;
      if (r.overrun) return "truncated stream (read past the end)";
      if (r.bad_state) return "corrupt stream (rANS state out of range)";
    }
    return nullptr;
  }
};

struct StreamDecoder::Impl {
  std::vector<uint8_t> data;
  const Coding* c = nullptr;
  bool fast = false;
  StreamLanes<Rans64> compat;
  StreamLanes<Rans32> lanes;
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
  if (mode == Mode::Compat) {
    m.c = &d.c16;
    m.where = "compat stream";
    if ((end - p) % 4) throw BitstreamError(m.where + ": stream length is not a multiple of 4 bytes");
    read_states(p, end, 1, m.compat.st, m.where);
    m.compat.r = Reader<Rans64>{p, end};
  } else if (mode == Mode::Fast) {
    m.c = &d.coding(Mode::Fast);
    m.fast = true;
    m.where = "fast stream";
    const FastHeader h = parse_fast_header(p, len, m.c->prec);
    if (h.k != 1) throw BitstreamError("fast stream: incremental decoding needs a single-substream stream");
    p += h.begin[0];
    if ((end - p) % 2) throw BitstreamError(m.where + ": stream length is not a multiple of 2 bytes");
    read_states(p, end, h.lanes, m.lanes.st, m.where);
    m.lanes.r = Reader<Rans32>{p, end};
  } else {
    throw InvalidArgument("unknown coder mode");
  }
}

StreamDecoder::~StreamDecoder() = default;

size_t StreamDecoder::decoded() const noexcept { return impl_->pos; }

void StreamDecoder::decode(const int32_t* indexes, size_t n, int32_t* out) {
  Impl& m = *impl_;
  if (m.failed) throw BitstreamError(m.where + ": decoding already failed");
  const TableData& d = tables_->data();
  check_indexes(d, indexes, n);
  const char* err =
      m.fast ? m.lanes.decode(d, *m.c, indexes, n, out, m.pos) : m.compat.decode(d, *m.c, indexes, n, out, m.pos);
  if (err) {
    m.failed = true;
    throw BitstreamError(m.where + ": " + err + " at symbol " + std::to_string(m.pos));
  }
}

void StreamDecoder::finish() {
  Impl& m = *impl_;
  if (m.failed) throw BitstreamError(m.where + ": decoding already failed");
  if (m.fast)
    check_end(m.lanes.st, m.lanes.r, m.where);
  else
    check_end(m.compat.st, m.compat.r, m.where);
}

}  // namespace lictrt
