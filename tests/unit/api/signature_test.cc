// SignatureVerifier: sig = md5hex(api_key + shared_secret + unix seconds), accepted for any
// second in [now - past, now + future] (spec §2), remembered once verified.
#include "gridd/api/signature.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>

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

TEST_F(SignatureVerifierTest, SearchesOutwardFromTheCurrentSecond) {
  // now, now-1, now+1, now-2, now+2, …: a clock 5 s behind costs 10 MD5s, 5 s ahead 11.
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow - 5), kNow));
  EXPECT_EQ(verifier_.last_attempts(), 10);
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow + 5), kNow));
  EXPECT_EQ(verifier_.last_attempts(), 11);
}

TEST_F(SignatureVerifierTest, FailedSearchIsBoundedByTheWindow) {
  EXPECT_FALSE(verifier_.Verify(kKey, kSecret, Sign(kNow - 5000), kNow));
  EXPECT_EQ(verifier_.last_attempts(), 1 + 600 + 300);
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
  ASSERT_TRUE(verifier_.Verify(kKey, kSecret, Sign(kNow), kNow));
  ASSERT_EQ(verifier_.last_attempts(), 1);
  // A recomputation would set last_attempts back to 10 (or more, a second later).
  EXPECT_TRUE(verifier_.Verify(kKey, kSecret, early, kNow + 1));
  EXPECT_EQ(verifier_.last_attempts(), 1);
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
        {"api_key", "key"}, {"name", std::move(name)}, {"sig_method", "HMAC-SHA256"},
        {"timestamp", std::to_string(timestamp)}, {"nonce", nonce}};
    params.emplace_back("sig", HmacVerifier::HmacSha256Hex(
                                   "secret", HmacVerifier::CanonicalString(
                                                 "POST", "/api/grid/server/get", params,
                                                 std::to_string(timestamp), nonce)));
    return params;
  }
  HmacVerifier verifier_{600, 300};
};

TEST_F(HmacRequestTest, AValidRequestPassesOnceAndItsReplayFails) {
  auto params = Signed(1000, "nonce-0123456789ab");
  using O = HmacVerifier::Outcome;
  EXPECT_EQ(verifier_.Verify("key", "secret", "POST", "/api/grid/server/get", params, 1000), O::kValid);
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
