// The HAProxy engine against the real haproxy binary, carrying traffic between loopback
// clients and loopback backends.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <set>

#include "gridd/lb/engine.h"
#include "lb/haproxy_cli.h"
#include "lb_test_util.h"
#include "support/test_paths.h"

namespace gridd::lb {
namespace {

using std::chrono::milliseconds;
using testing::Client;
using testing::FetchName;
using testing::FreePort;
using testing::LoopbackAddress;
using testing::Refused;
using testing::TcpBackend;
using testing::WaitUntil;

constexpr const char* kHaproxy = "/usr/sbin/haproxy";

class HaproxyEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kHaproxy)) GTEST_SKIP() << "no " << kHaproxy;
    run_dir_ = gridd::testing::MakeTempDir("gridd-lb");
    options_.binary = kHaproxy;
    options_.run_dir = run_dir_;
    options_.supervise_interval = milliseconds(100);
    options_.health_check_interval_ms = 200;
    engine_ = MakeHaproxyEngine(options_);
    vip_ = LoopbackAddress(2);
    port_ = FreePort(vip_);
  }

  void TearDown() override {
    engine_.reset();
    if (!run_dir_.empty()) std::filesystem::remove_all(run_dir_);
  }

  // Three greeting backends a, b, c on .11, .12, .13.
  void StartBackends(int count = 3) {
    for (int i = 0; i < count; ++i) {
      backends_.push_back(std::make_unique<TcpBackend>(std::string(1, static_cast<char>('a' + i)),
                                                       LoopbackAddress(11 + i)));
    }
  }

  BalancerSpec Balancer(int64_t id, std::vector<int> members,
                        Algorithm algorithm = Algorithm::kRoundRobin,
                        Persistence persistence = Persistence::kNone) {
    BalancerSpec spec{.id = id,
                      .vip = vip_,
                      .port = port_,
                      .algorithm = algorithm,
                      .persistence = persistence,
                      .backends = {}};
    for (int member : members) {
      spec.backends.push_back({backends_[member]->ip(), backends_[member]->port()});
    }
    return spec;
  }

  ProcessTable ShowProc() {
    return ParseShowProc(CliCommand(run_dir_ / "master.sock", "show proc", milliseconds(2000)));
  }

  // Current sessions of each server of backend be_<id>, by server name (m1, m2, ...).
  std::map<std::string, uint64_t> ServerSessions(int64_t id) {
    std::map<std::string, uint64_t> out;
    const auto rows =
        ParseShowStat(CliCommand(run_dir_ / "stats.sock", "show stat", milliseconds(2000)));
    for (const auto& row : rows) {
      if (row.proxy == "be_" + std::to_string(id) && row.server != "BACKEND") {
        out[row.server] = row.current_sessions;
      }
    }
    return out;
  }

  pid_t PidFromFile() {
    std::ifstream in(run_dir_ / "haproxy.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }

  std::string ConfigOnDisk() {
    std::ifstream in(run_dir_ / "haproxy.cfg");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // The balancer answers with some backend's name.
  bool Serves() { return FetchName(vip_, port_).has_value(); }

  std::filesystem::path run_dir_;
  HaproxyOptions options_;
  std::unique_ptr<LoadBalancerEngine> engine_;
  std::vector<std::unique_ptr<TcpBackend>> backends_;
  std::string vip_;
  uint16_t port_ = 0;
};

TEST_F(HaproxyEngineTest, RunsWithNoBalancersAndStopsIdempotently) {
  engine_->Start();
  EXPECT_TRUE(engine_->running());
  EXPECT_TRUE(engine_->Status().empty());
  const pid_t master = PidFromFile();
  engine_->Stop();
  EXPECT_FALSE(engine_->running());
  EXPECT_EQ(kill(master, 0), -1) << "master still runs after Stop";
  engine_->Stop();
}

TEST_F(HaproxyEngineTest, RoundRobinSpreadsConnectionsEvenly) {
  StartBackends();
  engine_->Start();
  engine_->Apply({Balancer(1, {0, 1, 2})});
  std::map<std::string, int> hits;
  for (int i = 0; i < 90; ++i) {
    const auto name = FetchName(vip_, port_);
    ASSERT_TRUE(name) << "connection " << i;
    ++hits[*name];
  }
  ASSERT_EQ(hits.size(), 3u);
  for (const auto& [name, count] : hits) EXPECT_NEAR(count, 30, 3) << name;

  const auto status = engine_->Status();
  ASSERT_EQ(status.count(1), 1u);
  EXPECT_EQ(status.at(1).health, BalancerHealth::kUp);
  EXPECT_EQ(status.at(1).backends_up, 3);
  EXPECT_EQ(status.at(1).backends_total, 3);
  EXPECT_GT(status.at(1).bytes_out, 0u);
}

TEST_F(HaproxyEngineTest, LeastConnectionsAvoidsTheBusyBackend) {
  StartBackends(2);
  engine_->Start();
  engine_->Apply({Balancer(1, {0, 1}, Algorithm::kLeastConnections)});
  Client held(vip_, port_);
  ASSERT_TRUE(held.connected());
  const auto busy = held.ReadLine();
  ASSERT_TRUE(busy);
  const std::string busy_server = *busy == "a" ? "m1" : "m2";
  const std::string idle_server = *busy == "a" ? "m2" : "m1";
  for (int i = 0; i < 10; ++i) {
    // haproxy releases a closed connection a moment after the client sees the close; balance
    // the next one only once it counts 1 against 0, or the tie may go either way.
    ASSERT_TRUE(WaitUntil([&] {
      const auto sessions = ServerSessions(1);
      return sessions.at(busy_server) == 1 && sessions.at(idle_server) == 0;
    }));
    const auto name = FetchName(vip_, port_);
    ASSERT_TRUE(name);
    EXPECT_NE(*name, *busy) << "connection " << i << " went to the busy backend";
  }
  EXPECT_EQ(held.Echo("still there"), "still there");
}

TEST_F(HaproxyEngineTest, SourceAddressPersistenceKeepsAClientOnOneBackend) {
  StartBackends();
  engine_->Start();
  engine_->Apply({Balancer(1, {0, 1, 2}, Algorithm::kRoundRobin, Persistence::kSourceAddress)});
  std::set<std::string> all;
  for (int client = 101; client <= 103; ++client) {
    std::set<std::string> seen;
    for (int i = 0; i < 10; ++i) {
      const auto name = FetchName(vip_, port_, LoopbackAddress(client));
      ASSERT_TRUE(name);
      seen.insert(*name);
    }
    EXPECT_EQ(seen.size(), 1u) << "client " << LoopbackAddress(client);
    all.insert(seen.begin(), seen.end());
  }
  // Round robin places new clients: three clients, three backends.
  EXPECT_EQ(all.size(), 3u);
}

TEST_F(HaproxyEngineTest, RejectedConfigurationLeavesThePreviousOneServing) {
  StartBackends(1);
  engine_->Start();
  engine_->Apply({Balancer(1, {0})});
  const std::string installed = ConfigOnDisk();
  const int reloads = ShowProc().reloads;

  BalancerSpec bad = Balancer(1, {0});
  bad.backends.push_back({LoopbackAddress(14), 0});  // haproxy: no port to connect or check
  try {
    engine_->Apply({bad});
    FAIL() << "haproxy accepted a server without a port";
  } catch (const EngineError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("haproxy rejected the configuration"), std::string::npos) << message;
    EXPECT_NE(message.find("neither service port nor check port"), std::string::npos) << message;
  }
  EXPECT_EQ(ConfigOnDisk(), installed);
  EXPECT_FALSE(std::filesystem::exists(run_dir_ / "haproxy.cfg.new"));
  EXPECT_EQ(ShowProc().reloads, reloads);
  EXPECT_EQ(FetchName(vip_, port_), "a");
}

// `haproxy -c` does not bind, so a VIP that is taken would pass validation and fail the
// reload, pausing every balancer while HAProxy retries; the engine refuses it before reloading.
TEST_F(HaproxyEngineTest, AVirtualIpThatCannotBeBoundIsRefusedBeforeAnyReload) {
  StartBackends(1);
  engine_->Start();
  const BalancerSpec good = Balancer(1, {0});
  engine_->Apply({good});
  const std::string installed = ConfigOnDisk();

  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor squatter(
      io, {boost::asio::ip::make_address(LoopbackAddress(3)), 0});  // no SO_REUSEPORT
  BalancerSpec blocked = Balancer(2, {0});
  blocked.vip = LoopbackAddress(3);
  blocked.port = squatter.local_endpoint().port();
  const int reloads = ShowProc().reloads;
  try {
    engine_->Apply({good, blocked});
    FAIL() << "a VIP held by another socket was accepted";
  } catch (const EngineError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("cannot be used on this host: Address already in use"),
              std::string::npos)
        << message;
  }
  EXPECT_EQ(ShowProc().reloads, reloads) << "a refused configuration must not reload HAProxy";
  EXPECT_EQ(ConfigOnDisk(), installed);
  EXPECT_TRUE(engine_->running());
  EXPECT_EQ(FetchName(vip_, port_), "a");
  EXPECT_EQ(engine_->Status().count(2), 0u);

  // Once the address is free the same set goes in.
  squatter.close();
  engine_->Apply({good, blocked});
  EXPECT_EQ(FetchName(blocked.vip, blocked.port), "a");
}

TEST_F(HaproxyEngineTest, ApplyingTheSameSetTwiceReloadsOnce) {
  StartBackends(2);
  engine_->Start();
  const int start = ShowProc().reloads;
  engine_->Apply({Balancer(1, {0, 1})});
  EXPECT_EQ(ShowProc().reloads, start + 1);
  engine_->Apply({Balancer(1, {0, 1})});
  EXPECT_EQ(ShowProc().reloads, start + 1);
}

TEST_F(HaproxyEngineTest, EditKeepsEstablishedConnectionsThroughTheOldWorker) {
  StartBackends();
  engine_->Start();
  engine_->Apply({Balancer(1, {0, 1})});
  Client held(vip_, port_);
  ASSERT_TRUE(held.connected());
  const auto first = held.ReadLine();
  ASSERT_TRUE(first);
  const int kept = *first == "a" ? 1 : 0;  // the backend the held connection did not use

  engine_->Apply({Balancer(1, {kept, 2})});
  EXPECT_EQ(ShowProc().old_workers.size(), 1u) << "the old worker should drain, not die";
  EXPECT_EQ(held.Echo("after reload"), "after reload");
  for (int i = 0; i < 6; ++i) {
    const auto name = FetchName(vip_, port_);
    ASSERT_TRUE(name);
    EXPECT_NE(*name, *first) << "a removed backend still gets new connections";
  }
  EXPECT_EQ(held.Echo("still"), "still");
}

TEST_F(HaproxyEngineTest, RemovingABalancerClosesItsPort) {
  StartBackends(1);
  engine_->Start();
  engine_->Apply({Balancer(1, {0})});
  ASSERT_TRUE(Serves());
  engine_->Apply({});
  EXPECT_TRUE(WaitUntil([&] { return Refused(vip_, port_); }, milliseconds(2000)));
  EXPECT_TRUE(engine_->Status().empty());
}

TEST_F(HaproxyEngineTest, ZeroBackendsAcceptsButDeliversNothing) {
  engine_->Start();
  engine_->Apply({BalancerSpec{.id = 5, .vip = vip_, .port = port_, .backends = {}}});
  Client client(vip_, port_);
  EXPECT_TRUE(client.connected());
  EXPECT_FALSE(client.ReadLine());
  EXPECT_EQ(engine_->Status().at(5).health, BalancerHealth::kNoBackends);
}

TEST_F(HaproxyEngineTest, StatusFollowsBackendHealthAndEngineState) {
  StartBackends(1);
  engine_->Start();
  BalancerSpec mixed = Balancer(1, {0});
  mixed.backends.push_back({LoopbackAddress(20), FreePort(LoopbackAddress(20))});  // nobody
  BalancerSpec dead{.id = 2, .vip = vip_, .port = FreePort(vip_), .backends = {}};
  dead.backends.push_back({LoopbackAddress(21), FreePort(LoopbackAddress(21))});
  engine_->Apply({mixed, dead});

  EXPECT_TRUE(WaitUntil([&] {
    const auto status = engine_->Status();
    return status.at(1).backends_up == 1 && status.at(2).backends_up == 0;
  }));
  auto status = engine_->Status();
  EXPECT_EQ(status.at(1).health, BalancerHealth::kUp);
  EXPECT_EQ(status.at(1).backends_total, 2);
  EXPECT_EQ(status.at(2).health, BalancerHealth::kNoBackends);
  EXPECT_EQ(status.at(2).backends_total, 1);

  engine_->Stop();
  status = engine_->Status();
  EXPECT_EQ(status.at(1).health, BalancerHealth::kEngineDown);
  EXPECT_EQ(status.at(2).health, BalancerHealth::kEngineDown);
}

TEST_F(HaproxyEngineTest, KilledMasterIsRestartedAndTrafficResumes) {
  StartBackends(1);
  engine_->Start();
  engine_->Apply({Balancer(1, {0})});
  const pid_t master = PidFromFile();
  ASSERT_GT(master, 1);
  ASSERT_EQ(kill(master, SIGKILL), 0);
  EXPECT_TRUE(WaitUntil([&] { return PidFromFile() != master && engine_->running(); }));
  EXPECT_TRUE(WaitUntil([&] { return Serves(); }));
  EXPECT_EQ(FetchName(vip_, port_), "a");
}

TEST_F(HaproxyEngineTest, KilledWorkerIsReplacedAndTrafficResumes) {
  StartBackends(1);
  engine_->Start();
  engine_->Apply({Balancer(1, {0})});
  const auto before = ShowProc();
  ASSERT_EQ(before.workers.size(), 1u);
  ASSERT_EQ(kill(before.workers.front(), SIGKILL), 0);
  EXPECT_TRUE(WaitUntil([&] {
    try {
      const auto now = ShowProc();
      return !now.workers.empty() && now.workers.front() != before.workers.front();
    } catch (const EngineError&) {
      return false;
    }
  }));
  EXPECT_TRUE(WaitUntil([&] { return Serves(); }));
  EXPECT_TRUE(engine_->running());
  EXPECT_EQ(FetchName(vip_, port_), "a");
}

TEST_F(HaproxyEngineTest, SetAppliedBeforeStartRunsAtStart) {
  StartBackends(1);
  engine_->Apply({Balancer(1, {0})});
  EXPECT_FALSE(engine_->running());
  EXPECT_EQ(engine_->Status().at(1).health, BalancerHealth::kEngineDown);
  engine_->Start();
  EXPECT_EQ(FetchName(vip_, port_), "a");
}

TEST_F(HaproxyEngineTest, RestartContinuesWithTheInstalledConfiguration) {
  StartBackends(1);
  engine_->Start();
  engine_->Apply({Balancer(1, {0})});
  engine_.reset();  // stops haproxy
  EXPECT_TRUE(WaitUntil([&] { return Refused(vip_, port_); }));
  engine_ = MakeHaproxyEngine(options_);
  engine_->Start();
  EXPECT_EQ(FetchName(vip_, port_), "a");
}

// A stored set that cannot run any more (its VIP is taken) must not keep the engine down.
TEST_F(HaproxyEngineTest, StartFallsBackToAnEmptyConfigurationWhenTheStoredOneCannotRun) {
  StartBackends(1);
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor squatter(io, {boost::asio::ip::make_address(vip_), port_});
  engine_->Apply({Balancer(1, {0})});  // valid, so installed; binding fails only at start
  engine_->Start();
  EXPECT_TRUE(engine_->running());
  EXPECT_TRUE(engine_->Status().empty());
  squatter.close();
  engine_->Apply({Balancer(1, {0})});
  EXPECT_EQ(FetchName(vip_, port_), "a");
}

TEST(HaproxyEngineStartTest, MissingBinaryIsAnEngineError) {
  const auto dir = gridd::testing::MakeTempDir("gridd-lb-missing");
  HaproxyOptions options;
  options.binary = (dir / "no-haproxy").string();
  options.run_dir = dir / "run";
  auto engine = MakeHaproxyEngine(options);
  try {
    engine->Start();
    FAIL() << "started without a binary";
  } catch (const EngineError& error) {
    EXPECT_NE(std::string(error.what()).find("no-haproxy"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(engine->running());
  engine->Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gridd::lb
