// C++ tests of the lictrt coder and container: CompressAI-compat fixtures, round trips (0/1 symbols, escapes,
// substreams, incremental), corrupt input, AVX2 and scalar fast decoders agreeing (symbols and errors),
// container. Registered with ctest; exits non-zero on failure.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "../src/crc32_detail.hpp"  // the portable CRC path, to check the PCLMULQDQ path against
#include "../src/rans_core.hpp"     // force_scalar / simd_enabled: the AVX2-vs-scalar test hooks
#include "lictrt/coder.hpp"
#include "lictrt/container.hpp"
#include "lictrt/crc32.hpp"

namespace {

template <class E, class Fn>
bool throws(Fn fn) {
  try {
    fn();
  } catch (const E&) {
    return true;
  }
  return false;
}

struct Fixture {
  int T = 0, L = 0;
  std::vector<int32_t> cdf, len, off, sym, idx;
  std::vector<uint8_t> data;
};

int32_t rd32(const std::vector<uint8_t>& b, size_t& at) {
  int32_t v;
  std::memcpy(&v, b.data() + at, 4);
  at += 4;
  return v;
}

Fixture load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Fixture x;
  if (b.size() < 16 || std::memcmp(b.data(), "LCFX", 4) != 0) {
    std::fprintf(stderr, "cannot read fixture %s\n", path.c_str());
    ++g_failures;
    return x;
  }
  size_t at = 8;
  x.T = rd32(b, at);
  x.L = rd32(b, at);
  auto take = [&](std::vector<int32_t>& v, size_t n) {
    v.resize(n);
    for (auto& e : v) e = rd32(b, at);
  };
  take(x.cdf, static_cast<size_t>(x.T) * x.L);
  take(x.len, x.T);
  take(x.off, x.T);
  const int32_t n = rd32(b, at);
  take(x.sym, n);
  take(x.idx, n);
  const uint32_t nb = static_cast<uint32_t>(rd32(b, at));
  x.data.assign(b.begin() + at, b.begin() + at + nb);
  return x;
}

lictrt::Tables tables_of(const Fixture& f) {
  return lictrt::Tables(f.cdf.data(), f.T, f.L, f.len.data(), f.off.data());
}

std::vector<int32_t> decode(const lictrt::Tables& t, const std::vector<uint8_t>& d, const std::vector<int32_t>& idx,
                            lictrt::Mode m) {
  std::vector<int32_t> out(idx.size());
  lictrt::decode(t, d.data(), d.size(), idx.data(), idx.size(), out.data(), m);
  return out;
}

std::vector<uint8_t> encode(const lictrt::Tables& t, const std::vector<int32_t>& s, const std::vector<int32_t>& idx,
                            lictrt::Mode m, int k = 1) {
  lictrt::EncodeOptions o;
  o.mode = m;
  o.substreams = k;
  return lictrt::encode(t, s.data(), idx.data(), s.size(), o);
}

void test_crc() {
  CHECK(lictrt::crc32("123456789", 9) == 0xCBF43926u);
  CHECK(lictrt::crc32("", 0) == 0);
  const char* text = "The quick brown fox jumps over the lazy dog";
  CHECK(lictrt::crc32(text, std::strlen(text)) == 0x414FA339u);
  CHECK(lictrt::crc32(text + 10, std::strlen(text) - 10, lictrt::crc32(text, 10)) == 0x414FA339u);
  // the folding path (x86-64 CPUs with PCLMULQDQ, buffers >= 256 bytes) equals the portable one for every length
  // near its block sizes, at every alignment, from any starting CRC
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  CHECK(lictrt::detail::crc32_clmul_enabled() == bool(__builtin_cpu_supports("pclmul")));
#endif
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(70000);
  for (auto& b : buf) b = uint8_t(rng());
  for (size_t len : {size_t(0), size_t(255), size_t(256), size_t(257), size_t(271), size_t(319), size_t(320),
                     size_t(333), size_t(1000), size_t(4096), size_t(65536 + 61)})
    for (size_t off = 0; off < 16; ++off)
      for (uint32_t crc : {0u, 0xFFFFFFFFu, 0x12345678u})
        CHECK(lictrt::crc32(buf.data() + off, len, crc) == lictrt::detail::crc32_portable(buf.data() + off, len, crc));
  const size_t half = 12345;
  CHECK(lictrt::crc32(buf.data() + half, buf.size() - half, lictrt::crc32(buf.data(), half)) ==
        lictrt::detail::crc32_portable(buf.data(), buf.size()));
}

void test_fixture(const Fixture& f, const char* name) {
  const lictrt::Tables t = tables_of(f);
  const auto compat = encode(t, f.sym, f.idx, lictrt::Mode::Compat);
  if (compat != f.data) std::fprintf(stderr, "fixture %s: compat bytes differ from CompressAI's\n", name);
  CHECK(compat == f.data);
  CHECK(decode(t, f.data, f.idx, lictrt::Mode::Compat) == f.sym);
  for (int k : {1, 3}) {
    const auto fast = encode(t, f.sym, f.idx, lictrt::Mode::Fast, k);
    CHECK(decode(t, fast, f.idx, lictrt::Mode::Fast) == f.sym);
  }
}

void test_round_trips(const Fixture& f) {
  const lictrt::Tables t = tables_of(f);
  std::mt19937 rng(7);
  for (lictrt::Mode m : {lictrt::Mode::Compat, lictrt::Mode::Fast}) {
    for (size_t n : {0, 1, 2, 3, 7, 64, 300, 5000}) {
      std::vector<int32_t> s(n), idx(n);
      for (size_t i = 0; i < n; ++i) {
        idx[i] = static_cast<int32_t>(rng() % f.T);
        s[i] = static_cast<int32_t>(rng() % 21) - 10;
        if (rng() % 50 == 0) s[i] = (rng() % 2 ? 1 : -1) * static_cast<int32_t>(rng() % 100000);  // escapes
      }
      if (n == 1) s[0] = INT32_MIN;  // the most extreme escape
      if (n == 2) s = {INT32_MAX, INT32_MIN + 1};
      for (int k : {1, 4}) {
        const auto d = encode(t, s, idx, m, k);
        CHECK(decode(t, d, idx, m) == s);
      }
    }
  }
  // Incremental coding: chunks produce the same stream as one-shot coding.
  std::vector<int32_t> s(1000), idx(1000);
  for (size_t i = 0; i < s.size(); ++i) idx[i] = static_cast<int32_t>(i % f.T), s[i] = static_cast<int32_t>(i % 13) - 6;
  auto tp = std::make_shared<const lictrt::Tables>(t);
  for (lictrt::Mode m : {lictrt::Mode::Compat, lictrt::Mode::Fast}) {
    lictrt::StreamEncoder enc(tp, m);
    enc.encode(s.data(), idx.data(), 100);
    enc.encode(s.data() + 100, idx.data() + 100, 0);
    enc.encode(s.data() + 100, idx.data() + 100, 900);
    const auto d = enc.flush();
    CHECK(d == encode(t, s, idx, m));
    lictrt::StreamDecoder dec(tp, d.data(), d.size(), m);
    std::vector<int32_t> out(1000);
    dec.decode(idx.data(), 333, out.data());
    dec.decode(idx.data() + 333, 667, out.data() + 333);
    dec.finish();
    CHECK(out == s);
    lictrt::StreamDecoder early(tp, d.data(), d.size(), m);
    early.decode(idx.data(), 10, out.data());
    CHECK(throws<lictrt::BitstreamError>([&] { early.finish(); }));  // symbols left: final state differs
  }
}

void test_corrupt(const Fixture& f) {
  const lictrt::Tables t = tables_of(f);
  std::vector<int32_t> out(f.sym.size());
  for (lictrt::Mode m : {lictrt::Mode::Compat, lictrt::Mode::Fast}) {
    const auto d = encode(t, f.sym, f.idx, m, m == lictrt::Mode::Fast ? 2 : 1);
    for (size_t cut = 0; cut < d.size(); ++cut)  // every truncation is detected
      CHECK(throws<lictrt::BitstreamError>(
          [&] { lictrt::decode(t, d.data(), cut, f.idx.data(), f.idx.size(), out.data(), m); }));
    auto longer = d;
    longer.insert(longer.end(), 4, 0);
    CHECK(throws<lictrt::BitstreamError>([&] { decode(t, longer, f.idx, m); }));
    // Bit flips: never a crash. rANS decoders can resynchronize after damage, so the coder alone catches
    // most but not all flips; every decode it lets through yields different symbols, which the container's
    // symbol CRC then rejects.
    const uint32_t crc = lictrt::symbols_crc32(f.sym.data(), f.sym.size());
    int detected = 0, by_crc = 0, flips = 0;
    std::mt19937 rng(3);
    for (int k = 0; k < 300; ++k, ++flips) {
      auto c = d;
      c[rng() % c.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      try {
        lictrt::decode(t, c.data(), c.size(), f.idx.data(), f.idx.size(), out.data(), m);
        by_crc += lictrt::symbols_crc32(out.data(), out.size()) != crc;
      } catch (const lictrt::BitstreamError&) {
        ++detected;
      }
    }
    std::printf("mode %d: %d/%d bit flips rejected by the coder, the other %d by the symbol CRC\n", static_cast<int>(m),
                detected, flips, by_crc);
    CHECK(detected >= flips * 3 / 4);
    CHECK(detected + by_crc == flips);
  }
  std::vector<int32_t> bad_idx = f.idx;
  bad_idx[0] = f.T;
  CHECK(throws<lictrt::InvalidArgument>([&] { encode(t, f.sym, bad_idx, lictrt::Mode::Fast); }));
  std::vector<int32_t> bad_cdf = f.cdf;
  bad_cdf[1] = 0;  // zero-frequency bin
  CHECK(throws<lictrt::InvalidArgument>([&] { lictrt::Tables(bad_cdf.data(), f.T, f.L, f.len.data(), f.off.data()); }));
}

/// Decode with the AVX2 path (when the CPU has it) or the forced scalar path: the symbols, or the error text.
std::string decode_outcome(const lictrt::Tables& t, const std::vector<uint8_t>& d, const std::vector<int32_t>& idx,
                           bool scalar, std::vector<int32_t>& out) {
  lictrt::detail::force_scalar(scalar);
  out.assign(idx.size(), 0);
  std::string what = "ok";
  try {
    lictrt::decode(t, d.data(), d.size(), idx.data(), idx.size(), out.data(), lictrt::Mode::Fast, 1);
  } catch (const lictrt::BitstreamError& e) {
    what = e.what();
    out.clear();  // partial output on error is unspecified
  }
  lictrt::detail::force_scalar(false);
  return what;
}

/// Tables for the SIMD-vs-scalar test: the fixture's rows plus adversarial ones (escape-only row, a row with a
/// single real bin, a 200-bin row whose hint buckets hold several bins each).
lictrt::Tables adversarial_tables(const Fixture& f, int& T) {
  const int L = std::max(f.L, 202);
  T = f.T + 3;
  std::vector<int32_t> cdf(static_cast<size_t>(T) * L, 0), len(T), off(T);
  for (int r = 0; r < f.T; ++r) {
    std::copy(f.cdf.begin() + static_cast<size_t>(r) * f.L, f.cdf.begin() + static_cast<size_t>(r + 1) * f.L,
              cdf.begin() + static_cast<size_t>(r) * L);
    len[r] = f.len[r];
    off[r] = f.off[r];
  }
  int32_t* esc_only = &cdf[static_cast<size_t>(f.T) * L];
  esc_only[1] = 65536;
  len[f.T] = 2;
  off[f.T] = 5;
  int32_t* one_bin = &cdf[static_cast<size_t>(f.T + 1) * L];
  one_bin[1] = 65535;
  one_bin[2] = 65536;
  len[f.T + 1] = 3;
  off[f.T + 1] = -1;
  int32_t* wide = &cdf[static_cast<size_t>(f.T + 2) * L];
  for (int k = 1; k <= 200; ++k) wide[k] = k <= 100 ? 3 * k : 300 + (k - 100) * 600;  // 100 bins of 3/65536
  wide[201] = 65536;
  len[f.T + 2] = 202;
  off[f.T + 2] = -100;
  return lictrt::Tables(cdf.data(), T, L, len.data(), off.data());
}

void test_simd_matches_scalar(const Fixture& f) {
  int T = 0;
  const lictrt::Tables t = adversarial_tables(f, T);
  std::mt19937 rng(11);
  int cases = 0, corrupt = 0, rejected = 0;
  std::vector<int32_t> a, b;
  for (size_t n : {0, 1, 5, 8, 9, 31, 33, 257, 1000, 4097, 8191, 8192, 8200, 30011}) {
    for (double esc_rate : {0.0, 0.003, 0.2, 1.0}) {
      std::vector<int32_t> s(n), idx(n);
      for (size_t i = 0; i < n; ++i) {
        idx[i] = static_cast<int32_t>(rng() % T);
        s[i] = static_cast<int32_t>(rng() % 9) - 4;
        if (rng() % 1000 < esc_rate * 1000) s[i] = (rng() % 2 ? 1 : -1) * static_cast<int32_t>(rng() % 2000000000);
      }
      for (int k : {1, 3}) {
        const auto d = encode(t, s, idx, lictrt::Mode::Fast, k);
        CHECK(decode_outcome(t, d, idx, false, a) == "ok" && a == s);
        CHECK(decode_outcome(t, d, idx, true, b) == "ok" && b == s);
        ++cases;
        if (n < 1000 || k != 1) continue;
        for (int m = 0; m < 40; ++m, ++corrupt) {  // damaged streams: same symbols or the same error
          auto c = d;
          const int kind = static_cast<int>(rng() % 3);
          if (kind == 0)
            c[2 + rng() % (c.size() - 2)] ^= static_cast<uint8_t>(1u << (rng() % 8));
          else if (kind == 1)
            c[2 + rng() % (c.size() - 2)] = static_cast<uint8_t>(rng());
          else
            c.resize(c.size() - 2 * (1 + rng() % 64));
          const std::string ea = decode_outcome(t, c, idx, false, a), eb = decode_outcome(t, c, idx, true, b);
          if (ea != eb || a != b) std::fprintf(stderr, "simd/scalar differ: '%s' vs '%s'\n", ea.c_str(), eb.c_str());
          CHECK(ea == eb && a == b);
          rejected += ea != "ok";
        }
      }
    }
  }
  std::printf("fast decoder (%s vs scalar): %d round trips and %d damaged streams (%d rejected) agree\n",
              lictrt::detail::simd_enabled() ? "AVX2" : "no AVX2 path here, so scalar", cases, corrupt, rejected);
}

/// The AVX2 decoder's fast hint layouts (TableData::fast_hint): a coarse table whose 16-slot buckets hold up to 16
/// one-slot bins (long forward steps), a plain coarse table, a dense table (200 bins of ~82 slots: too many
/// forward steps at 16 slots per bucket, so fine), and a coarse-eligible table after it (fine by position). Symbols are
/// uniform over the bins, so the forward steps are frequent.
void test_fast_hint_layouts() {
  const int T = 4, L = 202;
  std::vector<int32_t> cdf(static_cast<size_t>(T) * L, 0), len(T), off{-20, 1, -100, 3};
  int32_t* steps = &cdf[0];  // 30 bins of one 14-bit slot, then 10 wide bins
  for (int k = 1; k <= 30; ++k) steps[k] = 4 * k;
  for (int k = 31; k <= 40; ++k) steps[k] = k < 40 ? 120 + (k - 30) * 6541 : 65536;
  len[0] = 41;
  for (int r : {1, 3}) {
    int32_t* plain = &cdf[static_cast<size_t>(r) * L];
    plain[1] = 20000;
    plain[2] = 45000;
    plain[3] = 65536;
    len[r] = 4;
  }
  int32_t* dense = &cdf[static_cast<size_t>(2) * L];
  for (int k = 1; k <= 200; ++k) dense[k] = 327 * k;
  dense[201] = 65536;
  len[2] = 202;
  const lictrt::Tables t(cdf.data(), T, L, len.data(), off.data());
  CHECK(t.data().coarse_tables == 2);
  CHECK(t.data().fast_hint.size() == 2 * 1024 + 2 * 4096);
  std::mt19937 rng(5);
  std::vector<int32_t> a, b;
  for (size_t n : {40, 4100, 50000}) {
    std::vector<int32_t> s(n), idx(n);
    for (size_t i = 0; i < n; ++i) {
      idx[i] = static_cast<int32_t>(rng() % T);
      s[i] = off[idx[i]] + static_cast<int32_t>(rng() % (len[idx[i]] - 1));  // escapes included
    }
    const auto d = encode(t, s, idx, lictrt::Mode::Fast);
    CHECK(decode_outcome(t, d, idx, false, a) == "ok" && a == s);
    CHECK(decode_outcome(t, d, idx, true, b) == "ok" && b == s);
  }
}

void test_fast_format() {
  const int32_t cdf[4] = {0, 40000, 60000, 65536}, len[1] = {4}, off[1] = {0};
  const lictrt::Tables t(cdf, 1, 4, len, off);
  // n = 0: header (format 2, precision code 1 = 14 bits, 1 lane), one substream, the initial state 2^16.
  const auto empty = encode(t, {}, {}, lictrt::Mode::Fast);
  CHECK((empty == std::vector<uint8_t>{0x90, 1, 0, 0, 1, 0}));
  std::vector<int32_t> s(20000), idx(20000, 0), out;
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<int32_t>(i % 3);
  auto d = encode(t, s, idx, lictrt::Mode::Fast);
  CHECK(d[0] == (0x80 | 0x10 | 5) && d[1] == 1);  // 32 lanes
  CHECK((d.size() - 2) % 2 == 0);
  for (uint8_t b0 :
       {0x25, 0x45, 0xC5, 0x86, 0x95 ^ 0x30, 0x95 ^ 0x10}) {  // v1 (2x), version 3, 64 lanes, precisions 12/16
    auto c = d;
    c[0] = b0;
    CHECK(decode_outcome(t, c, idx, false, out) != "ok");
  }
  auto v1 = d;
  v1[0] = 0x23;
  CHECK(decode_outcome(t, v1, idx, false, out).find("no longer supported") != std::string::npos);
}

void test_container() {
  lictrt::ContainerHeader h;
  h.height = 512;
  h.width = 768;
  h.pad_multiple = 64;
  h.plan_kind = 1;
  for (int i = 0; i < 32; ++i) h.model_hash[i] = static_cast<uint8_t>(i * 7);
  std::vector<lictrt::ContainerStream> s(2);
  s[0].kind = "z";
  s[0].symbols = 3;
  s[0].payload = {1, 2, 3, 4, 5};
  s[1].kind = "y";
  s[1].symbols = 0;
  const auto d = lictrt::pack_container(h, s);
  CHECK(d.size() == lictrt::kContainerFixedBytes + 2 * lictrt::kContainerStreamBytes + 4 + 5);
  lictrt::ContainerHeader h2;
  std::vector<lictrt::ContainerStream> s2;
  lictrt::unpack_container(d.data(), d.size(), h2, s2);
  CHECK(h2.height == 512 && h2.width == 768 && h2.model_hash == h.model_hash && h2.plan_kind == 1);
  CHECK(s2.size() == 2 && s2[0].kind == "z" && s2[0].payload == s[0].payload && s2[1].payload.empty());
  auto unpack = [&](const std::vector<uint8_t>& b) { lictrt::unpack_container(b.data(), b.size(), h2, s2); };
  for (size_t cut = 0; cut < d.size(); ++cut)
    CHECK(throws<lictrt::BitstreamError>([&] { unpack(std::vector<uint8_t>(d.begin(), d.begin() + cut)); }));
  for (size_t i = 0; i < d.size(); ++i) {  // any single byte change is rejected (CRCs or magic)
    auto c = d;
    c[i] ^= 0x40;
    CHECK(throws<lictrt::BitstreamError>([&] { unpack(c); }));
  }
  auto major = d;
  major[4] = 2;
  CHECK(throws<lictrt::BitstreamError>([&] { unpack(major); }));
  s[0].kind = "a-kind-name-that-is-too-long";
  CHECK(throws<lictrt::InvalidArgument>([&] { lictrt::pack_container(h, s); }));
}

}  // namespace

int main() {
  test_crc();
  const char* names[] = {"gc_lowrate", "gc_mid", "gc_escapes", "eb_factorized", "gc_four"};
  for (const char* name : names) {
    const Fixture f = load(std::string(LICTRT_FIXTURE_DIR) + "/" + name + ".bin");
    if (f.T) test_fixture(f, name);
  }
  const Fixture f = load(std::string(LICTRT_FIXTURE_DIR) + "/gc_escapes.bin");
  if (f.T) {
    test_round_trips(f);
    test_corrupt(f);
    test_simd_matches_scalar(f);
  }
  test_fast_hint_layouts();
  test_fast_format();
  test_container();
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("lictrt coder_test: all checks passed\n");
  return 0;
}
