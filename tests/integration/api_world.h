// One live gridd per test suite, with an account that has something of every kind the API
// shows (servers, one with hostile text in its name and description, a load balancer, jobs,
// passwords), a key of each role, and a catalogue of every routed method with parameters
// that make it succeed. The role, format, shape, paging and bad-input tests share it.
//
// Load balancers: the account gets 127.78.0.0/28 (virtual IPs) and 127.78.1.0/28 (real IPs),
// apart from the addresses the load-balancer tests use, and the virtual port is picked free
// per process, so suites running in parallel do not collide.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {

// The spec's roles (§2.1) in gridctl's spelling.
inline const std::vector<std::string>& RoleNames() {
  static const std::vector<std::string> roles = {"Super User", "System User", "Billing User",
                                                 "Read Only User"};
  return roles;
}

// A port nobody listens on at `ip` right now: the kernel picks it.
inline uint16_t FreePortOn(const std::string& ip) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  inet_pton(AF_INET, ip.c_str(), &address.sin_addr);
  uint16_t port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

// A stored name and description no output format may break: markup, quotes, a comma, a
// newline and non-ASCII text.
inline const std::string kHostileName = "h<&>\"', \xC3\xA9";
inline const std::string kHostileDescription = "a <b>&amp; \"q\" 'x', y\nline two \xE2\x82\xAC";

class ApiWorld {
 public:
  ApiWorld() {
    daemon_.Start();
    super_ = std::make_unique<ApiClient>(daemon_.Client());
    super_->SetTimeout(std::chrono::seconds(20));
    for (const char* pool : {"127.78.0.0/28", "127.78.1.0/28"}) {
      auto added = RunGridctl(daemon_.data_dir(),
                              std::string("ippool add --datacenter US-West-1 --type public "
                                          "--account default ") +
                                  pool);
      EXPECT_EQ(added.exit_code, 0) << added.output;
    }
    for (const auto& role : RoleNames()) {
      auto created = RunGridctl(daemon_.data_dir(), "apikey create --account default --role " +
                                                        ShellQuote(role) + " --json");
      EXPECT_EQ(created.exit_code, 0) << created.output;
      auto key = nlohmann::json::parse(created.output);
      auto client = std::make_unique<ApiClient>(daemon_.host(), daemon_.port());
      client->SetCredentials(key["api_key"], key["shared_secret"]);
      clients_[role] = std::move(client);
    }
    vip_port_ = FreePortOn("127.78.0.2");
    web_id_ = AddServer("web-1", "the first server");
    hostile_id_ = AddServer(kHostileName, kHostileDescription);
    balancer_id_ = AddBalancer("lb-1");
  }

  ApiWorld(const ApiWorld&) = delete;
  ApiWorld& operator=(const ApiWorld&) = delete;

  DaemonProcess& daemon() { return daemon_; }
  ApiClient& super() { return *super_; }
  ApiClient& As(const std::string& role) { return *clients_.at(role); }

  int64_t web_id() const { return web_id_; }
  int64_t hostile_id() const { return hostile_id_; }
  int64_t balancer_id() const { return balancer_id_; }

  // `prefix` with a number no earlier call returned, for objects whose names must be unique.
  std::string Unique(const std::string& prefix) { return prefix + std::to_string(++sequence_); }

  // A free public address of the account outside the load-balancer pools.
  std::string FreeServerIp() {
    for (const auto& ip : FreePublicIps(*super_)) {
      if (ip.rfind("127.", 0) != 0) return ip;
    }
    ADD_FAILURE() << "no free public address left";
    return "";
  }

  // A free virtual IP in 127.78.0.0/28.
  std::string FreeVip() {
    for (const auto& ip : FreePublicIps(*super_)) {
      if (ip.rfind("127.78.0.", 0) == 0) return ip;
    }
    ADD_FAILURE() << "no free virtual IP left";
    return "";
  }

  // Adds a server, waits until it is On; returns its id.
  int64_t AddServer(const std::string& name, const std::string& description = "") {
    const std::string ip = FreeServerIp();
    CallOk(*super_, "grid/server/add",
           {{"name", name},
            {"image", "debian-12-amd64"},
            {"server.ram", "512MB"},
            {"ip", ip},
            {"description", description}},
           "POST");
    auto server = WaitForServerState(*super_, ip, "On");
    return server.value("id", int64_t{0});
  }

  // Adds a load balancer with one real IP; returns its id.
  int64_t AddBalancer(const std::string& name) {
    auto body = CallOk(*super_, "grid/loadbalancer/add", BalancerParams(name));
    return body["list"][0].value("id", int64_t{0});
  }

  Params BalancerParams(const std::string& name) {
    return {{"name", name},
            {"virtualip.ip", FreeVip()},
            {"virtualip.port", std::to_string(vip_port_)},
            {"realiplist.0.ip", "127.78.1.2"},
            {"realiplist.0.port", "8080"}};
  }

  // Waits until no job of the account is queued or processing, so that the next change is
  // not refused as pending and snapshots are stable.
  void WaitForJobs() {
    bool idle = WaitFor([&] {
      auto reply =
          super_->Call("grid/job/list", {{"job.state", "Queued"}, {"job.state", "Processing"}});
      return reply.status == 200 && reply.json()["list"].empty();
    });
    EXPECT_TRUE(idle) << "jobs still pending";
  }

  // The first password's id.
  std::string PasswordId() {
    auto body = CallOk(*super_, "support/password/list");
    return std::to_string(body["list"][0]["id"].get<int64_t>());
  }

  // The account's own saved image (web-1's disk, saved once: the test driver's storage pool
  // holds only a few copies), first put in `state` ("Available" or "Trash"); returns its id.
  std::string SavedImage(const std::string& state) {
    WaitForJobs();
    if (saved_image_.empty()) {
      auto body = CallOk(*super_, "grid/image/save",
                         {{"server", std::to_string(web_id_)}, {"friendlyName", "saved"}}, "POST");
      saved_image_ = std::to_string(body["list"][0]["id"].get<int64_t>());
      WaitForJobs();
    }
    auto image = CallOk(*super_, "grid/image/get", {{"id", saved_image_}})["list"][0];
    if (image["state"]["name"] != state) {
      CallOk(*super_, state == "Trash" ? "grid/image/delete" : "grid/image/restore",
             {{"id", saved_image_}}, "POST");
      WaitForJobs();
    }
    return saved_image_;
  }

  std::string LatestJobId() {
    auto body = CallOk(*super_, "grid/job/list", {{"num_items", "1"}});
    return std::to_string(body["list"][0]["id"].get<int64_t>());
  }

  // What a customer can observe of the account, once no job is pending: servers, load
  // balancers (less their health, which HAProxy's checks move on their own), images, jobs,
  // passwords and the assigned addresses. One line per list.
  std::string Snapshot() {
    WaitForJobs();
    std::string out;
    for (const char* method : {"grid/server/list", "grid/loadbalancer/list", "grid/image/list",
                               "grid/job/list", "support/password/list"}) {
      auto list = CallOk(*super_, method)["list"];
      for (auto& item : list) {
        if (item["object"] == "loadbalancer") item.erase("state");
      }
      out += list.dump() + "\n";
    }
    out += CallOk(*super_, "grid/ip/list", {{"ip.state", "Assigned"}})["list"].dump() + "\n";
    return out;
  }

 private:
  DaemonProcess daemon_;
  std::unique_ptr<ApiClient> super_;
  std::map<std::string, std::unique_ptr<ApiClient>> clients_;
  uint16_t vip_port_ = 0;
  int64_t web_id_ = 0;
  int64_t hostile_id_ = 0;
  int64_t balancer_id_ = 0;
  int sequence_ = 0;
  std::string saved_image_;
};

// Parses a response body in `mode` "xml" or "csv" with Python's own parsers
// (tests/support/parse_gogrid.py); on failure sets `problem` to the parser's complaint.
inline nlohmann::json ParseWithPython(const std::string& mode, const std::string& body,
                                      std::string& problem) {
  static const std::filesystem::path dir = ScratchDir("gridd-parse");
  static int counter = 0;
  const auto path = dir / ("body-" + std::to_string(++counter));
  {
    std::ofstream out(path, std::ios::binary);
    out << body;
  }
  const auto result = RunCommand(
      "/usr/bin/python3 " + ShellQuote((SourceDir() / "tests/support/parse_gogrid.py").string()) +
      " " + mode + " " + ShellQuote(path.string()));
  problem.clear();
  if (result.exit_code != 0) {
    problem =
        result.output.empty() ? "parser exited " + std::to_string(result.exit_code) : result.output;
    return nullptr;
  }
  return nlohmann::json::parse(result.output);
}

// Empty when `before` and `after` are equal, else where they first differ (short, for messages).
inline std::string SnapshotChange(const std::string& before, const std::string& after) {
  if (before == after) return "";
  size_t at = 0;
  while (at < before.size() && at < after.size() && before[at] == after[at]) ++at;
  const size_t from = at > 80 ? at - 80 : 0;
  return "before: ..." + before.substr(from, 200) + "\nafter:  ..." + after.substr(from, 200);
}

// A method of spec §8 and how to call it successfully. `params` runs right before each call,
// so a method that consumes something (delete, add) gets a fresh target every time.
struct MethodCase {
  std::string method;  // "grid/server/list"
  std::string object;  // the object type its list holds
  std::function<Params(ApiWorld&)> params;
  bool mutates = false;
};

// Every method gridd routes, in an order in which each call can succeed after the ones before.
inline std::vector<MethodCase> EveryMethod() {
  auto id = [](int64_t value) { return std::to_string(value); };
  return {
      {"grid/server/list", "server", [](ApiWorld&) { return Params{}; }},
      {"grid/server/get", "server",
       [id](ApiWorld& w) {
         return Params{{"id", id(w.web_id())}};
       }},
      {"grid/server/add", "server",
       [](ApiWorld& w) {
         return Params{{"name", w.Unique("added")},
                       {"image", "debian-12-amd64"},
                       {"server.ram", "512MB"},
                       {"ip", w.FreeServerIp()}};
       },
       true},
      {"grid/server/edit", "server",
       [id](ApiWorld& w) {
         w.WaitForJobs();
         return Params{{"id", id(w.web_id())}, {"description", "edited"}};
       },
       true},
      {"grid/server/power", "server",
       [id](ApiWorld& w) {
         w.WaitForJobs();
         return Params{{"id", id(w.web_id())}, {"power", "start"}};
       },
       true},
      {"grid/server/delete", "server",
       [id](ApiWorld& w) {
         return Params{{"id", id(w.AddServer(w.Unique("doomed")))}};
       },
       true},
      {"grid/ip/list", "ip", [](ApiWorld&) { return Params{}; }},
      {"grid/ip/get", "ip",
       [](ApiWorld&) {
         return Params{{"id", "1"}};
       }},
      {"grid/image/list", "serverimage", [](ApiWorld&) { return Params{}; }},
      {"grid/image/get", "serverimage",
       [](ApiWorld&) {
         return Params{{"image", "debian-12-amd64"}};
       }},
      {"grid/image/save", "serverimage",
       [id](ApiWorld& w) {
         w.WaitForJobs();
         return Params{{"server", id(w.web_id())}, {"friendlyName", w.Unique("saved")}};
       },
       true},
      {"grid/image/edit", "serverimage",
       [](ApiWorld& w) {
         return Params{{"id", w.SavedImage("Available")}, {"description", w.Unique("edited")}};
       },
       true},
      {"grid/image/delete", "serverimage",
       [](ApiWorld& w) {
         return Params{{"id", w.SavedImage("Available")}};
       },
       true},
      {"grid/image/restore", "serverimage",
       [](ApiWorld& w) {
         return Params{{"id", w.SavedImage("Trash")}};
       },
       true},
      {"myaccount/billing/get", "billingsummary", [](ApiWorld&) { return Params{}; }},
      {"grid/loadbalancer/list", "loadbalancer", [](ApiWorld&) { return Params{}; }},
      {"grid/loadbalancer/get", "loadbalancer",
       [id](ApiWorld& w) {
         return Params{{"id", id(w.balancer_id())}};
       }},
      {"grid/loadbalancer/add", "loadbalancer",
       [](ApiWorld& w) {
         w.WaitForJobs();
         return w.BalancerParams(w.Unique("lb-added"));
       },
       true},
      {"grid/loadbalancer/edit", "loadbalancer",
       [id](ApiWorld& w) {
         w.WaitForJobs();
         return Params{{"id", id(w.balancer_id())},
                       {"realiplist.0.ip", "127.78.1.3"},
                       {"realiplist.0.port", "8081"}};
       },
       true},
      {"grid/loadbalancer/delete", "loadbalancer",
       [id](ApiWorld& w) {
         w.WaitForJobs();
         const int64_t doomed = w.AddBalancer(w.Unique("lb-doomed"));
         w.WaitForJobs();
         return Params{{"id", id(doomed)}};
       },
       true},
      {"grid/job/list", "job", [](ApiWorld&) { return Params{}; }},
      {"grid/job/get", "job",
       [](ApiWorld& w) {
         return Params{{"id", w.LatestJobId()}};
       }},
      {"support/password/list", "password", [](ApiWorld&) { return Params{}; }},
      {"support/password/get", "password",
       [](ApiWorld& w) {
         return Params{{"id", w.PasswordId()}};
       }},
      {"common/lookup/list", "option",
       [](ApiWorld&) {
         return Params{{"lookup", "server.ram"}};
       }},
  };
}

// A test suite sharing one ApiWorld, started before its first test and stopped after its
// last. `Suite` is the test class itself, so every suite gets a world of its own:
//   class ApiShapesTest : public ApiWorldTest<ApiShapesTest> {};
template <typename Suite>
class ApiWorldTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { world_ = std::make_unique<ApiWorld>(); }
  static void TearDownTestSuite() { world_.reset(); }
  static inline std::unique_ptr<ApiWorld> world_;
};

}  // namespace gridd::testing
