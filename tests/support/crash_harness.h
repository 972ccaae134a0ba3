// The kill -9 harness: a real gridd (libvirt's test driver, HAProxy load balancers on
// 127.0.0.0/8) takes mutating requests from several concurrent clients while it is killed with
// SIGKILL at random moments (seeded) — often while writes are in flight — and restarted. Each
// client sends every request with an idempotency_key and, when gridd dies before answering,
// sends it again after the restart, as a careful client would. After the last restart and a
// quiet period it checks that gridd lost and duplicated nothing:
//  - every acknowledged server and load balancer exists exactly once with the acknowledged
//    name, IP, description, power state and real-IP pool; nothing deleted is left;
//  - every assigned IP belongs to exactly one server or virtual IP, none is leaked;
//  - every job is Succeeded or Failed with a message, none Queued or Processing;
//  - the hypervisor's gridd domains match the server rows one to one (gridctl domain list) and
//    the reconciler finds no drift (gridctl reconcile);
//  - PRAGMA integrity_check is ok after a final SIGKILL.
// Used by the test suite (short form) and bench/crash_harness (long form).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace gridd::testing {

struct CrashHarnessOptions {
  uint64_t seed = 1;
  int kills = 20;
  int clients = 4;
  // Random time between a restart and the next kill.
  std::chrono::milliseconds min_gap{200};
  std::chrono::milliseconds max_gap{1200};
  // Stop after this long even if fewer kills were done (0: no limit).
  std::chrono::seconds time_limit{0};
  std::ostream* log = nullptr;  // progress lines, when set
  // Off: clients resend without idempotency_key, as a naive client would (shows what the
  // keys prevent: resent adds then fail or duplicate).
  bool idempotency_keys = true;
};

struct CrashHarnessReport {
  uint64_t seed = 0;
  int kills = 0;
  int kills_during_writes = 0;  // with at least one mutating request in flight
  int requests = 0;             // mutating requests sent (a resend after a kill counts again)
  int acknowledged = 0;         // answered 200
  int refused = 0;              // answered 400 (e.g. update already pending)
  int failed_jobs = 0;          // Failed with a message (allowed, counted)
  int servers = 0;
  int load_balancers = 0;
  std::vector<std::string> violations;
  std::map<std::string, int> refusals;  // 400 messages, by count
};

// Seed from GRIDD_CRASH_SEED when set, else from the clock (printed by the caller).
uint64_t CrashSeedFromEnvironment();

CrashHarnessReport RunCrashHarness(const CrashHarnessOptions& options);

}  // namespace gridd::testing
