// The short form of the kill -9 harness (tests/support/crash_harness.h): at least 20 SIGKILLs
// of gridd under concurrent mutating requests, then every invariant. The seed is printed;
// GRIDD_CRASH_SEED=N reproduces a run. bench/crash_harness runs the long form.
#include <gtest/gtest.h>

#include <iostream>

#include "support/crash_harness.h"

namespace gridd::testing {
namespace {

TEST(CrashTest, TwentyKillsUnderLoadLoseAndDuplicateNothing) {
  CrashHarnessOptions options;
  options.seed = CrashSeedFromEnvironment();
  options.kills = 20;
  options.clients = 4;
  options.time_limit = std::chrono::seconds(100);
  std::cout << "crash harness seed " << options.seed << " (GRIDD_CRASH_SEED=" << options.seed
            << " reproduces it)" << std::endl;
  const CrashHarnessReport report = RunCrashHarness(options);
  std::cout << "kills " << report.kills << " (during writes " << report.kills_during_writes
            << "), requests " << report.requests << ", acknowledged " << report.acknowledged
            << ", refused " << report.refused << ", failed jobs " << report.failed_jobs
            << ", servers " << report.servers << ", load balancers " << report.load_balancers
            << ", violations " << report.violations.size() << std::endl;
  EXPECT_GE(report.kills, 20) << "seed " << options.seed;
  EXPECT_GT(report.acknowledged, 0);
  for (const auto& violation : report.violations)
    ADD_FAILURE() << violation << " (seed " << options.seed << ")";
}

}  // namespace
}  // namespace gridd::testing
