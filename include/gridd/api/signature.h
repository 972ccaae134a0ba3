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

namespace gridd::api {

class SignatureVerifier {
 public:
  SignatureVerifier(int window_past_seconds, int window_future_seconds,
                    size_t cache_capacity = 65536)
      : past_(window_past_seconds), future_(window_future_seconds), capacity_(cache_capacity) {}

  // True when `signature` (hex, any case) is valid for the key and secret at `now_seconds`.
  bool Verify(std::string_view api_key, std::string_view shared_secret,
              std::string_view signature, int64_t now_seconds);

  // How many MD5 computations the last uncached Verify made (for tests of the search order).
  int last_attempts() const { return last_attempts_; }

 private:
  int past_;
  int future_;
  size_t capacity_;
  std::mutex mutex_;
  // api_key + ':' + signature → the second the signature was made for.
  std::unordered_map<std::string, int64_t> verified_;
  int last_attempts_ = 0;
};

}  // namespace gridd::api
