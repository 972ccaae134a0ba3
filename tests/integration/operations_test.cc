// What an operator relies on: Prometheus metrics that pass promtool and move with requests and
// jobs, structured (JSON) logs with request ids, configuration reload on SIGHUP, and a systemd
// unit that systemd accepts.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string Scrape(const DaemonProcess& daemon) {
  ApiClient metrics(daemon.host(), daemon.metrics_port());
  auto reply = metrics.Raw("GET", "/metrics");
  EXPECT_EQ(reply.status, 200u) << reply.body;
  EXPECT_EQ(reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
  return reply.body;
}

// The value of the sample `series` (name with its labels as rendered), or -1 when absent.
double Sample(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

bool HasPromtool() { return RunCommand("command -v promtool").exit_code == 0; }

TEST(MetricsTest, PassPromtoolAndMoveWithRequestsAndJobs) {
  ASSERT_TRUE(HasPromtool()) << "promtool missing: install Debian's prometheus package "
                                "(scripts/lib/deps.sh lists it)";
  DaemonProcess daemon;
  daemon.Start();
  ASSERT_NE(daemon.metrics_port(), 0);
  ASSERT_NE(daemon.metrics_port(), daemon.port()) << "metrics have their own listener";

  const std::string before = Scrape(daemon);
  for (const char* family :
       {"gridd_api_requests_total", "gridd_api_request_duration_seconds",
        "gridd_jobs_finished_total", "gridd_job_duration_seconds", "gridd_job_queue_depth",
        "gridd_job_oldest_queued_age_seconds", "gridd_hosts", "gridd_servers", "gridd_ip_addresses",
        "gridd_lb_engine_reloads_total", "gridd_reconciler_repairs_total"}) {
    EXPECT_NE(before.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  EXPECT_EQ(Sample(before, "gridd_hosts{state=\"Up\"}"), 1);
  EXPECT_EQ(Sample(before, "gridd_servers{state=\"On\"}"), 0);
  const double free_before = Sample(
      before, "gridd_ip_addresses{datacenter=\"US-West-1\",type=\"Public\",state=\"Unassigned\"}");
  EXPECT_GT(free_before, 0);

  ApiClient client = daemon.Client();
  CallOk(client, "grid/server/list");
  CallOk(client, "grid/server/list");
  EXPECT_EQ(client.Call("grid/server/get", {{"id", "not-a-number"}}).status, 400u);
  const std::string image = CallOk(client, "grid/image/list")["list"][0]["name"];
  const std::string ip = FreePublicIps(client).at(0);
  CallOk(client, "grid/server/add",
         {{"name", "metered"}, {"image", image}, {"server.ram", "512MB"}, {"ip", ip}}, "POST");
  WaitForServerState(client, ip, "On");

  // The job is marked Succeeded just after the server turns On; wait for the count.
  std::string after;
  ASSERT_TRUE(WaitFor([&] {
    after = Scrape(daemon);
    return Sample(
               after,
               "gridd_jobs_finished_total{command=\"CreateVirtualServer\",state=\"Succeeded\"}") ==
           1;
  })) << after;
  EXPECT_GE(Sample(after, "gridd_api_requests_total{method=\"/grid/server/list\",status=\"200\"}"),
            2);
  EXPECT_EQ(Sample(after, "gridd_api_requests_total{method=\"/grid/server/get\",status=\"400\"}"),
            1);
  EXPECT_EQ(Sample(after, "gridd_api_requests_total{method=\"/grid/server/add\",status=\"200\"}"),
            1);
  EXPECT_EQ(Sample(after, "gridd_api_request_duration_seconds_count{method=\"/grid/server/add\"}"),
            1);
  EXPECT_EQ(Sample(after, "gridd_job_duration_seconds_count{command=\"CreateVirtualServer\"}"), 1);
  EXPECT_EQ(Sample(after, "gridd_servers{state=\"On\"}"), 1);
  EXPECT_EQ(
      Sample(after,
             "gridd_ip_addresses{datacenter=\"US-West-1\",type=\"Public\",state=\"Assigned\"}"),
      1);
  EXPECT_EQ(
      Sample(after,
             "gridd_ip_addresses{datacenter=\"US-West-1\",type=\"Public\",state=\"Unassigned\"}"),
      free_before - 1);
  EXPECT_EQ(Sample(after, "gridd_job_queue_depth"), 0);

  // The exposition is valid for Prometheus' own checker (lint included).
  const fs::path file = ScratchDir("gridd-metrics") / "metrics.txt";
  std::ofstream(file) << after;
  const CommandResult check = RunCommand("promtool check metrics < " + ShellQuote(file.string()));
  EXPECT_EQ(check.exit_code, 0) << check.output;

  ApiClient metrics(daemon.host(), daemon.metrics_port());
  EXPECT_EQ(metrics.Raw("GET", "/api/grid/server/list").status, 404u)
      << "the API is not served here";
}

TEST(MetricsTest, CanBeTurnedOff) {
  DaemonProcess daemon({}, {});
  daemon.set_config(WriteConfig({{"enabled = true\nlisten = \"127.0.0.1:9464\"",
                                  "enabled = false\nlisten = \"127.0.0.1:9464\""}}));
  daemon.Start();
  EXPECT_EQ(daemon.metrics_port(), 0);
  EXPECT_EQ(daemon.LogText().find("metrics on http://"), std::string::npos);
}

TEST(LogTest, JsonLinesCarryTheRequestIdOfEveryAnswer) {
  DaemonProcess daemon;
  daemon.set_config(WriteConfig({{"format = \"text\"", "format = \"json\""}}));
  daemon.Start();
  ApiClient client = daemon.Client();
  auto ok = client.Call("grid/server/list", {});
  ASSERT_EQ(ok.status, 200u);
  const std::string ok_id = ok.Header("X-Request-Id");
  ASSERT_FALSE(ok_id.empty());
  auto refused = client.Call("grid/server/get", {{"id", "nope"}});
  ASSERT_EQ(refused.status, 400u);
  const std::string refused_id = refused.Header("X-Request-Id");
  ASSERT_FALSE(refused_id.empty());
  EXPECT_NE(ok_id, refused_id);
  daemon.Stop();

  std::istringstream lines(daemon.LogText());
  std::string line;
  int objects = 0;
  nlohmann::json ok_access, refused_access, refused_reason;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    nlohmann::json object;
    ASSERT_NO_THROW(object = nlohmann::json::parse(line)) << "not JSON: " << line;
    ++objects;
    for (const char* key : {"time", "level", "logger", "msg"}) {
      EXPECT_TRUE(object.contains(key)) << key << " missing: " << line;
    }
    if (object.value("logger", "") == "access" && object.value("request_id", "") == ok_id)
      ok_access = object;
    if (object.value("logger", "") == "access" && object.value("request_id", "") == refused_id) {
      refused_access = object;
    }
    if (object.value("logger", "") == "gridd" && object.value("request_id", "") == refused_id) {
      refused_reason = object;
    }
  }
  EXPECT_GT(objects, 5);
  ASSERT_TRUE(ok_access.is_object()) << "no access line for request " << ok_id;
  EXPECT_EQ(ok_access["status"], "200");
  EXPECT_EQ(ok_access["method"], "/grid/server/list");
  EXPECT_EQ(ok_access["client"], "127.0.0.1");
  EXPECT_NE(ok_access["api_key_id"], "-");
  EXPECT_TRUE(ok_access.contains("duration_ms"));
  ASSERT_TRUE(refused_access.is_object()) << "no access line for request " << refused_id;
  EXPECT_EQ(refused_access["status"], "400");
  ASSERT_TRUE(refused_reason.is_object())
      << "the refusal's reason is not logged with its request id";
  EXPECT_NE(refused_reason["msg"].get<std::string>().find("IllegalArgumentException"),
            std::string::npos)
      << refused_reason.dump();
}

TEST(ReloadTest, SighupAppliesLiveKeysAndNamesTheOthers) {
  const fs::path config = WriteConfig({});
  DaemonProcess daemon;
  daemon.set_config(config);
  daemon.Start();
  ApiClient client = daemon.Client();

  std::string text = ReadText(config);
  for (const auto& [from, to] :
       std::vector<std::pair<std::string, std::string>>{{"level = \"info\"", "level = \"debug\""},
                                                        {"workers = 4", "workers = 2"},
                                                        {"threads = 4", "threads = 3"}}) {
    text.replace(text.find(from), from.size(), to);
  }
  std::ofstream(config) << text;
  ASSERT_EQ(kill(daemon.pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    return daemon.LogText().find("takes effect at the next restart") != std::string::npos;
  })) << daemon.LogText();
  std::string log = daemon.LogText();
  EXPECT_NE(log.find("reload: applied log.level: info -> debug"), std::string::npos) << log;
  EXPECT_NE(log.find("reload: applied jobs.workers: 4 -> 2"), std::string::npos) << log;
  EXPECT_NE(log.find("reload: server.threads: 4 -> 3 takes effect at the next restart"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("server.listen"), std::string::npos) << "a --listen flag still overrides";

  // Debug lines appear now, and jobs still run with two workers.
  const std::string image = CallOk(client, "grid/image/list")["list"][0]["name"];
  const std::string ip = FreePublicIps(client).at(0);
  CallOk(client, "grid/server/add",
         {{"name", "after-reload"}, {"image", image}, {"server.ram", "512MB"}, {"ip", ip}}, "POST");
  WaitForServerState(client, ip, "On");
  EXPECT_NE(daemon.LogText().find(" debug "), std::string::npos) << "log level debug not in effect";

  // A broken file changes nothing and gridd keeps serving.
  std::ofstream(config) << "[server\nthreads = ";
  ASSERT_EQ(kill(daemon.pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    return daemon.LogText().find("reload: configuration not changed") != std::string::npos;
  })) << daemon.LogText();
  CallOk(client, "grid/server/list");
  EXPECT_EQ(daemon.Stop(), 0);
}

// systemd's side of Type=notify, played by the test: a datagram socket in NOTIFY_SOCKET and a
// watchdog interval in WATCHDOG_USEC, as systemd sets them for the service.
TEST(SystemdNotifyTest, ReadyWatchdogReloadingAndStoppingReachTheNotifySocket) {
  const fs::path socket_path = ScratchDir("gridd-notify") / "notify.sock";
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);

  // Everything systemd was told so far, waiting up to 20 s for `expected` to appear.
  std::string received;
  auto wait_for = [&](const std::string& expected, int times = 1) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    auto count = [&] {
      int found = 0;
      for (size_t at = received.find(expected); at != std::string::npos;
           at = received.find(expected, at + 1)) {
        ++found;
      }
      return found;
    };
    while (count() < times && std::chrono::steady_clock::now() < deadline) {
      pollfd ready{fd, POLLIN, 0};
      if (poll(&ready, 1, 100) <= 0) continue;
      char buffer[4096];
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n > 0) received.append(buffer, static_cast<size_t>(n)).push_back('\n');
    }
    return count() >= times;
  };

  setenv("NOTIFY_SOCKET", socket_path.c_str(), 1);
  setenv("WATCHDOG_USEC", "200000", 1);
  DaemonProcess daemon;
  daemon.Start();
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");

  EXPECT_TRUE(wait_for("READY=1")) << received;
  EXPECT_TRUE(wait_for("WATCHDOG=1", 3)) << "the watchdog is pinged every 100 ms: " << received;
  ASSERT_EQ(kill(daemon.pid(), SIGHUP), 0);
  EXPECT_TRUE(wait_for("RELOADING=1")) << received;
  EXPECT_TRUE(wait_for("READY=1", 2)) << "READY again after the reload: " << received;
  EXPECT_EQ(daemon.Stop(), 0);
  EXPECT_TRUE(wait_for("STOPPING=1")) << received;
  close(fd);
}

TEST(SystemdUnitTest, SystemdAnalyzeVerifyAcceptsIt) {
  ASSERT_EQ(RunCommand("command -v systemd-analyze").exit_code, 0)
      << "systemd-analyze missing: install Debian's systemd package (scripts/lib/deps.sh lists it)";
  // The unit names /usr/bin/gridd, which systemd-analyze requires to exist: check a copy that
  // names the built binary instead, under the unit's own file name. Its man page is checked by
  // the package test, where it is installed.
  std::string unit = ReadText(SourceDir() / "config" / "gridd.service");
  const std::string installed = "/usr/bin/gridd";
  ASSERT_NE(unit.find("ExecStart=" + installed + " "), std::string::npos) << unit;
  for (size_t at = unit.find(installed); at != std::string::npos;
       at = unit.find(installed, at + 1)) {
    unit.replace(at, installed.size(), (BinaryDir() / "gridd").string());
  }
  const fs::path copy = ScratchDir("gridd-unit") / "gridd.service";
  std::ofstream(copy) << unit;
  const CommandResult verify =
      RunCommand("systemd-analyze verify --man=no " + ShellQuote(copy.string()));
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  // Warnings about the unit itself (unknown keys, bad values) fail too; systemd's complaints
  // about other units on the machine do not concern gridd.
  std::istringstream lines(verify.output);
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_EQ(line.find("gridd.service"), std::string::npos) << verify.output;
  }
}

}  // namespace
}  // namespace gridd::testing
