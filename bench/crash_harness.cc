// gridd_crash_harness: the long form of the kill -9 harness (tests/support/crash_harness.h).
// Runs rounds of the harness — each a fresh gridd killed with SIGKILL KILLS times under
// concurrent mutating requests, then checked — until ROUNDS are done or MINUTES have passed,
// and prints kills survived, requests issued and violations found. Exits 1 on any violation.
//
// Usage: gridd_crash_harness [--seed N] [--rounds N] [--kills N] [--clients N] [--minutes N]
//                            [--without-keys]
// The seed of round i is SEED + i; GRIDD_CRASH_SEED=SEED+i reproduces one round in the test.
// --without-keys resends lost requests without idempotency_key, to show what the keys prevent.
#include "support/crash_harness.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>

int main(int argc, char** argv) {
  using gridd::testing::CrashHarnessOptions;
  uint64_t seed = gridd::testing::CrashSeedFromEnvironment();
  int rounds = 5;
  int kills = 50;
  int clients = 4;
  double minutes = 10;
  bool keys = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::cerr << "gridd_crash_harness: " << name << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--seed") {
      seed = std::strtoull(next("--seed"), nullptr, 10);
    } else if (arg == "--rounds") {
      rounds = std::atoi(next("--rounds"));
    } else if (arg == "--kills") {
      kills = std::atoi(next("--kills"));
    } else if (arg == "--clients") {
      clients = std::atoi(next("--clients"));
    } else if (arg == "--minutes") {
      minutes = std::atof(next("--minutes"));
    } else if (arg == "--without-keys") {
      keys = false;
    } else {
      std::cerr << "usage: gridd_crash_harness [--seed N] [--rounds N] [--kills N] [--clients N] "
                   "[--minutes N] [--without-keys]\n";
      return 2;
    }
  }
  if (rounds < 1 || kills < 1 || clients < 1 || clients > 8 || minutes <= 0) {
    std::cerr << "gridd_crash_harness: rounds, kills >= 1, clients 1..8, minutes > 0\n";
    return 2;
  }
  const auto started = std::chrono::steady_clock::now();
  const auto limit = std::chrono::duration<double, std::ratio<60>>(minutes);
  int total_kills = 0, during_writes = 0, requests = 0, acknowledged = 0, refused = 0,
      failed_jobs = 0;
  size_t violations = 0;
  int done = 0;
  std::map<std::string, int> refusals;
  for (int round = 0; round < rounds; ++round) {
    const auto left = limit - (std::chrono::steady_clock::now() - started);
    if (left.count() <= 0) break;
    CrashHarnessOptions options;
    options.seed = seed + static_cast<uint64_t>(round);
    options.kills = kills;
    options.clients = clients;
    options.idempotency_keys = keys;
    options.time_limit = std::chrono::duration_cast<std::chrono::seconds>(left);
    std::cout << "round " << round + 1 << ": seed " << options.seed << std::endl;
    const auto report = gridd::testing::RunCrashHarness(options);
    ++done;
    total_kills += report.kills;
    during_writes += report.kills_during_writes;
    requests += report.requests;
    acknowledged += report.acknowledged;
    refused += report.refused;
    failed_jobs += report.failed_jobs;
    violations += report.violations.size();
    for (const auto& [message, count] : report.refusals) refusals[message] += count;
    std::cout << "  kills " << report.kills << " (during writes " << report.kills_during_writes
              << "), requests " << report.requests << ", acknowledged " << report.acknowledged
              << ", refused " << report.refused << ", failed jobs " << report.failed_jobs
              << ", servers " << report.servers << ", load balancers " << report.load_balancers
              << ", violations " << report.violations.size() << std::endl;
    for (const auto& violation : report.violations)
      std::cout << "  VIOLATION " << violation << "\n";
  }
  const double elapsed_min =
      std::chrono::duration<double, std::ratio<60>>(std::chrono::steady_clock::now() - started)
          .count();
  std::cout << "\nrefusals (400) by message:\n";
  for (const auto& [message, count] : refusals)
    std::cout << "  " << count << "  " << message << "\n";
  std::cout << "\ncrash harness" << (keys ? "" : " (without idempotency keys)") << ": " << done
            << " rounds in " << elapsed_min << " min, kills survived " << total_kills
            << " (during writes " << during_writes << "), requests issued " << requests
            << ", acknowledged " << acknowledged << ", refused " << refused << ", failed jobs "
            << failed_jobs << ", violations " << violations << std::endl;
  return violations == 0 ? 0 : 1;
}
