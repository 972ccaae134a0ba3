// Runs LibvirtHypervisor against libvirt's real test driver. Every test opens its own
// connection to config/test-node.xml, and each test:///file connection has private state.
#include "virt/libvirt_hypervisor.h"

#include <gtest/gtest.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>

#include "support/test_paths.h"
#include "test_servers.h"
#include "virt/libvirt_handles.h"

namespace gridd::virt {
namespace {

using testing::kImage;
using testing::kPool;
using testing::kPublicNet;
constexpr const char* kForeignDomainXml = R"(<domain type='test'>
  <name>customer-pet</name>
  <memory unit='MiB'>256</memory>
  <os><type>hvm</type></os>
</domain>)";

std::string NodeUri() {
  return "test://" + (gridd::testing::SourceDir() / "config" / "test-node.xml").string();
}

size_t CountOccurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++count;
  }
  return count;
}

template <typename Fn>
HypervisorErrorKind KindOf(Fn&& fn) {
  try {
    fn();
  } catch (const HypervisorError& error) {
    return error.kind();
  }
  ADD_FAILURE() << "expected HypervisorError";
  return HypervisorErrorKind::kInternal;
}

class LibvirtHypervisorTest : public ::testing::Test {
 protected:
  void SetUp() override { hypervisor_ = std::make_unique<LibvirtHypervisor>(NodeUri()); }

  DomainSpec Spec(int64_t id) { return testing::TestServerSpec(id); }
  DomainSpec CreateServer(int64_t id) { return testing::CreateTestServer(*hypervisor_, id); }

  std::string VolumeXml(const std::string& volume) {
    auto conn = hypervisor_->ConnectionForTest();
    PoolHandle pool(virStoragePoolLookupByName(conn.get(), kPool));
    VolumeHandle vol(virStorageVolLookupByName(pool.get(), volume.c_str()));
    if (!vol) return "";
    return TakeString(virStorageVolGetXMLDesc(vol.get(), 0));
  }

  std::string DomainXml(const std::string& name) {
    auto conn = hypervisor_->ConnectionForTest();
    DomainHandle domain(virDomainLookupByName(conn.get(), name.c_str()));
    if (!domain) return "";
    return TakeString(virDomainGetXMLDesc(domain.get(), VIR_DOMAIN_XML_INACTIVE));
  }

  void DefineForeignDomain() {
    auto conn = hypervisor_->ConnectionForTest();
    DomainHandle domain(virDomainDefineXML(conn.get(), kForeignDomainXml));
    ASSERT_TRUE(domain) << TakeLastError().message;
  }

  std::unique_ptr<LibvirtHypervisor> hypervisor_;
};

TEST_F(LibvirtHypervisorTest, DescribesTheTestNode) {
  EXPECT_EQ(hypervisor_->uri(), NodeUri());
  EXPECT_TRUE(hypervisor_->volatile_state());
  HostCapacity capacity = hypervisor_->Capacity();
  EXPECT_EQ(capacity.memory_mib, 65536u);
  EXPECT_EQ(capacity.cpus, 16u);
  for (const char* image : {"debian-12-amd64.qcow2", "ubuntu-22.04-amd64.qcow2",
                            "centos-7-x86_64.qcow2", "alpine-3.18-x86_64.qcow2"}) {
    EXPECT_TRUE(hypervisor_->VolumeExists(kPool, image)) << image;
  }
  EXPECT_FALSE(hypervisor_->VolumeExists(kPool, "gridd-1.qcow2"));
  EXPECT_TRUE(hypervisor_->ListGriddDomains().empty());
  EXPECT_NO_THROW(hypervisor_->NetworkXmlForTest("gridd-private-1"));
  EXPECT_EQ(KindOf([&] { hypervisor_->NetworkXmlForTest("default"); }),
            HypervisorErrorKind::kNotFound);
}

TEST_F(LibvirtHypervisorTest, ConnectionFailureIsAHypervisorError) {
  EXPECT_THROW(ConnectLibvirt("test:///nonexistent/gridd/node.xml"), HypervisorError);
  // An unreachable daemon is worth retrying.
  const auto socket = gridd::testing::MakeTempDir("gridd-virt") / "missing.sock";
  try {
    ConnectLibvirt("qemu+unix:///system?socket=" + socket.string());
    FAIL() << "expected HypervisorError";
  } catch (const HypervisorError& error) {
    EXPECT_TRUE(error.retryable()) << error.what();
    EXPECT_EQ(std::string(error.what()).rfind("connect to qemu+unix:///system", 0), 0u)
        << error.what();
  }
  std::filesystem::remove_all(socket.parent_path());
  auto other = ConnectLibvirt(NodeUri());
  EXPECT_EQ(other->uri(), NodeUri());
}

TEST_F(LibvirtHypervisorTest, EnsureDiskCreatesOverlayOnce) {
  const DiskSpec disk{kPool, kImage, "gridd-7.qcow2"};
  hypervisor_->EnsureDisk(disk);
  EXPECT_TRUE(hypervisor_->VolumeExists(kPool, "gridd-7.qcow2"));
  const std::string xml = VolumeXml("gridd-7.qcow2");
  EXPECT_NE(xml.find("<backingStore>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("/var/lib/gridd/images/debian-12-amd64.qcow2"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<capacity unit='bytes'>4294967296</capacity>"), std::string::npos) << xml;

  EXPECT_NO_THROW(hypervisor_->EnsureDisk(disk));
  EXPECT_EQ(VolumeXml("gridd-7.qcow2"), xml);
}

TEST_F(LibvirtHypervisorTest, OverlaysDoNotExhaustThePool) {
  // Full clones would fill the test driver's fixed 100 GiB pool after about 24 servers.
  for (int i = 0; i < 50; ++i) {
    hypervisor_->EnsureDisk(DiskSpec{kPool, kImage, "gridd-" + std::to_string(i) + ".qcow2"});
  }
  EXPECT_TRUE(hypervisor_->VolumeExists(kPool, "gridd-49.qcow2"));
}

TEST_F(LibvirtHypervisorTest, EnsureDiskErrors) {
  try {
    hypervisor_->EnsureDisk(DiskSpec{kPool, "no-such-image.qcow2", "gridd-8.qcow2"});
    FAIL() << "expected HypervisorError";
  } catch (const HypervisorError& error) {
    EXPECT_EQ(error.kind(), HypervisorErrorKind::kNotFound);
    EXPECT_NE(std::string(error.what()).find("ensure disk gridd-8.qcow2"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("no-such-image.qcow2"), std::string::npos)
        << error.what();
  }
  EXPECT_FALSE(hypervisor_->VolumeExists(kPool, "gridd-8.qcow2"));
  EXPECT_EQ(KindOf([&] {
              hypervisor_->EnsureDisk(DiskSpec{"nopool", kImage, "x.qcow2"});
            }),
            HypervisorErrorKind::kNotFound);
  EXPECT_EQ(KindOf([&] { hypervisor_->VolumeExists("nopool", kImage); }),
            HypervisorErrorKind::kNotFound);
}

TEST_F(LibvirtHypervisorTest, DeleteDiskIsIdempotent) {
  hypervisor_->EnsureDisk(DiskSpec{kPool, kImage, "gridd-7.qcow2"});
  hypervisor_->DeleteDisk(kPool, "gridd-7.qcow2");
  EXPECT_FALSE(hypervisor_->VolumeExists(kPool, "gridd-7.qcow2"));
  EXPECT_NO_THROW(hypervisor_->DeleteDisk(kPool, "gridd-7.qcow2"));
  EXPECT_TRUE(hypervisor_->VolumeExists(kPool, kImage));
}

TEST_F(LibvirtHypervisorTest, CopyVolumeMakesAStandaloneCopyInTheStatedFormat) {
  hypervisor_->EnsureDisk(DiskSpec{kPool, kImage, "gridd-7.qcow2"});
  hypervisor_->CopyVolume(kPool, "gridd-7.qcow2", "gridd-image-a.qcow2", "qcow2");
  const std::string xml = VolumeXml("gridd-image-a.qcow2");
  ASSERT_FALSE(xml.empty());
  EXPECT_EQ(xml.find("<backingStore>"), std::string::npos) << "a copy needs no backing file\n"
                                                           << xml;
  EXPECT_NE(xml.find("<format type='qcow2'/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<capacity unit='bytes'>4294967296</capacity>"), std::string::npos) << xml;
  // The source is untouched, and a server's disk can be an overlay on the copy.
  EXPECT_TRUE(hypervisor_->VolumeExists(kPool, "gridd-7.qcow2"));
  hypervisor_->EnsureDisk(DiskSpec{kPool, "gridd-image-a.qcow2", "gridd-8.qcow2"});
  EXPECT_NE(VolumeXml("gridd-8.qcow2").find("/var/lib/gridd/images/gridd-image-a.qcow2"),
            std::string::npos);
}

TEST_F(LibvirtHypervisorTest, CopyVolumeReplacesALeftoverAndFailsWithoutLeavingOne) {
  hypervisor_->EnsureDisk(DiskSpec{kPool, kImage, "gridd-7.qcow2"});
  // A leftover of an interrupted copy (here: an overlay) is replaced by a real copy.
  hypervisor_->EnsureDisk(DiskSpec{kPool, kImage, "gridd-image-b.qcow2"});
  hypervisor_->CopyVolume(kPool, "gridd-7.qcow2", "gridd-image-b.qcow2", "qcow2");
  EXPECT_EQ(VolumeXml("gridd-image-b.qcow2").find("<backingStore>"), std::string::npos);

  EXPECT_EQ(KindOf([&] {
              hypervisor_->CopyVolume(kPool, "gridd-missing.qcow2", "gridd-image-c.qcow2", "qcow2");
            }),
            HypervisorErrorKind::kNotFound);
  EXPECT_FALSE(hypervisor_->VolumeExists(kPool, "gridd-image-c.qcow2"));

  // Each full copy reserves the source's 4 GiB in the 100 GiB pool: the copy that does not
  // fit fails with libvirt's reason and leaves nothing behind.
  std::string failure;
  int copies = 0;
  for (int i = 0; i < 30 && failure.empty(); ++i) {
    const std::string target = "gridd-image-fill-" + std::to_string(i) + ".qcow2";
    try {
      hypervisor_->CopyVolume(kPool, "gridd-7.qcow2", target, "qcow2");
      ++copies;
    } catch (const HypervisorError& error) {
      failure = error.what();
      EXPECT_FALSE(error.retryable()) << failure;
      EXPECT_FALSE(hypervisor_->VolumeExists(kPool, target));
    }
  }
  EXPECT_GT(copies, 0);
  EXPECT_NE(failure.find("space"), std::string::npos) << failure;
  EXPECT_NE(failure.find("copy volume gridd-7.qcow2"), std::string::npos) << failure;
}

TEST_F(LibvirtHypervisorTest, DefineStartShutdownCycle) {
  CreateServer(7);
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kShutOff);

  hypervisor_->Start("gridd-7");
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kRunning);
  EXPECT_NO_THROW(hypervisor_->Start("gridd-7"));
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kRunning);

  hypervisor_->Shutdown("gridd-7", 5);
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kShutOff);
  EXPECT_NO_THROW(hypervisor_->Shutdown("gridd-7", 5));

  hypervisor_->Reboot("gridd-7");  // off: starts it
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kRunning);
  hypervisor_->Reboot("gridd-7");
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kRunning);

  hypervisor_->PowerOff("gridd-7");
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kShutOff);
  EXPECT_NO_THROW(hypervisor_->PowerOff("gridd-7"));
}

TEST_F(LibvirtHypervisorTest, DomainXmlUsesVolumePathAndExplicitFormat) {
  CreateServer(7);
  const std::string xml = DomainXml("gridd-7");
  EXPECT_NE(xml.find("<domain type='test'>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<source file='/var/lib/gridd/images/gridd-7.qcow2'/>"), std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<driver name='qemu' type='qcow2'/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<mac address='52:54:00:00:00:07'/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<source network='gridd-public-1'/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("urn:gridd:domain:1"), std::string::npos) << xml;
}

TEST_F(LibvirtHypervisorTest, RedefineUpdatesTheConfig) {
  DomainSpec spec = CreateServer(7);
  hypervisor_->Start("gridd-7");
  const std::string before = DomainXml("gridd-7");

  spec.memory_mib = 2048;
  spec.vcpus = 2;
  spec.hostname = "renamed";
  hypervisor_->DefineDomain(spec);
  const std::string after = DomainXml("gridd-7");
  EXPECT_NE(after.find("<memory unit='KiB'>2097152</memory>"), std::string::npos) << after;
  EXPECT_NE(after.find(">2</vcpu>"), std::string::npos) << after;
  EXPECT_NE(after.find("renamed"), std::string::npos) << after;
  // Same domain (UUID kept), still running.
  const auto uuid_of = [](const std::string& xml) {
    const size_t start = xml.find("<uuid>");
    return xml.substr(start, xml.find("</uuid>") - start);
  };
  EXPECT_EQ(uuid_of(before), uuid_of(after));
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kRunning);
  EXPECT_EQ(hypervisor_->ListGriddDomains().size(), 1u);
}

TEST_F(LibvirtHypervisorTest, DefineDomainWithoutDiskIsNotFound) {
  EXPECT_EQ(KindOf([&] { hypervisor_->DefineDomain(Spec(7)); }), HypervisorErrorKind::kNotFound);
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kMissing);
}

TEST_F(LibvirtHypervisorTest, UndefineRunningDomainAndAgain) {
  CreateServer(7);
  hypervisor_->Start("gridd-7");
  hypervisor_->UndefineDomain("gridd-7");
  EXPECT_EQ(hypervisor_->State("gridd-7"), PowerState::kMissing);
  EXPECT_NO_THROW(hypervisor_->UndefineDomain("gridd-7"));
  EXPECT_NO_THROW(hypervisor_->UndefineDomain("gridd-never-existed"));
  EXPECT_TRUE(hypervisor_->ListGriddDomains().empty());
}

TEST_F(LibvirtHypervisorTest, MissingDomainErrors) {
  EXPECT_EQ(hypervisor_->State("gridd-404"), PowerState::kMissing);
  try {
    hypervisor_->Start("gridd-404");
    FAIL() << "expected HypervisorError";
  } catch (const HypervisorError& error) {
    EXPECT_EQ(error.kind(), HypervisorErrorKind::kNotFound);
    EXPECT_EQ(std::string(error.what()).rfind("start domain gridd-404: ", 0), 0u) << error.what();
  }
  EXPECT_EQ(KindOf([&] { hypervisor_->Reboot("gridd-404"); }), HypervisorErrorKind::kNotFound);
  EXPECT_NO_THROW(hypervisor_->PowerOff("gridd-404"));
  EXPECT_NO_THROW(hypervisor_->Shutdown("gridd-404", 1));
}

TEST_F(LibvirtHypervisorTest, ForeignDomainsAreNeverTouched) {
  DefineForeignDomain();
  CreateServer(7);

  auto domains = hypervisor_->ListGriddDomains();
  ASSERT_EQ(domains.size(), 1u);
  EXPECT_EQ(domains[0].name, "gridd-7");

  for (auto action :
       std::vector<std::function<void()>>{[&] { hypervisor_->UndefineDomain("customer-pet"); },
                                          [&] { hypervisor_->Start("customer-pet"); },
                                          [&] { hypervisor_->PowerOff("customer-pet"); },
                                          [&] { hypervisor_->Shutdown("customer-pet", 1); },
                                          [&] { hypervisor_->Reboot("customer-pet"); },
                                          [&] {
                                            DomainSpec spec = Spec(7);
                                            spec.name = "customer-pet";
                                            hypervisor_->DefineDomain(spec);
                                          }}) {
    EXPECT_EQ(KindOf(action), HypervisorErrorKind::kInvalid);
  }
  EXPECT_EQ(hypervisor_->State("customer-pet"), PowerState::kShutOff);
  EXPECT_EQ(DomainXml("customer-pet").find("gridd"), std::string::npos);
}

TEST_F(LibvirtHypervisorTest, ListsGriddDomainsWithIdsAndState) {
  CreateServer(7);
  CreateServer(12);
  hypervisor_->Start("gridd-12");
  auto domains = hypervisor_->ListGriddDomains();
  std::sort(domains.begin(), domains.end(),
            [](const GriddDomain& a, const GriddDomain& b) { return a.server_id < b.server_id; });
  ASSERT_EQ(domains.size(), 2u);
  EXPECT_EQ(domains[0].name, "gridd-7");
  EXPECT_EQ(domains[0].server_id, 7);
  EXPECT_EQ(domains[0].account_id, 3);
  EXPECT_EQ(domains[0].state, PowerState::kShutOff);
  EXPECT_EQ(domains[1].name, "gridd-12");
  EXPECT_EQ(domains[1].server_id, 12);
  EXPECT_EQ(domains[1].state, PowerState::kRunning);
}

TEST_F(LibvirtHypervisorTest, HostileCustomerTextIsAccepted) {
  DomainSpec spec = Spec(7);
  spec.hostname = "<script>alert('x')</script> & \"Café\" ☕";
  spec.description = "]]> <!-- \x01 \xFF --> &amp;";
  hypervisor_->EnsureDisk(DiskSpec{kPool, kImage, spec.disk_volume});
  hypervisor_->DefineDomain(spec);
  const std::string xml = DomainXml("gridd-7");
  EXPECT_NE(xml.find("&lt;script&gt;alert('x')&lt;/script&gt; &amp; \"Café\" ☕"), std::string::npos)
      << xml;
  auto domains = hypervisor_->ListGriddDomains();
  ASSERT_EQ(domains.size(), 1u);
  EXPECT_EQ(domains[0].server_id, 7);
}

TEST_F(LibvirtHypervisorTest, DhcpReservationIsIdempotent) {
  const DhcpReservation reservation{kPublicNet, "52:54:00:00:00:07", "192.0.2.7", "Web Server 7",
                                    7};
  hypervisor_->EnsureDhcpReservation(reservation);
  hypervisor_->EnsureDhcpReservation(reservation);
  std::string xml = hypervisor_->NetworkXmlForTest(kPublicNet);
  EXPECT_EQ(CountOccurrences(xml, "<host "), 1u) << xml;
  EXPECT_NE(xml.find("<host mac='52:54:00:00:00:07' name='web-server-7' ip='192.0.2.7'/>"),
            std::string::npos)
      << xml;

  // Uppercase MAC is the same entry.
  DhcpReservation upper = reservation;
  upper.mac = "52:54:00:00:00:07";
  std::transform(upper.mac.begin(), upper.mac.end(), upper.mac.begin(), ::toupper);
  hypervisor_->EnsureDhcpReservation(upper);
  EXPECT_EQ(CountOccurrences(hypervisor_->NetworkXmlForTest(kPublicNet), "<host "), 1u);

  // Another address for the same MAC replaces the entry.
  DhcpReservation moved = reservation;
  moved.ip = "192.0.2.8";
  hypervisor_->EnsureDhcpReservation(moved);
  xml = hypervisor_->NetworkXmlForTest(kPublicNet);
  EXPECT_EQ(CountOccurrences(xml, "<host "), 1u) << xml;
  EXPECT_NE(xml.find("ip='192.0.2.8'"), std::string::npos) << xml;

  hypervisor_->RemoveDhcpReservation(moved);
  xml = hypervisor_->NetworkXmlForTest(kPublicNet);
  EXPECT_EQ(CountOccurrences(xml, "<host "), 0u) << xml;
  EXPECT_NO_THROW(hypervisor_->RemoveDhcpReservation(moved));
}

TEST_F(LibvirtHypervisorTest, DhcpNamesAreUniqueLabels) {
  hypervisor_->EnsureDhcpReservation({kPublicNet, "52:54:00:00:00:07", "192.0.2.7", "web", 7});
  hypervisor_->EnsureDhcpReservation({kPublicNet, "52:54:00:00:00:08", "192.0.2.8", "Web", 8});
  hypervisor_->EnsureDhcpReservation({kPublicNet, "52:54:00:00:00:09", "192.0.2.9", "☕", 9});
  const std::string xml = hypervisor_->NetworkXmlForTest(kPublicNet);
  EXPECT_EQ(CountOccurrences(xml, "<host "), 3u) << xml;
  EXPECT_NE(xml.find("name='web' ip='192.0.2.7'"), std::string::npos) << xml;
  EXPECT_NE(xml.find("name='web-525400000008' ip='192.0.2.8'"), std::string::npos) << xml;
  EXPECT_NE(xml.find("name='server-9' ip='192.0.2.9'"), std::string::npos) << xml;
}

TEST_F(LibvirtHypervisorTest, DhcpReservationTakesOverStaleAddress) {
  hypervisor_->EnsureDhcpReservation({kPublicNet, "52:54:00:00:00:07", "192.0.2.7", "old", 7});
  hypervisor_->EnsureDhcpReservation({kPublicNet, "52:54:00:00:00:70", "192.0.2.7", "new", 70});
  const std::string xml = hypervisor_->NetworkXmlForTest(kPublicNet);
  EXPECT_EQ(CountOccurrences(xml, "<host "), 1u) << xml;
  EXPECT_NE(xml.find("mac='52:54:00:00:00:70'"), std::string::npos) << xml;
}

TEST_F(LibvirtHypervisorTest, DhcpOnNetworkWithoutDhcpRangeAndMissingNetwork) {
  hypervisor_->EnsureDhcpReservation(
      {"gridd-private-1", "52:54:00:00:00:07", "198.51.100.7", "db", 7});
  EXPECT_NE(hypervisor_->NetworkXmlForTest("gridd-private-1").find("ip='198.51.100.7'"),
            std::string::npos);
  EXPECT_EQ(KindOf([&] {
              hypervisor_->EnsureDhcpReservation(
                  {"no-such-net", "52:54:00:00:00:07", "192.0.2.7", "x", 7});
            }),
            HypervisorErrorKind::kNotFound);
}

TEST_F(LibvirtHypervisorTest, ConcurrentWorkersShareTheConnection) {
  constexpr int kWorkers = 8;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      try {
        const int64_t id = 100 + w;
        DomainSpec spec = CreateServer(id);
        hypervisor_->Start(spec.name);
        hypervisor_->EnsureDhcpReservation(
            {kPublicNet, spec.mac, "192.0.2." + std::to_string(id), spec.hostname, id});
        if (hypervisor_->State(spec.name) != PowerState::kRunning) ++failures;
        hypervisor_->Reboot(spec.name);
        hypervisor_->Shutdown(spec.name, 2);
        hypervisor_->UndefineDomain(spec.name);
        hypervisor_->DeleteDisk(kPool, spec.disk_volume);
      } catch (const std::exception& error) {
        ADD_FAILURE() << error.what();
        ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(hypervisor_->ListGriddDomains().empty());
  EXPECT_EQ(CountOccurrences(hypervisor_->NetworkXmlForTest(kPublicNet), "<host "),
            static_cast<size_t>(kWorkers));
}

}  // namespace
}  // namespace gridd::virt
