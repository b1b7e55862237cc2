// PNG in and out for the lictrt program, through libpng.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "lictrt/encoder.hpp"

namespace lictrt_cli {

/// An image file that cannot be read or written (one-line message).
class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Image {
  uint32_t height = 0, width = 0;
  std::vector<uint8_t> rgb;  ///< height x width x 3
};

/// Read a PNG as 8-bit RGB: grey is replicated, a palette expanded, alpha dropped, 16-bit samples cut to their
/// high byte (as PIL's convert("RGB")).
Image read_png(const std::string& path);
/// Read a group label PNG as runtime.image.load_labels does (Pillow): grey samples (1-bit as 0/1, 2- and 4-bit scaled
/// to 8 bits, 16-bit in full), palette indexes, and for colour the luminance (R 299 + G 587 + B 114) / 1000 in
/// Pillow's integer form; alpha and transparency are ignored. ImageError "cannot read label image <path>: ...".
lictrt::GroupMask read_label_png(const std::string& path);
/// Write 8-bit RGB as PNG through a temporary file beside `path` and a rename.
void write_png(const std::string& path, const Image& image);

}  // namespace lictrt_cli
