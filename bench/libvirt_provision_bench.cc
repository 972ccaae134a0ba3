// The reference for the provisioning benchmark in bench/run: the libvirt calls gridd makes to
// bring up one server (copy-on-write clone of the image volume, domain definition, DHCP
// reservation, start), made directly through gridd's libvirt layer in a loop, with no API,
// database or job queue in between. Prints one line of JSON.
//
//   gridd_libvirt_provision_bench --uri test:///path/node.xml --network NET --first-ip A.B.C.D
//                                 [--servers N] [--pool gridd] [--image VOLUME]
#include <arpa/inet.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "gridd/domain/grid_service.h"
#include "gridd/virt/hypervisor.h"

int main(int argc, char** argv) {
  CLI::App app{"Server provisioning straight through libvirt, the reference for bench/run"};
  std::string uri;
  std::string network;
  std::string first_ip;
  std::string pool = "gridd";
  std::string image = "debian-12-amd64.qcow2";
  int servers = 2000;
  app.add_option("--uri", uri, "libvirt URI (the test driver's node file)")->required();
  app.add_option("--network", network, "libvirt network for the DHCP reservations")->required();
  app.add_option("--first-ip", first_ip, "first address to reserve; the next ones follow")
      ->required();
  app.add_option("--pool", pool, "storage pool");
  app.add_option("--image", image, "image volume to clone");
  app.add_option("--servers", servers, "servers to provision");
  CLI11_PARSE(app, argc, argv);

  in_addr base{};
  if (inet_pton(AF_INET, first_ip.c_str(), &base) != 1) {
    std::cerr << "gridd_libvirt_provision_bench: bad --first-ip\n";
    return 1;
  }
  try {
    auto hypervisor = gridd::virt::ConnectLibvirt(uri);
    std::vector<double> latencies_ms;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < servers; ++i) {
      const auto begun = std::chrono::steady_clock::now();
      const int64_t id = 1'000'000 + i;
      in_addr address{};
      address.s_addr = htonl(ntohl(base.s_addr) + static_cast<uint32_t>(i));
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &address, text, sizeof text);

      gridd::virt::DomainSpec spec;
      spec.server_id = id;
      spec.account_id = 1;
      spec.name = fmt::format("gridd-{}", id);
      spec.hostname = fmt::format("direct-{:06}", i);
      spec.description = "benchmark server";
      spec.memory_mib = 1024;
      spec.vcpus = 1;
      spec.mac = gridd::domain::MacForServer(id);
      spec.network = network;
      spec.storage_pool = pool;
      spec.disk_volume = fmt::format("gridd-{}.qcow2", id);
      hypervisor->EnsureDisk(gridd::virt::DiskSpec{pool, image, spec.disk_volume});
      hypervisor->DefineDomain(spec);
      hypervisor->EnsureDhcpReservation(
          gridd::virt::DhcpReservation{network, spec.mac, text, spec.hostname, id});
      hypervisor->Start(spec.name);
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begun)
              .count());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::sort(latencies_ms.begin(), latencies_ms.end());
    auto percentile = [&](double p) {
      return latencies_ms[std::min(
          latencies_ms.size() - 1,
          static_cast<size_t>(p * static_cast<double>(latencies_ms.size())))];
    };
    std::cout << fmt::format(
        R"({{"servers":{},"seconds":{:.3f},"servers_per_second":{:.1f},"p50_ms":{:.3f},"p99_ms":{:.3f}}})"
        "\n",
        servers, seconds, servers / seconds, percentile(0.5), percentile(0.99));
  } catch (const std::exception& error) {
    std::cerr << "gridd_libvirt_provision_bench: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
