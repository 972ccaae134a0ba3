// The server job handlers against libvirt's real test driver (config/test-node.xml): what
// GridService queues, the handlers carry out, and the hypervisor and database agree afterwards.
#include "gridd/jobs/server_jobs.h"

#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gridd/common/config.h"
#include "gridd/common/crypto.h"
#include "gridd/common/error.h"
#include "gridd/domain/account_service.h"
#include "gridd/domain/grid_service.h"
#include "gridd/jobs/reconciler.h"
#include "gridd/store/repositories.h"
#include "gridd/virt/hypervisor.h"
#include "support/test_paths.h"
#include "virt/libvirt_hypervisor.h"

namespace gridd::jobs {
namespace {

namespace job_state = domain::job_state;
namespace server_state = domain::server_state;
using domain::Selector;
using virt::PowerState;

constexpr int64_t kStartMs = 1'700'000'000'000;
constexpr const char* kImage = "debian-12-amd64";

const Config& TestConfig() {
  static const Config config = LoadConfig(gridd::testing::SourceDir() / "config" / "gridd.toml");
  return config;
}

std::string NodeUri() {
  return "test://" + (gridd::testing::SourceDir() / "config" / "test-node.xml").string();
}

std::array<uint8_t, SecretBox::kKeySize> TestKey() {
  std::array<uint8_t, SecretBox::kKeySize> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(0xA0 + i);
  return key;
}

class ServerJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    accounts_.ApplySeeds(TestConfig());
    auto key = accounts_.EnsureInitialAccount(TestConfig().initial_account);
    ASSERT_TRUE(key.has_value());
    const domain::Account account = accounts_.FindAccount(TestConfig().initial_account);
    caller_ = domain::Caller{account.id, account.name, key->api_key, domain::Role::kSuperUser};
    hypervisor_ = virt::ConnectLibvirt(NodeUri());
    JobRunnerOptions options;
    options.workers = 1;
    runner_ = std::make_unique<JobRunner>(db_, clock_, options);
    ServerJobOptions server_options;
    server_options.shutdown_timeout_seconds = 5;
    hosts_ = std::make_unique<HostRegistry>(*hypervisor_);
    RegisterServerJobs(*runner_, db_, *hosts_, clock_, server_options);
  }

  int64_t AddServer(const std::string& name, const std::string& ram = "512MB",
                    const std::string& image = kImage) {
    domain::IpFilter filter;
    filter.state = domain::ip_state::kUnassigned;
    filter.type = domain::ip_type::kPublic;
    auto ips = grid_.ListIps(caller_, filter);
    EXPECT_FALSE(ips.empty());
    domain::ServerAddRequest request;
    request.name = name;
    request.image = image;
    request.ram = ram;
    request.ip = ips.front().address;
    return grid_.AddServer(caller_, request).server.id;
  }

  // Adds a server and runs its CreateVirtualServer job.
  int64_t AddCreatedServer(const std::string& name, const std::string& ram = "512MB") {
    const int64_t id = AddServer(name, ram);
    EXPECT_EQ(RunJobs(), 1) << name;
    return id;
  }

  // Asks for a power change and runs its job.
  void Power(int64_t id, const std::string& action) {
    grid_.PowerServer(caller_, ById(id), action);
    EXPECT_EQ(RunJobs(), 1) << action;
  }

  // Runs the one queued job and expects it to succeed, leaving the server's row and its domain
  // in these states.
  void RunJobAndExpect(int64_t id, int64_t state, PowerState power) {
    ASSERT_EQ(RunJobs(), 1);
    ExpectLastJobSucceeded(id);
    EXPECT_EQ(ServerRow(id)->state, state);
    EXPECT_EQ(hypervisor_->State(DomainName(id)), power);
  }

  std::vector<Selector> ById(int64_t id) {
    return {Selector{Selector::Kind::kId, std::to_string(id)}};
  }

  // Runs every due job; returns how many ran.
  int RunJobs() {
    int ran = 0;
    while (ran < 50 && runner_->RunOnce()) ++ran;
    return ran;
  }

  std::optional<domain::Server> ServerRow(int64_t id) {
    return db_.Read([&](store::Connection& c) { return store::servers::GetAny(c, id); });
  }

  // The newest job acting on the server.
  domain::Job LastJob(int64_t server_id) {
    return db_.Read([&](store::Connection& c) {
      for (auto& job : store::jobs::List(c, caller_.account_id)) {
        if (job.object_id == server_id) return job;
      }
      ADD_FAILURE() << "no job for server " << server_id;
      return domain::Job{};
    });
  }

  // Queues the server's newest job once more, as if its first run had been interrupted.
  void RequeueCopyOfLastJob(int64_t server_id) {
    domain::Job again = LastJob(server_id);
    again.id = 0;
    again.history.clear();
    db_.Write([&](store::Connection& c) { store::jobs::Insert(c, again, clock_.NowMs()); });
  }

  void ExpectLastJobSucceeded(int64_t server_id) {
    const domain::Job job = LastJob(server_id);
    EXPECT_EQ(job.state, job_state::kSucceeded) << job.error.value_or("(no error)");
  }

  int DomainsFor(virt::Hypervisor& hypervisor, int64_t server_id) {
    int count = 0;
    for (const auto& domain : hypervisor.ListGriddDomains()) {
      if (domain.server_id == server_id) ++count;
    }
    return count;
  }

  virt::LibvirtHypervisor* Libvirt() {
    auto* libvirt = dynamic_cast<virt::LibvirtHypervisor*>(hypervisor_.get());
    EXPECT_NE(libvirt, nullptr);
    return libvirt;
  }

  // The domain's configured memory, read straight from libvirt.
  unsigned long MaxMemoryKib(int64_t server_id) {
    auto connection = Libvirt()->ConnectionForTest();
    virDomainPtr domain = virDomainLookupByName(connection.get(), DomainName(server_id).c_str());
    if (domain == nullptr) {
      ADD_FAILURE() << "no domain " << DomainName(server_id);
      return 0;
    }
    const unsigned long memory = virDomainGetMaxMemory(domain);
    virDomainFree(domain);
    return memory;
  }

  // The UUID libvirt shows for the server's domain on `hypervisor`.
  std::string DomainUuidOf(virt::Hypervisor& hypervisor, int64_t server_id) {
    auto* libvirt = dynamic_cast<virt::LibvirtHypervisor*>(&hypervisor);
    if (libvirt == nullptr) return "";
    auto connection = libvirt->ConnectionForTest();
    virDomainPtr domain = virDomainLookupByName(connection.get(), DomainName(server_id).c_str());
    if (domain == nullptr) return "";
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    virDomainGetUUIDString(domain, uuid);
    virDomainFree(domain);
    return uuid;
  }

  std::string PublicNetworkXml() { return Libvirt()->NetworkXmlForTest("gridd-public-1"); }

  ManualClock clock_{kStartMs};
  SecretBox box_{TestKey()};
  store::Database db_{":memory:"};
  domain::Catalog catalog_{db_};
  domain::AccountService accounts_{db_, catalog_, clock_, box_, TestConfig().ip_block_size};
  domain::GridService grid_{db_, catalog_, clock_, box_, [] {}};
  domain::Caller caller_;
  std::unique_ptr<virt::Hypervisor> hypervisor_;
  std::unique_ptr<HostRegistry> hosts_;
  std::unique_ptr<JobRunner> runner_;
};

TEST_F(ServerJobsTest, CreateDefinesAndStartsTheServer) {
  const int64_t id = AddServer("web01");
  ASSERT_EQ(ServerRow(id)->state, server_state::kStarting);
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kMissing);

  ASSERT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(id);
  const auto server = ServerRow(id);
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ(server->state, server_state::kOn);
  EXPECT_EQ(DomainName(id), "gridd-" + std::to_string(id));
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kRunning);
  EXPECT_TRUE(hypervisor_->VolumeExists(TestConfig().storage_pool, DiskVolume(id)));
  EXPECT_EQ(DiskVolume(id), "gridd-" + std::to_string(id) + ".qcow2");

  const auto domains = hypervisor_->ListGriddDomains();
  ASSERT_EQ(domains.size(), 1u);
  EXPECT_EQ(domains[0].server_id, id);
  EXPECT_EQ(domains[0].account_id, caller_.account_id);
  EXPECT_EQ(MaxMemoryKib(id), 512ul * 1024);

  // The server's address is reserved for its MAC on the IP's network.
  const std::string network = PublicNetworkXml();
  EXPECT_NE(network.find(server->mac), std::string::npos) << network;
}

TEST_F(ServerJobsTest, CreateRunTwiceIsIdempotent) {
  const int64_t id = AddCreatedServer("web01");
  // As after a crash between the hypervisor work and the commit: the same job again.
  RequeueCopyOfLastJob(id);
  ASSERT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(id);
  EXPECT_EQ(DomainsFor(*hypervisor_, id), 1);
  EXPECT_EQ(hypervisor_->ListGriddDomains().size(), 1u);
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kRunning);
  EXPECT_TRUE(hypervisor_->VolumeExists(TestConfig().storage_pool, DiskVolume(id)));
  EXPECT_EQ(ServerRow(id)->state, server_state::kOn);
}

TEST_F(ServerJobsTest, PowerStopStartRestart) {
  const int64_t id = AddCreatedServer("web01");

  EXPECT_EQ(grid_.PowerServer(caller_, ById(id), "stop").server.state, server_state::kStopping);
  RunJobAndExpect(id, server_state::kOff, PowerState::kShutOff);

  grid_.PowerServer(caller_, ById(id), "start");
  RunJobAndExpect(id, server_state::kOn, PowerState::kRunning);

  EXPECT_EQ(grid_.PowerServer(caller_, ById(id), "restart").server.state,
            server_state::kRestarting);
  RunJobAndExpect(id, server_state::kOn, PowerState::kRunning);
}

TEST_F(ServerJobsTest, RestartOfAStoppedServerStartsIt) {
  const int64_t id = AddCreatedServer("web01");
  Power(id, "stop");
  ASSERT_EQ(hypervisor_->State(DomainName(id)), PowerState::kShutOff);
  grid_.PowerServer(caller_, ById(id), "restart");
  RunJobAndExpect(id, server_state::kOn, PowerState::kRunning);
}

TEST_F(ServerJobsTest, EditRamRedefinesTheDomainAndKeepsItOn) {
  const int64_t id = AddCreatedServer("web01");
  ASSERT_EQ(MaxMemoryKib(id), 512ul * 1024);

  domain::ServerEditRequest edit;
  edit.selectors = ById(id);
  edit.ram = "2GB";
  EXPECT_EQ(grid_.EditServer(caller_, edit).server.state, server_state::kUpdating);
  ASSERT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(id);
  EXPECT_EQ(ServerRow(id)->state, server_state::kOn);
  EXPECT_EQ(ServerRow(id)->ram, 3);  // the 2GB option
  EXPECT_EQ(MaxMemoryKib(id), 2048ul * 1024);
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kRunning);
  EXPECT_EQ(DomainsFor(*hypervisor_, id), 1);
}

TEST_F(ServerJobsTest, EditOfAStoppedServerLeavesItOff) {
  const int64_t id = AddCreatedServer("web01");
  Power(id, "stop");

  domain::ServerEditRequest edit;
  edit.selectors = ById(id);
  edit.ram = "1GB";
  grid_.EditServer(caller_, edit);
  RunJobAndExpect(id, server_state::kOff, PowerState::kShutOff);
  EXPECT_EQ(MaxMemoryKib(id), 1024ul * 1024);
}

TEST_F(ServerJobsTest, DeleteRemovesEverything) {
  const int64_t id = AddCreatedServer("web01");
  const domain::Server before = *ServerRow(id);
  ASSERT_NE(PublicNetworkXml().find(before.mac), std::string::npos);

  grid_.DeleteServer(caller_, ById(id));
  ASSERT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(id);
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kMissing);
  EXPECT_FALSE(hypervisor_->VolumeExists(TestConfig().storage_pool, DiskVolume(id)));
  EXPECT_EQ(DomainsFor(*hypervisor_, id), 0);
  EXPECT_FALSE(ServerRow(id).has_value());
  EXPECT_EQ(PublicNetworkXml().find(before.mac), std::string::npos);

  db_.Read([&](store::Connection& c) {
    const auto ip = store::ips::Get(c, caller_.account_id, before.ip_id);
    ASSERT_TRUE(ip.has_value());
    EXPECT_EQ(ip->state, domain::ip_state::kUnassigned);
    EXPECT_FALSE(ip->server_id.has_value());
    EXPECT_TRUE(store::passwords::List(c, caller_.account_id, box_).empty());
  });
  // The image the server was cloned from is untouched.
  EXPECT_TRUE(hypervisor_->VolumeExists(TestConfig().storage_pool, "debian-12-amd64.qcow2"));
}

TEST_F(ServerJobsTest, DeleteRunTwiceIsIdempotent) {
  const int64_t id = AddCreatedServer("web01");
  grid_.DeleteServer(caller_, ById(id));
  ASSERT_EQ(RunJobs(), 1);
  RequeueCopyOfLastJob(id);
  ASSERT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(id);
}

TEST_F(ServerJobsTest, FailedCreateRecordsWhatTheHypervisorShows) {
  // The operator listed an image whose volume is not in the pool.
  db_.Write([&](store::Connection& c) {
    c.Exec("UPDATE images SET volume = 'gone.qcow2' WHERE name = 'debian-12-amd64'");
  });
  const int64_t id = AddCreatedServer("web01");
  const domain::Job job = LastJob(id);
  EXPECT_EQ(job.state, job_state::kFailed);
  EXPECT_EQ(job.attempts, 1);  // a missing volume does not come back by waiting
  ASSERT_TRUE(job.error.has_value());
  EXPECT_NE(job.error->find("gone.qcow2"), std::string::npos) << *job.error;
  // Not left "Starting" forever.
  EXPECT_EQ(ServerRow(id)->state, server_state::kOff);
}

TEST_F(ServerJobsTest, MaterialiseServerBuildsADomainAFreshHypervisorForgot) {
  const int64_t running = AddServer("web01");
  const int64_t stopped = AddServer("web02", "1GB");
  ASSERT_EQ(RunJobs(), 2);
  Power(stopped, "stop");

  // A new test:/// connection starts from the node file again: gridd's domains are gone.
  auto fresh = virt::ConnectLibvirt(NodeUri());
  ASSERT_TRUE(fresh->volatile_state());
  ASSERT_EQ(fresh->State(DomainName(running)), PowerState::kMissing);

  // One server at a time, as the database says: the running one runs, the stopped one not.
  EXPECT_TRUE(MaterialiseServer(db_, *fresh, running));
  EXPECT_EQ(fresh->State(DomainName(running)), PowerState::kRunning);
  EXPECT_EQ(fresh->State(DomainName(stopped)), PowerState::kMissing);
  EXPECT_TRUE(fresh->VolumeExists(TestConfig().storage_pool, DiskVolume(running)));
  EXPECT_TRUE(MaterialiseServer(db_, *fresh, stopped));
  EXPECT_EQ(fresh->State(DomainName(stopped)), PowerState::kShutOff);
  EXPECT_EQ(DomainsFor(*fresh, running), 1);

  // Built already: nothing to do the second time.
  EXPECT_FALSE(MaterialiseServer(db_, *fresh, running));
  EXPECT_EQ(fresh->ListGriddDomains().size(), 2u);
}

TEST_F(ServerJobsTest, AServerMaterialisedTwiceIsTheSameDomain) {
  const int64_t id = AddServer("web01");
  ASSERT_EQ(RunJobs(), 1);
  auto first = virt::ConnectLibvirt(NodeUri());
  ASSERT_TRUE(MaterialiseServer(db_, *first, id));
  auto second = virt::ConnectLibvirt(NodeUri());
  ASSERT_TRUE(MaterialiseServer(db_, *second, id));
  EXPECT_EQ(VolatileDomainUuid(id), VolatileDomainUuid(id));
  EXPECT_NE(VolatileDomainUuid(id), VolatileDomainUuid(id + 1));
  EXPECT_EQ(DomainUuidOf(*first, id), VolatileDomainUuid(id));
  EXPECT_EQ(DomainUuidOf(*second, id), VolatileDomainUuid(id));
}

TEST_F(ServerJobsTest, MaterialiseServerKeepsAnOffServerOffThroughARamChange) {
  const int64_t id = AddServer("web01");
  ASSERT_EQ(RunJobs(), 1);
  Power(id, "stop");
  domain::ServerEditRequest edit;
  edit.selectors = ById(id);
  edit.ram = "1GB";
  grid_.EditServer(caller_, edit);
  ASSERT_EQ(ServerRow(id)->state, server_state::kUpdating);

  auto fresh = virt::ConnectLibvirt(NodeUri());
  ASSERT_TRUE(MaterialiseServer(db_, *fresh, id));
  EXPECT_EQ(fresh->State(DomainName(id)), PowerState::kShutOff);
}

// ------------------------------------------------------------------------------ image save
domain::Image SaveImage(domain::GridService& grid, const domain::Caller& caller, int64_t server) {
  domain::ImageSaveRequest request;
  request.server = std::to_string(server);
  request.friendly_name = "golden";
  return grid.SaveImage(caller, request);
}

TEST_F(ServerJobsTest, SaveImageCopiesTheDiskAndBuildsServersFromTheCopy) {
  const int64_t source = AddCreatedServer("web01");
  const domain::Image image = SaveImage(grid_, caller_, source);
  EXPECT_EQ(ServerRow(source)->state, server_state::kSaving);
  ASSERT_EQ(RunJobs(), 1);

  auto saved = db_.Read([&](store::Connection& c) { return store::images::GetAny(c, image.id); });
  ASSERT_TRUE(saved.has_value());
  EXPECT_EQ(saved->state, domain::image_state::kAvailable);
  EXPECT_EQ(ServerRow(source)->state, server_state::kOn);
  EXPECT_TRUE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
  EXPECT_EQ(hypervisor_->State(DomainName(source)), PowerState::kRunning);

  // A server from the saved image: its disk is an overlay on the image's own volume.
  const int64_t copy = AddServer("web02", "512MB", image.name);
  ASSERT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(copy);
  EXPECT_EQ(hypervisor_->State(DomainName(copy)), PowerState::kRunning);
}

TEST_F(ServerJobsTest, AFailedSaveRemovesTheImageAndRestoresTheServer) {
  const int64_t source = AddCreatedServer("web01");
  Power(source, "stop");
  const domain::Image image = SaveImage(grid_, caller_, source);
  EXPECT_EQ(ServerRow(source)->state, server_state::kOffSaving);
  // The server's disk vanishes behind gridd's back: the copy cannot be made.
  hypervisor_->DeleteDisk(TestConfig().storage_pool, DiskVolume(source));
  ASSERT_EQ(RunJobs(), 1);

  const domain::Job job = db_.Read(
      [&](store::Connection& c) { return store::jobs::List(c, caller_.account_id).front(); });
  EXPECT_EQ(job.command, domain::job_command::kSaveServerImage);
  EXPECT_EQ(job.state, job_state::kFailed);
  EXPECT_NE(job.error.value_or("").find(DiskVolume(source)), std::string::npos)
      << job.error.value_or("(no error)");
  EXPECT_FALSE(db_.Read([&](store::Connection& c) { return store::images::GetAny(c, image.id); })
                   .has_value());
  EXPECT_FALSE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
  EXPECT_EQ(ServerRow(source)->state, server_state::kOff);
}

TEST_F(ServerJobsTest, AFailedSaveOfARunningServerStartsItAgain) {
  const int64_t source = AddCreatedServer("web01");
  const domain::Image image = SaveImage(grid_, caller_, source);
  hypervisor_->DeleteDisk(TestConfig().storage_pool, DiskVolume(source));
  ASSERT_EQ(RunJobs(), 1);
  EXPECT_EQ(hypervisor_->State(DomainName(source)), PowerState::kRunning);
  EXPECT_EQ(ServerRow(source)->state, server_state::kOn);
  EXPECT_FALSE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
}

TEST_F(ServerJobsTest, RestoreVolatileImagesLetsServersOfSavedImagesBeMaterialised) {
  const int64_t source = AddCreatedServer("web01");
  const domain::Image image = SaveImage(grid_, caller_, source);
  ASSERT_EQ(RunJobs(), 1);
  domain::IpFilter free_ips;
  free_ips.state = domain::ip_state::kUnassigned;
  free_ips.type = domain::ip_type::kPublic;
  domain::ServerAddRequest request;
  request.name = "web02";
  request.image = std::to_string(image.id);
  request.ram = "512MB";
  request.ip = grid_.ListIps(caller_, free_ips).front().address;
  const int64_t copy = grid_.AddServer(caller_, request).server.id;
  ASSERT_EQ(RunJobs(), 1);

  auto fresh = virt::ConnectLibvirt(NodeUri());
  ASSERT_FALSE(fresh->VolumeExists(image.storage_pool, image.volume));
  RestoreVolatileImages(db_, *fresh);
  EXPECT_TRUE(fresh->VolumeExists(image.storage_pool, image.volume));
  EXPECT_TRUE(MaterialiseServer(db_, *fresh, copy));
  EXPECT_TRUE(MaterialiseServer(db_, *fresh, source));
  EXPECT_EQ(fresh->State(DomainName(copy)), PowerState::kRunning);
  EXPECT_EQ(fresh->State(DomainName(source)), PowerState::kRunning);
}

TEST_F(ServerJobsTest, SaveImageRunTwiceConverges) {
  const int64_t source = AddCreatedServer("web01");
  const domain::Image image = SaveImage(grid_, caller_, source);
  ASSERT_EQ(RunJobs(), 1);
  // As after a crash before the commit: the copy exists, the job runs again.
  domain::Job again = db_.Read(
      [&](store::Connection& c) { return store::jobs::List(c, caller_.account_id).front(); });
  again.id = 0;
  again.history.clear();
  db_.Write([&](store::Connection& c) {
    auto row = store::images::GetAny(c, image.id);
    row->state = domain::image_state::kSaving;
    store::images::Update(c, *row);
    store::jobs::Insert(c, again, clock_.NowMs());
  });
  ASSERT_EQ(RunJobs(), 1);
  auto saved = db_.Read([&](store::Connection& c) { return store::images::GetAny(c, image.id); });
  EXPECT_EQ(saved->state, domain::image_state::kAvailable);
  EXPECT_TRUE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
}

}  // namespace
}  // namespace gridd::jobs

// ------------------------------------------------------------------------------ reconciler
// Drift is made behind gridd's back through the hypervisor's own libvirt connection (the test
// driver keeps its state per connection, so this is the one gridd uses).

namespace gridd::jobs {
namespace {

class ReconcilerTest : public ServerJobsTest {
 protected:
  Reconciler MakeReconciler(bool remove_orphans = false) {
    return Reconciler(db_, *hosts_, nullptr, clock_, nullptr, {remove_orphans});
  }
  // Runs `fn` on the live domain of the server through the raw libvirt connection.
  void OnDomain(int64_t server_id, const std::function<int(virDomainPtr)>& fn) {
    auto connection = Libvirt()->ConnectionForTest();
    virDomainPtr domain = virDomainLookupByName(connection.get(), DomainName(server_id).c_str());
    ASSERT_NE(domain, nullptr);
    EXPECT_EQ(fn(domain), 0);
    virDomainFree(domain);
  }
};

TEST_F(ReconcilerTest, AVanishedDomainIsRecreatedAndStartedByAJobWithHistory) {
  const int64_t id = AddServer("web-1");
  RunJobs();
  ASSERT_EQ(ServerRow(id)->state, server_state::kOn);
  OnDomain(id, [](virDomainPtr d) { return virDomainDestroy(d) | virDomainUndefine(d); });
  ASSERT_EQ(DomainsFor(*hypervisor_, id), 0);

  auto reconciler = MakeReconciler();
  const auto report = reconciler.RunOnce();
  ASSERT_EQ(report.findings.size(), 1u);
  EXPECT_EQ(report.findings[0].kind, "missing-domain");
  EXPECT_EQ(report.findings[0].object, "server " + std::to_string(id));
  // A second pass while the repair is queued does not queue another.
  EXPECT_TRUE(reconciler.RunOnce().findings.empty());

  EXPECT_EQ(RunJobs(), 1);
  const domain::Job repair = LastJob(id);
  EXPECT_EQ(repair.command, domain::job_command::kReconcileVirtualServer);
  EXPECT_EQ(repair.state, job_state::kSucceeded) << repair.error.value_or("");
  EXPECT_EQ(repair.detail["finding"],
            "domain " + DomainName(id) + " missing on host default (" + NodeUri() + ")");
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kRunning);
  EXPECT_EQ(ServerRow(id)->state, server_state::kOn);
  EXPECT_TRUE(reconciler.RunOnce().findings.empty());
}

TEST_F(ReconcilerTest, AGuestPoweredOffBehindGriddsBackIsRecordedOff) {
  const int64_t id = AddServer("web-1");
  RunJobs();
  OnDomain(id, [](virDomainPtr d) { return virDomainDestroy(d); });

  auto reconciler = MakeReconciler();
  const auto report = reconciler.RunOnce();
  ASSERT_EQ(report.findings.size(), 1u);
  EXPECT_EQ(report.findings[0].kind, "power-drift");
  EXPECT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(id);
  EXPECT_EQ(ServerRow(id)->state, server_state::kOff);
  // Recorded, not overridden: the guest stays off, and the customer can start it again.
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kShutOff);
  EXPECT_TRUE(reconciler.RunOnce().findings.empty());
  grid_.PowerServer(caller_, ById(id), std::string("start"));
  RunJobs();
  EXPECT_EQ(ServerRow(id)->state, server_state::kOn);
}

TEST_F(ReconcilerTest, AnOrphanDomainIsReportedAndRemovedOnlyWhenEnabled) {
  const int64_t id = AddServer("web-1");
  RunJobs();
  // The row vanishes (e.g. a database restored from an older backup) but the domain stays.
  db_.Write([&](store::Connection& c) {
    c.Prepare("DELETE FROM passwords WHERE server_id = ?").Bind(1, id).Run();
    c.Prepare("DELETE FROM servers WHERE id = ?").Bind(1, id).Run();
  });

  auto report = MakeReconciler().RunOnce();
  ASSERT_EQ(report.findings.size(), 1u);
  EXPECT_EQ(report.findings[0].kind, "orphan-domain");
  EXPECT_EQ(report.findings[0].action, "reported");
  EXPECT_EQ(DomainsFor(*hypervisor_, id), 1) << "left alone by default";

  report = MakeReconciler(true).RunOnce();
  ASSERT_EQ(report.findings.size(), 1u);
  EXPECT_EQ(report.findings[0].action, "removed");
  EXPECT_EQ(DomainsFor(*hypervisor_, id), 0);
}

TEST_F(ReconcilerTest, AFailedRepairIsReportedNotQueuedAgainEveryPass) {
  const int64_t id = AddServer("web-1");
  RunJobs();
  OnDomain(id, [](virDomainPtr d) { return virDomainDestroy(d) | virDomainUndefine(d); });
  // The server's disk is gone and its image points nowhere, so re-creating cannot work.
  hypervisor_->DeleteDisk("gridd", DiskVolume(id));
  db_.Write([&](store::Connection& c) {
    c.Prepare("UPDATE images SET volume = 'gone.qcow2' WHERE name = ?").Bind(1, kImage).Run();
  });
  auto reconciler = MakeReconciler();
  ASSERT_EQ(reconciler.RunOnce().findings.size(), 1u);
  RunJobs();
  const domain::Job failed = LastJob(id);
  EXPECT_EQ(failed.state, job_state::kFailed);
  EXPECT_FALSE(failed.error.value_or("").empty());
  const auto report = reconciler.RunOnce();
  ASSERT_EQ(report.findings.size(), 1u);
  EXPECT_EQ(report.findings[0].action,
            "left alone: repair job " + std::to_string(failed.id) + " failed");
  EXPECT_EQ(RunJobs(), 0);

  // The operator fixes the cause and asks again (gridctl reconcile): the repair is retried.
  db_.Write([&](store::Connection& c) {
    c.Prepare("UPDATE images SET volume = ? WHERE name = ?")
        .Bind(1, TestConfig().images[0].volume)
        .Bind(2, kImage)
        .Run();
  });
  ASSERT_EQ(reconciler.RunOnce(true).findings.size(), 1u);
  EXPECT_EQ(RunJobs(), 1);
  ExpectLastJobSucceeded(id);
  // The failed repair recorded the server Off (what the hypervisor showed); it is re-created
  // as such, and the customer's start works.
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kShutOff);
  EXPECT_EQ(ServerRow(id)->state, server_state::kOff);
  grid_.PowerServer(caller_, ById(id), std::string("start"));
  RunJobs();
  EXPECT_EQ(hypervisor_->State(DomainName(id)), PowerState::kRunning);
}

TEST_F(ReconcilerTest, ServersWithAJobPendingAreLeftToThatJob) {
  const int64_t id = AddServer("web-1");  // create job queued, no domain yet
  EXPECT_TRUE(MakeReconciler().RunOnce().findings.empty());
  RunJobs();
  ExpectLastJobSucceeded(id);
}

// ------------------------------------------------------------------------- trash retention
class TrashRetentionTest : public ServerJobsTest {
 protected:
  static constexpr int64_t kRetentionMs = 72LL * 3600 * 1000;

  Reconciler MakeReconciler() {
    ReconcilerOptions options;
    options.image_trash_retention_ms = kRetentionMs;
    return Reconciler(db_, *hosts_, nullptr, clock_, nullptr, options);
  }

  // A saved, Available image of a new server.
  domain::Image SavedImage() {
    const int64_t source = AddServer("source");
    RunJobs();
    const domain::Image image = SaveImage(grid_, caller_, source);
    RunJobs();
    EXPECT_TRUE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
    return image;
  }

  // Queues what the reconciler's pass finds due and runs it.
  void PassAndRunJobs() {
    MakeReconciler().RunOnce();
    RunJobs();
  }

  std::optional<domain::Image> Visible(int64_t id) {
    return db_.Read(
        [&](store::Connection& c) { return store::images::GetVisible(c, caller_.account_id, id); });
  }
};

TEST_F(TrashRetentionTest, ATrashedImagesVolumeIsPurgedOnceItsRetentionHasPassed) {
  const domain::Image image = SavedImage();
  grid_.DeleteImage(caller_, ById(image.id));
  clock_.AdvanceMs(kRetentionMs - 1);
  PassAndRunJobs();
  EXPECT_TRUE(hypervisor_->VolumeExists(image.storage_pool, image.volume)) << "purged early";
  ASSERT_TRUE(Visible(image.id).has_value());
  EXPECT_EQ(Visible(image.id)->state, domain::image_state::kTrash);

  clock_.AdvanceMs(1);
  PassAndRunJobs();
  EXPECT_FALSE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
  const domain::Job job = LastJob(image.id);
  EXPECT_EQ(job.command, domain::job_command::kDeleteServerImage);
  EXPECT_EQ(job.state, job_state::kSucceeded) << job.error.value_or("(no error)");
  // Gone for the customer: not listed, not restorable; the row (and so its id) stays.
  EXPECT_FALSE(Visible(image.id).has_value());
  EXPECT_THROW(grid_.RestoreImage(caller_, ById(image.id)), gridd::ApiError);
  auto row = db_.Read([&](store::Connection& c) { return store::images::GetAny(c, image.id); });
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->state, domain::image_state::kDeleted);
  // Purged once: later passes queue nothing for it.
  EXPECT_EQ(QueueTrashPurges(db_, clock_, kRetentionMs), 0);
}

TEST_F(TrashRetentionTest, AnImageServersStillRunOnWaitsForTheLastOfThem) {
  const domain::Image image = SavedImage();
  const int64_t user = AddServer("built-from-it", "512MB", image.name);
  RunJobs();
  grid_.DeleteImage(caller_, ById(image.id));
  clock_.AdvanceMs(2 * kRetentionMs);
  PassAndRunJobs();
  // The server's disk is an overlay on the image's volume: it stays while the server does.
  EXPECT_TRUE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
  EXPECT_EQ(Visible(image.id)->state, domain::image_state::kTrash);
  EXPECT_EQ(hypervisor_->State(DomainName(user)), PowerState::kRunning);

  grid_.DeleteServer(caller_, ById(user));
  RunJobs();
  PassAndRunJobs();
  EXPECT_FALSE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
  EXPECT_FALSE(Visible(image.id).has_value());
}

TEST_F(TrashRetentionTest, ARestoredImageIsKeptAndZeroRetentionKeepsTrashForever) {
  const domain::Image image = SavedImage();
  grid_.DeleteImage(caller_, ById(image.id));
  clock_.AdvanceMs(kRetentionMs / 2);
  grid_.RestoreImage(caller_, ById(image.id));
  clock_.AdvanceMs(kRetentionMs);
  PassAndRunJobs();
  EXPECT_TRUE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
  EXPECT_EQ(Visible(image.id)->state, domain::image_state::kAvailable);

  // Retention restarts at the next delete; with retention 0 nothing is ever purged.
  grid_.DeleteImage(caller_, ById(image.id));
  clock_.AdvanceMs(100 * kRetentionMs);
  Reconciler(db_, *hosts_, nullptr, clock_, nullptr, ReconcilerOptions{}).RunOnce();
  RunJobs();
  EXPECT_TRUE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
  EXPECT_EQ(Visible(image.id)->state, domain::image_state::kTrash);
}

TEST_F(TrashRetentionTest, AnImageCannotBeRestoredWhileItsPurgeIsQueued) {
  const domain::Image image = SavedImage();
  grid_.DeleteImage(caller_, ById(image.id));
  clock_.AdvanceMs(kRetentionMs);
  ASSERT_EQ(QueueTrashPurges(db_, clock_, kRetentionMs), 1);
  EXPECT_THROW(grid_.RestoreImage(caller_, ById(image.id)), gridd::ApiError);
  RunJobs();
  EXPECT_FALSE(hypervisor_->VolumeExists(image.storage_pool, image.volume));
}

}  // namespace
}  // namespace gridd::jobs
