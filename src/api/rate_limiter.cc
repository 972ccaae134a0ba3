#include "gridd/api/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace gridd::api {

RateLimiter::Bucket& RateLimiter::Refilled(const std::string& key, double now_seconds) {
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      std::erase_if(buckets_, [&](const auto& entry) {
        const Bucket& b = entry.second;
        return b.tokens + (now_seconds - b.updated) * limits_.rate >= limits_.burst;
      });
      // Every bucket still drains: forgetting them all is the price of a bounded table.
      if (buckets_.size() >= max_keys_) buckets_.clear();
    }
    it = buckets_.emplace(key, Bucket{limits_.burst, now_seconds}).first;
  }
  Bucket& bucket = it->second;
  const double elapsed = std::max(0.0, now_seconds - bucket.updated);
  bucket.tokens = std::min(limits_.burst, bucket.tokens + elapsed * limits_.rate);
  bucket.updated = std::max(bucket.updated, now_seconds);
  return bucket;
}

int RateLimiter::SecondsUntilToken(const Bucket& bucket) const {
  const double missing = 1.0 - bucket.tokens;
  return std::max(1, static_cast<int>(std::ceil(missing / limits_.rate)));
}

std::optional<int> RateLimiter::Acquire(const std::string& key, double now_seconds) {
  if (!enabled()) return std::nullopt;
  std::lock_guard lock(mutex_);
  Bucket& bucket = Refilled(key, now_seconds);
  if (bucket.tokens < 1.0) return SecondsUntilToken(bucket);
  bucket.tokens -= 1.0;
  return std::nullopt;
}

std::optional<int> RateLimiter::Exhausted(const std::string& key, double now_seconds) {
  if (!enabled()) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) return std::nullopt;
  Bucket& bucket = Refilled(key, now_seconds);
  if (bucket.tokens < 1.0) return SecondsUntilToken(bucket);
  return std::nullopt;
}

}  // namespace gridd::api
