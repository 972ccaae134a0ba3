#include "gridd/api/signature.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "gridd/common/crypto.h"

namespace gridd::api {

bool SignatureVerifier::Verify(std::string_view api_key, std::string_view shared_secret,
                               std::string_view signature, int64_t now_seconds) {
  if (signature.size() != 32) return false;
  std::string wanted(signature);
  for (char& c : wanted) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string cache_key;
  cache_key.reserve(api_key.size() + 1 + wanted.size());
  cache_key.append(api_key).append(":").append(wanted);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = verified_.find(cache_key);
    if (it != verified_.end()) {
      return it->second >= now_seconds - past_ && it->second <= now_seconds + future_;
    }
  }
  std::string prefix;
  prefix.reserve(api_key.size() + shared_secret.size() + 20);
  prefix.append(api_key).append(shared_secret);
  const size_t prefix_size = prefix.size();
  int attempts = 0;
  auto matches = [&](int64_t second) {
    prefix.resize(prefix_size);
    prefix.append(std::to_string(second));
    ++attempts;
    return ConstantTimeEquals(Md5Hex(prefix), wanted);
  };
  std::optional<int64_t> found;
  const int reach = std::max(past_, future_);
  for (int offset = 0; offset <= reach && !found; ++offset) {
    if (offset <= past_ && matches(now_seconds - offset)) {
      found = now_seconds - offset;
    } else if (offset > 0 && offset <= future_ && matches(now_seconds + offset)) {
      found = now_seconds + offset;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  last_attempts_ = attempts;
  if (!found) return false;
  // Entries older than the window can never verify again; clearing when full is simpler than
  // an LRU and costs at most one MD5 per live signature afterwards.
  if (verified_.size() >= capacity_) verified_.clear();
  verified_.emplace(std::move(cache_key), *found);
  return true;
}

}  // namespace gridd::api
