#include "lb/haproxy_config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <sstream>
#include <utility>

#include "gridd/lb/engine.h"

namespace gridd::lb {
namespace {

enum class Family { kV4, kV6 };

// Only IP literals reach the configuration: anything else could inject directives (spaces,
// newlines, '#') or make haproxy resolve names while reloading.
Family CheckIp(const std::string& ip, const std::string& what) {
  unsigned char buffer[16];
  if (inet_pton(AF_INET, ip.c_str(), buffer) == 1) return Family::kV4;
  if (inet_pton(AF_INET6, ip.c_str(), buffer) == 1) return Family::kV6;
  throw EngineError(what + " '" + ip + "' is not an IP address");
}

std::string Endpoint(const std::string& ip, uint16_t port, Family family) {
  const std::string host = family == Family::kV6 ? "[" + ip + "]" : ip;
  return host + ":" + std::to_string(port);
}

// haproxy's strong quoting: nothing inside single quotes is interpreted, so only a quote or a
// control character cannot be represented.
std::string Quote(const std::string& text) {
  for (unsigned char c : text) {
    if (c == '\'' || c < 0x20 || c == 0x7f) {
      throw EngineError("path cannot be used in haproxy.cfg: " + text);
    }
  }
  return "'" + text + "'";
}

void RenderPersistence(std::ostream& out, Persistence persistence, Family vip_family) {
  switch (persistence) {
    case Persistence::kNone:
      return;
    case Persistence::kSourceAddress:
      out << "    stick-table type " << (vip_family == Family::kV6 ? "ipv6" : "ip")
          << " size 100k expire 30m\n"
          << "    stick on src\n";
      return;
    case Persistence::kSslSticky:
      // Learns the TLS session id from the ServerHello and matches it in later ClientHellos
      // (offset 43 = record header 5 + handshake header 4 + version 2 + random 32). TLS 1.3
      // clients send a fresh id each time, so they fall back to the balance algorithm.
      out << "    stick-table type binary len 32 size 100k expire 30m\n"
          << "    acl clienthello req.ssl_hello_type 1\n"
          << "    acl serverhello res.ssl_hello_type 2\n"
          << "    tcp-request inspect-delay 5s\n"
          << "    tcp-request content accept if clienthello\n"
          << "    tcp-response content accept if serverhello\n"
          << "    stick on req.payload_lv(43,1) if clienthello\n"
          << "    stick store-response res.payload_lv(43,1) if serverhello\n";
      return;
  }
}

}  // namespace

const char* BalancerHealthName(BalancerHealth health) {
  switch (health) {
    case BalancerHealth::kUp:
      return "up";
    case BalancerHealth::kNoBackends:
      return "no-backends";
    case BalancerHealth::kEngineDown:
      return "engine-down";
    case BalancerHealth::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string RenderHaproxyConfig(const std::vector<BalancerSpec>& balancers,
                                const HaproxyOptions& options) {
  std::vector<const BalancerSpec*> ordered;
  ordered.reserve(balancers.size());
  for (const auto& balancer : balancers) ordered.push_back(&balancer);
  std::sort(ordered.begin(), ordered.end(),
            [](const BalancerSpec* a, const BalancerSpec* b) { return a->id < b->id; });

  std::set<int64_t> ids;
  std::set<std::pair<std::string, uint16_t>> listeners;
  for (const auto* balancer : ordered) {
    const std::string name = "balancer " + std::to_string(balancer->id);
    if (!ids.insert(balancer->id).second) throw EngineError(name + " appears twice");
    CheckIp(balancer->vip, name + ": virtual IP");
    // Two frontends on one address would both bind it (haproxy uses SO_REUSEPORT) and split
    // its traffic between them.
    if (!listeners.emplace(balancer->vip, balancer->port).second) {
      throw EngineError(name + ": " + balancer->vip + ":" + std::to_string(balancer->port) +
                        " is already used by another balancer");
    }
    for (const auto& backend : balancer->backends) CheckIp(backend.ip, name + ": real IP");
  }

  std::ostringstream out;
  out << "# Written by gridd from its database; it replaces this file on every change.\n"
      << "global\n"
      << "    stats socket " << Quote((options.run_dir / "stats.sock").string())
      << " mode 600 level admin expose-fd listeners\n"
      << "    # No hard-stop-after: after a reload, old workers keep serving the connections\n"
      << "    # they hold until those end.\n"
      << "\n"
      << "defaults\n"
      << "    mode tcp\n"
      << "    timeout connect 5s\n"
      << "    # Long-lived connections (databases, websockets) must survive idle periods.\n"
      << "    timeout client 1h\n"
      << "    timeout server 1h\n";

  for (const auto* balancer : ordered) {
    const std::string id = std::to_string(balancer->id);
    const Family vip_family = CheckIp(balancer->vip, "virtual IP");
    out << "\n"
        << "frontend lb_" << id << "\n"
        << "    bind " << Endpoint(balancer->vip, balancer->port, vip_family) << "\n"
        << "    default_backend be_" << id << "\n"
        << "\n"
        << "backend be_" << id << "\n"
        << "    balance "
        << (balancer->algorithm == Algorithm::kLeastConnections ? "leastconn" : "roundrobin")
        << "\n";
    RenderPersistence(out, balancer->persistence, vip_family);
    int index = 0;
    for (const auto& backend : balancer->backends) {
      out << "    server m" << ++index << " "
          << Endpoint(backend.ip, backend.port, CheckIp(backend.ip, "real IP")) << " check inter "
          << options.health_check_interval_ms << "\n";
    }
  }
  return out.str();
}

namespace {

// Calls fn(rest) for every line of `config` that starts with `prefix`, `rest` being the line
// after the prefix.
template <typename Fn>
void ForEachLineAfter(std::string_view config, std::string_view prefix, Fn&& fn) {
  size_t pos = 0;
  while (pos < config.size()) {
    size_t end = config.find('\n', pos);
    if (end == std::string_view::npos) end = config.size();
    const std::string_view line = config.substr(pos, end - pos);
    if (line.substr(0, prefix.size()) == prefix) fn(line.substr(prefix.size()));
    pos = end + 1;
  }
}

}  // namespace

std::set<int64_t> BalancerIdsInConfig(std::string_view config) {
  std::set<int64_t> ids;
  ForEachLineAfter(config, "frontend lb_", [&](std::string_view digits) {
    int64_t id = 0;
    const auto [ptr, error] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (error == std::errc() && ptr == digits.data() + digits.size()) ids.insert(id);
  });
  return ids;
}

std::set<std::string> BindEndpointsInConfig(std::string_view config) {
  std::set<std::string> endpoints;
  ForEachLineAfter(config, "    bind ", [&](std::string_view rest) {
    endpoints.emplace(rest.substr(0, rest.find(' ')));
  });
  return endpoints;
}

void CheckVirtualIpsBindable(const std::vector<BalancerSpec>& balancers,
                             const std::set<std::string>& already_bound) {
  for (const auto& balancer : balancers) {
    const Family family = CheckIp(balancer.vip, "virtual IP");
    const std::string endpoint = Endpoint(balancer.vip, balancer.port, family);
    if (already_bound.count(endpoint) != 0) continue;
    sockaddr_storage address{};
    socklen_t length = 0;
    if (family == Family::kV4) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
      v4->sin_family = AF_INET;
      v4->sin_port = htons(balancer.port);
      inet_pton(AF_INET, balancer.vip.c_str(), &v4->sin_addr);
      length = sizeof(sockaddr_in);
    } else {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(balancer.port);
      inet_pton(AF_INET6, balancer.vip.c_str(), &v6->sin6_addr);
      length = sizeof(sockaddr_in6);
    }
    const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      throw EngineError(std::string("cannot check ") + endpoint + ": " + std::strerror(errno));
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const int result = bind(fd, reinterpret_cast<sockaddr*>(&address), length);
    const int bind_errno = errno;
    close(fd);
    if (result != 0) {
      throw EngineError("virtual IP " + endpoint +
                        " cannot be used on this host: " + std::strerror(bind_errno));
    }
  }
}

}  // namespace gridd::lb
