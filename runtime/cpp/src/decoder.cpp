// Decoder: header checks against the bundle, the plan (src/plans/<kind>.cpp), synthesis and the crop to 8-bit RGB.
#include "lictrt/decoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "lictrt/format.hpp"
#include "plans/plans.hpp"

namespace lictrt {

namespace {

/// x_hat in [0, 1] to 8 bits as runtime/codec.py does: clip, * 255, round half to even (np.rint); NaN -> 0
/// (defined, unlike a cast). SSE2 (every x86-64 CPU) four values at a time, the same float operations.
void to_8bit(const float* src, uint8_t* dst, size_t n) {
  size_t j = 0;
#if defined(__SSE2__)
  const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f), scale = _mm_set1_ps(255.0f),
               magic = _mm_set1_ps(12582912.0f);
  for (; j + 16 <= n; j += 16) {
    __m128i q[4];
    for (int k = 0; k < 4; ++k) {
      __m128 v = _mm_min_ps(_mm_max_ps(_mm_loadu_ps(src + j + 4 * k), zero), one);  // maxps: NaN -> 0
      v = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(v, scale), magic), magic);
      q[k] = _mm_cvttps_epi32(v);
    }
    const __m128i lo = _mm_packs_epi32(q[0], q[1]), hi = _mm_packs_epi32(q[2], q[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j), _mm_packus_epi16(lo, hi));
  }
#endif
  for (; j < n; ++j) {
    float v = src[j] > 0.0f ? src[j] : 0.0f;
    v = v < 1.0f ? v : 1.0f;
    dst[j] = uint8_t(int32_t(plans::round_half_even_small(v * 255.0f)));
  }
}

}  // namespace

Tensor::Tensor(std::vector<int64_t> s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {}

size_t Tensor::count() const noexcept {
  size_t n = 1;
  for (auto d : shape) n *= size_t(d < 0 ? 0 : d);
  return n;
}

bool decoder_supports(const std::string& k) noexcept { return plans::find(k) != nullptr; }

bool plan_has_groups(const std::string& k) noexcept { return k == "grouped_slices"; }

Decoder::Decoder(const Bundle& bundle, GraphRunner& runner) : bundle_(bundle), runner_(runner) {
  const plans::Plan* plan = plans::find(bundle.plan_kind());
  if (!plan)
    throw BundleError(
        "plan kind '" + bundle.plan_kind() +
        "' is not implemented by the C++ decoder "
        "(factorized, hyperprior, mean_scale, spatial_context, channel_slices, grouped_context, grouped_slices)");
  for (auto& prefix : bundle.prefixes()) plan->check(bundle, prefix);
}

DecodeResult Decoder::decode(const uint8_t* data, size_t len, const std::vector<int32_t>* groups) const {
  std::vector<int32_t> wanted;  // sorted, unique (runtime/codec.py decode)
  if (groups) {
    if (!plan_has_groups(bundle_.plan_kind()))
      throw GroupError("plan '" + bundle_.plan_kind() + "' codes no groups: cannot decode a subset");
    wanted = *groups;
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    if (wanted.empty()) throw GroupError("no groups to decode");
  }
  ContainerHeader hd;
  std::vector<ContainerStream> streams;
  unpack_container(data, len, hd, streams);
  if (hd.model_hash != bundle_.model_hash()) {
    auto hex8 = [](const std::array<uint8_t, 32>& h) {
      std::string s;
      const char* d = "0123456789abcdef";
      for (int i = 0; i < 8; ++i) s += std::string{d[h[size_t(i)] >> 4], d[h[size_t(i)] & 15]};
      return s + "\xe2\x80\xa6";  // U+2026, as runtime/codec.py writes it
    };
    throw BitstreamError("model hash " + hex8(hd.model_hash) + " does not match the bundle (" +
                         hex8(bundle_.model_hash()) + "): encoded with another model");
  }
  if (hd.plan_kind != code_of(kPlanKinds, bundle_.plan_kind()))
    throw BitstreamError("bitstream plan kind " + std::to_string(hd.plan_kind) + " is not the bundle's '" +
                         bundle_.plan_kind() + "'");
  if (hd.pad_multiple != bundle_.pad_multiple())
    throw BitstreamError("bitstream pad multiple " + std::to_string(hd.pad_multiple) + " != bundle's " +
                         std::to_string(bundle_.pad_multiple()));
  if (hd.flags & ~kKnownFlags) throw BitstreamError("unknown header flags " + std::to_string(hd.flags));
  const std::optional<Levels> levels = levels_of(bundle_.plan());
  Level level;
  if (levels) {
    if (hd.level.empty()) throw BitstreamError("the header carries no level, which this scalable bundle needs");
    level = levels->from_bytes(hd.level);
  } else if (!hd.level.empty()) {
    throw BitstreamError("the header carries a level, but this bundle has one operating point");
  }
  if (hd.coder_mode >= code_count(kCoderModes))
    throw BitstreamError("unknown coder mode " + std::to_string(hd.coder_mode));
  if (hd.width_index >= bundle_.prefixes().size())
    throw BitstreamError("width index " + std::to_string(hd.width_index) + " outside the bundle's widths");
  if (hd.height < 1 || hd.width < 1 || uint64_t(hd.height) * hd.width > kMaxPixels)
    throw BitstreamError("bad image size in header");
  const int m = bundle_.pad_multiple();
  const int ph = int((hd.height + m - 1) / m * m), pw = int((hd.width + m - 1) / m * m);

  DecodeResult res;
  res.height = hd.height;
  res.width = hd.width;
  const double t0 = plans::now_s();
  plans::Stats& stats = res.stats;
  plans::PlanContext c(bundle_, runner_, bundle_.prefixes()[hd.width_index], static_cast<Mode>(hd.coder_mode), stats);
  c.raster = hd.flags & kFlagRasterContext;
  if (levels) {
    c.level = &level;
    res.level = Levels::format(level);
  }
  for (auto& s : streams) c.in_streams[s.kind] = &s;
  if (groups) c.groups = &wanted;
  res.y_hat = plans::find(bundle_.plan_kind())->decode(c, ph, pw);
  res.groups_decoded = c.groups_decoded;

  TensorMap syn = std::move(c.synthesis_inputs);  // y_hat, and what the plan adds (grouped_slices: mask)
  syn["y_hat"] = std::move(res.y_hat);            // lent to the synthesis feed, taken back below
  TensorMap out = c.run(c.synthesis, syn, {"x_hat"});
  res.y_hat = std::move(syn["y_hat"]);
  res.network_calls = stats.network_calls;
  res.sequential_steps = stats.sequential_steps;
  res.x_hat = std::move(out["x_hat"]);
  const Tensor& x = res.x_hat;
  if (x.shape.size() != 4 || x.shape[0] != 1 || x.shape[1] != 3 || x.shape[2] != ph || x.shape[3] != pw)
    throw BundleError("synthesis output does not have the padded image shape 1x3x" + std::to_string(ph) + "x" +
                      std::to_string(pw));
  const uint32_t top = uint32_t(ph - int(hd.height)) / 2, left = uint32_t(pw - int(hd.width)) / 2;
  const uint32_t w = hd.width;
  res.rgb.resize(size_t(hd.height) * w * 3);
  const size_t plane = size_t(ph) * pw;
  std::vector<uint8_t> planar(size_t(w) * 3);
  for (uint32_t i = 0; i < hd.height; ++i) {  // per row: three plane rows to 8 bits, then interleaved
    for (uint32_t ch = 0; ch < 3; ++ch) {
      const float* src = x.data.data() + ch * plane + (size_t(top) + i) * pw + left;
      uint8_t* q = planar.data() + size_t(ch) * w;
      to_8bit(src, q, w);
    }
    uint8_t* dst = res.rgb.data() + size_t(i) * w * 3;
    for (uint32_t j = 0; j < w; ++j, dst += 3) {
      dst[0] = planar[j];
      dst[1] = planar[w + j];
      dst[2] = planar[2 * size_t(w) + j];
    }
  }
  stats.total_s = plans::now_s() - t0;
  return res;
}

void write_ppm(const std::string& path, const std::vector<uint8_t>& rgb, uint32_t height, uint32_t width) {
  if (rgb.size() != size_t(height) * width * 3) throw InvalidArgument("write_ppm: buffer size does not match");
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    std::string hdr = "P6\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n";
    f.write(hdr.data(), std::streamsize(hdr.size()));
    f.write(reinterpret_cast<const char*>(rgb.data()), std::streamsize(rgb.size()));
    if (!f) throw InvalidArgument("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw InvalidArgument("cannot rename " + tmp + " to " + path);
}

}  // namespace lictrt
