// lictrt plan encoder for C++ embedding: 8-bit RGB image + Bundle + a GraphRunner -> .lic bytes, the mirror of
// runtime.Codec.encode: the image is scaled to [0, 1] in float32 (v / 255), zero-padded to the bundle's multiple
// (CompressAI's split, the extra pixel right/bottom), run through the plan (src/plans/<kind>.cpp) and packed with
// the container header. With a runner that computes the graphs as the Python backend does (same ONNX Runtime
// library and session settings), the bytes equal the Python runtime's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lictrt/bundle.hpp"
#include "lictrt/coder.hpp"
#include "lictrt/graph_runner.hpp"
#include "lictrt/levels.hpp"

namespace lictrt {

struct EncoderOptions {
  Mode mode = Mode::Fast;
  int substreams = 1;  ///< fast mode: independent substreams per one-shot stream
  int width = 0;       ///< slimmable bundles: the width to code with (0 = the first of plan "widths")
  /// spatial_context order: "wavefront" or "raster"; "" = the bundle plan's context.order (default wavefront)
  std::string context_order;
  /// recorded in the header: where the runner computes the parse-critical graphs (lictrt/format.hpp kParsePaths)
  std::string parse_path = "onnxruntime-cpu-fp32";
  /// scalable bundles (grouped_context): the level to code at, a preset ("fastest", "full") or axis=value pairs
  /// ("g_a=48,g_s=96,context=4stage"; lictrt/levels.hpp); absent: the bundle's default preset. Written into the header.
  std::optional<std::string> level;
};

/// A group label map for plans with groups (grouped_slices, GIT-SSIC): height x width labels in [0, 65535], row-major,
/// at the image's full, 1/16 or 1/32 (mask grid) size (sizes rounded up); each mask-grid cell of the padded image takes
/// the label of its top-left pixel (padding is label 0), as runtime/plans/grouped_slices.py coarse_mask.
struct GroupMask {
  uint32_t height = 0, width = 0;
  std::vector<int32_t> labels;
};

struct EncodeResult {
  std::vector<uint8_t> data;  ///< the .lic bytes
  CodecStats stats;
  std::string level;  ///< scalable bundles: the level coded at (Levels::format), else ""
};

class Encoder {
 public:
  /// Throws BundleError for a plan kind without a C++ plan, InvalidArgument for bad options (LevelError for a level
  /// the bundle does not offer).
  Encoder(const Bundle& bundle, GraphRunner& runner, EncoderOptions options = {});
  /// Encode height x width x 3 row-major RGB. InvalidArgument ("cannot encode: ...") for an empty or oversized
  /// image or a latent the coder cannot take; BundleError when a graph's outputs do not fit the plan. `mask`: the
  /// groups of a grouped plan (nullptr: the whole image is group 0 and no mask stream is written); InvalidArgument for
  /// a mask of another plan or of a size that does not fit the image.
  EncodeResult encode(const uint8_t* rgb, uint32_t height, uint32_t width, const GroupMask* mask = nullptr) const;

 private:
  const Bundle& bundle_;
  GraphRunner& runner_;
  EncoderOptions opt_;
  int width_index_ = 0;
  bool raster_ = false;
  int parse_path_ = 0;
  std::optional<Levels> levels_;
  Level level_;
};

/// The float32 network input of an image: [1, 3, Hp, Wp], v / 255, zero padding to `multiple` (runtime.image.to_input).
Tensor image_to_input(const uint8_t* rgb, uint32_t height, uint32_t width, int multiple);

}  // namespace lictrt
