// Base64 (RFC 4648 §4, the standard alphabet with '=' padding): the error envelope's encoding of a
// body that is not JSON, MCP's "=?base64?…?=" header values, Kubernetes Secret data and
// kubeconfig certificates.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace asya {

// Appends the padded encoding of `bytes` to `out`.
void AppendBase64(std::string& out, std::string_view bytes);
std::string Base64Encode(std::string_view bytes);

// Strict decoding: length a multiple of 4, only the standard alphabet, padding only at the end
// (at most two), and no stray bits in the last character (so every input has one encoding).
// nullopt for anything else — callers say which field was not Base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace asya
