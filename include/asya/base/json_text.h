// JSON text helpers shared by every layer (logs, envelopes, runtime responses).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace asya {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid (overlong forms,
// surrogates and code points above U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view s, size_t i);

// Appends `s` as a JSON string literal (quotes included): control characters, quotes and
// backslashes escaped, valid UTF-8 copied as is, each invalid byte written as \ufffd so the
// output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace asya
