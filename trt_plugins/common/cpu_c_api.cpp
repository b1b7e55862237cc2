// The C API of cpu_c_api.h over the CPU kernels of cpu_kernels.h.
#include "cpu_c_api.h"

#include "cpu_kernels.h"

namespace {
thread_local char const* t_error = "";

int report(char const* err) {
  t_error = err ? err : "";
  return err ? 1 : 0;
}
}  // namespace

using lictrt::cpu::DType;
using lictrt::cpu::Ss2dShape;

LICTRT_CPU_API char const* lictrt_cpu_last_error() { return t_error; }

LICTRT_CPU_API int lictrt_cpu_simd_enabled() { return lictrt::cpu::simdEnabled() ? 1 : 0; }

LICTRT_CPU_API void lictrt_cpu_force_scalar(int on) { lictrt::cpu::setForceScalar(on != 0); }

LICTRT_CPU_API float lictrt_cpu_exp_fma_peak(int64_t iters) { return lictrt::cpu::expFmaPeak(iters); }

LICTRT_CPU_API int lictrt_cpu_ss2d_forward(void const* u, void const* dts, float const* dt_weight, float const* A,
                                           void const* Bs, void const* Cs, float const* D, float const* delta_bias,
                                           void* y, int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N, int64_t R,
                                           int delta_softplus, int dtype, int threads) {
  if (dtype != 0 && dtype != 1) return report("SelectiveScan2D: dtype must be 0 (fp32) or 1 (fp16)");
  return report(lictrt::cpu::ss2dForward(u, dts, dt_weight, A, Bs, Cs, D, delta_bias, y, Ss2dShape{B, Di, H, W, N, R},
                                         delta_softplus != 0, static_cast<DType>(dtype),
                                         lictrt::cpu::threadPool(threads)));
}

LICTRT_CPU_API int lictrt_cpu_ss2d_backward(float const* u, float const* delta, float const* A, float const* Bs,
                                            float const* Cs, float const* D, float const* delta_bias, float const* dy,
                                            float* du, float* ddelta, float* dA, float* dBs, float* dCs, float* dD,
                                            float* d_delta_bias, int64_t B, int64_t Di, int64_t H, int64_t W, int64_t N,
                                            int delta_softplus, int threads) {
  return report(lictrt::cpu::ss2dBackward(u, delta, A, Bs, Cs, D, delta_bias, dy, du, ddelta, dA, dBs, dCs, dD,
                                          d_delta_bias, Ss2dShape{B, Di, H, W, N}, delta_softplus != 0,
                                          lictrt::cpu::threadPool(threads)));
}

LICTRT_CPU_API int lictrt_cpu_gdn_forward(void const* x, float const* gamma, float const* beta, void* y, int64_t B,
                                          int64_t C, int64_t HW, int inverse, int dtype, int threads) {
  if (dtype != 0 && dtype != 1) return report("GeneralizedDivisiveNorm: dtype must be 0 (fp32) or 1 (fp16)");
  return report(lictrt::cpu::gdnForward(x, gamma, beta, y, B, C, HW, inverse != 0, static_cast<DType>(dtype),
                                        lictrt::cpu::threadPool(threads)));
}

LICTRT_CPU_API int lictrt_cpu_has_onnxruntime_ops() {
#ifdef LICTRT_WITH_ONNXRUNTIME
  return 1;
#else
  return 0;
#endif
}
