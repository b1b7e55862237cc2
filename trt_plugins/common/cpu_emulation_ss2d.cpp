// The SelectiveScan2D kernel source compiled for the CPU emulation (liblictrt_kernels_cpu.so, tests only).
#define LICTRT_CPU_EMULATION 1
#include "../selective_scan_2d/selective_scan_2d.cu"
