// Many hypervisor hosts in two datacenters, each a libvirt test-driver node of its own: the
// scheduler's placement by policy and datacenter, the 400 when a datacenter is full,
// maintenance, host removal, and a host marked Down whose servers are evacuated and whose
// return is reconciled.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

// A node file: the shipped test node with `ram_mib` of RAM, its public network renamed to the
// datacenter's (gridd-public-<datacenter id>).
std::filesystem::path WriteNode(const std::filesystem::path& dir, const std::string& name,
                                int64_t ram_mib, int datacenter_id) {
  std::ifstream in(SourceDir() / "config" / "test-node.xml");
  std::ostringstream read;
  read << in.rdbuf();
  std::string text = read.str();
  text = std::regex_replace(text, std::regex("<memory>[0-9]+</memory>"),
                            "<memory>" + std::to_string(ram_mib * 1024) + "</memory>");
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
    auto added = Ctl("host add " + name + " " + ShellQuote("test://" + node.string()) +
                     " --datacenter " + datacenter);
    ASSERT_EQ(added.exit_code, 0) << added.output;
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
  // A job that needs the host waits (retrying with backoff), then fails naming the host.
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

}  // namespace
}  // namespace gridd::testing
