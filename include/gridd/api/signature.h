// GoGrid request signatures: sig = md5hex(api_key + shared_secret + unix seconds). A signature
// is valid for any second in [now - past, now + future].
//
// Checking one must not cost an MD5 per second of the window (900 by default: a cheap way to
// burn the server's CPU with wrong signatures). So each API key and secret in use gets a table
// of the window's expected signatures, digest -> second, kept in a ring of one slot per second
// of the window with an open-addressed index over it. The table is filled on demand, outward
// from the current second as clients sign (a client with a good clock costs one MD5, the first
// wrong signature fills the rest of the window once), and follows the clock: the seconds that
// leave the window are dropped, the ones that enter are added when asked for, so a key in
// steady use costs one MD5 per second of the clock, whatever it sends. A jump of the clock by
// more than the window starts the table afresh.
//
// Memory: a table is 16 bytes per second of the window plus its index (about 23 KB for the
// default -600/+300 s); at most `key_table_capacity` tables are kept (rounded up to a multiple
// of the shard count). A table unused for longer than the window holds nothing valid and is
// dropped when its shard takes a new one; when a shard is full of tables in use, the least
// recently used goes.
//
// Threads: tables live in shards by hash of key and secret, each with a reader-writer lock, and
// each table has one of its own: a signature the table already holds is found under shared
// locks only; adding seconds takes the table's lock, adding or dropping a table its shard's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gridd::api {

class SignatureVerifier {
 public:
  SignatureVerifier(int window_past_seconds, int window_future_seconds,
                    size_t key_table_capacity = 1024);
  ~SignatureVerifier();
  SignatureVerifier(const SignatureVerifier&) = delete;
  SignatureVerifier& operator=(const SignatureVerifier&) = delete;

  // True when `signature` (hex, any case) is valid for the key and secret at `now_seconds`.
  bool Verify(std::string_view api_key, std::string_view shared_secret, std::string_view signature,
              int64_t now_seconds);

  // How many MD5s the last Verify on the calling thread computed: 0 when the table already held
  // the answer (for tests of the cost).
  int last_attempts() const;
  // Tables held now, and the bytes one takes (for tests of eviction and the memory bound).
  size_t key_tables() const;
  size_t bytes_per_key_table() const;

 private:
  class KeyTable;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  struct Shard {
    mutable std::shared_mutex mutex;
    // key + secret -> its table. The concatenation is the MD5's input, so two pairs with the
    // same concatenation have the same expected signatures and may share a table.
    std::unordered_map<std::string, std::unique_ptr<KeyTable>, StringHash, std::equal_to<>> tables;
  };

  Shard& ShardFor(std::string_view prefix);
  // Makes room in `shard` (its lock held exclusively) for one more table.
  void MakeRoom(Shard& shard, int64_t now_seconds);

  int past_;
  int future_;
  size_t shard_capacity_;
  std::vector<std::unique_ptr<Shard>> shards_;
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
