// Errors that reach an API client. Every failure a customer can cause is an ApiError with one
// of GoGrid's error classes; the API layer turns it into the failure envelope of the requested
// format with the matching HTTP status.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace gridd {

enum class ErrorClass {
  kIllegalArgument,       // 400 IllegalArgumentException: bad input, not found, busy objects
  kUnauthorized,          // 401: the key's role may not call the method
  kAuthenticationFailed,  // 403: unknown key or bad signature
  kTooManyRequests,       // 429: a rate limit (gridd extension, with Retry-After)
  kUnexpected,            // 500 UnexpectedException: gridd's own fault
};

int HttpStatusFor(ErrorClass error_class);
std::string_view ErrorCodeFor(ErrorClass error_class);

class ApiError : public std::runtime_error {
 public:
  ApiError(ErrorClass error_class, const std::string& message)
      : std::runtime_error(message), error_class_(error_class) {}
  ErrorClass error_class() const { return error_class_; }

 private:
  ErrorClass error_class_;
};

// Shorthand for the common case: a 400 IllegalArgumentException with a precise message.
[[noreturn]] void ThrowIllegalArgument(const std::string& message);

inline constexpr std::string_view kNoObjectFound =
    "No object found that matches your input criteria.";

}  // namespace gridd
