// The whole life of a server through the real daemon over HTTP, on libvirt's test driver.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "integration/grid_client_util.h"
#include "support/command.h"
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
                      {{"name", "web-1"},
                       {"image", image},
                       {"server.ram", "512MB"},
                       {"ip", ip},
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

  auto stopped =
      CallOk(client, "grid/server/power", {{"id", std::to_string(id)}, {"power", "stop"}}, "POST");
  EXPECT_EQ(stopped["list"][0]["state"]["name"], "Stopping");
  WaitForServerState(client, ip, "Off");

  CallOk(client, "grid/server/power", {{"server", "web-1"}, {"power", "start"}}, "POST");
  WaitForServerState(client, ip, "On");

  auto restarting =
      CallOk(client, "grid/server/power", {{"name", "web-1"}, {"power", "restart"}}, "POST");
  EXPECT_EQ(restarting["list"][0]["state"]["name"], "Restarting");
  WaitForServerState(client, ip, "On");

  auto edited =
      CallOk(client, "grid/server/edit",
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
  CallOk(again, "grid/server/power",
         {{"id", std::to_string((*after)["id"].get<int64_t>())}, {"power", "stop"}}, "POST");
  WaitForServerState(again, ip, "Off");
  CallOk(again, "grid/server/delete", {{"id", std::to_string((*after)["id"].get<int64_t>())}},
         "POST");
  EXPECT_TRUE(WaitFor([&] { return !FindServerByIp(again, ip).has_value(); }));
}

// The domains of libvirt's test driver live only as long as gridd: after a restart each
// server's domain is built from the database when something first acts on it, so the API,
// every action and the reconciler behave as if the domains had never gone.
TEST_F(ServerLifecycleTest, AfterARestartEveryActionWorksOnServersCreatedBefore) {
  ApiClient client = daemon_.Client();
  const auto ips = FreePublicIps(client);
  ASSERT_GE(ips.size(), 6u);
  const std::vector<std::string> names = {"edited", "started", "stopped",
                                          "imaged", "deleted", "resized-off"};
  std::map<std::string, std::string> ip_of;
  for (size_t i = 0; i < names.size(); ++i) {
    ip_of[names[i]] = ips[i];
    CallOk(
        client, "grid/server/add",
        {{"name", names[i]}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", ips[i]}},
        "POST");
  }
  std::map<std::string, int64_t> id_of;
  for (const auto& name : names) {
    id_of[name] = WaitForServerState(client, ip_of[name], "On")["id"].get<int64_t>();
  }
  for (const char* name : {"started", "resized-off"}) {
    CallOk(client, "grid/server/power", {{"name", name}, {"power", "stop"}}, "POST");
    WaitForServerState(client, ip_of[name], "Off");
  }

  ASSERT_EQ(daemon_.Stop(), 0);
  daemon_.Start();
  ApiClient again = daemon_.Client();
  // `state` of the domain of `name` as gridctl domain list shows it ("" when not defined).
  auto domain_state = [&](const std::string& name) -> std::string {
    auto listed = RunGridctl(daemon_.data_dir(), "--json domain list");
    EXPECT_EQ(listed.exit_code, 0) << listed.output;
    for (const auto& domain : nlohmann::json::parse(listed.output)) {
      if (domain["server_id"] == id_of[name]) return domain["state"];
    }
    return "";
  };
  auto repairs = [&] {
    ApiClient metrics(daemon_.host(), daemon_.metrics_port());
    const auto body = metrics.Raw("GET", "/metrics").body;
    const std::string series = "gridd_reconciler_repairs_total{kind=\"domain_recreated\"} ";
    const auto at = body.find(series);
    return at == std::string::npos ? 0.0 : std::stod(body.substr(at + series.size()));
  };

  // Every server keeps its state; none is reported missing by the reconciler.
  for (const auto& name : names) {
    const bool off = name == "started" || name == "resized-off";
    EXPECT_EQ((*FindServerByIp(again, ip_of[name]))["state"]["name"], off ? "Off" : "On") << name;
  }
  auto reconcile = RunGridctl(daemon_.data_dir(), "--json reconcile");
  ASSERT_EQ(reconcile.exit_code, 0) << reconcile.output;
  EXPECT_TRUE(nlohmann::json::parse(reconcile.output)["findings"].empty()) << reconcile.output;
  EXPECT_EQ(repairs(), 0.0);

  auto id_param = [&](const std::string& name) { return std::to_string(id_of[name]); };
  CallOk(again, "grid/server/edit", {{"id", id_param("edited")}, {"description", "after"}});
  CallOk(again, "grid/server/power", {{"id", id_param("started")}, {"power", "start"}}, "POST");
  CallOk(again, "grid/server/power", {{"id", id_param("stopped")}, {"power", "stop"}}, "POST");
  auto saved = CallOk(again, "grid/image/save",
                      {{"server", id_param("imaged")}, {"friendlyName", "after restart"}}, "POST");
  CallOk(again, "grid/server/delete", {{"id", id_param("deleted")}}, "POST");
  CallOk(again, "grid/server/edit", {{"id", id_param("resized-off")}, {"server.ram", "1GB"}});

  // A server that was On is On (and its domain runs) after its first job.
  EXPECT_TRUE(WaitFor([&] {
    auto jobs = CallOk(again, "grid/job/list", {{"object", "edited"}});
    return !jobs["list"].empty() && jobs["list"][0]["currentstate"]["name"] == "Succeeded" &&
           jobs["list"][0]["command"]["name"] == "UpdateVirtualServer";
  }));
  auto edited = WaitForServerState(again, ip_of["edited"], "On");
  EXPECT_EQ(edited["description"], "after");
  EXPECT_EQ(domain_state("edited"), "running");
  WaitForServerState(again, ip_of["started"], "On");
  EXPECT_EQ(domain_state("started"), "running");
  WaitForServerState(again, ip_of["stopped"], "Off");
  EXPECT_EQ(domain_state("stopped"), "shutoff");
  const int64_t image_id = saved["list"][0]["id"];
  EXPECT_TRUE(WaitFor([&] {
    auto image = again.Call("grid/image/get", {{"id", std::to_string(image_id)}});
    return image.status == 200u && image.json()["list"][0]["state"]["name"] == "Available";
  })) << "the image saved from a server created before the restart never became Available";
  WaitForServerState(again, ip_of["imaged"], "On");
  EXPECT_EQ(domain_state("imaged"), "running");
  EXPECT_TRUE(WaitFor([&] { return !FindServerByIp(again, ip_of["deleted"]).has_value(); }));
  EXPECT_EQ(domain_state("deleted"), "");
  // A server that was Off stays Off through a RAM change.
  auto resized = WaitFor([&] {
    auto server = FindServerByIp(again, ip_of["resized-off"]);
    return server && (*server)["ram"]["name"] == "1GB" && (*server)["state"]["name"] == "Off";
  });
  EXPECT_TRUE(resized) << FindServerByIp(again, ip_of["resized-off"])->dump();
  EXPECT_EQ(domain_state("resized-off"), "shutoff");

  // Still nothing the reconciler calls drift.
  reconcile = RunGridctl(daemon_.data_dir(), "--json reconcile");
  ASSERT_EQ(reconcile.exit_code, 0) << reconcile.output;
  EXPECT_TRUE(nlohmann::json::parse(reconcile.output)["findings"].empty()) << reconcile.output;
  EXPECT_EQ(repairs(), 0.0);
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
                            {{"name", "bulk-" + std::to_string(i)},
                             {"image", "debian-12-amd64"},
                             {"server.ram", "512MB"},
                             {"ip", ips[static_cast<size_t>(i)]}},
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

  ASSERT_TRUE(WaitFor(
      [&] {
        auto body = CallOk(client, "grid/server/list");
        if (body["list"].size() != 50u) return false;
        for (const auto& server : body["list"]) {
          if (server["state"]["name"] != "On") return false;
        }
        return true;
      },
      std::chrono::seconds(60)));
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
                            {{"name", "race-" + std::to_string(i)},
                             {"image", "debian-12-amd64"},
                             {"server.ram", "512MB"},
                             {"ip", ips[static_cast<size_t>(i % 5)]}},
                            "POST");
      if (reply.status == 200) {
        ++succeeded;
      } else if (reply.status == 400 && reply.json()["list"][0]["message"].get<std::string>().find(
                                            "already assigned") != std::string::npos) {
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
