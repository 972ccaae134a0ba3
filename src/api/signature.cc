#include "gridd/api/signature.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstring>
#include <optional>

#include "gridd/common/crypto.h"

namespace gridd::api {

namespace {

using Digest = std::array<uint8_t, 16>;

// The MD5s computed by the last Verify on this thread (SignatureVerifier::last_attempts).
thread_local int last_md5_count = 0;

// A pause after which a key's table is started afresh at the current second rather than filled
// second by second up to it: a returning client signs anew, which then costs one MD5 instead
// of one per second of the pause. Shorter pauses are bridged, so that signatures reused for up
// to a minute (jclouds) stay in the table.
constexpr int64_t kLongestBridgedPause = 60;

int64_t FloorMod(int64_t value, int64_t modulus) {
  const int64_t remainder = value % modulus;
  return remainder < 0 ? remainder + modulus : remainder;
}

std::optional<Digest> ParseHexDigest(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Digest digest{};
  for (size_t i = 0; i < digest.size(); ++i) {
    const int high = nibble(hex[2 * i]);
    const int low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<uint8_t>(high << 4 | low);
  }
  return digest;
}

}  // namespace

// The expected signatures of one key and secret for a contiguous run of seconds [lo_, hi_]
// inside the window: second s lives in ring slot s mod window size, and the index maps a
// digest to its slot (linear probing; MD5 output is uniform, so its first bytes are the hash).
class SignatureVerifier::KeyTable {
 public:
  KeyTable(std::string prefix, int past, int future, int64_t now)
      : last_used(now),
        prefix_(std::move(prefix)),
        past_(past),
        future_(future),
        ring_(static_cast<size_t>(past) + static_cast<size_t>(future) + 1),
        lo_(now),
        hi_(now - 1) {
    size_t index_size = 4;
    while (index_size < 2 * ring_.size()) index_size *= 2;
    index_.assign(index_size, 0);
    mask_ = index_size - 1;
  }

  static size_t Bytes(int past, int future) {
    const size_t seconds = static_cast<size_t>(past) + static_cast<size_t>(future) + 1;
    size_t index_size = 4;
    while (index_size < 2 * seconds) index_size *= 2;
    return sizeof(KeyTable) + seconds * sizeof(Digest) + index_size * sizeof(uint32_t);
  }

  // The second `digest` was made for, if the table holds it. Shared lock.
  std::optional<int64_t> Find(const Digest& digest) const {
    if (lo_ > hi_) return std::nullopt;
    for (size_t i = Home(digest); index_[i] != 0; i = (i + 1) & mask_) {
      const uint32_t slot = index_[i] - 1;
      if (CRYPTO_memcmp(ring_[slot].data(), digest.data(), digest.size()) == 0) {
        return SecondOfSlot(slot);
      }
    }
    return std::nullopt;
  }

  // Drops the seconds outside the window at `now`; starts afresh at `now` when nothing is left
  // or `now` is more than a short pause beyond what is left. Exclusive lock.
  void Follow(int64_t now) {
    const int64_t low = std::max(lo_, now - past_);
    const int64_t high = std::min(hi_, now + future_);
    if (low > high || low - now > kLongestBridgedPause || now - high > kLongestBridgedPause) {
      if (lo_ <= hi_) std::fill(index_.begin(), index_.end(), 0);
      lo_ = now;
      hi_ = now - 1;
      return;
    }
    for (; lo_ < low; ++lo_) Remove(Slot(lo_));
    for (; hi_ > high; --hi_) Remove(Slot(hi_));
  }

  // Adds the second of the window nearest to `now` that the table lacks (the past one first on
  // a tie) and returns its digest; nothing when the table holds the whole window. One MD5.
  // Exclusive lock, after Follow(now).
  std::optional<Digest> AddNearest(int64_t now) {
    const int64_t below = lo_ - 1;
    const int64_t above = hi_ + 1;
    const bool below_fits = below >= now - past_;
    const bool above_fits = above <= now + future_;
    if (!below_fits && !above_fits) return std::nullopt;
    const bool take_below = below_fits && (!above_fits || now - below <= above - now);
    const int64_t second = take_below ? below : above;
    input_.assign(prefix_);
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof(digits), second).ptr;
    input_.append(digits, end);
    const Digest digest = Md5(input_);
    const size_t slot = Slot(second);
    ring_[slot] = digest;
    size_t i = Home(digest);
    while (index_[i] != 0) i = (i + 1) & mask_;
    index_[i] = static_cast<uint32_t>(slot + 1);
    if (lo_ > hi_) {
      lo_ = hi_ = second;
    } else if (take_below) {
      lo_ = second;
    } else {
      hi_ = second;
    }
    return digest;
  }

  std::shared_mutex mutex;
  // The `now` of the latest Verify that used the table, for eviction.
  std::atomic<int64_t> last_used;

 private:
  size_t Home(const Digest& digest) const {
    uint64_t bits = 0;
    std::memcpy(&bits, digest.data(), sizeof(bits));
    return static_cast<size_t>(bits) & mask_;
  }
  size_t Slot(int64_t second) const {
    return static_cast<size_t>(FloorMod(second, static_cast<int64_t>(ring_.size())));
  }
  int64_t SecondOfSlot(size_t slot) const {
    const auto size = static_cast<int64_t>(ring_.size());
    return lo_ + FloorMod(static_cast<int64_t>(slot) - FloorMod(lo_, size), size);
  }

  // Removes the index entry of ring slot `slot`, shifting later entries of its probe run back
  // so that no lookup stops early at the hole.
  void Remove(size_t slot) {
    size_t hole = Home(ring_[slot]);
    while (index_[hole] != slot + 1) hole = (hole + 1) & mask_;
    for (size_t next = (hole + 1) & mask_; index_[next] != 0; next = (next + 1) & mask_) {
      const size_t home = Home(ring_[index_[next] - 1]);
      // An entry may move into the hole only if its home is not between the hole and itself.
      const bool stays =
          hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
      if (stays) continue;
      index_[hole] = index_[next];
      hole = next;
    }
    index_[hole] = 0;
  }

  const std::string prefix_;
  const int64_t past_;
  const int64_t future_;
  std::vector<Digest> ring_;
  std::vector<uint32_t> index_;  // ring slot + 1; 0 is an empty bucket
  size_t mask_ = 0;
  int64_t lo_;
  int64_t hi_;         // lo_ > hi_: empty
  std::string input_;  // the MD5's input, reused
};

SignatureVerifier::SignatureVerifier(int window_past_seconds, int window_future_seconds,
                                     size_t key_table_capacity)
    : past_(std::max(0, window_past_seconds)), future_(std::max(0, window_future_seconds)) {
  // Small capacities (tests) get one shard, so that eviction is exactly least recently used.
  const size_t shard_count = key_table_capacity >= 64 ? 16 : 1;
  shard_capacity_ = std::max<size_t>(1, (key_table_capacity + shard_count - 1) / shard_count);
  for (size_t i = 0; i < shard_count; ++i) shards_.push_back(std::make_unique<Shard>());
}

SignatureVerifier::~SignatureVerifier() = default;

int SignatureVerifier::last_attempts() const { return last_md5_count; }

size_t SignatureVerifier::key_tables() const {
  size_t count = 0;
  for (const auto& shard : shards_) {
    std::shared_lock lock(shard->mutex);
    count += shard->tables.size();
  }
  return count;
}

size_t SignatureVerifier::bytes_per_key_table() const { return KeyTable::Bytes(past_, future_); }

SignatureVerifier::Shard& SignatureVerifier::ShardFor(std::string_view prefix) {
  const size_t hash = StringHash{}(prefix);
  return *shards_[(hash >> 48) % shards_.size()];
}

void SignatureVerifier::MakeRoom(Shard& shard, int64_t now_seconds) {
  // A table last used at t holds no second after t + future, which is valid only while
  // t + future >= now - past.
  const int64_t idle_before = now_seconds - past_ - future_;
  std::erase_if(shard.tables, [&](const auto& item) {
    return item.second->last_used.load(std::memory_order_relaxed) < idle_before;
  });
  if (shard.tables.size() < shard_capacity_) return;
  auto oldest =
      std::min_element(shard.tables.begin(), shard.tables.end(), [](const auto& a, const auto& b) {
        return a.second->last_used.load(std::memory_order_relaxed) <
               b.second->last_used.load(std::memory_order_relaxed);
      });
  shard.tables.erase(oldest);
}

bool SignatureVerifier::Verify(std::string_view api_key, std::string_view shared_secret,
                               std::string_view signature, int64_t now_seconds) {
  last_md5_count = 0;
  const auto wanted = ParseHexDigest(signature);
  if (!wanted) return false;
  thread_local std::string prefix;
  prefix.assign(api_key).append(shared_secret);

  auto check = [&](KeyTable& table) {
    table.last_used.store(now_seconds, std::memory_order_relaxed);
    {
      std::shared_lock lock(table.mutex);
      if (const auto second = table.Find(*wanted)) {
        return *second >= now_seconds - past_ && *second <= now_seconds + future_;
      }
    }
    std::unique_lock lock(table.mutex);
    table.Follow(now_seconds);
    if (table.Find(*wanted)) return true;  // added by another thread meanwhile
    while (const auto added = table.AddNearest(now_seconds)) {
      ++last_md5_count;
      if (CRYPTO_memcmp(added->data(), wanted->data(), added->size()) == 0) return true;
    }
    return false;
  };

  Shard& shard = ShardFor(prefix);
  {
    std::shared_lock lock(shard.mutex);
    const auto it = shard.tables.find(std::string_view(prefix));
    if (it != shard.tables.end()) return check(*it->second);
  }
  std::unique_lock lock(shard.mutex);
  auto it = shard.tables.find(std::string_view(prefix));
  if (it == shard.tables.end()) {
    MakeRoom(shard, now_seconds);
    it = shard.tables
             .emplace(prefix, std::make_unique<KeyTable>(prefix, past_, future_, now_seconds))
             .first;
  }
  return check(*it->second);
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
