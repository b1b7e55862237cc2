// Minimal JSON reader for bundle manifests. Malformed input raises lictrt::BundleError naming the offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lictrt/errors.hpp"

namespace lictrt {

/// A parsed JSON value (RFC 8259 subset: no \u surrogate checks beyond UTF-8 encoding; numbers as double).
class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  static Json parse(const std::string& text);  ///< throws BundleError "json: <what> at offset N"

  Type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == Type::Null; }
  bool is_object() const noexcept { return type_ == Type::Object; }
  bool is_array() const noexcept { return type_ == Type::Array; }
  bool is_string() const noexcept { return type_ == Type::String; }
  bool is_number() const noexcept { return type_ == Type::Number; }
  bool has(const std::string& key) const noexcept;
  /// Member `key` of an object (BundleError if absent or not an object).
  const Json& at(const std::string& key) const;
  /// Member `key`, or a null value when absent.
  const Json& get(const std::string& key) const noexcept;
  const Json& at(size_t i) const;
  size_t size() const noexcept;    ///< elements of an array / members of an object, else 0
  const std::string& str() const;  ///< BundleError unless a string
  double num() const;              ///< BundleError unless a number
  int64_t integer() const;         ///< BundleError unless an integral number
  bool boolean() const;            ///< BundleError unless true/false
  const std::vector<std::pair<std::string, Json>>& items() const;  ///< object members in file order

 private:
  friend struct JsonParser;
  Type type_ = Type::Null;
  bool b_ = false;
  double n_ = 0;
  std::string s_;
  std::vector<Json> a_;
  std::vector<std::pair<std::string, Json>> o_;
};

}  // namespace lictrt
