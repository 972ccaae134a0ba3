// Counts over the whole database for the metrics endpoint (not scoped by account: only the
// operator's /metrics listener reads them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "gridd/store/database.h"

namespace gridd::store::stats {

struct QueueStats {
  int64_t queued = 0;                               // jobs waiting to be claimed (retries included)
  int64_t processing = 0;                           // jobs a worker holds
  std::optional<int64_t> oldest_queued_created_ms;  // creation time of the oldest queued job
};
QueueStats Queue(Connection& c);

// Servers by state option id (servers being deleted included).
std::map<int64_t, int64_t> ServersByState(Connection& c);

struct IpUse {
  std::string datacenter;
  bool is_public = true;
  int64_t state = 0;  // ip_state option id
  bool operator<(const IpUse& other) const {
    return std::tie(datacenter, is_public, state) <
           std::tie(other.datacenter, other.is_public, other.state);
  }
};
// Addresses of every pool, by datacenter, type and state.
std::map<IpUse, int64_t> IpAddresses(Connection& c);

}  // namespace gridd::store::stats
