// The one place that keeps secrets out of text meant for people: logs, error messages, error
// envelopes, `asya describe`, status files.
//
// Two mechanisms, applied together by RedactSecrets():
//   1. Shapes that always carry a credential: the user-info of a URL (`amqp://user:pass@host` ->
//      `amqp://***@host`), the value of a URL query parameter or `key=value` pair whose name
//      says it is a credential (password, passwd, pwd, secret, token, signature, sig, apikey,
//      api_key, x-amz-credential, x-amz-security-token, x-amz-signature; any case; not when the
//      value is all digits, as in max_tokens=4096), the word after `Bearer `, and base64 of 8 or
//      more characters after `Basic `.
//   2. Values a program registered with RegisterSecret() (programs under src/bin register the
//      values of the variables that hold secrets: AWS keys, gateway tokens, S3 keys, the
//      password of every URL they read). Every occurrence is replaced with `***`. Values shorter
//      than kMinSecretLength are not registered (a short word would be erased from every line).
//
// The logger (log.h) passes every message and field through RedactSecrets(); code that builds
// other text for people (error envelopes, describe, status) calls it itself. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace asya {

inline constexpr size_t kMinSecretLength = 8;
inline constexpr std::string_view kRedacted = "***";

// `url` without its user-info: "scheme://***@host/path" (unchanged when it has none).
std::string RedactUrl(std::string_view url);

// Registers `value` (and its percent-encoded form) as a secret; ignored when shorter than
// kMinSecretLength. Registered secrets are never forgotten (a process holds a handful).
void RegisterSecret(std::string_view value);
// Registers the password (and the user name when it is long enough) of a URL's user-info.
void RegisterUrlSecrets(std::string_view url);

// Registers what an environment variable holds when its name says secret (…SECRET…, …TOKEN…,
// …PASSWORD…, …PASSWD…, …ACCESS_KEY…, …API_KEY…, but not …_FILE/_PATH/_DIR/_URI/_ENDPOINT
// names, which hold locations; a comma list item by item), and the user-info of a URL value.
// Programs call it for their environment, `asya up` for every env entry of every manifest.
void RegisterEnvSecret(std::string_view name, std::string_view value);

// `text` with every credential shape and every registered secret replaced by "***".
std::string RedactSecrets(std::string_view text);
// True when RedactSecrets would change `text` (cheap pre-check for hot paths).
bool ContainsSecret(std::string_view text);

}  // namespace asya
