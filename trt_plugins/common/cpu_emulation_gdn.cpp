// The GeneralizedDivisiveNorm kernel source compiled for the CPU emulation (liblictrt_kernels_cpu.so, tests only).
#define LICTRT_CPU_EMULATION 1
#include "../generalized_divisive_norm/generalized_divisive_norm.cu"
