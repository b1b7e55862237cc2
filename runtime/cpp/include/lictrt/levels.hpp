// Operating levels of scalable bundles (BaSIC, plan grouped_context): the one implementation of level semantics; the
// Python runtime wraps it (runtime/levels.py over runtime._lictrt.Levels). The bundle plan describes its levels as data
// (docs/FORMATS.md):
//
//   "levels": {"axes": [{"name": "g_a", "values": [48, 72, 96, 144, 192]}, ..., {"name": "context", "values":
//              ["scanline", "8stage", ...]}], "presets": {"full": {...}, "fastest": {...}}, "default": "full"}
//
// A level picks one value per axis. It is written into the container header as one u8 index per axis (the level
// block), so the decoder reads it from the file. Text form: a preset name ("fastest", "full") or axis=value pairs
// separated by commas ("g_a=48,g_s=96,context=4stage"); axes not named take the default preset's value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lictrt/errors.hpp"
#include "lictrt/json.hpp"

namespace lictrt {

/// One value per level axis in the bundle's axis order: (axis name, value as Python prints it: "48", "4stage").
using Level = std::vector<std::pair<std::string, std::string>>;

/// A level the bundle does not offer, or text that is not a level (runtime.levels.LevelError).
class LevelError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// The level axes and presets of one bundle plan.
class Levels {
 public:
  /// From the plan's "levels" object; BundleError when it is malformed or a preset is not a level of its axes.
  explicit Levels(const Json& spec);

  /// A level from text (preset name or axis=value,...); `text` absent: the default preset. LevelError otherwise.
  Level parse(const std::optional<std::string>& text) const;
  /// A level from a JSON object of axis -> value (an integer or a string); axes not named take the default preset's
  /// value. LevelError when an axis is unknown or a value is not offered.
  Level resolve(const Json& level) const;
  /// The level block of the header: one u8 index per axis.
  std::vector<uint8_t> to_bytes(const Level& level) const;
  /// The level of a header's level block; BitstreamError when it does not fit the axes.
  Level from_bytes(const std::vector<uint8_t>& data) const;
  /// "g_a=48,h_a=48,...,context=4stage"
  static std::string format(const Level& level);
  /// The value of axis `name` in `level` (BundleError when absent).
  static const std::string& value(const Level& level, const std::string& name);

  struct Axis {
    std::string name;
    std::vector<std::string> values;  ///< as Python prints them
    std::vector<bool> number;         ///< per value: an integer (else a string)
    bool numeric = false;             ///< every value an integer: text values of this axis are read as numbers
  };
  const std::vector<Axis>& axes() const noexcept { return axes_; }
  /// The presets in the plan's order, each with every axis in axis order.
  std::vector<std::pair<std::string, Level>> presets() const;
  /// The name of the default preset.
  const std::string& default_preset() const noexcept { return default_; }

 private:
  struct Value {  // an axis value of a preset or of parsed text
    std::string text;
    bool number = false;
    bool other = false;  // neither an integer nor a string: never offered
    bool none = false;   // null: no value (not the default preset's)
  };
  using Partial = std::vector<std::pair<std::string, Value>>;  // axis name -> value, in first-given order
  Level complete(const Partial& level, const std::string& what, bool bundle_error) const;

  std::vector<Axis> axes_;
  std::vector<std::pair<std::string, Partial>> presets_;
  std::string default_;
};

/// The levels of a bundle plan, or nothing for a bundle with one operating point (runtime.levels.levels_of).
std::optional<Levels> levels_of(const Json& plan);

}  // namespace lictrt
