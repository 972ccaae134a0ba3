// The boundary between gridd and the software that carries load-balanced traffic. Job handlers
// hand the engine the whole desired set of balancers; the engine makes the running
// configuration exactly that set. Apply is idempotent, so a job re-run after a crash converges.
//
// Implementations are thread-safe: job workers, the reconciler and the API may call one engine
// at once (Apply calls are serialized inside).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gridd/common/process.h"

namespace gridd::lb {

enum class Algorithm { kRoundRobin, kLeastConnections };

// GoGrid's loadbalancer.persistence options.
enum class Persistence { kNone, kSslSticky, kSourceAddress };

struct Backend {
  std::string ip;  // an IPv4 or IPv6 literal; host names are refused (no DNS at reload time)
  uint16_t port = 0;
};

struct BalancerSpec {
  int64_t id = 0;
  std::string vip;  // an IPv4 or IPv6 literal
  uint16_t port = 0;
  Algorithm algorithm = Algorithm::kRoundRobin;
  Persistence persistence = Persistence::kNone;
  std::vector<Backend> backends;  // may be empty: the VIP then accepts and drops connections
};

enum class BalancerHealth {
  kUp,          // serving, at least one backend passes its health check
  kNoBackends,  // listening, but every backend is down (or there are none)
  kEngineDown,  // haproxy is not running
  kUnknown,     // installed but not (yet) reported by the running worker
};

const char* BalancerHealthName(BalancerHealth health);

struct BalancerStatus {
  BalancerHealth health = BalancerHealth::kUnknown;
  int backends_up = 0;
  int backends_total = 0;
  uint64_t bytes_in = 0;   // client → balancer, since the current worker started
  uint64_t bytes_out = 0;  // balancer → client
};

// Every engine failure. The message carries the engine's own words (haproxy's alerts), because
// that is what an operator needs to fix the cause.
// The engine's failures; one type with the process helpers' errors, which it passes on.
using EngineError = ProcessError;

class LoadBalancerEngine {
 public:
  LoadBalancerEngine() = default;
  LoadBalancerEngine(const LoadBalancerEngine&) = delete;
  LoadBalancerEngine& operator=(const LoadBalancerEngine&) = delete;
  virtual ~LoadBalancerEngine() = default;

  // Starts a fresh engine process with the last installed configuration (an empty one on first
  // use) and begins supervising it. Returns once it serves. Throws EngineError (and leaves
  // nothing running) when it cannot start. Already started: no-op.
  virtual void Start() = 0;
  // Stops the engine process and its supervisor. Idempotent; the destructor calls it.
  virtual void Stop() = 0;

  // Makes the running configuration exactly `balancers` (the whole desired set): renders it,
  // validates it, installs it and reloads without dropping established connections. On any
  // failure it throws EngineError with the engine's message and the previous configuration keeps
  // serving. The same set twice does not reload twice. Before Start (or after Stop) the set is
  // validated and installed, and the next Start runs it.
  virtual void Apply(const std::vector<BalancerSpec>& balancers) = 0;

  // Health and traffic of every installed balancer, by balancer id.
  virtual std::map<int64_t, BalancerStatus> Status() = 0;

  // True while the engine process is alive.
  virtual bool running() const = 0;
};

struct HaproxyOptions {
  std::string binary = "/usr/sbin/haproxy";
  // Holds haproxy.cfg, the master and stats sockets, haproxy.pid and haproxy.log. The socket
  // paths must fit in a sockaddr_un (about 100 bytes).
  std::filesystem::path run_dir;
  // How often the supervisor checks the master process; also the base of its restart backoff.
  std::chrono::milliseconds supervise_interval{500};
  int health_check_interval_ms = 1000;
  // Upper bound for a start or a reload to complete.
  std::chrono::milliseconds ready_timeout{10000};
};

std::unique_ptr<LoadBalancerEngine> MakeHaproxyEngine(HaproxyOptions options);

// The haproxy.cfg for a set of balancers (pure; exposed for golden-file tests). Balancers come
// out ordered by id. Throws EngineError for input that must never reach haproxy: addresses that
// are not IP literals, duplicate ids or duplicate VIP:port pairs, unquotable paths.
std::string RenderHaproxyConfig(const std::vector<BalancerSpec>& balancers,
                                const HaproxyOptions& options);

}  // namespace gridd::lb
