#include "gridd/common/error.h"

#include <gtest/gtest.h>

#include "gridd/common/clock.h"

namespace gridd {
namespace {

TEST(ErrorTest, EachClassHasGoGridsStatusAndCode) {
  EXPECT_EQ(HttpStatusFor(ErrorClass::kIllegalArgument), 400);
  EXPECT_EQ(ErrorCodeFor(ErrorClass::kIllegalArgument), "IllegalArgumentException");
  EXPECT_EQ(HttpStatusFor(ErrorClass::kUnauthorized), 401);
  EXPECT_EQ(ErrorCodeFor(ErrorClass::kUnauthorized), "Unauthorized");
  EXPECT_EQ(HttpStatusFor(ErrorClass::kAuthenticationFailed), 403);
  EXPECT_EQ(ErrorCodeFor(ErrorClass::kAuthenticationFailed), "AuthenticationFailed");
  EXPECT_EQ(HttpStatusFor(ErrorClass::kUnexpected), 500);
  EXPECT_EQ(ErrorCodeFor(ErrorClass::kUnexpected), "UnexpectedException");
}

TEST(ErrorTest, ThrowIllegalArgumentCarriesTheMessage) {
  try {
    ThrowIllegalArgument("Missing required parameter: name");
    FAIL() << "did not throw";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.error_class(), ErrorClass::kIllegalArgument);
    EXPECT_STREQ(error.what(), "Missing required parameter: name");
  }
  EXPECT_EQ(kNoObjectFound, "No object found that matches your input criteria.");
}

TEST(ClockTest, ManualClockMovesOnlyWhenTold) {
  ManualClock clock(1'700'000'000'123);
  EXPECT_EQ(clock.NowMs(), 1'700'000'000'123);
  EXPECT_EQ(clock.NowSeconds(), 1'700'000'000);
  clock.AdvanceMs(877);
  EXPECT_EQ(clock.NowMs(), 1'700'000'001'000);
  clock.Set(5);
  EXPECT_EQ(clock.NowMs(), 5);
}

TEST(ClockTest, SystemClockIsWallClockTime) {
  // 2023-01-01 < now < 2100-01-01, in milliseconds.
  const int64_t now = SystemClock::Instance().NowMs();
  EXPECT_GT(now, 1'672'531'200'000);
  EXPECT_LT(now, 4'102'444'800'000);
}

}  // namespace
}  // namespace gridd
