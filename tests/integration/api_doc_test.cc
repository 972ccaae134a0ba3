// docs/api.md cannot drift from the code: every example in it (a curl command in a block
// marked `sh example`, followed by its answer in a `json response` or `xml response` block)
// is run, in order, against a new gridd set up as the document says, and the answer must
// match the one shown, where "…" stands for a value that differs from run to run and a key
// "…" for keys not shown.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "integration/api_world.h"

namespace gridd::testing {
namespace {

using nlohmann::json;

const std::string kAnything = "\xE2\x80\xA6";  // "…"

struct Example {
  size_t line = 0;
  std::string command;
  std::string kind;  // "json" or "xml"
  std::string response;
};

std::vector<Example> ReadExamples(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<Example> out;
  std::string line;
  size_t number = 0;
  // The fenced block being read: its info string and its text.
  std::string fence;
  std::string text;
  while (std::getline(in, line)) {
    ++number;
    if (fence.empty()) {
      if (line.starts_with("```") && line.size() > 3) {
        fence = line.substr(3);
        text.clear();
      } else if (line == "```") {
        fence = "plain";
        text.clear();
      }
      continue;
    }
    if (line != "```") {
      text += line + "\n";
      continue;
    }
    if (fence == "sh example") {
      out.push_back(Example{number, text, "", ""});
    } else if ((fence == "json response" || fence == "xml response") && !out.empty() &&
               out.back().kind.empty()) {
      out.back().kind = fence.substr(0, fence.find(' '));
      out.back().response = text;
    }
    fence.clear();
  }
  return out;
}

// Empty when `actual` matches the documented `expected`, else where it does not.
std::string Mismatch(const json& expected, const json& actual, const std::string& path) {
  if (expected.is_string() && expected.get<std::string>() == kAnything) {
    return actual.is_null() ? path + " is missing" : "";
  }
  if (expected.is_object()) {
    if (!actual.is_object()) return path + " is not an object: " + actual.dump();
    const bool partial = expected.contains(kAnything);
    for (const auto& [key, value] : expected.items()) {
      if (key == kAnything) continue;
      if (!actual.contains(key)) return path + "." + key + " is missing";
      auto problem = Mismatch(value, actual[key], path + "." + key);
      if (!problem.empty()) return problem;
    }
    if (!partial) {
      for (const auto& [key, value] : actual.items()) {
        if (!expected.contains(key)) return path + "." + key + " is not in the document";
      }
    }
    return "";
  }
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) {
      return path + " has " + std::to_string(actual.size()) + " entries, the document " +
             std::to_string(expected.size());
    }
    for (size_t i = 0; i < expected.size(); ++i) {
      auto problem = Mismatch(expected[i], actual[i], path + "[" + std::to_string(i) + "]");
      if (!problem.empty()) return problem;
    }
    return "";
  }
  if (expected != actual) return path + " is " + actual.dump() + ", the document says " + expected.dump();
  return "";
}

TEST(ApiDocTest, EveryExampleInTheReferenceAnswersAsShown) {
  const auto examples = ReadExamples(SourceDir() / "docs" / "api.md");
  ASSERT_GE(examples.size(), 20u) << "docs/api.md has too few examples";

  DaemonProcess daemon;
  daemon.Start();
  for (const char* pool : {"127.78.0.0/28", "127.78.1.0/28"}) {
    auto added = RunGridctl(daemon.data_dir(),
                            std::string("ippool add --datacenter US-West-1 --type public "
                                        "--account default ") + pool);
    ASSERT_EQ(added.exit_code, 0) << added.output;
  }
  ApiClient client = daemon.Client();
  const std::string port = std::to_string(FreePortOn("127.78.0.2"));
  for (const auto& example : examples) {
    SCOPED_TRACE("docs/api.md line " + std::to_string(example.line) + ": " + example.command);
    ASSERT_FALSE(example.kind.empty()) << "an example without a response block";
    const bool idle = WaitFor([&] {
      auto reply = client.Call("grid/job/list", {{"job.state", "Queued"}, {"job.state", "Processing"}});
      return reply.status == 200 && reply.json()["list"].empty();
    });
    ASSERT_TRUE(idle) << "jobs still pending before the example";
    const std::string sig = Md5Hex(daemon.api_key() + daemon.shared_secret() +
                                   std::to_string(std::time(nullptr)));
    const std::string environment =
        "GRIDD=" + ShellQuote("http://" + daemon.host() + ":" + std::to_string(daemon.port())) +
        " KEY=" + ShellQuote(daemon.api_key()) + " SIG=" + sig + " PORT=" + port +
        "; export GRIDD KEY SIG PORT; ";
    const auto run = RunCommand(environment + example.command);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    if (example.kind == "xml") {
      EXPECT_EQ(run.output, example.response);
      continue;
    }
    json actual;
    try {
      actual = json::parse(run.output);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "not JSON: " << run.output;
      continue;
    }
    EXPECT_EQ(Mismatch(json::parse(example.response), actual, "response"), "") << run.output;
  }
}

}  // namespace
}  // namespace gridd::testing
