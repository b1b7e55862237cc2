// GaussianConditional's table index of a predicted scale (CompressAI build_indexes): the number of entries of
// scale_table[:-1] strictly below max(scale, bound), NaN -> T-1. One call per latent element, so it is a lookup:
// the float bits of the clamped scale (monotone for positive floats) select a bucket that stores how many entries
// lie below the bucket, and at most a few comparisons with the entries inside the bucket finish the count.
// Plans that index a whole tensor use the batch form.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lictrt {

class ScaleIndex {
 public:
  ScaleIndex() = default;
  /// table: [T >= 1] strictly increasing; bound > 0 (CompressAI's lower bound of the scale). InvalidArgument else.
  ScaleIndex(std::vector<float> table, float bound);

  bool empty() const noexcept { return table_.empty(); }
  const std::vector<float>& table() const noexcept { return table_; }
  float bound() const noexcept { return bound_; }

  int32_t operator()(float scale) const noexcept {
    if (std::isnan(scale)) return last_;
    const float s = scale > bound_ ? scale : bound_;
    const uint32_t key = (bits(s) >> shift_) - key0_;  // s >= bound > 0: no wrap-around
    uint32_t i = below_[key < below_.size() ? key : below_.size() - 1];
    for (uint32_t k = 0; k < steps_; ++k) i += uint32_t(edges_[i] < s);  // edges_ ends in +inf
    return int32_t(i);
  }
  /// The same for n scales; on x86-64 CPUs with AVX2 (chosen at run time) eight at a time.
  void operator()(const float* scales, int32_t* out, size_t n) const noexcept;

 private:
  static uint32_t bits(float f) noexcept {  // monotone in f for f > 0
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  }

  std::vector<float> table_, edges_;  // edges_: table[:-1], then +inf
  std::vector<uint32_t> below_;       // per bucket: #edges below its smallest float; last: #edges
  float bound_ = 0.0f;
  int32_t last_ = 0;
  uint32_t shift_ = 0, key0_ = 0, steps_ = 0;
};

}  // namespace lictrt
