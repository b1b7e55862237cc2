// The CPU kernel bodies compiled for AVX2+FMA+F16C (this file alone gets -mavx2 -mfma -mf16c; cpu_kernels.cpp
// calls it only on CPUs that have them). On other targets, or with LICTRT_NO_SIMD, only compiled() is defined.
#include "cpu_kernels.h"

#if !defined(LICTRT_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define LICTRT_VEC_AVX2 1
#define LICTRT_VEC_NS vec_avx2
#define LICTRT_KERNEL_NS avx2
#include "cpu_vec.h"
#include "../generalized_divisive_norm/generalized_divisive_norm_cpu_body.h"
#include "../selective_scan_2d/selective_scan_2d_cpu_body.h"

bool lictrt::cpu::detail::avx2::compiled() { return true; }
#else
#include <cstdlib>
namespace lictrt {
namespace cpu {
namespace detail {
namespace avx2 {
bool compiled() { return false; }
float expFmaPeak(int64_t) { std::abort(); }
void ss2dForward(void const*, void const*, float const*, float const*, void const*, void const*, float const*,
                 float const*, void*, Ss2dShape const&, bool, DType, Parallel const&) {
  std::abort();
}
void ss2dBackward(float const*, float const*, float const*, float const*, float const*, float const*, float const*,
                  float const*, float*, float*, float*, float*, float*, float*, float*, Ss2dShape const&, bool,
                  Parallel const&) {
  std::abort();
}
void gdnForward(void const*, float const*, float const*, void*, int64_t, int64_t, int64_t, bool, DType,
                Parallel const&) {
  std::abort();
}
}  // namespace avx2
}  // namespace detail
}  // namespace cpu
}  // namespace lictrt
#endif
