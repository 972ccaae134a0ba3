// The whole life of a server through the real daemon over HTTP, on libvirt's test driver.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "integration/grid_client_util.h"
#include "support/daemon_process.h"

namespace gridd::testing {
namespace {

class ServerLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon_.Start(); }
  DaemonProcess daemon_;
};

TEST_F(ServerLifecycleTest, AddPowerEditDeleteReachEveryStateAndReleaseTheIp) {
  ApiClient client = daemon_.Client();
  auto images = CallOk(client, "grid/image/list");
  ASSERT_FALSE(images["list"].empty());
  const std::string image = images["list"][0]["name"];
  const std::string ip = FreePublicIps(client).at(0);

  auto added = CallOk(client, "grid/server/add",
                      {{"name", "web-1"}, {"image", image}, {"server.ram", "512MB"}, {"ip", ip},
                       {"description", "first server"}},
                      "POST");
  ASSERT_EQ(added["list"].size(), 1u);
  EXPECT_FALSE(added["list"][0].contains("id")) << "GoGrid's add answers without an id";
  EXPECT_EQ(added["list"][0]["ip"]["ip"], ip);
  EXPECT_EQ(added["list"][0]["ram"]["name"], "512MB");

  // Listed with its id at once, On once the create job ran.
  auto listed = FindServerByIp(client, ip);
  ASSERT_TRUE(listed.has_value());
  ASSERT_TRUE((*listed)["id"].is_number_integer());
  const int64_t id = (*listed)["id"];
  auto on = WaitForServerState(client, ip, "On");
  EXPECT_EQ(on["datacenter"]["name"], "US-West-1");
  EXPECT_EQ(on["description"], "first server");

  auto passwords = CallOk(client, "support/password/list");
  bool found_password = false;
  for (const auto& entry : passwords["list"]) {
    if (entry.contains("server") && entry["server"]["id"] == id) {
      found_password = true;
      EXPECT_EQ(entry["username"], "root");
      EXPECT_GE(entry["password"].get<std::string>().size(), 8u);
    }
  }
  EXPECT_TRUE(found_password);

  auto stopped = CallOk(client, "grid/server/power", {{"id", std::to_string(id)}, {"power", "stop"}},
                        "POST");
  EXPECT_EQ(stopped["list"][0]["state"]["name"], "Stopping");
  WaitForServerState(client, ip, "Off");

  CallOk(client, "grid/server/power", {{"server", "web-1"}, {"power", "start"}}, "POST");
  WaitForServerState(client, ip, "On");

  auto restarting = CallOk(client, "grid/server/power", {{"name", "web-1"}, {"power", "restart"}},
                           "POST");
  EXPECT_EQ(restarting["list"][0]["state"]["name"], "Restarting");
  WaitForServerState(client, ip, "On");

  auto edited = CallOk(client, "grid/server/edit",
                       {{"id", std::to_string(id)}, {"server.ram", "1GB"}, {"description", "bigger"}});
  EXPECT_EQ(edited["list"][0]["ram"]["name"], "1GB");
  EXPECT_EQ(edited["list"][0]["description"], "bigger");
  auto after_edit = WaitForServerState(client, ip, "On");
  EXPECT_EQ(after_edit["ram"]["name"], "1GB");

  auto deleted = CallOk(client, "grid/server/delete", {{"id", std::to_string(id)}}, "POST");
  EXPECT_EQ(deleted["list"][0]["id"], id);
  EXPECT_TRUE(WaitFor([&] { return !FindServerByIp(client, ip).has_value(); }));
  auto free_ips = FreePublicIps(client);
  EXPECT_NE(std::find(free_ips.begin(), free_ips.end(), ip), free_ips.end())
      << "the deleted server's IP must be Unassigned again";

  // Every change is a job that reached Succeeded, with its history.
  auto jobs = CallOk(client, "grid/job/list", {{"object", std::to_string(id)}});
  std::multiset<std::string> commands;
  for (const auto& job : jobs["list"]) {
    commands.insert(job["command"]["name"].get<std::string>());
    EXPECT_EQ(job["currentstate"]["name"], "Succeeded") << job.dump();
    EXPECT_GE(job["history"].size(), 4u);
    EXPECT_EQ(job["objecttype"]["name"], "VirtualServer");
  }
  EXPECT_EQ(commands, (std::multiset<std::string>{"CreateVirtualServer", "StopVirtualServer",
                                                  "StartVirtualServer", "RestartVirtualServer",
                                                  "UpdateVirtualServer", "DeleteVirtualServer"}));
  // Newest first.
  EXPECT_EQ(jobs["list"][0]["command"]["name"], "DeleteVirtualServer");
}

TEST_F(ServerLifecycleTest, RestartKeepsServersCredentialsAndJobs) {
  ApiClient client = daemon_.Client();
  const std::string ip = FreePublicIps(client).at(0);
  CallOk(client, "grid/server/add",
         {{"name", "keeper"}, {"image", "debian-12-amd64"}, {"server.ram", "1GB"}, {"ip", ip}},
         "POST");
  auto before = WaitForServerState(client, ip, "On");
  const std::string key = daemon_.api_key();

  EXPECT_EQ(daemon_.Stop(), 0) << "SIGTERM must end gridd with status 0";
  daemon_.Start();
  EXPECT_EQ(daemon_.api_key(), key) << "a restart must reuse the first start's credentials";

  ApiClient again = daemon_.Client();
  auto after = FindServerByIp(again, ip);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ((*after)["id"], before["id"]);
  EXPECT_EQ((*after)["name"], "keeper");
  EXPECT_EQ((*after)["state"]["name"], "On");
  auto jobs = CallOk(again, "grid/job/list");
  EXPECT_FALSE(jobs["list"].empty());

  // The server still works after the restart: it can be stopped and deleted.
  CallOk(again, "grid/server/power", {{"id", std::to_string((*after)["id"].get<int64_t>())},
                                      {"power", "stop"}}, "POST");
  WaitForServerState(again, ip, "Off");
  CallOk(again, "grid/server/delete", {{"id", std::to_string((*after)["id"].get<int64_t>())}},
         "POST");
  EXPECT_TRUE(WaitFor([&] { return !FindServerByIp(again, ip).has_value(); }));
}

TEST_F(ServerLifecycleTest, FiftyConcurrentAddsAllSucceedOnDistinctIps) {
  ApiClient client = daemon_.Client();
  auto ips = FreePublicIps(client);
  ASSERT_GE(ips.size(), 50u);
  std::atomic<int> succeeded{0};
  std::vector<std::thread> threads;
  std::vector<std::string> failures(50);
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      ApiClient own = daemon_.Client();
      auto reply = own.Call("grid/server/add",
                            {{"name", "bulk-" + std::to_string(i)}, {"image", "debian-12-amd64"},
                             {"server.ram", "512MB"}, {"ip", ips[static_cast<size_t>(i)]}},
                            "POST");
      if (reply.status == 200) {
        ++succeeded;
      } else {
        failures[static_cast<size_t>(i)] = reply.body;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(succeeded.load(), 50) << failures[0];

  ASSERT_TRUE(WaitFor([&] {
    auto body = CallOk(client, "grid/server/list");
    if (body["list"].size() != 50u) return false;
    for (const auto& server : body["list"]) {
      if (server["state"]["name"] != "On") return false;
    }
    return true;
  }, std::chrono::seconds(60)));
  auto body = CallOk(client, "grid/server/list");
  std::set<std::string> used;
  std::set<int64_t> ids;
  for (const auto& server : body["list"]) {
    used.insert(server["ip"]["ip"].get<std::string>());
    ids.insert(server["id"].get<int64_t>());
  }
  EXPECT_EQ(used.size(), 50u);
  EXPECT_EQ(ids.size(), 50u);
}

TEST_F(ServerLifecycleTest, ConcurrentAddsRacingForTheSameIpsNeverAssignOneTwice) {
  ApiClient client = daemon_.Client();
  auto ips = FreePublicIps(client);
  ASSERT_GE(ips.size(), 5u);
  std::atomic<int> succeeded{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 30; ++i) {
    threads.emplace_back([&, i] {
      ApiClient own = daemon_.Client();
      auto reply = own.Call("grid/server/add",
                            {{"name", "race-" + std::to_string(i)}, {"image", "debian-12-amd64"},
                             {"server.ram", "512MB"}, {"ip", ips[static_cast<size_t>(i % 5)]}},
                            "POST");
      if (reply.status == 200) {
        ++succeeded;
      } else if (reply.status == 400 &&
                 reply.json()["list"][0]["message"].get<std::string>().find("already assigned") !=
                     std::string::npos) {
        ++refused;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(succeeded.load(), 5);
  EXPECT_EQ(refused.load(), 25);
  auto body = CallOk(client, "grid/server/list");
  std::set<std::string> used;
  for (const auto& server : body["list"]) used.insert(server["ip"]["ip"].get<std::string>());
  EXPECT_EQ(body["list"].size(), 5u);
  EXPECT_EQ(used.size(), 5u);
}

}  // namespace
}  // namespace gridd::testing
