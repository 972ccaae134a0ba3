#include "gridd/domain/idempotent_requests.h"

#include <openssl/evp.h>

#include <algorithm>
#include <optional>

#include "gridd/common/error.h"

namespace gridd::domain {
namespace {

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

// Length-prefixed, so no choice of names and values can make two parameter sets collide.
void AppendField(std::string& out, const std::string& field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

}  // namespace

void IdempotentRequests::ValidateKey(const std::string& key) {
  if (key.empty() || key.size() > kMaxKeyLength) {
    ThrowIllegalArgument("Parameter 'idempotency_key' must be 1 to " +
                         std::to_string(kMaxKeyLength) + " characters long");
  }
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) {
      ThrowIllegalArgument("Parameter 'idempotency_key' may hold printable ASCII characters only");
    }
  }
}

std::string IdempotentRequests::ParamsHash(const std::string& method,
                                           std::vector<std::pair<std::string, std::string>> pairs) {
  // Repeated keys keep their relative order (realiplist order matters); different keys may
  // come in any order.
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical;
  AppendField(canonical, method);
  for (const auto& [name, value] : pairs) {
    AppendField(canonical, name);
    AppendField(canonical, value);
  }
  return Sha256Hex(canonical);
}

StoredResponse IdempotentRequests::Run(int64_t account_id, const std::string& key,
                                       const std::string& method, const std::string& params_hash,
                                       const std::function<StoredResponse()>& perform) {
  return db_.Atomic([&](store::Connection& c) {
    const int64_t now = clock_.NowMs();
    c.Prepare("DELETE FROM idempotent_requests WHERE created_ms < ?")
        .Bind(1, now - kRetentionMs)
        .Run();
    {
      auto found = c.Prepare(
          "SELECT method, params_hash, status, content_type, body FROM idempotent_requests "
          "WHERE account_id = ? AND idempotency_key = ?");
      found.Bind(1, account_id).Bind(2, key);
      if (found.Step()) {
        if (found.Text(0) != method || found.Text(1) != params_hash) {
          ThrowIllegalArgument("Parameter 'idempotency_key' '" + key +
                               "' was already used with other parameters (by " + found.Text(0) +
                               "); use a new key for a new request");
        }
        return StoredResponse{static_cast<unsigned>(found.Int(2)), found.Text(3), found.Blob(4)};
      }
    }
    StoredResponse response = perform();
    if (response.status == 200) {
      c.Prepare(
           "INSERT INTO idempotent_requests (account_id, idempotency_key, method, params_hash, "
           "status, content_type, body, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
          .Bind(1, account_id)
          .Bind(2, key)
          .Bind(3, method)
          .Bind(4, params_hash)
          .Bind(5, static_cast<int64_t>(response.status))
          .Bind(6, response.content_type)
          .BindBlob(7, response.body)
          .Bind(8, now)
          .Run();
    }
    return response;
  });
}

}  // namespace gridd::domain
