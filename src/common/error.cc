#include "gridd/common/error.h"

namespace gridd {

int HttpStatusFor(ErrorClass error_class) {
  switch (error_class) {
    case ErrorClass::kIllegalArgument:
      return 400;
    case ErrorClass::kUnauthorized:
      return 401;
    case ErrorClass::kAuthenticationFailed:
      return 403;
    case ErrorClass::kTooManyRequests:
      return 429;
    case ErrorClass::kUnexpected:
      return 500;
  }
  return 500;
}

std::string_view ErrorCodeFor(ErrorClass error_class) {
  switch (error_class) {
    case ErrorClass::kIllegalArgument:
      return "IllegalArgumentException";
    case ErrorClass::kUnauthorized:
      return "Unauthorized";
    case ErrorClass::kAuthenticationFailed:
      return "AuthenticationFailed";
    case ErrorClass::kTooManyRequests:
      return "TooManyRequests";
    case ErrorClass::kUnexpected:
      return "UnexpectedException";
  }
  return "UnexpectedException";
}

void ThrowIllegalArgument(const std::string& message) {
  throw ApiError(ErrorClass::kIllegalArgument, message);
}

}  // namespace gridd
