// Tenant isolation through the real daemon: account B's Super User key aimed at account A's
// objects (servers, addresses, a private saved image, a load balancer, jobs, passwords) by
// every method of spec §8 fails exactly as it does for an object that does not exist — same
// status, error class and message — so B learns nothing, not even that A's object exists; and
// A's whole observable state is the same afterwards. B's lists and billing show none of A.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "integration/api_world.h"

namespace gridd::testing {
namespace {

// A call of B's aimed at one of A's objects, and the same call aimed at nothing. `target` and
// `absent` are the values that differ between the two; the error messages are compared with
// each replaced by a placeholder, since "IP x is not one of this account's addresses" rightly
// names the address it was given.
struct CrossTenantCase {
  std::string label;
  std::string method;
  std::function<Params(ApiWorld&, const std::string& value)> params;
  std::function<std::string(ApiWorld&)> target;
  std::string absent;
};

std::string Replace(std::string text, const std::string& value, const std::string& with) {
  if (value.empty()) return text;
  for (size_t at = text.find(value); at != std::string::npos; at = text.find(value, at + with.size())) {
    text.replace(at, value.size(), with);
  }
  return text;
}

// The failure as B sees it: status, error class and message with `value` masked.
std::string FailureSeen(const ApiClient::Reply& reply, const std::string& value) {
  auto body = reply.json();
  return std::to_string(reply.status) + " " + body.value("status", "") + " " +
         body["list"][0].value("errorcode", "") + " " +
         Replace(body["list"][0].value("message", ""), value, "<value>");
}

class TenantIsolationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new ApiWorld();
    DaemonProcess& daemon = world_->daemon();
    auto created = RunGridctl(daemon.data_dir(), "account create tenant-b");
    ASSERT_EQ(created.exit_code, 0) << created.output;
    // B's own addresses, so that its load balancer calls get past the virtual IP and fail
    // only on the address of A's they name.
    auto pooled = RunGridctl(daemon.data_dir(),
                             "ippool add --datacenter US-West-1 --type public --account tenant-b "
                             "127.79.0.0/28");
    ASSERT_EQ(pooled.exit_code, 0) << pooled.output;
    auto key = RunGridctl(daemon.data_dir(),
                          "apikey create --account tenant-b --role 'Super User' --json");
    ASSERT_EQ(key.exit_code, 0) << key.output;
    auto parsed = nlohmann::json::parse(key.output);
    tenant_b_ = new ApiClient(daemon.host(), daemon.port());
    tenant_b_->SetCredentials(parsed["api_key"], parsed["shared_secret"]);
    tenant_b_->SetTimeout(std::chrono::seconds(20));
  }
  static void TearDownTestSuite() {
    delete tenant_b_;
    tenant_b_ = nullptr;
    delete world_;
    world_ = nullptr;
  }

  // One of B's own free addresses in 127.79.0.0/28.
  static std::string FreeIpOfB() {
    auto free = FreePublicIps(*tenant_b_);
    for (const auto& ip : free) {
      if (ip.rfind("127.79.0.", 0) == 0) return ip;
    }
    ADD_FAILURE() << "tenant-b has no free address";
    return "";
  }

  static ApiWorld* world_;
  static ApiClient* tenant_b_;
};
ApiWorld* TenantIsolationTest::world_ = nullptr;
ApiClient* TenantIsolationTest::tenant_b_ = nullptr;

std::string WebIp(ApiWorld& w) {
  return CallOk(w.super(), "grid/server/get", {{"id", std::to_string(w.web_id())}})["list"][0]["ip"]["ip"];
}
std::string WebIpId(ApiWorld& w) {
  auto id = CallOk(w.super(), "grid/server/get", {{"id", std::to_string(w.web_id())}})["list"][0]["ip"]["id"];
  return std::to_string(id.get<int64_t>());
}
std::string BalancerVip(ApiWorld& w) {
  return CallOk(w.super(), "grid/loadbalancer/get",
                {{"id", std::to_string(w.balancer_id())}})["list"][0]["virtualip"]["ip"]["ip"];
}

std::vector<CrossTenantCase> Cases() {
  const std::string kNoId = "987654";
  auto by_id = [](Params extra = {}) {
    return [extra](ApiWorld&, const std::string& value) {
      Params params = {{"id", value}};
      params.insert(params.end(), extra.begin(), extra.end());
      return params;
    };
  };
  auto web = [](ApiWorld& w) { return std::to_string(w.web_id()); };
  auto balancer = [](ApiWorld& w) { return std::to_string(w.balancer_id()); };
  auto server_add = [](const std::string& ip) {
    return Params{{"name", "b-server"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"},
                  {"ip", ip}};
  };
  return {
      {"server by id", "grid/server/get", by_id(), web, kNoId},
      {"server by name", "grid/server/get",
       [](ApiWorld&, const std::string& v) { return Params{{"name", v}}; },
       [](ApiWorld&) { return std::string("web-1"); }, "no-such-server"},
      {"server edit", "grid/server/edit", by_id({{"description", "b was here"}}), web, kNoId},
      {"server power", "grid/server/power", by_id({{"power", "stop"}}), web, kNoId},
      {"server delete", "grid/server/delete", by_id(), web, kNoId},
      {"server add on A's assigned IP", "grid/server/add",
       [server_add](ApiWorld&, const std::string& v) { return server_add(v); }, WebIp,
       "127.79.9.9"},
      {"server add on A's free IP", "grid/server/add",
       [server_add](ApiWorld&, const std::string& v) { return server_add(v); },
       [](ApiWorld& w) { return w.FreeVip(); }, "127.79.9.9"},
      {"ip by id", "grid/ip/get", by_id(), WebIpId, kNoId},
      {"ip by address", "grid/ip/get",
       [](ApiWorld&, const std::string& v) { return Params{{"ip", v}}; }, WebIp, "127.79.9.9"},
      {"private image get", "grid/image/get", by_id(),
       [](ApiWorld& w) { return w.SavedImage("Available"); }, kNoId},
      {"private image edit", "grid/image/edit", by_id({{"description", "b was here"}}),
       [](ApiWorld& w) { return w.SavedImage("Available"); }, kNoId},
      {"private image delete", "grid/image/delete", by_id(),
       [](ApiWorld& w) { return w.SavedImage("Available"); }, kNoId},
      {"private image restore", "grid/image/restore", by_id(),
       [](ApiWorld& w) { return w.SavedImage("Trash"); },
       kNoId},
      {"image save of A's server", "grid/image/save",
       [](ApiWorld&, const std::string& v) {
         return Params{{"server", v}, {"friendlyName", "b-copy"}};
       },
       web, kNoId},
      {"new server from A's private image", "grid/server/add",
       [](ApiWorld&, const std::string& v) {
         return Params{{"name", "b-from-image"}, {"image", v}, {"server.ram", "512MB"},
                       {"ip", "127.79.0.2"}};
       },
       [](ApiWorld& w) { return w.SavedImage("Available"); }, kNoId},
      {"load balancer get", "grid/loadbalancer/get", by_id(), balancer, kNoId},
      {"load balancer edit", "grid/loadbalancer/edit",
       by_id({{"realiplist.0.ip", "127.79.0.3"}, {"realiplist.0.port", "80"}}), balancer,
       kNoId},
      {"load balancer delete", "grid/loadbalancer/delete", by_id(), balancer, kNoId},
      {"load balancer on A's virtual IP", "grid/loadbalancer/add",
       [](ApiWorld&, const std::string& v) {
         return Params{{"name", "b-lb"},
                       {"virtualip.ip", v},
                       {"virtualip.port", "8443"},
                       {"realiplist.0.ip", "127.79.0.4"},
                       {"realiplist.0.port", "80"}};
       },
       BalancerVip, "127.79.9.9"},
      {"load balancer on A's free IP", "grid/loadbalancer/add",
       [](ApiWorld&, const std::string& v) {
         return Params{{"name", "b-lb"},
                       {"virtualip.ip", v},
                       {"virtualip.port", "8443"},
                       {"realiplist.0.ip", "127.79.0.4"},
                       {"realiplist.0.port", "80"}};
       },
       [](ApiWorld& w) { return w.FreeVip(); }, "127.79.9.9"},
      {"load balancer with A's server as real IP", "grid/loadbalancer/add",
       [](ApiWorld&, const std::string& v) {
         return Params{{"name", "b-lb"},
                       {"virtualip.ip", "127.79.0.5"},
                       {"virtualip.port", "8443"},
                       {"realiplist.0.ip", v},
                       {"realiplist.0.port", "80"}};
       },
       WebIp, "127.79.9.9"},
      {"load balancer edit to A's real IP", "grid/loadbalancer/edit", nullptr, WebIp,
       "127.79.9.9"},
      {"job get", "grid/job/get", by_id(), [](ApiWorld& w) { return w.LatestJobId(); },
       kNoId},
      {"password get", "support/password/get", by_id(),
       [](ApiWorld& w) { return w.PasswordId(); }, kNoId},
  };
}

TEST_F(TenantIsolationTest, EveryCallOnAnotherAccountsObjectFailsAsIfItDidNotExist) {
  ApiWorld& world = *world_;
  // B's own balancer, for the case that edits it to point at A's address.
  world.WaitForJobs();
  auto own = CallOk(*tenant_b_, "grid/loadbalancer/add",
                    {{"name", "b-own"},
                     {"virtualip.ip", "127.79.0.6"},
                     {"virtualip.port", "8443"},
                     {"realiplist.0.ip", "127.79.0.7"},
                     {"realiplist.0.port", "80"}});
  const std::string own_balancer = std::to_string(own["list"][0]["id"].get<int64_t>());

  for (auto& c : Cases()) {
    SCOPED_TRACE(c.label);
    if (!c.params) {
      c.params = [own_balancer](ApiWorld&, const std::string& v) {
        return Params{{"id", own_balancer}, {"realiplist.0.ip", v}, {"realiplist.0.port", "80"}};
      };
    }
    const std::string target = c.target(world);
    ASSERT_FALSE(target.empty());
    const std::string before = world.Snapshot();

    auto on_a = tenant_b_->Call(c.method, c.params(world, target), "POST");
    auto on_nothing = tenant_b_->Call(c.method, c.params(world, c.absent), "POST");

    EXPECT_NE(on_a.status, 200u) << on_a.body;
    EXPECT_EQ(on_a.json()["status"], "failure") << on_a.body;
    EXPECT_EQ(FailureSeen(on_a, target), FailureSeen(on_nothing, c.absent))
        << "A's object answers differently from a missing one:\n"
        << on_a.body << "\n"
        << on_nothing.body;
    EXPECT_EQ(SnapshotChange(before, world.Snapshot()), "") << "B's call changed account A";
  }
}

TEST_F(TenantIsolationTest, ListsAndBillingShowNothingOfTheOtherAccount) {
  ApiWorld& world = *world_;
  const std::string image = world.SavedImage("Available");
  const std::string a_ip = WebIp(world);
  const std::string before = world.Snapshot();

  EXPECT_TRUE(CallOk(*tenant_b_, "grid/server/list")["list"].empty());
  EXPECT_TRUE(CallOk(*tenant_b_, "grid/server/list", {{"name", "web-1"}})["list"].empty());
  EXPECT_TRUE(CallOk(*tenant_b_, "support/password/list")["list"].empty());
  EXPECT_TRUE(
      CallOk(*tenant_b_, "grid/job/list", {{"object", std::to_string(world.web_id())}})["list"].empty());
  EXPECT_TRUE(CallOk(*tenant_b_, "grid/job/list", {{"object", "web-1"}})["list"].empty());

  // Addresses: only B's own pool, none of A's (assigned or free).
  for (const nlohmann::json ips = CallOk(*tenant_b_, "grid/ip/list");
       const auto& ip : ips["list"]) {
    const std::string address = ip["ip"];
    EXPECT_NE(address, a_ip);
    EXPECT_NE(address.rfind("127.78.", 0), 0u) << address << " belongs to account A";
  }
  // Images: the shared catalogue, not A's private saved image.
  for (const nlohmann::json images = CallOk(*tenant_b_, "grid/image/list");
       const auto& listed : images["list"]) {
    EXPECT_NE(std::to_string(listed["id"].get<int64_t>()), image) << listed.dump();
  }
  // Balancers: only B's own.
  for (const nlohmann::json balancers = CallOk(*tenant_b_, "grid/loadbalancer/list");
       const auto& listed : balancers["list"]) {
    EXPECT_NE(listed["id"].get<int64_t>(), world.balancer_id()) << listed.dump();
  }
  // Billing: A runs servers, B none; B's summary must not count A's memory.
  auto billing_a = CallOk(world.super(), "myaccount/billing/get")["list"][0];
  auto billing_b = CallOk(*tenant_b_, "myaccount/billing/get")["list"][0];
  EXPECT_GT(billing_a["memoryInUse"].get<double>(), 0.0) << billing_a.dump();
  EXPECT_EQ(billing_b["memoryInUse"].get<double>(), 0.0) << billing_b.dump();

  EXPECT_EQ(SnapshotChange(before, world.Snapshot()), "");
}

}  // namespace
}  // namespace gridd::testing
