// HostConnection and domain moves against real libvirt daemons: each test starts its own
// libvirtd on 127.0.0.1 serving the test driver, and kills, stops or restarts it to play a
// host that fails.
#include "gridd/virt/host_connection.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "support/command.h"
#include "support/libvirtd_process.h"
#include "support/test_paths.h"
#include "test_servers.h"
#include "virt/host_connection_core.h"
#include "virt/libvirt_handles.h"

namespace gridd::virt {
namespace {

using namespace std::chrono_literals;
using gridd::testing::LibvirtdProcess;
using testing::CreateTestServer;
using testing::kImage;
using testing::kPool;
using testing::kPublicNet;
using testing::TestServerSpec;

// Generous bounds for waiting on a state (not assertions on how fast it comes).
constexpr auto kStateWait = 30s;

std::filesystem::path NodeFile() {
  return gridd::testing::SourceDir() / "config" / "test-node.xml";
}

// Short timings so that a host failure is seen in seconds.
HostConnectionOptions FastOptions(const std::string& name, const std::string& uri) {
  HostConnectionOptions options;
  options.host_name = name;
  options.uri = uri;
  options.down_after = 1500ms;
  options.probe_interval = 200ms;
  options.keepalive_interval_seconds = 1;
  options.keepalive_count = 1;
  options.reconnect_initial = 100ms;
  options.reconnect_max = 500ms;
  return options;
}

// Records what listeners report, and waits for a wanted report.
template <typename T>
class Recorder {
 public:
  void Add(T value) {
    std::lock_guard lock(mu_);
    values_.push_back(std::move(value));
    changed_.notify_all();
  }
  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, kStateWait, [&] {
      for (const T& value : values_) {
        if (pred(value)) return true;
      }
      return false;
    });
  }
  bool WaitForCount(size_t count) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, kStateWait, [&] { return values_.size() >= count; });
  }
  std::vector<T> values() {
    std::lock_guard lock(mu_);
    return values_;
  }
  void Clear() {
    std::lock_guard lock(mu_);
    values_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<T> values_;
};

// libvirt writes to sockets whose peer may be gone; like gridd, the test process must ignore
// SIGPIPE or a killed libvirtd kills it.
const bool kSigpipeIgnored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

// Figures for the reader (down_after is 1.5 s here); nothing asserts on them.
void PrintFigure(const char* what, std::chrono::steady_clock::duration elapsed) {
  std::printf("[ figure   ] %s %.6f s (down_after 1.5 s)\n", what,
              std::chrono::duration<double>(elapsed).count());
}

bool WaitForState(HostConnection& host, HostState wanted) {
  const auto deadline = std::chrono::steady_clock::now() + kStateWait;
  while (host.state() != wanted) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// The error a call throws, or a test failure when it succeeds.
template <typename Fn>
HypervisorError ErrorOf(Fn&& fn) {
  try {
    fn();
  } catch (const HypervisorError& error) {
    return error;
  }
  ADD_FAILURE() << "expected HypervisorError";
  return HypervisorError(HypervisorErrorKind::kInternal, "no error");
}

std::string DomainUuid(HostConnection& host, const std::string& name) {
  auto conn = host.core().Acquire();
  DomainHandle domain(virDomainLookupByName(conn.get(), name.c_str()));
  if (!domain) return "";
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  virDomainGetUUIDString(domain.get(), uuid);
  return uuid;
}

class HostConnectionTest : public ::testing::Test {
 protected:
  // Declared first, destroyed last: a connection goes before its libvirtd.
  LibvirtdProcess libvirtd_;
};

TEST_F(HostConnectionTest, CallsGoThroughTheHostsLibvirtd) {
  HostConnection host(FastOptions("hv-a1", libvirtd_.TestUri(NodeFile())));
  EXPECT_EQ(host.state(), HostState::kUp);
  EXPECT_EQ(host.host_name(), "hv-a1");
  EXPECT_TRUE(host.volatile_state());  // the test driver forgets everything when it restarts
  const HostCapacity capacity = host.Capacity();
  EXPECT_EQ(capacity.memory_mib, 65536u);
  EXPECT_EQ(capacity.cpus, 16u);
  CreateTestServer(host, 1);
  host.Start("gridd-1");
  EXPECT_EQ(host.State("gridd-1"), PowerState::kRunning);
  const auto domains = host.ListGriddDomains();
  ASSERT_EQ(domains.size(), 1u);
  EXPECT_EQ(domains[0].server_id, 1);
}

TEST_F(HostConnectionTest, KilledHostGoesDownFailsFastAndComesBackWithEvents) {
  HostConnection host(FastOptions("hv-a1", libvirtd_.TestUri(NodeFile())));
  Recorder<HostState> states;
  host.OnHostStateChange([&](HostState state) { states.Add(state); });
  Recorder<std::pair<std::string, PowerState>> events;
  host.WatchStates([&](const std::string& name, PowerState state) { events.Add({name, state}); });
  ASSERT_EQ(states.values(), std::vector<HostState>{HostState::kUp});

  const auto killed = std::chrono::steady_clock::now();
  libvirtd_.Kill();
  ASSERT_TRUE(states.WaitFor([](HostState s) { return s == HostState::kDown; }));
  PrintFigure("killed libvirtd: Down after", std::chrono::steady_clock::now() - killed);
  EXPECT_EQ(host.state(), HostState::kDown);
  const auto call = std::chrono::steady_clock::now();
  const HypervisorError error = ErrorOf([&] { host.State("gridd-1"); });
  PrintFigure("call to the Down host failed after", std::chrono::steady_clock::now() - call);
  EXPECT_EQ(error.kind(), HypervisorErrorKind::kTransient);
  EXPECT_NE(std::string(error.what()).find("host hv-a1"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("Down"), std::string::npos) << error.what();

  libvirtd_.Start();
  ASSERT_TRUE(states.WaitForCount(3));
  EXPECT_EQ(states.values(),
            (std::vector<HostState>{HostState::kUp, HostState::kDown, HostState::kUp}));
  // The lifecycle listener was registered on the new connection.
  CreateTestServer(host, 2);
  host.Start("gridd-2");
  EXPECT_TRUE(events.WaitFor([](const auto& event) {
    return event.first == "gridd-2" && event.second == PowerState::kRunning;
  }));
}

// libvirtd keeps test:///default while any connection to it is open (a node file instead gives
// every connection fresh state of its own). Holding one open keeps the node's domains across
// a HostConnection's reconnects, as a real host keeps them.
class SharedTestNode {
 public:
  explicit SharedTestNode(const LibvirtdProcess& libvirtd)
      : uri_("test+tcp://127.0.0.1:" + std::to_string(libvirtd.port()) + "/default"),
        anchor_(virConnectOpen(uri_.c_str())) {
    if (anchor_ == nullptr) throw std::runtime_error(TakeLastError().message);
    PoolHandle pool(virStoragePoolCreateXML(
        anchor_,
        "<pool type='dir'><name>gridd</name><target><path>/gridd-pool</path></target></pool>", 0));
    if (!pool) throw std::runtime_error(TakeLastError().message);
  }
  ~SharedTestNode() { virConnectClose(anchor_); }
  SharedTestNode(const SharedTestNode&) = delete;
  SharedTestNode& operator=(const SharedTestNode&) = delete;

  const std::string& uri() const { return uri_; }
  // A server's domain with an empty disk and no NIC.
  DomainSpec AddServer(Hypervisor& host, int64_t id) {
    DomainSpec spec = TestServerSpec(id);
    spec.network.clear();
    PoolHandle pool(virStoragePoolLookupByName(anchor_, kPool));
    const std::string xml = "<volume><name>" + spec.disk_volume +
                            "</name><capacity unit='GiB'>1</capacity><target><format "
                            "type='qcow2'/></target></volume>";
    VolumeHandle volume(virStorageVolCreateXML(pool.get(), xml.c_str(), 0));
    if (!volume) throw std::runtime_error(TakeLastError().message);
    host.DefineDomain(spec);
    return spec;
  }

 private:
  std::string uri_;
  virConnectPtr anchor_;
};

TEST_F(HostConnectionTest, HungHostGoesDownAndItsDomainsAreThereWhenItAnswersAgain) {
  SharedTestNode node(libvirtd_);
  HostConnection host(FastOptions("hv-b2", node.uri()));
  node.AddServer(host, 7);
  host.Start("gridd-7");

  const auto paused = std::chrono::steady_clock::now();
  libvirtd_.Pause();  // the process is there but answers nothing
  ASSERT_TRUE(WaitForState(host, HostState::kDown));
  PrintFigure("hung libvirtd: Down after", std::chrono::steady_clock::now() - paused);
  const HypervisorError error = ErrorOf([&] { host.Start("gridd-7"); });
  EXPECT_EQ(error.kind(), HypervisorErrorKind::kTransient);
  EXPECT_NE(std::string(error.what()).find("host hv-b2"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("Down"), std::string::npos) << error.what();

  const auto resumed = std::chrono::steady_clock::now();
  libvirtd_.Resume();
  ASSERT_TRUE(WaitForState(host, HostState::kUp));
  PrintFigure("hung libvirtd resumed: Up after", std::chrono::steady_clock::now() - resumed);
  // What gridd made before the hang is there to reconcile with.
  const auto domains = host.ListGriddDomains();
  ASSERT_EQ(domains.size(), 1u);
  EXPECT_EQ(domains[0].name, "gridd-7");
  EXPECT_EQ(domains[0].state, PowerState::kRunning);
}

TEST_F(HostConnectionTest, HostUnreachableAtStartIsDownThenConnectsWhenItAppears) {
  const std::string uri = libvirtd_.TestUri(NodeFile());
  libvirtd_.Kill();
  HostConnection host(FastOptions("hv-late", uri));
  EXPECT_EQ(host.state(), HostState::kDown);
  const HypervisorError error = ErrorOf([&] { host.Capacity(); });
  EXPECT_EQ(error.kind(), HypervisorErrorKind::kTransient);
  EXPECT_NE(std::string(error.what()).find("host hv-late"), std::string::npos) << error.what();
  EXPECT_NE(std::string(error.what()).find("never answered"), std::string::npos) << error.what();

  // Watching states while the host is Down: registered once it connects.
  Recorder<std::pair<std::string, PowerState>> events;
  host.WatchStates([&](const std::string& name, PowerState state) { events.Add({name, state}); });

  libvirtd_.Start();
  ASSERT_TRUE(WaitForState(host, HostState::kUp));
  EXPECT_EQ(host.Capacity().cpus, 16u);
  CreateTestServer(host, 4);
  host.Start("gridd-4");
  EXPECT_TRUE(events.WaitFor([](const auto& event) {
    return event.first == "gridd-4" && event.second == PowerState::kRunning;
  }));
}

TEST_F(HostConnectionTest, HostHungAtStartDoesNotHoldUpItsOwnerAndIsUpOnceItAnswers) {
  libvirtd_.Pause();
  {
    // Opening a connection to a hung libvirtd waits for it; the owner is not made to wait.
    HostConnection abandoned(FastOptions("hv-hung", libvirtd_.TestUri(NodeFile())));
    EXPECT_EQ(abandoned.state(), HostState::kDown);
    EXPECT_EQ(ErrorOf([&] { abandoned.Capacity(); }).kind(), HypervisorErrorKind::kTransient);
  }  // destroyed while its first attempt still waits on the host
  HostConnection host(FastOptions("hv-hung", libvirtd_.TestUri(NodeFile())));
  EXPECT_EQ(host.state(), HostState::kDown);
  libvirtd_.Resume();
  ASSERT_TRUE(WaitForState(host, HostState::kUp));
  EXPECT_EQ(host.Capacity().cpus, 16u);
}

TEST_F(HostConnectionTest, ConcurrentCallsThroughAFailureEitherWorkOrNameTheHost) {
  HostConnection host(FastOptions("hv-busy", libvirtd_.TestUri(NodeFile())));
  CreateTestServer(host, 3);
  std::atomic<bool> stop{false};
  std::atomic<int> succeeded{0};
  std::atomic<int> failed_badly{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      while (!stop) {
        try {
          host.State("gridd-3");
          ++succeeded;
        } catch (const HypervisorError& error) {
          const bool names_host = std::string(error.what()).find("hv-busy") != std::string::npos;
          if (error.kind() != HypervisorErrorKind::kTransient || !names_host) ++failed_badly;
        }
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  libvirtd_.Kill();
  const bool went_down = WaitForState(host, HostState::kDown);
  libvirtd_.Start();
  const bool came_back = WaitForState(host, HostState::kUp);
  const int before = succeeded;
  // Calls work again once the host is back.
  const auto deadline = std::chrono::steady_clock::now() + kStateWait;
  while (succeeded == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  stop = true;
  for (auto& worker : workers) worker.join();
  EXPECT_TRUE(went_down);
  EXPECT_TRUE(came_back);
  EXPECT_GT(succeeded.load(), before);
  EXPECT_EQ(failed_badly.load(), 0);
}

TEST_F(HostConnectionTest, RejectsBadOptions) {
  HostConnectionOptions options = FastOptions("", libvirtd_.TestUri(NodeFile()));
  EXPECT_EQ(ErrorOf([&] { HostConnection host(options); }).kind(), HypervisorErrorKind::kInvalid);
  options = FastOptions("hv", libvirtd_.TestUri(NodeFile()));
  options.down_after = 0ms;
  EXPECT_EQ(ErrorOf([&] { HostConnection host(options); }).kind(), HypervisorErrorKind::kInvalid);
}

TEST(HostConnectionConfigTest, HostsSectionSetsTheConnectionTimings) {
  const auto dir = gridd::testing::ScratchDir("gridd-hosts-config");
  const auto path = dir / "gridd.toml";
  {
    std::ofstream file(path);
    file << "[hosts]\ndown_after_seconds = 12\nkeepalive_interval_seconds = 2\n"
         << "keepalive_count = 4\nreconnect_initial_ms = 250\nreconnect_max_seconds = 8\n";
  }
  const HostConnectionOptions options =
      HostConnectionOptionsFromConfig(LoadConfig(path), "hv-a1", "qemu+ssh://a1/system");
  EXPECT_EQ(options.host_name, "hv-a1");
  EXPECT_EQ(options.down_after, 12s);
  EXPECT_EQ(options.keepalive_interval_seconds, 2);
  EXPECT_EQ(options.keepalive_count, 4u);
  EXPECT_EQ(options.probe_interval, 2s);
  EXPECT_EQ(options.reconnect_initial, 250ms);
  EXPECT_EQ(options.reconnect_max, 8s);

  const HostConnectionOptions defaults =
      HostConnectionOptionsFromConfig(Config{}, "hv-a1", "qemu:///system");
  EXPECT_LE(defaults.down_after, 30s);  // the documented promise

  for (const char* bad : {"down_after_seconds = 0", "keepalive_count = 0",
                          "reconnect_initial_ms = 5000\nreconnect_max_seconds = 2",
                          "keepalive_interval_seconds = \"5\""}) {
    {
      std::ofstream file(path);
      file << "[hosts]\n" << bad << "\n";
    }
    try {
      LoadConfig(path);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const std::runtime_error& error) {
      EXPECT_NE(std::string(error.what()).find("hosts."), std::string::npos) << error.what();
    }
  }
}

// Two test-driver hosts, each its own libvirtd.
class DomainMoveTest : public ::testing::Test {
 protected:
  DomainMoveTest()
      : source_(FastOptions("hv-src", source_libvirtd_.TestUri(NodeFile()))),
        target_(FastOptions("hv-dst", target_libvirtd_.TestUri(NodeFile()))) {}

  DomainMove Move(int64_t id) {
    DomainMove move;
    move.spec = TestServerSpec(id);
    move.source_storage_pool = kPool;
    move.start = true;
    return move;
  }

  LibvirtdProcess source_libvirtd_;
  LibvirtdProcess target_libvirtd_;
  HostConnection source_;
  HostConnection target_;
};

TEST_F(DomainMoveTest, LiveMigrationOnTheTestDriverIsReportedUnsupported) {
  CreateTestServer(source_, 5);
  source_.Start("gridd-5");
  std::string refusal;
  EXPECT_FALSE(LiveMigrate(source_, target_, Move(5), refusal));
  EXPECT_NE(refusal.find("cannot live-migrate from host hv-src to host hv-dst"), std::string::npos)
      << refusal;
  DomainMove peer_to_peer = Move(5);
  peer_to_peer.peer_to_peer = true;
  refusal.clear();
  EXPECT_FALSE(LiveMigrate(source_, target_, peer_to_peer, refusal));
  EXPECT_NE(refusal.find("cannot live-migrate from host hv-src to host hv-dst"), std::string::npos)
      << refusal;
  // Nothing changed on either host.
  EXPECT_EQ(source_.State("gridd-5"), PowerState::kRunning);
  EXPECT_EQ(target_.State("gridd-5"), PowerState::kMissing);
}

TEST_F(DomainMoveTest, ColdMoveKeepsIdentityAndLeavesNothingOnTheSource) {
  CreateTestServer(source_, 5);
  source_.Start("gridd-5");
  const std::string uuid = DomainUuid(source_, "gridd-5");
  ASSERT_FALSE(uuid.empty());

  const MoveResult result = MoveDomain(source_, target_, Move(5));
  EXPECT_EQ(result.method, MoveMethod::kCold);
  EXPECT_NE(result.live_refusal.find("cannot live-migrate"), std::string::npos)
      << result.live_refusal;

  EXPECT_EQ(target_.State("gridd-5"), PowerState::kRunning);
  EXPECT_EQ(DomainUuid(target_, "gridd-5"), uuid);
  const auto moved = target_.ListGriddDomains();
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].server_id, 5);
  EXPECT_EQ(moved[0].account_id, 3);
  EXPECT_TRUE(target_.VolumeExists(kPool, "gridd-5.qcow2"));
  EXPECT_FALSE(target_.VolumeExists(kPool, "gridd-5.qcow2.moving"));

  EXPECT_EQ(source_.State("gridd-5"), PowerState::kMissing);
  EXPECT_FALSE(source_.VolumeExists(kPool, "gridd-5.qcow2"));
  EXPECT_FALSE(source_.VolumeExists(kPool, "gridd-5.qcow2.moving"));

  // A re-run (the job retried after a crash) converges on the same result.
  EXPECT_EQ(MoveDomain(source_, target_, Move(5)).method, MoveMethod::kCompletedEarlier);
  EXPECT_EQ(target_.State("gridd-5"), PowerState::kRunning);
  EXPECT_EQ(DomainUuid(target_, "gridd-5"), uuid);
}

TEST_F(DomainMoveTest, ColdMoveReplacesTheLeftoverOfAnInterruptedCopy) {
  CreateTestServer(source_, 6);
  // An earlier attempt died mid-copy: a volume of that name but no domain on the target.
  target_.EnsureDisk(DiskSpec{kPool, kImage, "gridd-6.qcow2"});
  DomainMove move = Move(6);
  move.start = false;  // the server was off: it stays off
  const MoveResult result = MoveDomain(source_, target_, move);
  EXPECT_EQ(result.method, MoveMethod::kCold);
  EXPECT_EQ(target_.State("gridd-6"), PowerState::kShutOff);
  EXPECT_EQ(source_.State("gridd-6"), PowerState::kMissing);
}

TEST_F(DomainMoveTest, MovingADomainThatIsOnNeitherHostFailsAndChangesNothing) {
  const HypervisorError error = ErrorOf([&] { MoveDomain(source_, target_, Move(9)); });
  EXPECT_EQ(error.kind(), HypervisorErrorKind::kNotFound);
  EXPECT_NE(std::string(error.what()).find("neither host"), std::string::npos) << error.what();
  EXPECT_TRUE(target_.ListGriddDomains().empty());
  EXPECT_EQ(ErrorOf([&] { MoveDomain(source_, source_, Move(9)); }).kind(),
            HypervisorErrorKind::kInvalid);
}

TEST_F(DomainMoveTest, MoveToADownHostFailsNamingIt) {
  CreateTestServer(source_, 8);
  source_.Start("gridd-8");
  target_libvirtd_.Kill();
  ASSERT_TRUE(WaitForState(target_, HostState::kDown));
  const HypervisorError error = ErrorOf([&] { MoveDomain(source_, target_, Move(8)); });
  EXPECT_EQ(error.kind(), HypervisorErrorKind::kTransient);
  EXPECT_NE(std::string(error.what()).find("host hv-dst"), std::string::npos) << error.what();
  EXPECT_EQ(source_.State("gridd-8"), PowerState::kRunning);
}

}  // namespace
}  // namespace gridd::virt

namespace gridd::virt {
namespace {

// Two real QEMU hosts: session libvirtds of their own (see LibvirtdProcess), each with a
// directory pool in its temp dir.
class QemuDomainMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/qemu-system-x86_64", X_OK) != 0 ||
        access("/usr/bin/qemu-img", X_OK) != 0) {
      GTEST_SKIP() << "QEMU is not installed";
    }
    source_libvirtd_ =
        std::make_unique<LibvirtdProcess>(gridd::testing::LibvirtdKind::kQemuSession);
    target_libvirtd_ =
        std::make_unique<LibvirtdProcess>(gridd::testing::LibvirtdKind::kQemuSession);
    source_ =
        std::make_unique<HostConnection>(FastOptions("qemu-src", source_libvirtd_->QemuUri()));
    target_ =
        std::make_unique<HostConnection>(FastOptions("qemu-dst", target_libvirtd_->QemuUri()));
    source_->EnsureDirectoryPool(kPool, source_libvirtd_->PoolDir("gridd").string());
    target_->EnsureDirectoryPool(kPool, target_libvirtd_->PoolDir("gridd").string());
  }

  // A 1 MiB image whose data starts with `marker`, imported into the source's pool.
  void ImportMarkedImage(const std::string& marker) {
    const auto dir = gridd::testing::ScratchDir("gridd-move-image");
    {
      std::ofstream raw(dir / "image.raw", std::ios::binary);
      std::string data(1 << 20, '\0');
      data.replace(0, marker.size(), marker);
      raw << data;
    }
    const auto result = gridd::testing::RunCommand("qemu-img convert -f raw -O qcow2 " +
                                                   (dir / "image.raw").string() + " " +
                                                   (dir / "image.qcow2").string());
    ASSERT_EQ(result.exit_code, 0) << result.output;
    source_->ImportQcow2(kPool, "image.qcow2", (dir / "image.qcow2").string());
  }

  // A small guest on the source: an overlay of the image, no NIC, TCG.
  DomainSpec CreateGuest(int64_t id) {
    DomainSpec spec = TestServerSpec(id);
    spec.network.clear();
    spec.memory_mib = 64;
    spec.domain_type = "qemu";
    source_->EnsureDisk(DiskSpec{kPool, "image.qcow2", spec.disk_volume});
    source_->DefineDomain(spec);
    source_->Start(spec.name);
    return spec;
  }

  // The volume's bytes as libvirt streams them.
  static std::string Download(HostConnection& host, const std::string& volume) {
    auto conn = host.core().Acquire();
    PoolHandle pool(virStoragePoolLookupByName(conn.get(), kPool));
    VolumeHandle vol(virStorageVolLookupByName(pool.get(), volume.c_str()));
    if (!vol) return "";
    virStreamPtr stream = virStreamNew(conn.get(), 0);
    std::string bytes;
    if (virStorageVolDownload(vol.get(), stream, 0, 0, 0) == 0) {
      char buffer[65536];
      for (int n; (n = virStreamRecv(stream, buffer, sizeof(buffer))) > 0;) bytes.append(buffer, n);
      virStreamFinish(stream);
    }
    virStreamFree(stream);
    return bytes;
  }

  // Declared first, destroyed last.
  std::unique_ptr<LibvirtdProcess> source_libvirtd_;
  std::unique_ptr<LibvirtdProcess> target_libvirtd_;
  std::unique_ptr<HostConnection> source_;
  std::unique_ptr<HostConnection> target_;
};

TEST_F(QemuDomainMoveTest, ColdMoveStreamsTheFlattenedDiskAndRestartsTheGuestOnTheTarget) {
  const std::string marker = "gridd-move-marker-2f9c";
  ImportMarkedImage(marker);
  if (HasFatalFailure()) return;
  CreateGuest(11);
  ASSERT_EQ(source_->State("gridd-11"), PowerState::kRunning);
  const std::string uuid = DomainUuid(*source_, "gridd-11");
  // The overlay alone does not hold the image's data.
  ASSERT_EQ(Download(*source_, "gridd-11.qcow2").find(marker), std::string::npos);

  DomainMove move;
  move.spec = TestServerSpec(11);
  move.spec.network.clear();
  move.spec.memory_mib = 64;
  move.spec.domain_type = "qemu";
  move.source_storage_pool = kPool;
  move.allow_live = false;
  move.shutdown_timeout_seconds = 0;  // the guest has no OS to answer the power button
  const MoveResult result = MoveDomain(*source_, *target_, move);
  EXPECT_EQ(result.method, MoveMethod::kCold);

  EXPECT_EQ(target_->State("gridd-11"), PowerState::kRunning);
  EXPECT_EQ(DomainUuid(*target_, "gridd-11"), uuid);
  // The target's disk stands alone: the image's data came with it.
  EXPECT_NE(Download(*target_, "gridd-11.qcow2").find(marker), std::string::npos);
  EXPECT_FALSE(target_->VolumeExists(kPool, "image.qcow2"));
  EXPECT_EQ(source_->State("gridd-11"), PowerState::kMissing);
  EXPECT_FALSE(source_->VolumeExists(kPool, "gridd-11.qcow2"));
  EXPECT_FALSE(source_->VolumeExists(kPool, "gridd-11.qcow2.moving"));
  EXPECT_TRUE(source_->VolumeExists(kPool, "image.qcow2"));

  // Re-run after the fact: converges, the guest keeps running on the target.
  EXPECT_EQ(MoveDomain(*source_, *target_, move).method, MoveMethod::kCompletedEarlier);
  EXPECT_EQ(target_->State("gridd-11"), PowerState::kRunning);
}

}  // namespace
}  // namespace gridd::virt
