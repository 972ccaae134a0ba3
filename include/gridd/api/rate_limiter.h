// Token buckets keyed by a string (an API key id, a client address). Each key starts with a
// full bucket of `burst` tokens that refills at `rate` tokens per second; a request takes one.
// Thread-safe. The table is bounded: when it is full, buckets that have refilled completely
// (and so carry no state worth keeping) are dropped first, then the whole table if need be.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace gridd::api {

struct TokenBucketLimits {
  double rate = 0;   // tokens per second; <= 0 disables the limit
  double burst = 0;  // bucket size
};

class RateLimiter {
 public:
  explicit RateLimiter(TokenBucketLimits limits, size_t max_keys = 100000)
      : limits_(limits), max_keys_(max_keys) {}

  // Takes a token for `key` at `now_seconds` (any monotonic clock). Returns nullopt when the
  // request may go ahead, otherwise the whole seconds until a token will be there (>= 1).
  std::optional<int> Acquire(const std::string& key, double now_seconds);
  // True when `key` has no token left now, without taking one.
  std::optional<int> Exhausted(const std::string& key, double now_seconds);

  bool enabled() const { return limits_.rate > 0 && limits_.burst >= 1; }

 private:
  struct Bucket {
    double tokens;
    double updated;
  };
  Bucket& Refilled(const std::string& key, double now_seconds);
  int SecondsUntilToken(const Bucket& bucket) const;

  TokenBucketLimits limits_;
  size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace gridd::api
