#include "gridd/api/signature.h"

#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "gridd/common/crypto.h"

namespace gridd::api {

bool SignatureVerifier::Verify(std::string_view api_key, std::string_view shared_secret,
                               std::string_view signature, int64_t now_seconds) {
  if (signature.size() != 32) return false;
  std::string wanted(signature);
  for (char& c : wanted) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // The secret is part of the entry: after a rotation, a signature made with the replaced
  // secret must not verify from the cache once that secret's grace period is over.
  std::string cache_key;
  cache_key.reserve(api_key.size() + wanted.size() + shared_secret.size() + 2);
  cache_key.append(api_key).append(":").append(wanted).append(":").append(shared_secret);
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

namespace {

std::string PercentEncode(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> Single(const std::vector<std::pair<std::string, std::string>>& params,
                                  std::string_view name) {
  std::optional<std::string> found;
  for (const auto& [key, value] : params) {
    if (key != name) continue;
    if (found) return std::nullopt;  // given twice: ambiguous, refused
    found = value;
  }
  return found;
}

}  // namespace

std::string HmacVerifier::HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &size);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::string HmacVerifier::CanonicalString(
    std::string_view http_method, std::string_view path,
    const std::vector<std::pair<std::string, std::string>>& params, std::string_view timestamp,
    std::string_view nonce) {
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& [key, value] : params) {
    if (key != "sig") encoded.emplace_back(PercentEncode(key), PercentEncode(value));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  out.append(http_method).append("\n").append(path).append("\n");
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (i > 0) out.push_back('&');
    out.append(encoded[i].first).append("=").append(encoded[i].second);
  }
  out.append("\n").append(timestamp).append("\n").append(nonce);
  return out;
}

HmacVerifier::Outcome HmacVerifier::Verify(
    std::string_view api_key, std::string_view shared_secret, std::string_view http_method,
    std::string_view path, const std::vector<std::pair<std::string, std::string>>& params,
    int64_t now_seconds) {
  const auto timestamp = Single(params, "timestamp");
  const auto nonce = Single(params, "nonce");
  const auto sig = Single(params, "sig");
  if (!timestamp || !nonce || !sig || nonce->size() < 16 || nonce->size() > 128 ||
      !std::all_of(nonce->begin(), nonce->end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      })) {
    return Outcome::kMalformed;
  }
  int64_t when = 0;
  auto [ptr, ec] = std::from_chars(timestamp->data(), timestamp->data() + timestamp->size(), when);
  if (ec != std::errc() || ptr != timestamp->data() + timestamp->size()) return Outcome::kMalformed;
  std::string wanted = *sig;
  for (char& c : wanted) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string expected =
      HmacSha256Hex(shared_secret, CanonicalString(http_method, path, params, *timestamp, *nonce));
  if (!ConstantTimeEquals(expected, wanted)) return Outcome::kBadSignature;
  if (when < now_seconds - past_ || when > now_seconds + future_) return Outcome::kStale;

  std::string entry;
  entry.append(api_key).append(":").append(*nonce);
  std::lock_guard<std::mutex> lock(mutex_);
  if (seen_.size() >= capacity_) {
    std::erase_if(seen_, [&](const auto& item) { return item.second < now_seconds; });
  }
  // Remembered until its timestamp leaves the window: after that the timestamp check refuses
  // the replay on its own.
  if (!seen_.emplace(std::move(entry), when + past_).second) return Outcome::kReplayed;
  return Outcome::kValid;
}

}  // namespace gridd::api
