// Operating levels of scalable bundles (lictrt/levels.hpp); runtime/levels.py wraps this through runtime._lictrt.
#include "lictrt/levels.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace lictrt {
namespace {

bool py_space(char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r') || (ch >= '\x1c' && ch <= '\x1f'); }

std::string strip(const std::string& s) {  // str.strip() for ASCII whitespace
  size_t a = 0, b = s.size();
  while (a < b && py_space(s[a])) ++a;
  while (b > a && py_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::string py_repr(const std::string& s) {  // repr(str) for the messages
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char ch : s) {
    if (ch == '\\' || ch == q) {
      out += '\\';
      out += char(ch);
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += char(ch);
    }
  }
  return out + q;
}

// int(text) as Python reads it (sign, digits, single underscores between digits), printed back as str(int); false
// when it is not a number.
bool py_int(const std::string& t, std::string& out) {
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
  std::string digits;
  bool prev_digit = false;
  for (; i < t.size(); ++i) {
    const char ch = t[i];
    if (ch >= '0' && ch <= '9') {
      digits += ch;
      prev_digit = true;
    } else if (ch == '_' && prev_digit && i + 1 < t.size() && t[i + 1] >= '0' && t[i + 1] <= '9') {
      prev_digit = false;
    } else {
      return false;
    }
  }
  if (digits.empty()) return false;
  const size_t nz = digits.find_first_not_of('0');
  digits = nz == std::string::npos ? "0" : digits.substr(nz);
  out = (neg && digits != "0" ? "-" : "") + digits;
  return true;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// str(value) as Python prints a JSON value that is neither an integer nor a string (for the messages).
std::string py_str(const Json& v) {
  switch (v.type()) {
    case Json::Type::Null:
      return "None";
    case Json::Type::Bool:
      return v.boolean() ? "True" : "False";
    case Json::Type::Number: {
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, v.num());
      std::string s(buf, r.ptr);
      if (s.find_first_of(".en") == std::string::npos) s += ".0";
      return s;
    }
    case Json::Type::Array:
      return "[...]";
    default:
      return "{...}";
  }
}

// An axis value given in JSON: an integral number (number = true) or a string; false for any other JSON value.
bool plain_value(const Json& v, std::string& text, bool& number) {
  number = v.is_number() && v.num() == double(int64_t(v.num()));
  if (number)
    text = std::to_string(v.integer());
  else if (v.is_string())
    text = v.str();
  else
    return false;
  return true;
}

[[noreturn]] void malformed(const std::string& what) { throw BundleError("plan levels are malformed: " + what); }

}  // namespace

Levels::Levels(const Json& spec) {
  if (!spec.is_object() || !spec.get("axes").is_array()) malformed("'axes' must be a list");
  for (size_t k = 0; k < spec.at("axes").size(); ++k) {
    const Json& a = spec.at("axes").at(k);
    if (!a.is_object() || !a.get("name").is_string() || !a.get("values").is_array())
      malformed("each axis needs a 'name' and a list of 'values'");
    Axis ax;
    ax.name = a.at("name").str();
    ax.numeric = true;
    for (size_t i = 0; i < a.at("values").size(); ++i) {
      const Json& v = a.at("values").at(i);
      if (v.is_number()) {
        if (v.num() != double(int64_t(v.num()))) malformed("axis '" + ax.name + "' has a value that is not an integer");
        ax.values.push_back(std::to_string(v.integer()));
        ax.number.push_back(true);
      } else if (v.is_string()) {
        ax.values.push_back(v.str());
        ax.number.push_back(false);
        ax.numeric = false;
      } else {
        malformed("axis '" + ax.name + "' values must be numbers or strings");
      }
    }
    axes_.push_back(std::move(ax));
  }
  const Json& presets = spec.get("presets");
  if (!presets.is_null() && !presets.is_object()) malformed("'presets' must map names to levels");
  std::vector<std::string> names;
  if (presets.is_object())
    for (auto& kv : presets.items()) {
      if (!kv.second.is_object()) malformed("preset '" + kv.first + "' must map axes to values");
      Partial p;
      for (auto& av : kv.second.items()) {
        std::string text;
        bool number;
        if (!plain_value(av.second, text, number))
          malformed("preset '" + kv.first + "' axis '" + av.first + "' must be a number or a string");
        p.emplace_back(av.first, Value{text, number});
      }
      presets_.emplace_back(kv.first, std::move(p));
      names.push_back(kv.first);
    }
  const Json& dflt = spec.get("default");
  if (dflt.is_string())
    default_ = dflt.str();
  else if (dflt.is_null())
    default_ = names.empty() ? "" : names[0];
  else
    malformed("'default' must be a preset name");
  if (axes_.empty() || axes_.size() > 16 ||
      std::any_of(axes_.begin(), axes_.end(), [](const Axis& a) { return a.values.empty() || a.values.size() > 256; }))
    throw BundleError("plan levels need 1-16 axes of 1-256 values each");
  for (auto& p : presets_) complete(p.second, "preset '" + p.first + "'", true);
  if (std::find(names.begin(), names.end(), default_) == names.end())
    throw BundleError("default level '" + default_ + "' is not a preset (" + join(names) + ")");
}

Level Levels::complete(const Partial& level, const std::string& what, bool bundle_error) const {
  auto fail = [&](const std::string& msg) -> void {
    if (bundle_error) throw BundleError(msg);
    throw LevelError(msg);
  };
  std::vector<std::string> unknown;
  for (auto& kv : level)
    if (std::none_of(axes_.begin(), axes_.end(), [&](const Axis& a) { return a.name == kv.first; }))
      unknown.push_back(kv.first);
  if (!unknown.empty()) {
    std::vector<std::string> names;
    for (auto& a : axes_) names.push_back(a.name);
    fail(what + ": unknown axis " + py_repr(*std::min_element(unknown.begin(), unknown.end())) +
         " (axes: " + join(names) + ")");
  }
  const Partial* base = nullptr;
  if (!bundle_error)
    for (auto& p : presets_)
      if (p.first == default_) base = &p.second;
  Level out;
  for (auto& ax : axes_) {
    const Value* v = nullptr;
    for (auto& kv : level)
      if (kv.first == ax.name) v = &kv.second;
    if (!v && base)
      for (auto& kv : *base)
        if (kv.first == ax.name) v = &kv.second;
    if (!v || v->none) fail(what + ": no value for axis '" + ax.name + "'");
    bool offered = false;
    for (size_t i = 0; i < ax.values.size(); ++i)
      offered |= !v->other && ax.values[i] == v->text && ax.number[i] == v->number;
    if (!offered) fail(what + ": " + ax.name + "=" + v->text + " is not offered (choose " + join(ax.values) + ")");
    out.emplace_back(ax.name, v->text);
  }
  return out;
}

Level Levels::parse(const std::optional<std::string>& given) const {
  auto preset = [&](const std::string& name) -> const Partial* {
    for (auto& p : presets_)
      if (p.first == name) return &p.second;
    return nullptr;
  };
  if (!given) return complete(*preset(default_), "level", false);
  const std::string text = strip(*given);
  if (const Partial* p = preset(text)) return complete(*p, "level", false);
  Partial level;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string part = strip(text.substr(start, comma - start));
    start = comma + 1;
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    if (eq == std::string::npos) {
      std::vector<std::string> names;
      for (auto& p : presets_) names.push_back(p.first);
      throw LevelError("bad level " + py_repr(text) + ": expected a preset (" + join(names) +
                       ") or axis=value pairs such as g_a=48,context=4stage");
    }
    const std::string name = strip(part.substr(0, eq));
    Value v{strip(part.substr(eq + 1)), false};
    for (auto& ax : axes_)
      if (ax.name == name && ax.numeric) {
        std::string n;
        if (!py_int(v.text, n)) throw LevelError("bad level " + py_repr(text) + ": " + name + " takes a number");
        v = Value{n, true};
      }
    bool seen = false;
    for (auto& kv : level)
      if (kv.first == name) kv.second = v, seen = true;
    if (!seen) level.emplace_back(name, v);
  }
  return complete(level, "level", false);
}

Level Levels::resolve(const Json& given) const {
  if (!given.is_object()) throw LevelError("level: expected a mapping of axis to value");
  Partial level;
  for (auto& kv : given.items()) {
    std::string text;
    bool number;
    if (plain_value(kv.second, text, number))
      level.emplace_back(kv.first, Value{text, number});
    else
      level.emplace_back(kv.first, Value{py_str(kv.second), false, true, kv.second.is_null()});
  }
  return complete(level, "level", false);
}

std::vector<std::pair<std::string, Level>> Levels::presets() const {
  std::vector<std::pair<std::string, Level>> out;
  for (auto& p : presets_) out.emplace_back(p.first, complete(p.second, "preset '" + p.first + "'", true));
  return out;
}

std::vector<uint8_t> Levels::to_bytes(const Level& level) const {
  std::vector<uint8_t> out;
  for (auto& ax : axes_) {
    const std::string& v = value(level, ax.name);
    const auto it = std::find(ax.values.begin(), ax.values.end(), v);
    if (it == ax.values.end())
      throw LevelError("level: " + ax.name + "=" + v + " is not offered (choose " + join(ax.values) + ")");
    out.push_back(uint8_t(it - ax.values.begin()));
  }
  return out;
}

Level Levels::from_bytes(const std::vector<uint8_t>& data) const {
  if (data.size() != axes_.size()) {
    std::vector<std::string> names;
    for (auto& a : axes_) names.push_back(a.name);
    throw BitstreamError("the header's level has " + std::to_string(data.size()) + " choices, the bundle has " +
                         std::to_string(axes_.size()) + " axes (" + join(names) + ")");
  }
  Level out;
  for (size_t k = 0; k < axes_.size(); ++k) {
    if (data[k] >= axes_[k].values.size())
      throw BitstreamError("the header's level index " + std::to_string(data[k]) + " for '" + axes_[k].name +
                           "' is outside the bundle's " + std::to_string(axes_[k].values.size()) + " values");
    out.emplace_back(axes_[k].name, axes_[k].values[data[k]]);
  }
  return out;
}

std::string Levels::format(const Level& level) {
  std::string s;
  for (auto& kv : level) s += (s.empty() ? "" : ",") + kv.first + "=" + kv.second;
  return s;
}

const std::string& Levels::value(const Level& level, const std::string& name) {
  for (auto& kv : level)
    if (kv.first == name) return kv.second;
  throw BundleError("the level has no axis '" + name + "'");
}

std::optional<Levels> levels_of(const Json& plan) {
  const Json& spec = plan.get("levels");
  if (spec.is_null()) return std::nullopt;
  return Levels(spec);
}

}  // namespace lictrt
