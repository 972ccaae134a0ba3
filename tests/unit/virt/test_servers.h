// The servers the virt tests create on libvirt's test driver (config/test-node.xml): the pool,
// image and network of that node file, and a server's domain as the create-server job makes it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "gridd/virt/hypervisor.h"

namespace gridd::virt::testing {

inline constexpr const char* kPool = "gridd";
inline constexpr const char* kImage = "debian-12-amd64.qcow2";
inline constexpr const char* kPublicNet = "gridd-public-1";

// Server `id` of account 3: 512 MiB, one vCPU, a MAC derived from the id.
inline DomainSpec TestServerSpec(int64_t id) {
  DomainSpec spec;
  spec.server_id = id;
  spec.account_id = 3;
  spec.name = "gridd-" + std::to_string(id);
  spec.hostname = "web " + std::to_string(id);
  spec.description = "test server";
  spec.memory_mib = 512;
  spec.vcpus = 1;
  char mac[18];
  std::snprintf(mac, sizeof(mac), "52:54:00:00:%02x:%02x", static_cast<int>((id >> 8) & 0xff),
                static_cast<int>(id & 0xff));
  spec.mac = mac;
  spec.network = kPublicNet;
  spec.storage_pool = kPool;
  spec.disk_volume = spec.name + ".qcow2";
  return spec;
}

// Disk plus definition, as the create-server job does it.
inline DomainSpec CreateTestServer(Hypervisor& host, int64_t id) {
  DomainSpec spec = TestServerSpec(id);
  host.EnsureDisk(DiskSpec{kPool, kImage, spec.disk_volume});
  host.DefineDomain(spec);
  return spec;
}

}  // namespace gridd::virt::testing
