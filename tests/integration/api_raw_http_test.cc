// What clients other than libcloud did, as raw HTTP against the live daemon: selecting by
// name and by the object-named selector (server=, image=, loadbalancer=), powering a server
// by name, repeated id parameters, POST with a form body (alone or mixed with the query
// string) and a plain GET with a query string. (Every object in XML is read back with a real
// parser in api_formats_test.cc.)
#include <gtest/gtest.h>

#include <ctime>
#include <set>

#include "integration/api_world.h"

namespace gridd::testing {
namespace {

using nlohmann::json;

class ApiRawHttpTest : public ApiWorldTest<ApiRawHttpTest> {
 protected:
  // api_key, sig and v as a client builds them, URL-encoded.
  static std::string Auth() {
    ApiClient& client = world_->super();
    const std::string sig =
        Md5Hex(client.api_key() + client.shared_secret() + std::to_string(std::time(nullptr)));
    return "api_key=" + client.api_key() + "&sig=" + sig + "&v=1.9";
  }

  static std::set<std::string> Names(const json& body) {
    std::set<std::string> out;
    for (const auto& item : body["list"]) out.insert(item.value("name", ""));
    return out;
  }
};

TEST_F(ApiRawHttpTest, SelectingByNameAndByTheObjectNamedSelector) {
  ApiClient& client = world_->super();
  const std::string web = std::to_string(world_->web_id());
  const std::string lb = std::to_string(world_->balancer_id());
  struct Selection {
    std::string method;
    Params params;
    std::string name;
  };
  const std::vector<Selection> selections = {
      {"grid/server/get", {{"name", "web-1"}}, "web-1"},
      {"grid/server/get", {{"server", "web-1"}}, "web-1"},
      {"grid/server/get", {{"server", web}}, "web-1"},
      {"grid/server/get", {{"name", kHostileName}}, kHostileName},
      {"grid/image/get", {{"name", "debian-12-amd64"}}, "debian-12-amd64"},
      {"grid/image/get", {{"image", "debian-12-amd64"}}, "debian-12-amd64"},
      {"grid/image/get", {{"image", "1"}}, "debian-12-amd64"},
      {"grid/loadbalancer/get", {{"name", "lb-1"}}, "lb-1"},
      {"grid/loadbalancer/get", {{"loadbalancer", "lb-1"}}, "lb-1"},
      {"grid/loadbalancer/get", {{"loadbalancer", lb}}, "lb-1"},
  };
  for (const auto& selection : selections) {
    SCOPED_TRACE(selection.method + " " + selection.params[0].first + "=" +
                 selection.params[0].second);
    const auto body = CallOk(client, selection.method, selection.params);
    EXPECT_EQ(Names(body), std::set<std::string>{selection.name});
    EXPECT_EQ(body["summary"]["total"], 1);
  }
  // A name is matched exactly: no prefix, no other case.
  for (const std::string name : {"web", "WEB-1", "web-1 "}) {
    auto reply = client.Call("grid/server/get", {{"name", name}});
    EXPECT_EQ(reply.status, 400u) << name;
    EXPECT_NE(reply.body.find("No object found"), std::string::npos) << reply.body;
  }
}

TEST_F(ApiRawHttpTest, PowerByNameAndByServerSelector) {
  ApiClient& client = world_->super();
  const std::string ip =
      CallOk(client, "grid/server/get", {{"name", "web-1"}})["list"][0]["ip"]["ip"];
  world_->WaitForJobs();
  auto stopped = CallOk(client, "grid/server/power", {{"name", "web-1"}, {"power", "off"}}, "POST");
  EXPECT_EQ(stopped["list"][0]["name"], "web-1");
  WaitForServerState(client, ip, "Off");
  world_->WaitForJobs();
  CallOk(client, "grid/server/power", {{"server", "web-1"}, {"power", "on"}}, "POST");
  WaitForServerState(client, ip, "On");
  world_->WaitForJobs();
  // The other servers were not touched.
  const auto hostile =
      CallOk(client, "grid/server/get", {{"id", std::to_string(world_->hostile_id())}});
  EXPECT_EQ(hostile["list"][0]["state"]["name"], "On");
  const auto jobs =
      CallOk(client, "grid/job/list", {{"object", "web-1"}, {"num_items", "2"}})["list"];
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0]["command"]["name"], "StartVirtualServer");
  EXPECT_EQ(jobs[1]["command"]["name"], "StopVirtualServer");
}

TEST_F(ApiRawHttpTest, RepeatedIdParametersSelectEveryMatch) {
  const std::string web = std::to_string(world_->web_id());
  const std::string hostile = std::to_string(world_->hostile_id());
  const auto servers = CallOk(world_->super(), "grid/server/get", {{"id", web}, {"id", hostile}});
  EXPECT_EQ(Names(servers), (std::set<std::string>{"web-1", kHostileName}));
  EXPECT_EQ(servers["summary"]["total"], 2);
  EXPECT_EQ(servers["summary"]["returned"], 2);
  // Through the raw query string, exactly as a hand-written client sends it.
  auto raw = world_->super().Raw(
      "GET", "/api/grid/server/get?" + Auth() + "&id=" + web + "&id=" + hostile + "&id=999999");
  ASSERT_EQ(raw.status, 200u) << raw.body;
  EXPECT_EQ(Names(raw.json()), (std::set<std::string>{"web-1", kHostileName}))
      << "the ids that match are returned, unknown ones left out";
  EXPECT_EQ(Names(CallOk(world_->super(), "grid/server/get",
                         {{"name", "web-1"}, {"name", kHostileName}})),
            (std::set<std::string>{"web-1", kHostileName}));

  const auto ips = CallOk(world_->super(), "grid/ip/get", {{"id", "1"}, {"id", "2"}})["list"];
  EXPECT_EQ(ips.size(), 2u);
  const auto jobs = CallOk(world_->super(), "grid/job/list", {{"num_items", "2"}})["list"];
  ASSERT_EQ(jobs.size(), 2u);
  const auto got = CallOk(world_->super(), "grid/job/get",
                          {{"id", std::to_string(jobs[0]["id"].get<int64_t>())},
                           {"job", std::to_string(jobs[1]["id"].get<int64_t>())}})["list"];
  EXPECT_EQ(got.size(), 2u);
  const auto passwords = CallOk(world_->super(), "support/password/list")["list"];
  ASSERT_GE(passwords.size(), 2u);
  const auto two = CallOk(world_->super(), "support/password/get",
                          {{"id", std::to_string(passwords[0]["id"].get<int64_t>())},
                           {"id", std::to_string(passwords[1]["id"].get<int64_t>())}})["list"];
  EXPECT_EQ(two.size(), 2u);
  const auto images = CallOk(world_->super(), "grid/image/list")["list"];
  ASSERT_GE(images.size(), 2u);
  const auto both = CallOk(
      world_->super(), "grid/image/get",
      {{"image", images[0]["name"]}, {"image", std::to_string(images[1]["id"].get<int64_t>())}});
  EXPECT_EQ(both["list"].size(), 2u);
  const auto balancers = CallOk(world_->super(), "grid/loadbalancer/get",
                                {{"id", std::to_string(world_->balancer_id())}, {"id", "424242"}});
  EXPECT_EQ(Names(balancers), std::set<std::string>{"lb-1"});
  // Kinds of selector still may not be mixed.
  auto mixed = world_->super().Call("grid/image/get", {{"id", "1"}, {"image", "1"}});
  EXPECT_EQ(mixed.status, 400u);
  EXPECT_NE(mixed.body.find("cannot be mixed"), std::string::npos) << mixed.body;
}

TEST_F(ApiRawHttpTest, PostWithAFormBodyAndGetWithAQueryString) {
  ApiClient& client = world_->super();
  const std::string ip = world_->FreeServerIp();
  const std::string form = Auth() + "&name=" + UrlEncode("form made") +
                           "&image=debian-12-amd64&server.ram=512MB&ip=" + ip +
                           "&description=" + UrlEncode("from a form, with & and =");
  auto added =
      client.Raw("POST", "/api/grid/server/add", form, "application/x-www-form-urlencoded");
  ASSERT_EQ(added.status, 200u) << added.body;
  EXPECT_EQ(added.json()["list"][0]["name"], "form made");
  WaitForServerState(client, ip, "On");

  // Parameters split between the query string and the body are merged.
  auto mixed = client.Raw("POST", "/api/grid/server/get?" + Auth(),
                          "name=" + UrlEncode("form made"), "application/x-www-form-urlencoded");
  ASSERT_EQ(mixed.status, 200u) << mixed.body;
  EXPECT_EQ(mixed.json()["list"][0]["description"], "from a form, with & and =");

  // libcloud's way: POST, everything in the query string, empty body, no Content-Type.
  auto empty_body = client.Raw("POST", "/api/grid/server/get?" + Auth() + "&name=form%20made");
  ASSERT_EQ(empty_body.status, 200u) << empty_body.body;
  EXPECT_EQ(empty_body.json()["list"][0]["name"], "form made");

  // A plain GET with a query string; '+' is a space as in any form encoding.
  auto get = client.Raw("GET", "/api/grid/server/get?" + Auth() + "&name=form+made&format=xml");
  ASSERT_EQ(get.status, 200u) << get.body;
  EXPECT_EQ(get.content_type, "text/xml; charset=UTF-8");
  std::string problem;
  const auto xml = ParseWithPython("xml", get.body, problem);
  ASSERT_EQ(problem, "");
  EXPECT_EQ(xml["list"][0]["name"], "form made");
  EXPECT_EQ(xml["list"][0]["ip"]["ip"], ip);
}

}  // namespace
}  // namespace gridd::testing
