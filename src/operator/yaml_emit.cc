// JSON -> block YAML, written by hand so the output is byte-stable and fast (no yaml-cpp node
// building): maps as `key: value`, lists kubectl-style (`- ` at the key's indentation), strings
// plain only when no YAML reader could take them for anything else.
#include <string>

#include "asya/operator/render.h"

namespace asya::op {
namespace {

using nlohmann::json;

bool IsPlainSafe(const std::string& s) {
  if (s.empty() || s.size() > 200) {
    return false;
  }
  const char first = s.front();
  // Indicators, digits and signs (numbers, dates, .inf, ...) start quoted strings.
  if ((first >= '0' && first <= '9') ||
      std::string_view("-?:,[]{}#&*!|>'\"%@`+. ~=<").find(first) != std::string_view::npos) {
    return false;
  }
  if (s.back() == ' ' || s.back() == ':') {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c >= 0x80) {
      return false;
    }
    if (std::string_view("{}[],&*!|>'\"%@`#").find(static_cast<char>(c)) !=
        std::string_view::npos) {
      return false;
    }
    if (c == ':' && i + 1 < s.size() && s[i + 1] == ' ') {
      return false;
    }
  }
  // Words YAML 1.1 or 1.2 readers turn into booleans or null.
  std::string lower;
  for (char c : s) {
    lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  for (const char* w : {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}) {
    if (lower == w) {
      return false;
    }
  }
  return true;
}

std::string Quoted(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

// A literal block (`|`) keeps multi-line text readable (e.g. the runtime script).
bool LiteralOk(const std::string& s) {
  if (s.find('\n') == std::string::npos || s.front() == ' ' || s.front() == '\n' ||
      s.front() == '\t') {
    return false;
  }
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      return false;
    }
  }
  // Every line after the first must not start with a space the block's indentation would eat
  // the wrong way: leading spaces are content, which is fine as long as the first line sets the
  // indentation, and it does (it does not start with a space).
  return s.find_first_not_of('\n') != std::string::npos;
}

void Literal(const std::string& s, int indent, std::string& out) {
  size_t trailing = 0;
  while (trailing < s.size() && s[s.size() - 1 - trailing] == '\n') {
    ++trailing;
  }
  out += trailing == 0 ? "|-" : trailing == 1 ? "|" : "|+";
  out += '\n';
  const std::string pad(static_cast<size_t>(indent), ' ');
  const std::string body = s.substr(0, s.size() - trailing);
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) {
      end = body.size();
    }
    if (end > start) {
      out += pad;
      out.append(body, start, end - start);
    }
    out += '\n';
    start = end + 1;
  }
  for (size_t i = 1; i < trailing; ++i) {
    out += '\n';
  }
}

std::string Key(const std::string& k) {
  return IsPlainSafe(k) ? k : Quoted(k);
}

// Writes a scalar or empty collection after "key:" / "- "; returns false for nested collections.
bool Inline(const json& v, int indent, std::string& out) {
  switch (v.type()) {
    case json::value_t::null:
      out += "null\n";
      return true;
    case json::value_t::boolean:
      out += v.get<bool>() ? "true\n" : "false\n";
      return true;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      out += v.dump() + "\n";
      return true;
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (IsPlainSafe(s)) {
        out += s + "\n";
      } else if (LiteralOk(s)) {
        Literal(s, indent, out);
      } else {
        out += Quoted(s) + "\n";
      }
      return true;
    }
    case json::value_t::object:
      if (v.empty()) {
        out += "{}\n";
        return true;
      }
      return false;
    case json::value_t::array:
      if (v.empty()) {
        out += "[]\n";
        return true;
      }
      return false;
    default:
      out += "null\n";
      return true;
  }
}

void Emit(const json& v, int indent, std::string& out, bool first_inline);

void EmitMap(const json& v, int indent, std::string& out, bool first_inline) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  bool first = true;
  for (const auto& [k, child] : v.items()) {
    if (!(first && first_inline)) {
      out += pad;
    }
    first = false;
    out += Key(k);
    out += ':';
    const bool collection = (child.is_object() || child.is_array()) && !child.empty();
    if (!collection) {
      out += ' ';
      Inline(child, indent + 2, out);
      continue;
    }
    out += '\n';
    Emit(child, child.is_array() ? indent : indent + 2, out, false);
  }
}

void EmitList(const json& v, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (const auto& item : v) {
    out += pad;
    out += "- ";
    const bool collection = (item.is_object() || item.is_array()) && !item.empty();
    if (!collection) {
      Inline(item, indent + 2, out);
    } else if (item.is_object()) {
      EmitMap(item, indent + 2, out, true);
    } else {
      out += '\n';
      EmitList(item, indent + 2, out);
    }
  }
}

void Emit(const json& v, int indent, std::string& out, bool first_inline) {
  if (v.is_object() && !v.empty()) {
    EmitMap(v, indent, out, first_inline);
  } else if (v.is_array() && !v.empty()) {
    EmitList(v, indent, out);
  } else {
    Inline(v, indent, out);
  }
}

}  // namespace

std::string ToYaml(const json& value) {
  std::string out;
  Emit(value, 0, out, false);
  return out;
}

std::string ToYamlStream(const std::vector<json>& objects) {
  std::string out;
  for (const auto& o : objects) {
    out += "---\n";
    out += ToYaml(o);
  }
  return out;
}

}  // namespace asya::op
