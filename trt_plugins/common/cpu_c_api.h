// C API of the lictrt CPU kernels (liblictrt_cpu_ops, defined in cpu_c_api.cpp): for ctypes (tests, benchmarks)
// and the PyTorch operator library (torch_ops.cpp). Pointers are host pointers to contiguous tensors; `threads`
// std::threads run the fixed work items (results do not depend on it). Every function returns 0, or 1 with
// lictrt_cpu_last_error() set (thread-local).
#pragma once

#include <cstdint>

#if defined(__GNUC__) || defined(__clang__)
#define LICTRT_CPU_API extern "C" __attribute__((visibility("default")))
#else
#define LICTRT_CPU_API extern "C"
#endif

LICTRT_CPU_API char const* lictrt_cpu_last_error();

// 1 when the AVX2 path runs (CPU support, LICTRT_OPS_SCALAR unset, not forced off).
LICTRT_CPU_API int lictrt_cpu_simd_enabled();

LICTRT_CPU_API void lictrt_cpu_force_scalar(int on);

// iters * 64 register-resident state updates (the scan's exp + FMA ceiling); returns a checksum.
LICTRT_CPU_API float lictrt_cpu_exp_fma_peak(int64_t iters);

// SelectiveScan2D forward; dtype: 0 fp32, 1 fp16 (u, dts, Bs, Cs, y); dt_weight, A, D, delta_bias fp32
// (delta_bias may be null); R: the dt rank (dts [B,4,R,H,W], dt_weight [4Di,R]).
LICTRT_CPU_API int lictrt_cpu_ss2d_forward(void const* u, void const* dts, float const* dt_weight, float const* A,
                                           void const* Bs, void const* Cs, float const* D, float const* delta_bias,
                                           void* y, int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N, int64_t R,
                                           int delta_softplus, int dtype, int threads);

// Gradients of sum(dy * y) of the scan after dt_proj (delta [B,4Di,H,W]), all fp32; any output may be null when
// not wanted.
LICTRT_CPU_API int lictrt_cpu_ss2d_backward(float const* u, float const* delta, float const* A, float const* Bs,
                                            float const* Cs, float const* D, float const* delta_bias, float const* dy,
                                            float* du, float* ddelta, float* dA, float* dBs, float* dCs, float* dD,
                                            float* d_delta_bias, int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N,
                                            int delta_softplus, int threads);

// GeneralizedDivisiveNorm forward; dtype as above for x and y.
LICTRT_CPU_API int lictrt_cpu_gdn_forward(void const* x, float const* gamma, float const* beta, void* y, int64_t B,
                                          int64_t C, int64_t HW, int inverse, int dtype, int threads);

// 1 when this build registers the ONNX Runtime custom ops (RegisterCustomOps is defined).
LICTRT_CPU_API int lictrt_cpu_has_onnxruntime_ops();
