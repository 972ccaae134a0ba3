// The NoCloud seed every server boots with: cloud-init's meta-data, user-data (hostname and the
// root password as a SHA-512 crypt hash) and network-config (the assigned addresses), on an
// ISO 9660 volume labelled "cidata". Standard cloud images read it unchanged; gridd's test
// image reads the same files.
#pragma once

#include <cstdint>
#include <string>

namespace gridd::virt {

struct SeedFacts {
  int64_t server_id = 0;
  std::string hostname;       // the customer's server name; reduced to a DNS label
  std::string password_hash;  // "$6$…", crypt(3) SHA-512
  std::string mac;            // matches the NIC, when the server has one
  std::string address;        // IPv4 address
  std::string subnet;         // "<network>/<netmask>", as the IP's record shows it
};

struct SeedFiles {
  std::string meta_data;
  std::string user_data;
  std::string network_config;
};

// The three files' text. Throws HypervisorError(kInvalid) on a malformed subnet.
SeedFiles RenderSeed(const SeedFacts& facts);
// The hostname the seed gives the guest (a DNS label derived from the server name).
std::string SeedHostname(const SeedFacts& facts);

// An ISO 9660 image (Joliet and Rock Ridge names) labelled cidata holding the files, built with
// xorrisofs. Throws HypervisorError when xorrisofs is missing or fails.
std::string BuildSeedIso(const SeedFiles& files);

}  // namespace gridd::virt
