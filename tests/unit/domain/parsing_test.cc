// ParseDateTime (job.list's startdate/enddate) and ParseIpv4Cidr (IP pools).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gridd/common/error.h"
#include "gridd/domain/account_service.h"
#include "gridd/domain/grid_service.h"

namespace gridd::domain {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kLeapDay = 1'709'164'800'000;  // 2024-02-29T00:00:00Z

std::string DateError(std::string_view text) {
  try {
    const int64_t value = ParseDateTime("startdate", text, kNow);
    ADD_FAILURE() << "'" << text << "' parsed as " << value;
  } catch (const ApiError& error) {
    EXPECT_EQ(error.error_class(), ErrorClass::kIllegalArgument);
    return error.what();
  }
  return "";
}

std::string CidrError(const std::string& text) {
  try {
    ParseIpv4Cidr(text);
    ADD_FAILURE() << "accepted CIDR '" << text << "'";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.error_class(), ErrorClass::kIllegalArgument);
    return error.what();
  }
  return "";
}

// ----------------------------------------------------------------------------- ParseDateTime
TEST(ParseDateTimeTest, NowAndMilliseconds) {
  EXPECT_EQ(ParseDateTime("startdate", "now", kNow), kNow);
  EXPECT_EQ(ParseDateTime("startdate", "1709164800000", kNow), kLeapDay);
  EXPECT_EQ(ParseDateTime("startdate", "1700000000123", kNow), 1'700'000'000'123);
}

TEST(ParseDateTimeTest, AllDateFormatsOfTheSpec) {
  EXPECT_EQ(ParseDateTime("startdate", "2024-02-29", kNow), kLeapDay);
  EXPECT_EQ(ParseDateTime("startdate", "02/29/2024", kNow), kLeapDay);
  EXPECT_EQ(ParseDateTime("startdate", "02/29/24", kNow), kLeapDay);
  EXPECT_EQ(ParseDateTime("startdate", "1970-01-01", kNow), 0);
  EXPECT_EQ(ParseDateTime("startdate", "2000-02-29", kNow), 951'782'400'000);
  EXPECT_EQ(ParseDateTime("startdate", "12/31/1999", kNow), 946'598'400'000);
}

TEST(ParseDateTimeTest, DateTimeWithFractionsAndZones) {
  // 2024-01-01 10:00:00.5 at UTC+2 is 08:00:00.5 UTC.
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 10:00:00.5 +02:00", kNow), 1'704'096'000'500);
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 10:00:00 +0200", kNow), 1'704'096'000'000);
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 08:00:00", kNow), 1'704'096'000'000);
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 08:00:00 Z", kNow), 1'704'096'000'000);
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 08:00:00 UTC", kNow), 1'704'096'000'000);
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 03:30:00 -04:30", kNow), 1'704'096'000'000);
  // The C# SDK's "yyyy-MM-dd HH:mm:ss.fff K".
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 08:00:01.250 +00:00", kNow), 1'704'096'001'250);
  // The zone may move the instant to the previous day.
  EXPECT_EQ(ParseDateTime("startdate", "2024-03-01 01:00:00 +02:00", kNow),
            kLeapDay + 23LL * 3600 * 1000);
}

// The C# SDK always sends three fraction digits; each must arrive as exactly that many
// milliseconds (".001" is 1 ms, not 0), or a job created at that instant falls out of the range.
TEST(ParseDateTimeTest, FractionsAreExactMilliseconds) {
  const int64_t base = 1'704'096'000'000;  // 2024-01-01 08:00:00 UTC
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 08:00:01.001 +00:00", kNow), base + 1001);
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 08:00:01.005", kNow), base + 1005);
  EXPECT_EQ(ParseDateTime("startdate", "2024-01-01 08:00:59.999", kNow), base + 59'999);
  for (int ms = 0; ms < 1000; ++ms) {
    char text[40];
    std::snprintf(text, sizeof(text), "2024-01-01 08:00:02.%03d", ms);
    ASSERT_EQ(ParseDateTime("startdate", text, kNow), base + 2000 + ms) << text;
  }
}

TEST(ParseDateTimeTest, RejectsImpossibleDatesAndGarbage) {
  const std::string message = DateError("2023-02-29");
  EXPECT_NE(message.find("'2023-02-29'"), std::string::npos) << message;
  EXPECT_NE(message.find("startdate"), std::string::npos) << message;
  for (const char* text :
       {"13/01/2024", "02/30/2024", "2024-13-01", "2024-04-31", "2024-00-10", "1900-02-29",
        "garbage", "", "yesterday", "2024-01-01 25:00:00", "2024-01-01 10:60:00",
        "2024-01-01 10:00", "2024-01-01T10:00:00", "2024-01-01 10:00:00 EST",
        "2024-01-01 10:00:00 *02:00", "01/02/2024x", "1/2/203", "12345678", "-1700000000000"}) {
    DateError(text);
  }
}

// ----------------------------------------------------------------------------- ParseIpv4Cidr
TEST(ParseIpv4CidrTest, HostsLeaveOutNetworkGatewayAndBroadcast) {
  const ParsedCidr parsed = ParseIpv4Cidr("203.0.113.0/28");
  EXPECT_EQ(parsed.cidr, "203.0.113.0/28");
  EXPECT_EQ(parsed.subnet, "203.0.113.0/255.255.255.240");
  ASSERT_EQ(parsed.hosts.size(), 13u);
  EXPECT_EQ(parsed.hosts.front(), "203.0.113.2");
  EXPECT_EQ(parsed.hosts.back(), "203.0.113.14");
  for (const char* reserved : {"203.0.113.0", "203.0.113.1", "203.0.113.15"}) {
    EXPECT_EQ(std::find(parsed.hosts.begin(), parsed.hosts.end(), reserved), parsed.hosts.end())
        << reserved;
  }
  EXPECT_EQ(parsed.broadcast - parsed.network, 15u);
}

TEST(ParseIpv4CidrTest, PrefixLengthBounds) {
  const ParsedCidr smallest = ParseIpv4Cidr("192.0.2.8/29");
  EXPECT_EQ(smallest.hosts, (std::vector<std::string>{"192.0.2.10", "192.0.2.11", "192.0.2.12",
                                                      "192.0.2.13", "192.0.2.14"}));
  EXPECT_EQ(smallest.subnet, "192.0.2.8/255.255.255.248");
  const ParsedCidr largest = ParseIpv4Cidr("10.20.0.0/16");
  EXPECT_EQ(largest.hosts.size(), 65536u - 3);
  EXPECT_EQ(largest.hosts.back(), "10.20.255.254");
  for (const char* text : {"192.0.2.4/30", "192.0.2.0/31", "192.0.2.0/32", "10.0.0.0/15",
                           "0.0.0.0/0", "192.0.2.0/33", "192.0.2.0/-1"}) {
    const std::string message = CidrError(text);
    EXPECT_NE(message.find("/16 and /29"), std::string::npos) << text << ": " << message;
  }
}

TEST(ParseIpv4CidrTest, HostBitsSetNamesTheNetwork) {
  EXPECT_EQ(CidrError("192.0.2.5/24"),
            "'192.0.2.5/24' has host bits set; the network is 192.0.2.0/24");
}

TEST(ParseIpv4CidrTest, RejectsMalformedInput) {
  CidrError("192.0.2.0");
  CidrError("192.0.2.0/");
  CidrError("192.0.2/24");
  CidrError("256.0.2.0/24");
  CidrError("example.org/24");
  CidrError("2001:db8::/64");
  CidrError("192.0.2.0/24x");
  CidrError("");
}

// ------------------------------------------------------------------------------------- misc
TEST(MacForServerTest, IsALocallyAdministeredKvmAddressDerivedFromTheId) {
  EXPECT_EQ(MacForServer(1), "52:54:00:00:00:01");
  EXPECT_EQ(MacForServer(0x0a0b0c), "52:54:00:0a:0b:0c");
  EXPECT_NE(MacForServer(1), MacForServer(2));
}

}  // namespace
}  // namespace gridd::domain
