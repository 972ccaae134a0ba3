// The persistent job queue's workers. Jobs are rows (store/); a worker claims the oldest
// runnable job with a lease, runs the handler for its command, and records the outcome in the
// same transaction as the handler's final writes. Jobs on one object run in order. Hypervisor
// errors that may pass (kTransient) are retried with exponential backoff; anything else fails
// the job with a message saying what went wrong.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/domain/entities.h"
#include "gridd/store/database.h"

namespace gridd::jobs {

// What a handler leaves to be written when its job succeeds (in the same transaction).
using FinalWrite = std::function<void(store::Connection&)>;

class JobHandler {
 public:
  virtual ~JobHandler() = default;
  // Carries the job out. Must be idempotent: after a crash it runs again from the start.
  // Throws virt::HypervisorError or any std::exception on failure.
  virtual FinalWrite Run(const domain::Job& job) = 0;
  // Called (in the transaction that marks the job Failed) when the job will not be retried.
  virtual void OnFailure(const domain::Job& job, store::Connection& c) = 0;
  // Called instead of OnFailure when the job passed its deadline while Run is still inside a
  // call that does not return; must leave the object in a defined state without calling that
  // (possibly hung) hypervisor or engine.
  virtual void OnDeadline(const domain::Job& job, store::Connection& c) { OnFailure(job, c); }
};

// Called by a handler before each step that waits on something outside gridd ("the hypervisor
// to start domain gridd-7"), so a job failed by its deadline says what it was waiting for.
void SetJobStep(std::string waiting_for);
// When the runner gives up on the job the calling thread runs (its command's deadline);
// nullopt outside a job. Lets a handler wait for a host to return for as long as it may.
std::optional<std::chrono::steady_clock::time_point> CurrentJobDeadline();

struct JobRunnerOptions {
  int workers = 4;
  int64_t lease_ms = 300'000;
  int max_attempts = 5;
  int64_t retry_base_ms = 1000;
  int64_t retry_max_ms = 60'000;
  int64_t idle_poll_ms = 1000;  // how often idle workers look for due retries and lost leases
  // Longest one run of a job's handler may take; then the job fails and its worker moves on.
  int64_t deadline_ms = 600'000;
  std::map<int64_t, int64_t> deadline_ms_by_command;
};

class JobRunner {
 public:
  JobRunner(store::Database& db, const Clock& clock, JobRunnerOptions options);
  ~JobRunner();

  // Registers the handler for a job.command id. Call before Start.
  void Register(int64_t command, std::shared_ptr<JobHandler> handler);

  // Puts every job left Processing by an earlier run back in the queue (gridd is the queue's
  // only consumer, so their worker is gone), then starts the worker threads.
  void Start();
  // Wakes idle workers: a job was queued.
  void Notify();
  // Changes the number of worker threads (a configuration reload). Before Start it only sets
  // the number Start uses; afterwards new workers start at once, and a worker beyond the new
  // number exits once its current job is done.
  void SetWorkers(int workers);
  int workers() const;
  // Stops claiming jobs and waits up to `grace_ms` for running handlers. Returns false when
  // some handler is still running; its job stays Processing and resumes at the next start.
  bool Stop(int64_t grace_ms);

  // Claims and runs at most one due job on the calling thread. For tests and tools.
  bool RunOnce();

  // Puts jobs left Processing back in the queue; returns how many (what Start does first).
  int RequeueAbandoned();

  // Handler runs given up at their deadline whose call has not returned yet.
  int hung_handlers() const { return hung_->load(); }

 private:
  void WorkerLoop(size_t index);
  void StartWorkerLocked(size_t index);
  void Execute(const domain::Job& job);

  store::Database& db_;
  const Clock& clock_;
  JobRunnerOptions options_;
  std::map<int64_t, std::shared_ptr<JobHandler>> handlers_;
  std::vector<std::thread> workers_;  // by index; a worker at or beyond workers_wanted_ exits
  std::vector<bool> worker_exited_;
  size_t workers_wanted_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  uint64_t notifications_ = 0;
  std::atomic<int> running_{0};
  std::shared_ptr<std::atomic<int>> hung_ = std::make_shared<std::atomic<int>>(0);
  std::condition_variable idle_;
};

}  // namespace gridd::jobs
