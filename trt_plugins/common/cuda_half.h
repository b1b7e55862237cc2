// fp32 <-> storage-type conversions shared by the CUDA kernels: state and accumulation stay in fp32 whatever the
// tensor type (float or __half). Include after cuda_compat.h, so that the same spellings compile under nvcc and
// under the CPU emulation.
#pragma once

#include <cuda_fp16.h>

namespace lictrt_cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}

}  // namespace lictrt_cuda
