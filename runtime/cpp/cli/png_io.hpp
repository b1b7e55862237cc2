// PNG in and out for the lictrt program, through libpng.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

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
/// Write 8-bit RGB as PNG through a temporary file beside `path` and a rename.
void write_png(const std::string& path, const Image& image);

}  // namespace lictrt_cli
