// Every bad request gets a GoGrid failure envelope with a message that says what is wrong, and
// changes nothing: same servers, same jobs, same assigned addresses.
#include <gtest/gtest.h>

#include "integration/grid_client_util.h"
#include "support/daemon_process.h"

namespace gridd::testing {
namespace {

struct BadCase {
  std::string label;
  std::string method;
  Params params;
  unsigned status;
  std::string message;  // substring of list[0].message
};

// What a customer can observe of the account's state.
struct Snapshot {
  std::string servers;
  std::string jobs;
  std::string ips;
  bool operator==(const Snapshot&) const = default;
};

Snapshot Take(ApiClient& client) {
  Snapshot snapshot;
  snapshot.servers = CallOk(client, "grid/server/list")["list"].dump();
  auto jobs = CallOk(client, "grid/job/list")["list"];
  for (auto& job : jobs) {
    // A job still running may move on between two snapshots; compare what was asked for.
    job.erase("currentstate");
    job.erase("history");
    job.erase("lastupdatedon");
    job.erase("attempts");
  }
  snapshot.jobs = jobs.dump();
  snapshot.ips = CallOk(client, "grid/ip/list", {{"ip.state", "Assigned"}})["list"].dump();
  return snapshot;
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.Start();
    client_ = std::make_unique<ApiClient>(daemon_.Client());
    auto ips = FreePublicIps(*client_);
    ASSERT_GE(ips.size(), 3u);
    busy_ip_ = ips[0];
    free_ip_ = ips[1];
    auto body = CallOk(*client_, "grid/server/add",
                       {{"name", "existing"}, {"image", "debian-12-amd64"},
                        {"server.ram", "512MB"}, {"ip", busy_ip_}},
                       "POST");
    WaitForServerState(*client_, busy_ip_, "On");
    existing_id_ = std::to_string(FindServerByIp(*client_, busy_ip_).value()["id"].get<int64_t>());
    auto privates = CallOk(*client_, "grid/ip/list", {{"ip.type", "Private"}});
    private_ip_ = privates["list"][0]["ip"];
  }

  DaemonProcess daemon_;
  std::unique_ptr<ApiClient> client_;
  std::string busy_ip_, free_ip_, private_ip_, existing_id_;
};

TEST_F(BadInputTest, EveryBadRequestIsRefusedWithAClearMessageAndChangesNothing) {
  const Params good = {{"name", "new"}, {"image", "debian-12-amd64"}, {"server.ram", "512MB"}};
  auto with = [&](Params extra, std::initializer_list<std::string> drop = {}) {
    Params out;
    for (const auto& [key, value] : good) {
      if (std::find(drop.begin(), drop.end(), key) == drop.end()) out.emplace_back(key, value);
    }
    for (auto& pair : extra) out.push_back(std::move(pair));
    return out;
  };
  const std::vector<BadCase> cases = {
      {"missing name", "grid/server/add", with({{"ip", free_ip_}}, {"name"}), 400,
       "Missing required parameter: name"},
      {"missing image", "grid/server/add", with({{"ip", free_ip_}}, {"image"}), 400,
       "Missing required parameter: image"},
      {"missing ram", "grid/server/add", with({{"ip", free_ip_}}, {"server.ram"}), 400,
       "Missing required parameter: server.ram"},
      {"missing ip", "grid/server/add", with({}), 400, "Missing required parameter: ip"},
      {"name too long", "grid/server/add",
       with({{"ip", free_ip_}, {"name", "abcdefghijklmnopqrstu"}}, {"name"}), 400,
       "at most 20 characters"},
      {"unknown ram", "grid/server/add", with({{"ip", free_ip_}, {"server.ram", "3GB"}}, {"server.ram"}),
       400, "Invalid value '3GB' for server.ram"},
      {"unknown image", "grid/server/add", with({{"ip", free_ip_}, {"image", "no-such"}}, {"image"}),
       400, "No image matches 'no-such'"},
      {"ip not the account's", "grid/server/add", with({{"ip", "203.0.113.9"}}), 400,
       "is not one of this account's addresses"},
      {"ip malformed", "grid/server/add", with({{"ip", "not-an-ip"}}), 400,
       "is not one of this account's addresses"},
      {"ip already assigned", "grid/server/add", with({{"ip", busy_ip_}}), 400, "already assigned"},
      {"private ip", "grid/server/add", with({{"ip", private_ip_}}), 400, "not a public address"},
      {"description too long", "grid/server/add",
       with({{"ip", free_ip_}, {"description", std::string(501, 'd')}}), 400,
       "at most 500 characters"},
      {"unknown server id", "grid/server/get", {{"id", "999999"}}, 400,
       "No object found that matches your input criteria."},
      {"non-numeric id", "grid/server/get", {{"id", "abc"}}, 400, "positive integer"},
      {"mixed selectors", "grid/server/get", {{"id", existing_id_}, {"name", "existing"}}, 400,
       "cannot be mixed"},
      {"power missing", "grid/server/power", {{"id", existing_id_}}, 400,
       "Missing required parameter: power"},
      {"power unknown", "grid/server/power", {{"id", existing_id_}, {"power", "explode"}}, 400,
       "Invalid value 'explode' for power"},
      {"power unknown server", "grid/server/power", {{"id", "424242"}, {"power", "stop"}}, 400,
       "No object found"},
      {"delete without selector", "grid/server/delete", {}, 400, "Missing required parameter"},
      {"edit nothing", "grid/server/edit", {{"id", existing_id_}}, 400, "Nothing to edit"},
      {"edit unknown ram", "grid/server/edit", {{"id", existing_id_}, {"server.ram", "huge"}}, 400,
       "Invalid value 'huge' for server.ram"},
      {"bad ip.state", "grid/ip/list", {{"ip.state", "Maybe"}}, 400, "Invalid value 'Maybe' for ip.state"},
      {"bad datacenter", "grid/server/list", {{"datacenter", "Mars-1"}}, 400,
       "Invalid value 'Mars-1' for datacenter"},
      {"bad num_items", "grid/ip/list", {{"num_items", "0"}}, 400, "num_items"},
      {"bad page", "grid/ip/list", {{"num_items", "5"}, {"page", "-1"}}, 400, "page"},
      {"bad boolean", "grid/image/list", {{"isPublic", "yes"}}, 400, "true or false"},
      {"bad startdate", "grid/job/list", {{"startdate", "yesterday"}}, 400, "Invalid date"},
      {"unknown lookup", "common/lookup/list", {{"lookup", "server.colour"}}, 400, "Unknown lookup"},
      {"missing lookup", "common/lookup/list", {}, 400, "Missing required parameter: lookup"},
      {"unknown job", "grid/job/get", {{"id", "777777"}}, 400, "No object found"},
      {"unknown password", "support/password/get", {{"id", "777777"}}, 400, "No object found"},
      {"unknown method", "grid/server/explode", {}, 400, "Unknown method"},
      {"unknown format", "grid/server/list", {{"format", "yaml"}}, 400, "json, xml or csv"},
      {"version too old for edit", "grid/server/edit",
       {{"v", "1.5"}, {"id", existing_id_}, {"description", "x"}}, 400, "1.6"},
      {"unknown version", "grid/server/list", {{"v", "2.0"}}, 400, "Unsupported API version"},
  };

  const Snapshot before = Take(*client_);
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.label);
    auto reply = client_->Call(bad.method, bad.params, "POST");
    EXPECT_EQ(reply.status, bad.status) << reply.body;
    ASSERT_FALSE(reply.body.empty());
    auto body = reply.json();
    EXPECT_EQ(body["status"], "failure");
    ASSERT_EQ(body["list"].size(), 1u);
    EXPECT_EQ(body["list"][0]["object"], "error");
    EXPECT_EQ(body["list"][0]["errorcode"], "IllegalArgumentException");
    EXPECT_NE(body["list"][0]["message"].get<std::string>().find(bad.message), std::string::npos)
        << "message was: " << body["list"][0]["message"];
    EXPECT_EQ(Take(*client_), before) << "a refused request changed the account";
  }
}

TEST_F(BadInputTest, ASecondChangeWhileAJobIsPendingIsRefused) {
  // Stop and immediately ask again: the stop job is still queued or running, or has just
  // finished. Keep asking until one attempt lands while the job is pending.
  auto first = client_->Call("grid/server/power", {{"id", existing_id_}, {"power", "restart"}}, "POST");
  ASSERT_EQ(first.status, 200u) << first.body;
  auto second = client_->Call("grid/server/delete", {{"id", existing_id_}}, "POST");
  if (second.status == 400) {
    EXPECT_NE(second.json()["list"][0]["message"].get<std::string>().find("Update already pending"),
              std::string::npos)
        << second.body;
    WaitForServerState(*client_, busy_ip_, "On");
  } else {
    // The restart finished first (the test driver is fast); the delete was then legitimate.
    EXPECT_EQ(second.status, 200u) << second.body;
  }
}

TEST_F(BadInputTest, BadKeysSecretsAndExpiredSignaturesAre403) {
  ApiClient stranger(daemon_.host(), daemon_.port());
  stranger.SetCredentials("0123456789abcdef", "nosecret");
  auto reply = stranger.Call("grid/server/list", {});
  EXPECT_EQ(reply.status, 403u);
  EXPECT_EQ(reply.json()["status"], "failure");

  ApiClient wrong_secret(daemon_.host(), daemon_.port());
  wrong_secret.SetCredentials(daemon_.api_key(), "not-the-secret");
  EXPECT_EQ(wrong_secret.Call("grid/server/list", {}).status, 403u);

  auto unsigned_reply = client_->Call("grid/server/list", {}, "GET", /*sign=*/false);
  EXPECT_EQ(unsigned_reply.status, 403u);

  // An expired signature: 601 seconds old.
  const std::string old = std::to_string(std::time(nullptr) - 601);
  const std::string sig = Md5Hex(daemon_.api_key() + daemon_.shared_secret() + old);
  auto expired = client_->Raw("GET", "/api/grid/server/list?v=1.8&api_key=" + daemon_.api_key() +
                                         "&sig=" + sig);
  EXPECT_EQ(expired.status, 403u) << expired.body;
}

TEST_F(BadInputTest, MalformedHttpGetsAFailureEnvelopeNotACrash) {
  auto not_found = client_->Raw("GET", "/nowhere");
  EXPECT_EQ(not_found.status, 400u);
  EXPECT_EQ(not_found.json()["status"], "failure");
  auto bad_method = client_->Raw("DELETE", "/api/grid/server/list");
  EXPECT_EQ(bad_method.status, 400u);
  EXPECT_EQ(bad_method.json()["status"], "failure");
  auto bad_encoding = client_->Raw("GET", "/api/grid/server/list?name=%zz");
  EXPECT_EQ(bad_encoding.status, 400u);
  auto huge = client_->Raw("POST", "/api/grid/server/list", std::string(2 * 1024 * 1024, 'a'),
                           "application/x-www-form-urlencoded");
  EXPECT_EQ(huge.status, 413u);
  EXPECT_FALSE(huge.body.empty());
  // The daemon still answers.
  CallOk(*client_, "grid/server/list");
}

}  // namespace
}  // namespace gridd::testing
