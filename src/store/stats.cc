#include "gridd/store/stats.h"

#include "gridd/domain/lookups.h"

namespace gridd::store::stats {

QueueStats Queue(Connection& c) {
  QueueStats out;
  auto st = c.Prepare(
      "SELECT state, COUNT(*), MIN(created_ms) FROM jobs WHERE state IN (?1, ?2) GROUP BY state");
  st.Bind(1, domain::job_state::kQueued).Bind(2, domain::job_state::kProcessing);
  while (st.Step()) {
    if (st.Int(0) == domain::job_state::kQueued) {
      out.queued = st.Int(1);
      out.oldest_queued_created_ms = st.OptionalInt(2);
    } else {
      out.processing = st.Int(1);
    }
  }
  return out;
}

std::map<int64_t, int64_t> ServersByState(Connection& c) {
  std::map<int64_t, int64_t> out;
  auto st = c.Prepare("SELECT state, COUNT(*) FROM servers GROUP BY state");
  while (st.Step()) out[st.Int(0)] = st.Int(1);
  return out;
}

std::map<IpUse, int64_t> IpAddresses(Connection& c) {
  std::map<IpUse, int64_t> out;
  auto st = c.Prepare(
      "SELECT d.name, p.public, i.state, COUNT(*) FROM ips i JOIN ip_pools p ON p.id = i.pool_id "
      "JOIN datacenters d ON d.id = p.datacenter_id GROUP BY d.name, p.public, i.state");
  while (st.Step()) out[IpUse{st.Text(0), st.Int(1) != 0, st.Int(2)}] = st.Int(3);
  return out;
}

}  // namespace gridd::store::stats
