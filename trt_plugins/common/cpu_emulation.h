// A minimal CPU emulation of the CUDA execution model, for testing the kernel sources on machines without a
// GPU (CI).  Blocks run one after another; the threads of a block are std::threads that meet at a barrier for
// __syncthreads()/__syncwarp(); __shared__ variables become function statics (one block at a time, so one copy
// suffices).  It checks indexing, chunking, carries and synchronisation logic -- not timing, not warp-level
// intrinsics (the kernels use none besides __syncwarp), and not GPU floating-point (exp2f etc. are libm).
#pragma once

#include <cuda_fp16.h>  // host-compilable __half conversions
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)

using std::max;
using std::min;

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace lictrt_emu {

// Reusable barrier for the threads of one block.
class Barrier {
 public:
  explicit Barrier(unsigned n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(m_);
    const unsigned gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen != gen_; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  unsigned n_, count_ = 0, gen_ = 0;
};

inline thread_local Barrier* tl_barrier = nullptr;
inline std::vector<unsigned char>& dynamic_smem() {
  static std::vector<unsigned char> buf;
  return buf;
}

// Runs kernel(args...) over the grid.  Returned by LICTRT_LAUNCH.
class Launcher {
 public:
  Launcher(dim3 grid, dim3 block, size_t smem) : grid_(grid), block_(block), smem_(smem) {}
  template <typename Kernel, typename... Args>
  void run(Kernel kernel, Args... args) const {
    dynamic_smem().assign(smem_, 0);
    const unsigned nthreads = block_.x * block_.y * block_.z;
    for (unsigned bz = 0; bz < grid_.z; ++bz)
      for (unsigned by = 0; by < grid_.y; ++by)
        for (unsigned bx = 0; bx < grid_.x; ++bx) {
          Barrier barrier(nthreads);
          std::vector<std::thread> threads;
          threads.reserve(nthreads);
          for (unsigned i = 0; i < nthreads; ++i) {
            threads.emplace_back([&, i] {
              threadIdx = dim3(i % block_.x, (i / block_.x) % block_.y, i / (block_.x * block_.y));
              blockIdx = dim3(bx, by, bz);
              blockDim = block_;
              gridDim = grid_;
              tl_barrier = &barrier;
              kernel(args...);
            });
          }
          for (auto& t : threads) t.join();
        }
  }

 private:
  dim3 grid_, block_;
  size_t smem_;
};

template <typename Kernel>
struct Bound {
  Kernel kernel;
  Launcher launcher;
  template <typename... Args>
  void operator()(Args... args) const {
    launcher.run(kernel, args...);
  }
};

template <typename Kernel>
Bound<Kernel> bind(Kernel k, dim3 grid, dim3 block, size_t smem) {
  return Bound<Kernel>{k, Launcher(grid, block, smem)};
}

}  // namespace lictrt_emu

inline void __syncthreads() { lictrt_emu::tl_barrier->wait(); }
inline void __syncwarp() { lictrt_emu::tl_barrier->wait(); }  // kernels call it block-uniformly

#define LICTRT_LAUNCH(kernel, grid, block, smem, stream) lictrt_emu::bind(kernel, grid, block, smem)
#define LICTRT_DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(lictrt_emu::dynamic_smem().data())
#define cudaGetLastError() cudaSuccess
#define cudaFuncSetAttribute(...) cudaSuccess
