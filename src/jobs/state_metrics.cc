#include "gridd/jobs/state_metrics.h"

#include <spdlog/spdlog.h>

#include "gridd/domain/lookups.h"
#include "gridd/store/stats.h"

namespace gridd::jobs {

void RefreshStateMetrics(store::Database& db, HostRegistry& hosts, const Clock& clock,
                         metrics::Registry& registry) {
  struct Snapshot {
    store::stats::QueueStats queue;
    std::map<int64_t, int64_t> servers;
    std::map<store::stats::IpUse, int64_t> ips;
  };
  const Snapshot snapshot = db.Read([](store::Connection& c) {
    return Snapshot{store::stats::Queue(c), store::stats::ServersByState(c),
                    store::stats::IpAddresses(c)};
  });
  const int64_t now_ms = clock.NowMs();

  registry.Gauge("gridd_job_queue_depth", "Jobs queued and not yet claimed by a worker.")
      .Set({}, static_cast<double>(snapshot.queue.queued));
  registry.Gauge("gridd_jobs_processing", "Jobs a worker is carrying out.")
      .Set({}, static_cast<double>(snapshot.queue.processing));
  registry
      .Gauge("gridd_job_oldest_queued_age_seconds",
             "Age of the oldest queued job (0 when the queue is empty).")
      .Set({}, snapshot.queue.oldest_queued_created_ms
                   ? static_cast<double>(
                         std::max<int64_t>(now_ms - *snapshot.queue.oldest_queued_created_ms, 0)) /
                         1000.0
                   : 0.0);

  // Every state appears, zero included, so that dashboards need no "absent" special case.
  std::map<metrics::LabelValues, double> servers;
  for (const auto& option : *domain::FixedLookup("server.state")) {
    auto it = snapshot.servers.find(option.id);
    servers[{option.name}] = it == snapshot.servers.end() ? 0.0 : static_cast<double>(it->second);
  }
  registry.Gauge("gridd_servers", "Servers by state.", {"state"}).Replace(std::move(servers));

  std::map<metrics::LabelValues, double> ips;
  for (const auto& [use, count] : snapshot.ips) {
    const char* state = use.state == domain::ip_state::kAssigned ? "Assigned" : "Unassigned";
    ips[{use.datacenter, use.is_public ? "Public" : "Private", state}] +=
        static_cast<double>(count);
  }
  registry
      .Gauge("gridd_ip_addresses", "Addresses of the IP pools, by datacenter, type and state.",
             {"datacenter", "type", "state"})
      .Replace(std::move(ips));

  // Hosts by the state gridd tracks (the connection layer marks them Down); a host in
  // maintenance counts as Maintenance whatever its connection.
  double up = 0, down = 0, maintenance = 0;
  for (const auto& host : hosts.AllHosts()) {
    if (host.host.maintenance) {
      ++maintenance;
    } else if (host.hypervisor != nullptr && host.host.state == domain::host_state::kUp) {
      ++up;
    } else {
      ++down;
    }
  }
  registry.Gauge("gridd_hosts", "Hypervisor hosts by state.", {"state"})
      .Replace({{{"Up"}, up}, {{"Unreachable"}, down}, {{"Maintenance"}, maintenance}});
}

}  // namespace gridd::jobs
