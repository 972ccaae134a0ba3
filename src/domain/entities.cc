#include "gridd/domain/entities.h"

#include <algorithm>
#include <cctype>

namespace gridd::domain {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kSuperUser:
      return "Super User";
    case Role::kSystemUser:
      return "System User";
    case Role::kBillingUser:
      return "Billing User";
    case Role::kReadOnlyUser:
      return "Read Only User";
  }
  return "Read Only User";
}

std::optional<Role> ParseRole(std::string_view text) {
  std::string key;
  for (char c : text) {
    if (c == ' ' || c == '-' || c == '_') continue;
    key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (key == "superuser" || key == "super" || key == "1") return Role::kSuperUser;
  if (key == "systemuser" || key == "system" || key == "2") return Role::kSystemUser;
  if (key == "billinguser" || key == "billing" || key == "3") return Role::kBillingUser;
  if (key == "readonlyuser" || key == "readonly" || key == "4") return Role::kReadOnlyUser;
  return std::nullopt;
}

const char* SigningPolicyName(SigningPolicy policy) {
  return policy == SigningPolicy::kHmacOnly ? "hmac-only" : "md5+hmac";
}

std::optional<SigningPolicy> ParseSigningPolicy(std::string_view text) {
  if (text == "md5+hmac" || text == "any") return SigningPolicy::kAny;
  if (text == "hmac-only" || text == "hmac") return SigningPolicy::kHmacOnly;
  return std::nullopt;
}

}  // namespace gridd::domain
