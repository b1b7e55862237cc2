// .npy / .npz (np.savez, stored zip entries) reader for bundle tables. Every read is bounds-checked; malformed input
// raises lictrt::BundleError with a one-line message naming the source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lictrt/errors.hpp"

namespace lictrt {

/// One array from a .npy file: little-endian dtype '<i4', '<f4', '|u1', '<i8' or '<f8', C order.
struct NpyArray {
  std::string dtype;           ///< numpy descr, e.g. "<f4"
  std::vector<int64_t> shape;  ///< empty for a 0-d array
  std::vector<uint8_t> bytes;  ///< raw element bytes
  size_t count() const noexcept;
  size_t item_size() const noexcept;
  std::vector<int32_t> as_int32() const;  ///< dtype must be <i4 (BundleError otherwise)
  std::vector<float> as_float32() const;  ///< dtype must be <f4
};

/// Parse .npy bytes (format versions 1-3). `what` names the source in errors.
NpyArray parse_npy(const uint8_t* data, size_t len, const std::string& what);
NpyArray read_npy(const std::string& path);
/// Write a float32 / int32 / uint8 .npy file (format 1.0), used by tools and tests.
void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape, const void* data);
/// All arrays of an uncompressed .npz (np.savez) keyed by name without ".npy".
std::map<std::string, NpyArray> parse_npz(const uint8_t* data, size_t len, const std::string& what);
std::map<std::string, NpyArray> read_npz(const std::string& path);

/// Read a whole file (BundleError naming the path when it cannot be read).
std::vector<uint8_t> read_file(const std::string& path);

}  // namespace lictrt
