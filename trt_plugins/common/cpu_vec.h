// An 8-lane fp32 vector for the CPU kernels, compiled twice: once as AVX2+FMA intrinsics (LICTRT_VEC_AVX2=1, in
// a translation unit built with -mavx2 -mfma -mf16c) and once as plain C++ over float[8] (LICTRT_VEC_AVX2=0, any
// ISA). Every operation is the same IEEE operation in both (fma is a fused multiply-add, std::fma in the portable
// form; the files are compiled with -ffp-contract=off so nothing else is fused), and the transcendental functions
// below are written once on top of them, so the two paths give bit-identical results.
//
// Include once per translation unit, inside the namespace that names the instruction set
// (lictrt::cpu::avx2 or lictrt::cpu::portable), so the two compilations never share a symbol.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if LICTRT_VEC_AVX2
#include <immintrin.h>
#endif

#ifndef LICTRT_VEC_AVX2
#error "define LICTRT_VEC_AVX2 to 0 or 1 before including cpu_vec.h"
#endif

namespace lictrt {
namespace cpu {
namespace LICTRT_VEC_NS {

constexpr int kLanes = 8;

#if LICTRT_VEC_AVX2

struct F8 {
  __m256 v;
};
inline F8 zero() { return {_mm256_setzero_ps()}; }
inline F8 set1(float a) { return {_mm256_set1_ps(a)}; }
inline F8 load(float const* p) { return {_mm256_loadu_ps(p)}; }
inline void store(float* p, F8 a) { _mm256_storeu_ps(p, a.v); }
inline F8 operator+(F8 a, F8 b) { return {_mm256_add_ps(a.v, b.v)}; }
inline F8 operator-(F8 a, F8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline F8 operator/(F8 a, F8 b) { return {_mm256_div_ps(a.v, b.v)}; }
inline F8 fma(F8 a, F8 b, F8 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }  // a*b + c, one rounding
inline F8 sqrt(F8 a) { return {_mm256_sqrt_ps(a.v)}; }
inline F8 max(F8 a, F8 b) { return {_mm256_max_ps(a.v, b.v)}; }  // b where either is NaN
inline F8 min(F8 a, F8 b) { return {_mm256_min_ps(a.v, b.v)}; }
inline F8 roundNearest(F8 a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
// Lanes of `a` where x > t, else lanes of `b`.
inline F8 selectGreater(F8 x, F8 t, F8 a, F8 b) {
  return {_mm256_blendv_ps(b.v, a.v, _mm256_cmp_ps(x.v, t.v, _CMP_GT_OQ))};
}
// a * 2^n for integral n, by adding n to the exponent field of a (exact while the result is a normal number).
inline F8 scaleByPow2(F8 a, F8 n) {
  __m256i const e = _mm256_slli_epi32(_mm256_cvtps_epi32(n.v), 23);
  return {_mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(a.v), e))};
}
// True when |x| <= b in every lane (false for NaN).
inline bool allAbsLessEqual(F8 x, F8 b) {
  __m256 const ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x.v);
  return _mm256_movemask_ps(_mm256_cmp_ps(ax, b.v, _CMP_LE_OQ)) == 0xff;
}
inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
// dst[p*8 + l] = l < rows ? src[l*stride + p] : 0 for p < count (data movement only).
inline void interleave8(float const* src, int64_t stride, int rows, int64_t count, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= count; p += 8) {
    __m256 r[8];
    for (int l = 0; l < 8; ++l) r[l] = l < rows ? _mm256_loadu_ps(src + l * stride + p) : _mm256_setzero_ps();
    transpose8(r);
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (p + i) * 8, r[i]);
  }
  for (; p < count; ++p)
    for (int l = 0; l < 8; ++l) dst[p * 8 + l] = l < rows ? src[l * stride + p] : 0.0f;
}
// dst[l*stride + p] = src[p*8 + l] for l < rows, p < count.
inline void deinterleave8(float const* src, int64_t count, float* dst, int64_t stride, int rows) {
  int64_t p = 0;
  if (rows == 8) {
    for (; p + 8 <= count; p += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (p + i) * 8);
      transpose8(r);
      for (int l = 0; l < 8; ++l) _mm256_storeu_ps(dst + l * stride + p, r[l]);
    }
  }
  for (; p < count; ++p)
    for (int l = 0; l < rows; ++l) dst[l * stride + p] = src[p * 8 + l];
}
// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))
inline float hsum(F8 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));  // l0+l4 .. l3+l7
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                             // (0+2), (1+3)
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

#else  // portable

struct F8 {
  float v[kLanes];
};
#define LICTRT_F8_MAP(expr)                         \
  F8 r;                                             \
  for (int i = 0; i < kLanes; ++i) r.v[i] = (expr); \
  return r
inline F8 zero() { LICTRT_F8_MAP(0.0f); }
inline F8 set1(float a) { LICTRT_F8_MAP(a); }
inline F8 load(float const* p) { LICTRT_F8_MAP(p[i]); }
inline void store(float* p, F8 a) { std::memcpy(p, a.v, sizeof a.v); }
inline F8 operator+(F8 a, F8 b) { LICTRT_F8_MAP(a.v[i] + b.v[i]); }
inline F8 operator-(F8 a, F8 b) { LICTRT_F8_MAP(a.v[i] - b.v[i]); }
inline F8 operator*(F8 a, F8 b) { LICTRT_F8_MAP(a.v[i] * b.v[i]); }
inline F8 operator/(F8 a, F8 b) { LICTRT_F8_MAP(a.v[i] / b.v[i]); }
inline F8 fma(F8 a, F8 b, F8 c) { LICTRT_F8_MAP(std::fma(a.v[i], b.v[i], c.v[i])); }
inline F8 sqrt(F8 a) { LICTRT_F8_MAP(std::sqrt(a.v[i])); }
inline F8 max(F8 a, F8 b) { LICTRT_F8_MAP(a.v[i] > b.v[i] ? a.v[i] : b.v[i]); }  // as maxps: b unless a > b
inline F8 min(F8 a, F8 b) { LICTRT_F8_MAP(a.v[i] < b.v[i] ? a.v[i] : b.v[i]); }
inline F8 roundNearest(F8 a) { LICTRT_F8_MAP(std::nearbyint(a.v[i])); }
inline F8 selectGreater(F8 x, F8 t, F8 a, F8 b) { LICTRT_F8_MAP(x.v[i] > t.v[i] ? a.v[i] : b.v[i]); }
inline float fromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t toBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline F8 scaleByPow2(F8 a, F8 n) {
  LICTRT_F8_MAP(fromBits(toBits(a.v[i]) + (static_cast<uint32_t>(static_cast<int32_t>(n.v[i])) << 23)));
}
inline bool allAbsLessEqual(F8 x, F8 b) {
  for (int i = 0; i < kLanes; ++i)
    if (!(std::fabs(x.v[i]) <= b.v[i])) return false;
  return true;
}
#undef LICTRT_F8_MAP
inline void interleave8(float const* src, int64_t stride, int rows, int64_t count, float* dst) {
  for (int64_t p = 0; p < count; ++p)
    for (int l = 0; l < kLanes; ++l) dst[p * kLanes + l] = l < rows ? src[l * stride + p] : 0.0f;
}
inline void deinterleave8(float const* src, int64_t count, float* dst, int64_t stride, int rows) {
  for (int l = 0; l < rows; ++l)
    for (int64_t p = 0; p < count; ++p) dst[l * stride + p] = src[p * kLanes + l];
}
inline float hsum(F8 a) {
  float s0 = a.v[0] + a.v[4], s1 = a.v[1] + a.v[5], s2 = a.v[2] + a.v[6], s3 = a.v[3] + a.v[7];
  return (s0 + s2) + (s1 + s3);
}

#endif

constexpr float kLog2e = 1.44269504088896341f;

// 2^t for t in [-125, 127] (kExp2Max below is the caller's bound when it skips the clamp): relative error < 2e-8
// beyond fp32 rounding. 2^f on f = t - round(t) in [-0.5, 0.5] by a degree-6 polynomial, then round(t) is added to
// the exponent field (the result is a normal number on the whole range).
inline F8 exp2InRange(F8 t) {
  F8 const n = roundNearest(t);
  F8 const f = t - n;  // exact
  F8 p = set1(1.49908679e-4f);
  p = fma(p, f, set1(1.33930880e-3f));
  p = fma(p, f, set1(9.61967371e-3f));
  p = fma(p, f, set1(5.55034727e-2f));
  p = fma(p, f, set1(2.40226373e-1f));
  p = fma(p, f, set1(6.93147182e-1f));
  p = fma(p, f, set1(1.0f));
  return scaleByPow2(p, n);
}

// 2^t with t clamped to [-125, 127]: below -125 it gives 2^-125 (about 2.4e-38, treated as zero by every consumer).
inline F8 exp2(F8 t) { return exp2InRange(min(max(t, set1(-125.0f)), set1(127.0f))); }

// |t| <= kExp2Max (a margin below 125 for the rounding of t) needs no clamp: exp2InRange(t) == exp2(t).
constexpr float kExp2Max = 124.0f;

inline F8 exp(F8 x) { return exp2(x * set1(kLog2e)); }

// softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(z), z = exp(-|x|) in (0, 1], with log1p(z) = z * q(z) and q
// a degree-8 polynomial (least-squares fit on Chebyshev nodes of [0, 1]; relative error of z * q(z) in fp32 below
// 2e-7). No division, logarithm or select; above x = 20 the result is x itself, as torch's threshold gives.
inline F8 softplus(F8 x) {
  F8 const z = exp(min(x, zero() - x));
  F8 q = set1(5.253457929939032e-3f);
  q = fma(q, z, set1(-2.958850748836994e-2f));
  q = fma(q, z, set1(7.836166769266129e-2f));
  q = fma(q, z, set1(-1.3674770295619965e-1f));
  q = fma(q, z, set1(1.9111430644989014e-1f));
  q = fma(q, z, set1(-2.4844369292259216e-1f));
  q = fma(q, z, set1(3.3319270610809326e-1f));
  q = fma(q, z, set1(-4.9999502301216125e-1f));
  q = fma(q, z, set1(1.0f));
  return max(x, zero()) + z * q;
}

// d softplus / dx = 1 / (1 + exp(-x)), and 1 above 20.
inline F8 sigmoid(F8 x) {
  F8 const one = set1(1.0f);
  F8 s = one / (one + exp(zero() - min(x, set1(20.0f))));
  return selectGreater(x, set1(20.0f), one, s);
}

}  // namespace LICTRT_VEC_NS
}  // namespace cpu
}  // namespace lictrt
