// Job handlers that make the load-balancing engine match the database, and the monitor that
// records each load balancer's health (from the engine's health checks) in its state.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/jobs/job_runner.h"
#include "gridd/lb/engine.h"
#include "gridd/store/database.h"

namespace gridd::jobs {

// The engine's desired configuration: every load balancer that is not being deleted.
std::vector<lb::BalancerSpec> DesiredBalancers(store::Connection& c);

// Registers the handlers for Create/Update/DeleteLoadBalancer.
void RegisterLoadBalancerJobs(JobRunner& runner, store::Database& db,
                              lb::LoadBalancerEngine& engine, const Clock& clock);

// Every `interval` reads the engine's status and writes On / Unavailable / Unknown into the
// state of load balancers that have no job pending.
class LoadBalancerMonitor {
 public:
  LoadBalancerMonitor(store::Database& db, lb::LoadBalancerEngine& engine, const Clock& clock,
                      std::chrono::milliseconds interval);
  ~LoadBalancerMonitor();
  void Start();
  void Stop();
  // One pass, on the calling thread.
  void Poll();

 private:
  store::Database& db_;
  lb::LoadBalancerEngine& engine_;
  const Clock& clock_;
  std::chrono::milliseconds interval_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace gridd::jobs
