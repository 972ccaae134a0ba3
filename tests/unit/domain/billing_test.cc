// Billing from metering: RAM GB-hours from the servers' recorded RAM and power over time,
// transfer from the load balancers' byte counters, with a hand-moved clock across a period
// boundary.
#include <gtest/gtest.h>

#include <string>

#include "grid_fixture.h"

namespace gridd::domain {
namespace {

using testing::GridFixture;

constexpr int64_t kHourMs = 3'600'000;
constexpr uint64_t kGiB = 1024ull * 1024 * 1024;

// 2024-03-14 00:00:00 UTC and the 15th, the configured first day of a period.
constexpr int64_t kMarch14 = 1'710'374'400'000;
constexpr int64_t kMarch15 = kMarch14 + 24 * kHourMs;
constexpr int64_t kFebruary15 = 1'707'955'200'000;
constexpr int64_t kApril15 = 1'713'139'200'000;

TEST(BillingPeriodTest, RunsFromTheStartDayToTheSameDayOfTheNextMonth) {
  EXPECT_EQ(BillingPeriod(kMarch14, 15), std::make_pair(kFebruary15, kMarch15));
  EXPECT_EQ(BillingPeriod(kMarch15, 15), std::make_pair(kMarch15, kApril15));
  EXPECT_EQ(BillingPeriod(kMarch15 - 1, 15), std::make_pair(kFebruary15, kMarch15));
  // December rolls into January of the next year.
  const int64_t december_20_2023 = 1'703'030'400'000;
  const auto [start, end] = BillingPeriod(december_20_2023, 1);
  EXPECT_EQ(start, 1'701'388'800'000);  // 2023-12-01
  EXPECT_EQ(end, 1'704'067'200'000);    // 2024-01-01
}

class BillingTest : public GridFixture {
 protected:
  BillingTest()
      : billing_(
            db_, catalog_, clock_, box_, [] {}, Options()) {}

  static GridServiceOptions Options() {
    GridServiceOptions options;
    options.billing.period_start_day = 15;
    options.billing.memory_allotment_gb_hours = 10;
    options.billing.memory_allotment_price = 5;
    options.billing.memory_gb_hour_price = 0.19;
    options.billing.transfer_allotment_gb = 1;
    options.billing.transfer_gb_price = 0.5;
    return options;
  }

  void SetUp() override {
    clock_.Set(kMarch14);
    GridFixture::SetUp();
  }

  // alice's server with `ram`, On from now (as its create job would leave it).
  int64_t RunningServer(const std::string& name, const std::string& ip, const std::string& ram) {
    ServerAddRequest request = AddRequest(name, ip);
    request.ram = ram;
    const int64_t id = grid_.AddServer(alice_, request).server.id;
    FinishPendingJobs();
    SetServerState(id, server_state::kOn);
    return id;
  }

  GridService billing_;
};

TEST_F(BillingTest, NothingDeployedBillsOnlyTheAllotment) {
  const BillingSummary bill = billing_.Billing(alice_);
  EXPECT_EQ(bill.start_ms, kFebruary15);
  EXPECT_EQ(bill.end_ms, kMarch15);
  EXPECT_EQ(bill.memory_accrued, 0);
  EXPECT_EQ(bill.memory_in_use, 0);
  EXPECT_EQ(bill.memory_overage, 0);
  EXPECT_EQ(bill.memory_allotment, 10);
  EXPECT_EQ(bill.transfer_accrued, 0);
  EXPECT_DOUBLE_EQ(bill.memory_projected_total_charge, 5);
}

TEST_F(BillingTest, GbHoursFollowRamChangesAndStartAgainInTheNextPeriod) {
  // 2 GB from 00:00 on the 14th; at 12:00 it grows to 4 GB; the period ends at midnight.
  const int64_t id = RunningServer("db1", "192.0.2.3", "2GB");
  clock_.AdvanceMs(12 * kHourMs);
  BillingSummary half_day = billing_.Billing(alice_);
  EXPECT_EQ(half_day.memory_accrued, 24);  // 2 GB × 12 h
  EXPECT_DOUBLE_EQ(half_day.memory_in_use, 2);
  EXPECT_EQ(half_day.memory_overage, 14);
  EXPECT_DOUBLE_EQ(half_day.memory_overage_charge, 2.66);
  EXPECT_EQ(half_day.memory_projected_usage, 48) << "2 GB for the remaining 12 hours";
  EXPECT_DOUBLE_EQ(half_day.memory_projected_overage_charge, 7.22);
  EXPECT_DOUBLE_EQ(half_day.memory_projected_total_charge, 12.22);

  ServerEditRequest grow;
  grow.selectors = {ById(id)};
  grow.ram = "4GB";
  grid_.EditServer(alice_, grow);
  FinishPendingJobs();
  clock_.AdvanceMs(6 * kHourMs);
  EXPECT_EQ(billing_.Billing(alice_).memory_accrued, 24 + 24);  // + 4 GB × 6 h

  // Across the boundary: the old period is closed, the new one counts from midnight.
  clock_.Set(kMarch15 + 3 * kHourMs);
  BillingSummary next = billing_.Billing(alice_);
  EXPECT_EQ(next.start_ms, kMarch15);
  EXPECT_EQ(next.end_ms, kApril15);
  EXPECT_EQ(next.memory_accrued, 12);  // 4 GB × 3 h
  EXPECT_EQ(next.memory_overage, 2);
  EXPECT_DOUBLE_EQ(next.memory_in_use, 4);
}

TEST_F(BillingTest, DeletedServersStopAccruingAndPoweredOffTimeFollowsTheConfiguration) {
  const int64_t kept = RunningServer("web1", "192.0.2.3", "1GB");
  const int64_t gone = RunningServer("web2", "192.0.2.4", "2GB");
  clock_.AdvanceMs(2 * kHourMs);
  grid_.PowerServer(alice_, {ById(kept)}, "stop");
  SetServerState(kept, server_state::kOff);
  grid_.DeleteServer(alice_, {ById(gone)});
  db_.Write([&](store::Connection& c) { store::servers::Delete(c, gone, clock_.NowMs()); });
  FinishPendingJobs();
  clock_.AdvanceMs(4 * kHourMs);

  // Powered-off RAM is still deployed and billed by default (GoGrid's rule) ...
  BillingSummary bill = billing_.Billing(alice_);
  EXPECT_EQ(bill.memory_accrued, 1 * 6 + 2 * 2);
  EXPECT_DOUBLE_EQ(bill.memory_in_use, 1);

  // ... and not when the operator bills powered-on time only.
  GridServiceOptions on_only = Options();
  on_only.billing.bill_powered_off_servers = false;
  GridService powered(
      db_, catalog_, clock_, box_, [] {}, on_only);
  BillingSummary on_bill = powered.Billing(alice_);
  EXPECT_EQ(on_bill.memory_accrued, 1 * 2 + 2 * 2);
  EXPECT_EQ(on_bill.memory_in_use, 0);

  // Bob's account is billed for nothing of alice's.
  EXPECT_EQ(billing_.Billing(bob_).memory_accrued, 0);
}

TEST_F(BillingTest, TransferComesFromTheBalancersCountersAcrossReloads) {
  db_.Write([&](store::Connection& c) {
    // HAProxy's counters grow, then restart at 0 with a new worker after a reload.
    const int64_t now = clock_.NowMs();
    store::usage::RecordBalancerCounters(c, alice_.account_id, 7, kMarch14, 100, 2 * kGiB, now);
    store::usage::RecordBalancerCounters(c, alice_.account_id, 7, kMarch14, 200, 3 * kGiB, now);
    store::usage::RecordBalancerCounters(c, alice_.account_id, 7, kMarch14, 10, kGiB / 2, now);
  });
  BillingSummary bill = billing_.Billing(alice_);
  EXPECT_EQ(bill.transfer_accrued, 3) << "3.5 GB out, whole GB billed";
  EXPECT_EQ(bill.transfer_allotment, 1);
  EXPECT_EQ(bill.transfer_overage, 2);
  EXPECT_DOUBLE_EQ(bill.transfer_overage_charge, 1.0);
  EXPECT_EQ(billing_.Billing(bob_).transfer_accrued, 0);

  // The next period starts from zero.
  clock_.Set(kMarch15 + kHourMs);
  EXPECT_EQ(billing_.Billing(alice_).transfer_accrued, 0);
}

}  // namespace
}  // namespace gridd::domain
