// gridd_lb_bench: what a gridd load balancer (the HAProxy gridd supervises) costs per connection.
//
// Starts gridd on a private data directory, gives the initial account loopback addresses, starts
// one echo backend on 127.77.1.2 and puts a round-robin load balancer on 127.77.0.2 in front of
// it. Then, in the same run, it makes N sequential short connections (connect, read the
// backend's greeting line, echo one line, close) first directly to the backend, then through the
// load balancer's virtual IP, and prints connections per second, mean/p50/p99 latency of both
// and the ratio LB/direct. Stops the daemon at the end.
//
// Usage: gridd_lb_bench [CONNECTIONS]   (default 2000, at most 1000000)
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "integration/tcp_backends.h"
#include "support/api_client.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kDefaultConnections = 2000;
constexpr int kMaxConnections = 1000000;
constexpr int kWarmup = 50;
constexpr auto kIoTimeout = std::chrono::milliseconds(2000);
constexpr auto kReadyTimeout = std::chrono::seconds(30);
const std::string kVip = "127.77.0.2";
const std::string kRealIp = "127.77.1.2";

struct Figures {
  int ok = 0;
  int failed = 0;
  double seconds = 0;
  double rate = 0;  // successful connections per second
  double mean_us = 0, p50_us = 0, p99_us = 0;
};

double Percentile(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<size_t>(fraction * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

Figures Measure(const std::string& ip, uint16_t port, int connections) {
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(connections));
  Figures figures;
  const auto start = Clock::now();
  for (int i = 0; i < connections; ++i) {
    const auto before = Clock::now();
    const bool ok = AskBackend(ip, port, kIoTimeout).has_value();
    const auto after = Clock::now();
    if (!ok) {
      ++figures.failed;
      continue;
    }
    ++figures.ok;
    latencies.push_back(std::chrono::duration<double, std::micro>(after - before).count());
  }
  figures.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  figures.rate = figures.seconds > 0 ? figures.ok / figures.seconds : 0;
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    figures.mean_us = std::accumulate(latencies.begin(), latencies.end(), 0.0) /
                      static_cast<double>(latencies.size());
  }
  figures.p50_us = Percentile(latencies, 0.50);
  figures.p99_us = Percentile(latencies, 0.99);
  return figures;
}

void Print(const std::string& label, const std::string& target, const Figures& f) {
  std::printf(
      "%-7s %-22s connections=%d failed=%d time=%.3f s rate=%.1f conn/s mean=%.1f us "
      "p50=%.1f us p99=%.1f us\n",
      label.c_str(), target.c_str(), f.ok + f.failed, f.failed, f.seconds, f.rate, f.mean_us,
      f.p50_us, f.p99_us);
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

int Gridctl(const DaemonProcess& daemon, const std::string& args, std::string& output) {
  const std::string command = (BinaryDir() / "gridctl").string() + " --data-dir '" +
                              daemon.data_dir().string() + "' " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t got = 0;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, got);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

uint16_t PickPort() {
  const int base = 20000 + static_cast<int>(getpid() % 2000) * 20;
  for (int i = 0; i < 20; ++i) {
    const auto port = static_cast<uint16_t>(base + (19 + i) % 20);
    if (PortIsFree(kVip, port)) return port;
  }
  throw std::runtime_error("no free port on " + kVip + " in " + std::to_string(base) + "+20");
}

// The load balancer's state name, or "" when it is not listed.
std::string BalancerState(ApiClient& client, int64_t id) {
  auto reply = client.Call("grid/loadbalancer/get", {{"id", std::to_string(id)}});
  if (reply.status != 200) return "";
  return reply.json()["list"][0]["state"]["name"].get<std::string>();
}

int Bench(DaemonProcess& daemon, int connections) {
  std::printf("gridd %s:%u, data dir %s\n", daemon.host().c_str(), daemon.port(),
              daemon.data_dir().c_str());
  for (const char* pool : {"127.77.0.0/28", "127.77.1.0/28"}) {
    std::string output;
    if (Gridctl(daemon,
                std::string("ippool add --datacenter US-West-1 --type public --account default ") +
                    pool,
                output) != 0) {
      throw std::runtime_error("gridctl ippool add " + std::string(pool) + " failed: " + output);
    }
  }

  EchoBackend backend("bench", kRealIp);
  const uint16_t port = PickPort();
  ApiClient client = daemon.Client();
  auto reply =
      client.Call("grid/loadbalancer/add", {{"name", "bench"},
                                            {"virtualip.ip", kVip},
                                            {"virtualip.port", std::to_string(port)},
                                            {"loadbalancer.type", "Round Robin"},
                                            {"realiplist.0.ip", backend.ip()},
                                            {"realiplist.0.port", std::to_string(backend.port())}});
  if (reply.status != 200) throw std::runtime_error("grid.loadbalancer.add: " + reply.body);
  const int64_t id = reply.json()["list"][0]["id"].get<int64_t>();

  const auto deadline = Clock::now() + kReadyTimeout;
  std::string state;
  while ((state = BalancerState(client, id)) != "On" ||
         !AskBackend(kVip, port, kIoTimeout).has_value()) {
    if (Clock::now() > deadline) {
      throw std::runtime_error("load balancer " + std::to_string(id) + " not serving after " +
                               std::to_string(kReadyTimeout.count()) + " s (state '" + state +
                               "')");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  const std::string direct_target = backend.ip() + ":" + std::to_string(backend.port());
  const std::string lb_target = kVip + ":" + std::to_string(port);
  std::printf(
      "%d sequential connections each (connect, read greeting, echo one line, close), after %d "
      "warm-up connections\n",
      connections, kWarmup);
  Measure(backend.ip(), backend.port(), kWarmup);
  const Figures direct = Measure(backend.ip(), backend.port(), connections);
  Measure(kVip, port, kWarmup);
  const Figures via_lb = Measure(kVip, port, connections);

  Print("direct", direct_target, direct);
  Print("via-lb", lb_target, via_lb);
  std::printf("ratio lb/direct: rate=%.3f mean=%.3f p50=%.3f p99=%.3f\n",
              Ratio(via_lb.rate, direct.rate), Ratio(via_lb.mean_us, direct.mean_us),
              Ratio(via_lb.p50_us, direct.p50_us), Ratio(via_lb.p99_us, direct.p99_us));
  std::fflush(stdout);

  client.Call("grid/loadbalancer/delete", {{"id", std::to_string(id)}}, "POST");
  const int status = daemon.Stop();
  if (status != 0) std::fprintf(stderr, "gridd exited with status %d\n", status);
  return direct.failed == 0 && via_lb.failed == 0 && status == 0 ? 0 : 1;
}

int Run(int connections) {
  DaemonProcess daemon;
  daemon.Start();
  try {
    return Bench(daemon, connections);
  } catch (...) {
    const std::string log = daemon.LogText();
    std::fprintf(stderr, "--- gridd log (tail) ---\n%s\n---\n",
                 log.substr(log.size() > 4000 ? log.size() - 4000 : 0).c_str());
    throw;
  }
}

}  // namespace
}  // namespace gridd::testing

int main(int argc, char** argv) {
  int connections = gridd::testing::kDefaultConnections;
  if (argc > 2 ||
      (argc == 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help"))) {
    std::fprintf(stderr, "usage: %s [CONNECTIONS]  (1..%d, default %d)\n", argv[0],
                 gridd::testing::kMaxConnections, gridd::testing::kDefaultConnections);
    return 2;
  }
  if (argc == 2) {
    char* end = nullptr;
    const long value = std::strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || value < 1 || value > gridd::testing::kMaxConnections) {
      std::fprintf(stderr, "CONNECTIONS must be an integer in 1..%d, got '%s'\n",
                   gridd::testing::kMaxConnections, argv[1]);
      return 2;
    }
    connections = static_cast<int>(value);
  }
  try {
    return gridd::testing::Run(connections);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gridd_lb_bench: %s\n", error.what());
    return 1;
  }
}
