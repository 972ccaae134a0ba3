// Compares what the hypervisor and the load-balancing engine really run with what the database
// says (the intent) and repairs the difference through jobs, so every repair has a history the
// operator can read (grid.job.list, job command ReconcileVirtualServer):
//  - a server whose domain vanished: a job re-creates it (and starts it if the server is On);
//  - a guest whose power state differs (shut down from inside, crashed): a job records what
//    the hypervisor shows;
//  - a domain carrying gridd's metadata with no server row (an orphan): reported in the log and
//    by `gridctl reconcile`, removed only when the operator enables it;
//  - a domain of a server that now runs on another host (left on a host that was Down while
//    its servers were evacuated): removed, so two copies never run with one address;
// Every Up host is compared; a Down host's servers are left alone until it returns. A volatile
// host (libvirt's test driver) is compared on the domains it has materialised only: a server
// whose domain it has not built yet is not missing (HostRegistry::ForServer builds it).
//  - a load balancer the engine does not carry: an UpdateLoadBalancer job applies the set.
// Objects with a job Queued or Processing are left to that job.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/jobs/hosts.h"
#include "gridd/lb/engine.h"
#include "gridd/store/database.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::jobs {

struct ReconcilerOptions {
  bool remove_orphans = false;           // undefine gridd-tagged domains that have no server row
  int64_t image_trash_retention_ms = 0;  // purge trashed images' volumes after this; 0: never
};

struct ReconcileFinding {
  std::string kind;    // "missing-domain", "power-drift", "orphan-domain", "stale-domain", ...
  std::string object;  // "server 7", "domain gridd-9", "load balancer 3"
  std::string detail;
  std::string action;  // "job 42 queued", "reported", "removed"
};

struct ReconcileReport {
  int64_t finished_ms = 0;
  int domains = 0;
  int servers = 0;  // servers compared (placed on an Up host, or named by one of its domains)
  std::vector<ReconcileFinding> findings;
  nlohmann::ordered_json ToJson() const;
};

class Reconciler {
 public:
  // `engine` may be null (no load balancers). `on_job_queued` wakes the job runner.
  Reconciler(store::Database& db, HostRegistry& hosts, lb::LoadBalancerEngine* engine,
             const Clock& clock, std::function<void()> on_job_queued, ReconcilerOptions options);
  ~Reconciler();

  // One pass on the calling thread; queues the repair jobs and returns what it found. An
  // object whose last repair failed is only reported, unless `retry_failed_repairs` (gridd's
  // start and `gridctl reconcile`, once the operator has fixed the cause).
  ReconcileReport RunOnce(bool retry_failed_repairs = false);
  // The last pass's report (empty before the first).
  ReconcileReport LastReport();

  // Runs a pass every `interval` on a thread of its own (interval 0: never).
  void Start(std::chrono::seconds interval);
  void Stop();

 private:
  // One Up host's domains against the servers placed on it (on a volatile host, those whose
  // domain it has materialised); true when a job was queued.
  bool ReconcileHost(const domain::Host& host, virt::Hypervisor& hypervisor,
                     bool retry_failed_repairs, ReconcileReport& report);

  store::Database& db_;
  HostRegistry& hosts_;
  lb::LoadBalancerEngine* engine_;
  const Clock& clock_;
  std::function<void()> on_job_queued_;
  ReconcilerOptions options_;
  std::mutex run_mutex_;  // one pass at a time (periodic and gridctl)
  std::mutex mutex_;
  ReconcileReport last_;
  std::thread thread_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace gridd::jobs
