// SelectiveScan2D on the CPU: the kernel bodies, compiled once per instruction set (see cpu_vec.h) by
// selective_scan_2d_cpu.cpp (portable) and selective_scan_2d_cpu_avx2.cpp (AVX2+FMA).
//
// Forward: B and C of every (batch, direction) are first laid out in the direction's visiting order, [L][2N] (one
// work item each). Then one work item per (batch, block of 8 channels): dt_proj is applied per direction as the
// block's step sizes are formed (R fma steps per position from the dts rows, which are shared by all channels, so
// no [B,4Di,L] delta exists anywhere); the 8 channels are the vector lanes, held
// interleaved by position in per-thread scratch, row-major for directions 0 and 2 and column-major (a tiled
// transpose) for 1 and 3, so each direction walks contiguous memory forwards (0, 1) or backwards (2, 3). The item
// runs the directions in the order 0, 2, 1, 3 with the state h[N] of the 8 channels in fp32 and adds each
// direction's outputs in place, so y = ((y0 + y2) + y1) + y3. Inputs are read from the natural layout (no copies
// of whole tensors).
//
// Backward (of the scan after dt_proj: delta given): one work item per (batch, direction). A forward sweep stores the
// state every 64 steps; a reverse sweep over the chunks recomputes each chunk's states from its checkpoint and runs the
// adjoint recurrence dh_{t-1} = exp(dt_t A) * (dh_t + C_t dy_t) for all channel blocks, reducing the channel sums of
// dBs and dCs in a fixed order (lane-wise over blocks, then across the 8 lanes). du of each direction goes to its own
// buffer; du, dA, dD and d delta_bias are summed over directions / batches afterwards, in order.
#pragma once

#include "../common/cpu_kernels.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

namespace lictrt {
namespace cpu {
namespace detail {
namespace LICTRT_KERNEL_NS {

using namespace ::lictrt::cpu::LICTRT_VEC_NS;

constexpr int64_t kChunk = 64;

inline float toF(float v) { return v; }
inline float toF(uint16_t v) { return halfToFloat(v); }
inline void fromF(float v, float* p) { *p = v; }
inline void fromF(float v, uint16_t* p) { *p = floatToHalf(v); }

// Natural positions visited by direction k (export/op_contracts.py): 0 row-major, 1 column-major, 2 and 3 the
// same reversed. next() returns p(t) for t = 0, 1, 2, ...
class DirectionWalk {
 public:
  DirectionWalk(int k, int64_t H, int64_t W) : k_(k), H_(H), W_(W), L_(H * W) {
    if (k_ >= 2) {  // s = L-1-t walks backwards from the last position
      s_ = L_ - 1;
      row_ = (L_ - 1) % H_;
      col_ = (L_ - 1) / H_;
    }
  }
  int64_t next() {
    int64_t p = (k_ % 2 == 0) ? s_ : row_ * W_ + col_;
    if (k_ < 2) {
      ++s_;
      if (++row_ == H_) row_ = 0, ++col_;
    } else {
      --s_;
      if (--row_ < 0) row_ = H_ - 1, --col_;
    }
    return p;
  }

 private:
  int k_;
  int64_t H_, W_, L_;
  int64_t s_ = 0, row_ = 0, col_ = 0;  // s = sequence index in the direction's base order (0 / 1)
};

// --------------------------------------------------------------------------------------------------- forward

template <typename E>
struct FwdArgs {
  E const* u;
  E const* dts;           // [B][4][R][L]
  float const* dtWeight;  // [4Di][R]
  float const* A;
  E const* Bs;
  E const* Cs;
  float const* D;
  float const* bias;
  E* y;
  Ss2dShape s;
  bool softplus;
  int64_t blocks;  // channel blocks of 8 per batch
  float* BC;       // [B][4][L][2N]: Bs then Cs of direction k in its visiting order (filled by bcItem)
};

// BC[b][k][t] = (Bs[b,k,:,p(t)], Cs[b,k,:,p(t)]): B and C in the order direction k visits them, shared by all
// channel blocks (the inner loop then reads one contiguous row per step).
template <typename E>
void bcItem(FwdArgs<E> const& a, int64_t item) {
  int64_t const N = a.s.N, H = a.s.H, W = a.s.W, L = H * W;
  int64_t const b = item / 4;
  int const k = static_cast<int>(item % 4);
  E const* Bk = a.Bs + (b * 4 + k) * N * L;
  E const* Ck = a.Cs + (b * 4 + k) * N * L;
  float* out = a.BC + item * L * 2 * N;
  DirectionWalk walk(k, H, W);
  int64_t pos[kChunk];
  for (int64_t t0 = 0; t0 < L; t0 += kChunk) {
    int64_t const T = std::min(kChunk, L - t0);
    for (int64_t j = 0; j < T; ++j) pos[j] = walk.next();
    for (int64_t n = 0; n < N; ++n) {
      E const* Bn = Bk + n * L;
      E const* Cn = Ck + n * L;
      float* o = out + t0 * 2 * N;
      for (int64_t j = 0; j < T; ++j) o[j * 2 * N + n] = toF(Bn[pos[j]]), o[j * 2 * N + N + n] = toF(Cn[pos[j]]);
    }
  }
}

// dst[p*8 + l] = src[l*stride + p] as fp32 (0 for l >= rows), p < count.
template <typename E>
void loadRows(E const* src, int64_t stride, int rows, int64_t count, float* dst) {
  if constexpr (std::is_same_v<E, float>) {
    interleave8(src, stride, rows, count, dst);
  } else {
    constexpr int64_t kStep = 256;
    float tmp[kLanes * kStep];
    for (int64_t p0 = 0; p0 < count; p0 += kStep) {
      int64_t const n = std::min(kStep, count - p0);
      for (int l = 0; l < rows; ++l)
        for (int64_t i = 0; i < n; ++i) tmp[l * kStep + i] = toF(src[l * stride + p0 + i]);
      interleave8(tmp, kStep, rows, n, dst + p0 * kLanes);
    }
  }
}

// dst[l*stride + p] = src[p*8 + l] in E, l < rows, p < count.
template <typename E>
void storeRows(float const* src, int64_t count, E* dst, int64_t stride, int rows) {
  if constexpr (std::is_same_v<E, float>) {
    deinterleave8(src, count, dst, stride, rows);
  } else {
    for (int l = 0; l < rows; ++l)
      for (int64_t p = 0; p < count; ++p) fromF(src[p * kLanes + l], dst + l * stride + p);
  }
}

struct Buffer {  // uninitialised floats
  explicit Buffer(int64_t n) : p(new float[static_cast<size_t>(n)]) {}
  std::unique_ptr<float[]> p;
  float* get() const { return p.get(); }
};

// n uninitialised floats of the calling thread, kept for its next work items and calls (it grows to the largest
// request and is freed when the thread ends): a work item's buffers are then not fresh pages every time.
inline float* threadScratch(int64_t n) {
  thread_local std::unique_ptr<float[]> buf;
  thread_local int64_t capacity = 0;
  if (n > capacity) buf.reset(), buf.reset(new float[static_cast<size_t>(n)]), capacity = n;
  return buf.get();
}

// Images of 8 channels interleaved by position (32 bytes per position) are transposed in tiles of kTile x kTile
// positions, so both sides stay in cache: directions 1 and 3 then run over column-major buffers, and every direction
// walks contiguous memory.
constexpr int64_t kTile = 16;

// dst[(c*rows + r)*8 + l] = src[(r*cols + c)*8 + l]: a rows x cols image of 8-lane positions transposed (row-major ->
// column-major as transpose(src, H, W, dst); back as transpose(src, W, H, dst)).
inline void transpose(float const* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      int64_t const r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) store(dst + (c * rows + r) * kLanes, load(src + (r * cols + c) * kLanes));
    }
}

// X[p*8 + l] = softplus(delta_l(p) + bias[l]) (no softplus unless `sp`; lanes without a channel have weights 0),
// row-major, where delta_l(p) = sum_r w[r][l] * dts[r*L + p] is dt_proj of lane l's channel: fma steps in order
// r = 0..R-1 from 0 (the contract's order; every ISA path gives the same bits).
template <typename E>
void foldDt(E const* dts, int64_t R, int64_t L, F8 const* w, F8 bias, bool sp, float* X) {
  constexpr int64_t kStep = 64;  // positions per pass: the R rows' slices stay in L1
  constexpr int64_t kBlock = 4;  // positions per register block
  std::vector<float> tmpBuf(std::is_same_v<E, float> ? 0 : static_cast<size_t>(R * kStep));
  for (int64_t p0 = 0; p0 < L; p0 += kStep) {
    int64_t const n = std::min(kStep, L - p0);
    float const* d = nullptr;  // d[r*ld + j] = dts[r*L + p0 + j]
    int64_t ld = L;
    if constexpr (std::is_same_v<E, float>) {
      d = dts + p0;
    } else {
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < n; ++j) tmpBuf[r * kStep + j] = toF(dts[r * L + p0 + j]);
      d = tmpBuf.data(), ld = kStep;
    }
    float* const x = X + p0 * kLanes;
    int64_t j = 0;
    for (; j + kBlock <= n; j += kBlock) {
      F8 a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
      for (int64_t r = 0; r < R; ++r) {
        float const* dr = d + r * ld + j;
        a0 = fma(w[r], set1(dr[0]), a0);
        a1 = fma(w[r], set1(dr[1]), a1);
        a2 = fma(w[r], set1(dr[2]), a2);
        a3 = fma(w[r], set1(dr[3]), a3);
      }
      F8 const v[kBlock] = {a0 + bias, a1 + bias, a2 + bias, a3 + bias};
      for (int64_t i = 0; i < kBlock; ++i) store(x + (j + i) * kLanes, sp ? softplus(v[i]) : v[i]);
    }
    for (; j < n; ++j) {
      F8 a = zero();
      for (int64_t r = 0; r < R; ++r) a = fma(w[r], set1(d[r * ld + j]), a);
      F8 const v = a + bias;
      store(x + j * kLanes, sp ? softplus(v) : v);
    }
  }
}

// One direction of the recurrence for 8 channels over buffers laid out in the direction's base order (row-major
// for directions 0 and 2, column-major for 1 and 3), walked forwards (0, 1) or backwards (2, 3): X = dt, U = u,
// BCk = B and C in visiting order; writes (or, when `accumulate`, adds) y_t = sum_n C_t[n] h_t[n] + D u_t to Y at
// the same index. The sum over n runs as two interleaved partial sums (even n, odd n) added at the end. kN = N at
// compile time, or 0.
template <int kN>
void scanDirection(int64_t L, bool reverse, int64_t Nrt, float const* X, float const* U, float const* BCk,
                   F8 const* A2in, F8 Dv, float* Y, bool accumulate) {
  int64_t const N = kN ? kN : Nrt;
  F8 hbuf[kN ? kN : 1];
  std::vector<F8> hdyn(kN ? 0 : N, zero());
  F8* h = kN ? hbuf : hdyn.data();
  F8 A2buf[kN ? kN : 1];
  F8 const* A2 = A2in;
  if constexpr (kN != 0) {
    for (int n = 0; n < kN; ++n) hbuf[n] = zero(), A2buf[n] = A2in[n];
    A2 = A2buf;
  }
  // |dt| <= dtMax keeps every |dt * A2[n]| within kExp2Max: such steps skip exp2's clamp (same results).
  F8 amax = zero();
  for (int64_t n = 0; n < N; ++n) amax = max(max(A2[n], zero() - A2[n]), amax);
  F8 const dtMax = set1(kExp2Max) / max(amax, set1(1e-30f));
  int64_t const step = reverse ? -kLanes : kLanes;
  int64_t const first = reverse ? (L - 1) * kLanes : 0;
  X += first, U += first, Y += first;
  // One step over the states; kClamp: exp2 with its clamp, else exp2InRange.
  auto update = [&](auto kClamp, F8 dt, F8 dtu, float const* Bt, float const* Ct) {
    F8 y0 = zero(), y1 = zero();
    auto e = [&](F8 t) { return decltype(kClamp)::value ? exp2(t) : exp2InRange(t); };
    int64_t n = 0;
    for (; n + 1 < N; n += 2) {
      F8 const e0 = e(dt * A2[n]);
      F8 const e1 = e(dt * A2[n + 1]);
      h[n] = fma(e0, h[n], dtu * set1(Bt[n]));
      h[n + 1] = fma(e1, h[n + 1], dtu * set1(Bt[n + 1]));
      y0 = fma(set1(Ct[n]), h[n], y0);
      y1 = fma(set1(Ct[n + 1]), h[n + 1], y1);
    }
    if (n < N) {
      h[n] = fma(e(dt * A2[n]), h[n], dtu * set1(Bt[n]));
      y0 = fma(set1(Ct[n]), h[n], y0);
    }
    return y0 + y1;
  };
  for (int64_t t = 0; t < L; ++t, X += step, U += step, Y += step) {
    F8 const dt = load(X);
    F8 const uv = load(U);
    F8 const dtu = dt * uv;
    float const* Bt = BCk + t * 2 * N;
    float const* Ct = Bt + N;
    F8 const ys = allAbsLessEqual(dt, dtMax) ? update(std::false_type{}, dt, dtu, Bt, Ct)
                                             : update(std::true_type{}, dt, dtu, Bt, Ct);
    F8 const yv = fma(Dv, uv, ys);
    store(Y, accumulate ? load(Y) + yv : yv);
  }
}

template <typename E>
void fwdItem(FwdArgs<E> const& a, int64_t item) {
  int64_t const Di = a.s.Di, N = a.s.N, H = a.s.H, W = a.s.W, L = H * W;
  int64_t const b = item / a.blocks, c0 = (item % a.blocks) * kLanes;
  int const lanes = static_cast<int>(std::min<int64_t>(kLanes, Di - c0));
  // The 8 channels interleaved by position: U[p*8 + l] = u[b, c0+l, p] row-major and Uc the same column-major;
  // X: dt of the current direction in its base order; Y: y0 + y2 (row-major), Yc: Y column-major, + y1 + y3, in
  // U's place (U is not needed after directions 0 and 2). Directions 1 and 3 load dt row-major into Y (free once
  // Yc holds it) before transposing it into X.
  float* const U = threadScratch(4 * L * kLanes);
  float* const Uc = U + L * kLanes;
  float* const X = Uc + L * kLanes;
  float* const Y = X + L * kLanes;
  float* const Yc = U;
  loadRows(a.u + (b * Di + c0) * L, L, lanes, L, U);
  transpose(U, H, W, Uc);
  int64_t const R = a.s.R;
  std::vector<F8> A2(N), Wv(R);
  static constexpr int kOrder[4] = {0, 2, 1, 3};
  for (int oi = 0; oi < 4; ++oi) {
    int const k = kOrder[oi];
    bool const colMajor = k % 2 == 1;
    int64_t const ch0 = k * Di + c0;
    alignas(32) float tmp[kLanes];
    for (int64_t n = 0; n < N; ++n) {
      for (int l = 0; l < kLanes; ++l) tmp[l] = l < lanes ? a.A[(ch0 + l) * N + n] * kLog2e : 0.0f;
      A2[n] = load(tmp);
    }
    for (int l = 0; l < kLanes; ++l) tmp[l] = l < lanes ? a.D[ch0 + l] : 0.0f;
    F8 const Dv = load(tmp);
    for (int l = 0; l < kLanes; ++l) tmp[l] = (l < lanes && a.bias) ? a.bias[ch0 + l] : 0.0f;
    F8 const biasv = load(tmp);
    for (int64_t r = 0; r < R; ++r) {
      for (int l = 0; l < kLanes; ++l) tmp[l] = l < lanes ? a.dtWeight[(ch0 + l) * R + r] : 0.0f;
      Wv[r] = load(tmp);
    }
    if (oi == 2) transpose(Y, H, W, Yc);
    foldDt(a.dts + (b * 4 + k) * R * L, R, L, Wv.data(), biasv, a.softplus, colMajor ? Y : X);
    if (colMajor) transpose(Y, H, W, X);
    float const* BCk = a.BC + (b * 4 + k) * L * 2 * N;
    float const* const Uk = colMajor ? Uc : U;
    float* const Yk = colMajor ? Yc : Y;
    bool const reverse = k >= 2, accumulate = oi > 0;
    if (N == 16) {
      scanDirection<16>(L, reverse, N, X, Uk, BCk, A2.data(), Dv, Yk, accumulate);
    } else if (N == 4) {
      scanDirection<4>(L, reverse, N, X, Uk, BCk, A2.data(), Dv, Yk, accumulate);
    } else {
      scanDirection<0>(L, reverse, N, X, Uk, BCk, A2.data(), Dv, Yk, accumulate);
    }
  }
  transpose(Yc, W, H, Y);
  storeRows(Y, L, a.y + (b * Di + c0) * L, L, lanes);
}

template <typename E>
void fwdRun(void const* u, void const* dts, float const* dtWeight, float const* A, void const* Bs, void const* Cs,
            float const* D, float const* bias, void* y, Ss2dShape const& s, bool softplus, Parallel const& par) {
  FwdArgs<E> a{static_cast<E const*>(u),
               static_cast<E const*>(dts),
               dtWeight,
               A,
               static_cast<E const*>(Bs),
               static_cast<E const*>(Cs),
               D,
               bias,
               static_cast<E*>(y),
               s,
               softplus,
               (s.Di + kLanes - 1) / kLanes,
               nullptr};
  Buffer bc(s.B * 4 * s.H * s.W * 2 * s.N);
  a.BC = bc.get();
  par.run(
      par.ctx, [](void* p, size_t i) { bcItem(*static_cast<FwdArgs<E> const*>(p), static_cast<int64_t>(i)); }, &a,
      static_cast<size_t>(s.B * 4));
  par.run(
      par.ctx, [](void* p, size_t i) { fwdItem(*static_cast<FwdArgs<E> const*>(p), static_cast<int64_t>(i)); }, &a,
      static_cast<size_t>(s.B * a.blocks));
}

// The exp + FMA peak of one core: `iters` x 8 independent state updates h = fma(exp2InRange(dt*A), h, x) of 8 lanes
// (the scan's exp for steps within range),
// with every operand in registers (no loads, stores or output sum). Returns a checksum (keeps the work alive).
float expFmaPeak(int64_t iters) {
  F8 h[8], a[8];
  for (int i = 0; i < 8; ++i) h[i] = zero(), a[i] = set1(-0.05f * static_cast<float>(i + 1));
  F8 dt = set1(0.37f);
  F8 const x = set1(0.01f), step = set1(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 8; ++i) h[i] = fma(exp2InRange(dt * a[i]), h[i], x);
    dt = dt + step;  // a new exponent every step, as in the scan
  }
  F8 s = zero();
  for (int i = 0; i < 8; ++i) s = s + h[i];
  return hsum(s);
}

void ss2dForward(void const* u, void const* dts, float const* dtWeight, float const* A, void const* Bs, void const* Cs,
                 float const* D, float const* bias, void* y, Ss2dShape const& s, bool softplus, DType io,
                 Parallel const& par) {
  if (io == DType::kF32) {
    fwdRun<float>(u, dts, dtWeight, A, Bs, Cs, D, bias, y, s, softplus, par);
  } else {
    fwdRun<uint16_t>(u, dts, dtWeight, A, Bs, Cs, D, bias, y, s, softplus, par);
  }
}

// --------------------------------------------------------------------------------------------------- backward

struct BwdArgs {
  float const *u, *delta, *A, *Bs, *Cs, *D, *bias, *dy;
  float* duK;     // [4][B][Di][L] per-direction du
  float* ddelta;  // [B][4Di][L]
  float* dAb;     // [B][4Di][N] per-batch partial
  float *dBs, *dCs;
  float* dDb;     // [B][4Di]
  float* dbiasb;  // [B][4Di]
  Ss2dShape s;
  bool softplus;
};

void bwdItem(BwdArgs const& a, int64_t item) {
  int64_t const Di = a.s.Di, N = a.s.N, H = a.s.H, W = a.s.W, L = H * W, B = a.s.B;
  int64_t const b = item / 4;
  int const k = static_cast<int>(item % 4);
  int64_t const blocks = (Di + kLanes - 1) / kLanes, chunks = (L + kChunk - 1) / kChunk;
  // Per block constants.
  std::vector<F8> A2(blocks * N), Av(blocks * N), Dv(blocks), biasv(blocks);
  std::vector<int> lanesOf(blocks);
  alignas(32) float tmp[kLanes];
  for (int64_t blk = 0; blk < blocks; ++blk) {
    int64_t const c0 = blk * kLanes, ch0 = k * Di + c0;
    int const lanes = static_cast<int>(std::min<int64_t>(kLanes, Di - c0));
    lanesOf[blk] = lanes;
    for (int64_t n = 0; n < N; ++n) {
      for (int l = 0; l < kLanes; ++l) tmp[l] = l < lanes ? a.A[(ch0 + l) * N + n] : 0.0f;
      Av[blk * N + n] = load(tmp);
      A2[blk * N + n] = load(tmp) * set1(kLog2e);
    }
    for (int l = 0; l < kLanes; ++l) tmp[l] = l < lanes ? a.D[ch0 + l] : 0.0f;
    Dv[blk] = load(tmp);
    for (int l = 0; l < kLanes; ++l) tmp[l] = (l < lanes && a.bias) ? a.bias[ch0 + l] : 0.0f;
    biasv[blk] = load(tmp);
  }
  float const* Bk = a.Bs + (b * 4 + k) * N * L;
  float const* Ck = a.Cs + (b * 4 + k) * N * L;
  std::vector<int64_t> posAll(L);
  {
    DirectionWalk walk(k, H, W);
    for (int64_t t = 0; t < L; ++t) posAll[t] = walk.next();
  }
  alignas(32) float ub[kChunk * kLanes], db[kChunk * kLanes], draw[kChunk * kLanes], gb[kChunk * kLanes];
  std::vector<float> bb(kChunk * N), cb(kChunk * N);
  // Gathers chunk c of block blk: u, raw delta + bias, dt, dy (lanes beyond Di are 0).
  auto gather = [&](int64_t blk, int64_t t0, int64_t T, bool withDy) {
    int64_t const c0 = blk * kLanes, ch0 = k * Di + c0;
    for (int l = 0; l < kLanes; ++l) {
      if (l < lanesOf[blk]) {
        float const* ur = a.u + (b * Di + c0 + l) * L;
        float const* dr = a.delta + (b * 4 * Di + ch0 + l) * L;
        float const* gr = a.dy + (b * Di + c0 + l) * L;
        for (int64_t j = 0; j < T; ++j) {
          int64_t p = posAll[t0 + j];
          ub[j * kLanes + l] = ur[p];
          draw[j * kLanes + l] = dr[p];
          gb[j * kLanes + l] = withDy ? gr[p] : 0.0f;
        }
      } else {
        for (int64_t j = 0; j < T; ++j) ub[j * kLanes + l] = draw[j * kLanes + l] = gb[j * kLanes + l] = 0.0f;
      }
    }
    for (int64_t j = 0; j < T; ++j) {
      F8 d = load(draw + j * kLanes) + biasv[blk];
      store(draw + j * kLanes, d);
      store(db + j * kLanes, a.softplus ? softplus(d) : d);
    }
  };
  auto gatherBC = [&](int64_t t0, int64_t T) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < T; ++j) {
        int64_t p = posAll[t0 + j];
        bb[j * N + n] = Bk[n * L + p];
        cb[j * N + n] = Ck[n * L + p];
      }
  };
  // 1. forward sweep: checkpoint of h entering every chunk.
  std::vector<F8> ck(static_cast<size_t>(blocks * chunks * N));
  std::vector<F8> h(N);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    for (int64_t n = 0; n < N; ++n) h[n] = zero();
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t const t0 = c * kChunk, T = std::min(kChunk, L - t0);
      std::copy(h.begin(), h.end(), ck.begin() + (blk * chunks + c) * N);
      if (c == chunks - 1) break;
      gather(blk, t0, T, false);
      gatherBC(t0, T);
      for (int64_t j = 0; j < T; ++j) {
        F8 const dt = load(db + j * kLanes);
        F8 const dtu = dt * load(ub + j * kLanes);
        for (int64_t n = 0; n < N; ++n) h[n] = fma(exp2(dt * A2[blk * N + n]), h[n], dtu * set1(bb[j * N + n]));
      }
    }
  }
  // 2. reverse sweep.
  std::vector<F8> dh(blocks * N), dA(blocks * N), dD(blocks), dbias(blocks);
  for (auto* v : {&dh, &dA}) std::fill(v->begin(), v->end(), zero());
  std::fill(dD.begin(), dD.end(), zero());
  std::fill(dbias.begin(), dbias.end(), zero());
  std::vector<F8> hs(kChunk * N), decay(kChunk * N), dBacc(kChunk * N), dCacc(kChunk * N);
  float* duK = a.duK + (static_cast<int64_t>(k) * B + b) * Di * L;
  alignas(32) float dub[kChunk * kLanes], ddb[kChunk * kLanes];
  for (int64_t c = chunks - 1; c >= 0; --c) {
    int64_t const t0 = c * kChunk, T = std::min(kChunk, L - t0);
    gatherBC(t0, T);
    std::fill(dBacc.begin(), dBacc.end(), zero());
    std::fill(dCacc.begin(), dCacc.end(), zero());
    for (int64_t blk = 0; blk < blocks; ++blk) {
      gather(blk, t0, T, true);
      F8 const* A2b = &A2[blk * N];
      F8 const* Ab = &Av[blk * N];
      F8 const* h0 = &ck[(blk * chunks + c) * N];
      for (int64_t j = 0; j < T; ++j) {  // recompute the chunk's states
        F8 const dt = load(db + j * kLanes);
        F8 const dtu = dt * load(ub + j * kLanes);
        F8 const* hp = j ? &hs[(j - 1) * N] : h0;
        for (int64_t n = 0; n < N; ++n) {
          F8 const e = exp2(dt * A2b[n]);
          decay[j * N + n] = e;
          hs[j * N + n] = fma(e, hp[n], dtu * set1(bb[j * N + n]));
        }
      }
      F8* dhb = &dh[blk * N];
      F8* dAb = &dA[blk * N];
      for (int64_t j = T - 1; j >= 0; --j) {
        F8 const g = load(gb + j * kLanes);
        F8 const uv = load(ub + j * kLanes);
        F8 const dt = load(db + j * kLanes);
        F8 const dtu = dt * uv;
        F8 const* hp = j ? &hs[(j - 1) * N] : h0;
        F8 ddt = zero(), du = zero();
        for (int64_t n = 0; n < N; ++n) {
          F8 const Bn = set1(bb[j * N + n]);
          F8 const d = fma(g, set1(cb[j * N + n]), dhb[n]);  // dL/dh_t
          dCacc[j * N + n] = fma(g, hs[j * N + n], dCacc[j * N + n]);
          dBacc[j * N + n] = fma(d, dtu, dBacc[j * N + n]);
          F8 const dlog = d * hp[n] * decay[j * N + n];  // dL/d(dt*A)
          ddt = fma(dlog, Ab[n], ddt);
          ddt = fma(d * Bn, uv, ddt);
          dAb[n] = fma(dlog, dt, dAb[n]);
          du = fma(d * Bn, dt, du);
          dhb[n] = d * decay[j * N + n];
        }
        store(dub + j * kLanes, fma(Dv[blk], g, du));
        dD[blk] = fma(g, uv, dD[blk]);
        F8 const dx = a.softplus ? ddt * sigmoid(load(draw + j * kLanes)) : ddt;
        store(ddb + j * kLanes, dx);
        dbias[blk] = dbias[blk] + dx;
      }
      int64_t const c0 = blk * kLanes;
      for (int l = 0; l < lanesOf[blk]; ++l) {
        float* dur = duK + (c0 + l) * L;
        float* ddr = a.ddelta ? a.ddelta + (b * 4 * Di + k * Di + c0 + l) * L : nullptr;
        for (int64_t j = 0; j < T; ++j) {
          int64_t p = posAll[t0 + j];
          dur[p] = dub[j * kLanes + l];
          if (ddr) ddr[p] = ddb[j * kLanes + l];
        }
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t j = 0; j < T; ++j) {
        int64_t p = posAll[t0 + j];
        if (a.dBs) a.dBs[((b * 4 + k) * N + n) * L + p] = hsum(dBacc[j * N + n]);
        if (a.dCs) a.dCs[((b * 4 + k) * N + n) * L + p] = hsum(dCacc[j * N + n]);
      }
    }
  }
  for (int64_t blk = 0; blk < blocks; ++blk) {
    int64_t const ch0 = k * Di + blk * kLanes;
    for (int64_t n = 0; n < N; ++n) {
      store(tmp, dA[blk * N + n]);
      for (int l = 0; l < lanesOf[blk]; ++l) a.dAb[(b * 4 * Di + ch0 + l) * N + n] = tmp[l];
    }
    store(tmp, dD[blk]);
    for (int l = 0; l < lanesOf[blk]; ++l) a.dDb[b * 4 * Di + ch0 + l] = tmp[l];
    store(tmp, dbias[blk]);
    for (int l = 0; l < lanesOf[blk]; ++l) a.dbiasb[b * 4 * Di + ch0 + l] = tmp[l];
  }
}

void ss2dBackward(float const* u, float const* delta, float const* A, float const* Bs, float const* Cs, float const* D,
                  float const* bias, float const* dy, float* du, float* ddelta, float* dA, float* dBs, float* dCs,
                  float* dD, float* dbias, Ss2dShape const& s, bool softplus, Parallel const& par) {
  int64_t const B = s.B, Di = s.Di, N = s.N, L = s.H * s.W;
  std::vector<float> duK(static_cast<size_t>(4 * B * Di * L));
  std::vector<float> dAb(static_cast<size_t>(B * 4 * Di * N)), dDb(static_cast<size_t>(B * 4 * Di)),
      dbiasb(static_cast<size_t>(B * 4 * Di));
  BwdArgs a{u,          delta,         A, Bs,      Cs, D, bias, dy, duK.data(), ddelta, dAb.data(), dBs, dCs,
            dDb.data(), dbiasb.data(), s, softplus};
  par.run(
      par.ctx, [](void* p, size_t i) { bwdItem(*static_cast<BwdArgs const*>(p), static_cast<int64_t>(i)); }, &a,
      static_cast<size_t>(4 * B));
  // Fixed-order sums: du = ((du0 + du2) + du1) + du3 (the forward's merge order), partials over b in order.
  int64_t const plane = B * Di * L;
  if (du) {
    for (int64_t i = 0; i < plane; ++i) du[i] = ((duK[i] + duK[2 * plane + i]) + duK[plane + i]) + duK[3 * plane + i];
  }
  for (int64_t i = 0; i < 4 * Di * N; ++i) {
    float acc = 0.0f;
    for (int64_t b = 0; b < B; ++b) acc += dAb[b * 4 * Di * N + i];
    if (dA) dA[i] = acc;
  }
  for (int64_t i = 0; i < 4 * Di; ++i) {
    float accD = 0.0f, accB = 0.0f;
    for (int64_t b = 0; b < B; ++b) accD += dDb[b * 4 * Di + i], accB += dbiasb[b * 4 * Di + i];
    if (dD) dD[i] = accD;
    if (dbias) dbias[i] = accB;
  }
}

}  // namespace LICTRT_KERNEL_NS
}  // namespace detail
}  // namespace cpu
}  // namespace lictrt
