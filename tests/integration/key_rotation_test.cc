// Per-key signing policy and key rotation against the real daemon: gridctl changes a key, and
// the customer's next request, signed with GoGrid's MD5 scheme or gridd's HMAC-SHA256 one,
// sees the change.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

struct Credentials {
  std::string api_key;
  std::string shared_secret;
};

nlohmann::json GridctlJson(const DaemonProcess& daemon, const std::string& args) {
  auto result = RunGridctl(daemon.data_dir(), args + " --json");
  EXPECT_EQ(result.exit_code, 0) << args << ": " << result.output;
  return result.exit_code == 0 ? nlohmann::json::parse(result.output) : nlohmann::json();
}

// The status of grid/image/list signed with GoGrid's MD5 signature.
unsigned Md5Status(const DaemonProcess& daemon, const Credentials& key) {
  ApiClient client(daemon.host(), daemon.port());
  client.SetCredentials(key.api_key, key.shared_secret);
  return client.Call("grid/image/list", {}).status;
}

// Whether grid/image/list signed with HMAC-SHA256 by the documented example client succeeds.
bool HmacAccepted(const DaemonProcess& daemon, const Credentials& key) {
  auto result =
      RunCommand("GRIDD_URL=http://127.0.0.1:" + std::to_string(daemon.port()) + " GRIDD_API_KEY=" +
                 ShellQuote(key.api_key) + " GRIDD_SECRET=" + ShellQuote(key.shared_secret) + " " +
                 ShellQuote((SourceDir() / "scripts" / "examples" / "hmac-request.sh").string()) +
                 " grid/image/list v=1.9 format=json 2>&1");
  return result.exit_code == 0;
}

// Rotates `api_key` with `grace` and returns the new credentials.
Credentials Rotate(const DaemonProcess& daemon, const std::string& api_key,
                   const std::string& grace) {
  auto rotated = GridctlJson(daemon, "apikey rotate " + api_key + " --grace " + grace);
  return Credentials{rotated.value("api_key", ""), rotated.value("shared_secret", "")};
}

class KeyRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_THROW(daemon_.Start());
    auto created = GridctlJson(daemon_, "apikey create --account default --role system");
    key_ = Credentials{created.value("api_key", ""), created.value("shared_secret", "")};
    ASSERT_FALSE(key_.api_key.empty());
  }
  DaemonProcess daemon_;
  Credentials key_;
};

TEST_F(KeyRotationTest, TheOldSecretSignsDuringTheGracePeriodOnly) {
  ASSERT_EQ(Md5Status(daemon_, key_), 200u);

  // A long grace period: both secrets sign, with either scheme.
  const Credentials first = Rotate(daemon_, key_.api_key, "1h");
  EXPECT_EQ(first.api_key, key_.api_key);
  ASSERT_FALSE(first.shared_secret.empty());
  EXPECT_NE(first.shared_secret, key_.shared_secret);
  for (const Credentials& key : {key_, first}) {
    EXPECT_EQ(Md5Status(daemon_, key), 200u) << key.shared_secret;
    EXPECT_TRUE(HmacAccepted(daemon_, key)) << key.shared_secret;
  }
  auto listed = GridctlJson(daemon_, "apikey list --account default");
  bool shown = false;
  for (const auto& row : listed) {
    if (row["api_key"] != key_.api_key) continue;
    shown = row["old_secret_until"].is_string();
    EXPECT_EQ(row.dump().find(first.shared_secret), std::string::npos) << "list shows no secret";
  }
  EXPECT_TRUE(shown) << listed.dump();

  // Another rotation drops the first secret at once; the second one keeps a short grace
  // period and then stops working.
  const Credentials second = Rotate(daemon_, key_.api_key, "4s");
  EXPECT_EQ(Md5Status(daemon_, key_), 403u);
  EXPECT_FALSE(HmacAccepted(daemon_, key_));
  EXPECT_EQ(Md5Status(daemon_, first), 200u);
  bool expired = false;
  for (int attempt = 0; attempt < 60 && !expired; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    expired = Md5Status(daemon_, first) == 403u;
  }
  EXPECT_TRUE(expired) << "the old secret still signs 15 s after a 4 s grace period";
  EXPECT_FALSE(HmacAccepted(daemon_, first));
  EXPECT_EQ(Md5Status(daemon_, second), 200u);
  EXPECT_TRUE(HmacAccepted(daemon_, second));

  // Secrets are printed once, by gridctl, and never logged.
  const std::string log = daemon_.LogText();
  for (const Credentials& key : {key_, first, second}) {
    EXPECT_EQ(log.find(key.shared_secret), std::string::npos);
  }
}

TEST_F(KeyRotationTest, WithoutGraceTheOldSecretStopsAtOnce) {
  ASSERT_EQ(Md5Status(daemon_, key_), 200u);
  const Credentials rotated = Rotate(daemon_, key_.api_key, "0");
  EXPECT_EQ(Md5Status(daemon_, key_), 403u);
  EXPECT_FALSE(HmacAccepted(daemon_, key_));
  EXPECT_EQ(Md5Status(daemon_, rotated), 200u);
  EXPECT_TRUE(HmacAccepted(daemon_, rotated));
  auto listed = GridctlJson(daemon_, "apikey list --account default");
  for (const auto& row : listed) {
    if (row["api_key"] == key_.api_key) {
      EXPECT_TRUE(row["old_secret_until"].is_null()) << row;
    }
  }
}

TEST_F(KeyRotationTest, RevokedUnknownKeysAndBadGracePeriodsAreRefused) {
  auto bad_grace = RunGridctl(daemon_.data_dir(), "apikey rotate " + key_.api_key + " --grace 1y");
  EXPECT_EQ(bad_grace.exit_code, 1);
  EXPECT_EQ(bad_grace.output,
            "gridctl: grace: expected a duration like 0, 90s, 15m, 24h or 7d "
            "(at most 30d)\n");
  EXPECT_EQ(Md5Status(daemon_, key_), 200u) << "a refused rotation changes nothing";

  auto unknown = RunGridctl(daemon_.data_dir(), "apikey rotate 0000000000000000");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.output, "gridctl: no active API key '0000000000000000'\n");

  ASSERT_EQ(RunGridctl(daemon_.data_dir(), "apikey revoke " + key_.api_key).exit_code, 0);
  auto revoked = RunGridctl(daemon_.data_dir(), "apikey rotate " + key_.api_key);
  EXPECT_EQ(revoked.exit_code, 1);
  EXPECT_EQ(revoked.output, "gridctl: no active API key '" + key_.api_key + "'\n");
  EXPECT_EQ(Md5Status(daemon_, key_), 403u);
}

TEST_F(KeyRotationTest, TheSigningPolicyIsSetPerKeyAndListed) {
  auto created =
      GridctlJson(daemon_, "apikey create --account default --role system --signing hmac-only");
  EXPECT_EQ(created["signing"], "hmac-only");
  const Credentials strict{created.value("api_key", ""), created.value("shared_secret", "")};
  EXPECT_EQ(Md5Status(daemon_, strict), 403u);
  EXPECT_TRUE(HmacAccepted(daemon_, strict));
  EXPECT_EQ(Md5Status(daemon_, key_), 200u) << "other keys keep GoGrid's signature";

  auto listed = GridctlJson(daemon_, "apikey list --account default");
  for (const auto& row : listed) {
    if (row["api_key"] == strict.api_key) {
      EXPECT_EQ(row["signing"], "hmac-only");
    } else if (row["api_key"] == key_.api_key) {
      EXPECT_EQ(row["signing"], "md5+hmac");
    }
  }
  auto table = RunGridctl(daemon_.data_dir(), "apikey list --account default");
  EXPECT_NE(table.output.find("SIGNING"), std::string::npos) << table.output;

  auto relaxed = GridctlJson(daemon_, "apikey signing " + strict.api_key + " md5+hmac");
  EXPECT_EQ(relaxed["signing"], "md5+hmac");
  EXPECT_EQ(Md5Status(daemon_, strict), 200u);
  GridctlJson(daemon_, "apikey signing " + key_.api_key + " hmac-only");
  EXPECT_EQ(Md5Status(daemon_, key_), 403u);

  auto bad = RunGridctl(daemon_.data_dir(), "apikey signing " + key_.api_key + " md5-only");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.output, "gridctl: unknown signing policy 'md5-only'; use md5+hmac or hmac-only\n");
  auto bad_create = RunGridctl(daemon_.data_dir(),
                               "apikey create --account default --role system --signing none");
  EXPECT_EQ(bad_create.exit_code, 1);
  EXPECT_EQ(bad_create.output, "gridctl: signing: use md5+hmac or hmac-only\n");
  EXPECT_EQ(GridctlJson(daemon_, "apikey list --account default").size(), listed.size())
      << "a refused create makes no key";
}

}  // namespace
}  // namespace gridd::testing
