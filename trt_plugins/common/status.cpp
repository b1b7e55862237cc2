// Host-only helpers of the kernels library (no CUDA calls).
#include "lictrt_kernels.h"

extern "C" LICTRT_API const char* lictrt_status_string(int status) {
  switch (status) {
    case LICTRT_OK:
      return "ok";
    case LICTRT_ERR_ARGUMENT:
      return "invalid argument";
    case LICTRT_ERR_UNSUPPORTED:
      return "unsupported shape";
    case LICTRT_ERR_WORKSPACE:
      return "workspace missing or too small";
    case LICTRT_ERR_CUDA:
      return "CUDA launch failed";
    default:
      return "unknown status";
  }
}

extern "C" LICTRT_API const char* lictrt_kernels_version(void) {
#ifdef LICTRT_CPU_EMULATION
  return "lictrt-kernels 1 (cpu emulation)";
#else
  return "lictrt-kernels 1 (cuda)";
#endif
}
