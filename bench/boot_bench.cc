// gridd_boot_bench: what gridd adds to booting a real guest.
//
// In one run, ROUNDS times each:
//   gridd:  grid.server.add through the HTTP API of a real gridd (qemu:///embed) until the test
//           image's "gridd-guest hostname=" line appears in the server's console log; the server
//           is deleted afterwards.
//   direct: the same boot done by calling libvirt here, without gridd: a qcow2 overlay made with
//           qemu-img, a NoCloud seed ISO, an equivalent domain (same XML renderer, memory, disks
//           and console) defined and started on this program's own qemu:///embed, until the same
//           console line; then destroyed and undefined.
// Prints each round, the mean and minimum of both, and the ratio gridd / direct.
//
// Usage: gridd_boot_bench [ROUNDS] [DOMAIN_TYPE]   (default 3 rounds, at most 20; "qemu" or
// "kvm", default qemu). Needs the test image: scripts/build-test-image.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "support/api_client.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"
#include "gridd/virt/hypervisor.h"
#include "gridd/virt/seed.h"

namespace gridd::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kMaxRounds = 20;
constexpr auto kBootLimit = std::chrono::seconds(300);
constexpr const char* kBootLine = "gridd-guest hostname=";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Seconds from `start` until `path` contains the boot line; throws after kBootLimit.
double WaitForBootLine(const fs::path& path, Clock::time_point start) {
  while (Clock::now() - start < kBootLimit) {
    if (ReadAll(path).find(kBootLine) != std::string::npos) {
      return std::chrono::duration<double>(Clock::now() - start).count();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("no boot line in " + path.string());
}

void Check(bool ok, const std::string& what) {
  if (ok) return;
  const virErrorPtr error = virGetLastError();
  throw std::runtime_error(what + ": " + (error && error->message ? error->message : "failed"));
}

double BootThroughGridd(DaemonProcess& daemon, ApiClient& client, int round) {
  const std::string name = "bench-" + std::to_string(round);
  const auto ips =
      client.Call("grid/ip/list", {{"ip.type", "Public"}, {"ip.state", "Unassigned"}}).json();
  const std::string ip = ips["list"].at(0)["ip"];
  const auto start = Clock::now();
  auto added = client.Call("grid/server/add", {{"name", name},
                                               {"image", "testimg"},
                                               {"server.ram", "512MB"},
                                               {"ip", ip}});
  if (added.status != 200) throw std::runtime_error("server.add: " + added.body);
  // The id is known once the server is listed (at once; add answers without it).
  int64_t id = 0;
  const auto listed = client.Call("grid/server/list", {}).json();
  for (const auto& server : listed["list"]) {
    if (server["name"] == name) id = server["id"];
  }
  if (id == 0) throw std::runtime_error("server " + name + " not listed");
  const double seconds = WaitForBootLine(
      daemon.data_dir() / "console" / ("gridd-" + std::to_string(id) + ".log"), start);
  client.Call("grid/server/delete", {{"id", std::to_string(id)}});
  // Bounded wait for the delete, so rounds do not overlap.
  for (int i = 0; i < 600; ++i) {
    bool present = false;
    const auto servers = client.Call("grid/server/list", {}).json();
    for (const auto& server : servers["list"]) present = present || server["name"] == name;
    if (!present) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return seconds;
}

double BootDirectly(virConnectPtr conn, const fs::path& dir, const fs::path& image,
                    const std::string& domain_type, int round) {
  const std::string name = "direct-" + std::to_string(round);
  const fs::path disk = dir / (name + ".qcow2");
  const fs::path seed = dir / (name + "-seed.iso");
  const fs::path console = dir / (name + ".log");
  const auto start = Clock::now();
  const CommandResult created =
      RunCommand("/usr/bin/qemu-img create -q -f qcow2 -F qcow2 -b " + ShellQuote(image.string()) +
                 " " + ShellQuote(disk.string()) + " 2>&1");
  if (created.exit_code != 0) throw std::runtime_error("qemu-img: " + created.output);
  virt::SeedFacts facts;
  facts.server_id = round;
  facts.hostname = name;
  facts.password_hash = "$6$benchsalt$x";
  facts.address = "203.0.113.10";
  facts.subnet = "203.0.113.0/255.255.255.0";
  std::ofstream(seed, std::ios::binary) << virt::BuildSeedIso(virt::RenderSeed(facts));

  virt::DomainSpec spec;
  spec.server_id = round;
  spec.account_id = 1;
  spec.name = name;
  spec.hostname = name;
  spec.memory_mib = 512;
  spec.vcpus = 1;
  spec.domain_type = domain_type;
  spec.seed_path = seed.string();
  spec.console_log = console.string();
  const std::string xml = virt::RenderDomainXml(spec, disk.string(), "qcow2");
  virDomainPtr domain = virDomainDefineXML(conn, xml.c_str());
  Check(domain != nullptr, "define " + name);
  Check(virDomainCreate(domain) == 0, "start " + name);
  const double seconds = WaitForBootLine(console, start);
  virDomainDestroy(domain);
  virDomainUndefine(domain);
  virDomainFree(domain);
  fs::remove(disk);
  fs::remove(seed);
  return seconds;
}

void Print(const char* label, const std::vector<double>& values) {
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  std::printf("%-8s mean %7.2f s   min %7.2f s   (", label, mean,
              *std::min_element(values.begin(), values.end()));
  for (size_t i = 0; i < values.size(); ++i) std::printf("%s%.2f", i ? " " : "", values[i]);
  std::printf(")\n");
}

int Run(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  if (rounds < 1 || rounds > kMaxRounds) {
    std::cerr << "usage: gridd_boot_bench [ROUNDS 1-" << kMaxRounds << "] [qemu|kvm]\n";
    return 2;
  }
  const std::string domain_type = argc > 2 ? argv[2] : "qemu";
  if (domain_type != "qemu" && domain_type != "kvm") {
    std::cerr << "domain type must be qemu or kvm\n";
    return 2;
  }
  const fs::path image = BinaryDir().parent_path() / "test-image" / "gridd-test.qcow2";
  const CommandResult built = RunCommand(ShellQuote((SourceDir() / "scripts" / "build-test-image").string()) +
                                         " " + ShellQuote(image.string()) + " 2>&1");
  if (built.exit_code != 0) throw std::runtime_error("build-test-image: " + built.output);

  // gridd with the same domain type, no NIC, its pool in its data dir.
  const fs::path config = ScratchDir("gridd-boot-bench-config") / "gridd.toml";
  std::ofstream(config) << "[libvirt]\nuri = \"qemu:///embed\"\ndomain_type = \"" << domain_type
                        << "\"\n[loadbalancer]\nenabled = false\n[log]\naccess_log = false\n"
                        << "[[datacenter]]\nid = 1\nname = \"US-West-1\"\ndescription = \"d\"\n"
                        << "[[ippool]]\ndatacenter = \"US-West-1\"\ntype = \"public\"\n"
                        << "cidr = \"203.0.113.0/24\"\nnetwork = \"\"\n";
  DaemonProcess daemon;
  daemon.set_config(config);
  daemon.Start();
  ApiClient client = daemon.Client();
  const CommandResult imported =
      RunGridctl(daemon.data_dir(), "image import testimg " + ShellQuote(image.string()));
  if (imported.exit_code != 0) throw std::runtime_error("image import: " + imported.output);

  // The direct path: this program's own embedded QEMU driver.
  const fs::path direct_root = ScratchDir("gridd-boot-bench-direct");
  const std::string uri = virt::PrepareLibvirtUri("qemu:///embed", direct_root);
  if (virEventRegisterDefaultImpl() < 0) throw std::runtime_error("libvirt event loop");
  std::thread([] {
    for (;;) virEventRunDefaultImpl();
  }).detach();
  virConnectPtr conn = virConnectOpen(uri.c_str());
  Check(conn != nullptr, "connect " + uri);

  std::printf("boot to console line, test image, domain type %s, %d round(s) each\n",
              domain_type.c_str(), rounds);
  std::vector<double> through_gridd, direct;
  for (int round = 1; round <= rounds; ++round) {
    // Alternate the order so neither path always runs on a warmer cache.
    if (round % 2 == 1) {
      direct.push_back(BootDirectly(conn, direct_root, image, domain_type, round));
      through_gridd.push_back(BootThroughGridd(daemon, client, round));
    } else {
      through_gridd.push_back(BootThroughGridd(daemon, client, round));
      direct.push_back(BootDirectly(conn, direct_root, image, domain_type, round));
    }
    std::printf("round %d: gridd %.2f s, direct %.2f s\n", round, through_gridd.back(),
                direct.back());
    std::fflush(stdout);
  }
  Print("gridd", through_gridd);
  Print("direct", direct);
  const double ratio = std::accumulate(through_gridd.begin(), through_gridd.end(), 0.0) /
                       std::accumulate(direct.begin(), direct.end(), 0.0);
  std::printf("ratio gridd/direct (means): %.3f\n", ratio);
  virConnectClose(conn);
  daemon.Stop();
  return 0;
}

}  // namespace
}  // namespace gridd::testing

int main(int argc, char** argv) {
  try {
    return gridd::testing::Run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "gridd_boot_bench: " << error.what() << '\n';
    return 1;
  }
}
