// The operator CLI against a running daemon: accounts, keys with roles, revocation and IP
// pools, and what customers then see through the API.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

CommandResult Gridctl(const DaemonProcess& daemon, const std::string& args) {
  return RunGridctl(daemon.data_dir(), args);
}

ApiClient ClientFor(const DaemonProcess& daemon, const nlohmann::json& key) {
  ApiClient client(daemon.host(), daemon.port());
  client.SetCredentials(key["api_key"], key["shared_secret"]);
  return client;
}

class GridctlTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon_.Start(); }
  DaemonProcess daemon_;
};

TEST_F(GridctlTest, KeysCarryTheirRolesAndRevokedKeysStopWorking) {
  auto created = Gridctl(daemon_, "account create acme");
  ASSERT_EQ(created.exit_code, 0) << created.output;
  auto again = Gridctl(daemon_, "account create acme");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;

  auto readonly_out = Gridctl(daemon_, "apikey create --account acme --role readonly --json");
  ASSERT_EQ(readonly_out.exit_code, 0) << readonly_out.output;
  auto readonly_key = nlohmann::json::parse(readonly_out.output);
  ApiClient readonly = ClientFor(daemon_, readonly_key);
  EXPECT_EQ(readonly.Call("grid/server/list", {}).status, 200u);
  auto refused = readonly.Call("grid/server/add", {{"name", "x"}}, "POST");
  EXPECT_EQ(refused.status, 401u) << refused.body;
  EXPECT_EQ(refused.json()["status"], "failure");
  EXPECT_EQ(readonly.Call("support/password/list", {}).status, 401u);
  EXPECT_EQ(readonly.Call("grid/job/list", {}).status, 401u);

  auto system_out = Gridctl(daemon_, "apikey create --account acme --role 'System User' --json");
  ASSERT_EQ(system_out.exit_code, 0) << system_out.output;
  ApiClient system = ClientFor(daemon_, nlohmann::json::parse(system_out.output));
  const std::string ip = FreePublicIps(system).at(0);
  CallOk(system, "grid/server/add",
         {{"name", "acme-web"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", ip}},
         "POST");
  WaitForServerState(system, ip, "On");
  // The first account sees neither acme's server nor its address.
  ApiClient owner = daemon_.Client();
  EXPECT_TRUE(CallOk(owner, "grid/server/list")["list"].empty());
  const auto owner_ips = CallOk(owner, "grid/ip/list");
  ASSERT_FALSE(owner_ips["list"].empty());
  for (const auto& entry : owner_ips["list"]) EXPECT_NE(entry["ip"], ip);

  auto revoked = Gridctl(daemon_, "apikey revoke " + readonly_key["api_key"].get<std::string>());
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  EXPECT_EQ(readonly.Call("grid/server/list", {}).status, 403u);

  auto bad_role = Gridctl(daemon_, "apikey create --account acme --role janitor");
  EXPECT_EQ(bad_role.exit_code, 1);
  EXPECT_NE(bad_role.output.find("unknown role"), std::string::npos) << bad_role.output;

  auto keys = Gridctl(daemon_, "apikey list --account acme --json");
  ASSERT_EQ(keys.exit_code, 0) << keys.output;
  EXPECT_EQ(nlohmann::json::parse(keys.output).size(), 2u);
}

TEST_F(GridctlTest, AnIpPoolGivenToAnAccountShowsUpInItsIpList) {
  ASSERT_EQ(Gridctl(daemon_, "account create pooled").exit_code, 0);
  auto pool = Gridctl(daemon_,
                      "ippool add --datacenter US-West-1 --type public --account pooled "
                      "--network gridd-public-1 203.0.113.0/28 --json");
  ASSERT_EQ(pool.exit_code, 0) << pool.output;
  EXPECT_EQ(nlohmann::json::parse(pool.output)["total"], 13);

  auto overlap = Gridctl(daemon_, "ippool add --datacenter US-West-1 --type public 203.0.113.8/29");
  EXPECT_EQ(overlap.exit_code, 1);
  EXPECT_NE(overlap.output.find("overlaps"), std::string::npos) << overlap.output;
  auto bad_dc = Gridctl(daemon_, "ippool add --datacenter Mars-1 --type public 203.0.114.0/28");
  EXPECT_EQ(bad_dc.exit_code, 1);

  auto key_out = Gridctl(daemon_, "apikey create --account pooled --role super --json");
  ASSERT_EQ(key_out.exit_code, 0) << key_out.output;
  ApiClient pooled = ClientFor(daemon_, nlohmann::json::parse(key_out.output));
  int in_new_pool = 0;
  const auto pooled_ips = CallOk(pooled, "grid/ip/list");
  for (const auto& entry : pooled_ips["list"]) {
    if (entry["ip"].get<std::string>().rfind("203.0.113.", 0) == 0) {
      ++in_new_pool;
      EXPECT_EQ(entry["subnet"], "203.0.113.0/255.255.255.240");
      EXPECT_EQ(entry["datacenter"]["name"], "US-West-1");
    }
  }
  EXPECT_EQ(in_new_pool, 13);
  // Nobody else received them.
  ApiClient owner = daemon_.Client();
  const auto owner_ips = CallOk(owner, "grid/ip/list");
  ASSERT_FALSE(owner_ips["list"].empty());
  for (const auto& entry : owner_ips["list"]) {
    EXPECT_NE(entry["ip"].get<std::string>().rfind("203.0.113.", 0), 0u);
  }

  auto pools = Gridctl(daemon_, "ippool list");
  EXPECT_EQ(pools.exit_code, 0);
  EXPECT_NE(pools.output.find("203.0.113.0/28"), std::string::npos) << pools.output;
  auto images = Gridctl(daemon_, "image list");
  EXPECT_EQ(images.exit_code, 0);
  EXPECT_NE(images.output.find("debian-12-amd64"), std::string::npos) << images.output;
}

TEST(GridctlWithoutDaemon, SaysItCannotReachGridd) {
  const auto dir = MakeTempDir("gridctl-nodaemon");
  auto result = RunGridctl(dir, "account list");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_NE(result.output.find("cannot reach gridd"), std::string::npos) << result.output;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gridd::testing
