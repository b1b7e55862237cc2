// lictrt CUDA kernels: the C ABI shared by the TensorRT plugins and the ctypes harness.
//
// Every launcher takes raw device pointers, shapes, an activation dtype, and a cudaStream_t; it only
// enqueues work (never synchronises) and returns a lictrt_status.  Shapes and arguments are checked on
// the host before any CUDA call, so argument errors are reported without touching the GPU.
#pragma once

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define LICTRT_API __declspec(dllexport)
#else
#define LICTRT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Activation dtype (u, delta, Bs, Cs, y of the scan; x, y of GDN).  Weights are always fp32.
enum lictrt_dtype { LICTRT_FP32 = 0, LICTRT_FP16 = 1 };

enum lictrt_status {
  LICTRT_OK = 0,
  LICTRT_ERR_ARGUMENT = 1,     // a null pointer, a negative size or an unknown enum value
  LICTRT_ERR_UNSUPPORTED = 2,  // a valid shape this build cannot run (e.g. d_state > 16, C > 1024)
  LICTRT_ERR_WORKSPACE = 3,    // workspace pointer null or smaller than lictrt_ss2d_workspace_size
  LICTRT_ERR_CUDA = 4,         // a kernel launch failed (cudaGetLastError after the launch)
};

// Human-readable name of a status code ("ok", "invalid argument", ...).
LICTRT_API const char* lictrt_status_string(int status);

// Library version string ("lictrt-kernels 1 (...)").
LICTRT_API const char* lictrt_kernels_version(void);

// ---------------------------------------------------------------- SelectiveScan2D
// Largest d_state (N) supported.
#define LICTRT_SS2D_MAX_DSTATE 16

// Bytes of device workspace lictrt_ss2d_forward needs for this shape (chunk states, chunk decay sums and, for
// fp16 output, an fp32 accumulator; dt_proj is fused, so R does not change it).  Host-only arithmetic.
LICTRT_API int lictrt_ss2d_workspace_size(int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N, int64_t R, int dtype,
                                          size_t* bytes);

// y[B,Di,H,W] = SelectiveScan2D(u[B,Di,H,W], dts[B,4,R,H,W], dt_weight[4Di,R], A[4Di,N], Bs[B,4,N,H,W],
//                               Cs[B,4,N,H,W], D[4Di], delta_bias[4Di])  -- see export/op_contracts.py.
// u, dts, Bs, Cs, y have `dtype`; dt_weight, A, D, delta_bias are fp32.  delta_bias may be NULL (zero bias).
// All tensors contiguous (NCHW-style row-major).  Deterministic: no atomics, fixed summation order.
LICTRT_API int lictrt_ss2d_forward(const void* u, const void* dts, const float* dt_weight, const float* A,
                                   const void* Bs, const void* Cs, const float* D, const float* delta_bias, void* y,
                                   int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N, int64_t R,
                                   int delta_softplus, int dtype, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream);

// ---------------------------------------------------------------- GeneralizedDivisiveNorm
#define LICTRT_GDN_MAX_CHANNELS 1024

// y = x / sqrt(beta + gamma @ x^2)  (inverse=0)  or  x * sqrt(...)  (inverse=1), per pixel, fp32 accumulation.
// x, y: [B,C,HW] with `dtype`; gamma [C,C] and beta [C] fp32.  No workspace.
LICTRT_API int lictrt_gdn_forward(const void* x, const float* gamma, const float* beta, void* y, int64_t B, int64_t C,
                                  int64_t HW, int inverse, int dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
