// JSON reader (RFC 8259 subset) for bundle manifests: bounded recursion, every read checked.
#include "lictrt/json.hpp"

#include <cmath>
#include <cstring>

namespace lictrt {

struct JsonParser {
  const std::string& s;
  size_t i = 0;
  int depth = 0;

  [[noreturn]] void fail(const char* what) const {
    throw BundleError(std::string("json: ") + what + " at offset " + std::to_string(i));
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (s.compare(i, n, w) == 0) {
      i += n;
      return true;
    }
    return false;
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (i + 4 > s.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= uint32_t(c - 'A' + 10);
      else
        fail("bad \\u escape");
    }
    return v;
  }
  std::string string() {
    if (i >= s.size() || s[i] != '"') fail("expected string");
    ++i;
    std::string out;
    for (;;) {
      if (i >= s.size()) fail("unterminated string");
      char c = s[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) fail("unterminated escape");
      char e = s[i++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= s.size() && s[i] == '\\' && s[i + 1] == 'u') {
            i += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default:
          fail("bad escape");
      }
    }
  }
  Json value() {
    if (++depth > 64) fail("nesting deeper than 64");
    ws();
    if (i >= s.size()) fail("unexpected end");
    Json v;
    char c = s[i];
    if (c == '{') {
      v.type_ = Json::Type::Object;
      ++i;
      ws();
      if (i < s.size() && s[i] == '}') {
        ++i;
      } else {
        for (;;) {
          ws();
          std::string k = string();
          ws();
          if (i >= s.size() || s[i] != ':') fail("expected ':'");
          ++i;
          v.o_.emplace_back(std::move(k), value());
          ws();
          if (i < s.size() && s[i] == ',') {
            ++i;
            continue;
          }
          if (i < s.size() && s[i] == '}') {
            ++i;
            break;
          }
          fail("expected ',' or '}'");
        }
      }
    } else if (c == '[') {
      v.type_ = Json::Type::Array;
      ++i;
      ws();
      if (i < s.size() && s[i] == ']') {
        ++i;
      } else {
        for (;;) {
          v.a_.push_back(value());
          ws();
          if (i < s.size() && s[i] == ',') {
            ++i;
            continue;
          }
          if (i < s.size() && s[i] == ']') {
            ++i;
            break;
          }
          fail("expected ',' or ']'");
        }
      }
    } else if (c == '"') {
      v.type_ = Json::Type::String;
      v.s_ = string();
    } else if (lit("true")) {
      v.type_ = Json::Type::Bool;
      v.b_ = true;
    } else if (lit("false")) {
      v.type_ = Json::Type::Bool;
    } else if (lit("null")) {
    } else if (lit("NaN")) {  // Python's json.dumps writes these for non-finite floats
      v.type_ = Json::Type::Number;
      v.n_ = NAN;
    } else if (lit("Infinity")) {
      v.type_ = Json::Type::Number;
      v.n_ = INFINITY;
    } else if (lit("-Infinity")) {
      v.type_ = Json::Type::Number;
      v.n_ = -INFINITY;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t b = i;
      if (s[i] == '-') ++i;
      auto digits = [&] {
        size_t d = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == d) fail("bad number");
      };
      digits();
      if (i < s.size() && s[i] == '.') {
        ++i;
        digits();
      }
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
        digits();
      }
      v.type_ = Json::Type::Number;
      v.n_ = std::strtod(s.substr(b, i - b).c_str(), nullptr);
    } else {
      fail("unexpected character");
    }
    --depth;
    return v;
  }
};

Json Json::parse(const std::string& text) {
  JsonParser p{text};
  Json v = p.value();
  p.ws();
  if (p.i != text.size()) p.fail("trailing characters");
  return v;
}

static const Json& null_json() {
  static const Json n;
  return n;
}

bool Json::has(const std::string& key) const noexcept {
  for (auto& kv : o_)
    if (kv.first == key) return true;
  return false;
}
const Json& Json::get(const std::string& key) const noexcept {
  for (auto& kv : o_)
    if (kv.first == key) return kv.second;
  return null_json();
}
const Json& Json::at(const std::string& key) const {
  if (type_ != Type::Object) throw BundleError("json: looking up '" + key + "' in a non-object");
  for (auto& kv : o_)
    if (kv.first == key) return kv.second;
  throw BundleError("json: missing key '" + key + "'");
}
const Json& Json::at(size_t i) const {
  if (type_ != Type::Array || i >= a_.size())
    throw BundleError("json: array index " + std::to_string(i) + " out of range");
  return a_[i];
}
size_t Json::size() const noexcept { return type_ == Type::Array ? a_.size() : type_ == Type::Object ? o_.size() : 0; }
const std::string& Json::str() const {
  if (type_ != Type::String) throw BundleError("json: expected a string");
  return s_;
}
double Json::num() const {
  if (type_ != Type::Number) throw BundleError("json: expected a number");
  return n_;
}
int64_t Json::integer() const {
  double d = num();
  if (!(d == std::floor(d)) || std::fabs(d) > 9.0e15) throw BundleError("json: expected an integer");
  return int64_t(d);
}
bool Json::boolean() const {
  if (type_ != Type::Bool) throw BundleError("json: expected true or false");
  return b_;
}
const std::vector<std::pair<std::string, Json>>& Json::items() const {
  if (type_ != Type::Object) throw BundleError("json: expected an object");
  return o_;
}

}  // namespace lictrt
