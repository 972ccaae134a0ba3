#include "gridd/api/rate_limiter.h"

#include <gtest/gtest.h>

namespace gridd::api {
namespace {

TEST(RateLimiter, AllowsTheBurstThenRefusesWithTheWaitUntilTheNextToken) {
  RateLimiter limiter({0.5, 3});
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.Acquire("a", 100.0)) << i;
  auto wait = limiter.Acquire("a", 100.0);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 2);  // one token takes 2 s at 0.5 per second
  EXPECT_TRUE(limiter.Acquire("a", 101.0));
  EXPECT_FALSE(limiter.Acquire("a", 102.0));
}

TEST(RateLimiter, KeysHaveTheirOwnBuckets) {
  RateLimiter limiter({1, 1});
  EXPECT_FALSE(limiter.Acquire("a", 0));
  EXPECT_TRUE(limiter.Acquire("a", 0));
  EXPECT_FALSE(limiter.Acquire("b", 0));
}

TEST(RateLimiter, ExhaustedLooksWithoutTaking) {
  RateLimiter limiter({1, 2});
  EXPECT_FALSE(limiter.Exhausted("a", 0));
  limiter.Acquire("a", 0);
  EXPECT_FALSE(limiter.Exhausted("a", 0));
  limiter.Acquire("a", 0);
  EXPECT_TRUE(limiter.Exhausted("a", 0));
  EXPECT_FALSE(limiter.Exhausted("a", 1.0));
}

TEST(RateLimiter, AZeroRateDisablesTheLimit) {
  RateLimiter limiter({0, 0});
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.Acquire("a", 0));
}

TEST(RateLimiter, AFullTableForgetsRefilledBucketsFirst) {
  RateLimiter limiter({1, 1}, 2);
  limiter.Acquire("a", 0);
  limiter.Acquire("b", 10);  // "a" has refilled by now
  limiter.Acquire("c", 10);  // evicts "a", keeps the empty "b"
  EXPECT_TRUE(limiter.Acquire("b", 10));
}

}  // namespace
}  // namespace gridd::api
