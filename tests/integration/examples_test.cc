// The customer examples in scripts/examples/ against a live gridd: the curl and openssl script
// and the libcloud script each add a server that then runs, as the account sees it through
// the API.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

class ExamplesTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon_.Start(); }

  // Runs an example with the initial account's credentials in its environment.
  CommandResult RunExample(const std::string& interpreter, const std::string& script,
                           const std::string& args) {
    const std::filesystem::path path = SourceDir() / "scripts" / "examples" / script;
    EXPECT_TRUE(std::filesystem::exists(path)) << path;
    const std::string url = "http://" + daemon_.host() + ":" + std::to_string(daemon_.port());
    return RunCommand("env GOGRID_URL=" + ShellQuote(url) +
                      " GOGRID_API_KEY=" + ShellQuote(daemon_.api_key()) +
                      " GOGRID_SECRET=" + ShellQuote(daemon_.shared_secret()) + " " + interpreter +
                      " " + ShellQuote(path.string()) + " " + args);
  }

  std::optional<nlohmann::json> FindServer(ApiClient& client, const std::string& name) {
    const auto servers = CallOk(client, "grid/server/list");
    for (const auto& server : servers["list"]) {
      if (server["name"] == name) return server;
    }
    return std::nullopt;
  }

  DaemonProcess daemon_;
};

TEST_F(ExamplesTest, TheCurlScriptAddsAServerThatRuns) {
  auto result = RunExample("/bin/bash", "gogrid-curl.sh", "curl-example");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("servers in the account: 0"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("job for curl-example: Succeeded"), std::string::npos)
      << result.output;
  ApiClient client = daemon_.Client();
  auto server = FindServer(client, "curl-example");
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ((*server)["state"]["name"], "On");

  // A second run sees the first server, and --delete takes its own server away again.
  auto again = RunExample("/bin/bash", "gogrid-curl.sh", "--delete curl-second");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("servers in the account: 1"), std::string::npos) << again.output;
  EXPECT_TRUE(WaitFor([&] { return !FindServer(client, "curl-second").has_value(); }));
  EXPECT_TRUE(FindServer(client, "curl-example").has_value());
}

TEST_F(ExamplesTest, TheCurlScriptFailsClearlyWithABadSecret) {
  const std::filesystem::path path = SourceDir() / "scripts" / "examples" / "gogrid-curl.sh";
  auto result =
      RunCommand("env GOGRID_URL=http://" + daemon_.host() + ":" + std::to_string(daemon_.port()) +
                 " GOGRID_API_KEY=" + ShellQuote(daemon_.api_key()) +
                 " GOGRID_SECRET=wrong /bin/bash " + ShellQuote(path.string()) + " nope");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("403"), std::string::npos) << result.output;
  ApiClient client = daemon_.Client();
  EXPECT_FALSE(FindServer(client, "nope").has_value());
}

TEST_F(ExamplesTest, TheLibcloudScriptAddsAServerThatRunsAndDeletesIt) {
  if (!DebianPythonCan("import libcloud.compute.drivers.gogrid")) {
    GTEST_SKIP() << kDebianPython
                 << " cannot import libcloud; install python3-libcloud (scripts/test does)";
  }
  const std::string python = std::string(kDebianPython) + " -I";
  auto kept = RunExample(python, "gogrid-libcloud.py", "libcloud-kept");
  ASSERT_EQ(kept.exit_code, 0) << kept.output;
  EXPECT_NE(kept.output.find("server libcloud-kept is running"), std::string::npos) << kept.output;
  ApiClient client = daemon_.Client();
  auto server = FindServer(client, "libcloud-kept");
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ((*server)["state"]["name"], "On");

  auto deleted = RunExample(python, "gogrid-libcloud.py", "--delete libcloud-gone");
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_NE(deleted.output.find("servers in the account: 1"), std::string::npos) << deleted.output;
  EXPECT_TRUE(WaitFor([&] { return !FindServer(client, "libcloud-gone").has_value(); }));
}

}  // namespace
}  // namespace gridd::testing
