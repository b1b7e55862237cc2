// lictrt plan decoder for C++ embedding: .lic bytes + Bundle + a GraphRunner (your inference engine) -> image.
// Mirrors runtime/plans/*.py exactly: symbols = round(v - mean); EntropyBottleneck value = q + median[c] with table
// = channel; GaussianConditional table = #{scale_table[:-1] < max(scale, bound)}; streams z then y; wavefront order
// t = 3i + j for spatial_context; channel_slices: streams z, y0..yS-1, per slice i the graphs slice<i> (-> mu,
// scale) then lrp<i> (y_hat_<i> = mu + q -> lrp), later slices see mu + q + lrp, inputs as the manifest lists them;
// grouped_slices: streams mask, z, g<group>.y<i> per (group, slice), synthesis (y_hat, mask), any subset of groups;
// x_hat cropped, clamped to [0,1], round(x*255) half-to-even.
// Parse-critical graphs (hyper_synthesis, context_step, slice<i>, lrp<i>) must compute bit-identical float32 outputs
// to the encoder's parse path; any divergence is detected (final rANS state, symbol count, symbol CRC) and raised
// as BitstreamError naming the stream, never a silently wrong image.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lictrt/bundle.hpp"
#include "lictrt/container.hpp"
#include "lictrt/graph_runner.hpp"

namespace lictrt {

struct DecodeResult {
  uint32_t height = 0, width = 0;
  std::vector<uint8_t> rgb;  ///< height x width x 3, row-major
  Tensor y_hat;              ///< the dequantized latent fed to synthesis [1, M, h, w]
  Tensor x_hat;              ///< the raw synthesis output (padded, unclamped)
  int network_calls = 0, sequential_steps = 0;
  std::vector<int32_t> groups_decoded;  ///< grouped plans: the group labels whose streams were decoded
  CodecStats stats;
  std::string level;  ///< scalable bundles: the level read from the header (Levels::format), else ""
};

/// Plan kinds this decoder implements: factorized, hyperprior, mean_scale, spatial_context, channel_slices,
/// grouped_context, grouped_slices.
bool decoder_supports(const std::string& plan_kind) noexcept;
/// Whether a plan kind codes groups (a mask at encode, any subset of groups at decode): grouped_slices.
bool plan_has_groups(const std::string& plan_kind) noexcept;

class Decoder {
 public:
  /// Throws BundleError if the bundle's plan kind is not supported (or, for channel_slices, lacks slice/lrp graphs).
  Decoder(const Bundle& bundle, GraphRunner& runner);
  /// Decode .lic bytes. BitstreamError: corrupt/foreign stream (named); BundleError: graph output mismatch.
  /// `groups` (grouped plans): decode only these group labels (only their streams are read, y_hat is zero elsewhere,
  /// synthesis runs with the whole mask); GroupError for an empty list, a label not in the bitstream, or another plan.
  DecodeResult decode(const uint8_t* data, size_t len, const std::vector<int32_t>* groups = nullptr) const;
  DecodeResult decode(const std::vector<uint8_t>& data, const std::vector<int32_t>* groups = nullptr) const {
    return decode(data.data(), data.size(), groups);
  }

 private:
  const Bundle& bundle_;
  GraphRunner& runner_;
};

/// The wavefront schedule of an h x w latent: steps of (row, col) positions, each step in raster order.
std::vector<std::vector<std::pair<int, int>>> wavefront_schedule(int h, int w);

/// Write a binary PPM (P6) image atomically (temporary file, then rename).
void write_ppm(const std::string& path, const std::vector<uint8_t>& rgb, uint32_t height, uint32_t width);

}  // namespace lictrt
