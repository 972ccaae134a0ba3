#include "gridd/domain/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace gridd::domain {
namespace {

HostSlot Slot(int64_t id, std::optional<int64_t> datacenter, int64_t ram_mib,
              double overcommit = 1.0) {
  HostSlot slot;
  slot.id = id;
  slot.name = "host" + std::to_string(id);
  slot.datacenter_id = datacenter;
  slot.ram_mib = ram_mib;
  slot.ram_overcommit = overcommit;
  return slot;
}

TEST(SchedulerTest, SpreadTakesTheHostWithTheMostFreeRam) {
  Scheduler scheduler(PlacementPolicy::kSpread);
  scheduler.Upsert(Slot(1, 1, 4096));
  scheduler.Upsert(Slot(2, 1, 8192));
  std::vector<int64_t> placed;
  for (int i = 0; i < 4; ++i) placed.push_back(*scheduler.Reserve(1, 2048));
  // Free 4096/8192 → host 2; 4096/6144 → 2; 4096/4096 → the lower id, 1; 2048/4096 → 2.
  EXPECT_EQ(placed, (std::vector<int64_t>{2, 2, 1, 2}));
  EXPECT_EQ(scheduler.Get(1)->used_mib, 2048);
  EXPECT_EQ(scheduler.Get(2)->used_mib, 6144);
  EXPECT_EQ(scheduler.Get(2)->servers, 3);
}

TEST(SchedulerTest, PackFillsTheFullestHostThatStillFits) {
  Scheduler scheduler(PlacementPolicy::kPack);
  scheduler.Upsert(Slot(1, 1, 4096));
  scheduler.Upsert(Slot(2, 1, 8192));
  EXPECT_EQ(scheduler.Reserve(1, 1024), 1);
  EXPECT_EQ(scheduler.Reserve(1, 1024), 1);
  EXPECT_EQ(scheduler.Reserve(1, 2048), 1);  // exactly fills host 1
  EXPECT_EQ(scheduler.Reserve(1, 1024), 2);
}

TEST(SchedulerTest, OnlyUpHostsOutOfMaintenanceInTheDatacenterGetServers) {
  Scheduler scheduler;
  scheduler.Upsert(Slot(1, 1, 4096));
  scheduler.Upsert(Slot(2, 2, 65536));
  scheduler.Upsert(Slot(3, 1, 65536));
  scheduler.SetMaintenance(3, true);
  EXPECT_EQ(scheduler.Reserve(1, 1024), 1);  // host 2 is in another datacenter
  scheduler.SetUp(1, false);
  EXPECT_EQ(scheduler.Reserve(1, 1024), std::nullopt);
  EXPECT_FALSE(scheduler.Reachable(1));
  EXPECT_TRUE(scheduler.Reachable(3));
  scheduler.SetMaintenance(3, false);
  EXPECT_EQ(scheduler.Reserve(1, 1024), 3);
}

TEST(SchedulerTest, AHostWithoutADatacenterServesEveryDatacenter) {
  Scheduler scheduler;
  scheduler.Upsert(Slot(1, std::nullopt, 4096));
  EXPECT_EQ(scheduler.Reserve(1, 1024), 1);
  EXPECT_EQ(scheduler.Reserve(7, 1024), 1);
}

TEST(SchedulerTest, OvercommitBoundsTheRamBookedAndReleaseGivesItBack) {
  Scheduler scheduler;
  scheduler.Upsert(Slot(1, 1, 4096, 1.5));
  EXPECT_EQ(scheduler.Get(1)->LimitMib(), 6144);
  for (int i = 0; i < 6; ++i) ASSERT_EQ(scheduler.Reserve(1, 1024), 1) << i;
  EXPECT_EQ(scheduler.Reserve(1, 1024), std::nullopt);
  EXPECT_FALSE(scheduler.ReserveOn(1, 1));
  scheduler.Release(1, 1024);
  EXPECT_EQ(scheduler.Get(1)->servers, 5);
  EXPECT_EQ(scheduler.Reserve(1, 1024), 1);
}

TEST(SchedulerTest, UpsertKeepsTheUseOfAKnownHost) {
  Scheduler scheduler;
  scheduler.Upsert(Slot(1, 1, 4096));
  ASSERT_EQ(scheduler.Reserve(1, 3072), 1);
  scheduler.Upsert(Slot(1, 1, 4096, 2.0));  // new overcommit, same servers
  EXPECT_EQ(scheduler.Get(1)->used_mib, 3072);
  EXPECT_EQ(scheduler.Reserve(1, 4096), 1);
  EXPECT_EQ(scheduler.Reserve(1, 2048), std::nullopt);
}

TEST(SchedulerTest, ConcurrentReservationsNeverOvercommit) {
  Scheduler scheduler;
  for (int64_t id = 1; id <= 4; ++id) scheduler.Upsert(Slot(id, 1, 10 * 512));
  std::atomic<int> placed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (scheduler.Reserve(1, 512)) ++placed;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(placed.load(), 40);  // 4 hosts × 10 servers, and not one more
  for (const auto& slot : scheduler.List()) EXPECT_LE(slot.used_mib, slot.LimitMib());
}

}  // namespace
}  // namespace gridd::domain
