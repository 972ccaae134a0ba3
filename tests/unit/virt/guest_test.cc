// Real-guest pieces of the virt layer: the NoCloud seed, the qcow2 checks and the local pool
// used on qemu:///embed, and the domain XML of a guest with a seed and a console log.
#include <crypt.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gridd/common/crypto.h"
#include "gridd/virt/hypervisor.h"
#include "gridd/virt/seed.h"
#include "support/command.h"
#include "support/test_paths.h"
#include "virt/local_pool.h"

namespace gridd::virt {
namespace {

namespace fs = std::filesystem;
using testing::RunCommand;
using testing::ScratchDir;
using testing::ShellQuote;

SeedFacts WebFacts() {
  SeedFacts facts;
  facts.server_id = 12;
  facts.hostname = "Web Server #1";
  facts.password_hash = Sha512Crypt("s3cret");
  facts.mac = "52:54:00:00:00:0c";
  facts.address = "203.0.113.20";
  facts.subnet = "203.0.113.0/255.255.255.0";
  return facts;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void MakeQcow2(const fs::path& path, const std::string& extra = "") {
  const auto result = RunCommand("/usr/bin/qemu-img create -q -f qcow2 " + extra + " " +
                                 ShellQuote(path.string()) + " 1M 2>&1");
  ASSERT_EQ(result.exit_code, 0) << result.output;
}

TEST(SeedTest, CarriesHostnamePasswordHashAndAddress) {
  const SeedFacts facts = WebFacts();
  const SeedFiles files = RenderSeed(facts);
  // Customers name servers freely; the guest gets a valid DNS label.
  EXPECT_EQ(SeedHostname(facts), "web-server-1");
  EXPECT_NE(files.meta_data.find("instance-id: gridd-12\n"), std::string::npos) << files.meta_data;
  EXPECT_NE(files.meta_data.find("local-hostname: web-server-1\n"), std::string::npos);
  EXPECT_EQ(files.user_data.rfind("#cloud-config\n", 0), 0u) << files.user_data;
  EXPECT_NE(files.user_data.find("hostname: web-server-1\n"), std::string::npos);
  EXPECT_NE(files.user_data.find("password: " + facts.password_hash + "\n"), std::string::npos);
  EXPECT_NE(files.user_data.find("type: hash\n"), std::string::npos);
  EXPECT_NE(files.network_config.find("- 203.0.113.20/24\n"), std::string::npos)
      << files.network_config;
  EXPECT_NE(files.network_config.find("gateway4: 203.0.113.1\n"), std::string::npos);
  EXPECT_NE(files.network_config.find("macaddress: \"52:54:00:00:00:0c\""), std::string::npos);
}

TEST(SeedTest, RefusesAMalformedSubnet) {
  SeedFacts facts = WebFacts();
  facts.subnet = "203.0.113.0";
  EXPECT_THROW(RenderSeed(facts), HypervisorError);
  facts.subnet = "203.0.113.0/not-a-mask";
  EXPECT_THROW(RenderSeed(facts), HypervisorError);
}

TEST(SeedTest, IsAnIso9660VolumeLabelledCidata) {
  const SeedFiles files = RenderSeed(WebFacts());
  const std::string iso = BuildSeedIso(files);
  // The primary volume descriptor sits at 32 KiB: type 1, "CD001", the volume id at +40.
  ASSERT_GT(iso.size(), 0x8000u + 72);
  EXPECT_EQ(iso[0x8000], '\x01');
  EXPECT_EQ(iso.substr(0x8001, 5), "CD001");
  EXPECT_EQ(iso.substr(0x8000 + 40, 6), "cidata");
  // ISO 9660 stores file data as is.
  EXPECT_NE(iso.find(files.meta_data), std::string::npos);
  EXPECT_NE(iso.find(files.user_data), std::string::npos);
  EXPECT_NE(iso.find(files.network_config), std::string::npos);
  // The names cloud-init looks for survive through Rock Ridge.
  EXPECT_NE(iso.find("network-config"), std::string::npos);
}

TEST(Sha512CryptTest, VerifiesWithCryptAndSaltsEveryHash) {
  const std::string hash = Sha512Crypt("correct horse");
  ASSERT_EQ(hash.rfind("$6$", 0), 0u) << hash;
  crypt_data data{};
  EXPECT_EQ(std::string(crypt_r("correct horse", hash.c_str(), &data)), hash);
  EXPECT_NE(std::string(crypt_r("wrong horse", hash.c_str(), &data)), hash);
  EXPECT_NE(Sha512Crypt("correct horse"), hash);
}

TEST(Qcow2CheckTest, AcceptsStandaloneImagesAndRefusesEverythingElse) {
  const fs::path dir = ScratchDir("gridd-qcow2-check");
  MakeQcow2(dir / "good.qcow2");
  EXPECT_EQ(CheckQcow2(dir / "good.qcow2", "check"), 1024u * 1024u);

  std::ofstream(dir / "text.qcow2") << "plain text, not an image";
  EXPECT_THROW(CheckQcow2(dir / "text.qcow2", "check"), HypervisorError);
  // A backing file would let an image make QEMU read any file on the host.
  MakeQcow2(dir / "overlay.qcow2", "-F qcow2 -b " + ShellQuote((dir / "good.qcow2").string()));
  try {
    CheckQcow2(dir / "overlay.qcow2", "check");
    ADD_FAILURE() << "an image with a backing file was accepted";
  } catch (const HypervisorError& error) {
    EXPECT_NE(std::string(error.what()).find("backing file"), std::string::npos) << error.what();
  }
  try {
    CheckQcow2(dir / "missing.qcow2", "check");
    ADD_FAILURE() << "a missing file was accepted";
  } catch (const HypervisorError& error) {
    EXPECT_EQ(error.kind(), HypervisorErrorKind::kNotFound);
  }
}

TEST(LocalPoolTest, OverlaysAreBackedByTheImageWithExplicitFormats) {
  const fs::path dir = ScratchDir("gridd-local-pool") / "pool";
  LocalPool pool("gridd", dir);
  MakeQcow2(dir / "image.qcow2");
  pool.EnsureOverlay("image.qcow2", "gridd-1.qcow2");
  ASSERT_TRUE(pool.Exists("gridd-1.qcow2"));
  const auto info = RunCommand("/usr/bin/qemu-img info -U -f qcow2 --output=json " +
                               ShellQuote((dir / "gridd-1.qcow2").string()));
  EXPECT_NE(info.output.find("\"backing-filename-format\": \"qcow2\""), std::string::npos)
      << info.output;
  EXPECT_NE(info.output.find((dir / "image.qcow2").string()), std::string::npos);
  // Ensuring again keeps the existing disk (a re-run job must not wipe a guest's data).
  std::ofstream(dir / "gridd-1.qcow2", std::ios::app) << "guest data";
  const auto size = fs::file_size(dir / "gridd-1.qcow2");
  pool.EnsureOverlay("image.qcow2", "gridd-1.qcow2");
  EXPECT_EQ(fs::file_size(dir / "gridd-1.qcow2"), size);

  pool.Delete("gridd-1.qcow2");
  pool.Delete("gridd-1.qcow2");  // already gone: fine
  EXPECT_FALSE(pool.Exists("gridd-1.qcow2"));
}

TEST(LocalPoolTest, ACorruptImageLeavesNothingBehind) {
  const fs::path dir = ScratchDir("gridd-local-pool-corrupt") / "pool";
  LocalPool pool("gridd", dir);
  std::ofstream(dir / "broken.qcow2") << "garbage";
  EXPECT_THROW(pool.EnsureOverlay("broken.qcow2", "gridd-2.qcow2"), HypervisorError);
  EXPECT_THROW(pool.EnsureOverlay("absent.qcow2", "gridd-3.qcow2"), HypervisorError);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"broken.qcow2"});
}

TEST(LocalPoolTest, ImportsCheckedImagesAndRefusesNamesOutsideThePool) {
  const fs::path scratch = ScratchDir("gridd-local-pool-import");
  LocalPool pool("gridd", scratch / "pool");
  MakeQcow2(scratch / "source.qcow2");
  pool.Import("debian.qcow2", scratch / "source.qcow2");
  EXPECT_EQ(ReadFile(scratch / "pool" / "debian.qcow2"), ReadFile(scratch / "source.qcow2"));
  // Servers' overlays read the image: an existing name is never replaced.
  EXPECT_THROW(pool.Import("debian.qcow2", scratch / "source.qcow2"), HypervisorError);
  std::ofstream(scratch / "text") << "not an image";
  EXPECT_THROW(pool.Import("text.qcow2", scratch / "text"), HypervisorError);
  EXPECT_FALSE(pool.Exists("text.qcow2"));
  EXPECT_THROW(pool.WriteFile("../escape", "x"), HypervisorError);
  EXPECT_THROW(pool.WriteFile(".hidden", "x"), HypervisorError);
  EXPECT_FALSE(fs::exists(scratch / "escape"));
}

TEST(GuestDomainXmlTest, SeedIsReadOnlyRawAndConsoleGoesToTheFile) {
  DomainSpec spec;
  spec.server_id = 4;
  spec.account_id = 1;
  spec.name = "gridd-4";
  spec.domain_type = "kvm";
  spec.seed_path = "/pool/gridd-4-seed.iso";
  spec.console_log = "/data/console/gridd-4.log";
  const std::string xml = RenderDomainXml(spec, "/pool/gridd-4.qcow2", "qcow2");
  EXPECT_NE(xml.find("<domain type='kvm'>"), std::string::npos);
  EXPECT_NE(xml.find("<driver name='qemu' type='raw'/>\n      <source file='/pool/gridd-4-seed.iso'/>"
                     "\n      <target dev='vdb' bus='virtio'/>\n      <readonly/>"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<serial type='file'>\n      <source path='/data/console/gridd-4.log' "
                     "append='on'/>"),
            std::string::npos)
      << xml;
  // No network: no NIC at all.
  EXPECT_EQ(xml.find("<interface"), std::string::npos) << xml;
}

}  // namespace
}  // namespace gridd::virt
