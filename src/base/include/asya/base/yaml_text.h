// Checks YAML input text before a YAML library sees it. YAML text is Unicode and allows no C0
// control character but tab and line breaks (nor DEL); yaml-cpp passes other bytes through into
// strings that cannot be written as JSON later (nlohmann's dump() throws), and turns a NUL into
// the byte 0x85 (both found by fuzzing the tools config and the renderer).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace asya {

// nullopt for acceptable text; else "<line>: invalid UTF-8 at byte N (why)",
// "<line>: control character U+00XX at byte N (YAML does not allow it)" or "<line>: carriage
// return without a line feed at byte N (use LF or CRLF line endings)", line counted from 1.
std::optional<std::string> YamlTextProblem(std::string_view text);

// What the YAML documents of one text may expand to, all documents together. An alias repeats
// its anchor's whole node (yaml-cpp shares it), so a few kilobytes of nested aliases expand to
// gigabytes when converted to JSON, copied or rendered (found by fuzzing the renderer: 2 GB), and
// an alias inside its own anchor makes a cycle. Two measures: the bytes of the scalars (each
// value counts 1 more), and the number of values (maps, lists, scalars, nulls), because each
// value costs far more memory than a byte once converted (a JSON value, a rendered YAML line, a
// yaml-cpp node when the rendered YAML is read back: ~0.5 KB) and a list of nulls costs no bytes.
inline constexpr std::size_t kYamlMaxExpandedBytes =
    16u << 20;  // values + scalar bytes (4 x a manifest)
inline constexpr std::size_t kYamlMaxExpandedValues =
    1u << 18;  // 262,144 (a manifest or values file has hundreds)
inline constexpr int kYamlMaxDepth = 200;

// What is left of the limits above; one budget is charged by every document of a text. A text
// without aliases has fewer values than bytes, so a text of `text_size` bytes may hold
// max(kYamlMaxExpandedValues, text_size) values: only aliases are ever refused.
struct YamlExpansionBudget {
  YamlExpansionBudget() = default;
  explicit YamlExpansionBudget(std::size_t text_size)
      : values_limit(text_size > kYamlMaxExpandedValues ? text_size : kYamlMaxExpandedValues),
        values(values_limit) {}
  std::size_t bytes = kYamlMaxExpandedBytes;
  std::size_t values_limit = kYamlMaxExpandedValues;
  std::size_t values = kYamlMaxExpandedValues;
};

// nullopt when `node` (a yaml-cpp node; any type with its Is*/Scalar/iteration API) stays within
// what is left of `budget` once its aliases are expanded (and charges it); else why not. Stops
// as soon as a limit is passed, so it costs at most the limit, not the expansion.
template <class Node>
std::optional<std::string> YamlExpansionProblem(const Node& node, YamlExpansionBudget& budget) {
  bool too_deep = false;
  bool too_many = false;
  auto walk = [&](auto& self, const Node& n, int depth) -> bool {
    if (depth > kYamlMaxDepth) {
      too_deep = true;
      return false;
    }
    if (budget.values == 0) {
      too_many = true;
      return false;
    }
    const std::size_t weight = 1 + (n.IsScalar() ? n.Scalar().size() : 0);
    if (weight > budget.bytes) {
      return false;
    }
    budget.bytes -= weight;
    --budget.values;
    if (n.IsMap()) {
      for (const auto& kv : n) {
        if (!self(self, kv.first, depth + 1) || !self(self, kv.second, depth + 1)) {
          return false;
        }
      }
    } else if (n.IsSequence()) {
      for (const auto& e : n) {
        if (!self(self, static_cast<const Node&>(e), depth + 1)) {
          return false;
        }
      }
    }
    return true;
  };
  if (walk(walk, node, 0)) {
    return std::nullopt;
  }
  if (too_deep) {
    return "nested more than " + std::to_string(kYamlMaxDepth) +
           " levels deep (or an alias inside its own anchor)";
  }
  if (too_many) {
    return "its aliases expand past " + std::to_string(budget.values_limit) +
           " values (each alias repeats its anchor's whole value)";
  }
  return "its aliases expand past " + std::to_string(kYamlMaxExpandedBytes >> 20) +
         " MiB (each alias repeats its anchor's whole value)";
}

// One document on its own (a fresh budget).
template <class Node>
std::optional<std::string> YamlExpansionProblem(const Node& node) {
  YamlExpansionBudget budget;
  return YamlExpansionProblem(node, budget);
}

}  // namespace asya
