#include "gridd/common/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace gridd::log {
namespace {

struct CapturedLogger {
  explicit CapturedLogger(Format format)
      : logger("component", std::make_shared<spdlog::sinks::ostream_sink_st>(out)) {
    logger.set_formatter(MakeFormatter(format));
    logger.set_level(spdlog::level::info);
  }
  std::ostringstream out;
  spdlog::logger logger;
};

TEST(LogTest, TextLinesCarryTimeLevelLoggerMessageAndQuotedFields) {
  CapturedLogger captured(Format::kText);
  Event(captured.logger, spdlog::level::warn, "job failed",
        {{"job", "12"}, {"error", "disk \"full\"\nnow"}});
  const std::string line = captured.out.str();
  // 2026-01-02T03:04:05.678Z
  ASSERT_GE(line.size(), 25u);
  EXPECT_EQ(line[4], '-');
  EXPECT_EQ(line[10], 'T');
  EXPECT_EQ(line[23], 'Z');
  EXPECT_EQ(line[24], ' ');
  EXPECT_EQ(line.substr(25),
            "warning component: job failed job=12 error=\"disk \\\"full\\\"\\nnow\"\n");
}

TEST(LogTest, JsonLinesAreOneObjectEach) {
  CapturedLogger captured(Format::kJson);
  captured.logger.info("plain {} message\nwith a newline", 1);
  Event(captured.logger, spdlog::level::info, "request", {{"status", "200"}, {"level", "forged"}});
  std::istringstream lines(captured.out.str());
  std::string first, second, extra;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  EXPECT_FALSE(std::getline(lines, extra)) << "a message with a newline stays one line";
  auto plain = nlohmann::json::parse(first);
  EXPECT_EQ(plain["msg"], "plain 1 message\nwith a newline");
  EXPECT_EQ(plain["level"], "info");
  EXPECT_EQ(plain["logger"], "component");
  EXPECT_TRUE(plain["time"].is_string());
  auto event = nlohmann::json::parse(second);
  EXPECT_EQ(event["msg"], "request");
  EXPECT_EQ(event["status"], "200");
  EXPECT_EQ(event["level"], "info") << "a field cannot overwrite the line's own keys";
}

TEST(LogTest, ScopedFieldsJoinEveryLineOfTheThreadUntilTheScopeEnds) {
  CapturedLogger captured(Format::kText);
  {
    ScopedFields request(Fields{{"request_id", "abc"}});
    {
      ScopedFields job(Fields{{"job", "5"}});
      captured.logger.info("inner");
    }
    captured.logger.info("outer");
  }
  captured.logger.info("after");
  const std::string text = captured.out.str();
  EXPECT_NE(text.find("component: inner request_id=abc job=5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("component: outer request_id=abc\n"), std::string::npos) << text;
  EXPECT_NE(text.find("component: after\n"), std::string::npos) << text;
}

TEST(LogTest, DecodeSplitsEventsAndLeavesPlainText) {
  auto plain = Decode("just text");
  EXPECT_EQ(plain.message, "just text");
  EXPECT_TRUE(plain.fields.empty());
  EXPECT_EQ(ParseFormat("json"), Format::kJson);
  EXPECT_EQ(ParseFormat("text"), Format::kText);
  EXPECT_FALSE(ParseFormat("xml"));
}

}  // namespace
}  // namespace gridd::log
