// The gauges that describe what gridd manages right now: the job queue, servers by state, IP
// pool use, hosts by state. They are read from the database (and the hypervisor) when
// /metrics is scraped, so they are never stale and cost nothing between scrapes.
#pragma once

#include "gridd/common/clock.h"
#include "gridd/common/metrics.h"
#include "gridd/jobs/hosts.h"
#include "gridd/store/database.h"

namespace gridd::jobs {

// Sets gridd_job_queue_depth, gridd_jobs_processing, gridd_job_oldest_queued_age_seconds,
// gridd_servers{state}, gridd_ip_addresses{datacenter,type,state} and gridd_hosts{state} in
// `registry`. Hosts: "Up", "Unreachable" (Down) or "Maintenance", as gridd tracks them.
void RefreshStateMetrics(store::Database& db, HostRegistry& hosts, const Clock& clock,
                         metrics::Registry& registry = metrics::Default());

}  // namespace gridd::jobs
