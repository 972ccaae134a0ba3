// JobRunner: the persistent job queue's claim/run/finish cycle, retries with backoff, per-object
// ordering and crash recovery. The queue is the unit under test; handlers are test doubles.
// Everything runs on the test thread through RunOnce() with a ManualClock, except the one test
// that starts worker threads.
#include "gridd/jobs/job_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::jobs {
namespace {

namespace job_state = domain::job_state;
using virt::HypervisorError;
using virt::HypervisorErrorKind;

constexpr int64_t kClockStartMs = 1'700'000'000'000;
constexpr int64_t kCommand = domain::job_command::kStartVirtualServer;

// Records every call; what Run does is up to the test.
class FakeHandler final : public JobHandler {
 public:
  std::function<FinalWrite(const domain::Job&)> run;
  std::function<void(const domain::Job&, store::Connection&)> on_failure;

  FinalWrite Run(const domain::Job& job) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      runs_.push_back(job);
    }
    return run ? run(job) : FinalWrite{};
  }

  void OnFailure(const domain::Job& job, store::Connection& c) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      failures_.push_back(job);
    }
    if (on_failure) on_failure(job, c);
  }

  std::vector<domain::Job> runs() {
    std::lock_guard<std::mutex> lock(mutex_);
    return runs_;
  }
  std::vector<domain::Job> failures() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
  }
  std::vector<int64_t> run_ids() {
    std::vector<int64_t> ids;
    for (const auto& job : runs()) ids.push_back(job.id);
    return ids;
  }

 private:
  std::mutex mutex_;
  std::vector<domain::Job> runs_;
  std::vector<domain::Job> failures_;
};

std::vector<int64_t> States(const domain::Job& job) {
  std::vector<int64_t> states;
  for (const auto& entry : job.history) states.push_back(entry.state);
  return states;
}

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    account_id_ = db_.Write(
        [&](store::Connection& c) { return store::accounts::Insert(c, "acme", kClockStartMs); });
    options_.workers = 2;
    options_.lease_ms = 300'000;
    options_.max_attempts = 5;
    options_.retry_base_ms = 1000;
    options_.retry_max_ms = 60'000;
    options_.idle_poll_ms = 1000;
  }

  JobRunner& Runner() {
    if (!runner_) {
      runner_ = std::make_unique<JobRunner>(db_, clock_, options_);
      runner_->Register(kCommand, handler_);
    }
    return *runner_;
  }

  int64_t InsertJob(int64_t object_id, int64_t command = kCommand) {
    return db_.Write([&](store::Connection& c) {
      domain::Job job;
      job.account_id = account_id_;
      job.object_type = domain::job_object_type::kVirtualServer;
      job.object_id = object_id;
      job.object_name = "server-" + std::to_string(object_id);
      job.command = command;
      job.owner = "test";
      return store::jobs::Insert(c, job, clock_.NowMs());
    });
  }

  domain::Job Job(int64_t id) {
    auto job = db_.Read([&](store::Connection& c) { return store::jobs::GetAny(c, id); });
    EXPECT_TRUE(job.has_value()) << "job " << id;
    return job.value_or(domain::Job{});
  }

  bool AccountExists(const std::string& name) {
    return db_.Read(
        [&](store::Connection& c) { return store::accounts::FindByName(c, name).has_value(); });
  }

  static FinalWrite Nothing(const domain::Job&) { return FinalWrite{}; }

  ManualClock clock_{kClockStartMs};
  store::Database db_{":memory:"};
  JobRunnerOptions options_;
  std::shared_ptr<FakeHandler> handler_ = std::make_shared<FakeHandler>();
  std::unique_ptr<JobRunner> runner_;
  int64_t account_id_ = 0;
};

TEST_F(JobRunnerTest, NothingToDo) {
  EXPECT_FALSE(Runner().RunOnce());
  EXPECT_TRUE(handler_->runs().empty());
}

TEST_F(JobRunnerTest, SuccessfulJobAppliesItsFinalWriteAndSucceeds) {
  const int64_t id = InsertJob(7);
  int64_t state_seen_by_final_write = 0;
  handler_->run = [&](const domain::Job& job) -> FinalWrite {
    EXPECT_EQ(job.id, id);
    EXPECT_EQ(job.state, job_state::kProcessing);
    EXPECT_EQ(job.attempts, 1);
    return [&, job_id = job.id](store::Connection& c) {
      state_seen_by_final_write = store::jobs::GetAny(c, job_id)->state;
      store::accounts::Insert(c, "written-by-job", clock_.NowMs());
    };
  };
  clock_.AdvanceMs(250);
  ASSERT_TRUE(Runner().RunOnce());

  const domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kSucceeded);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_FALSE(job.error.has_value());
  EXPECT_FALSE(job.lease_until_ms.has_value());
  EXPECT_EQ(job.updated_ms, kClockStartMs + 250);
  EXPECT_EQ(States(job), (std::vector<int64_t>{job_state::kCreated, job_state::kQueued,
                                               job_state::kProcessing, job_state::kSucceeded}));
  EXPECT_TRUE(AccountExists("written-by-job"));
  // The final write ran inside the transaction that finished the job, just before it.
  EXPECT_EQ(state_seen_by_final_write, job_state::kProcessing);
  EXPECT_EQ(handler_->runs().size(), 1u);
  EXPECT_TRUE(handler_->failures().empty());
  EXPECT_FALSE(Runner().RunOnce());
}

TEST_F(JobRunnerTest, FinalWriteAndSuccessCommitTogetherOrNotAtAll) {
  const int64_t id = InsertJob(7);
  handler_->run = [&](const domain::Job&) -> FinalWrite {
    return [&](store::Connection& c) {
      store::accounts::Insert(c, "half-written", clock_.NowMs());
      throw std::runtime_error("disk full");
    };
  };
  try {
    Runner().RunOnce();
  } catch (const std::exception&) {
    // Whether RunOnce reports it or not, the database must not show half the outcome.
  }
  EXPECT_FALSE(AccountExists("half-written"));
  EXPECT_NE(Job(id).state, job_state::kSucceeded);
}

TEST_F(JobRunnerTest, TransientErrorRequeuesWithBackoff) {
  const int64_t id = InsertJob(7);
  int calls = 0;
  handler_->run = [&](const domain::Job&) -> FinalWrite {
    if (++calls == 1) throw HypervisorError(HypervisorErrorKind::kTransient, "host busy");
    return nullptr;
  };
  ASSERT_TRUE(Runner().RunOnce());

  domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kQueued);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.next_run_ms, kClockStartMs + options_.retry_base_ms);
  EXPECT_EQ(States(job),
            (std::vector<int64_t>{job_state::kCreated, job_state::kQueued, job_state::kProcessing,
                                  job_state::kFailed, job_state::kQueued}));
  ASSERT_EQ(job.history.size(), 5u);
  ASSERT_TRUE(job.history[3].note.has_value());
  EXPECT_NE(job.history[3].note->find("host busy"), std::string::npos) << *job.history[3].note;
  EXPECT_TRUE(handler_->failures().empty());  // not given up

  // Not runnable before the backoff has passed.
  EXPECT_FALSE(Runner().RunOnce());
  clock_.AdvanceMs(options_.retry_base_ms - 1);
  EXPECT_FALSE(Runner().RunOnce());
  EXPECT_EQ(calls, 1);
  clock_.AdvanceMs(1);
  ASSERT_TRUE(Runner().RunOnce());
  EXPECT_EQ(calls, 2);

  job = Job(id);
  EXPECT_EQ(job.state, job_state::kSucceeded);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(States(job).back(), job_state::kSucceeded);
}

TEST_F(JobRunnerTest, BackoffDoublesUpToTheCap) {
  options_.retry_base_ms = 1000;
  options_.retry_max_ms = 5000;
  options_.max_attempts = 10;
  const int64_t id = InsertJob(7);
  handler_->run = [](const domain::Job&) -> FinalWrite {
    throw HypervisorError(HypervisorErrorKind::kTransient, "connection lost");
  };
  std::vector<int64_t> delays;
  for (int attempt = 1; attempt <= 6; ++attempt) {
    ASSERT_TRUE(Runner().RunOnce()) << "attempt " << attempt;
    const domain::Job job = Job(id);
    ASSERT_EQ(job.state, job_state::kQueued);
    delays.push_back(job.next_run_ms - clock_.NowMs());
    clock_.Set(job.next_run_ms);
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{1000, 2000, 4000, 5000, 5000, 5000}));
}

TEST_F(JobRunnerTest, GivesUpAfterMaxAttempts) {
  options_.max_attempts = 3;
  const int64_t id = InsertJob(7);
  handler_->run = [](const domain::Job&) -> FinalWrite {
    throw HypervisorError(HypervisorErrorKind::kTransient, "host busy");
  };
  handler_->on_failure = [&](const domain::Job& job, store::Connection& c) {
    // OnFailure writes in the transaction that fails the job; it sees it still Processing.
    EXPECT_EQ(store::jobs::GetAny(c, job.id)->state, job_state::kProcessing);
    store::accounts::Insert(c, "cleaned-up", clock_.NowMs());
  };
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_TRUE(Runner().RunOnce()) << "attempt " << attempt;
    clock_.AdvanceMs(options_.retry_max_ms);
  }
  const domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kFailed);
  EXPECT_EQ(job.attempts, 3);
  ASSERT_TRUE(job.error.has_value());
  EXPECT_EQ(job.error->rfind("gave up after 3 attempts", 0), 0u) << *job.error;
  EXPECT_NE(job.error->find("host busy"), std::string::npos) << *job.error;
  EXPECT_EQ(States(job).back(), job_state::kFailed);
  EXPECT_EQ(job.history.back().note, job.error);

  ASSERT_EQ(handler_->failures().size(), 1u);
  EXPECT_EQ(handler_->failures().front().id, id);
  EXPECT_TRUE(AccountExists("cleaned-up"));
  clock_.AdvanceMs(options_.retry_max_ms * 10);
  EXPECT_FALSE(Runner().RunOnce());
  EXPECT_EQ(handler_->runs().size(), 3u);
}

TEST_F(JobRunnerTest, AnUnreachableHostDoesNotUseUpTheJobsAttempts) {
  // A host whose connection dropped is not yet Down: its calls fail at once, and a job must
  // outlast that instead of giving up after max_attempts while the host is reconnected.
  options_.max_attempts = 2;
  const int64_t id = InsertJob(7);
  int calls = 0;
  handler_->run = [&calls](const domain::Job&) -> FinalWrite {
    if (++calls <= 4) throw virt::HostUnavailableError("host hv-1 is not connected; reconnecting");
    return FinalWrite{};
  };
  for (int attempt = 1; attempt <= 5; ++attempt) {
    ASSERT_TRUE(Runner().RunOnce()) << "attempt " << attempt;
    clock_.AdvanceMs(options_.retry_max_ms);
  }
  const domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kSucceeded);
  EXPECT_EQ(job.attempts, 5);
  EXPECT_TRUE(handler_->failures().empty());
}

struct PermanentCase {
  const char* name;
  std::function<void()> thrower;
  const char* message;
};

class PermanentFailureTest : public JobRunnerTest,
                             public ::testing::WithParamInterface<PermanentCase> {};

TEST_P(PermanentFailureTest, FailsAtOnceWithTheMessage) {
  const int64_t id = InsertJob(7);
  handler_->run = [](const domain::Job&) -> FinalWrite {
    GetParam().thrower();
    return nullptr;
  };
  ASSERT_TRUE(Runner().RunOnce());
  const domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kFailed);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.error, std::optional<std::string>(GetParam().message));
  EXPECT_EQ(States(job), (std::vector<int64_t>{job_state::kCreated, job_state::kQueued,
                                               job_state::kProcessing, job_state::kFailed}));
  ASSERT_EQ(handler_->failures().size(), 1u);
  clock_.AdvanceMs(options_.retry_max_ms * 10);
  EXPECT_FALSE(Runner().RunOnce());
  EXPECT_EQ(handler_->runs().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, PermanentFailureTest,
    ::testing::Values(
        PermanentCase{
            "Invalid",
            [] { throw HypervisorError(HypervisorErrorKind::kInvalid, "bad domain XML"); },
            "bad domain XML"},
        PermanentCase{"NotFound",
                      [] {
                        throw HypervisorError(HypervisorErrorKind::kNotFound,
                                              "no volume debian.qcow2 in pool gridd");
                      },
                      "no volume debian.qcow2 in pool gridd"},
        PermanentCase{
            "Internal",
            [] { throw HypervisorError(HypervisorErrorKind::kInternal, "libvirt said no"); },
            "libvirt said no"},
        PermanentCase{"RuntimeError", [] { throw std::runtime_error("image is corrupt"); },
                      "image is corrupt"}),
    [](const ::testing::TestParamInfo<PermanentCase>& info) { return info.param.name; });

TEST_F(JobRunnerTest, UnknownCommandFailsWithAMessage) {
  const int64_t id = InsertJob(7, /*command=*/99);
  ASSERT_TRUE(Runner().RunOnce());
  const domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kFailed);
  ASSERT_TRUE(job.error.has_value());
  EXPECT_NE(job.error->find("99"), std::string::npos) << *job.error;
  EXPECT_TRUE(handler_->runs().empty());
  EXPECT_FALSE(Runner().RunOnce());
}

TEST_F(JobRunnerTest, JobsOnOneObjectRunInIdOrder) {
  const int64_t first = InsertJob(7);
  const int64_t second = InsertJob(7);
  const int64_t other = InsertJob(8);
  while (Runner().RunOnce()) {
  }
  EXPECT_EQ(handler_->run_ids(), (std::vector<int64_t>{first, second, other}));
  for (int64_t id : {first, second, other}) EXPECT_EQ(Job(id).state, job_state::kSucceeded);
}

TEST_F(JobRunnerTest, LaterJobWaitsWhileTheEarlierOneIsInBackoff) {
  const int64_t first = InsertJob(7);
  const int64_t second = InsertJob(7);
  const int64_t other = InsertJob(8);
  int first_calls = 0;
  handler_->run = [&](const domain::Job& job) -> FinalWrite {
    if (job.id == first && ++first_calls == 1) {
      throw HypervisorError(HypervisorErrorKind::kTransient, "host busy");
    }
    return nullptr;
  };
  ASSERT_TRUE(Runner().RunOnce());   // first fails, backs off
  ASSERT_TRUE(Runner().RunOnce());   // another object's job is not held up
  EXPECT_FALSE(Runner().RunOnce());  // second waits for first
  EXPECT_EQ(Job(second).state, job_state::kQueued);
  EXPECT_EQ(Job(second).attempts, 0);

  clock_.AdvanceMs(options_.retry_base_ms);
  ASSERT_TRUE(Runner().RunOnce());
  ASSERT_TRUE(Runner().RunOnce());
  EXPECT_FALSE(Runner().RunOnce());
  EXPECT_EQ(handler_->run_ids(), (std::vector<int64_t>{first, other, first, second}));
  EXPECT_EQ(Job(second).state, job_state::kSucceeded);
}

TEST_F(JobRunnerTest, LaterJobWaitsWhileTheEarlierOneIsProcessing) {
  const int64_t first = InsertJob(7);
  InsertJob(7);
  auto claimed = db_.Write([&](store::Connection& c) {
    return store::jobs::Claim(c, clock_.NowMs(), options_.lease_ms);
  });
  ASSERT_TRUE(claimed.has_value());
  ASSERT_EQ(claimed->id, first);
  EXPECT_FALSE(Runner().RunOnce());
}

TEST_F(JobRunnerTest, ExpiredLeaseIsTakenUpAgain) {
  const int64_t id = InsertJob(7);
  db_.Write([&](store::Connection& c) { store::jobs::Claim(c, clock_.NowMs(), 1000); });
  EXPECT_FALSE(Runner().RunOnce());  // its worker may still be on it
  clock_.AdvanceMs(1001);
  ASSERT_TRUE(Runner().RunOnce());
  const domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kSucceeded);
  EXPECT_EQ(job.attempts, 2);
}

TEST_F(JobRunnerTest, RequeueAbandonedAfterACrash) {
  const int64_t id = InsertJob(7);
  // An earlier gridd claimed the job and died.
  auto claimed = db_.Write([&](store::Connection& c) {
    return store::jobs::Claim(c, clock_.NowMs(), options_.lease_ms);
  });
  ASSERT_TRUE(claimed.has_value());
  clock_.AdvanceMs(5'000);  // it restarts a few seconds later

  JobRunner restarted(db_, clock_, options_);
  restarted.Register(kCommand, handler_);
  EXPECT_EQ(restarted.RequeueAbandoned(), 1);

  domain::Job job = Job(id);
  EXPECT_EQ(job.state, job_state::kQueued);
  EXPECT_FALSE(job.lease_until_ms.has_value());
  ASSERT_FALSE(job.history.empty());
  EXPECT_EQ(job.history.back().state, job_state::kQueued);
  ASSERT_TRUE(job.history.back().note.has_value());
  EXPECT_FALSE(job.history.back().note->empty());
  // The history must not claim the requeue happened in the future.
  EXPECT_LE(job.history.back().at_ms, clock_.NowMs());
  EXPECT_LE(job.updated_ms, clock_.NowMs());

  // The interrupted job resumes at once, not one lease later.
  EXPECT_LE(job.next_run_ms, clock_.NowMs());
  EXPECT_TRUE(restarted.RunOnce());
  EXPECT_EQ(Job(id).state, job_state::kSucceeded);
}

TEST_F(JobRunnerTest, RequeueAbandonedLeavesOtherJobsAlone) {
  const int64_t queued = InsertJob(7);
  const int64_t done = InsertJob(8);
  db_.Write([&](store::Connection& c) {
    store::jobs::Finish(c, done, job_state::kSucceeded, std::nullopt, clock_.NowMs());
  });
  EXPECT_EQ(Runner().RequeueAbandoned(), 0);
  EXPECT_EQ(Job(queued).history.size(), 2u);
  EXPECT_EQ(Job(done).state, job_state::kSucceeded);
}

TEST_F(JobRunnerTest, WorkerThreadsRunEveryJob) {
  options_.workers = 2;
  options_.idle_poll_ms = 60'000;  // only Notify() wakes an idle worker in time
  std::mutex mutex;
  std::map<int64_t, std::vector<int64_t>> order_by_object;
  handler_->run = [&](const domain::Job& job) -> FinalWrite {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard<std::mutex> lock(mutex);
    order_by_object[job.object_id].push_back(job.id);
    return nullptr;
  };
  Runner().Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // workers go idle first
  std::vector<int64_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(InsertJob(100 + i % 5));
  Runner().Notify();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int64_t unfinished = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    unfinished = db_.Read([](store::Connection& c) { return store::jobs::CountUnfinished(c); });
    if (unfinished == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(unfinished, 0);
  EXPECT_TRUE(Runner().Stop(5000));
  for (int64_t id : ids) {
    const domain::Job job = Job(id);
    EXPECT_EQ(job.state, job_state::kSucceeded) << "job " << id;
    EXPECT_EQ(job.attempts, 1) << "job " << id;
  }
  EXPECT_EQ(handler_->runs().size(), 20u);  // each exactly once
  for (const auto& [object, order] : order_by_object) {
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << "object " << object;
    EXPECT_EQ(order.size(), 4u) << "object " << object;
  }
}

TEST_F(JobRunnerTest, SetWorkersGrowsAndShrinksARunningPool) {
  options_.workers = 1;
  options_.idle_poll_ms = 60'000;
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0;
  bool released = false;
  handler_->run = [&](const domain::Job&) -> FinalWrite {
    std::unique_lock<std::mutex> lock(mutex);
    ++running;
    changed.notify_all();
    changed.wait(lock, [&] { return released; });
    --running;
    return nullptr;
  };
  EXPECT_THROW(Runner().SetWorkers(0), std::invalid_argument);
  Runner().Start();
  for (int i = 0; i < 3; ++i) InsertJob(200 + i);
  Runner().Notify();
  auto wait_for_running = [&](int count) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(20), [&] { return running == count; });
  };
  ASSERT_TRUE(wait_for_running(1));
  // Three jobs on three objects, one worker: only more workers let the others start.
  Runner().SetWorkers(3);
  EXPECT_EQ(Runner().workers(), 3);
  ASSERT_TRUE(wait_for_running(3)) << "the new workers did not take the queued jobs";
  {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
  }
  changed.notify_all();

  // Back to one worker: later jobs still run, and growing again reuses the exited slots.
  Runner().SetWorkers(1);
  for (int i = 0; i < 4; ++i) InsertJob(300 + i);
  Runner().Notify();
  Runner().SetWorkers(2);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int64_t unfinished = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    unfinished = db_.Read([](store::Connection& c) { return store::jobs::CountUnfinished(c); });
    if (unfinished == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(unfinished, 0);
  EXPECT_TRUE(Runner().Stop(5000));
  EXPECT_EQ(handler_->runs().size(), 7u);
}

}  // namespace
}  // namespace gridd::jobs

namespace gridd::jobs {
namespace {

TEST_F(JobRunnerTest, AJobPastItsDeadlineFailsSayingWhatItWaitedForAndFreesItsWorker) {
  options_.deadline_ms = 200;
  std::mutex mutex;
  std::condition_variable released_cv;
  bool released = false;
  // One handler for the whole test: replacing it would destroy the function the abandoned run
  // is still executing. Only the first call on object 1 hangs.
  std::atomic<bool> hang_next{true};
  handler_->run = [&](const domain::Job& job) -> FinalWrite {
    if (job.object_id != 1 || !hang_next.exchange(false)) return Nothing(job);
    SetJobStep("the hypervisor to start gridd-1");
    std::unique_lock<std::mutex> lock(mutex);
    // Bounded: the test releases it; 30 s only guards against a broken test.
    released_cv.wait_for(lock, std::chrono::seconds(30), [&] { return released; });
    return [](store::Connection& c) { store::accounts::Insert(c, "late", kClockStartMs); };
  };
  const int64_t hung = InsertJob(1);
  ASSERT_TRUE(Runner().RunOnce());
  const domain::Job failed = Job(hung);
  EXPECT_EQ(failed.state, job_state::kFailed);
  EXPECT_EQ(failed.error.value_or(""),
            "deadline of 200 ms passed while waiting for the hypervisor to start gridd-1");
  EXPECT_EQ(handler_->failures().size(), 1u);
  EXPECT_EQ(Runner().hung_handlers(), 1);

  // The next request on the same object is carried out although the first call still hangs.
  const int64_t next = InsertJob(1 + 1);
  const int64_t same_object = InsertJob(1);
  EXPECT_TRUE(Runner().RunOnce());
  EXPECT_TRUE(Runner().RunOnce());
  EXPECT_EQ(Job(next).state, job_state::kSucceeded);
  EXPECT_EQ(Job(same_object).state, job_state::kSucceeded);

  {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
  }
  released_cv.notify_all();
  for (int i = 0; i < 300 && Runner().hung_handlers() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Runner().hung_handlers(), 0);
  // The late result of the abandoned run is discarded: the job stays Failed.
  EXPECT_FALSE(AccountExists("late"));
  EXPECT_EQ(Job(hung).state, job_state::kFailed);
}

TEST_F(JobRunnerTest, DeadlinesAreChosenByCommand) {
  options_.deadline_ms = 60'000;
  options_.deadline_ms_by_command[kCommand] = 100;
  handler_->run = [](const domain::Job&) -> FinalWrite {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return FinalWrite{};
  };
  const int64_t id = InsertJob(1);
  ASSERT_TRUE(Runner().RunOnce());
  EXPECT_EQ(Job(id).state, job_state::kFailed);
  EXPECT_NE(Job(id).error.value_or("").find("waiting for the job's handler to start"),
            std::string::npos)
      << Job(id).error.value_or("");
  for (int i = 0; i < 300 && Runner().hung_handlers() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace
}  // namespace gridd::jobs
