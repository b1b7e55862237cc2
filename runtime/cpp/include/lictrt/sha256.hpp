// SHA-256 (FIPS 180-4), self-contained: the digests of a bundle manifest's "files" ("sha256:<64 hex>").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lictrt {

/// Incremental SHA-256: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256() noexcept;
  void update(const void* data, size_t len) noexcept;
  std::array<uint8_t, 32> digest() noexcept;  ///< finishes the hash; the object must not be updated afterwards

 private:
  void block(const uint8_t* p) noexcept;
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t used_ = 0;
  uint64_t total_ = 0;
};

/// Lower-case hex SHA-256 of `len` bytes.
std::string sha256_hex(const void* data, size_t len);

/// "sha256:<hex>" of a file's bytes, read in blocks (BundleError if it cannot be read).
std::string file_digest(const std::string& path);

}  // namespace lictrt
