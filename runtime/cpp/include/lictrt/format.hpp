// The codes and limits of the .lic header (docs/FORMATS.md), defined once: the C++ library uses them and the Python
// runtime reads them from the extension (runtime._lictrt.PLAN_KINDS, ...). Code tables are append only: a code is
// the index of its name, never renumbered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lictrt {

/// u8 plan kind: how the streams of a bitstream are coded (runtime/plans/<kind>.py, src/plans/<kind>.cpp).
inline constexpr const char* kPlanKinds[] = {"factorized",     "hyperprior",      "mean_scale",    "spatial_context",
                                             "channel_slices", "grouped_context", "grouped_slices"};
/// u8 coder mode (lictrt::Mode): the rANS flavour of every stream.
inline constexpr const char* kCoderModes[] = {"compat", "fast"};
/// u8 parse path: where the encoder ran its parse-critical graphs. torch-cuda-fp32 (strict fp32, no TF32) matches
/// only a decoder on the same GPU model and software; the stream CRCs catch any other decoder's mismatch.
inline constexpr const char* kParsePaths[] = {"onnxruntime-cpu-fp32", "torch-cpu-fp32", "torch-cuda-fp32"};

/// u16 header flags.
constexpr uint16_t kFlagRasterContext = 1;  ///< spatial_context coded in raster order (else wavefront)
constexpr uint16_t kFlagLevel = 2;          ///< the header carries a level block (container minor 1)
constexpr uint16_t kKnownFlags = kFlagRasterContext | kFlagLevel;
/// Most choices a level block holds (one u8 per level axis of a scalable bundle).
constexpr size_t kMaxLevelBytes = 16;

/// Largest image (height x width) an encoder accepts and a decoder believes a header about.
constexpr uint64_t kMaxPixels = uint64_t(1) << 28;

template <size_t N>
constexpr int code_count(const char* const (&)[N]) noexcept {
  return int(N);
}

/// The code of `name` in `table` (kPlanKinds, kCoderModes or kParsePaths), or -1.
template <size_t N>
int code_of(const char* const (&table)[N], const std::string& name) noexcept {
  for (size_t i = 0; i < N; ++i)
    if (name == table[i]) return int(i);
  return -1;
}

/// The name of `code` in `table`, or "unknown(<code>)".
template <size_t N>
std::string code_name(const char* const (&table)[N], int code) {
  return code >= 0 && size_t(code) < N ? std::string(table[code]) : "unknown(" + std::to_string(code) + ")";
}

}  // namespace lictrt
