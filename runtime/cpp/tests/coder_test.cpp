// C++ tests of the lictrt coder and container: CompressAI-compat fixtures, round trips (0/1 symbols, escapes,
// substreams, incremental), corrupt input, container. Registered with ctest; exits non-zero on failure.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "lictrt/coder.hpp"
#include "lictrt/container.hpp"
#include "lictrt/crc32.hpp"

namespace {

int g_failures = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                        \
    }                                                                      \
  } while (0)

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

lictrt::Tables tables_of(const Fixture& f) { return lictrt::Tables(f.cdf.data(), f.T, f.L, f.len.data(), f.off.data()); }

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
      CHECK(throws<lictrt::BitstreamError>([&] { lictrt::decode(t, d.data(), cut, f.idx.data(), f.idx.size(), out.data(), m); }));
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
    std::printf("mode %d: %d/%d bit flips rejected by the coder, the other %d by the symbol CRC\n",
                static_cast<int>(m), detected, flips, by_crc);
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
  }
  test_container();
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("lictrt coder_test: all checks passed\n");
  return 0;
}
