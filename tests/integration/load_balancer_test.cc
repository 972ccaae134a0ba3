// Load balancers through the real daemon and the real HAProxy it supervises: traffic from
// a client on loopback reaches small echo backends the way the balancer's type, persistence and
// pool say; edits and deletes take effect; HAProxy's death and a restart of gridd are repaired;
// bad input is refused and changes nothing.
//
// Addresses: the default account gets 127.77.0.0/28 (virtual IPs) and 127.77.1.0/28 (real
// IPs); Linux routes all of 127.0.0.0/8 locally. Each test has its own daemon, so the same
// addresses are reused; the virtual port is picked per process so that tests running in
// parallel do not collide.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "integration/grid_client_util.h"
#include "integration/tcp_backends.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr auto kWait = seconds(20);
constexpr auto kIo = milliseconds(2000);
const std::string kVip = "127.77.0.2";
const std::string kVip2 = "127.77.0.3";

std::string Real(int host) { return "127.77.1." + std::to_string(host); }

uint16_t PickPort(const std::string& vip, int offset) {
  const int base = 20000 + static_cast<int>(getpid() % 2000) * 20;
  for (int i = 0; i < 20; ++i) {
    const auto port = static_cast<uint16_t>(base + (offset + i) % 20);
    if (PortIsFree(vip, port)) return port;
  }
  return static_cast<uint16_t>(base + offset % 20);
}

long long SinceMs(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start).count();
}

// ------------------------------------------------------------------------------ processes

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The state letter and parent pid from /proc/PID/stat; state 0 when there is no such process.
std::pair<char, pid_t> ProcStat(pid_t pid) {
  const std::string stat = ReadText("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 4 > stat.size()) return {0, 0};
  std::istringstream rest(stat.substr(paren + 2));
  char state = 0;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return {state, ppid};
}

bool Alive(pid_t pid) {
  const char state = ProcStat(pid).first;
  return state != 0 && state != 'Z' && state != 'X';
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(),
                                     [](unsigned char c) { return std::isdigit(c) != 0; })) {
      continue;
    }
    const pid_t pid = std::stoi(name);
    const auto [state, ppid] = ProcStat(pid);
    if (ppid == parent && state != 'Z' && state != 0) out.push_back(pid);
  }
  return out;
}

std::optional<pid_t> ReadPidFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 1) return std::nullopt;
  return static_cast<pid_t>(pid);
}

// An haproxy process whose command line names this daemon's data directory: one that our
// daemon started, never some other test's.
bool IsOurHaproxy(pid_t pid, const std::filesystem::path& data_dir) {
  if (!Alive(pid)) return false;
  std::string comm = ReadText("/proc/" + std::to_string(pid) + "/comm");
  if (comm.rfind("haproxy", 0) != 0) return false;
  std::string cmdline = ReadText("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  return cmdline.find((data_dir / "haproxy").string() + "/") != std::string::npos;
}

// ----------------------------------------------------------------------------- the fixture

class LoadBalancerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.Start();
    client_ = std::make_unique<ApiClient>(daemon_.Client());
    client_->SetTimeout(seconds(20));
    for (const char* pool : {"127.77.0.0/28", "127.77.1.0/28"}) {
      auto added = RunGridctl(daemon_.data_dir(),
                              std::string("ippool add --datacenter US-West-1 --type public "
                                          "--account default ") +
                                  pool);
      ASSERT_EQ(added.exit_code, 0) << added.output;
    }
  }

  // gridd stops its HAProxy when it stops; anything left behind is reported, then ended.
  void TearDown() override {
    std::set<pid_t> haproxy;
    if (auto master = HaproxyMaster()) {
      haproxy.insert(*master);
      for (pid_t child : ChildrenOf(*master)) haproxy.insert(child);
    }
    if (daemon_.running()) daemon_.Stop();
    const bool all_gone = WaitFor(
        [&] {
          return std::none_of(haproxy.begin(), haproxy.end(),
                              [&](pid_t pid) { return IsOurHaproxy(pid, daemon_.data_dir()); });
        },
        seconds(5));
    EXPECT_TRUE(all_gone) << "HAProxy processes outlived gridd";
    for (pid_t pid : haproxy) {
      if (IsOurHaproxy(pid, daemon_.data_dir())) kill(pid, SIGKILL);
    }
  }

  std::filesystem::path HaproxyDir() const { return daemon_.data_dir() / "haproxy"; }

  // The master pid in <data-dir>/haproxy/haproxy.pid, if it names our running HAProxy.
  std::optional<pid_t> HaproxyMaster() const {
    auto pid = ReadPidFile(HaproxyDir() / "haproxy.pid");
    if (pid && IsOurHaproxy(*pid, daemon_.data_dir())) return pid;
    return std::nullopt;
  }

  static Params Members(const std::vector<const EchoBackend*>& backends) {
    Params params;
    for (size_t i = 0; i < backends.size(); ++i) {
      params.emplace_back("realiplist." + std::to_string(i) + ".ip", backends[i]->ip());
      params.emplace_back("realiplist." + std::to_string(i) + ".port",
                          std::to_string(backends[i]->port()));
    }
    return params;
  }

  // Adds a load balancer; returns its id (0 on failure, with the failure recorded).
  int64_t AddBalancer(const std::string& name, const std::string& vip, uint16_t port,
                      const std::vector<const EchoBackend*>& backends,
                      const std::string& type = "Round Robin",
                      const std::string& persistence = "None") {
    Params params = {{"name", name},
                     {"virtualip.ip", vip},
                     {"virtualip.port", std::to_string(port)},
                     {"loadbalancer.type", type},
                     {"loadbalancer.persistence", persistence}};
    for (auto& member : Members(backends)) params.push_back(std::move(member));
    auto reply = client_->Call("grid/loadbalancer/add", params);
    EXPECT_EQ(reply.status, 200u) << reply.body;
    if (reply.status != 200) return 0;
    auto body = reply.json();
    EXPECT_EQ(body["status"], "success") << reply.body;
    const auto& balancer = body["list"][0];
    EXPECT_TRUE(balancer["id"].is_number_integer()) << reply.body;
    EXPECT_EQ(balancer["name"], name);
    EXPECT_EQ(balancer["virtualip"]["ip"]["ip"], vip);
    EXPECT_EQ(balancer["virtualip"]["port"], port);
    EXPECT_EQ(balancer["type"]["name"], type);
    EXPECT_EQ(balancer["realiplist"].size(), backends.size());
    return balancer.value("id", int64_t{0});
  }

  // Adds a load balancer and waits until it is On and every backend has answered through it;
  // returns its id, or 0 with the failure recorded.
  int64_t AddServingBalancer(const std::string& name, const std::string& vip, uint16_t port,
                             const std::vector<const EchoBackend*>& backends,
                             const std::string& type = "Round Robin") {
    const int64_t id = AddBalancer(name, vip, port, backends, type);
    if (id <= 0) return 0;
    ::testing::AssertionResult on = WaitForState(id, "On");
    if (!on) {
      ADD_FAILURE() << on.message();
      return 0;
    }
    std::set<std::string> names;
    for (const EchoBackend* backend : backends) names.insert(backend->name());
    ::testing::AssertionResult answering = WaitUntilAllAnswer(vip, port, names);
    if (!answering) {
      ADD_FAILURE() << answering.message();
      return 0;
    }
    return id;
  }

  std::optional<nlohmann::json> FindBalancer(int64_t id) {
    auto body = CallOk(*client_, "grid/loadbalancer/list");
    for (const auto& balancer : body["list"]) {
      if (balancer["id"] == id) return balancer;
    }
    return std::nullopt;
  }

  ::testing::AssertionResult WaitForState(int64_t id, const std::string& state,
                                          milliseconds limit = kWait) {
    std::optional<nlohmann::json> last;
    if (WaitFor(
            [&] {
              last = FindBalancer(id);
              return last && (*last)["state"]["name"] == state;
            },
            limit)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "load balancer " << id << " never reached " << state
                                         << "; last seen: " << (last ? last->dump() : "absent");
  }

  // True while a job for the load balancer named `name` is not finished.
  bool JobPending(const std::string& name) {
    auto body = CallOk(*client_, "grid/job/list");
    for (const auto& job : body["list"]) {
      if (job["objecttype"]["name"] != "LoadBalancer") continue;
      if (!job.contains("detail") || job["detail"].value("name", "") != name) continue;
      const std::string state = job["currentstate"]["name"];
      if (state == "Queued" || state == "Processing" || state == "Created") return true;
    }
    return false;
  }

  // Connects until every name in `names` has answered (bounded).
  ::testing::AssertionResult WaitUntilAllAnswer(const std::string& vip, uint16_t port,
                                                std::set<std::string> names) {
    std::set<std::string> seen;
    std::string error;
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto name = AskBackend(vip, port, kIo, &error)) seen.insert(*name);
      if (std::includes(seen.begin(), seen.end(), names.begin(), names.end())) {
        return ::testing::AssertionSuccess();
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    std::string joined;
    for (const auto& name : seen) joined += " " + name;
    return ::testing::AssertionFailure()
           << vip << ":" << port << " answered only with:" << joined << "; last error: " << error;
  }

  // `count` sequential exchanges; the answers per backend name ("" for failures).
  static std::map<std::string, int> Spread(const std::string& vip, uint16_t port, int count) {
    std::map<std::string, int> counts;
    for (int i = 0; i < count; ++i) ++counts[AskBackend(vip, port, kIo).value_or("")];
    return counts;
  }

  static std::string Describe(const std::map<std::string, int>& counts) {
    std::string out;
    for (const auto& [name, count] : counts) {
      out += (name.empty() ? "(failed)" : name) + "=" + std::to_string(count) + " ";
    }
    return out;
  }

  DaemonProcess daemon_;
  std::unique_ptr<ApiClient> client_;
};

// ----------------------------------------------------------------------------------- tests

TEST_F(LoadBalancerTest, RoundRobinSpreadsConnectionsEvenly) {
  EchoBackend alpha("alpha", Real(2)), bravo("bravo", Real(3)), charlie("charlie", Real(4));
  const uint16_t port = PickPort(kVip, 0);
  const int64_t id =
      AddServingBalancer("rr", kVip, port, {&alpha, &bravo, &charlie}, "Round Robin");
  ASSERT_GT(id, 0);

  const auto counts = Spread(kVip, port, 200);
  EXPECT_EQ(counts.count(""), 0u) << Describe(counts);
  const double expected = 200.0 / 3;
  for (const auto* name : {"alpha", "bravo", "charlie"}) {
    const int got = counts.count(name) ? counts.at(name) : 0;
    EXPECT_GE(got, expected * 0.9) << name << ": " << Describe(counts);
    EXPECT_LE(got, expected * 1.1) << name << ": " << Describe(counts);
  }
}

TEST_F(LoadBalancerTest, LeastConnectSendsNewConnectionsToTheIdleBackend) {
  EchoBackend alpha("alpha", Real(2)), bravo("bravo", Real(3));
  const uint16_t port = PickPort(kVip, 1);
  const int64_t id = AddServingBalancer("lc", kVip, port, {&alpha, &bravo}, "Least Connect");
  ASSERT_GT(id, 0);

  std::string error;
  auto held = LineConnection::Open(kVip, port, kIo, &error);
  ASSERT_TRUE(held) << error;
  const auto busy = held->ReadLine(kIo);
  ASSERT_TRUE(busy.has_value());
  ASSERT_TRUE(*busy == "alpha" || *busy == "bravo") << *busy;
  const std::string idle = *busy == "alpha" ? "bravo" : "alpha";

  std::map<std::string, int> counts;
  for (int i = 0; i < 10; ++i) {
    auto connection = LineConnection::Open(kVip, port, kIo, &error);
    ASSERT_TRUE(connection) << error;
    ++counts[connection->ReadLine(kIo).value_or("")];
    EXPECT_TRUE(connection->Echo("short " + std::to_string(i), kIo));
    connection->Finish(kIo);  // the balancer has seen it end before the next one starts
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(counts[idle], 10) << "held connection on " << *busy << "; " << Describe(counts);
  EXPECT_TRUE(held->Echo("still here", kIo));
}

TEST_F(LoadBalancerTest, SourceAddressPersistenceKeepsAClientOnOneBackend) {
  EchoBackend alpha("alpha", Real(2)), bravo("bravo", Real(3)), charlie("charlie", Real(4));
  const uint16_t port = PickPort(kVip, 2);
  const int64_t id = AddBalancer("sticky", kVip, port, {&alpha, &bravo, &charlie}, "Round Robin",
                                 "Source Address");
  ASSERT_GT(id, 0);
  auto listed = FindBalancer(id);
  ASSERT_TRUE(listed);
  EXPECT_EQ((*listed)["persistence"]["name"], "Source Address");
  ASSERT_TRUE(WaitForState(id, "On"));

  // Clients on different addresses (127.0.0.10, .11, ...) are spread over every backend, so
  // all three are up and could be picked...
  std::map<std::string, std::string> backend_of;  // client address -> backend
  std::set<std::string> used;
  std::string error;
  const bool spread = WaitFor(
      [&] {
        const std::string source = "127.0.0." + std::to_string(10 + backend_of.size() % 200);
        if (auto name = AskBackend(kVip, port, kIo, &error, source)) {
          backend_of[source] = *name;
          used.insert(*name);
        }
        return used.size() == 3 && backend_of.size() >= 6;
      },
      kWait);
  ASSERT_TRUE(spread) << used.size() << " backends used by " << backend_of.size()
                      << " clients; last error: " << error;

  // ...yet each client keeps reaching its own: 30 connections from one client, and 3 more
  // from each of the others.
  const std::string client = "127.0.0.9";
  std::map<std::string, int> counts;
  for (int i = 0; i < 30; ++i) ++counts[AskBackend(kVip, port, kIo, nullptr, client).value_or("")];
  EXPECT_EQ(counts.size(), 1u) << "one client reached several backends: " << Describe(counts);
  EXPECT_EQ(counts.count(""), 0u) << Describe(counts);
  for (const auto& [source, backend] : backend_of) {
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(AskBackend(kVip, port, kIo, nullptr, source).value_or(""), backend)
          << "client " << source;
    }
  }
}

TEST_F(LoadBalancerTest, EditChangesThePoolAndKeepsOpenConnections) {
  EchoBackend alpha("alpha", Real(2)), bravo("bravo", Real(3)), charlie("charlie", Real(4));
  const uint16_t port = PickPort(kVip, 3);
  const int64_t id = AddServingBalancer("edited", kVip, port, {&alpha, &bravo});
  ASSERT_GT(id, 0);

  // One long-lived connection on each of the two backends.
  std::map<std::string, LineConnection> held;
  for (int i = 0; i < 8 && held.size() < 2; ++i) {
    auto connection = LineConnection::Open(kVip, port, kIo);
    ASSERT_TRUE(connection);
    auto name = connection->ReadLine(kIo);
    ASSERT_TRUE(name);
    if (!held.count(*name)) held.emplace(*name, std::move(*connection));
  }
  ASSERT_EQ(held.size(), 2u);

  // Remove alpha, add charlie.
  Params edit = {{"id", std::to_string(id)}};
  for (auto& member : Members({&bravo, &charlie})) edit.push_back(std::move(member));
  auto edited = CallOk(*client_, "grid/loadbalancer/edit", edit, "POST");
  const auto& pool = edited["list"][0]["realiplist"];
  ASSERT_EQ(pool.size(), 2u) << edited.dump();
  EXPECT_EQ(pool[0]["ip"]["ip"], bravo.ip());
  EXPECT_EQ(pool[0]["port"], bravo.port());
  EXPECT_EQ(pool[1]["ip"]["ip"], charlie.ip());
  EXPECT_EQ(pool[1]["port"], charlie.port());

  // Traffic follows: after a short settling, only bravo and charlie answer.
  std::map<std::string, int> window;
  const bool settled = WaitFor(
      [&] {
        window = Spread(kVip, port, 6);
        return window.count("charlie") && !window.count("alpha") && !window.count("");
      },
      kWait);
  ASSERT_TRUE(settled) << "last window: " << Describe(window);
  EXPECT_TRUE(WaitFor([&] { return !JobPending("edited"); }, kWait));
  const auto counts = Spread(kVip, port, 30);
  EXPECT_EQ(counts.count("alpha"), 0u) << Describe(counts);
  EXPECT_EQ(counts.count(""), 0u) << Describe(counts);
  EXPECT_GT(counts.count("bravo") ? counts.at("bravo") : 0, 0) << Describe(counts);
  EXPECT_GT(counts.count("charlie") ? counts.at("charlie") : 0, 0) << Describe(counts);
  EXPECT_TRUE(WaitForState(id, "On"));

  // The connections opened before the edit still work, also the one to the removed backend.
  EXPECT_TRUE(held.at("bravo").Echo("after the edit", kIo));
  EXPECT_TRUE(held.at("alpha").Echo("after the edit", kIo)) << "removed backend's connection";

  auto got = CallOk(*client_, "grid/loadbalancer/get", {{"id", std::to_string(id)}});
  EXPECT_EQ(got["list"][0]["realiplist"], pool);
}

TEST_F(LoadBalancerTest, DeleteFreesTheVirtualIpAndStopsListening) {
  EchoBackend alpha("alpha", Real(2));
  const uint16_t port = PickPort(kVip, 4);
  const int64_t id = AddServingBalancer("doomed", kVip, port, {&alpha});
  ASSERT_GT(id, 0);
  auto free_before = FreePublicIps(*client_);
  EXPECT_EQ(std::count(free_before.begin(), free_before.end(), kVip), 0);

  auto deleted = CallOk(*client_, "grid/loadbalancer/delete", {{"id", std::to_string(id)}}, "POST");
  EXPECT_EQ(deleted["list"][0]["id"], id);
  EXPECT_EQ(deleted["list"][0]["name"], "doomed");

  EXPECT_TRUE(WaitFor([&] { return !FindBalancer(id).has_value(); }, kWait));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto free = FreePublicIps(*client_);
        return std::count(free.begin(), free.end(), kVip) == 1;
      },
      kWait))
      << kVip << " did not return to Unassigned";
  std::string error;
  const bool refused = WaitFor(
      [&] { return !LineConnection::Open(kVip, port, milliseconds(500), &error).has_value(); },
      kWait);
  EXPECT_TRUE(refused) << kVip << ":" << port << " still accepts connections";
  auto get = client_->Call("grid/loadbalancer/get", {{"id", std::to_string(id)}});
  EXPECT_EQ(get.status, 400u) << get.body;
  // The address can carry a new load balancer.
  const int64_t again = AddServingBalancer("reborn", kVip, port, {&alpha});
  EXPECT_GT(again, 0);
}

TEST_F(LoadBalancerTest, StateFollowsTheHealthOfTheRealIps) {
  EchoBackend alpha("alpha", Real(2));
  const uint16_t port = PickPort(kVip, 9);
  const int64_t id = AddBalancer("health", kVip, port, {&alpha});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForState(id, "On"));

  // Its only real IP goes down.
  alpha.Stop();
  EXPECT_TRUE(WaitForState(id, "Unavailable"));
  EXPECT_FALSE(AskBackend(kVip, port, milliseconds(500)).has_value());

  // A live one takes its place.
  EchoBackend bravo("bravo", Real(3));
  Params edit = {{"id", std::to_string(id)}};
  for (auto& member : Members({&bravo})) edit.push_back(std::move(member));
  CallOk(*client_, "grid/loadbalancer/edit", edit, "POST");
  EXPECT_TRUE(WaitForState(id, "On"));
  EXPECT_TRUE(WaitUntilAllAnswer(kVip, port, {"bravo"}));

  // An edit without real IPs (what libcloud sends when the last member is detached) empties
  // the pool.
  ASSERT_TRUE(WaitFor([&] { return !JobPending("health"); }, kWait));
  auto emptied = CallOk(*client_, "grid/loadbalancer/edit", {{"id", std::to_string(id)}}, "POST");
  EXPECT_TRUE(emptied["list"][0]["realiplist"].empty()) << emptied.dump();
  EXPECT_TRUE(WaitForState(id, "Unavailable"));
  EXPECT_FALSE(AskBackend(kVip, port, milliseconds(500)).has_value());
}

TEST_F(LoadBalancerTest, KilledHaproxyIsRestartedByGridd) {
  EchoBackend alpha("alpha", Real(2)), bravo("bravo", Real(3));
  const uint16_t port = PickPort(kVip, 5);
  const int64_t id = AddServingBalancer("phoenix", kVip, port, {&alpha, &bravo});
  ASSERT_GT(id, 0);

  // First a worker, then the master.
  auto master = HaproxyMaster();
  ASSERT_TRUE(master) << "no live haproxy named in " << (HaproxyDir() / "haproxy.pid");
  const auto workers = ChildrenOf(*master);
  if (workers.empty()) {
    std::cerr << "haproxy master " << *master
              << " has no worker processes; killing the master only\n";
  } else {
    ASSERT_TRUE(IsOurHaproxy(workers.front(), daemon_.data_dir()));
    const auto killed_at = std::chrono::steady_clock::now();
    ASSERT_EQ(kill(workers.front(), SIGKILL), 0);
    EXPECT_TRUE(WaitFor([&] { return !Alive(workers.front()); }, seconds(5)));
    EXPECT_TRUE(WaitUntilAllAnswer(kVip, port, {"alpha", "bravo"}))
        << "after killing worker " << workers.front();
    std::cout << "traffic back " << SinceMs(killed_at) << " ms after SIGKILL to worker "
              << workers.front() << " of master " << *master << std::endl;
    EXPECT_TRUE(WaitForState(id, "On"));
  }

  ASSERT_TRUE(WaitFor([&] { return (master = HaproxyMaster()).has_value(); }, kWait))
      << "no live haproxy after the worker was killed";
  const pid_t old_master = *master;
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(old_master, SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return !Alive(old_master); }, seconds(5)));
  EXPECT_TRUE(WaitUntilAllAnswer(kVip, port, {"alpha", "bravo"}))
      << "after killing master " << old_master;
  std::cout << "traffic back " << SinceMs(killed_at) << " ms after SIGKILL to master " << old_master
            << std::endl;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto now = HaproxyMaster();
        return now && *now != old_master;
      },
      kWait))
      << "haproxy.pid does not name a new master";
  EXPECT_TRUE(WaitForState(id, "On"));
  const auto counts = Spread(kVip, port, 10);
  EXPECT_EQ(counts.count(""), 0u) << Describe(counts);
}

TEST_F(LoadBalancerTest, RestartOfGriddKeepsTheBalancerServing) {
  EchoBackend alpha("alpha", Real(2)), bravo("bravo", Real(3));
  const uint16_t port = PickPort(kVip, 6);
  const int64_t id = AddServingBalancer("durable", kVip, port, {&alpha, &bravo}, "Least Connect");
  ASSERT_GT(id, 0);
  const auto before = FindBalancer(id);
  ASSERT_TRUE(before);
  const auto master = HaproxyMaster();
  EXPECT_TRUE(master) << "no live haproxy named in " << (HaproxyDir() / "haproxy.pid");

  EXPECT_EQ(daemon_.Stop(), 0);
  if (master) {
    EXPECT_TRUE(WaitFor([&] { return !IsOurHaproxy(*master, daemon_.data_dir()); }, seconds(5)))
        << "haproxy " << *master << " outlived gridd";
  }
  ASSERT_NO_THROW(daemon_.Start());
  client_ = std::make_unique<ApiClient>(daemon_.Client());

  const auto after = FindBalancer(id);
  ASSERT_TRUE(after) << "load balancer " << id << " lost over the restart";
  for (const char* field : {"name", "virtualip", "realiplist", "type", "persistence"}) {
    EXPECT_EQ((*after)[field], (*before)[field]) << field;
  }
  EXPECT_TRUE(WaitForState(id, "On"));
  EXPECT_TRUE(WaitUntilAllAnswer(kVip, port, {"alpha", "bravo"}));
  EXPECT_TRUE(HaproxyMaster().has_value());
}

// What a customer can observe of the load balancers and addresses.
struct Snapshot {
  std::string balancers;
  std::string assigned_ips;
  bool operator==(const Snapshot&) const = default;
};

struct BadCase {
  std::string label;
  std::string method;
  Params params;
  std::string message;  // substring of list[0].message
};

TEST_F(LoadBalancerTest, BadInputIsRefusedWithAClearMessageAndChangesNothing) {
  auto other = RunGridctl(daemon_.data_dir(), "account create other");
  ASSERT_EQ(other.exit_code, 0) << other.output;
  auto other_pool = RunGridctl(daemon_.data_dir(),
                               "ippool add --datacenter US-West-1 --type public --account other "
                               "127.77.2.0/28");
  ASSERT_EQ(other_pool.exit_code, 0) << other_pool.output;
  auto privates = CallOk(*client_, "grid/ip/list", {{"ip.type", "Private"}});
  ASSERT_FALSE(privates["list"].empty());
  const std::string private_ip = privates["list"][0]["ip"];

  EchoBackend alpha("alpha", Real(2));
  const uint16_t port = PickPort(kVip, 7);
  const int64_t id = AddBalancer("first", kVip, port, {&alpha});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForState(id, "On"));
  ASSERT_TRUE(WaitFor([&] { return !JobPending("first"); }, kWait));

  const std::string real_port = std::to_string(alpha.port());
  auto add = [&](std::map<std::string, std::string> change, std::set<std::string> drop = {}) {
    std::map<std::string, std::string> fields = {{"name", "second"},
                                                 {"virtualip.ip", kVip2},
                                                 {"virtualip.port", std::to_string(port)},
                                                 {"realiplist.0.ip", Real(2)},
                                                 {"realiplist.0.port", real_port}};
    for (auto& [key, value] : change) fields[key] = value;
    Params params;
    for (auto& [key, value] : fields) {
      if (!drop.count(key)) params.emplace_back(key, value);
    }
    return params;
  };
  const std::string sid = std::to_string(id);
  const std::vector<BadCase> cases = {
      {"virtual IP taken by another load balancer", "grid/loadbalancer/add",
       add({{"virtualip.ip", kVip}}), "already assigned"},
      {"virtual IP not the account's", "grid/loadbalancer/add",
       add({{"virtualip.ip", "127.99.0.2"}}), "is not one of this account's addresses"},
      {"virtual IP of another account", "grid/loadbalancer/add",
       add({{"virtualip.ip", "127.77.2.2"}}), "is not one of this account's addresses"},
      {"virtual IP private", "grid/loadbalancer/add", add({{"virtualip.ip", private_ip}}),
       "not a public address"},
      {"virtual IP outside the served networks", "grid/loadbalancer/add",
       add({{"virtualip.ip", "192.0.2.2"}}),
       "outside the networks this gridd serves load balancers on (127.0.0.0/8)"},
      {"port 0", "grid/loadbalancer/add", add({{"virtualip.port", "0"}}),
       "must be a port between 1 and 65535"},
      {"port 65536", "grid/loadbalancer/add", add({{"virtualip.port", "65536"}}),
       "must be a port between 1 and 65535"},
      {"port http", "grid/loadbalancer/add", add({{"virtualip.port", "http"}}),
       "must be a port between 1 and 65535"},
      {"real port 0", "grid/loadbalancer/add", add({{"realiplist.0.port", "0"}}),
       "realiplist.0.port"},
      {"real IP of another account", "grid/loadbalancer/add",
       add({{"realiplist.0.ip", "127.77.2.2"}}), "is not one of this account's addresses"},
      {"real IP nobody's", "grid/loadbalancer/add", add({{"realiplist.0.ip", "127.99.0.3"}}),
       "is not one of this account's addresses"},
      {"unknown type", "grid/loadbalancer/add", add({{"loadbalancer.type", "Random"}}),
       "Invalid value 'Random' for loadbalancer.type"},
      {"unknown persistence", "grid/loadbalancer/add",
       add({{"loadbalancer.persistence", "Cookie"}}),
       "Invalid value 'Cookie' for loadbalancer.persistence"},
      {"empty real IP list", "grid/loadbalancer/add",
       add({}, {"realiplist.0.ip", "realiplist.0.port"}), "Missing required parameter: realiplist"},
      {"duplicate name", "grid/loadbalancer/add", add({{"name", "first"}}), "already exists"},
      {"real IP without port", "grid/loadbalancer/add", add({}, {"realiplist.0.port"}),
       "Missing required parameter: realiplist.0.port"},
      {"missing name", "grid/loadbalancer/add", add({}, {"name"}),
       "Missing required parameter: name"},
      {"missing virtual IP", "grid/loadbalancer/add", add({}, {"virtualip.ip"}),
       "Missing required parameter: virtualip.ip"},
      {"name too long", "grid/loadbalancer/add", add({{"name", std::string(21, 'n')}}),
       "at most 20 characters"},
      {"edit unknown id",
       "grid/loadbalancer/edit",
       {{"id", "987654"}, {"realiplist.0.ip", Real(2)}, {"realiplist.0.port", real_port}},
       "No object found"},
      {"edit with another account's real IP",
       "grid/loadbalancer/edit",
       {{"id", sid}, {"realiplist.0.ip", "127.77.2.3"}, {"realiplist.0.port", real_port}},
       "is not one of this account's addresses"},
      {"edit with a real IP without port",
       "grid/loadbalancer/edit",
       {{"id", sid}, {"realiplist.0.ip", Real(2)}},
       "Missing required parameter: realiplist.0.port"},
      {"real IP is its own virtual IP and port", "grid/loadbalancer/add",
       add({{"realiplist.0.ip", kVip2}, {"realiplist.0.port", std::to_string(port)}}),
       "is a load balancer's virtual IP and port"},
      {"real IP is another balancer's virtual IP and port", "grid/loadbalancer/add",
       add({{"realiplist.0.ip", kVip}, {"realiplist.0.port", std::to_string(port)}}),
       "is a load balancer's virtual IP and port"},
      {"edit pointing the balancer at itself",
       "grid/loadbalancer/edit",
       {{"id", sid}, {"realiplist.0.ip", kVip}, {"realiplist.0.port", std::to_string(port)}},
       "is a load balancer's virtual IP and port"},
      {"delete unknown id", "grid/loadbalancer/delete", {{"id", "987654"}}, "No object found"},
      {"get unknown name", "grid/loadbalancer/get", {{"name", "nobody"}}, "No object found"},
  };

  auto take = [&] {
    Snapshot snapshot;
    auto balancers = CallOk(*client_, "grid/loadbalancer/list")["list"];
    for (auto& balancer : balancers) balancer.erase("state");  // health may move on
    snapshot.balancers = balancers.dump();
    snapshot.assigned_ips =
        CallOk(*client_, "grid/ip/list", {{"ip.state", "Assigned"}})["list"].dump();
    return snapshot;
  };
  const Snapshot before = take();
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.label);
    auto reply = client_->Call(bad.method, bad.params, "POST");
    EXPECT_EQ(reply.status, 400u) << reply.body;
    ASSERT_FALSE(reply.body.empty());
    auto body = reply.json();
    EXPECT_EQ(body["status"], "failure");
    ASSERT_EQ(body["list"].size(), 1u) << reply.body;
    EXPECT_EQ(body["list"][0]["errorcode"], "IllegalArgumentException");
    EXPECT_NE(body["list"][0]["message"].get<std::string>().find(bad.message), std::string::npos)
        << "message was: " << body["list"][0]["message"];
    EXPECT_EQ(take(), before) << "a refused request changed the account";
    EXPECT_FALSE(JobPending("first")) << "a refused request queued a job";
  }
  EXPECT_TRUE(PortIsFree(kVip2, port)) << "nothing may listen on the refused virtual IP";
  EXPECT_TRUE(WaitUntilAllAnswer(kVip, port, {"alpha"}));
}

TEST_F(LoadBalancerTest, AnAddOnAPortInUseFailsItsJobAndDisturbsNoOne) {
  EchoBackend alpha("alpha", Real(2));
  const uint16_t port = PickPort(kVip, 9);
  const int64_t first = AddServingBalancer("first", kVip, port, {&alpha});
  ASSERT_GT(first, 0);

  // Another program holds the second virtual IP's port.
  const uint16_t taken = PickPort(kVip2, 11);
  const int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(taken);
  inet_pton(AF_INET, kVip2.c_str(), &address.sin_addr);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(holder, 4), 0);

  const int64_t second = AddBalancer("second", kVip2, taken, {&alpha});
  ASSERT_GT(second, 0);
  // Until its job has failed, the first balancer keeps answering every connection.
  int failures = 0;
  const bool gone = WaitFor(
      [&] {
        if (!AskBackend(kVip, port, kIo).has_value()) ++failures;
        auto list = CallOk(*client_, "grid/loadbalancer/list");
        for (const auto& balancer : list["list"]) {
          if (balancer["id"] == second) return false;
        }
        return true;
      },
      kWait);
  close(holder);
  EXPECT_TRUE(gone) << "the failed balancer must be taken back";
  EXPECT_EQ(failures, 0) << "the first balancer stopped answering while the second was refused";
  auto jobs = CallOk(*client_, "grid/job/list", {{"object", "second"}});
  ASSERT_FALSE(jobs["list"].empty());
  EXPECT_EQ(jobs["list"][0]["currentstate"]["name"], "Failed");
  auto history = jobs["list"][0]["history"];
  EXPECT_NE(history.back()["note"].get<std::string>().find("cannot be used on this host"),
            std::string::npos)
      << history.dump();
  auto free_ips = CallOk(*client_, "grid/ip/list", {{"ip.state", "Unassigned"}});
  bool vip_free = false;
  for (const auto& ip : free_ips["list"]) vip_free |= ip["ip"] == kVip2;
  EXPECT_TRUE(vip_free) << "the refused balancer's virtual IP must be free again";
}

TEST_F(LoadBalancerTest, AChangeWhileAnotherIsPendingIsRefused) {
  EchoBackend alpha("alpha", Real(2)), bravo("bravo", Real(3));
  const uint16_t port = PickPort(kVip, 8);
  const int64_t id = AddBalancer("busy", kVip, port, {&alpha});
  ASSERT_GT(id, 0);
  ASSERT_TRUE(WaitForState(id, "On"));
  const std::string sid = std::to_string(id);
  auto edit = [&](const std::vector<const EchoBackend*>& pool) {
    Params params = {{"id", sid}};
    for (auto& member : Members(pool)) params.push_back(std::move(member));
    return client_->Call("grid/loadbalancer/edit", params, "POST");
  };
  auto message = [](const ApiClient::Reply& reply) {
    return reply.json()["list"][0].value("message", std::string());
  };

  // An edit right after an edit: the first job may already be done, so try a few times.
  int edit_refusals = 0;
  for (int attempt = 0; attempt < 8 && edit_refusals == 0; ++attempt) {
    ASSERT_TRUE(WaitFor([&] { return !JobPending("busy"); }, kWait));
    auto first = edit(attempt % 2 ? std::vector<const EchoBackend*>{&alpha}
                                  : std::vector<const EchoBackend*>{&alpha, &bravo});
    ASSERT_EQ(first.status, 200u) << first.body;
    auto second = edit({&bravo});
    if (second.status == 400) {
      ++edit_refusals;
      EXPECT_NE(message(second).find("Update already pending"), std::string::npos) << second.body;
      EXPECT_EQ(second.json()["list"][0]["errorcode"], "IllegalArgumentException");
    } else {
      EXPECT_EQ(second.status, 200u) << second.body;
    }
  }
  EXPECT_GT(edit_refusals, 0) << "never caught an edit while another was pending";
  std::cout << "edits refused while pending: " << edit_refusals << std::endl;

  // A delete right after an edit.
  int delete_refusals = 0;
  bool deleted = false;
  for (int attempt = 0; attempt < 8 && delete_refusals == 0 && !deleted; ++attempt) {
    ASSERT_TRUE(WaitFor([&] { return !JobPending("busy"); }, kWait));
    auto first = edit(attempt % 2 ? std::vector<const EchoBackend*>{&alpha}
                                  : std::vector<const EchoBackend*>{&bravo});
    ASSERT_EQ(first.status, 200u) << first.body;
    auto second = client_->Call("grid/loadbalancer/delete", {{"id", sid}}, "POST");
    if (second.status == 400) {
      ++delete_refusals;
      EXPECT_NE(message(second).find("Update request for LoadBalancer"), std::string::npos)
          << second.body;
    } else {
      EXPECT_EQ(second.status, 200u) << second.body;
      deleted = true;
    }
  }
  std::cout << "deletes refused while pending: " << delete_refusals
            << (deleted ? " (then one was accepted)" : "") << std::endl;
  if (!deleted) {
    EXPECT_GT(delete_refusals, 0);
    // Refused changes left the balancer as the last accepted edit made it, and serving.
    ASSERT_TRUE(WaitFor([&] { return !JobPending("busy"); }, kWait));
    EXPECT_TRUE(WaitForState(id, "On"));
    EXPECT_TRUE(AskBackend(kVip, port, kIo).has_value());
  }
}

// ------------------------------------------------------------------------------ metering

// A backend that answers a client's first byte with `bytes` bytes of data, then closes; health
// checks (which send nothing) get nothing.
class DataSource {
 public:
  DataSource(const std::string& ip, uint64_t bytes) : bytes_(bytes) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = tcp_detail::MakeAddress(ip, 0);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(listen_fd_, 64) != 0) {
      throw std::runtime_error("cannot listen on " + ip + ": " + std::strerror(errno));
    }
    socklen_t length = sizeof(address);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] {
      while (true) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          return;  // the listener was shut down
        }
        servers_.emplace_back([this, fd] { Serve(fd); });
      }
    });
  }
  ~DataSource() {
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& server : servers_) server.join();
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  void Serve(int fd) {
    timeval timeout{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    char request = 0;
    if (recv(fd, &request, 1, 0) == 1) {
      const std::string chunk(1 << 20, 'x');
      for (uint64_t sent = 0; sent < bytes_;) {
        const size_t size = static_cast<size_t>(std::min<uint64_t>(chunk.size(), bytes_ - sent));
        const ssize_t n = send(fd, chunk.data(), size, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<uint64_t>(n);
      }
    }
    close(fd);
  }

  uint64_t bytes_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> servers_;  // touched by the acceptor only until it has joined
};

TEST_F(LoadBalancerTest, TrafficThroughABalancerIsBilledAsTransfer) {
  constexpr uint64_t kBytes = (1ull << 30) + (64ull << 20);  // just over one GB out
  DataSource source(Real(2), kBytes);
  const uint16_t port = PickPort(kVip, 7);
  auto added = client_->Call("grid/loadbalancer/add",
                             {{"name", "metered"},
                              {"virtualip.ip", kVip},
                              {"virtualip.port", std::to_string(port)},
                              {"realiplist.0.ip", Real(2)},
                              {"realiplist.0.port", std::to_string(source.port())}});
  ASSERT_EQ(added.status, 200u) << added.body;
  const int64_t id = added.json()["list"][0]["id"];
  ASSERT_TRUE(WaitForState(id, "On"));
  EXPECT_EQ(CallOk(*client_, "myaccount/billing/get")["list"][0]["transferAccrued"], 0);

  uint64_t received = 0;
  {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    const sockaddr_in address = tcp_detail::MakeAddress(kVip, port);
    ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0)
        << std::strerror(errno);
    ASSERT_EQ(send(fd, "g", 1, MSG_NOSIGNAL), 1);
    std::vector<char> buffer(1 << 20);
    while (received < kBytes) {
      const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0) break;
      received += static_cast<uint64_t>(n);
    }
    close(fd);
  }
  ASSERT_EQ(received, kBytes);

  // The monitor reads HAProxy's counters every second and records their growth.
  nlohmann::json bill;
  EXPECT_TRUE(WaitFor(
      [&] {
        bill = CallOk(*client_, "myaccount/billing/get")["list"][0];
        return bill["transferAccrued"] == 1;
      },
      kWait))
      << bill.dump();
  EXPECT_EQ(bill["transferOverage"], 1) << "no allotment in the shipped configuration";
}

}  // namespace
}  // namespace gridd::testing
