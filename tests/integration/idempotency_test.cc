// The idempotency_key extension through the real daemon: a repeated mutating request returns
// the first answer and changes nothing, a reused key with other parameters is refused, and both
// hold across a SIGKILL of gridd.
#include <gtest/gtest.h>

#include "integration/grid_client_util.h"
#include "support/daemon_process.h"

namespace gridd::testing {
namespace {

class IdempotencyTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon_.Start(); }

  Params AddParams(const std::string& name, const std::string& ip, const std::string& key) {
    return {{"name", name},
            {"image", "debian-12-amd64"},
            {"server.ram", "512MB"},
            {"ip", ip},
            {"idempotency_key", key}};
  }
  size_t ServerCount(ApiClient& client) {
    return CallOk(client, "grid/server/list")["list"].size();
  }
  size_t JobCount(ApiClient& client) { return CallOk(client, "grid/job/list")["list"].size(); }

  DaemonProcess daemon_;
};

TEST_F(IdempotencyTest, RepeatedAddReturnsTheFirstAnswerAndCreatesOneServer) {
  ApiClient client = daemon_.Client();
  const auto ips = FreePublicIps(client);
  auto first = client.Call("grid/server/add", AddParams("web-1", ips.at(0), "add-web-1"), "POST");
  ASSERT_EQ(first.status, 200u) << first.body;
  auto again = client.Call("grid/server/add", AddParams("web-1", ips.at(0), "add-web-1"), "POST");
  EXPECT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(ServerCount(client), 1u);
  EXPECT_EQ(JobCount(client), 1u);

  // Parameters in another order are the same request.
  auto params = AddParams("web-1", ips.at(0), "add-web-1");
  std::reverse(params.begin(), params.end());
  EXPECT_EQ(client.Call("grid/server/add", params, "POST").body, first.body);

  // The same key with other parameters is refused and changes nothing.
  auto other = client.Call("grid/server/add", AddParams("web-2", ips.at(1), "add-web-1"), "POST");
  EXPECT_EQ(other.status, 400u) << other.body;
  EXPECT_EQ(other.json()["list"][0]["errorcode"], "IllegalArgumentException");
  EXPECT_NE(other.json()["list"][0]["message"].get<std::string>().find("idempotency_key"),
            std::string::npos)
      << other.body;
  EXPECT_EQ(ServerCount(client), 1u);

  // The key is the account's, for any method: a power with it is refused too.
  WaitForServerState(client, ips.at(0), "On");
  auto power =
      client.Call("grid/server/power",
                  {{"name", "web-1"}, {"power", "stop"}, {"idempotency_key", "add-web-1"}});
  EXPECT_EQ(power.status, 400u) << power.body;
  EXPECT_EQ(FindServerByIp(client, ips.at(0)).value()["state"]["name"], "On");
}

TEST_F(IdempotencyTest, BadKeysAreRefusedNamingTheParameter) {
  ApiClient client = daemon_.Client();
  const auto ip = FreePublicIps(client).at(0);
  for (const std::string& key : {std::string(), std::string(256, 'k'), std::string("with space")}) {
    auto reply = client.Call("grid/server/add", AddParams("web-1", ip, key), "POST");
    EXPECT_EQ(reply.status, 400u) << reply.body;
    EXPECT_NE(reply.body.find("idempotency_key"), std::string::npos) << reply.body;
  }
  EXPECT_EQ(ServerCount(client), 0u);
}

TEST_F(IdempotencyTest, FailedRequestsAreNotRememberedSoAFixedRepeatWorks) {
  ApiClient client = daemon_.Client();
  const auto ip = FreePublicIps(client).at(0);
  auto params = AddParams("web-1", ip, "retry-me");
  params[2].second = "3TB";  // no such RAM size
  EXPECT_EQ(client.Call("grid/server/add", params, "POST").status, 400u);
  // The same key with corrected parameters: the failed attempt stored nothing.
  auto fixed = client.Call("grid/server/add", AddParams("web-1", ip, "retry-me"), "POST");
  EXPECT_EQ(fixed.status, 200u) << fixed.body;
  EXPECT_EQ(ServerCount(client), 1u);
}

TEST_F(IdempotencyTest, RepeatsAcrossASigkillOfGriddChangeNothing) {
  ApiClient client = daemon_.Client();
  const auto ip = FreePublicIps(client).at(0);
  auto added = client.Call("grid/server/add", AddParams("web-1", ip, "add-before-crash"), "POST");
  ASSERT_EQ(added.status, 200u) << added.body;
  WaitForServerState(client, ip, "On");
  const int64_t id = FindServerByIp(client, ip).value()["id"];
  const Params stop{{"id", std::to_string(id)}, {"power", "stop"}, {"idempotency_key", "stop-1"}};
  auto stopped = client.Call("grid/server/power", stop);
  ASSERT_EQ(stopped.status, 200u) << stopped.body;

  daemon_.Kill();
  daemon_.Start();
  client = daemon_.Client();
  WaitForServerState(client, ip, "Off");
  const size_t jobs = JobCount(client);

  auto added_again =
      client.Call("grid/server/add", AddParams("web-1", ip, "add-before-crash"), "POST");
  EXPECT_EQ(added_again.status, 200u);
  EXPECT_EQ(added_again.body, added.body);
  auto stopped_again = client.Call("grid/server/power", stop);
  EXPECT_EQ(stopped_again.status, 200u);
  EXPECT_EQ(stopped_again.body, stopped.body) << "the original answer, not a second stop";
  EXPECT_EQ(ServerCount(client), 1u);
  EXPECT_EQ(JobCount(client), jobs);
}

}  // namespace
}  // namespace gridd::testing
