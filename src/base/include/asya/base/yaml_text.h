// Checks YAML input text before a YAML library sees it. YAML text is Unicode and allows no C0
// control character but tab and line breaks (nor DEL); yaml-cpp passes other bytes through into
// strings that cannot be written as JSON later (nlohmann's dump() throws), and turns a NUL into
// the byte 0x85 (both found by fuzzing the tools config and the renderer).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace asya {

// nullopt for acceptable text; else "<line>: invalid UTF-8 at byte N (why)" or
// "<line>: control character U+00XX at byte N (YAML does not allow it)", line counted from 1.
std::optional<std::string> YamlTextProblem(std::string_view text);

}  // namespace asya
