#include "gridd/jobs/job_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "gridd/common/log.h"
#include "gridd/common/metrics.h"
#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::jobs {
namespace {

// The command's GoGrid name ("CreateVirtualServer") for metrics; the id when it has none.
std::string CommandName(int64_t command) {
  for (const auto& option : *domain::FixedLookup("job.command")) {
    if (option.id == command) return option.name;
  }
  return std::to_string(command);
}

void RecordFinished(const domain::Job& job, const char* state, int64_t now_ms) {
  const std::string command = CommandName(job.command);
  metrics::JobsFinished().Increment({command, state});
  metrics::JobSeconds().Observe(
      {command}, static_cast<double>(std::max<int64_t>(now_ms - job.created_ms, 0)) / 1000.0);
}

// One run of a handler, shared between the worker and the thread that runs it: the worker may
// give up at the deadline and leave the thread to finish (or hang) alone.
struct HandlerRun {
  std::mutex mutex;
  std::condition_variable finished_cv;
  bool finished = false;
  // When the runner gives up on this run (steady clock).
  std::chrono::steady_clock::time_point deadline;
  FinalWrite final_write;
  std::string failure;
  bool retryable = false;
  // The host could not be reached (virt::HostUnavailableError): retried without counting
  // against max_attempts, since the host's own Down detection and the deadline bound it.
  bool host_unavailable = false;
  std::string waiting_for = "the job's handler to start";
};

thread_local HandlerRun* current_run = nullptr;

}  // namespace

std::optional<std::chrono::steady_clock::time_point> CurrentJobDeadline() {
  if (current_run == nullptr) return std::nullopt;
  return current_run->deadline;
}

void SetJobStep(std::string waiting_for) {
  if (current_run == nullptr) return;
  std::lock_guard<std::mutex> lock(current_run->mutex);
  current_run->waiting_for = std::move(waiting_for);
}

JobRunner::JobRunner(store::Database& db, const Clock& clock, JobRunnerOptions options)
    : db_(db), clock_(clock), options_(std::move(options)) {}

JobRunner::~JobRunner() { Stop(0); }

void JobRunner::Register(int64_t command, std::shared_ptr<JobHandler> handler) {
  handlers_[command] = std::move(handler);
}

int JobRunner::RequeueAbandoned() {
  return db_.Write([&](store::Connection& c) {
    // Any lease older than "now + lease" is from a process that no longer runs.
    const int64_t now = clock_.NowMs();
    return store::jobs::RequeueExpired(c, now + options_.lease_ms + 1, now);
  });
}

void JobRunner::Start() {
  const int requeued = RequeueAbandoned();
  if (requeued > 0)
    spdlog::info("jobs: {} job(s) interrupted by the last stop taken up again", requeued);
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = false;
  workers_wanted_ = static_cast<size_t>(options_.workers);
  for (size_t i = 0; i < workers_wanted_; ++i) StartWorkerLocked(i);
}

void JobRunner::StartWorkerLocked(size_t index) {
  if (index < workers_.size()) {
    // The thread of a worker that exited after an earlier reduction; it has returned.
    if (!worker_exited_[index]) return;
    workers_[index].join();
    workers_[index] = std::thread([this, index] { WorkerLoop(index); });
    worker_exited_[index] = false;
    return;
  }
  workers_.emplace_back([this, index] { WorkerLoop(index); });
  worker_exited_.push_back(false);
}

void JobRunner::SetWorkers(int workers) {
  if (workers < 1) throw std::invalid_argument("jobs: at least one worker is needed");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    options_.workers = workers;
    if (workers_.empty() || stopping_) return;  // not running: Start uses options_.workers
    workers_wanted_ = static_cast<size_t>(workers);
    for (size_t i = 0; i < workers_wanted_; ++i) StartWorkerLocked(i);
  }
  wake_.notify_all();  // surplus workers notice and exit
}

int JobRunner::workers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return options_.workers;
}

void JobRunner::Notify() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++notifications_;
  }
  wake_.notify_all();
}

bool JobRunner::Stop(int64_t grace_ms) {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    workers.swap(workers_);
    worker_exited_.clear();
  }
  wake_.notify_all();
  bool all_idle = true;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    all_idle = idle_.wait_for(lock, std::chrono::milliseconds(grace_ms),
                              [&] { return running_.load() == 0; });
  }
  // A handler abandoned at its deadline still uses the hypervisor and the database.
  if (hung_->load() > 0) all_idle = false;
  for (auto& worker : workers) {
    if (all_idle) {
      worker.join();
    } else {
      // A handler is inside a hypervisor call that cannot be interrupted; its job stays
      // Processing and is taken up again at the next start.
      worker.detach();
    }
  }
  return all_idle;
}

void JobRunner::WorkerLoop(size_t index) {
  while (true) {
    uint64_t seen = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      if (index >= workers_wanted_) {
        if (index < worker_exited_.size()) worker_exited_[index] = true;
        return;
      }
      seen = notifications_;
    }
    bool ran = false;
    try {
      ran = RunOnce();
    } catch (const std::exception& error) {
      spdlog::error("jobs: worker error: {}", error.what());
    }
    if (ran) continue;
    // Sleep until notified, until the next retry is due, or for the idle poll period.
    int64_t wait_ms = options_.idle_poll_ms;
    try {
      auto next = db_.Read([&](store::Connection& c) { return store::jobs::NextRunMs(c); });
      if (next) wait_ms = std::clamp<int64_t>(*next - clock_.NowMs(), 0, options_.idle_poll_ms);
    } catch (const std::exception& error) {
      spdlog::error("jobs: cannot read the queue: {}", error.what());
    }
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                   [&] { return stopping_ || notifications_ != seen || index >= workers_wanted_; });
  }
}

bool JobRunner::RunOnce() {
  std::optional<domain::Job> job;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !workers_.empty()) return false;
    ++running_;
  }
  struct RunningGuard {
    JobRunner& runner;
    ~RunningGuard() {
      {
        std::lock_guard<std::mutex> lock(runner.mutex_);
        --runner.running_;
      }
      runner.idle_.notify_all();
    }
  } guard{*this};
  job = db_.Write([&](store::Connection& c) {
    const int64_t now = clock_.NowMs();
    store::jobs::RequeueExpired(c, now, now);
    return store::jobs::Claim(c, now, options_.lease_ms);
  });
  if (!job) return false;
  Execute(*job);
  return true;
}

void JobRunner::Execute(const domain::Job& job) {
  // Every line logged while the job runs (here, in its handler, in the hypervisor) names it.
  log::ScopedFields job_fields(
      log::Fields{{"job", std::to_string(job.id)}, {"command", CommandName(job.command)}});
  spdlog::debug("jobs: job {} claimed, attempt {}", job.id, job.attempts);
  auto it = handlers_.find(job.command);
  std::string failure;
  bool retryable = false;
  bool host_unavailable = false;
  bool past_deadline = false;
  FinalWrite final_write;
  if (it == handlers_.end()) {
    failure = "gridd has no handler for job command " + std::to_string(job.command);
  } else {
    // The handler runs on a thread of its own, so a call that never returns (a hung
    // hypervisor) costs that thread, not this worker.
    auto deadline_it = options_.deadline_ms_by_command.find(job.command);
    const int64_t deadline_ms = deadline_it != options_.deadline_ms_by_command.end()
                                    ? deadline_it->second
                                    : options_.deadline_ms;
    auto run = std::make_shared<HandlerRun>();
    run->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
    std::shared_ptr<JobHandler> handler = it->second;
    std::thread([run, handler, job] {
      current_run = run.get();
      FinalWrite result;
      std::string error_text;
      bool error_retryable = false;
      bool error_host_unavailable = false;
      try {
        result = handler->Run(job);
      } catch (const virt::HostUnavailableError& error) {
        error_text = error.what();
        error_retryable = true;
        error_host_unavailable = true;
      } catch (const virt::HypervisorError& error) {
        error_text = error.what();
        error_retryable = error.retryable();
      } catch (const std::exception& error) {
        error_text = error.what();
      }
      std::lock_guard<std::mutex> lock(run->mutex);
      run->final_write = std::move(result);
      run->failure = std::move(error_text);
      run->retryable = error_retryable;
      run->host_unavailable = error_host_unavailable;
      run->finished = true;
      run->finished_cv.notify_all();
    }).detach();
    std::unique_lock<std::mutex> lock(run->mutex);
    if (run->finished_cv.wait_until(lock, run->deadline, [&] { return run->finished; })) {
      final_write = std::move(run->final_write);
      failure = std::move(run->failure);
      retryable = run->retryable;
      host_unavailable = run->host_unavailable;
    } else {
      past_deadline = true;
      failure = "deadline of " +
                (deadline_ms % 1000 == 0 ? std::to_string(deadline_ms / 1000) + " s"
                                         : std::to_string(deadline_ms) + " ms") +
                " passed while waiting for " + run->waiting_for;
      // Count the thread as hung until its call returns; its late result is discarded.
      hung_->fetch_add(1);
      lock.unlock();
      std::thread([run, hung = hung_] {
        std::unique_lock<std::mutex> wait_lock(run->mutex);
        run->finished_cv.wait(wait_lock, [&] { return run->finished; });
        hung->fetch_sub(1);
      }).detach();
    }
  }
  const int64_t now = clock_.NowMs();
  if (failure.empty()) {
    db_.Write([&](store::Connection& c) {
      if (final_write) final_write(c);
      store::jobs::Finish(c, job.id, domain::job_state::kSucceeded, std::nullopt, now);
    });
    RecordFinished(job, "Succeeded", now);
    spdlog::info("jobs: job {} ({} #{}) succeeded", job.id, job.object_name, job.object_id);
    return;
  }
  if (retryable && !past_deadline && (job.attempts < options_.max_attempts || host_unavailable)) {
    const int shift = std::min(job.attempts - 1, 20);
    const int64_t delay = std::min(options_.retry_base_ms << shift, options_.retry_max_ms);
    db_.Write([&](store::Connection& c) {
      store::jobs::Retry(c, job.id, now + delay,
                         "attempt " + std::to_string(job.attempts) + " failed: " + failure, now);
    });
    metrics::JobRetries().Increment({CommandName(job.command)});
    spdlog::warn("jobs: job {} attempt {} failed, retrying in {} ms: {}", job.id, job.attempts,
                 delay, failure);
    return;
  }
  if (retryable)
    failure = "gave up after " + std::to_string(job.attempts) + " attempts: " + failure;
  db_.Write([&](store::Connection& c) {
    if (it != handlers_.end()) {
      if (past_deadline) {
        it->second->OnDeadline(job, c);
      } else {
        it->second->OnFailure(job, c);
      }
    }
    store::jobs::Finish(c, job.id, domain::job_state::kFailed, failure, now);
  });
  RecordFinished(job, "Failed", now);
  spdlog::error("jobs: job {} failed: {}", job.id, failure);
}

}  // namespace gridd::jobs
