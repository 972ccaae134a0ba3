#include "gridd/common/csv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gridd {
namespace {

using Fields = std::vector<std::string>;

TEST(CsvTest, QuotedFieldsKeepCommasQuotesAndLineBreaks) {
  const CsvDocument document = ParseCsv("id,name\n1,\"a, \"\"b\"\"\nc\"\n2,\n,\"\"\n");
  EXPECT_EQ(document.error, "");
  ASSERT_EQ(document.records.size(), 4u);
  EXPECT_EQ(document.records[0], (Fields{"id", "name"}));
  EXPECT_EQ(document.records[1], (Fields{"1", "a, \"b\"\nc"}));
  EXPECT_EQ(document.records[2], (Fields{"2", ""}));
  EXPECT_EQ(document.records[3], (Fields{"", ""}));
  EXPECT_TRUE(ParseCsv("").records.empty());
  EXPECT_EQ(ParseCsv("").error, "");
}

TEST(CsvTest, MalformedTextIsReportedAndReadAsFarAsPossible) {
  CsvDocument document = ParseCsv("a,b\nc,d");
  EXPECT_EQ(document.error, "last record does not end with a line break");
  ASSERT_EQ(document.records.size(), 2u);
  EXPECT_EQ(document.records[1], (Fields{"c", "d"}));

  EXPECT_EQ(ParseCsv("a,\"open\n").error, "unterminated quoted field");
  document = ParseCsv("ab\"c\"d\n");
  EXPECT_EQ(document.error, "quote inside an unquoted field");
  EXPECT_EQ(document.records[0], (Fields{"abcd"}));
}

TEST(CsvTest, SplitRecordReadsOneLineAsHaproxyWritesIt) {
  EXPECT_EQ(SplitCsvRecord("pxname,svname,status"), (Fields{"pxname", "svname", "status"}));
  EXPECT_EQ(SplitCsvRecord("lb_1,\"rip,1\",UP,"), (Fields{"lb_1", "rip,1", "UP", ""}));
  EXPECT_EQ(SplitCsvRecord(""), (Fields{""}));
  EXPECT_EQ(SplitCsvRecord("\"say \"\"hi\"\"\""), (Fields{"say \"hi\""}));
}

}  // namespace
}  // namespace gridd
