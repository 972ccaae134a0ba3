// The idempotency_key extension: a mutating request that carries a key is answered once. Its
// answer is stored in the same transaction as the change it made, so a client that lost the
// answer (a timeout, a crash of gridd) can send the request again and gets the original answer
// without a second change. Keys are per account and kept for 24 hours.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/store/database.h"

namespace gridd::domain {

struct StoredResponse {
  unsigned status = 200;
  std::string content_type;
  std::string body;
};

class IdempotentRequests {
 public:
  static constexpr int64_t kRetentionMs = 24LL * 3600 * 1000;
  static constexpr size_t kMaxKeyLength = 255;

  IdempotentRequests(store::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  // Throws IllegalArgument naming idempotency_key when the key is empty, too long or holds
  // characters other than printable ASCII.
  static void ValidateKey(const std::string& key);
  // A digest of the request's parameters, independent of their order; `pairs` must not hold
  // the per-call ones (api_key, sig, idempotency_key).
  static std::string ParamsHash(const std::string& method,
                                std::vector<std::pair<std::string, std::string>> pairs);

  // Runs `perform` inside one write transaction and stores its answer there when it is a
  // success; the services it calls join that transaction. A repeat of (account, key) with the
  // same method and parameters returns the stored answer and runs nothing; with others it is a
  // 400 naming idempotency_key. When `perform` throws, nothing is stored and nothing changed.
  StoredResponse Run(int64_t account_id, const std::string& key, const std::string& method,
                     const std::string& params_hash,
                     const std::function<StoredResponse()>& perform);

 private:
  store::Database& db_;
  const Clock& clock_;
};

}  // namespace gridd::domain
