#include "gridd/virt/seed.h"

#include <arpa/inet.h>

#include <bit>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "gridd/common/crypto.h"
#include "gridd/common/process.h"
#include "gridd/virt/hypervisor.h"
#include "virt/xml_util.h"

namespace gridd::virt {
namespace {

namespace fs = std::filesystem;

constexpr auto kXorrisoTimeout = std::chrono::seconds(30);

uint32_t ParseIpv4(const std::string& text, const std::string& what) {
  in_addr address{};
  if (inet_pton(AF_INET, text.c_str(), &address) != 1) {
    throw HypervisorError(HypervisorErrorKind::kInvalid, what + ": not an IPv4 address: " + text);
  }
  return ntohl(address.s_addr);
}

std::string FormatIpv4(uint32_t value) {
  in_addr address{htonl(value)};
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &address, text, sizeof(text));
  return text;
}

// YAML double-quoted scalar: everything gridd writes is printable ASCII after DnsLabel and
// crypt, but quoting keeps a stray character from changing the document's structure.
std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Removes a scratch directory however the build ends.
struct ScratchDir {
  fs::path path;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

std::string SeedHostname(const SeedFacts& facts) {
  return DnsLabel(facts.hostname, "server-" + std::to_string(facts.server_id));
}

SeedFiles RenderSeed(const SeedFacts& facts) {
  const std::string hostname = SeedHostname(facts);
  SeedFiles files;
  files.meta_data = "instance-id: gridd-" + std::to_string(facts.server_id) + "\n" +
                    "local-hostname: " + hostname + "\n";
  files.user_data = "#cloud-config\n"
                    "hostname: " + hostname + "\n"
                    "ssh_pwauth: true\n"
                    "chpasswd:\n"
                    "  expire: false\n"
                    "  users:\n"
                    "    - name: root\n"
                    "      password: " + facts.password_hash + "\n"
                    "      type: hash\n";
  files.network_config = "version: 2\n";
  if (!facts.address.empty()) {
    const std::string what = "seed of server " + std::to_string(facts.server_id);
    const auto slash = facts.subnet.find('/');
    if (slash == std::string::npos) {
      throw HypervisorError(HypervisorErrorKind::kInvalid, what + ": bad subnet " + facts.subnet);
    }
    const uint32_t network = ParseIpv4(facts.subnet.substr(0, slash), what);
    const uint32_t netmask = ParseIpv4(facts.subnet.substr(slash + 1), what);
    ParseIpv4(facts.address, what);
    const int prefix = std::popcount(netmask);
    // The pool's first host is its network's gateway (gridd never hands it out).
    const std::string gateway = FormatIpv4(network + 1);
    files.network_config += "ethernets:\n"
                            "  eth0:\n";
    if (!facts.mac.empty()) {
      files.network_config += "    match:\n"
                              "      macaddress: " + Quoted(facts.mac) + "\n"
                              "    set-name: eth0\n";
    }
    files.network_config += "    addresses:\n"
                            "      - " + facts.address + "/" + std::to_string(prefix) + "\n"
                            "    gateway4: " + gateway + "\n";
  }
  return files;
}

std::string BuildSeedIso(const SeedFiles& files) {
  ScratchDir scratch{fs::temp_directory_path() / ("gridd-seed-" + RandomHex(8))};
  std::error_code ec;
  fs::create_directories(scratch.path / "files", ec);
  if (ec) {
    throw HypervisorError(HypervisorErrorKind::kInternal, "seed: " + ec.message());
  }
  auto write = [&](const char* name, const std::string& content) {
    std::ofstream out(scratch.path / "files" / name, std::ios::binary);
    out << content;
    if (!out) {
      throw HypervisorError(HypervisorErrorKind::kInternal, std::string("seed: cannot write ") + name);
    }
  };
  write("meta-data", files.meta_data);
  write("user-data", files.user_data);
  write("network-config", files.network_config);
  const fs::path iso = scratch.path / "seed.iso";
  CommandResult result;
  try {
    result = RunCommand({"/usr/bin/xorrisofs", "-quiet", "-o", iso.string(), "-V", "cidata", "-J", "-R",
                         (scratch.path / "files").string()},
                        kXorrisoTimeout);
  } catch (const ProcessError& error) {
    throw HypervisorError(HypervisorErrorKind::kInvalid,
                          std::string("seed: xorrisofs (package xorriso): ") + error.what());
  }
  if (result.exit_code != 0) {
    throw HypervisorError(HypervisorErrorKind::kInternal, "seed: xorrisofs failed: " + result.output);
  }
  std::ifstream in(iso, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (content.empty()) {
    throw HypervisorError(HypervisorErrorKind::kInternal, "seed: xorrisofs wrote nothing");
  }
  return content;
}

}  // namespace gridd::virt
