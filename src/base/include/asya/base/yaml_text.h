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

// nullopt for acceptable text; else "<line>: invalid UTF-8 at byte N (why)" or
// "<line>: control character U+00XX at byte N (YAML does not allow it)", line counted from 1.
std::optional<std::string> YamlTextProblem(std::string_view text);

// What a loaded YAML document may expand to. An alias repeats its anchor's whole node (yaml-cpp
// shares it), so a few kilobytes of nested aliases expand to gigabytes when converted to JSON
// (found by fuzzing the renderer: 2 GB), and an alias inside its own anchor makes a cycle.
inline constexpr std::size_t kYamlMaxExpandedBytes =
    16u << 20;  // values + scalar bytes (4 x a manifest)
inline constexpr int kYamlMaxDepth = 200;

// nullopt when `node` (a yaml-cpp node; any type with its Is*/Scalar/iteration API) stays within
// the limits above once its aliases are expanded; else why not. Stops as soon as a limit is
// passed, so it costs at most the limit, not the expansion.
template <class Node>
std::optional<std::string> YamlExpansionProblem(const Node& node) {
  std::size_t budget = kYamlMaxExpandedBytes;
  bool too_deep = false;
  auto walk = [&](auto& self, const Node& n, int depth) -> bool {
    if (depth > kYamlMaxDepth) {
      too_deep = true;
      return false;
    }
    const std::size_t weight = 1 + (n.IsScalar() ? n.Scalar().size() : 0);
    if (weight > budget) {
      return false;
    }
    budget -= weight;
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
  return "its aliases expand past " + std::to_string(kYamlMaxExpandedBytes >> 20) +
         " MiB (each alias repeats its anchor's whole value)";
}

}  // namespace asya
