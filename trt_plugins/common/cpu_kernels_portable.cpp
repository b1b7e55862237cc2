// The CPU kernel bodies compiled as portable C++ (any ISA; the reference the AVX2 path must match bit for bit).
#include "cpu_kernels.h"

#define LICTRT_VEC_AVX2 0
#define LICTRT_VEC_NS vec_portable
#define LICTRT_KERNEL_NS portable
#include "cpu_vec.h"
#include "../generalized_divisive_norm/generalized_divisive_norm_cpu_body.h"
#include "../selective_scan_2d/selective_scan_2d_cpu_body.h"
