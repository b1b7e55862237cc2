// GeneralizedDivisiveNorm on the CPU: the kernel body, compiled once per instruction set (see cpu_vec.h) by
// generalized_divisive_norm_cpu.cpp (portable) and generalized_divisive_norm_cpu_avx2.cpp (AVX2+FMA).
//
// One work item per (batch, tile of 64 pixels): x^2 of the tile is held as [C][64]; for every output channel i
// norm = beta[i] + sum_{j=0..C-1} gamma[i,j] * x_j^2 is accumulated in that order over 8 vectors of 8 pixels,
// then y = x / sqrt(norm) (or x * sqrt(norm) for the inverse).
#pragma once

#include "../common/cpu_kernels.h"

#include <algorithm>
#include <vector>

namespace lictrt {
namespace cpu {
namespace detail {
namespace LICTRT_KERNEL_NS {

using namespace ::lictrt::cpu::LICTRT_VEC_NS;

constexpr int64_t kGdnTile = 64;
constexpr int kGdnVecs = kGdnTile / kLanes;

inline float gdnToF(float v) { return v; }
inline float gdnToF(uint16_t v) { return halfToFloat(v); }
inline void gdnFromF(float v, float* p) { *p = v; }
inline void gdnFromF(float v, uint16_t* p) { *p = floatToHalf(v); }

template <typename E>
struct GdnArgs {
    E const* x;
    float const* gamma;
    float const* beta;
    E* y;
    int64_t C, HW, tiles;
    bool inverse;
};

template <typename E>
void gdnItem(GdnArgs<E> const& a, int64_t item) {
    int64_t const C = a.C, HW = a.HW;
    int64_t const b = item / a.tiles, p0 = (item % a.tiles) * kGdnTile;
    int64_t const P = std::min(kGdnTile, HW - p0);
    std::vector<float> xs(static_cast<size_t>(C * kGdnTile), 0.0f), x2(static_cast<size_t>(C * kGdnTile));
    for (int64_t j = 0; j < C; ++j) {
        E const* row = a.x + (b * C + j) * HW + p0;
        for (int64_t p = 0; p < P; ++p) xs[j * kGdnTile + p] = gdnToF(row[p]);
        for (int v = 0; v < kGdnVecs; ++v) {
            F8 const xv = load(&xs[j * kGdnTile + v * kLanes]);
            store(&x2[j * kGdnTile + v * kLanes], xv * xv);
        }
    }
    alignas(32) float out[kGdnTile];
    for (int64_t i = 0; i < C; ++i) {
        F8 acc[kGdnVecs];
        for (int v = 0; v < kGdnVecs; ++v) acc[v] = set1(a.beta[i]);
        float const* gi = a.gamma + i * C;
        for (int64_t j = 0; j < C; ++j) {
            F8 const g = set1(gi[j]);
            float const* xj = &x2[j * kGdnTile];
            for (int v = 0; v < kGdnVecs; ++v) acc[v] = fma(g, load(xj + v * kLanes), acc[v]);
        }
        for (int v = 0; v < kGdnVecs; ++v) {
            F8 const xv = load(&xs[i * kGdnTile + v * kLanes]);
            F8 const s = sqrt(acc[v]);
            store(out + v * kLanes, a.inverse ? xv * s : xv / s);
        }
        E* row = a.y + (b * C + i) * HW + p0;
        for (int64_t p = 0; p < P; ++p) gdnFromF(out[p], row + p);
    }
}

template <typename E>
void gdnRun(void const* x, float const* gamma, float const* beta, void* y, int64_t B, int64_t C, int64_t HW,
            bool inverse, Parallel const& par) {
    GdnArgs<E> a{static_cast<E const*>(x), gamma, beta, static_cast<E*>(y), C, HW, (HW + kGdnTile - 1) / kGdnTile,
                 inverse};
    par.run(par.ctx, [](void* p, size_t i) { gdnItem(*static_cast<GdnArgs<E> const*>(p), static_cast<int64_t>(i)); },
            &a, static_cast<size_t>(B * a.tiles));
}

void gdnForward(void const* x, float const* gamma, float const* beta, void* y, int64_t B, int64_t C, int64_t HW,
                bool inverse, DType io, Parallel const& par) {
    if (io == DType::kF32) {
        gdnRun<float>(x, gamma, beta, y, B, C, HW, inverse, par);
    } else {
        gdnRun<uint16_t>(x, gamma, beta, y, B, C, HW, inverse, par);
    }
}

}  // namespace LICTRT_KERNEL_NS
}  // namespace detail
}  // namespace cpu
}  // namespace lictrt
