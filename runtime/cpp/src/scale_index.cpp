// ScaleIndex's bucket table: the coarsest float-bit buckets (at most 65,536 of them) within which at most two
// table entries fall, so a lookup is one load plus two comparisons for any table CompressAI builds.
#include "lictrt/scale_index.hpp"

#include <algorithm>
#include <limits>

#include "lictrt/errors.hpp"

#if !defined(LICTRT_NO_SIMD) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LICTRT_HAVE_AVX2_INDEX 1
#include <immintrin.h>
#else
#define LICTRT_HAVE_AVX2_INDEX 0
#endif

namespace lictrt {
namespace {

float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

constexpr size_t kMaxBuckets = 65536;

#if LICTRT_HAVE_AVX2_INDEX

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

/// Eight lanes of ScaleIndex::operator()(float): the same clamp, key, bucket and comparisons; returns the count
/// of whole vectors done.
__attribute__((target("avx2"))) size_t index_avx2(const float* scales, int32_t* out, size_t n, const float* edges,
                                                  const uint32_t* below, size_t buckets, float bound, uint32_t shift,
                                                  uint32_t key0, uint32_t steps, int32_t last) {
  const __m256 b = _mm256_set1_ps(bound);
  const __m256i k0 = _mm256_set1_epi32(int(key0)), top = _mm256_set1_epi32(int(buckets - 1)),
                nan_index = _mm256_set1_epi32(last);
  const __m128i sh = _mm_cvtsi32_si128(int(shift));
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(scales + j);
    const __m256 s = _mm256_max_ps(v, b);  // v > bound ? v : bound
    __m256i key = _mm256_sub_epi32(_mm256_srl_epi32(_mm256_castps_si256(s), sh), k0);
    key = _mm256_min_epu32(key, top);
    __m256i i = _mm256_i32gather_epi32(reinterpret_cast<const int*>(below), key, 4);
    for (uint32_t k = 0; k < steps; ++k)  // i += edges[i] < s (the mask is -1 where true)
      i = _mm256_sub_epi32(i, _mm256_castps_si256(_mm256_cmp_ps(_mm256_i32gather_ps(edges, i, 4), s, _CMP_LT_OQ)));
    i = _mm256_blendv_epi8(i, nan_index, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), i);
  }
  return j;
}

#endif

}  // namespace

void ScaleIndex::operator()(const float* scales, int32_t* out, size_t n) const noexcept {
  size_t j = 0;
#if LICTRT_HAVE_AVX2_INDEX
  static const bool avx2 = cpu_has_avx2();
  if (avx2 && !empty())
    j = index_avx2(scales, out, n, edges_.data(), below_.data(), below_.size(), bound_, shift_, key0_, steps_, last_);
#endif
  for (; j < n; ++j) out[j] = (*this)(scales[j]);
}

ScaleIndex::ScaleIndex(std::vector<float> table, float bound) : table_(std::move(table)), bound_(bound) {
  if (table_.empty()) throw InvalidArgument("scale_table is empty");
  for (size_t k = 0; k < table_.size(); ++k)
    if (!std::isfinite(table_[k]) || (k && !(table_[k] > table_[k - 1])))
      throw InvalidArgument("scale_table must be finite and strictly increasing");
  if (!(bound > 0.0f) || !std::isfinite(bound)) throw InvalidArgument("scale_bound must be positive and finite");
  last_ = int32_t(table_.size()) - 1;
  edges_.assign(table_.begin(), table_.end() - 1);
  const size_t n = edges_.size();
  edges_.push_back(std::numeric_limits<float>::infinity());

  // Buckets of keys bits(s) >> shift for s >= bound; bucket b covers [lo(b), lo(b + 1)). The last bucket takes
  // every key above the largest edge's (all edges below).
  const uint32_t low = bits(bound_), high = bits(n ? std::max(edges_[n - 1], bound_) : bound_);
  auto buckets = [&](uint32_t shift) { return size_t((high >> shift) - (low >> shift)) + 2; };
  auto build = [&](uint32_t shift) {
    key0_ = low >> shift;
    std::vector<uint32_t> below(buckets(shift));
    for (size_t b = 0; b + 1 < below.size(); ++b) {
      const float lo = std::max(float_of(uint32_t(key0_ + b) << shift), bound_);
      below[b] = uint32_t(std::lower_bound(edges_.begin(), edges_.begin() + long(n), lo) - edges_.begin());
    }
    below.back() = uint32_t(n);
    uint32_t steps = 0;
    for (size_t b = 0; b + 1 < below.size(); ++b) steps = std::max(steps, below[b + 1] - below[b]);
    shift_ = shift;
    steps_ = steps;
    below_ = std::move(below);
  };
  build(23);  // one bucket per octave
  for (uint32_t shift = 22; steps_ > 2 && shift >= 8 && buckets(shift) <= kMaxBuckets; --shift) build(shift);
}

}  // namespace lictrt
