#include "lb/haproxy_cli.h"

#include <gtest/gtest.h>

namespace gridd::lb {
namespace {

// Replies captured from haproxy 2.6.12.
constexpr const char* kShowProcAfterReload =
    "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    "28377           master          1 [failed: 0]   0d00h10m10s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "31605           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
    "# old workers\n"
    "28403           worker          1               0d00h10m10s     2.6.12-1+deb12u4\n"
    "# programs\n"
    "\n";

constexpr const char* kShowProcAfterFailedReload =
    "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    "28377           master          2 [failed: 1]   0d00h10m57s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "31605           worker          1               0d00h00m48s     2.6.12-1+deb12u4\n"
    "# programs\n"
    "\n";

TEST(ShowProcTest, ParsesWorkersAndOldWorkers) {
  const auto table = ParseShowProc(kShowProcAfterReload);
  EXPECT_EQ(table.master_pid, 28377);
  EXPECT_EQ(table.reloads, 1);
  EXPECT_EQ(table.failed_reloads, 0);
  EXPECT_EQ(table.workers, std::vector<pid_t>{31605});
  EXPECT_EQ(table.old_workers, std::vector<pid_t>{28403});
}

TEST(ShowProcTest, ParsesFailedReloads) {
  const auto table = ParseShowProc(kShowProcAfterFailedReload);
  EXPECT_EQ(table.reloads, 2);
  EXPECT_EQ(table.failed_reloads, 1);
  EXPECT_EQ(table.workers, std::vector<pid_t>{31605});
  EXPECT_TRUE(table.old_workers.empty());
}

TEST(ShowProcTest, RejectsOtherText) {
  EXPECT_THROW(ParseShowProc(""), EngineError);
  EXPECT_THROW(ParseShowProc("Unknown command: 'show proc'\n"), EngineError);
}

constexpr const char* kShowStat =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,"
    "throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,"
    "check_duration,check_desc\n"
    "lb_1,FRONTEND,,,0,2,9979,12,1200,3400,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,\n"
    "be_1,m1,0,0,1,1,,6,600,1700,,0,,0,0,0,0,UP,1,1,0,0,0,3,0,,1,3,1,,6,,2,0,,0,L4OK,,0,"
    "\"Layer4 check passed, fine\"\n"
    "be_1,m2,0,0,0,1,,6,600,1700,,0,,0,0,0,0,UP 1/3,1,1,0,0,0,3,0,,1,3,2,,6,,2,0,,0,L4OK,,0,\n"
    "be_1,m3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,0,0,3,0,,1,3,3,,0,,2,0,,0,L4CON,,0,\n"
    "be_1,BACKEND,0,0,0,2,998,12,1200,3400,0,0,,0,0,0,0,UP,2,2,0,,0,3,0,,1,3,0,,12,,1,0,,0\n"
    "lb_2,FRONTEND,,,0,0,9979,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,4,0,,,,0,0,0,0,,,,\n"
    "be_2,m1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN 1/2,1,1,0,0,0,3,0,,1,5,1,,0,,2,0,,0,L4CON,,0,\n"
    "be_2,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,0,3,0,,1,5,0,,0,,1,0,,0\n"
    "lb_3,FRONTEND,,,0,0,9979,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,6,0,,,,0,0,0,0,,,,\n"
    "be_3,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,0,3,0,,1,7,0,,0,,1,0,,0\n"
    "lb_8,FRONTEND,,,0,0,9979,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,8,0,,,,0,0,0,0,,,,\n"
    "\n";

TEST(ShowStatTest, ParsesColumnsByHeader) {
  const auto rows = ParseShowStat(kShowStat);
  ASSERT_EQ(rows.size(), 11u);
  EXPECT_EQ(rows[0].proxy, "lb_1");
  EXPECT_EQ(rows[0].server, "FRONTEND");
  EXPECT_EQ(rows[0].status, "OPEN");
  EXPECT_EQ(rows[0].bytes_in, 1200u);
  EXPECT_EQ(rows[0].bytes_out, 3400u);
  EXPECT_EQ(rows[1].current_sessions, 1u);
  EXPECT_EQ(rows[2].status, "UP 1/3");
  EXPECT_EQ(rows[2].current_sessions, 0u);
}

TEST(ShowStatTest, SummarizesPerBalancer) {
  const auto status = SummarizeStats(ParseShowStat(kShowStat), {1, 2, 3, 4});
  ASSERT_EQ(status.size(), 4u);
  EXPECT_EQ(status.at(1).health, BalancerHealth::kUp);
  EXPECT_EQ(status.at(1).backends_up, 2);
  EXPECT_EQ(status.at(1).backends_total, 3);
  EXPECT_EQ(status.at(1).bytes_in, 1200u);
  EXPECT_EQ(status.at(1).bytes_out, 3400u);
  EXPECT_EQ(status.at(2).health, BalancerHealth::kNoBackends);
  EXPECT_EQ(status.at(2).backends_up, 0);
  EXPECT_EQ(status.at(2).backends_total, 1);
  EXPECT_EQ(status.at(3).health, BalancerHealth::kNoBackends);  // no servers at all
  EXPECT_EQ(status.at(3).backends_total, 0);
  EXPECT_EQ(status.at(4).health, BalancerHealth::kUnknown);  // not in the worker (yet)
  EXPECT_FALSE(status.count(8));                             // not installed: not reported
}

TEST(ShowStatTest, ToleratesMissingHeader) {
  EXPECT_TRUE(ParseShowStat("lb_1,FRONTEND,,,0\n").empty());
  EXPECT_TRUE(ParseShowStat("").empty());
}

}  // namespace
}  // namespace gridd::lb
