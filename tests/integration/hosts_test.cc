// Many hypervisor hosts in two datacenters, each a libvirt test-driver node of its own: the
// scheduler's placement by policy and datacenter, the 400 when a datacenter is full,
// maintenance, host removal, a host marked Down whose servers are evacuated and whose return
// is reconciled; a host behind a libvirtd the test starts and stops, which goes Down and Up by
// itself; servers moved between hosts.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/libvirtd_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

// A node file: the shipped test node with `ram_mib` of RAM, its public network renamed to the
// datacenter's (gridd-public-<datacenter id>).
std::filesystem::path WriteNode(const std::filesystem::path& dir, const std::string& name,
                                int64_t ram_mib, int datacenter_id) {
  std::string text = TestNodeXml(ram_mib);
  if (datacenter_id != 1) {
    text = std::regex_replace(text, std::regex("gridd-public-1"),
                              "gridd-public-" + std::to_string(datacenter_id));
    text = std::regex_replace(text, std::regex("192\\.0\\.2\\.1'"), "203.0.113.1'");
  }
  const auto path = dir / (name + ".xml");
  std::ofstream(path) << text;
  return path;
}

class HostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Hosts are Down after 2 s without an answer, and a stop waits at most 6 s for its host.
    daemon_.set_config(WriteConfig({{"[hosts]\n",
                                     "[hosts]\ndown_after_seconds = 2\n"
                                     "keepalive_interval_seconds = 1\nkeepalive_count = 2\n"
                                     "reconnect_initial_ms = 100\nreconnect_max_seconds = 1\n"},
                                    {"StopVirtualServer = 300", "StopVirtualServer = 6"}}));
    daemon_.Start();
    client_ = std::make_unique<ApiClient>(daemon_.Client());
    nodes_ = ScratchDir("gridd-nodes");
    ASSERT_EQ(Ctl("datacenter add US-East-1").exit_code, 0);
    ASSERT_EQ(Ctl("ippool add --datacenter US-East-1 --type public 203.0.113.0/26").exit_code, 0);
    // Two hosts in each datacenter; the default host (the configured node) leaves, so only
    // these four take servers.
    AddHost("west-a", 4096, 1, "US-West-1");
    AddHost("west-b", 2048, 1, "US-West-1");
    AddHost("east-a", 4096, 2, "US-East-1");
    AddHost("east-b", 4096, 2, "US-East-1");
    auto removed = Ctl("host remove default");
    ASSERT_EQ(removed.exit_code, 0) << removed.output;
  }

  CommandResult Ctl(const std::string& args) { return RunGridctl(daemon_.data_dir(), args); }

  nlohmann::json CtlJson(const std::string& args) {
    auto result = Ctl(args + " --json");
    EXPECT_EQ(result.exit_code, 0) << args << ": " << result.output;
    return nlohmann::json::parse(result.output, nullptr, false);
  }

  void AddHost(const std::string& name, int64_t ram_mib, int datacenter_id,
               const std::string& datacenter) {
    const auto node = WriteNode(nodes_, name, ram_mib, datacenter_id);
    AddHostAt(name, "test://" + node.string(), datacenter);
  }

  void AddHostAt(const std::string& name, const std::string& uri, const std::string& datacenter) {
    auto added = Ctl("host add " + name + " " + ShellQuote(uri) + " --datacenter " + datacenter);
    ASSERT_EQ(added.exit_code, 0) << added.output;
  }

  // Waits until `gridctl host list` shows the host in `state`.
  bool WaitForHostState(const std::string& name, const std::string& state) {
    return WaitFor([&] { return HostRow(name)["state"] == state; });
  }

  // The number of gridd domains on each host, as `gridctl domain list` shows them.
  std::map<std::string, int> DomainsPerHost() {
    std::map<std::string, int> out;
    for (const auto& domain : CtlJson("domain list")) ++out[domain["host"]];
    return out;
  }

  // Waits for the newest job of `command` to end; returns it.
  nlohmann::json WaitForJobEnd(const std::string& command) {
    nlohmann::json last;
    EXPECT_TRUE(WaitFor([&] {
      auto jobs = CtlJson("job list --command " + command);
      if (jobs.empty()) return false;
      last = jobs[0];
      return last["state"] == "Succeeded" || last["state"] == "Failed";
    })) << command
        << ": " << last.dump();
    return last;
  }

  std::map<int64_t, std::string> RootPasswords() {
    std::map<int64_t, std::string> out;
    const auto body = CallOk(*client_, "support/password/list");
    for (const auto& entry : body["list"]) {
      out[entry["server"]["id"].get<int64_t>()] = entry["password"];
    }
    return out;
  }

  std::vector<std::string> FreeIpsIn(const std::string& datacenter) {
    auto body = CallOk(*client_, "grid/ip/list",
                       {{"ip.type", "Public"},
                        {"ip.state", "Unassigned"},
                        {"datacenter", datacenter},
                        {"v", "1.5"}});
    std::vector<std::string> out;
    for (const auto& ip : body["list"]) out.push_back(ip["ip"]);
    return out;
  }

  ApiClient::Reply AddServer(const std::string& name, const std::string& ip,
                             const std::string& ram = "1GB") {
    return client_->Call(
        "grid/server/add",
        {{"name", name}, {"image", "debian-12-amd64"}, {"server.ram", ram}, {"ip", ip}});
  }

  // Host name of each server, by server name, as `gridctl server list` shows it.
  std::map<std::string, std::string> HostsOfServers() {
    std::map<std::string, std::string> out;
    for (const auto& row : CtlJson("server list")) {
      out[row["name"]] = row["host"].is_string() ? row["host"].get<std::string>() : "-";
    }
    return out;
  }

  nlohmann::json HostRow(const std::string& name) {
    for (const auto& row : CtlJson("host list")) {
      if (row["name"] == name) return row;
    }
    ADD_FAILURE() << "no host " << name;
    return {};
  }

  DaemonProcess daemon_;
  std::unique_ptr<ApiClient> client_;
  std::filesystem::path nodes_;
};

TEST_F(HostsTest, HostListShowsCapacityFromLibvirtAndUse) {
  auto ips = FreeIpsIn("US-West-1");
  ASSERT_GE(ips.size(), 1u);
  ASSERT_EQ(AddServer("cap1", ips[0], "2GB").status, 200u);
  auto west_a = HostRow("west-a");
  EXPECT_EQ(west_a["datacenter"], "US-West-1");
  EXPECT_EQ(west_a["state"], "Up");
  EXPECT_EQ(west_a["ram_mib"], 4096);
  EXPECT_EQ(west_a["vcpus"], 16);  // 1 socket × 8 cores × 2 threads in the node file
  EXPECT_EQ(west_a["ram_used_mib"], 2048);
  EXPECT_EQ(west_a["vcpus_used"], 2);
  EXPECT_EQ(west_a["servers"], 1);
  EXPECT_EQ(HostRow("east-a")["servers"], 0);
  // A table for people, naming every host.
  auto table = Ctl("host list");
  EXPECT_EQ(table.exit_code, 0);
  for (const char* name : {"NAME", "west-a", "west-b", "east-a", "east-b"}) {
    EXPECT_NE(table.output.find(name), std::string::npos) << table.output;
  }
}

TEST_F(HostsTest, PlacementSpreadsByFreeRamWithinTheIpsDatacenterUntilItIsFull) {
  auto west = FreeIpsIn("US-West-1");
  auto east = FreeIpsIn("US-East-1");
  ASSERT_GE(west.size(), 7u);
  ASSERT_GE(east.size(), 2u);
  // US-West-1 holds 4096 + 2048 MB: six 1 GB servers, spread by free RAM (ties to the host
  // added first): a, a, a|b tie → a, b, a, b.
  for (int i = 0; i < 6; ++i) {
    auto reply = AddServer("w" + std::to_string(i), west[i]);
    ASSERT_EQ(reply.status, 200u) << reply.body;
  }
  auto placed = HostsOfServers();
  std::map<std::string, int> per_host;
  for (const auto& [server, host] : placed) ++per_host[host];
  EXPECT_EQ(per_host["west-a"], 4);
  EXPECT_EQ(per_host["west-b"], 2);
  EXPECT_EQ(placed["w0"], "west-a");
  EXPECT_EQ(placed["w1"], "west-a");

  // Full: the 400 names the datacenter and the RAM, at once, and nothing is created.
  auto full = AddServer("w6", west[6]);
  EXPECT_EQ(full.status, 400u);
  EXPECT_NE(full.body.find("US-West-1"), std::string::npos) << full.body;
  EXPECT_NE(full.body.find("1GB"), std::string::npos) << full.body;
  EXPECT_FALSE(FindServerByIp(*client_, west[6]).has_value());
  EXPECT_EQ(FreeIpsIn("US-West-1").size(), west.size() - 6);

  // The other datacenter still has room, and its servers go to its own hosts.
  ASSERT_EQ(AddServer("e0", east[0]).status, 200u);
  ASSERT_EQ(AddServer("e1", east[1]).status, 200u);
  placed = HostsOfServers();
  EXPECT_EQ(placed["e0"], "east-a");
  EXPECT_EQ(placed["e1"], "east-b");
  auto listed = CallOk(*client_, "grid/server/list", {{"datacenter", "US-East-1"}, {"v", "1.5"}});
  EXPECT_EQ(listed["list"].size(), 2u);
  for (const auto& server : listed["list"]) EXPECT_EQ(server["datacenter"]["name"], "US-East-1");

  // Deleting a server gives its room back.
  ASSERT_EQ(client_->Call("grid/server/delete", {{"name", "w0"}}).status, 200u);
  ASSERT_TRUE(WaitFor([&] { return !FindServerByIp(*client_, west[0]).has_value(); }));
  auto again = AddServer("w6", west[6]);
  EXPECT_EQ(again.status, 200u) << again.body;
}

TEST_F(HostsTest, MaintenanceHostsGetNothingNewAndHostsWithServersStay) {
  auto east = FreeIpsIn("US-East-1");
  ASSERT_GE(east.size(), 3u);
  ASSERT_EQ(Ctl("host maintenance east-a on").exit_code, 0);
  EXPECT_EQ(HostRow("east-a")["state"], "Maintenance");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(AddServer("m" + std::to_string(i), east[i]).status, 200u);
  }
  for (const auto& [server, host] : HostsOfServers()) EXPECT_EQ(host, "east-b") << server;

  auto refused = Ctl("host remove east-b");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("3 server(s)"), std::string::npos) << refused.output;
  EXPECT_EQ(HostRow("east-b")["servers"], 3);

  // Out of maintenance, east-a (all free) takes the next one; an empty host can go.
  ASSERT_EQ(Ctl("host maintenance east-a off").exit_code, 0);
  auto more = FreeIpsIn("US-East-1");
  ASSERT_EQ(AddServer("m3", more[0]).status, 200u);
  EXPECT_EQ(HostsOfServers()["m3"], "east-a");
  EXPECT_EQ(Ctl("host remove west-b").exit_code, 0);
  EXPECT_EQ(CtlJson("host list").size(), 3u);

  // Bad input changes nothing.
  EXPECT_NE(Ctl("host add west-a test:///default --datacenter US-West-1").exit_code, 0);
  EXPECT_NE(Ctl("host add x1 test:///default --datacenter Nowhere").exit_code, 0);
  EXPECT_NE(
      Ctl("host add x2 test:///default --datacenter US-West-1 --ram-overcommit lots").exit_code, 0);
  EXPECT_NE(Ctl("host add x3 not-a-uri --datacenter US-West-1").exit_code, 0);
  EXPECT_NE(Ctl("host maintenance east-a maybe").exit_code, 0);
  EXPECT_EQ(CtlJson("host list").size(), 3u);
}

TEST_F(HostsTest, ADownHostsServersShowUnknownAndAreEvacuatedKeepingTheirIdentity) {
  auto east = FreeIpsIn("US-East-1");
  ASSERT_GE(east.size(), 3u);
  // east-b in maintenance: all three land on east-a.
  ASSERT_EQ(Ctl("host maintenance east-b on").exit_code, 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(AddServer("v" + std::to_string(i), east[i]).status, 200u);
  }
  for (int i = 0; i < 3; ++i) WaitForServerState(*client_, east[i], "On");
  ASSERT_EQ(Ctl("host maintenance east-b off").exit_code, 0);
  auto before = CallOk(*client_, "grid/server/list", {{"datacenter", "US-East-1"}, {"v", "1.5"}});
  auto root_passwords = [&] {
    std::map<int64_t, std::string> out;
    const auto body = CallOk(*client_, "support/password/list");
    for (const auto& entry : body["list"]) {
      out[entry["server"]["id"].get<int64_t>()] = entry["password"];
    }
    return out;
  };
  const auto passwords_before = root_passwords();
  ASSERT_EQ(passwords_before.size(), 3u);

  // Evacuating a host that is Up is refused.
  auto refused = Ctl("host evacuate east-a");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("is Up"), std::string::npos) << refused.output;

  ASSERT_EQ(Ctl("host down east-a").exit_code, 0);
  EXPECT_EQ(HostRow("east-a")["state"], "Down");
  for (int i = 0; i < 3; ++i) {
    auto server = FindServerByIp(*client_, east[i]);
    ASSERT_TRUE(server.has_value());
    EXPECT_EQ((*server)["state"]["name"], "Unknown");
  }
  // A job that needs the host waits for it until its deadline, then fails naming the host.
  ASSERT_EQ(client_->Call("grid/server/power", {{"name", "v2"}, {"power", "stop"}}).status, 200u);
  nlohmann::json failed;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& job : CtlJson("job list --state Failed --command StopVirtualServer")) {
          failed = job;
          return true;
        }
        return false;
      },
      std::chrono::seconds(30)));
  EXPECT_NE(failed["error"].get<std::string>().find("east-a"), std::string::npos) << failed.dump();

  auto evacuated = CtlJson("host evacuate east-a");
  ASSERT_EQ(evacuated["moved"].size(), 3u) << evacuated.dump();
  for (const auto& move : evacuated["moved"]) EXPECT_EQ(move["to_host"], "east-b");
  WaitForServerState(*client_, east[0], "On");
  WaitForServerState(*client_, east[1], "On");
  WaitForServerState(*client_, east[2], "Off");  // it was stopped (Off) when it moved

  auto after = CallOk(*client_, "grid/server/list", {{"datacenter", "US-East-1"}, {"v", "1.5"}});
  ASSERT_EQ(after["list"].size(), before["list"].size());
  for (size_t i = 0; i < after["list"].size(); ++i) {
    EXPECT_EQ(after["list"][i]["id"], before["list"][i]["id"]);
    EXPECT_EQ(after["list"][i]["name"], before["list"][i]["name"]);
    EXPECT_EQ(after["list"][i]["ip"]["ip"], before["list"][i]["ip"]["ip"]);
  }
  EXPECT_EQ(root_passwords(), passwords_before);
  for (const auto& [server, host] : HostsOfServers()) EXPECT_EQ(host, "east-b") << server;
  EXPECT_EQ(HostRow("east-a")["servers"], 0);
  EXPECT_EQ(HostRow("east-b")["servers"], 3);

  // Jobs with a history, for the operator.
  auto jobs = CtlJson("job list --command EvacuateVirtualServer");
  ASSERT_EQ(jobs.size(), 3u);
  auto shown = CtlJson("job show " + std::to_string(jobs[0]["id"].get<int64_t>()));
  EXPECT_EQ(shown["state"], "Succeeded");
  EXPECT_GE(shown["history"].size(), 2u);

  // The host returns: its stale copies are removed, so each server runs once.
  auto up = Ctl("host up east-a");
  ASSERT_EQ(up.exit_code, 0) << up.output;
  EXPECT_EQ(HostRow("east-a")["state"], "Up");
  std::map<std::string, int> domains_per_host;
  for (const auto& domain : CtlJson("domain list")) ++domains_per_host[domain["host"]];
  EXPECT_EQ(domains_per_host["east-a"], 0);
  EXPECT_EQ(domains_per_host["east-b"], 3);
  WaitForServerState(*client_, east[0], "On");
}

// A host reached through a libvirtd the test starts on loopback: killed, it goes Down by itself,
// its servers show Unknown and a job on it fails at its deadline naming it; restarted (empty,
// as a test-driver libvirtd comes back), it goes Up by itself, a job that waited for it
// completes and its servers' domains are built again as jobs act on them.
// Hung (SIGSTOP), it goes Down again, its servers are evacuated, and when it answers again the
// stale copies it still holds are removed.
TEST_F(HostsTest, AHostWhoseLibvirtdStopsGoesDownAndUpByItself) {
  LibvirtdProcess libvirtd;
  const auto node = WriteNode(nodes_, "remote-a", 4096, 2);
  AddHostAt("remote-a", libvirtd.TestUri(node), "US-East-1");
  // Only remote-a takes the new servers.
  ASSERT_EQ(Ctl("host maintenance east-a on").exit_code, 0);
  ASSERT_EQ(Ctl("host maintenance east-b on").exit_code, 0);
  auto east = FreeIpsIn("US-East-1");
  ASSERT_GE(east.size(), 2u);
  ASSERT_EQ(AddServer("r0", east[0]).status, 200u);
  ASSERT_EQ(AddServer("r1", east[1]).status, 200u);
  WaitForServerState(*client_, east[0], "On");
  WaitForServerState(*client_, east[1], "On");
  for (const auto& [server, host] : HostsOfServers()) EXPECT_EQ(host, "remote-a") << server;
  ASSERT_EQ(Ctl("host maintenance east-b off").exit_code, 0);
  const auto passwords_before = RootPasswords();

  libvirtd.Kill();
  ASSERT_TRUE(WaitForHostState("remote-a", "Down")) << HostRow("remote-a").dump();
  for (const auto& ip : {east[0], east[1]}) {
    auto server = FindServerByIp(*client_, ip);
    ASSERT_TRUE(server.has_value());
    EXPECT_EQ((*server)["state"]["name"], "Unknown");
  }
  EXPECT_NE(HostRow("remote-a")["error"].get<std::string>().find("127.0.0.1"), std::string::npos);
  ASSERT_EQ(client_->Call("grid/server/power", {{"name", "r1"}, {"power", "stop"}}).status, 200u);
  const auto stop = WaitForJobEnd("StopVirtualServer");
  EXPECT_EQ(stop["state"], "Failed");
  EXPECT_NE(stop["error"].get<std::string>().find("remote-a"), std::string::npos) << stop.dump();

  // A start (deadline 300 s) waits for the host instead of failing.
  ASSERT_EQ(client_->Call("grid/server/power", {{"name", "r1"}, {"power", "start"}}).status, 200u);
  ASSERT_TRUE(WaitFor([&] {
    auto jobs = CtlJson("job list --command StartVirtualServer --state Processing");
    return jobs.size() == 1;
  }));

  // Back, empty: the waiting start defines its server's domain again and completes; the other
  // server keeps its state and gets its domain (running, as it is On) when first acted on.
  libvirtd.Start();
  ASSERT_TRUE(WaitForHostState("remote-a", "Up")) << HostRow("remote-a").dump();
  WaitForServerState(*client_, east[0], "On");
  EXPECT_EQ(WaitForJobEnd("StartVirtualServer")["state"], "Succeeded");
  WaitForServerState(*client_, east[1], "On");
  ASSERT_TRUE(WaitFor([&] { return DomainsPerHost()["remote-a"] == 1; }));
  ASSERT_EQ(client_->Call("grid/server/edit", {{"name", "r0"}, {"description", "back"}}).status,
            200u);
  EXPECT_EQ(WaitForJobEnd("UpdateVirtualServer")["state"], "Succeeded");
  EXPECT_EQ(DomainsPerHost()["remote-a"], 2);
  WaitForServerState(*client_, east[0], "On");

  // Hung: Down again, and its servers are re-created on east-b with their identity.
  libvirtd.Pause();
  ASSERT_TRUE(WaitForHostState("remote-a", "Down")) << HostRow("remote-a").dump();
  auto evacuated = CtlJson("host evacuate remote-a");
  ASSERT_EQ(evacuated["moved"].size(), 2u) << evacuated.dump();
  for (const auto& move : evacuated["moved"]) EXPECT_EQ(move["to_host"], "east-b");
  WaitForServerState(*client_, east[0], "On");
  for (const auto& [server, host] : HostsOfServers()) EXPECT_EQ(host, "east-b") << server;
  EXPECT_EQ(RootPasswords(), passwords_before);

  // It answers again: Up by itself, and the copies it kept are removed.
  libvirtd.Resume();
  ASSERT_TRUE(WaitForHostState("remote-a", "Up")) << HostRow("remote-a").dump();
  ASSERT_TRUE(WaitFor([&] { return DomainsPerHost()["remote-a"] == 0; }))
      << CtlJson("domain list").dump();
  EXPECT_EQ(DomainsPerHost()["east-b"], 2);
  WaitForServerState(*client_, east[0], "On");
}

TEST_F(HostsTest, ServerMoveKeepsTheServerAndRefusesTargetsItCannotUse) {
  auto west = FreeIpsIn("US-West-1");
  ASSERT_GE(west.size(), 3u);
  ASSERT_EQ(AddServer("mv0", west[0]).status, 200u);
  ASSERT_EQ(AddServer("mv1", west[1]).status, 200u);
  WaitForServerState(*client_, west[0], "On");
  WaitForServerState(*client_, west[1], "On");
  ASSERT_EQ(client_->Call("grid/server/power", {{"name", "mv1"}, {"power", "stop"}}).status, 200u);
  WaitForServerState(*client_, west[1], "Off");
  auto placed = HostsOfServers();
  ASSERT_EQ(placed["mv0"], "west-a");
  ASSERT_EQ(placed["mv1"], "west-a");
  const auto before =
      CallOk(*client_, "grid/server/list", {{"datacenter", "US-West-1"}, {"v", "1.5"}});
  const auto passwords_before = RootPasswords();

  auto moved = CtlJson("server move mv0 west-b");
  EXPECT_EQ(moved["from_host"], "west-a");
  EXPECT_EQ(moved["to_host"], "west-b");
  EXPECT_EQ(WaitForJobEnd("MoveVirtualServer")["state"], "Succeeded");
  ASSERT_EQ(CtlJson("server move mv1 west-b")["to_host"], "west-b");
  ASSERT_TRUE(WaitFor([&] {
    auto jobs = CtlJson("job list --command MoveVirtualServer --state Succeeded");
    return jobs.size() == 2;
  }));

  placed = HostsOfServers();
  EXPECT_EQ(placed["mv0"], "west-b");
  EXPECT_EQ(placed["mv1"], "west-b");
  WaitForServerState(*client_, west[0], "On");
  WaitForServerState(*client_, west[1], "Off");
  const auto after =
      CallOk(*client_, "grid/server/list", {{"datacenter", "US-West-1"}, {"v", "1.5"}});
  ASSERT_EQ(after["list"].size(), before["list"].size());
  for (size_t i = 0; i < after["list"].size(); ++i) {
    EXPECT_EQ(after["list"][i]["id"], before["list"][i]["id"]);
    EXPECT_EQ(after["list"][i]["name"], before["list"][i]["name"]);
    EXPECT_EQ(after["list"][i]["ip"]["ip"], before["list"][i]["ip"]["ip"]);
  }
  EXPECT_EQ(RootPasswords(), passwords_before);
  auto domains = DomainsPerHost();
  EXPECT_EQ(domains["west-a"], 0);
  EXPECT_EQ(domains["west-b"], 2);
  // The scheduler's bookings moved along.
  EXPECT_EQ(HostRow("west-a")["servers"], 0);
  EXPECT_EQ(HostRow("west-a")["ram_used_mib"], 0);
  EXPECT_EQ(HostRow("west-b")["servers"], 2);
  EXPECT_EQ(HostRow("west-b")["ram_used_mib"], 2048);
  auto jobs = CtlJson("job list --command MoveVirtualServer");
  auto shown = CtlJson("job show " + std::to_string(jobs[0]["id"].get<int64_t>()));
  EXPECT_GE(shown["history"].size(), 2u) << shown.dump();

  // Refusals, each one line naming why, and nothing changes.
  auto refused = [&](const std::string& args, const std::string& why) {
    auto result = Ctl(args);
    EXPECT_NE(result.exit_code, 0) << args;
    EXPECT_NE(result.output.find(why), std::string::npos) << args << ": " << result.output;
  };
  refused("server move mv0 west-b", "already");
  refused("server move mv0 east-a", "datacenter");
  refused("server move mv0 west-a-nowhere", "no host");
  refused("server move nobody west-a", "no server");
  ASSERT_EQ(Ctl("host maintenance west-a on").exit_code, 0);
  refused("server move mv0 west-a", "maintenance");
  ASSERT_EQ(Ctl("host maintenance west-a off").exit_code, 0);
  ASSERT_EQ(Ctl("host down west-a").exit_code, 0);
  refused("server move mv0 west-a", "Down");
  ASSERT_EQ(Ctl("host up west-a").exit_code, 0);
  // A 4 GB server fills west-a (4096 MB): mv0 no longer fits there.
  ASSERT_EQ(AddServer("big", west[2], "4GB").status, 200u);
  refused("server move mv0 west-a", "no room");
  EXPECT_EQ(HostsOfServers()["mv0"], "west-b");
  EXPECT_EQ(CtlJson("job list --command MoveVirtualServer").size(), 2u);
}

}  // namespace
}  // namespace gridd::testing
