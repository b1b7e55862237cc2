// lictrt error types shared by the coder, the container, the bundle reader, the plans and the C API.
#pragma once

#include <stdexcept>
#include <string>

namespace lictrt {

/// Corrupt, truncated or mismatched bitstream data (never a crash: every read is bounded).
class BitstreamError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad arguments from the caller: malformed tables, index out of range, unknown mode.
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A requested group is not in the bitstream, or the bundle's plan has no groups (grouped_slices).
class GroupError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// A bundle directory, manifest, tables.npz or .npy file that is missing, malformed or inconsistent.
class BundleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lictrt
