// Entry points of the CPU kernels: argument checks, the choice between the AVX2 and portable compilations, a
// std::thread Parallel, and fp16 conversion.
#include "cpu_kernels.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace lictrt {
namespace cpu {
namespace {

std::atomic<bool> g_force_scalar{false};

// LICTRT_OPS_SCALAR set to anything but "" or "0".
bool envScalar() {
  char const* v = std::getenv("LICTRT_OPS_SCALAR");
  return v && v[0] && !(v[0] == '0' && !v[1]);
}

bool cpuHasAvx2() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

struct PoolCtx {
  int threads;
};

void runThreads(void* ctx, void (*fn)(void*, size_t), void* arg, size_t n) {
  size_t const t = std::min<size_t>(static_cast<size_t>(static_cast<PoolCtx*>(ctx)->threads), n);
  if (t <= 1) {
    for (size_t i = 0; i < n; ++i) fn(arg, i);
    return;
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(arg, i);
  };
  std::vector<std::thread> pool;
  for (size_t i = 1; i < t; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

PoolCtx g_pools[65] = {};

bool validDims(Ss2dShape const& s) { return s.B >= 0 && s.Di >= 0 && s.H >= 0 && s.W >= 0 && s.N >= 0; }

}  // namespace

Parallel threadPool(int threads) {
  threads = threads < 1 ? 1 : (threads > 64 ? 64 : threads);
  g_pools[threads].threads = threads;
  return Parallel{runThreads, &g_pools[threads]};
}

void setForceScalar(bool on) { g_force_scalar.store(on, std::memory_order_relaxed); }

bool simdEnabled() {
  static bool const available = detail::avx2::compiled() && cpuHasAvx2() && !envScalar();
  return available && !g_force_scalar.load(std::memory_order_relaxed);
}

float expFmaPeak(int64_t iters) {
  return simdEnabled() ? detail::avx2::expFmaPeak(iters) : detail::portable::expFmaPeak(iters);
}

float halfToFloat(uint16_t h) {
  uint32_t const sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while (!(mant & 0x400u));
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t const sign = (x >> 16) & 0x8000u;
  uint32_t const ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (ax < 0x38800000u) {                                               // below 2^-14: subnormal or zero
    if (ax < 0x33000000u) return static_cast<uint16_t>(sign);           // below 2^-25: rounds to 0
    uint32_t const e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t const shift = 126 - e;  // 14..24 -> value = m >> (shift) in units of 2^-24
    uint32_t r = m >> shift;
    uint32_t const rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = ((ax >> 13) - (112u << 10));
  uint32_t const rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

char const* ss2dForward(void const* u, void const* dts, float const* dtWeight, float const* A, void const* Bs,
                        void const* Cs, float const* D, float const* deltaBias, void* y, Ss2dShape const& s,
                        bool deltaSoftplus, DType io, Parallel const& par) {
  if (!validDims(s) || s.R < 0) return "SelectiveScan2D: negative dimension";
  if (s.B * s.Di * s.H * s.W == 0) return nullptr;
  if (!u || (s.R && (!dts || !dtWeight)) || !A || !Bs || !Cs || !D || !y || !par.run)
    return "SelectiveScan2D: null pointer";
  if (simdEnabled()) {
    detail::avx2::ss2dForward(u, dts, dtWeight, A, Bs, Cs, D, deltaBias, y, s, deltaSoftplus, io, par);
  } else {
    detail::portable::ss2dForward(u, dts, dtWeight, A, Bs, Cs, D, deltaBias, y, s, deltaSoftplus, io, par);
  }
  return nullptr;
}

char const* ss2dBackward(float const* u, float const* delta, float const* A, float const* Bs, float const* Cs,
                         float const* D, float const* deltaBias, float const* dy, float* du, float* ddelta, float* dA,
                         float* dBs, float* dCs, float* dD, float* dDeltaBias, Ss2dShape const& s, bool deltaSoftplus,
                         Parallel const& par) {
  if (!validDims(s)) return "SelectiveScan2D backward: negative dimension";
  if (!u || !delta || !A || !Bs || !Cs || !D || !dy || !par.run) return "SelectiveScan2D backward: null pointer";
  int64_t const L = s.H * s.W;
  if (s.B * s.Di * L == 0) {  // empty: gradients of the weights are zero
    if (dA) std::memset(dA, 0, sizeof(float) * 4 * s.Di * s.N);
    if (dD) std::memset(dD, 0, sizeof(float) * 4 * s.Di);
    if (dDeltaBias) std::memset(dDeltaBias, 0, sizeof(float) * 4 * s.Di);
    if (dBs) std::memset(dBs, 0, sizeof(float) * s.B * 4 * s.N * L);
    if (dCs) std::memset(dCs, 0, sizeof(float) * s.B * 4 * s.N * L);
    return nullptr;
  }
  if (simdEnabled()) {
    detail::avx2::ss2dBackward(u, delta, A, Bs, Cs, D, deltaBias, dy, du, ddelta, dA, dBs, dCs, dD, dDeltaBias, s,
                               deltaSoftplus, par);
  } else {
    detail::portable::ss2dBackward(u, delta, A, Bs, Cs, D, deltaBias, dy, du, ddelta, dA, dBs, dCs, dD, dDeltaBias, s,
                                   deltaSoftplus, par);
  }
  return nullptr;
}

char const* gdnForward(void const* x, float const* gamma, float const* beta, void* y, int64_t B, int64_t C, int64_t HW,
                       bool inverse, DType io, Parallel const& par) {
  if (B < 0 || C < 0 || HW < 0) return "GeneralizedDivisiveNorm: negative dimension";
  if (B * C * HW == 0) return nullptr;
  if (!x || !gamma || !beta || !y || !par.run) return "GeneralizedDivisiveNorm: null pointer";
  if (simdEnabled()) {
    detail::avx2::gdnForward(x, gamma, beta, y, B, C, HW, inverse, io, par);
  } else {
    detail::portable::gdnForward(x, gamma, beta, y, B, C, HW, inverse, io, par);
  }
  return nullptr;
}

}  // namespace cpu
}  // namespace lictrt
