// JSON -> block YAML, written by hand so the output is byte-stable and fast (no yaml-cpp node
// building): maps as `key: value`, lists kubectl-style (`- ` at the key's indentation), strings
// plain only when no YAML reader could take them for anything else.
#include <charconv>
#include <string>
#include <string_view>

#include "asya/operator/render.h"

namespace asya::op {
namespace {

using nlohmann::json;

// Characters that never appear in a plain scalar we write (flow indicators, quotes, anchors,
// tags, comments, controls, non-ASCII), and those that may not start one (indicators, digits and
// signs: numbers, dates, .inf, ...).
struct CharTables {
  bool never[256] = {};
  bool not_first[256] = {};
  CharTables() {
    for (int c = 0; c < 0x20; ++c) {
      never[c] = true;
    }
    for (int c = 0x7f; c < 256; ++c) {
      never[c] = true;
    }
    for (unsigned char c : std::string_view("{}[],&*!|>'\"%@`#")) {
      never[c] = true;
    }
    for (unsigned char c : std::string_view("-?:+. ~=<0123456789")) {
      not_first[c] = true;
    }
  }
};
const CharTables kChars;

bool IEquals(const std::string& s, std::string_view word) {
  if (s.size() != word.size()) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
    if (c != word[i]) {
      return false;
    }
  }
  return true;
}

bool IsPlainSafe(const std::string& s) {
  if (s.empty() || s.size() > 200) {
    return false;
  }
  const auto first = static_cast<unsigned char>(s.front());
  if (kChars.never[first] || kChars.not_first[first] || s.back() == ' ' || s.back() == ':') {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (kChars.never[c] || (c == ':' && i + 1 < s.size() && s[i + 1] == ' ')) {
      return false;
    }
  }
  // Words YAML 1.1 or 1.2 readers turn into booleans or null.
  if (s.size() <= 5) {
    for (std::string_view w : {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}) {
      if (IEquals(s, w)) {
        return false;
      }
    }
  }
  return true;
}

void Quoted(const std::string& s, std::string& out) {
  out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

// A literal block (`|`) keeps multi-line text readable (e.g. the runtime script). The first line
// sets the block's indentation, so it must not start with a space; controls other than newline
// and tab need the double-quoted form.
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
  return true;
}

void Literal(const std::string& s, int indent, std::string& out) {
  size_t trailing = 0;
  while (trailing < s.size() && s[s.size() - 1 - trailing] == '\n') {
    ++trailing;
  }
  out += trailing == 0 ? "|-" : trailing == 1 ? "|" : "|+";
  out += '\n';
  const size_t body = s.size() - trailing;
  size_t start = 0;
  while (start <= body) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos || end > body) {
      end = body;
    }
    if (end > start) {
      out.append(static_cast<size_t>(indent), ' ');
      out.append(s, start, end - start);
    }
    out += '\n';
    start = end + 1;
  }
  for (size_t i = 1; i < trailing; ++i) {
    out += '\n';
  }
}

void Key(const std::string& k, std::string& out) {
  if (IsPlainSafe(k)) {
    out += k;
  } else {
    Quoted(k, out);
  }
}

// Writes a scalar or empty collection after "key: " / "- " (with its newline).
void Inline(const json& v, int indent, std::string& out) {
  switch (v.type()) {
    case json::value_t::boolean:
      out += v.get<bool>() ? "true\n" : "false\n";
      return;
    case json::value_t::number_integer: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof(buf), v.get<int64_t>());
      out.append(buf, r.ptr);
      out += '\n';
      return;
    }
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      out += v.dump();
      out += '\n';
      return;
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (IsPlainSafe(s)) {
        out += s;
        out += '\n';
      } else if (LiteralOk(s)) {
        Literal(s, indent, out);
      } else {
        Quoted(s, out);
        out += '\n';
      }
      return;
    }
    case json::value_t::object:
      out += "{}\n";
      return;
    case json::value_t::array:
      out += "[]\n";
      return;
    default:
      out += "null\n";
      return;
  }
}

bool IsCollection(const json& v) {
  return (v.is_object() || v.is_array()) && !v.empty();
}

void EmitList(const json& v, int indent, std::string& out);

// `first_inline`: the first key follows a "- " already written.
void EmitMap(const json& v, int indent, std::string& out, bool first_inline) {
  bool first = true;
  for (const auto& [k, child] : v.get_ref<const json::object_t&>()) {
    if (!(first && first_inline)) {
      out.append(static_cast<size_t>(indent), ' ');
    }
    first = false;
    Key(k, out);
    out += ':';
    if (!IsCollection(child)) {
      out += ' ';
      Inline(child, indent + 2, out);
    } else if (child.is_object()) {
      out += '\n';
      EmitMap(child, indent + 2, out, false);
    } else {
      out += '\n';
      EmitList(child, indent, out);
    }
  }
}

void EmitList(const json& v, int indent, std::string& out) {
  for (const auto& item : v) {
    out.append(static_cast<size_t>(indent), ' ');
    out += "- ";
    if (!IsCollection(item)) {
      Inline(item, indent + 2, out);
    } else if (item.is_object()) {
      EmitMap(item, indent + 2, out, true);
    } else {
      out += '\n';
      EmitList(item, indent + 2, out);
    }
  }
}

void Emit(const json& v, std::string& out) {
  if (v.is_object() && !v.empty()) {
    EmitMap(v, 0, out, false);
  } else if (v.is_array() && !v.empty()) {
    EmitList(v, 0, out);
  } else {
    Inline(v, 0, out);
  }
}

}  // namespace

std::string ToYaml(const json& value) {
  std::string out;
  Emit(value, out);
  return out;
}

std::string ToYamlStream(const std::vector<json>& objects) {
  std::string out;
  out.reserve(objects.size() * 4096);
  for (const auto& o : objects) {
    out += "---\n";
    Emit(o, out);
  }
  return out;
}

}  // namespace asya::op
