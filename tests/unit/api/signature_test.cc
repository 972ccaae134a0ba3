// SignatureVerifier: sig = md5hex(api_key + shared_secret + unix seconds), accepted for any
// second in [now - past, now + future] (spec §2). Each key and secret has a table of the
// window's signatures, filled on demand and following the clock; last_attempts() counts the
// MD5s a check cost.
#include "gridd/api/signature.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gridd/common/crypto.h"

namespace gridd::api {
namespace {

constexpr const char* kKey = "3116784158f0af2d";
constexpr const char* kSecret = "s3cr3t-shared";
constexpr int64_t kNow = 1'700'000'000;

std::string Sign(const std::string& key, const std::string& secret, int64_t seconds) {
  return Md5Hex(key + secret + std::to_string(seconds));
}

std::string Sign(int64_t seconds) { return Sign(kKey, kSecret, seconds); }

class SignatureVerifierTest : public ::testing::Test {
 protected:
  SignatureVerifier verifier_{600, 300};
};

TEST_F(SignatureVerifierTest, CurrentSecondCostsOneMd5) {
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow), kNow));
  EXPECT_EQ(verifier_.last_attempts(), 1);
}

TEST_F(SignatureVerifierTest, AcceptsTheEdgesOfTheWindow) {
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow - 600), kNow));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 300), kNow));
}

TEST_F(SignatureVerifierTest, RejectsOneSecondOutsideTheWindow) {
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow - 601), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow + 301), kNow));
}

TEST_F(SignatureVerifierTest, SearchesOutwardFromTheCurrentSecondOnce) {
  // now, now-1, now+1, now-2, now+2, …: a clock 5 s behind costs 10 MD5s; the table then holds
  // now-5 … now+4, so a clock 5 s ahead costs the one second it lacks.
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow - 5), kNow));
  EXPECT_EQ(verifier_.last_attempts(), 10);
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 5), kNow));
  EXPECT_EQ(verifier_.last_attempts(), 1);
}

TEST_F(SignatureVerifierTest, FailedSearchIsBoundedByTheWindow) {
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow - 5000), kNow));
  EXPECT_EQ(verifier_.last_attempts(), 1 + 600 + 300);
}

TEST_F(SignatureVerifierTest, WrongSignaturesFillTheWindowOnceThenCostNoMd5) {
  ASSERT_FALSE(verifier_.Verify(kKey, kSecret, Md5Hex("wrong 1"), kNow));
  ASSERT_EQ(verifier_.last_attempts(), 901);
  for (int i = 2; i < 50; ++i) {
    EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Md5Hex("wrong " + std::to_string(i)), kNow));
    EXPECT_EQ(verifier_.last_attempts(), 0);
  }
  // A second later, only the second entering the window is new.
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Md5Hex("wrong 50"), kNow + 1));
  EXPECT_EQ(verifier_.last_attempts(), 1);
  // Every second of the window is now answered from the table.
  for (int64_t second = kNow + 1 - 600; second <= kNow + 1 + 300; second += 7) {
    EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(second), kNow + 1)) << second;
    EXPECT_EQ(verifier_.last_attempts(), 0);
  }
}

TEST_F(SignatureVerifierTest, NonHexCostsNoMd5) {
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, std::string(31, 'a') + "g", kNow));
  EXPECT_EQ(verifier_.last_attempts(), 0);
}

TEST_F(SignatureVerifierTest, TheWindowFollowsTheClockOneMd5PerSecond) {
  ASSERT_FALSE(verifier_.Verify(kKey, kSecret, Md5Hex("fill the window"), kNow));
  for (int64_t now = kNow + 1; now <= kNow + 30; ++now) {
    // The signature of the second that just left the window is still in the table, and
    // refused; the one that just entered costs one MD5, once.
    EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(now - 601), now)) << now;
    EXPECT_EQ(verifier_.last_attempts(), 0);
    EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(now - 600), now)) << now;
    EXPECT_EQ(verifier_.last_attempts(), 0);
    EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(now + 300), now)) << now;
    EXPECT_EQ(verifier_.last_attempts(), 1);
    EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(now + 301), now)) << now;
    EXPECT_EQ(verifier_.last_attempts(), 0);
  }
}

TEST_F(SignatureVerifierTest, TheEdgesHoldAfterTheClockMoved) {
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 300), kNow));
  ASSERT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow + 301), kNow));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 301), kNow + 1));
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow - 600), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow - 600), kNow + 1));
  // Back again: the past edge is valid once more, the future one not.
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow - 600), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow + 301), kNow));
}

TEST_F(SignatureVerifierTest, ClockGoingBackwardsByMoreThanTheWindow) {
  ASSERT_FALSE(verifier_.Verify(kKey, kSecret, Md5Hex("fill the window"), kNow));
  const int64_t back = kNow - 2000;
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow), back));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow - 600), back));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(back), back));
  EXPECT_EQ(verifier_.last_attempts(), 1);
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(back - 600), back));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(back + 300), back));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(back + 301), back));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(back - 601), back));
  // And forwards to where it was: the old seconds are valid again.
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow), kNow));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow - 600), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(back), kNow));
}

TEST_F(SignatureVerifierTest, ClockGoingForwardsByMoreThanTheWindow) {
  ASSERT_FALSE(verifier_.Verify(kKey, kSecret, Md5Hex("fill the window"), kNow));
  const int64_t ahead = kNow + 5000;
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow), ahead));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow + 300), ahead));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(ahead), ahead));
  EXPECT_EQ(verifier_.last_attempts(), 1);
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(ahead - 600), ahead));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(ahead + 300), ahead));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(ahead - 601), ahead));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(ahead + 301), ahead));
}

TEST_F(SignatureVerifierTest, AShortPauseIsBridgedALongOneStartsAfresh) {
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow), kNow));
  // 30 s later: the seconds in between are added, and the old signature stays in the table.
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 30), kNow + 30));
  EXPECT_EQ(verifier_.last_attempts(), 30);
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow), kNow + 30));
  EXPECT_EQ(verifier_.last_attempts(), 0);
  // 200 s later: a returning client costs one MD5, and older signatures still verify.
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 230), kNow + 230));
  EXPECT_EQ(verifier_.last_attempts(), 1);
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow), kNow + 230));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 30), kNow + 230));
  EXPECT_EQ(verifier_.last_attempts(), 0);
}

TEST_F(SignatureVerifierTest, AcceptsUpperCaseHex) {
  std::string upper = Sign(kNow - 3);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  ASSERT_NE(upper, Sign(kNow - 3));  // the digest has letters to change
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, upper, kNow));
}

TEST_F(SignatureVerifierTest, RejectsWrongLength) {
  const std::string sig = Sign(kNow);
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, sig.substr(0, 31), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, sig + "0", kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, "", kNow));
}

TEST_F(SignatureVerifierTest, RejectsNonHexOfTheRightLength) {
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, std::string(32, 'z'), kNow));
}

TEST_F(SignatureVerifierTest, RejectsAnotherSecretOrKey) {
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kKey, "other-secret", kNow), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign("d2104c2002b0f6aa", kSecret, kNow), kNow));
}

TEST_F(SignatureVerifierTest, RepeatedSignatureIsServedFromTheCache) {
  const std::string early = Sign(kNow - 5);
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, early, kNow));
  ASSERT_EQ(verifier_.last_attempts(), 10);
  // The search passed the current second on its way.
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow), kNow));
  ASSERT_EQ(verifier_.last_attempts(), 0);
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, early, kNow + 1));
  EXPECT_EQ(verifier_.last_attempts(), 0);
}

TEST_F(SignatureVerifierTest, CachedSignatureExpiresWithTheWindow) {
  const std::string sig = Sign(kNow);
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, sig, kNow));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, sig, kNow + 600));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, sig, kNow + 601));
}

TEST_F(SignatureVerifierTest, CachedSignatureFromTheFutureIsRejectedTooEarly) {
  // Verified while inside the future window, then presented at a moment where it is too far
  // ahead: the cache must apply the window, not just remember "valid".
  const std::string sig = Sign(kNow + 300);
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, sig, kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, sig, kNow - 1));
}

TEST_F(SignatureVerifierTest, CacheOfOneKeyDoesNotVouchForAnother) {
  const std::string sig = Sign(kNow);
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, sig, kNow));
  EXPECT_FALSE(verifier_.Verify("d2104c2002b0f6aa", "another", sig, kNow));
}

TEST_F(SignatureVerifierTest, EachSecretOfAKeyHasItsOwnTable) {
  // During a rotation's grace period the caller checks both secrets; each vouches only for
  // its own signatures, whatever the other's table holds.
  const std::string rotated = "rotated-secret";
  ASSERT_FALSE(verifier_.Verify(kKey, kSecret, Md5Hex("fill the window"), kNow));
  ASSERT_FALSE(verifier_.Verify(kKey, rotated, Md5Hex("fill the window"), kNow));
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kKey, kSecret, kNow - 3), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, rotated, Sign(kKey, kSecret, kNow - 3), kNow));
  EXPECT_TRUE(verifier_.Verify(kKey, rotated, Sign(kKey, rotated, kNow - 3), kNow));
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kKey, rotated, kNow - 3), kNow));
  EXPECT_EQ(verifier_.key_tables(), 2u);
}

TEST(SignatureVerifierCapacityTest, TheLeastRecentlyUsedTableIsEvictedAndRefilled) {
  SignatureVerifier verifier(600, 300, 1);
  const std::string other = "d2104c2002b0f6aa";
  ASSERT_TRUE(verifier.Verify(kKey, kSecret, Sign(kNow - 5), kNow));
  ASSERT_EQ(verifier.last_attempts(), 10);
  ASSERT_TRUE(verifier.Verify(other, kSecret, Sign(other, kSecret, kNow), kNow));
  EXPECT_EQ(verifier.key_tables(), 1u);
  // The first key's table went: the search starts again from the current second.
  EXPECT_TRUE(verifier.Verify(kKey, kSecret, Sign(kNow - 5), kNow));
  EXPECT_EQ(verifier.last_attempts(), 10);
  EXPECT_EQ(verifier.key_tables(), 1u);
}

TEST(SignatureVerifierCapacityTest, IdleTablesAreDroppedWhenAnotherKeyArrives) {
  SignatureVerifier verifier(600, 300, 8);
  for (int i = 0; i < 5; ++i) {
    const std::string key = "key-" + std::to_string(i);
    ASSERT_TRUE(verifier.Verify(key, kSecret, Sign(key, kSecret, kNow), kNow));
  }
  ASSERT_EQ(verifier.key_tables(), 5u);
  // Used within the window: kept.
  ASSERT_TRUE(verifier.Verify("key-5", kSecret, Sign("key-5", kSecret, kNow + 900), kNow + 900));
  EXPECT_EQ(verifier.key_tables(), 6u);
  // Unused for longer than the window: they can hold no valid second and go.
  ASSERT_TRUE(verifier.Verify("key-6", kSecret, Sign("key-6", kSecret, kNow + 901), kNow + 901));
  EXPECT_EQ(verifier.key_tables(), 2u);
}

TEST(SignatureVerifierCapacityTest, ManyKeysStayWithinTheBound) {
  SignatureVerifier verifier(600, 300, 64);
  for (int i = 0; i < 500; ++i) {
    const std::string key = "key-" + std::to_string(i);
    ASSERT_TRUE(verifier.Verify(key, kSecret, Sign(key, kSecret, kNow), kNow)) << key;
  }
  EXPECT_LE(verifier.key_tables(), 64u);
  EXPECT_GE(verifier.key_tables(), 16u);
  // About 23 KB per table at the default window: 64 tables stay under 2 MB.
  EXPECT_LT(verifier.bytes_per_key_table() * 64, 2u << 20);
}

TEST(SignatureVerifierThreadsTest, ThreadsSharingAKeyAgreeWithASingleThread) {
  SignatureVerifier verifier(600, 300);
  std::vector<std::thread> threads;
  std::atomic<int> mistakes{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 400; ++i) {
        // The clock moves one second every 20 calls; threads see it slightly apart.
        const int64_t now = kNow + i / 20 + (t % 2);
        const int64_t offset = (i * 37 + t * 11) % 1200 - 700;  // -700 … +499
        const bool valid = offset >= -600 && offset <= 300;
        if (verifier.Verify(kKey, kSecret, Sign(now + offset), now) != valid) ++mistakes;
        if (verifier.Verify(kKey, kSecret, Md5Hex("wrong" + std::to_string(i)), now)) ++mistakes;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mistakes.load(), 0);
}

TEST(SignatureVerifierModelTest, AgreesWithTryingEverySecondUnderAWanderingClock) {
  // A small window, three keys for two tables, and a clock that steps, pauses and jumps both
  // ways: every answer must be the one trying each second of the window gives.
  constexpr int kPast = 20;
  constexpr int kFuture = 10;
  SignatureVerifier verifier(kPast, kFuture, 2);
  const std::string keys[] = {kKey, "d2104c2002b0f6aa", "5f0a1c2b3d4e6f70"};
  std::mt19937 random(12345);
  int64_t now = kNow;
  for (int step = 0; step < 20000; ++step) {
    switch (random() % 8) {
      case 0:
        now += 1;
        break;
      case 1:
        now -= 1;
        break;
      case 2:
        now += static_cast<int64_t>(random() % 100);
        break;
      case 3:
        now -= static_cast<int64_t>(random() % 100);
        break;
      default:
        break;
    }
    const std::string& key = keys[random() % 3];
    const int64_t second = now + static_cast<int64_t>(random() % 80) - 40;
    const bool wrong = random() % 10 == 0;
    const std::string sig =
        wrong ? Md5Hex("wrong " + std::to_string(step)) : Sign(key, kSecret, second);
    const bool expected = !wrong && second >= now - kPast && second <= now + kFuture;
    ASSERT_EQ(verifier.Verify(key, kSecret, sig, now), expected)
        << "step " << step << ", signed for " << second - now << " s from now";
  }
}

TEST(SignatureVerifierCapacityTest, KeepsVerifyingWhenTheCacheIsFull) {
  SignatureVerifier verifier(600, 300, 2);
  for (int round = 0; round < 2; ++round) {
    for (int64_t offset = 0; offset < 5; ++offset) {
      EXPECT_TRUE(verifier.Verify(kKey, kSecret, Sign(kNow - offset), kNow))
          << "round " << round << " offset " << offset;
    }
  }
}

TEST(SignatureVerifierWindowTest, HonoursAConfiguredWindow) {
  SignatureVerifier verifier(60, 0);
  EXPECT_TRUE(verifier.Verify(kKey, kSecret, Sign(kNow - 60), kNow));
  EXPECT_FALSE(verifier.Verify(kKey, kSecret, Sign(kNow - 61), kNow));
  EXPECT_FALSE(verifier.Verify(kKey, kSecret, Sign(kNow + 1), kNow));
}

// HMAC-SHA256 signing: known answer (RFC 4231 test case 2), canonical form, replays.
TEST(HmacVerifierTest, HmacMatchesTheRfc4231Vector) {
  EXPECT_EQ(HmacVerifier::HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacVerifierTest, CanonicalStringSortsEncodesAndLeavesOutSig) {
  const std::vector<std::pair<std::string, std::string>> params = {
      {"v", "1.9"}, {"sig", "x"}, {"name", "a b&c"}, {"api_key", "k"}, {"name", "A"}};
  EXPECT_EQ(HmacVerifier::CanonicalString("GET", "/api/grid/server/list", params, "100", "n"),
            "GET\n/api/grid/server/list\napi_key=k&name=A&name=a%20b%26c&v=1.9\n100\nn");
}

class HmacRequestTest : public ::testing::Test {
 protected:
  std::vector<std::pair<std::string, std::string>> Signed(int64_t timestamp, std::string nonce,
                                                          std::string name = "web1") {
    std::vector<std::pair<std::string, std::string>> params = {
        {"api_key", "key"},
        {"name", std::move(name)},
        {"sig_method", "HMAC-SHA256"},
        {"timestamp", std::to_string(timestamp)},
        {"nonce", nonce}};
    params.emplace_back(
        "sig", HmacVerifier::HmacSha256Hex(
                   "secret", HmacVerifier::CanonicalString("POST", "/api/grid/server/get", params,
                                                           std::to_string(timestamp), nonce)));
    return params;
  }
  HmacVerifier verifier_{600, 300};
};

TEST_F(HmacRequestTest, AValidRequestPassesOnceAndItsReplayFails) {
  auto params = Signed(1000, "nonce-0123456789ab");
  using O = HmacVerifier::Outcome;
  EXPECT_EQ(verifier_.Verify("key", "secret", "POST", "/api/grid/server/get", params, 1000),
            O::kValid);
  EXPECT_EQ(verifier_.Verify("key", "secret", "POST", "/api/grid/server/get", params, 1001),
            O::kReplayed);
  // The same nonce under another key is another request.
  EXPECT_EQ(verifier_.Verify("other", "secret", "POST", "/api/grid/server/get", params, 1001),
            O::kValid);
}

TEST_F(HmacRequestTest, AlteredStaleOrMalformedRequestsFail) {
  using O = HmacVerifier::Outcome;
  auto params = Signed(1000, "nonce-0123456789ab");
  params[1].second = "web2";
  EXPECT_EQ(verifier_.Verify("key", "secret", "POST", "/api/grid/server/get", params, 1000),
            O::kBadSignature);
  auto other_method = Signed(1000, "nonce-0123456789ac");
  EXPECT_EQ(verifier_.Verify("key", "secret", "GET", "/api/grid/server/get", other_method, 1000),
            O::kBadSignature);
  auto old = Signed(1000, "nonce-0123456789ad");
  EXPECT_EQ(verifier_.Verify("key", "secret", "POST", "/api/grid/server/get", old, 1601),
            O::kStale);
  auto short_nonce = Signed(1000, "short");
  EXPECT_EQ(verifier_.Verify("key", "secret", "POST", "/api/grid/server/get", short_nonce, 1000),
            O::kMalformed);
}

}  // namespace
}  // namespace gridd::api
