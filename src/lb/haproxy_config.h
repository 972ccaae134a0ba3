// Internal helpers around haproxy.cfg shared by the engine and its tests.
#pragma once

#include <cstdint>
#include <set>
#include <string_view>

namespace gridd::lb {

// The balancer ids of a configuration written by RenderHaproxyConfig (its "frontend lb_<id>"
// lines); lets the engine report on a configuration it finds on disk at start.
std::set<int64_t> BalancerIdsInConfig(std::string_view config);

}  // namespace gridd::lb
