// SelectiveScan2D CUDA kernels: the SS2D core with four scan directions read by index (no copies).
//
// Contract: export/op_contracts.py (SELECTIVE_SCAN_2D).  Per batch b, direction k, channel c, state n:
//   delta = sum_r dt_weight[k*Di+c,r] * dts[b,k,r,p]   (dt_proj, formed where delta is loaded: see below)
//   dt = softplus(delta + bias);  h = exp(dt*A)*h + dt*Bs[b,k,n,p]*u[b,c,p];
//   y[b,c,p] += sum_n Cs[b,k,n,p]*h[n] + D*u[b,c,p]
// with p = p_k(t): k=0 row-major, k=1 column-major, k=2/3 the same reversed.
//
// dt_proj is fused into the loads: each thread forms delta for its (channel, position) from the R dts rows, which
// all channels of a direction share, as fma steps in order r = 0..R-1 from 0 (the CPU kernel's order, so both give
// the same delta bits); no [B,4Di,L] tensor is written anywhere.
// Parallel (chunked) scan, three phases, all state in fp32 registers:
//   1. chunk state:  every chunk is walked from h=0; its end state h_end[n] and sum(dt) are stored.
//                    Because A is constant along a row, the chunk's decay is exp(A[n] * sum(dt)).
//   2. carry:        one thread per (b,k,c,n) walks the chunks in scan order: h_in[j] = carry;
//                    carry = exp(A*sumdt[j])*carry + h_end[j]   (h_in overwrites h_end in place).
//   3. output:       every chunk is walked again from h_in, producing y.
// Two axes, each with a memory mapping that keeps loads coalesced:
//   axis 0 (k=0,2, row-major): chunks are kChunk0 contiguous positions; a warp owns 32 channels and
//     stages 32-position tiles of u/delta through shared memory (coalesced loads, transposed reads), delta
//     formed from dts as the tile is staged;
//     Bs/Cs tiles are shared by the whole block (all channels use the same B/C).
//   axis 1 (k=1,3, column-major): chunks are segments of kChunk1 rows of one column; the 32 lanes of a
//     warp own 32 adjacent columns, so each step reads 32 consecutive positions.
// Direction merge (deterministic, no atomics): the axis-0 output kernel writes acc = y0 (+= y2, same
// thread), the axis-1 output kernel adds y1 and then writes y = acc + y3.  The summation order is fixed:
// ((y0 + y2) + y1) + y3.  acc is the fp32 output itself, or an fp32 workspace buffer for fp16 output.
#include "../common/cuda_compat.h"
#include "../common/cuda_half.h"
#include "../common/lictrt_kernels.h"

#include <cuda_fp16.h>
#include <stdint.h>

namespace {

constexpr int kChunk0 = 512;  // axis-0 chunk length in positions (multiple of 32)
constexpr int kChunk1 = 256;  // axis-1 chunk length in rows
constexpr int kWarps0 = 4;    // warps per block in the axis-0 kernels (32 channels each)
constexpr int kRows1 = 4;     // channels per block in the axis-1 kernels (blockDim = 32 x kRows1)
constexpr float kLog2e = 1.4426950408889634f;

using lictrt_cuda::from_f32;
using lictrt_cuda::to_f32;

// torch.nn.functional.softplus with its default threshold (x > 20 -> x).
__device__ __forceinline__ int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

// delta of one (channel, position): sum_r w[r] * d[r * L], fma steps in order r = 0..R-1 from 0.
template <typename T>
__device__ __forceinline__ float dt_proj(const float* w, const T* d, int64_t R, int64_t L) {
  float acc = 0.f;
  for (int64_t r = 0; r < R; ++r) acc = fmaf(w[r], to_f32(d[r * L]), acc);
  return acc;
}

// Shape and derived sizes shared by all kernels.
struct Geo {
  int64_t B, Di, H, W, N, L;
  int64_t R;    // dt rank
  int64_t nC0;  // axis-0 chunks per (b, c) row
  int64_t nH1;  // axis-1 row segments per column
  int64_t nC1;  // axis-1 chunks per (b, c) row = W * nH1
  int softplus;
};

// Workspace views.  h[k]: [B, Di, nC_k, N] chunk end states (phase 1) then chunk entry states (phase 2).
// s[k]: [B, Di, nC_k] sum of dt per chunk.  acc: [B, Di, L] fp32 accumulator (== y for fp32 output).
struct Work {
  float* h[4];
  float* s[4];
  float* acc;
};

struct Args {
  const void* u;
  const void* dts;         // [B,4,R,L], the activation type
  const float* dt_weight;  // [4Di,R]
  const float* A;
  const void* Bs;
  const void* Cs;
  const float* D;
  const float* bias;
  void* y;
};

// ------------------------------------------------------------------------------------------ axis 0
// grid (nC0, ceil(Di / (32*kWarps0)), B), block 32*kWarps0.  OUT=false: phase 1; OUT=true: phase 3.
template <typename T, int NMAX, bool OUT>
__global__ void __launch_bounds__(32 * kWarps0) ss2d_axis0(Args a, Geo g, Work w) {
  __shared__ float s_u[kWarps0][32][33];  // [warp][channel][position]; y overwrites u in OUT mode
  __shared__ float s_d[kWarps0][32][33];
  __shared__ float s_B[NMAX][32];
  __shared__ float s_C[OUT ? NMAX : 1][32];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, j = blockIdx.x;
  const int64_t c_warp = (int64_t)blockIdx.y * (32 * kWarps0) + warp * 32;  // first channel of this warp
  const int64_t c = c_warp + lane;                                          // this lane's channel
  const bool valid = c < g.Di;
  const int64_t p0 = j * kChunk0;
  const int len = (int)min64(kChunk0, g.L - p0);
  const int ntiles = (len + 31) / 32;
  const T* u = static_cast<const T*>(a.u);
  const T* dts = static_cast<const T*>(a.dts);
  const T* Bs = static_cast<const T*>(a.Bs);
  const T* Cs = static_cast<const T*>(a.Cs);

#pragma unroll
  for (int r = 0; r < 2; ++r) {  // r=0: direction 0 (forward), r=1: direction 2 (reverse)
    const int k = 2 * r;
    const int64_t ch = k * g.Di + c;
    float a2[NMAX], h[NMAX];
    float Dk = 0.f, bias = 0.f, sumdt = 0.f;
    const int64_t hidx = ((b * g.Di + c) * g.nC0 + j) * g.N;
#pragma unroll
    for (int n = 0; n < NMAX; ++n) {
      a2[n] = (valid && n < g.N) ? a.A[ch * g.N + n] * kLog2e : 0.f;
      h[n] = (OUT && valid && n < g.N) ? w.h[k][hidx + n] : 0.f;
    }
    if (valid) {
      Dk = OUT ? a.D[ch] : 0.f;
      bias = a.bias ? a.bias[ch] : 0.f;
    }
    for (int it = 0; it < ntiles; ++it) {
      const int tile = r ? ntiles - 1 - it : it;
      const int64_t q0 = p0 + (int64_t)tile * 32;
      const int tl = (int)min64(32, p0 + len - q0);
      __syncthreads();  // previous tile fully consumed (s_B/s_C are shared by the block)
      for (int row = 0; row < 32; ++row) {
        const int64_t cc = c_warp + row;
        if (cc < g.Di && lane < tl) {
          s_u[warp][row][lane] = to_f32(u[(b * g.Di + cc) * g.L + q0 + lane]);
          s_d[warp][row][lane] =
              dt_proj(a.dt_weight + (k * g.Di + cc) * g.R, dts + (b * 4 + k) * g.R * g.L + q0 + lane, g.R, g.L);
        }
      }
      for (int e = threadIdx.x; e < NMAX * 32; e += blockDim.x) {
        const int n = e >> 5, t = e & 31;
        const bool ok = n < g.N && t < tl;
        const int64_t bi = ((b * 4 + k) * g.N + n) * g.L + q0 + t;
        s_B[n][t] = ok ? to_f32(Bs[bi]) : 0.f;
        if (OUT) s_C[n][t] = ok ? to_f32(Cs[bi]) : 0.f;
      }
      __syncthreads();
      if (valid) {
        for (int st = 0; st < tl; ++st) {
          const int t = r ? tl - 1 - st : st;
          const float uu = s_u[warp][lane][t];
          float dt = s_d[warp][lane][t] + bias;
          if (g.softplus) dt = softplus(dt);
          const float du = dt * uu;
          float yv = Dk * uu;
          sumdt += dt;
#pragma unroll
          for (int n = 0; n < NMAX; ++n) {
            if (n < g.N) {
              h[n] = exp2f(dt * a2[n]) * h[n] + du * s_B[n][t];
              if (OUT) yv += s_C[n][t] * h[n];
            }
          }
          if (OUT) s_u[warp][lane][t] = yv;
        }
      }
      if (OUT) {
        __syncwarp();
        for (int row = 0; row < 32; ++row) {
          const int64_t cc = c_warp + row;
          if (cc < g.Di && lane < tl) {
            float* dst = w.acc + (b * g.Di + cc) * g.L + q0 + lane;
            // r=0 writes y0; r=1 adds y2 to the value this same lane wrote in r=0.
            *dst = r ? *dst + s_u[warp][row][lane] : s_u[warp][row][lane];
          }
        }
      }
    }
    if (!OUT && valid) {
#pragma unroll
      for (int n = 0; n < NMAX; ++n)
        if (n < g.N) w.h[k][hidx + n] = h[n];
      w.s[k][(b * g.Di + c) * g.nC0 + j] = sumdt;
    }
  }
}

// ------------------------------------------------------------------------------------------ axis 1
// grid (ceil(W/32) * nH1, ceil(Di / kRows1), B), block (32, kRows1).  Lane = column, threadIdx.y = channel.
template <typename T, int NMAX, bool OUT>
__global__ void __launch_bounds__(32 * kRows1) ss2d_axis1(Args a, Geo g, Work w) {
  const int64_t nWB = (g.W + 31) / 32;
  const int64_t wb = blockIdx.x % nWB, hs = blockIdx.x / nWB;
  const int64_t col = wb * 32 + threadIdx.x;
  const int64_t c = (int64_t)blockIdx.y * kRows1 + threadIdx.y;
  const int64_t b = blockIdx.z;
  if (col >= g.W || c >= g.Di) return;  // no block-level synchronisation below
  const int64_t h0 = hs * kChunk1;
  const int64_t h1 = min64(g.H, h0 + kChunk1);
  const int64_t j = col * g.nH1 + hs;  // chunk index in column-major scan order
  const T* u = static_cast<const T*>(a.u);
  const T* dts = static_cast<const T*>(a.dts);
  const T* Bs = static_cast<const T*>(a.Bs);
  const T* Cs = static_cast<const T*>(a.Cs);
  const T* u_row = u + (b * g.Di + c) * g.L;
  float* acc_row = w.acc + (b * g.Di + c) * g.L;

#pragma unroll
  for (int r = 0; r < 2; ++r) {  // r=0: direction 1 (down the column), r=1: direction 3 (up)
    const int k = 1 + 2 * r;
    const int64_t ch = k * g.Di + c;
    const T* dts_k = dts + (b * 4 + k) * g.R * g.L;
    const float* w_row = a.dt_weight + (k * g.Di + c) * g.R;
    const T* B_k = Bs + (b * 4 + k) * g.N * g.L;
    const T* C_k = Cs + (b * 4 + k) * g.N * g.L;
    const int64_t hidx = ((b * g.Di + c) * g.nC1 + j) * g.N;
    float a2[NMAX], h[NMAX];
#pragma unroll
    for (int n = 0; n < NMAX; ++n) {
      a2[n] = n < g.N ? a.A[ch * g.N + n] * kLog2e : 0.f;
      h[n] = (OUT && n < g.N) ? w.h[k][hidx + n] : 0.f;
    }
    const float Dk = OUT ? a.D[ch] : 0.f;
    const float bias = a.bias ? a.bias[ch] : 0.f;
    float sumdt = 0.f;
    for (int64_t i = 0; i < h1 - h0; ++i) {
      const int64_t row = r ? h1 - 1 - i : h0 + i;
      const int64_t p = row * g.W + col;
      const float uu = to_f32(u_row[p]);
      float dt = dt_proj(w_row, dts_k + p, g.R, g.L) + bias;
      if (g.softplus) dt = softplus(dt);
      const float du = dt * uu;
      float yv = Dk * uu;
      sumdt += dt;
#pragma unroll
      for (int n = 0; n < NMAX; ++n) {
        if (n < g.N) {
          h[n] = exp2f(dt * a2[n]) * h[n] + du * to_f32(B_k[n * g.L + p]);
          if (OUT) yv += to_f32(C_k[n * g.L + p]) * h[n];
        }
      }
      if (OUT) {
        if (r == 0) {
          acc_row[p] += yv;  // (y0 + y2) + y1
        } else {
          static_cast<T*>(a.y)[(b * g.Di + c) * g.L + p] = from_f32<T>(acc_row[p] + yv);  // + y3
        }
      }
    }
    if (!OUT) {
#pragma unroll
      for (int n = 0; n < NMAX; ++n)
        if (n < g.N) w.h[k][hidx + n] = h[n];
      w.s[k][(b * g.Di + c) * g.nC1 + j] = sumdt;
    }
  }
}

// ------------------------------------------------------------------------------------------ carry
// One thread per (b, k, c, n): turns chunk end states into chunk entry states, in scan order.
__global__ void ss2d_carry(const float* A, Geo g, Work w) {
  const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t total = g.B * 4 * g.Di * g.N;
  if (idx >= total) return;
  const int64_t n = idx % g.N;
  const int64_t c = (idx / g.N) % g.Di;
  const int k = (int)((idx / (g.N * g.Di)) % 4);
  const int64_t b = idx / (g.N * g.Di * 4);
  const int64_t nC = (k % 2 == 0) ? g.nC0 : g.nC1;
  const bool reverse = k >= 2;
  const float a2 = A[(k * g.Di + c) * g.N + n] * kLog2e;
  float* h = w.h[k] + (b * g.Di + c) * nC * g.N + n;
  const float* s = w.s[k] + (b * g.Di + c) * nC;
  float carry = 0.f;
  for (int64_t jj = 0; jj < nC; ++jj) {
    const int64_t j = reverse ? nC - 1 - jj : jj;
    const float h_end = h[j * g.N];
    h[j * g.N] = carry;
    carry = exp2f(a2 * s[j]) * carry + h_end;
  }
}

Geo make_geo(int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N, int64_t R, int softplus) {
  Geo g;
  g.R = R;
  g.B = B;
  g.Di = Di;
  g.H = H;
  g.W = W;
  g.N = N;
  g.L = H * W;
  g.nC0 = (g.L + kChunk0 - 1) / kChunk0;
  g.nH1 = (H + kChunk1 - 1) / kChunk1;
  g.nC1 = W * g.nH1;
  g.softplus = softplus;
  return g;
}

// Workspace layout in floats: per direction the chunk states and sums, then acc only when the output is not fp32.
size_t workspace_floats(const Geo& g, int dtype, size_t off_h[4], size_t off_s[4], size_t* off_acc) {
  size_t off = 0;
  for (int k = 0; k < 4; ++k) {
    const int64_t nC = (k % 2 == 0) ? g.nC0 : g.nC1;
    off_h[k] = off;
    off += (size_t)(g.B * g.Di * nC * g.N);
    off_s[k] = off;
    off += (size_t)(g.B * g.Di * nC);
    off = (off + 31) & ~size_t(31);  // 128-byte alignment of every view
  }
  *off_acc = off;
  if (dtype != LICTRT_FP32) off += (size_t)(g.B * g.Di * g.L);
  return off;
}

int check_shape(int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N, int64_t R, int dtype) {
  if (B < 0 || Di < 0 || H < 0 || W < 0 || N < 1 || R < 0) return LICTRT_ERR_ARGUMENT;
  if (dtype != LICTRT_FP32 && dtype != LICTRT_FP16) return LICTRT_ERR_ARGUMENT;
  if (N > LICTRT_SS2D_MAX_DSTATE) return LICTRT_ERR_UNSUPPORTED;
  if (B > 65535 || (Di + kRows1 - 1) / kRows1 > 65535) return LICTRT_ERR_UNSUPPORTED;  // grid.z / grid.y
  return LICTRT_OK;
}

template <typename T, int NMAX>
int launch_all(const Args& a, const Geo& g, const Work& w, cudaStream_t stream) {
  const dim3 block0(32 * kWarps0);
  const dim3 grid0((unsigned)g.nC0, (unsigned)((g.Di + 32 * kWarps0 - 1) / (32 * kWarps0)), (unsigned)g.B);
  const dim3 block1(32, kRows1);
  const dim3 grid1((unsigned)(((g.W + 31) / 32) * g.nH1), (unsigned)((g.Di + kRows1 - 1) / kRows1), (unsigned)g.B);
  const int64_t carry_threads = g.B * 4 * g.Di * g.N;
  auto* state0 = ss2d_axis0<T, NMAX, false>;
  auto* state1 = ss2d_axis1<T, NMAX, false>;
  auto* out0 = ss2d_axis0<T, NMAX, true>;
  auto* out1 = ss2d_axis1<T, NMAX, true>;
  LICTRT_LAUNCH(state0, grid0, block0, 0, stream)(a, g, w);
  LICTRT_LAUNCH(state1, grid1, block1, 0, stream)(a, g, w);
  LICTRT_LAUNCH(ss2d_carry, dim3((unsigned)((carry_threads + 255) / 256)), dim3(256), 0, stream)(a.A, g, w);
  LICTRT_LAUNCH(out0, grid0, block0, 0, stream)(a, g, w);
  LICTRT_LAUNCH(out1, grid1, block1, 0, stream)(a, g, w);
  return cudaGetLastError() == cudaSuccess ? LICTRT_OK : LICTRT_ERR_CUDA;
}

}  // namespace

extern "C" LICTRT_API int lictrt_ss2d_workspace_size(int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N, int64_t R,
                                                     int dtype, size_t* bytes) {
  if (!bytes) return LICTRT_ERR_ARGUMENT;
  const int st = check_shape(B, Di, H, W, N, R, dtype);
  if (st != LICTRT_OK) return st;
  const Geo g = make_geo(B, Di, H, W, N, R, 1);
  size_t oh[4], os[4], oa;
  *bytes = workspace_floats(g, dtype, oh, os, &oa) * sizeof(float);
  return LICTRT_OK;
}

extern "C" LICTRT_API int lictrt_ss2d_forward(const void* u, const void* dts, const float* dt_weight, const float* A,
                                              const void* Bs, const void* Cs, const float* D, const float* delta_bias,
                                              void* y, int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N,
                                              int64_t R, int delta_softplus, int dtype, void* workspace,
                                              size_t workspace_bytes, cudaStream_t stream) {
  const int st = check_shape(B, Di, H, W, N, R, dtype);
  if (st != LICTRT_OK) return st;
  if (delta_softplus != 0 && delta_softplus != 1) return LICTRT_ERR_ARGUMENT;
  if (B == 0 || Di == 0 || H == 0 || W == 0) return LICTRT_OK;  // empty output
  if (!u || (R && (!dts || !dt_weight)) || !A || !Bs || !Cs || !D || !y) return LICTRT_ERR_ARGUMENT;
  const Geo g = make_geo(B, Di, H, W, N, R, delta_softplus);
  size_t oh[4], os[4], oa;
  const size_t need = workspace_floats(g, dtype, oh, os, &oa) * sizeof(float);
  if (!workspace || workspace_bytes < need) return LICTRT_ERR_WORKSPACE;
  float* ws = static_cast<float*>(workspace);
  Work w;
  for (int k = 0; k < 4; ++k) {
    w.h[k] = ws + oh[k];
    w.s[k] = ws + os[k];
  }
  w.acc = dtype == LICTRT_FP32 ? static_cast<float*>(y) : ws + oa;
  const Args a{u, dts, dt_weight, A, Bs, Cs, D, delta_bias, y};
  if (dtype == LICTRT_FP32)
    return N <= 4 ? launch_all<float, 4>(a, g, w, stream) : launch_all<float, 16>(a, g, w, stream);
  return N <= 4 ? launch_all<__half, 4>(a, g, w, stream) : launch_all<__half, 16>(a, g, w, stream);
}
