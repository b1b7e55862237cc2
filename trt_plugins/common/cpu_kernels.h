// The lictrt CPU kernels: one C++ implementation per op, shared by the ONNX Runtime custom-op library
// (ort_custom_ops.cpp), the C API that PyTorch calls (cpu_c_api.cpp) and the tests.
//
// Every kernel runs an 8-lane vector code path compiled twice: AVX2+FMA (chosen at run time when the CPU has
// AVX2, FMA and F16C) and portable C++; both give bit-identical results (see cpu_vec.h). LICTRT_OPS_SCALAR set
// to anything but "" or "0" forces the portable path (read once), as does setForceScalar(true).
//
// Work is cut into items fixed by the shapes alone (never by the thread count); every output element is written
// by one item with a fixed order of operations and every cross-item sum is done afterwards in a fixed order, so
// results are bit-identical for any number of threads and any scheduling.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lictrt {
namespace cpu {

enum class DType { kF32 = 0, kF16 = 1 };

// Runs fn(arg, i) for every i in [0, n), in any order and on any threads; returns when all are done.
struct Parallel {
  void (*run)(void* ctx, void (*fn)(void*, size_t), void* arg, size_t n) = nullptr;
  void* ctx = nullptr;
};

// A Parallel on `threads` std::threads (threads <= 1: the calling thread alone).
Parallel threadPool(int threads);

// True when the AVX2 path is compiled in, the CPU supports it, and neither LICTRT_OPS_SCALAR nor
// setForceScalar(true) asks for the portable path.
bool simdEnabled();
void setForceScalar(bool on);

// ------------------------------------------------------------------------------------------- SelectiveScan2D
// Contract: export/op_contracts.py SELECTIVE_SCAN_2D (natural layout, four directions read in place).
struct Ss2dShape {
  int64_t B, Di, H, W, N;
  int64_t R = 0;  // dt rank (forward only)
};

// y = SelectiveScan2D(u, dts, dt_weight, A, Bs, Cs, D, delta_bias); u, dts, Bs, Cs, y have `io`; dt_weight, A, D,
// delta_bias fp32 (delta_bias may be null). fp32 state and arithmetic; delta = sum_r dt_weight[ch,r] * dts[b,k,r,p]
// as fma steps in order r = 0..R-1 from 0. Directions are merged as ((y0 + y2) + y1) + y3.
// Returns nullptr, or a message for bad arguments.
char const* ss2dForward(void const* u, void const* dts, float const* dtWeight, float const* A, void const* Bs,
                        void const* Cs, float const* D, float const* deltaBias, void* y, Ss2dShape const& s,
                        bool deltaSoftplus, DType io, Parallel const& par);

// Gradients of sum(dy * y) of the scan after dt_proj (delta [B,4Di,H,W] in place of dts and dt_weight) w.r.t.
// every input, all fp32 (dy [B,Di,H,W]).
// Outputs (each may be null when not wanted, except that du needs nothing else): du [B,Di,H,W],
// ddelta [B,4Di,H,W], dA [4Di,N], dBs, dCs [B,4,N,H,W], dD [4Di], dDeltaBias [4Di]. The state is recomputed
// from checkpoints every 64 steps (memory O(Di·N·L/64) per (batch, direction)).
char const* ss2dBackward(float const* u, float const* delta, float const* A, float const* Bs, float const* Cs,
                         float const* D, float const* deltaBias, float const* dy, float* du, float* ddelta, float* dA,
                         float* dBs, float* dCs, float* dD, float* dDeltaBias, Ss2dShape const& s, bool deltaSoftplus,
                         Parallel const& par);

// ------------------------------------------------------------------------------------------- GeneralizedDivisiveNorm
// y = x / sqrt(beta + gamma @ x^2) (inverse=false) or x * sqrt(...) per pixel; x, y [B,C,HW] with `io`, gamma
// [C,C] and beta [C] fp32; the sum over j in order j = 0..C-1 in fp32.
char const* gdnForward(void const* x, float const* gamma, float const* beta, void* y, int64_t B, int64_t C, int64_t HW,
                       bool inverse, DType io, Parallel const& par);

// fp16 <-> fp32, round to nearest even (bit-exact, as F16C).
float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);

// The exp + FMA peak of one core on the active path: iters * 64 state updates with all operands in
// registers; returns a checksum. Time it to get the scan's compute ceiling in state updates per second.
float expFmaPeak(int64_t iters);

namespace detail {
// The two compilations of each kernel body (cpu_*_avx2.cpp and cpu_*.cpp).
namespace avx2 {
bool compiled();
float expFmaPeak(int64_t);
void ss2dForward(void const*, void const*, float const*, float const*, void const*, void const*, float const*,
                 float const*, void*, Ss2dShape const&, bool, DType, Parallel const&);
void ss2dBackward(float const*, float const*, float const*, float const*, float const*, float const*, float const*,
                  float const*, float*, float*, float*, float*, float*, float*, float*, Ss2dShape const&, bool,
                  Parallel const&);
void gdnForward(void const*, float const*, float const*, void*, int64_t, int64_t, int64_t, bool, DType,
                Parallel const&);
}  // namespace avx2
namespace portable {
float expFmaPeak(int64_t);
void ss2dForward(void const*, void const*, float const*, float const*, void const*, void const*, float const*,
                 float const*, void*, Ss2dShape const&, bool, DType, Parallel const&);
void ss2dBackward(float const*, float const*, float const*, float const*, float const*, float const*, float const*,
                  float const*, float*, float*, float*, float*, float*, float*, float*, Ss2dShape const&, bool,
                  Parallel const&);
void gdnForward(void const*, float const*, float const*, void*, int64_t, int64_t, int64_t, bool, DType,
                Parallel const&);
}  // namespace portable
}  // namespace detail

}  // namespace cpu
}  // namespace lictrt
