// GoGrid request signatures: sig = md5hex(api_key + shared_secret + unix seconds). A signature
// is valid for any second in [now - past, now + future]. The current second is tried first,
// then the seconds around it moving outward, so a client with a good clock costs one MD5; a
// signature verified once is remembered, so repeating it (jclouds reuses its signature for a
// minute) costs one lookup.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gridd::api {

class SignatureVerifier {
 public:
  SignatureVerifier(int window_past_seconds, int window_future_seconds,
                    size_t cache_capacity = 65536)
      : past_(window_past_seconds), future_(window_future_seconds), capacity_(cache_capacity) {}

  // True when `signature` (hex, any case) is valid for the key and secret at `now_seconds`.
  bool Verify(std::string_view api_key, std::string_view shared_secret, std::string_view signature,
              int64_t now_seconds);

  // How many MD5 computations the last uncached Verify made (for tests of the search order).
  int last_attempts() const { return last_attempts_; }

 private:
  int past_;
  int future_;
  size_t capacity_;
  std::mutex mutex_;
  // api_key + ':' + signature + ':' + shared secret → the second the signature was made for.
  std::unordered_map<std::string, int64_t> verified_;
  int last_attempts_ = 0;
};

// gridd's replay-proof signatures (docs/api.md, "gridd extensions: HMAC signing"):
//   sig = hex(HMAC-SHA256(shared_secret, METHOD \n PATH \n PARAMS \n timestamp \n nonce))
// where PARAMS are all parameters but `sig`, percent-encoded (RFC 3986 unreserved characters
// kept), sorted by name then value and joined as name=value&…. A nonce is accepted once per
// key within the signature window; a replay, an altered request or a stale timestamp fails.
class HmacVerifier {
 public:
  enum class Outcome { kValid, kBadSignature, kStale, kReplayed, kMalformed };

  HmacVerifier(int window_past_seconds, int window_future_seconds, size_t nonce_capacity = 1000000)
      : past_(window_past_seconds), future_(window_future_seconds), capacity_(nonce_capacity) {}

  Outcome Verify(std::string_view api_key, std::string_view shared_secret,
                 std::string_view http_method, std::string_view path,
                 const std::vector<std::pair<std::string, std::string>>& params,
                 int64_t now_seconds);

  // The string a client signs; exposed for tests and the documentation's example.
  static std::string CanonicalString(std::string_view http_method, std::string_view path,
                                     const std::vector<std::pair<std::string, std::string>>& params,
                                     std::string_view timestamp, std::string_view nonce);
  static std::string HmacSha256Hex(std::string_view key, std::string_view data);

 private:
  int past_;
  int future_;
  size_t capacity_;
  std::mutex mutex_;
  // api_key + ':' + nonce → the last second at which its timestamp is still inside the window.
  std::unordered_map<std::string, int64_t> seen_;
};

}  // namespace gridd::api
