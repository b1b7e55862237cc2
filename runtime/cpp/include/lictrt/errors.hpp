// lictrt error types shared by the coder, the container and the C API.
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

}  // namespace lictrt
