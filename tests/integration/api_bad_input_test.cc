// Every parameter of every routed method has a value gridd refuses: 400
// IllegalArgumentException, a message that names the parameter, and nothing changed
// afterwards (servers, load balancers, images, jobs, passwords and assigned addresses are as
// before).
#include <gtest/gtest.h>

#include "integration/api_world.h"

namespace gridd::testing {
namespace {

struct Rejected {
  std::string method;
  std::string parameter;  // the message must name it
  Params params;          // a call that is right but for this parameter
};

class ApiBadInputTest : public ApiWorldTest<ApiBadInputTest> {};

// `base` with `extra` added (replacing parameters of the same name).
Params With(Params base, const Params& extra) {
  for (const auto& added : extra) {
    std::erase_if(base, [&](const auto& pair) { return pair.first == added.first; });
  }
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

TEST_F(ApiBadInputTest, EveryParameterOfEveryMethodRefusesABadValue) {
  ApiWorld& world = *world_;
  const std::string web = std::to_string(world.web_id());
  const std::string lb = std::to_string(world.balancer_id());
  const std::string free_ip = world.FreeServerIp();
  const std::string vip = world.FreeVip();
  const std::string image = world.SavedImage("Available");
  const std::string private_ip =
      CallOk(world.super(), "grid/ip/list", {{"ip.type", "Private"}})["list"][0]["ip"];
  const Params server_add = {
      {"name", "fresh"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", free_ip}};
  const Params lb_add = {{"name", "lb-fresh"},
                         {"virtualip.ip", vip},
                         {"virtualip.port", "8080"},
                         {"realiplist.0.ip", "127.78.1.4"},
                         {"realiplist.0.port", "80"}};
  const Params lb_edit = {
      {"id", lb}, {"realiplist.0.ip", "127.78.1.5"}, {"realiplist.0.port", "80"}};
  const std::string long_name(21, 'n');
  const std::string long_text(501, 'd');

  std::vector<Rejected> cases;
  // Paging parameters of every list method.
  for (const auto& [method, base] : std::vector<std::pair<std::string, Params>>{
           {"grid/server/list", {}},
           {"grid/ip/list", {}},
           {"grid/image/list", {}},
           {"grid/loadbalancer/list", {}},
           {"grid/job/list", {}},
           {"support/password/list", {}},
           {"common/lookup/list", {{"lookup", "server.ram"}}}}) {
    cases.push_back({method, "num_items", With(base, {{"num_items", "0"}})});
    cases.push_back({method, "num_items", With(base, {{"num_items", "ten"}})});
    cases.push_back({method, "page", With(base, {{"num_items", "2"}, {"page", "-1"}})});
    cases.push_back({method, "page", With(base, {{"num_items", "2"}, {"page", "1x"}})});
    if (method != "common/lookup/list") {
      cases.push_back({method, "datacenter", With(base, {{"datacenter", "Mars-1"}})});
      cases.push_back(
          {method, "datacenter", With(base, {{"datacenter", "1"}, {"datacenter", "99"}})});
    }
  }
  // Every method: the common parameters.
  for (const auto& method : EveryMethod()) {
    cases.push_back({method.method, "v", {{"v", "2.0"}}});
    cases.push_back({method.method, "v", {{"v", ""}}});
    cases.push_back({method.method, "format", {{"format", "yaml"}}});
  }
  const std::vector<Rejected> specific = {
      {"grid/server/list", "server.type", {{"server.type", "Mail Server"}}},
      {"grid/server/list", "isSandbox", {{"isSandbox", "maybe"}}},
      {"grid/server/get", "id", {{"id", "abc"}}},
      {"grid/server/get", "id", {{"id", "-3"}}},
      {"grid/server/get", "name", {{"name", ""}}},
      {"grid/server/get", "server", {{"server", ""}}},
      {"grid/server/get", "name", {{"id", web}, {"name", "web-1"}}},
      {"grid/server/add", "name", With(server_add, {{"name", long_name}})},
      {"grid/server/add", "name", With(server_add, {{"name", ""}})},
      {"grid/server/add", "image", With(server_add, {{"image", "no-such-image"}})},
      {"grid/server/add", "server.ram", With(server_add, {{"server.ram", "3GB"}})},
      {"grid/server/add",
       "ram",
       {{"name", "fresh"}, {"image", "debian-12-amd64"}, {"ram", "huge"}, {"ip", free_ip}}},
      {"grid/server/add", "ip", With(server_add, {{"ip", "203.0.113.9"}})},
      {"grid/server/add", "ip", With(server_add, {{"ip", "not-an-ip"}})},
      {"grid/server/add", "ip", With(server_add, {{"ip", "192.0.2.2"}})},
      {"grid/server/add", "ip", With(server_add, {{"ip", private_ip}})},
      {"grid/server/add", "description", With(server_add, {{"description", long_text}})},
      {"grid/server/add", "server.type", With(server_add, {{"server.type", "Mail Server"}})},
      {"grid/server/add", "isSandbox", With(server_add, {{"isSandbox", "yes"}})},
      {"grid/server/edit", "id", {{"id", "abc"}, {"description", "x"}}},
      {"grid/server/edit", "name", {{"name", ""}, {"description", "x"}}},
      {"grid/server/edit", "server", {{"server", ""}, {"description", "x"}}},
      {"grid/server/edit", "server.ram", {{"id", web}, {"server.ram", "huge"}}},
      {"grid/server/edit", "description", {{"id", web}, {"description", long_text}}},
      {"grid/server/edit", "server.type", {{"id", web}, {"server.type", "Mail Server"}}},
      {"grid/server/power", "power", {{"id", web}, {"power", "explode"}}},
      {"grid/server/power", "power", {{"id", web}}},
      {"grid/server/power", "id", {{"id", "abc"}, {"power", "stop"}}},
      {"grid/server/power", "name", {{"name", ""}, {"power", "stop"}}},
      {"grid/server/power", "server", {{"server", ""}, {"power", "stop"}}},
      {"grid/server/delete", "id", {{"id", "abc"}}},
      {"grid/server/delete", "name", {{"name", ""}}},
      {"grid/server/delete", "server", {{"server", ""}}},
      {"grid/ip/list", "ip.state", {{"ip.state", "Maybe"}}},
      {"grid/ip/list", "ip.type", {{"ip.type", "Elastic"}}},
      {"grid/ip/get", "id", {{"id", "abc"}}},
      {"grid/ip/get", "ip", {{"ip", "999.1.1.1"}}},
      {"grid/image/list", "isPublic", {{"isPublic", "yes"}}},
      {"grid/image/list", "type", {{"type", "Mail Server"}}},
      {"grid/image/list", "image.type", {{"image.type", "Mail Server"}}},
      {"grid/image/list", "state", {{"state", "Melting"}}},
      {"grid/image/list", "image.state", {{"image.state", "Melting"}}},
      {"grid/image/get", "id", {{"id", "abc"}}},
      {"grid/image/get", "name", {{"name", ""}}},
      {"grid/image/get", "image", {{"image", ""}}},
      {"grid/image/save",
       "friendlyName",
       {{"server", web}, {"friendlyName", std::string(101, 'f')}}},
      // The alias is reported under the name the spec gives the parameter.
      {"grid/image/save", "friendlyName", {{"server", web}, {"name", std::string(101, 'f')}}},
      {"grid/image/save", "server", {{"server", ""}, {"friendlyName", "img"}}},
      {"grid/image/save",
       "description",
       {{"server", web}, {"friendlyName", "img"}, {"description", long_text}}},
      {"grid/image/edit", "id", {{"id", "abc"}, {"description", "x"}}},
      {"grid/image/edit", "name", {{"name", ""}, {"description", "x"}}},
      {"grid/image/edit", "image", {{"image", ""}, {"description", "x"}}},
      {"grid/image/edit", "friendlyName", {{"id", image}, {"friendlyName", ""}}},
      {"grid/image/edit", "description", {{"id", image}, {"description", long_text}}},
      {"grid/image/edit", "isPublic", {{"id", image}, {"isPublic", "sometimes"}}},
      {"grid/image/delete", "id", {{"id", "0"}}},
      {"grid/image/delete", "name", {{"name", ""}}},
      {"grid/image/delete", "image", {{"image", ""}}},
      {"grid/image/restore", "id", {{"id", "x1"}}},
      {"grid/image/restore", "name", {{"name", ""}}},
      {"grid/image/restore", "image", {{"image", ""}}},
      {"grid/loadbalancer/get", "id", {{"id", "abc"}}},
      {"grid/loadbalancer/get", "name", {{"name", ""}}},
      {"grid/loadbalancer/get", "loadbalancer", {{"loadbalancer", ""}}},
      {"grid/loadbalancer/add", "name", With(lb_add, {{"name", long_name}})},
      {"grid/loadbalancer/add", "name", With(lb_add, {{"name", "lb-1"}})},
      {"grid/loadbalancer/add", "description", With(lb_add, {{"description", long_text}})},
      {"grid/loadbalancer/add", "virtualip.ip", With(lb_add, {{"virtualip.ip", "203.0.113.9"}})},
      {"grid/loadbalancer/add", "virtualip.port", With(lb_add, {{"virtualip.port", "0"}})},
      {"grid/loadbalancer/add", "virtualip.port", With(lb_add, {{"virtualip.port", "65536"}})},
      {"grid/loadbalancer/add", "realiplist.0.ip", With(lb_add, {{"realiplist.0.ip", "nowhere"}})},
      {"grid/loadbalancer/add", "realiplist.0.port", With(lb_add, {{"realiplist.0.port", "http"}})},
      {"grid/loadbalancer/add", "realiplist.1.port",
       With(lb_add, {{"realiplist.1.ip", "127.78.1.6"}})},
      {"grid/loadbalancer/add", "realiplist", With(lb_add, {{"realiplist.x.ip", "127.78.1.6"}})},
      {"grid/loadbalancer/add", "loadbalancer.type",
       With(lb_add, {{"loadbalancer.type", "Random"}})},
      {"grid/loadbalancer/add", "type", With(lb_add, {{"type", "Random"}})},
      {"grid/loadbalancer/add", "loadbalancer.persistence",
       With(lb_add, {{"loadbalancer.persistence", "Glue"}})},
      {"grid/loadbalancer/add", "persistence", With(lb_add, {{"persistence", "Glue"}})},
      {"grid/loadbalancer/edit", "id", With(lb_edit, {{"id", "abc"}})},
      {"grid/loadbalancer/edit",
       "name",
       {{"name", ""}, {"realiplist.0.ip", "127.78.1.5"}, {"realiplist.0.port", "80"}}},
      {"grid/loadbalancer/edit",
       "loadbalancer",
       {{"loadbalancer", ""}, {"realiplist.0.ip", "127.78.1.5"}, {"realiplist.0.port", "80"}}},
      {"grid/loadbalancer/edit", "realiplist.0.ip",
       With(lb_edit, {{"realiplist.0.ip", "nowhere"}})},
      {"grid/loadbalancer/edit", "realiplist.0.port", With(lb_edit, {{"realiplist.0.port", "-1"}})},
      {"grid/loadbalancer/edit", "description", With(lb_edit, {{"description", long_text}})},
      {"grid/loadbalancer/edit", "loadbalancer.type",
       With(lb_edit, {{"loadbalancer.type", "Random"}})},
      {"grid/loadbalancer/edit", "loadbalancer.persistence",
       With(lb_edit, {{"loadbalancer.persistence", "Glue"}})},
      {"grid/loadbalancer/delete", "id", {{"id", "abc"}}},
      {"grid/loadbalancer/delete", "name", {{"name", ""}}},
      {"grid/loadbalancer/delete", "loadbalancer", {{"loadbalancer", ""}}},
      {"grid/job/list", "startdate", {{"startdate", "yesterday"}}},
      {"grid/job/list", "startdate", {{"startdate", "2026-02-30"}}},
      {"grid/job/list", "enddate", {{"enddate", "13/01/2026"}}},
      {"grid/job/list", "enddate", {{"enddate", "2026-01-01 25:00:00"}}},
      {"grid/job/list", "job.objecttype", {{"job.objecttype", "Toaster"}}},
      {"grid/job/list", "job.command", {{"job.command", "Explode"}}},
      {"grid/job/list", "job.state", {{"job.state", "Done"}}},
      {"grid/job/list", "job.state", {{"job.state", "3"}, {"job.state", "99"}}},
      {"grid/job/get", "id", {{"id", "abc"}}},
      {"grid/job/get", "job", {{"job", "abc"}}},
      {"support/password/get", "id", {{"id", "abc"}}},
      {"support/password/get", "password", {{"password", "abc"}}},
      {"common/lookup/list", "lookup", {{"lookup", "server.colour"}}},
      {"common/lookup/list", "lookup", {}},
      {"common/lookup/list", "sort", {{"lookup", "server.ram"}, {"sort", "size"}}},
      {"common/lookup/list", "asc", {{"lookup", "server.ram"}, {"sort", "id"}, {"asc", "up"}}},
  };
  cases.insert(cases.end(), specific.begin(), specific.end());

  const std::string before = world.Snapshot();
  for (const auto& bad : cases) {
    std::string shown;
    for (const auto& [key, value] : bad.params) shown += " " + key + "=" + value.substr(0, 30);
    SCOPED_TRACE(bad.method + shown);
    auto reply = world.super().Call(bad.method, bad.params, "POST");
    EXPECT_EQ(reply.status, 400u) << reply.body;
    const auto body = reply.json();
    EXPECT_EQ(body["status"], "failure");
    ASSERT_EQ(body["list"].size(), 1u) << reply.body;
    EXPECT_EQ(body["list"][0]["errorcode"], "IllegalArgumentException");
    const std::string message = body["list"][0]["message"];
    EXPECT_NE(message.find(bad.parameter), std::string::npos)
        << "the message does not name " << bad.parameter << ": " << message;
  }
  EXPECT_EQ(SnapshotChange(before, world.Snapshot()), "") << "a refused call changed the account";
}

TEST_F(ApiBadInputTest, MissingRequiredParametersAreNamed) {
  ApiWorld& world = *world_;
  const std::string free_ip = world.FreeServerIp();
  const Params server_add = {
      {"name", "fresh"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", free_ip}};
  const Params lb_add = {{"name", "lb-fresh"},
                         {"virtualip.ip", world.FreeVip()},
                         {"virtualip.port", "8080"},
                         {"realiplist.0.ip", "127.78.1.4"},
                         {"realiplist.0.port", "80"}};
  struct Missing {
    std::string method;
    Params complete;
  };
  const std::vector<Missing> methods = {
      {"grid/server/add", server_add},
      {"grid/server/power", {{"id", std::to_string(world.web_id())}, {"power", "stop"}}},
      {"grid/loadbalancer/add", lb_add},
      {"common/lookup/list", {{"lookup", "server.ram"}}},
      {"grid/image/save", {{"server", std::to_string(world.web_id())}, {"friendlyName", "img"}}},
  };
  const std::string before = world.Snapshot();
  for (const auto& method : methods) {
    for (const auto& [dropped, value] : method.complete) {
      SCOPED_TRACE(method.method + " without " + dropped);
      Params params;
      for (const auto& pair : method.complete) {
        if (pair.first != dropped) params.push_back(pair);
      }
      auto reply = world.super().Call(method.method, params, "POST");
      EXPECT_EQ(reply.status, 400u) << reply.body;
      const std::string message = reply.json()["list"][0]["message"];
      // A lone realiplist half is reported as the half that is missing.
      const std::string named = dropped.starts_with("realiplist.0.") ? "realiplist" : dropped;
      EXPECT_NE(message.find(named), std::string::npos) << message;
    }
  }
  // Selector methods without any selector name the selectors.
  for (const std::string method :
       {"grid/server/get", "grid/server/delete", "grid/server/edit", "grid/image/get",
        "grid/loadbalancer/get", "grid/loadbalancer/delete", "grid/loadbalancer/edit",
        "grid/job/get", "support/password/get", "grid/ip/get", "grid/image/edit",
        "grid/image/delete", "grid/image/restore"}) {
    SCOPED_TRACE(method);
    auto reply = world.super().Call(method, {{"description", "x"}}, "POST");
    EXPECT_EQ(reply.status, 400u) << reply.body;
    const std::string message = reply.json()["list"][0]["message"];
    EXPECT_NE(message.find("id"), std::string::npos) << message;
  }
  EXPECT_EQ(SnapshotChange(before, world.Snapshot()), "") << "a refused call changed the account";
}

}  // namespace
}  // namespace gridd::testing
