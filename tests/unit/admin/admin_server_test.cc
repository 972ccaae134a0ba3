#include "gridd/admin/admin_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>

#include "admin/protocol.h"
#include "support/test_paths.h"
#include "unit/admin/admin_test_util.h"

namespace gridd::admin {
namespace {

using nlohmann::json;
using testing::RawClient;
using testing::RecordingHandler;

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = gridd::testing::MakeTempDir("gridd-admin");
    path_ = dir_ / "admin.sock";
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  AdminServer& StartServer() {
    server_ = std::make_unique<AdminServer>(path_, handler_.AsHandler());
    server_->Start();
    return *server_;
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
  RecordingHandler handler_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, RunsACommandAndRepliesWithItsResult) {
  StartServer();
  RawClient client(path_);
  json reply = client.Ask({{"command", "account.create"}, {"args", {{"name", "acme"}}}});

  EXPECT_EQ(reply["ok"], true);
  EXPECT_EQ(reply["result"]["echo"], "account.create");
  EXPECT_EQ(reply["result"]["args"], json({{"name", "acme"}}));
  auto calls = handler_.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].command, "account.create");
  EXPECT_EQ(calls[0].args, json({{"name", "acme"}}));
}

TEST_F(AdminServerTest, ServesSeveralRequestsOnOneConnection) {
  StartServer();
  RawClient client(path_);
  // Two requests in one write, then one without args: each gets its own reply, in order.
  client.Send(R"({"command":"a"})"
              "\n"
              R"({"command":"b","args":{"x":1}})"
              "\n");
  EXPECT_EQ(json::parse(client.ReadLine())["result"]["echo"], "a");
  EXPECT_EQ(json::parse(client.ReadLine())["result"]["echo"], "b");
  json reply = client.Ask({{"command", "c"}});
  EXPECT_EQ(reply["result"]["args"], json::object());
  EXPECT_EQ(handler_.calls().size(), 3u);
}

TEST_F(AdminServerTest, MalformedRequestsGetAnErrorAndTheConnectionStaysUsable) {
  StartServer();
  RawClient client(path_);

  client.Send("{not json\n");
  json reply = json::parse(client.ReadLine());
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], "malformed JSON request");

  EXPECT_EQ(client.Ask({{"args", json::object()}})["error"], "request has no \"command\"");
  EXPECT_EQ(client.Ask({{"command", 7}})["error"], "request has no \"command\"");
  EXPECT_EQ(client.Ask(json::array({1, 2}))["error"], "request must be a JSON object");
  EXPECT_EQ(client.Ask({{"command", "x"}, {"args", "nope"}})["error"],
            "\"args\" must be a JSON object");
  EXPECT_TRUE(handler_.calls().empty());

  EXPECT_EQ(client.Ask({{"command", "ok"}})["ok"], true);
}

TEST_F(AdminServerTest, HandlerExceptionBecomesAnErrorReply) {
  handler_.Respond([](const std::string&, const json&) -> json {
    throw std::runtime_error("no such account: ghost");
  });
  StartServer();
  RawClient client(path_);
  json reply = client.Ask({{"command", "apikey.create"}, {"args", {{"account", "ghost"}}}});
  EXPECT_EQ(reply, json({{"ok", false}, {"error", "no such account: ghost"}}));

  // The failure does not cost the connection.
  handler_.Respond([](const std::string&, const json&) { return json(42); });
  EXPECT_EQ(client.Ask({{"command", "x"}}), json({{"ok", true}, {"result", 42}}));
}

TEST_F(AdminServerTest, OverlongLineIsRefusedAndTheConnectionClosed) {
  StartServer();
  RawClient client(path_);
  client.Send(std::string(protocol::kMaxLineBytes + 10, 'x'));
  json reply = json::parse(client.ReadLine());
  EXPECT_EQ(reply["ok"], false);
  EXPECT_EQ(reply["error"], "request line longer than 1 MiB");
  EXPECT_TRUE(client.ClosedByPeer());
  EXPECT_TRUE(handler_.calls().empty());
}

TEST_F(AdminServerTest, LineOfExactlyTheLimitIsAccepted) {
  StartServer();
  RawClient client(path_);
  std::string request = R"({"command":"big","args":{"pad":")";
  request += std::string(protocol::kMaxLineBytes - request.size() - 3, 'p') + "\"}}";
  ASSERT_EQ(request.size(), protocol::kMaxLineBytes);
  client.Send(request + "\n");
  EXPECT_EQ(json::parse(client.ReadLine())["ok"], true);
}

TEST_F(AdminServerTest, CommandsNeverOverlap) {
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  handler_.Respond([&](const std::string&, const json&) {
    int now = ++running;
    max_running = std::max(max_running.load(), now);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --running;
    return json(true);
  });
  StartServer();
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([this] {
      RawClient client(path_);
      for (int j = 0; j < 3; ++j) EXPECT_EQ(client.Ask({{"command", "x"}})["ok"], true);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(max_running.load(), 1);
  EXPECT_EQ(handler_.calls().size(), 12u);
}

TEST_F(AdminServerTest, SocketFileIsPrivateToTheOwner) {
  StartServer();
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(AdminServerTest, SecondServerOnTheSamePathRefusesToStart) {
  StartServer();
  AdminServer second(path_, handler_.AsHandler());
  try {
    second.Start();
    FAIL() << "second server started";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "another gridd is already serving " + path_.string());
  }
  second.Stop();  // harmless on a server that never started
  // The first one is untouched and still serving.
  EXPECT_TRUE(std::filesystem::exists(path_));
  RawClient client(path_);
  EXPECT_EQ(client.Ask({{"command", "x"}})["ok"], true);
}

TEST_F(AdminServerTest, StaleSocketFileIsReplaced) {
  // What a crashed daemon leaves: a socket file nobody listens on.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address = testing::UnixAddress(path_);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ::close(fd);
  ASSERT_TRUE(std::filesystem::is_socket(path_));

  StartServer();
  RawClient client(path_);
  EXPECT_EQ(client.Ask({{"command", "x"}})["ok"], true);
}

TEST_F(AdminServerTest, RefusesToDeleteSomethingThatIsNotASocket) {
  std::ofstream(path_) << "precious";
  AdminServer server(path_, handler_.AsHandler());
  EXPECT_THROW(server.Start(), std::runtime_error);
  EXPECT_EQ(testing::ReadFile(path_), "precious");
}

TEST_F(AdminServerTest, StopRemovesTheSocketAndIsIdempotent) {
  AdminServer& server = StartServer();
  RawClient idle(path_);  // an open idle connection must not hold Stop up
  ASSERT_EQ(idle.Ask({{"command", "x"}})["ok"], true);
  server.Stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(idle.ClosedByPeer());
  server.Stop();
  EXPECT_THROW(RawClient{path_}, std::runtime_error);
}

TEST_F(AdminServerTest, StopLeavesASuccessorsSocketAlone) {
  AdminServer& server = StartServer();
  // Someone removed our socket and a new daemon bound the path.
  std::filesystem::remove(path_);
  RecordingHandler other_handler;
  AdminServer other(path_, other_handler.AsHandler());
  other.Start();
  server.Stop();
  EXPECT_TRUE(std::filesystem::exists(path_));
  RawClient client(path_);
  EXPECT_EQ(client.Ask({{"command", "x"}})["ok"], true);
  EXPECT_EQ(other_handler.calls().size(), 1u);
}

TEST_F(AdminServerTest, StopLetsTheCommandInProgressFinishAndReply) {
  std::mutex mutex;
  std::condition_variable cv;
  bool entered = false;
  bool release = false;
  handler_.Respond([&](const std::string&, const json&) {
    std::unique_lock lock(mutex);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return json("done");
  });
  AdminServer& server = StartServer();
  RawClient client(path_);
  client.Send(R"({"command":"slow"})"
              "\n");
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return entered; }));
  }
  auto stopped = std::async(std::launch::async, [&] { server.Stop(); });
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(json::parse(client.ReadLine()), json({{"ok", true}, {"result", "done"}}));
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(AdminServerTest, PeerOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
  StartServer();
  // Open the way for an unprivileged user so only the credential check stands in between.
  ASSERT_EQ(::chmod(dir_.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);

  // Everything the child needs is prepared before fork: it may only make plain system calls.
  sockaddr_un address = testing::UnixAddress(path_);
  const char request[] = "{\"command\":\"x\"}\n";
  const char expected[] = R"({"error":"permission denied","ok":false})";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) ::_exit(11);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      ::_exit(12);
    }
    (void)!::send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL);
    char reply[256] = {};
    std::size_t got = 0;
    for (;;) {
      ssize_t n = ::recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::_exit(std::strncmp(reply, expected, sizeof(expected) - 1) == 0 ? 0 : 13);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(handler_.calls().empty());
}

TEST(AdminServerLifecycle, StartTwiceIsAnError) {
  auto dir = gridd::testing::MakeTempDir("gridd-admin");
  AdminServer server(dir / "admin.sock", [](const std::string&, const json&) { return json(); });
  server.Start();
  EXPECT_THROW(server.Start(), std::logic_error);
  server.Stop();
  std::filesystem::remove_all(dir);
}

TEST(AdminServerLifecycle, OverlongSocketPathIsReportedClearly) {
  auto dir = gridd::testing::MakeTempDir("gridd-admin");
  AdminServer server(dir / std::string(120, 'd') / "admin.sock",
                     [](const std::string&, const json&) { return json(); });
  try {
    server.Start();
    FAIL() << "started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("too long"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(AdminProtocol, RepliesAreSingleLines) {
  EXPECT_EQ(protocol::OkReply({{"a", "x\ny"}}), "{\"ok\":true,\"result\":{\"a\":\"x\\ny\"}}\n");
  EXPECT_EQ(protocol::ErrorReply("bad"), "{\"error\":\"bad\",\"ok\":false}\n");
  // Invalid UTF-8 from a handler is replaced, not a serialization failure.
  EXPECT_NO_THROW(protocol::OkReply(json(std::string("\xff"))));
}

}  // namespace
}  // namespace gridd::admin
