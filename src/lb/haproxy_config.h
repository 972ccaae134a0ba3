// Internal helpers around haproxy.cfg shared by the engine and its tests.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gridd/lb/engine.h"

namespace gridd::lb {

// The balancer ids of a configuration written by RenderHaproxyConfig (its "frontend lb_<id>"
// lines); lets the engine report on a configuration it finds on disk at start.
std::set<int64_t> BalancerIdsInConfig(std::string_view config);

// The listening endpoints ("ip:port", "[ipv6]:port") of a configuration's "bind" lines.
std::set<std::string> BindEndpointsInConfig(std::string_view config);

// Checks, by binding a socket, that each balancer's VIP:port not in `already_bound` can be
// listened on by this host. A reload whose new worker cannot bind would pause every
// balancer while haproxy retries, so gridd refuses such a change first. Throws EngineError.
void CheckVirtualIpsBindable(const std::vector<BalancerSpec>& balancers,
                             const std::set<std::string>& already_bound);

}  // namespace gridd::lb
