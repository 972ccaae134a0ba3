// gridd_scale_bench: placement at scale.
//
// 1. The scheduler alone (in this process): the cost of one placement decision (choose a host
//    and book its RAM, then give it back) with 20, 200 and 2,000 hosts, each already carrying
//    100 servers. The 20-host figure is the reference; the others are printed as ratios to it
//    (flat means about 1).
// 2. Through the API: a real gridd with HOSTS libvirt test-driver nodes (each its own node
//    file, added with `gridctl host add`), then SERVERS grid.server.add calls from THREADS
//    clients. Prints placements per second, the add latency, the spread over the hosts, and
//    gridd's resident memory; then the scheduler's decision cost at that size (HOSTS hosts
//    carrying SERVERS servers) measured like step 1.
//
// Usage: gridd_scale_bench [HOSTS] [SERVERS] [THREADS]   (default 200 20000 4)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gridd/domain/scheduler.h"
#include "support/api_client.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int64_t kHostRamMib = 64 * 1024;
constexpr int64_t kServerRamMib = 512;

// Mean nanoseconds of one Reserve + Release on a scheduler with `hosts` hosts in one
// datacenter, each carrying `servers_per_host` servers of kServerRamMib.
double DecisionNanos(int hosts, int64_t servers_per_host) {
  domain::Scheduler scheduler;
  for (int id = 1; id <= hosts; ++id) {
    domain::HostSlot slot;
    slot.id = id;
    slot.name = "h" + std::to_string(id);
    slot.datacenter_id = 1;
    slot.ram_mib = kHostRamMib;
    scheduler.Upsert(slot);
    scheduler.SetUse(id, servers_per_host * kServerRamMib, servers_per_host);
  }
  constexpr int kDecisions = 200000;
  int64_t sink = 0;
  const auto start = Clock::now();
  for (int i = 0; i < kDecisions; ++i) {
    auto host = scheduler.Reserve(1, kServerRamMib);
    if (!host) throw std::runtime_error("scheduler found no room");
    sink += *host;
    scheduler.Release(*host, kServerRamMib);
  }
  const double nanos = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  if (sink == 0) std::puts("");  // keeps the loop
  return nanos / kDecisions;
}

std::string NodeXml(int64_t ram_mib) {
  std::string text = TestNodeXml(ram_mib);
  // The bench's addresses (10.1.0.0/17) lie in the public network.
  return std::regex_replace(
      text, std::regex("<ip address='192\\.0\\.2\\.1' netmask='255\\.255\\.255\\.0'>"),
      "<ip address='10.1.255.254' netmask='255.255.0.0'>");
}

int64_t RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

int Run(int hosts, int servers, int threads) {
  std::printf("scheduler decision cost (choose + book + give back), hosts carrying 100 servers:\n");
  const double reference = DecisionNanos(20, 100);
  std::printf("  %5d hosts: %8.0f ns  (reference)\n", 20, reference);
  for (int count : {200, 2000}) {
    const double nanos = DecisionNanos(count, 100);
    std::printf("  %5d hosts: %8.0f ns  ratio %.2f to 20 hosts\n", count, nanos, nanos / reference);
  }

  const fs::path scratch = ScratchDir("gridd-scale-bench");
  std::ofstream(scratch / "gridd.toml") << [&] {
    std::ifstream in(SourceDir() / "config" / "gridd.toml");
    std::ostringstream read;
    read << in.rdbuf();
    std::string text = read.str();
    // Standalone (absolute node file), no rate limits (one client sends it all), no
    // load balancers (not measured here).
    text = std::regex_replace(text, std::regex("test://\\./test-node\\.xml"),
                              "test://" + (SourceDir() / "config" / "test-node.xml").string());
    text = std::regex_replace(text, std::regex("\\[ratelimit\\]\\nenabled = true"),
                              "[ratelimit]\nenabled = false");
    text = std::regex_replace(text, std::regex("\\[loadbalancer\\]\\nenabled = true"),
                              "[loadbalancer]\nenabled = false");
    return text;
  }();
  DaemonProcess daemon;
  daemon.set_config(scratch / "gridd.toml");
  daemon.Start();
  auto ctl = [&](const std::string& args) {
    auto result = RunGridctl(daemon.data_dir(), args);
    if (result.exit_code != 0) throw std::runtime_error("gridctl " + args + ": " + result.output);
    return result.output;
  };
  ctl("host maintenance default on");  // only the simulated hosts take servers
  ctl("ippool add --datacenter US-West-1 --type public --account " + daemon.account() +
      " --network gridd-public-1 10.1.0.0/17");
  const std::string node_text = NodeXml(kHostRamMib);
  const auto hosts_start = Clock::now();
  for (int i = 0; i < hosts; ++i) {
    const fs::path node = scratch / ("node-" + std::to_string(i) + ".xml");
    std::ofstream(node) << node_text;
    ctl("host add sim-" + std::to_string(i) + " " + ShellQuote("test://" + node.string()) +
        " --datacenter US-West-1");
  }
  const double hosts_seconds = std::chrono::duration<double>(Clock::now() - hosts_start).count();
  std::printf("\n%d test-driver hosts added with gridctl in %.1f s; gridd RSS %.1f MiB\n", hosts,
              hosts_seconds, static_cast<double>(RssKib(daemon.pid())) / 1024);

  ApiClient lister = daemon.Client();
  auto free_ips = lister.Call("grid/ip/list", {{"ip.type", "Public"}, {"ip.state", "Unassigned"}})
                      .json()["list"];
  std::vector<std::string> ips;
  for (const auto& ip : free_ips) {
    const std::string address = ip["ip"];
    if (address.rfind("10.1.", 0) == 0) ips.push_back(address);
  }
  if (static_cast<int>(ips.size()) < servers) {
    throw std::runtime_error("only " + std::to_string(ips.size()) + " addresses for " +
                             std::to_string(servers) + " servers");
  }

  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::mutex latency_mutex;
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(servers));
  const auto place_start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      ApiClient client = daemon.Client();
      std::vector<double> mine;
      for (int i = next++; i < servers; i = next++) {
        const auto start = Clock::now();
        auto reply = client.Call("grid/server/add", {{"name", "s" + std::to_string(i)},
                                                     {"image", "debian-12-amd64"},
                                                     {"server.ram", "512MB"},
                                                     {"ip", ips[static_cast<size_t>(i)]}});
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (reply.status != 200 && failed++ == 0) {
          std::fprintf(stderr, "server.add failed: %u %s\n", reply.status, reply.body.c_str());
        }
      }
      std::lock_guard<std::mutex> lock(latency_mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (auto& worker : workers) worker.join();
  const double place_seconds = std::chrono::duration<double>(Clock::now() - place_start).count();
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double p) {
    return latencies[std::min(latencies.size() - 1,
                              static_cast<size_t>(p * static_cast<double>(latencies.size())))];
  };
  std::printf(
      "%d servers placed through grid.server.add by %d clients in %.1f s: %.0f "
      "placements/s (%d failed)\n",
      servers, threads, place_seconds, servers / place_seconds, failed.load());
  std::printf("  add latency: median %.2f ms, p99 %.2f ms (create jobs run meanwhile)\n",
              percentile(0.5), percentile(0.99));
  const auto host_rows = nlohmann::json::parse(ctl("host list --json"));
  int64_t fewest = INT64_MAX, most = 0;
  for (const auto& row : host_rows) {
    if (row["name"] == "default") continue;
    fewest = std::min<int64_t>(fewest, row["servers"].get<int64_t>());
    most = std::max<int64_t>(most, row["servers"].get<int64_t>());
  }
  std::printf("  spread over %d hosts: %lld to %lld servers each\n", hosts,
              static_cast<long long>(fewest), static_cast<long long>(most));
  std::printf("  gridd RSS %.1f MiB\n", static_cast<double>(RssKib(daemon.pid())) / 1024);
  const double at_size = DecisionNanos(hosts, servers / std::max(hosts, 1));
  std::printf(
      "one scheduling decision at %d hosts carrying %d servers: %.0f ns (ratio %.2f to "
      "the 20-host reference)\n",
      hosts, servers, at_size, at_size / reference);
  daemon.Stop();
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace gridd::testing

int main(int argc, char** argv) {
  const int hosts = argc > 1 ? std::atoi(argv[1]) : 200;
  const int servers = argc > 2 ? std::atoi(argv[2]) : 20000;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 4;
  if (hosts < 1 || hosts > 5000 || servers < 1 || servers > 30000 || threads < 1 || threads > 64) {
    std::fprintf(stderr,
                 "usage: gridd_scale_bench [HOSTS 1-5000] [SERVERS 1-30000] [THREADS 1-64]\n");
    return 2;
  }
  try {
    return gridd::testing::Run(hosts, servers, threads);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gridd_scale_bench: %s\n", error.what());
    return 1;
  }
}
