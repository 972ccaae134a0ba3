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

nlohmann::json GridctlJson(const DaemonProcess& daemon, const std::string& args) {
  auto result = RunGridctl(daemon.data_dir(), args + " --json");
  EXPECT_EQ(result.exit_code, 0) << args << ": " << result.output;
  return result.exit_code == 0 ? nlohmann::json::parse(result.output) : nlohmann::json();
}

nlohmann::json KeyFor(const DaemonProcess& daemon, const std::string& account,
                      const std::string& role) {
  return GridctlJson(daemon, "apikey create --account " + account + " --role " + role);
}

TEST_F(GridctlTest, ARoleChangeAppliesToTheKeysNextRequest) {
  ASSERT_EQ(Gridctl(daemon_, "account create roles").exit_code, 0);
  const auto key = KeyFor(daemon_, "roles", "readonly");
  ApiClient client = ClientFor(daemon_, key);
  EXPECT_EQ(client.Call("grid/job/list", {}).status, 401u);

  const std::string api_key = key["api_key"];
  auto changed = GridctlJson(daemon_, "apikey role " + api_key + " --role system");
  EXPECT_EQ(changed["role"], "System User");
  EXPECT_EQ(client.Call("grid/job/list", {}).status, 200u);
  auto listed = GridctlJson(daemon_, "apikey list --account roles");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["role"], "System User");

  auto bad_role = Gridctl(daemon_, "apikey role " + api_key + " --role janitor");
  EXPECT_EQ(bad_role.exit_code, 1);
  EXPECT_NE(bad_role.output.find("unknown role"), std::string::npos) << bad_role.output;
  auto unknown = Gridctl(daemon_, "apikey role 0000 --role super");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("no active API key"), std::string::npos) << unknown.output;
  ASSERT_EQ(Gridctl(daemon_, "apikey revoke " + api_key).exit_code, 0);
  EXPECT_EQ(Gridctl(daemon_, "apikey role " + api_key + " --role super").exit_code, 1)
      << "a revoked key stays revoked";
  EXPECT_EQ(client.Call("grid/job/list", {}).status, 403u);
}

TEST_F(GridctlTest, ServersAndDatacentersAreListedAcrossAccountsWithFilters) {
  auto datacenters = GridctlJson(daemon_, "datacenter list");
  ASSERT_FALSE(datacenters.empty());
  EXPECT_EQ(datacenters[0]["name"], "US-West-1");

  ASSERT_EQ(Gridctl(daemon_, "account create tenant").exit_code, 0);
  ApiClient tenant = ClientFor(daemon_, KeyFor(daemon_, "tenant", "super"));
  ApiClient owner = daemon_.Client();
  const std::string tenant_ip = FreePublicIps(tenant).at(0);
  const std::string owner_ip = FreePublicIps(owner).at(0);
  CallOk(tenant, "grid/server/add",
         {{"name", "tenant-web"},
          {"image", "debian-12-amd64"},
          {"server.ram", "512MB"},
          {"ip", tenant_ip}},
         "POST");
  CallOk(
      owner, "grid/server/add",
      {{"name", "owner-db"}, {"image", "debian-12-amd64"}, {"server.ram", "1GB"}, {"ip", owner_ip}},
      "POST");
  WaitForServerState(tenant, tenant_ip, "On");
  WaitForServerState(owner, owner_ip, "On");

  auto all = GridctlJson(daemon_, "server list");
  ASSERT_EQ(all.size(), 2u) << all.dump();
  auto only_tenant = GridctlJson(daemon_, "server list --account tenant");
  ASSERT_EQ(only_tenant.size(), 1u) << only_tenant.dump();
  EXPECT_EQ(only_tenant[0]["name"], "tenant-web");
  EXPECT_EQ(only_tenant[0]["ip"], tenant_ip);
  EXPECT_EQ(only_tenant[0]["datacenter"], "US-West-1");
  EXPECT_EQ(only_tenant[0]["state"], "On");
  EXPECT_EQ(GridctlJson(daemon_, "server list --state On --datacenter US-West-1").size(), 2u);
  EXPECT_TRUE(GridctlJson(daemon_, "server list --state Off").empty());

  auto table = Gridctl(daemon_, "server list");
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.output.find("ACCOUNT"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("owner-db"), std::string::npos) << table.output;

  auto bad_state = Gridctl(daemon_, "server list --state Sideways");
  EXPECT_EQ(bad_state.exit_code, 1);
  EXPECT_NE(bad_state.output.find("state"), std::string::npos) << bad_state.output;
  auto bad_dc = Gridctl(daemon_, "server list --datacenter Mars-1");
  EXPECT_EQ(bad_dc.exit_code, 1);
  EXPECT_NE(bad_dc.output.find("no datacenter 'Mars-1'"), std::string::npos) << bad_dc.output;
  auto bad_account = Gridctl(daemon_, "server list --account nobody");
  EXPECT_EQ(bad_account.exit_code, 1);
  EXPECT_NE(bad_account.output.find("no account 'nobody'"), std::string::npos)
      << bad_account.output;
}

TEST_F(GridctlTest, AnIpPoolIsRemovedOnlyOnceNoAddressIsAssigned) {
  ASSERT_EQ(Gridctl(daemon_, "account create pooled").exit_code, 0);
  ASSERT_EQ(Gridctl(daemon_,
                    "ippool add --datacenter US-West-1 --type public --account pooled "
                    "--network gridd-public-1 203.0.113.0/28")
                .exit_code,
            0);
  ApiClient pooled = ClientFor(daemon_, KeyFor(daemon_, "pooled", "super"));
  const std::string ip = "203.0.113.5";
  CallOk(pooled, "grid/server/add",
         {{"name", "in-pool"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", ip}},
         "POST");
  const auto server = WaitForServerState(pooled, ip, "On");

  auto refused = Gridctl(daemon_, "ippool remove 203.0.113.0/28");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("in use: 1 address(es) assigned"), std::string::npos)
      << refused.output;
  EXPECT_TRUE(FindServerByIp(pooled, ip).has_value()) << "a refused removal changed nothing";

  CallOk(pooled, "grid/server/delete", {{"id", std::to_string(server["id"].get<int64_t>())}},
         "POST");
  EXPECT_TRUE(WaitFor([&] { return !FindServerByIp(pooled, ip).has_value(); }));
  auto removed = GridctlJson(daemon_, "ippool remove 203.0.113.0/28");
  EXPECT_EQ(removed["cidr"], "203.0.113.0/28");
  for (const auto& pool : GridctlJson(daemon_, "ippool list")) {
    EXPECT_NE(pool["cidr"], "203.0.113.0/28");
  }
  const auto pooled_ips = CallOk(pooled, "grid/ip/list");
  for (const auto& entry : pooled_ips["list"]) {
    EXPECT_NE(entry["ip"].get<std::string>().rfind("203.0.113.", 0), 0u) << entry.dump();
  }
  auto gone = Gridctl(daemon_, "ippool remove 203.0.113.0/28");
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_NE(gone.output.find("no IP pool"), std::string::npos) << gone.output;
}

TEST_F(GridctlTest, ImagesAreSharedHiddenAndTrashedByTheOperator) {
  ASSERT_EQ(Gridctl(daemon_, "account create maker").exit_code, 0);
  ApiClient maker = ClientFor(daemon_, KeyFor(daemon_, "maker", "super"));
  ApiClient other = daemon_.Client();
  const std::string ip = FreePublicIps(maker).at(0);
  CallOk(maker, "grid/server/add",
         {{"name", "golden"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", ip}},
         "POST");
  const auto server = WaitForServerState(maker, ip, "On");
  auto saved = CallOk(
      maker, "grid/image/save",
      {{"server", std::to_string(server["id"].get<int64_t>())}, {"friendlyName", "golden image"}},
      "POST");
  const int64_t image_id = saved["list"][0]["id"];
  const std::string id = std::to_string(image_id);
  auto other_sees = [&] {
    const auto images = CallOk(other, "grid/image/list");
    for (const auto& image : images["list"]) {
      if (image["id"] == image_id) return true;
    }
    return false;
  };
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& image : GridctlJson(daemon_, "image list")) {
      if (image["id"] == image_id) return image["state"] == "Available";
    }
    return false;
  })) << "the saved image never became Available";
  EXPECT_FALSE(other_sees());

  auto shared = GridctlJson(daemon_, "image public " + id);
  EXPECT_EQ(shared["public"], true);
  EXPECT_TRUE(other_sees()) << "a public image is visible to every account";
  GridctlJson(daemon_, "image private " + id);
  EXPECT_FALSE(other_sees());

  auto seeded = GridctlJson(daemon_, "image list");
  int64_t seeded_id = 0;
  for (const auto& image : seeded) {
    if (image["name"] == "debian-12-amd64") seeded_id = image["id"];
  }
  auto hide_seeded = Gridctl(daemon_, "image private " + std::to_string(seeded_id));
  EXPECT_EQ(hide_seeded.exit_code, 1);
  EXPECT_NE(hide_seeded.output.find("belongs to no account"), std::string::npos)
      << hide_seeded.output;

  auto trashed = GridctlJson(daemon_, "image delete " + id);
  EXPECT_EQ(trashed["state"], "Trash");
  auto twice = Gridctl(daemon_, "image delete " + id);
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.output.find("already in the Trash"), std::string::npos) << twice.output;
  auto not_an_id = Gridctl(daemon_, "image delete golden");
  EXPECT_EQ(not_an_id.exit_code, 1);
  EXPECT_NE(not_an_id.output.find("id must be a positive integer id"), std::string::npos)
      << not_an_id.output;
  EXPECT_EQ(Gridctl(daemon_, "image public 999999").exit_code, 1);
}

TEST_F(GridctlTest, AFailedJobIsShownWithItsHistoryAndRetried) {
  ApiClient client = daemon_.Client();
  const std::string ip = FreePublicIps(client).at(0);
  CallOk(client, "grid/server/add",
         {{"name", "filler"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", ip}},
         "POST");
  const auto server = WaitForServerState(client, ip, "On");
  // The test driver's fixed 100 GiB pool fills after about 24 full copies of the server's
  // 4 GiB disk; the save that does not fit fails.
  std::optional<nlohmann::json> failed;
  for (int attempt = 0; attempt < 40 && !failed; ++attempt) {
    CallOk(client, "grid/image/save",
           {{"server", std::to_string(server["id"].get<int64_t>())},
            {"friendlyName", "fill-" + std::to_string(attempt)}},
           "POST");
    nlohmann::json newest;
    ASSERT_TRUE(WaitFor([&] {
      newest = GridctlJson(daemon_, "job list --command SaveServerImage")[0];
      return newest["state"] == "Succeeded" || newest["state"] == "Failed";
    }));
    if (newest["state"] == "Failed") failed = newest;
  }
  ASSERT_TRUE(failed.has_value()) << "the pool never filled up";
  const std::string id = std::to_string((*failed)["id"].get<int64_t>());

  auto failed_jobs = GridctlJson(daemon_, "job list --state Failed");
  ASSERT_EQ(failed_jobs.size(), 1u) << failed_jobs.dump();
  EXPECT_EQ(failed_jobs[0]["id"], (*failed)["id"]);
  auto shown = GridctlJson(daemon_, "job show " + id);
  ASSERT_FALSE(shown["history"].empty());
  EXPECT_EQ(shown["history"].back()["state"], "Failed");
  const std::size_t history_before = shown["history"].size();
  auto table = Gridctl(daemon_, "job show " + id);
  EXPECT_NE(table.output.find("history:"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("NOTE"), std::string::npos) << table.output;

  auto retried = GridctlJson(daemon_, "job retry " + id);
  EXPECT_EQ(retried["state"], "Queued");
  EXPECT_EQ(retried["attempts"], 0);
  EXPECT_EQ(retried["history"].back()["note"], "retried by the operator");
  // The retry runs as a fresh attempt and finishes; the earlier failure stays in the history.
  nlohmann::json after;
  EXPECT_TRUE(WaitFor([&] {
    after = GridctlJson(daemon_, "job show " + id);
    return after["state"] == "Succeeded" || after["state"] == "Failed";
  })) << after.dump();
  EXPECT_GT(after["history"].size(), history_before + 1) << after.dump();
  EXPECT_GE(after["attempts"], 1);
  EXPECT_EQ(after["history"][history_before - 1]["state"], "Failed");

  auto not_failed = Gridctl(daemon_, "job retry " + id);
  if (after["state"] == "Succeeded") {
    EXPECT_EQ(not_failed.exit_code, 1);
    EXPECT_NE(not_failed.output.find("only a Failed job is retried"), std::string::npos)
        << not_failed.output;
  }
  auto unknown = Gridctl(daemon_, "job show 999999");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("no job 999999"), std::string::npos) << unknown.output;
  auto bad_filter = Gridctl(daemon_, "job list --state Sleeping");
  EXPECT_EQ(bad_filter.exit_code, 1);
}

TEST_F(GridctlTest, EveryCommandHasHelp) {
  for (const std::string command :
       {"account create", "account list",   "apikey create", "apikey list",     "apikey revoke",
        "apikey role",    "apikey signing", "apikey rotate", "datacenter list", "ippool add",
        "ippool list",    "ippool remove",  "image list",    "image public",    "image private",
        "image delete",   "server list",    "job list",      "job show",        "job retry",
        "domain list",    "reconcile",      "backup"}) {
    auto help = Gridctl(daemon_, command + " --help");
    EXPECT_EQ(help.exit_code, 0) << command;
    EXPECT_NE(help.output.find("Usage"), std::string::npos) << command << ": " << help.output;
  }
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
