// asya::Result<T>: the error type that crosses every library boundary.
//
// Result<T> is tl::expected<T, asya::Error>; use only the parts std::expected also has
// (has_value, value, error, *, ->, and_then, transform, or_else) so a later move to
// std::expected touches this file only.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace asya {

// Canonical error codes (modelled on absl::StatusCode).
enum class ErrorCode {
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kUnavailable,
  kDeadlineExceeded,
  kResourceExhausted,
  kPermissionDenied,
  kCancelled,
  kUnimplemented,
  kInternal,
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // "<code name>: <message>"
  [[nodiscard]] std::string ToString() const;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

[[nodiscard]] inline tl::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
[[nodiscard]] inline tl::unexpected<Error> Unexpected(Error error) {
  return tl::unexpected<Error>(std::move(error));
}
[[nodiscard]] inline Status Ok() { return {}; }

}  // namespace asya

#define ASYA_CONCAT_INNER_(a, b) a##b
#define ASYA_CONCAT_(a, b) ASYA_CONCAT_INNER_(a, b)

// Returns the error of a Result/Status expression from the enclosing function.
#define ASYA_RETURN_IF_ERROR(expr)                              \
  do {                                                          \
    auto asya_status_ = (expr);                                 \
    if (!asya_status_.has_value()) {                            \
      return ::asya::Unexpected(std::move(asya_status_).error()); \
    }                                                           \
  } while (false)

// `ASYA_ASSIGN_OR_RETURN(auto x, Foo());` declares x from the value or returns the error.
#define ASYA_ASSIGN_OR_RETURN(lhs, expr) \
  ASYA_ASSIGN_OR_RETURN_IMPL_(ASYA_CONCAT_(asya_result_, __LINE__), lhs, expr)
#define ASYA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)     \
  auto tmp = (expr);                                    \
  if (!tmp.has_value()) {                               \
    return ::asya::Unexpected(std::move(tmp).error());  \
  }                                                     \
  lhs = std::move(tmp).value()
