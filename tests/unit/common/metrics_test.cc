#include "gridd/common/metrics.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace gridd::metrics {
namespace {

TEST(MetricsTest, CountersRenderWithHelpTypeAndEscapedLabels) {
  Registry registry;
  auto& requests = registry.Counter("demo_requests_total", "Requests.\nSecond line \\ here.",
                                    {"method", "status"});
  requests.Increment({"/grid/server/list", "200"});
  requests.Increment({"/grid/server/list", "200"}, 2);
  requests.Increment({"say \"hi\"\n", "400"});
  EXPECT_EQ(requests.Value({"/grid/server/list", "200"}), 3);
  EXPECT_EQ(requests.Value({"/grid/ip/list", "200"}), 0);
  EXPECT_EQ(registry.Render(),
            "# HELP demo_requests_total Requests.\\nSecond line \\\\ here.\n"
            "# TYPE demo_requests_total counter\n"
            "demo_requests_total{method=\"/grid/server/list\",status=\"200\"} 3\n"
            "demo_requests_total{method=\"say \\\"hi\\\"\\n\",status=\"400\"} 1\n");
}

TEST(MetricsTest, EveryFamilyIsAnnouncedAndAnUnlabelledCounterStartsAtZero) {
  Registry registry;
  registry.Counter("demo_restarts_total", "Restarts.");
  registry.Counter("demo_repairs_total", "Repairs.", {"kind"});
  EXPECT_EQ(registry.Render(),
            "# HELP demo_repairs_total Repairs.\n# TYPE demo_repairs_total counter\n"
            "# HELP demo_restarts_total Restarts.\n# TYPE demo_restarts_total counter\n"
            "demo_restarts_total 0\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry registry;
  auto& seconds = registry.Histogram("demo_seconds", "Durations.", {"method"}, {0.0005, 1});
  seconds.Observe({"a"}, 0.0001);
  seconds.Observe({"a"}, 0.0005);  // on a bound: counts in that bucket (le)
  seconds.Observe({"a"}, 0.5);
  seconds.Observe({"a"}, 7);
  EXPECT_EQ(seconds.Count({"a"}), 4u);
  EXPECT_EQ(registry.Render(),
            "# HELP demo_seconds Durations.\n# TYPE demo_seconds histogram\n"
            "demo_seconds_bucket{method=\"a\",le=\"0.0005\"} 2\n"
            "demo_seconds_bucket{method=\"a\",le=\"1\"} 3\n"
            "demo_seconds_bucket{method=\"a\",le=\"+Inf\"} 4\n"
            "demo_seconds_sum{method=\"a\"} 7.5006\n"
            "demo_seconds_count{method=\"a\"} 4\n");
}

TEST(MetricsTest, GaugeReplaceDropsLabelSetsThatAreGone) {
  Registry registry;
  auto& pools = registry.Gauge("demo_addresses", "Addresses.", {"pool"});
  pools.Replace({{{"a"}, 5}, {{"b"}, 6}});
  pools.Replace({{{"b"}, 1.5}});
  EXPECT_EQ(registry.Render(),
            "# HELP demo_addresses Addresses.\n# TYPE demo_addresses gauge\n"
            "demo_addresses{pool=\"b\"} 1.5\n");
}

TEST(MetricsTest, FamiliesAreSharedByNameAndMisuseIsRefused) {
  Registry registry;
  auto& first = registry.Counter("demo_total", "x", {"kind"});
  EXPECT_EQ(&first, &registry.Counter("demo_total", "x", {"kind"}));
  EXPECT_THROW(registry.Gauge("demo_total", "x"), std::logic_error);
  EXPECT_THROW(first.Increment({}), std::invalid_argument);
  EXPECT_THROW(first.Increment({"a"}, -1), std::invalid_argument);
  EXPECT_THROW(registry.Counter("1bad", "x"), std::invalid_argument);
  EXPECT_THROW(registry.Counter("demo_le_total", "x", {"le"}), std::invalid_argument);
  EXPECT_THROW(registry.Histogram("demo_h", "x", {}, {1, 1}), std::invalid_argument);
}

TEST(MetricsTest, SharedFamiliesLiveInTheDefaultRegistry) {
  ReconcilerRepairs().Increment({"domain_recreated"});
  const std::string text = Default().Render();
  EXPECT_NE(text.find("# TYPE gridd_reconciler_repairs_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("gridd_reconciler_repairs_total{kind=\"domain_recreated\"} "),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace gridd::metrics
