// The GoGrid envelopes and objects (spec §3, §4, §9) against hand-written golden bodies in
// tests/golden/api/. Every golden is compared as parsed JSON; the small ones also byte for byte.
#include "gridd/api/render.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "gridd/domain/lookups.h"
#include "support/golden.h"
#include "unit/api/render_test_util.h"

namespace gridd::api {
namespace {

using nlohmann::json;

// The hand-written golden bodies end with a newline the renderer does not write.
std::string ReadGolden(const std::string& name) {
  std::string text = gridd::testing::ReadGolden("api/" + name);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// Parsed comparison: key order and whitespace do not matter to clients.
void ExpectMatchesGolden(const std::string& body, const std::string& golden) {
  json actual = json::parse(body);  // throws (fails the test) when not JSON
  json expected = json::parse(ReadGolden(golden));
  EXPECT_EQ(actual, expected) << "golden " << golden << "\nactual:\n" << actual.dump(2);
}

domain::Image DebianImage() {
  domain::Image image;
  image.id = 3;
  image.owner_name = "GoGrid";
  image.name = "debian-12-amd64";
  image.friendly_name = "Debian 12 (64-bit)";
  image.description = "Debian 12 bookworm, minimal";
  image.os_id = 5;
  image.architecture = 2;
  image.type = 1;
  image.state = domain::image_state::kAvailable;
  image.price = 0;
  image.location = "gridd/debian-12-amd64.qcow2";
  image.storage_pool = "gridd";
  image.volume = "debian-12-amd64.qcow2";
  image.created_ms = 1'700'000'000'000;
  image.updated_ms = 1'700'000'001'000;
  return image;
}

domain::Ip PublicIp(int64_t state) {
  domain::Ip ip;
  ip.id = 17;
  ip.pool_id = 1;
  ip.account_id = 7;
  ip.address = "192.0.2.18";
  ip.subnet = "192.0.2.0/255.255.255.0";
  ip.is_public = true;
  ip.state = state;
  ip.datacenter_id = 1;
  ip.network = "gridd-public-1";
  return ip;
}

domain::ServerView WebServer() {
  domain::ServerView view;
  view.server.id = 42;
  view.server.account_id = 7;
  view.server.name = "web01";
  view.server.description = "front end";
  view.server.image_id = 3;
  view.server.ram = 1;
  view.server.type = 1;
  view.server.state = domain::server_state::kStarting;
  view.server.ip_id = 17;
  view.server.mac = "52:54:00:00:00:2a";
  view.image = std::make_shared<const domain::Image>(DebianImage());
  view.ip = PublicIp(domain::ip_state::kAssigned);
  return view;
}

Result One(Json item) {
  Result result;
  result.list.push_back(std::move(item));
  result.summary = Summary{1, 0, 1, 0};
  return result;
}

TEST(RenderGoldenTest, SuccessListWithSummary) {
  const auto& ram = *domain::FixedLookup("server.ram");
  Result result;
  result.list = {OptionJson(ram[2]), OptionJson(ram[3])};
  result.summary = Summary{7, 2, 2, 4};
  ExpectMatchesGolden(RenderSuccessJson("/common/lookup/list", result), "success_list.json");
}

TEST(RenderGoldenTest, FailureIllegalArgumentIsExact) {
  const std::string body = RenderFailureJson("/grid/server/get", ErrorClass::kIllegalArgument,
                                             std::string(kNoObjectFound));
  EXPECT_EQ(body, ReadGolden("failure_illegal_argument.json"));
  ExpectMatchesGolden(body, "failure_illegal_argument.json");
}

TEST(RenderGoldenTest, FailureUnexpected) {
  ExpectMatchesGolden(
      RenderFailureJson("/grid/loadbalancer/add", ErrorClass::kUnexpected,
                        "An unexpected server error has occurred. Error Message : database is "
                        "locked"),
      "failure_unexpected.json");
}

TEST(RenderGoldenTest, FailureErrorCodesForAuthErrors) {
  // libcloud and jclouds only look at the HTTP status here, but dasein reads errorcode.
  json unauthorized =
      json::parse(RenderFailureJson("/grid/server/add", ErrorClass::kUnauthorized, "no rights"));
  EXPECT_EQ(unauthorized["list"][0]["errorcode"], "Unauthorized");
  EXPECT_EQ(unauthorized["list"][0]["message"], "no rights");
  EXPECT_EQ(unauthorized["status"], "failure");
  json denied = json::parse(
      RenderFailureJson("/grid/server/add", ErrorClass::kAuthenticationFailed, "bad sig"));
  EXPECT_EQ(denied["list"][0]["errorcode"], "AuthenticationFailed");
}

TEST(RenderGoldenTest, ServerWithoutIdForAdd) {
  domain::ServerView view = WebServer();
  view.include_id = false;
  const std::string body = RenderSuccessJson("/grid/server/add", One(ServerJson(view, Context())));
  ExpectMatchesGolden(body, "server_add.json");
  EXPECT_FALSE(json::parse(body)["list"][0].contains("id"));
}

TEST(RenderGoldenTest, ServerWithId) {
  domain::ServerView view = WebServer();
  view.server.ram = 3;
  view.server.type = 2;
  view.server.state = domain::server_state::kOn;
  const std::string body = RenderSuccessJson("/grid/server/get", One(ServerJson(view, Context())));
  ExpectMatchesGolden(body, "server.json");
  // libcloud compares ids from two answers: they must be JSON integers.
  EXPECT_TRUE(json::parse(body)["list"][0]["id"].is_number_integer());
}

TEST(RenderGoldenTest, IpWithDatacenter) {
  ExpectMatchesGolden(
      RenderSuccessJson("/grid/ip/list",
                        One(IpJson(PublicIp(domain::ip_state::kUnassigned), Context()))),
      "ip.json");
}

TEST(RenderGoldenTest, OptionWithNullDescriptionIsExact) {
  const auto& object_types = *domain::FixedLookup("job.objecttype");
  const std::string body =
      RenderSuccessJson("/common/lookup/list", One(OptionJson(object_types.front())));
  EXPECT_EQ(body, ReadGolden("option_null_description.json"));
  EXPECT_TRUE(json::parse(body)["list"][0]["description"].is_null());
}

TEST(RenderGoldenTest, JobWithHistory) {
  domain::Job job;
  job.id = 250628;
  job.account_id = 7;
  job.object_type = domain::job_object_type::kVirtualServer;
  job.object_id = 42;
  job.object_name = "web01";
  job.command = domain::job_command::kCreateVirtualServer;
  job.state = domain::job_state::kSucceeded;
  job.attempts = 2;
  job.owner = "3116784158f0af2d-7@api";
  job.detail = nlohmann::ordered_json::object();
  job.detail["type"] = "virtual_server";
  job.detail["name"] = "web01";
  job.detail["description"] = "front end";
  job.detail["image"] = "debian-12-amd64";
  job.detail["ip"] = "192.0.2.18";
  job.datacenter_id = 1;
  job.created_ms = 1'700'000'000'000;
  job.updated_ms = 1'700'000'005'000;
  namespace js = domain::job_state;
  job.history = {
      {101, js::kCreated, std::nullopt, 1'700'000'000'000},
      {102, js::kQueued, std::nullopt, 1'700'000'000'000},
      {103, js::kProcessing, std::nullopt, 1'700'000'000'100},
      {104, js::kFailed, "attempt 1 failed: host busy", 1'700'000'000'200},
      {105, js::kQueued, "retrying", 1'700'000'000'200},
      {106, js::kProcessing, std::nullopt, 1'700'000'001'200},
      {107, js::kSucceeded, std::nullopt, 1'700'000'005'000},
  };
  const std::string body = RenderSuccessJson("/grid/job/get", One(JobJson(job, Context())));
  ExpectMatchesGolden(body, "job.json");
  // History entries without a note carry no "note" key at all (not null, not "").
  EXPECT_FALSE(json::parse(body)["list"][0]["history"][0].contains("note"));
}

TEST(RenderTest, JobWithoutDatacenterOmitsIt) {
  domain::Job job;
  job.id = 1;
  job.command = domain::job_command::kDeleteVirtualServer;
  job.state = domain::job_state::kQueued;
  json out = json::parse(JobJson(job, Context()).dump());
  EXPECT_FALSE(out.contains("datacenter"));
  EXPECT_EQ(out["command"]["name"], "DeleteVirtualServer");
  EXPECT_TRUE(out["history"].is_array());
}

TEST(RenderTest, EmptyListIsStillAnArray) {
  json out = json::parse(RenderSuccessJson("/grid/server/list", Result{}));
  ASSERT_TRUE(out["list"].is_array());
  EXPECT_TRUE(out["list"].empty());
  EXPECT_EQ(out["summary"], json::parse(R"({"numpages":0,"returned":0,"start":0,"total":0})"));
}

TEST(RenderTest, DatacenterMissingFromTheCatalogueIsShownByItsId) {
  domain::Ip ip = PublicIp(domain::ip_state::kUnassigned);
  ip.datacenter_id = 9;
  json out = json::parse(IpJson(ip, Context()).dump());
  EXPECT_EQ(out["datacenter"]["id"], 9);
  EXPECT_EQ(out["datacenter"]["name"], "9");
  EXPECT_EQ(out["datacenter"]["object"], "option");
}

TEST(RenderTest, PasswordWithServerAndWithout) {
  domain::PasswordView with_server;
  with_server.password = {142243, 7, 42, "os", "root", "zot40ced"};
  with_server.server = WebServer();
  json out = json::parse(PasswordJson(with_server, Context()).dump());
  EXPECT_EQ(out["object"], "password");
  EXPECT_EQ(out["id"], 142243);
  EXPECT_EQ(out["applicationtype"], "os");
  EXPECT_EQ(out["username"], "root");
  EXPECT_EQ(out["password"], "zot40ced");
  ASSERT_TRUE(out.contains("server"));
  EXPECT_TRUE(out["server"]["id"].is_number_integer());
  EXPECT_EQ(out["server"]["id"], 42);

  domain::PasswordView storage;
  storage.password = {28000, 7, std::nullopt, "cloudstorage", "22290", "200FMd2nDeomtfW."};
  out = json::parse(PasswordJson(storage, Context()).dump());
  EXPECT_FALSE(out.contains("server"));  // libcloud skips entries without a server
}

TEST(RenderTest, InvalidUtf8IsReplacedNotFatal) {
  domain::ServerView view = WebServer();
  view.server.name = "web\xff\xfe";
  std::string body;
  ASSERT_NO_THROW(body = RenderSuccessJson("/grid/server/list", One(ServerJson(view, Context()))));
  json out = json::parse(body);  // valid JSON, valid UTF-8
  EXPECT_EQ(out["list"][0]["name"], "web\xEF\xBF\xBD\xEF\xBF\xBD");
  ASSERT_NO_THROW(body = RenderFailureJson("/grid/server/get", ErrorClass::kIllegalArgument,
                                           "No server named 'x\xc3'"));
  EXPECT_EQ(json::parse(body)["list"][0]["message"], "No server named 'x\xEF\xBF\xBD'");
}

// A JSON answer writes servers as text (ServerJsonWriter), XML and CSV walk ServerJson's tree:
// both must be the same bytes, or clients would see the format change what a server looks like.
// Gives the view an image of its own, changed by `change`.
template <typename Change>
void EditImage(domain::ServerView& view, Change change) {
  domain::Image image = *view.image;
  change(image);
  view.image = std::make_shared<const domain::Image>(std::move(image));
}

void ExpectWriterMatchesTree(const domain::ServerView& view, const RenderContext& context) {
  ServerJsonWriter writer(context);
  EXPECT_EQ(writer.Write(view),
            ServerJson(view, context).dump(-1, ' ', false, Json::error_handler_t::replace));
}

TEST(ServerJsonWriterTest, SameBytesAsTheTree) {
  domain::ServerView view = WebServer();
  ExpectWriterMatchesTree(view, Context());
  view.include_id = false;
  ExpectWriterMatchesTree(view, Context());
  view.include_id = true;
  view.host_unreachable = true;
  ExpectWriterMatchesTree(view, Context());
  view.host_unreachable = false;
  EditImage(view, [](domain::Image& image) {
    image.price = 0.15;
    image.owner_account_id = 7;
    image.owner_name = "acme";
    image.is_public = true;
  });
  ExpectWriterMatchesTree(view, Context());
}

TEST(ServerJsonWriterTest, SameBytesForHostileText) {
  domain::ServerView view = WebServer();
  view.server.name = "we\"b\\01\n\t\x01\x7f";
  view.server.description = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \xff\xfe \xc3 end";
  EditImage(view, [](domain::Image& image) {
    image.friendly_name = "</script> & 'x'";
    image.description = "\xed\xa0\x80 surrogate, \xc0\xaf overlong";
  });
  ExpectWriterMatchesTree(view, Context());
}

TEST(ServerJsonWriterTest, SameBytesForIdsMissingFromTheCatalogue) {
  domain::ServerView view = WebServer();
  EditImage(view, [](domain::Image& image) { image.os_id = 99; });
  view.ip.datacenter_id = 4;
  view.server.ram = 77;
  ExpectWriterMatchesTree(view, Context());
  ExpectWriterMatchesTree(view, RenderContext{});
}

TEST(ServerJsonWriterTest, ReusedImagesDoNotLeakBetweenServers) {
  // One writer renders a page: the second server's own fields must show, the image its own.
  ServerJsonWriter writer(Context());
  domain::ServerView first = WebServer();
  domain::ServerView second = WebServer();
  second.server.id = 43;
  second.server.name = "web02";
  second.ip.id = 18;
  second.ip.address = "192.0.2.19";
  EditImage(second, [](domain::Image& image) {
    image.id = 4;
    image.name = "other-image";
  });
  writer.Write(first);
  EXPECT_EQ(writer.Write(second),
            ServerJson(second, Context()).dump(-1, ' ', false, Json::error_handler_t::replace));
}

TEST(ServerJsonWriterTest, EnvelopeOfTextItemsMatchesTheTreeEnvelope) {
  domain::ServerView view = WebServer();
  Result trees;
  Result texts;
  ServerJsonWriter writer(Context());
  for (int i = 0; i < 3; ++i) {
    view.server.id = 42 + i;
    trees.list.push_back(ServerJson(view, Context()));
    writer.Append(NextJsonItem(texts), view);
  }
  trees.summary = texts.summary = Summary{3, 0, 3, 1};
  EXPECT_EQ(RenderSuccessJson("/grid/server/list", texts),
            RenderSuccessJson("/grid/server/list", trees));
}

}  // namespace
}  // namespace gridd::api
