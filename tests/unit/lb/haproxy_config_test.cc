#include "lb/haproxy_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gridd/common/process.h"
#include "gridd/lb/engine.h"
#include "support/golden.h"
#include "support/test_paths.h"

namespace gridd::lb {
namespace {

constexpr const char* kHaproxyProgram = "/usr/sbin/haproxy";

HaproxyOptions GoldenOptions() {
  HaproxyOptions options;
  options.run_dir = "/var/lib/gridd/haproxy";
  options.health_check_interval_ms = 2000;
  return options;
}

// One balancer of each kind, given out of id order.
std::vector<BalancerSpec> MixedBalancers() {
  BalancerSpec web{.id = 23530,
                   .vip = "10.0.0.68",
                   .port = 80,
                   .algorithm = Algorithm::kRoundRobin,
                   .persistence = Persistence::kNone,
                   .backends = {{"10.0.0.76", 80}, {"10.0.0.77", 80}, {"10.0.0.78", 8080}}};
  BalancerSpec db{.id = 7,
                  .vip = "10.0.0.69",
                  .port = 5432,
                  .algorithm = Algorithm::kLeastConnections,
                  .persistence = Persistence::kSourceAddress,
                  .backends = {{"10.0.1.10", 5432}, {"10.0.1.11", 5432}}};
  BalancerSpec tls{.id = 12,
                   .vip = "10.0.0.69",
                   .port = 443,
                   .algorithm = Algorithm::kRoundRobin,
                   .persistence = Persistence::kSslSticky,
                   .backends = {{"10.0.1.20", 443}}};
  BalancerSpec empty{.id = 99, .vip = "10.0.0.70", .port = 8000, .backends = {}};
  BalancerSpec v6{.id = 100,
                  .vip = "2001:db8::10",
                  .port = 443,
                  .algorithm = Algorithm::kLeastConnections,
                  .persistence = Persistence::kSourceAddress,
                  .backends = {{"2001:db8::20", 8443}, {"10.0.1.30", 8443}}};
  return {web, db, tls, empty, v6};
}

TEST(HaproxyConfigTest, EmptySetMatchesGolden) {
  gridd::testing::ExpectGolden("haproxy-empty.cfg", RenderHaproxyConfig({}, GoldenOptions()));
}

TEST(HaproxyConfigTest, MixedSetMatchesGolden) {
  gridd::testing::ExpectGolden("haproxy-mixed.cfg",
                               RenderHaproxyConfig(MixedBalancers(), GoldenOptions()));
}

TEST(HaproxyConfigTest, OrderOfInputDoesNotMatter) {
  auto balancers = MixedBalancers();
  const std::string expected = RenderHaproxyConfig(balancers, GoldenOptions());
  std::reverse(balancers.begin(), balancers.end());
  EXPECT_EQ(RenderHaproxyConfig(balancers, GoldenOptions()), expected);
}

// haproxy itself accepts every kind of balancer gridd renders.
TEST(HaproxyConfigTest, HaproxyAcceptsRenderedConfigs) {
  if (!std::filesystem::exists(kHaproxyProgram)) GTEST_SKIP() << "no " << kHaproxyProgram;
  const auto dir = gridd::testing::MakeTempDir("gridd-lb-config");
  HaproxyOptions options = GoldenOptions();
  options.run_dir = dir / "run dir with spaces";
  for (const auto& set : {std::vector<BalancerSpec>{}, MixedBalancers()}) {
    const auto path = dir / "haproxy.cfg";
    std::ofstream(path) << RenderHaproxyConfig(set, options);
    const auto result =
        RunCommand({kHaproxyProgram, "-c", "-f", path.string()}, std::chrono::seconds(10));
    EXPECT_EQ(result.exit_code, 0) << result.output;
  }
  std::filesystem::remove_all(dir);
}

TEST(HaproxyConfigTest, RefusesAddressesThatAreNotIpLiterals) {
  for (const std::string bad : {"backend.example.com", "10.0.0.1\n    server evil 1.2.3.4:80",
                                "10.0.0.1 # x", "", "fe80::1%eth0"}) {
    auto balancers = MixedBalancers();
    balancers[0].backends[0].ip = bad;
    EXPECT_THROW(RenderHaproxyConfig(balancers, GoldenOptions()), EngineError) << bad;
    balancers = MixedBalancers();
    balancers[1].vip = bad;
    EXPECT_THROW(RenderHaproxyConfig(balancers, GoldenOptions()), EngineError) << bad;
  }
}

TEST(HaproxyConfigTest, RefusesDuplicateIdsAndListeners) {
  auto balancers = MixedBalancers();
  balancers.push_back(balancers[0]);
  balancers.back().port = 81;
  EXPECT_THROW(RenderHaproxyConfig(balancers, GoldenOptions()), EngineError);

  balancers = MixedBalancers();
  balancers.push_back(balancers[0]);
  balancers.back().id = 1;
  try {
    RenderHaproxyConfig(balancers, GoldenOptions());
    FAIL() << "two balancers on 10.0.0.68:80 were accepted";
  } catch (const EngineError& error) {
    EXPECT_NE(std::string(error.what()).find("10.0.0.68:80"), std::string::npos) << error.what();
  }
}

TEST(HaproxyConfigTest, RefusesRunDirThatCannotBeQuoted) {
  HaproxyOptions options = GoldenOptions();
  options.run_dir = "/tmp/it's";
  EXPECT_THROW(RenderHaproxyConfig({}, options), EngineError);
}

TEST(HaproxyConfigTest, FindsBalancerIdsInConfig) {
  EXPECT_EQ(BalancerIdsInConfig(RenderHaproxyConfig(MixedBalancers(), GoldenOptions())),
            (std::set<int64_t>{7, 12, 99, 100, 23530}));
  EXPECT_TRUE(BalancerIdsInConfig(RenderHaproxyConfig({}, GoldenOptions())).empty());
  EXPECT_TRUE(BalancerIdsInConfig("frontend lb_x\nfrontend other\n").empty());
}

TEST(HaproxyConfigTest, NamesEveryHealth) {
  EXPECT_STREQ(BalancerHealthName(BalancerHealth::kUp), "up");
  EXPECT_STREQ(BalancerHealthName(BalancerHealth::kNoBackends), "no-backends");
  EXPECT_STREQ(BalancerHealthName(BalancerHealth::kEngineDown), "engine-down");
  EXPECT_STREQ(BalancerHealthName(BalancerHealth::kUnknown), "unknown");
}

}  // namespace
}  // namespace gridd::lb
