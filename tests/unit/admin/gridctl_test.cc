// Runs the built gridctl against an AdminServer with a recording handler: argument mapping,
// output and exit codes.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "gridd/admin/admin_server.h"
#include "support/test_paths.h"
#include "unit/admin/admin_test_util.h"

namespace gridd::admin {
namespace {

using nlohmann::json;
using testing::ProcessResult;
using testing::RecordingHandler;

class GridctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = gridd::testing::MakeTempDir("gridd-gridctl");
    scratch_ = gridd::testing::MakeTempDir("gridd-gridctl-out");
    gridctl_ = gridd::testing::BinaryDir() / "gridctl";
    ASSERT_TRUE(std::filesystem::exists(gridctl_)) << gridctl_ << " is not built";
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
    std::filesystem::remove_all(scratch_);
  }

  void StartServer() {
    server_ = std::make_unique<AdminServer>(dir_ / "admin.sock", handler_.AsHandler());
    server_->Start();
  }

  ProcessResult Run(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), {"--data-dir", dir_.string()});
    return testing::RunProcess(gridctl_, args, scratch_, env);
  }

  std::filesystem::path dir_;
  std::filesystem::path scratch_;
  std::filesystem::path gridctl_;
  RecordingHandler handler_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(GridctlTest, ApikeyCreateSendsTheArgsAndPrintsTheResultAsJson) {
  json result = {{"api_key", "k123"},
                 {"shared_secret", "s456"},
                 {"account", "default"},
                 {"role", "Read Only User"}};
  handler_.Respond([result](const std::string&, const json&) { return result; });
  StartServer();

  ProcessResult run =
      Run({"apikey", "create", "--account", "default", "--role", "readonly", "--json"});

  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(json::parse(run.out), result);
  auto calls = handler_.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].command, "apikey.create");
  EXPECT_EQ(calls[0].args, json({{"account", "default"}, {"role", "readonly"}}));
}

TEST_F(GridctlTest, ApikeyCreatePrintsKeyAndSecretLines) {
  handler_.Respond([](const std::string&, const json&) {
    return json{{"api_key", "k123"}, {"shared_secret", "s456"}};
  });
  StartServer();
  ProcessResult run = Run({"apikey", "create", "--account", "7", "--role", "Super User"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("api_key: k123\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("shared_secret: s456\n"), std::string::npos) << run.out;
  EXPECT_EQ(handler_.calls().at(0).args, json({{"account", "7"}, {"role", "Super User"}}));
}

TEST_F(GridctlTest, HandlerErrorExitsOneWithTheMessage) {
  handler_.Respond([](const std::string&, const json&) -> json {
    throw std::runtime_error("no such account: ghost");
  });
  StartServer();
  ProcessResult run = Run({"apikey", "create", "--account", "ghost", "--role", "readonly"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err, "gridctl: no such account: ghost\n");
  EXPECT_EQ(run.out, "");
}

TEST_F(GridctlTest, NoDaemonExitsThree) {
  ProcessResult run = Run({"account", "list"});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("gridctl: cannot reach gridd at " + (dir_ / "admin.sock").string()),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("is gridd running with this --data-dir?"), std::string::npos);
}

TEST_F(GridctlTest, UsageErrorsExitTwoWithoutContactingTheDaemon) {
  StartServer();
  EXPECT_EQ(Run({"apikey", "create", "--account", "a"}).exit_code, 2);  // --role missing
  EXPECT_EQ(
      Run({"ippool", "add", "--datacenter", "d", "--type", "elastic", "10.0.0.0/24"}).exit_code, 2);
  EXPECT_EQ(Run({"nosuch"}).exit_code, 2);
  EXPECT_EQ(Run({}).exit_code, 2);
  EXPECT_EQ(Run({"account"}).exit_code, 2);
  EXPECT_TRUE(handler_.calls().empty());
  EXPECT_EQ(Run({"--help"}).exit_code, 0);
}

TEST_F(GridctlTest, OptionalArgsAreSentOnlyWhenGiven) {
  StartServer();
  ASSERT_EQ(
      Run({"ippool", "add", "--datacenter", "dc1", "--type", "private", "10.1.0.0/24"}).exit_code,
      0);
  ASSERT_EQ(Run({"ippool", "add", "--datacenter", "dc1", "--type", "public", "--account", "acme",
                 "--network", "net0", "203.0.113.0/28"})
                .exit_code,
            0);
  ASSERT_EQ(Run({"apikey", "list"}).exit_code, 0);
  ASSERT_EQ(Run({"apikey", "list", "--account", "acme"}).exit_code, 0);
  ASSERT_EQ(Run({"apikey", "revoke", "k123"}).exit_code, 0);
  ASSERT_EQ(Run({"account", "create", "acme"}).exit_code, 0);
  ASSERT_EQ(Run({"account", "list"}).exit_code, 0);
  ASSERT_EQ(Run({"ippool", "list"}).exit_code, 0);
  ASSERT_EQ(Run({"image", "list"}).exit_code, 0);

  auto calls = handler_.calls();
  ASSERT_EQ(calls.size(), 9u);
  EXPECT_EQ(calls[0].command, "ippool.add");
  EXPECT_EQ(calls[0].args,
            json({{"datacenter", "dc1"}, {"type", "private"}, {"cidr", "10.1.0.0/24"}}));
  EXPECT_EQ(calls[1].args, json({{"datacenter", "dc1"},
                                 {"type", "public"},
                                 {"account", "acme"},
                                 {"network", "net0"},
                                 {"cidr", "203.0.113.0/28"}}));
  EXPECT_EQ(calls[2].command, "apikey.list");
  EXPECT_EQ(calls[2].args, json::object());
  EXPECT_EQ(calls[3].args, json({{"account", "acme"}}));
  EXPECT_EQ(calls[4].command, "apikey.revoke");
  EXPECT_EQ(calls[4].args, json({{"api_key", "k123"}}));
  EXPECT_EQ(calls[5].command, "account.create");
  EXPECT_EQ(calls[5].args, json({{"name", "acme"}}));
  EXPECT_EQ(calls[6].command, "account.list");
  EXPECT_EQ(calls[7].command, "ippool.list");
  EXPECT_EQ(calls[8].command, "image.list");
  EXPECT_EQ(calls[8].args, json::object());
}

TEST_F(GridctlTest, ListsPrintAsAlignedTables) {
  handler_.Respond([](const std::string&, const json&) {
    return json::array({
        {{"id", 1}, {"name", "default"}, {"servers", 0}},
        {{"id", 12}, {"name", "acme"}, {"servers", 3}, {"note", nullptr}},
    });
  });
  StartServer();
  ProcessResult run = Run({"account", "list"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // nlohmann::json sorts keys, so that is the order on the wire; a key first seen in a later
  // row gets a column too.
  EXPECT_EQ(run.out,
            "ID  NAME     SERVERS  NOTE\n"
            "1   default  0        -\n"
            "12  acme     3        -\n");
}

TEST_F(GridctlTest, EmptyListSaysSo) {
  handler_.Respond([](const std::string&, const json&) { return json::array(); });
  StartServer();
  ProcessResult run = Run({"image", "list"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "(none)\n");
}

TEST_F(GridctlTest, DataDirComesFromTheEnvironmentAndGlobalsMayFollowTheSubcommand) {
  handler_.Respond([](const std::string&, const json&) { return json::array(); });
  StartServer();
  ProcessResult run = testing::RunProcess(gridctl_, {"account", "list", "--json"}, scratch_,
                                          {"GRIDD_DATA_DIR=" + dir_.string()});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(json::parse(run.out), json::array());
}

}  // namespace
}  // namespace gridd::admin
