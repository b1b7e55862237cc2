// GeneralizedDivisiveNorm CUDA kernel: y = x / sqrt(beta + gamma @ x^2) (or x * sqrt(...) for IGDN), one pass.
//
// Contract: export/op_contracts.py (GENERALIZED_DIVISIVE_NORM).  x, y: [B, C, HW] fp32 or fp16; gamma [C, C]
// and beta [C] fp32.  A block owns 32 pixels of one image and all C channels: it stages x[:, pixels] in
// shared memory (one coalesced read of x), each thread then accumulates 4 output channels of one pixel in
// fp32 (x^2 never leaves fp32, so |x| > 256 is safe in fp16 graphs), and writes y (one write).
// gamma rows are read with warp-uniform addresses (broadcast loads, L1-resident).
#include "../common/cuda_compat.h"
#include "../common/cuda_half.h"
#include "../common/lictrt_kernels.h"

#include <cuda_fp16.h>
#include <stdint.h>

namespace {

constexpr int kPix = 32;    // pixels per block (= lanes)
constexpr int kGroups = 8;  // thread rows per block; each row handles 4 output channels at a time
constexpr int kOut = 4;     // output channels per thread per pass

using lictrt_cuda::from_f32;
using lictrt_cuda::to_f32;

// grid (ceil(HW / kPix), B), block (kPix, kGroups), dynamic shared memory C * kPix floats.
template <typename T>
__global__ void __launch_bounds__(kPix* kGroups)
    gdn_kernel(const T* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
               T* __restrict__ y, int C, int64_t HW, int inverse) {
  LICTRT_DYNAMIC_SMEM(float, s_x);  // [C][kPix]
  const int lane = threadIdx.x, grp = threadIdx.y;
  const int64_t b = blockIdx.y;
  const int64_t pix = (int64_t)blockIdx.x * kPix + lane;
  const bool valid = pix < HW;
  const T* xb = x + b * C * HW;
  for (int i = grp; i < C; i += kGroups) s_x[i * kPix + lane] = valid ? to_f32(xb[i * HW + pix]) : 0.f;
  __syncthreads();
  for (int i0 = grp * kOut; i0 < C; i0 += kGroups * kOut) {
    float acc[kOut];
    const float* grow[kOut];
#pragma unroll
    for (int q = 0; q < kOut; ++q) {
      const int i = min(i0 + q, C - 1);  // clamped rows are computed and discarded
      acc[q] = beta[i];
      grow[q] = gamma + (int64_t)i * C;
    }
    for (int jx = 0; jx < C; ++jx) {
      const float v = s_x[jx * kPix + lane];
      const float v2 = v * v;
#pragma unroll
      for (int q = 0; q < kOut; ++q) acc[q] = fmaf(grow[q][jx], v2, acc[q]);
    }
    if (valid) {
#pragma unroll
      for (int q = 0; q < kOut; ++q) {
        const int i = i0 + q;
        if (i < C) {
          const float v = s_x[i * kPix + lane];
          const float r = sqrtf(acc[q]);
          y[(b * C + i) * HW + pix] = from_f32<T>(inverse ? v * r : v / r);
        }
      }
    }
  }
}

template <typename T>
int launch(const void* x, const float* gamma, const float* beta, void* y, int64_t B, int64_t C, int64_t HW, int inverse,
           cudaStream_t stream) {
  const size_t smem = (size_t)C * kPix * sizeof(float);
  if (smem > 48 * 1024) {
    if (cudaFuncSetAttribute(gdn_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess)
      return LICTRT_ERR_CUDA;
  }
  const dim3 grid((unsigned)((HW + kPix - 1) / kPix), (unsigned)B);
  auto* kernel = gdn_kernel<T>;
  LICTRT_LAUNCH(kernel, grid, dim3(kPix, kGroups), smem, stream)(static_cast<const T*>(x), gamma, beta,
                                                                 static_cast<T*>(y), (int)C, HW, inverse);
  return cudaGetLastError() == cudaSuccess ? LICTRT_OK : LICTRT_ERR_CUDA;
}

}  // namespace

extern "C" LICTRT_API int lictrt_gdn_forward(const void* x, const float* gamma, const float* beta, void* y, int64_t B,
                                             int64_t C, int64_t HW, int inverse, int dtype, cudaStream_t stream) {
  if (B < 0 || C < 1 || HW < 0) return LICTRT_ERR_ARGUMENT;
  if (inverse != 0 && inverse != 1) return LICTRT_ERR_ARGUMENT;
  if (dtype != LICTRT_FP32 && dtype != LICTRT_FP16) return LICTRT_ERR_ARGUMENT;
  if (C > LICTRT_GDN_MAX_CHANNELS || B > 65535) return LICTRT_ERR_UNSUPPORTED;
  if (B == 0 || HW == 0) return LICTRT_OK;
  if (!x || !gamma || !beta || !y) return LICTRT_ERR_ARGUMENT;
  if (dtype == LICTRT_FP32) return launch<float>(x, gamma, beta, y, B, C, HW, inverse, stream);
  return launch<__half>(x, gamma, beta, y, B, C, HW, inverse, stream);
}
