// Launch and shared-memory spellings used by the .cu files, so that the same kernel source compiles with nvcc
// (real CUDA) or with a host C++ compiler and LICTRT_CPU_EMULATION defined (see cpu_emulation.h).
#pragma once

#ifdef LICTRT_CPU_EMULATION
#include "cpu_emulation.h"
#else
#include <cuda_runtime.h>
// LICTRT_LAUNCH(kernel, grid, block, smem, stream)(args...): kernel must be a plain name (use a local pointer
// for template instances, whose commas would split the macro arguments).
#define LICTRT_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define LICTRT_DYNAMIC_SMEM(type, name) extern __shared__ type name[]
#endif
