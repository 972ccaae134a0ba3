// ApiService::Handle end to end below HTTP: routing, signatures, roles, versions, paging,
// lookups and the server lifecycle, over an in-memory database seeded from config/gridd.toml.
// No job runner: tests that need a job done mark it finished in the store.
#include "gridd/api/api_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gridd/common/config.h"
#include "gridd/common/crypto.h"
#include "gridd/store/repositories.h"
#include "support/test_paths.h"

namespace gridd::api {
namespace {

using nlohmann::json;
using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr int64_t kStartMs = 1'700'000'000'000;

const Config& TestConfig() {
  static const Config config = LoadConfig(gridd::testing::SourceDir() / "config" / "gridd.toml");
  return config;
}

std::array<uint8_t, SecretBox::kKeySize> TestKey() {
  std::array<uint8_t, SecretBox::kKeySize> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  return key;
}

std::string Encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char escape[4];
      std::snprintf(escape, sizeof(escape), "%%%02X", c);
      out += escape;
    }
  }
  return out;
}

std::string Query(const Pairs& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += Encode(name) + "=" + Encode(value);
  }
  return out;
}

struct Reply {
  unsigned status = 0;
  json body;
  std::string raw;

  json& First() { return body.at("list").at(0); }
  std::string Message() const { return body.at("list").at(0).value("message", ""); }
};

// The spec's role table (§2.1), by the method name echoed in answers.
const std::map<std::string, std::set<domain::Role>>& SpecRoles() {
  using domain::Role;
  static const std::set<Role> all = {Role::kSuperUser, Role::kSystemUser, Role::kBillingUser,
                                     Role::kReadOnlyUser};
  static const std::set<Role> writers = {Role::kSuperUser, Role::kSystemUser};
  static const std::map<std::string, std::set<Role>> table = {
      {"/grid/server/list", all},
      {"/grid/server/get", all},
      {"/grid/server/add", writers},
      {"/grid/server/delete", writers},
      {"/grid/server/power", writers},
      {"/grid/server/edit", writers},
      {"/grid/ip/list", all},
      {"/grid/ip/get", all},
      {"/grid/image/list", all},
      {"/grid/image/get", all},
      {"/grid/image/save", writers},
      {"/grid/image/edit", writers},
      {"/grid/image/delete", writers},
      {"/grid/image/restore", writers},
      {"/grid/loadbalancer/list", all},
      {"/grid/loadbalancer/get", all},
      {"/grid/loadbalancer/add", writers},
      {"/grid/loadbalancer/delete", writers},
      {"/grid/loadbalancer/edit", writers},
      {"/grid/job/list", writers},
      {"/grid/job/get", writers},
      {"/support/password/list", writers},
      {"/support/password/get", writers},
      {"/common/lookup/list", all},
      {"/myaccount/billing/get", {Role::kSuperUser, Role::kBillingUser}},
  };
  return table;
}

class ApiServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    accounts_.ApplySeeds(TestConfig());
    auto initial = accounts_.EnsureInitialAccount(TestConfig().initial_account);
    ASSERT_TRUE(initial.has_value());
    super_ = *initial;
    account_id_ = accounts_.FindAccount(TestConfig().initial_account).id;
  }

  std::string Auth(const domain::NewApiKey& key, int64_t skew_seconds = 0) {
    const std::string sig = Md5Hex(key.api_key + key.shared_secret +
                                   std::to_string(clock_.NowSeconds() + skew_seconds));
    return "api_key=" + Encode(key.api_key) + "&sig=" + sig;
  }

  Reply Send(const HttpRequest& request) {
    HttpResponse response = api_.Handle(request);
    Reply reply;
    reply.status = response.status;
    reply.raw = response.body;
    EXPECT_FALSE(response.body.empty()) << request.method << " " << request.target;
    EXPECT_EQ(response.content_type, "application/json; charset=UTF-8");
    reply.body = json::parse(response.body);  // never anything but JSON
    const bool failed = reply.body.at("status") == "failure";
    EXPECT_EQ(failed, response.status != 200) << response.body;
    if (failed) {
      EXPECT_FALSE(reply.body.at("list").empty()) << "a failure needs list[0].message";
    }
    return reply;
  }

  Reply GetRaw(const std::string& path, const std::string& query) {
    return Send(HttpRequest{"GET", path + "?" + query, "", "", "127.0.0.1"});
  }

  // A signed GET with v=1.9 and the given parameters.
  Reply Get(const std::string& path, const Pairs& params = {},
            const domain::NewApiKey* key = nullptr) {
    std::string query = Auth(key ? *key : super_) + "&v=1.9";
    if (!params.empty()) query += "&" + Query(params);
    return GetRaw(path, query);
  }

  // First public, unassigned IP of the account, as libcloud picks it.
  std::string FreePublicIp() {
    Reply reply = Get("/api/grid/ip/list", {{"ip.type", "Public"}, {"ip.state", "Unassigned"}});
    EXPECT_EQ(reply.status, 200u) << reply.raw;
    return reply.First().at("ip").get<std::string>();
  }

  Reply AddServer(const std::string& name, const std::string& ip) {
    return Get("/api/grid/server/add", {{"name", name},
                                        {"image", "debian-12-amd64"},
                                        {"server.ram", "512mb"},
                                        {"ip", ip},
                                        {"description", ""}});
  }

  // What the job runner would do: finish every pending job and record the server state.
  void FinishPendingJobs(int64_t server_state) {
    db_.Write([&](store::Connection& c) {
      for (const auto& job : store::jobs::List(c, account_id_)) {
        if (job.state != domain::job_state::kQueued) continue;
        store::jobs::Finish(c, job.id, domain::job_state::kSucceeded, std::nullopt, clock_.NowMs());
        store::servers::SetState(c, job.object_id, server_state, clock_.NowMs());
      }
    });
  }

  void InsertJobs(int count) {
    db_.Write([&](store::Connection& c) {
      for (int i = 0; i < count; ++i) {
        domain::Job job;
        job.account_id = account_id_;
        job.object_id = 1000 + i;
        job.object_name = "server" + std::to_string(i);
        job.command = domain::job_command::kStartVirtualServer;
        job.owner = "test";
        store::jobs::Insert(c, job, clock_.NowMs());
      }
    });
  }

  int64_t IpCount(bool is_public) const {
    int64_t count = 0;
    for (const auto& pool : TestConfig().ip_pools) {
      if (pool.is_public == is_public) count += TestConfig().ip_block_size;
    }
    return count;
  }

  ManualClock clock_{kStartMs};
  SecretBox box_{TestKey()};
  store::Database db_{":memory:"};
  domain::Catalog catalog_{db_};
  domain::AccountService accounts_{db_, catalog_, clock_, box_, TestConfig().ip_block_size};
  int queued_ = 0;
  domain::GridService grid_{db_, catalog_, clock_, box_, [this] { ++queued_; }};
  ApiService api_{grid_, accounts_, nullptr, clock_, ApiServiceOptions{600, 300}};
  domain::NewApiKey super_;
  int64_t account_id_ = 0;
};

// ------------------------------------------------------------------------------ routing, auth

TEST_F(ApiServiceTest, UnknownPathIsA400FailureEnvelope) {
  Reply reply = Get("/api/grid/nothing/list");
  EXPECT_EQ(reply.status, 400u);
  EXPECT_EQ(reply.body["status"], "failure");
  EXPECT_EQ(reply.body["method"], "/grid/nothing/list");
  EXPECT_EQ(reply.First()["object"], "error");
  EXPECT_EQ(reply.First()["errorcode"], "IllegalArgumentException");
  EXPECT_NE(reply.Message().find("/api/grid/nothing/list"), std::string::npos) << reply.raw;
  EXPECT_EQ(reply.body["summary"]["total"], 1);
}

TEST_F(ApiServiceTest, UnknownPathWithoutCredentialsIsStill400WithBody) {
  Reply reply = Send(HttpRequest{"GET", "/favicon.ico", "", "", ""});
  EXPECT_EQ(reply.status, 400u);
  EXPECT_EQ(reply.First()["errorcode"], "IllegalArgumentException");
}

TEST_F(ApiServiceTest, OtherHttpMethodsAreRefused) {
  Reply reply =
      Send(HttpRequest{"DELETE", "/api/grid/server/list?" + Auth(super_) + "&v=1.9", "", "", ""});
  EXPECT_EQ(reply.status, 400u);
  EXPECT_NE(reply.Message().find("DELETE"), std::string::npos) << reply.raw;
}

TEST_F(ApiServiceTest, MissingApiKeyOrSigIs403) {
  const std::string sig =
      Md5Hex(super_.api_key + super_.shared_secret + std::to_string(clock_.NowSeconds()));
  Reply no_key = GetRaw("/api/grid/server/list", "sig=" + sig + "&v=1.9");
  EXPECT_EQ(no_key.status, 403u);
  EXPECT_EQ(no_key.First()["errorcode"], "AuthenticationFailed");
  EXPECT_EQ(no_key.body["method"], "/grid/server/list");
  Reply no_sig = GetRaw("/api/grid/server/list", "api_key=" + super_.api_key + "&v=1.9");
  EXPECT_EQ(no_sig.status, 403u);
  Reply nothing = GetRaw("/api/grid/server/list", "v=1.9");
  EXPECT_EQ(nothing.status, 403u);
}

TEST_F(ApiServiceTest, UnknownApiKeyIs403) {
  domain::NewApiKey stranger{"default", "0123456789abcdef", "whatever", domain::Role::kSuperUser};
  EXPECT_EQ(Get("/api/grid/server/list", {}, &stranger).status, 403u);
}

TEST_F(ApiServiceTest, BadSignatureIs403) {
  domain::NewApiKey wrong_secret = super_;
  wrong_secret.shared_secret = "not-the-secret";
  Reply reply = Get("/api/grid/server/list", {}, &wrong_secret);
  EXPECT_EQ(reply.status, 403u);
  EXPECT_EQ(reply.First()["errorcode"], "AuthenticationFailed");
  EXPECT_EQ(GetRaw("/api/grid/server/list", "api_key=" + super_.api_key + "&sig=abc&v=1.9").status,
            403u);
}

TEST_F(ApiServiceTest, SignatureWindowFollowsTheClock) {
  EXPECT_EQ(GetRaw("/api/grid/server/list", Auth(super_, -600) + "&v=1.9").status, 200u);
  EXPECT_EQ(GetRaw("/api/grid/server/list", Auth(super_, 300) + "&v=1.9").status, 200u);
  EXPECT_EQ(GetRaw("/api/grid/server/list", Auth(super_, -601) + "&v=1.9").status, 403u);
  EXPECT_EQ(GetRaw("/api/grid/server/list", Auth(super_, 301) + "&v=1.9").status, 403u);
}

TEST_F(ApiServiceTest, SignatureExpiresAsTheClockMoves) {
  const std::string query = Auth(super_) + "&v=1.9";
  EXPECT_EQ(GetRaw("/api/grid/server/list", query).status, 200u);
  clock_.AdvanceMs(600'000);
  EXPECT_EQ(GetRaw("/api/grid/server/list", query).status, 200u);
  clock_.AdvanceMs(1'000);
  EXPECT_EQ(GetRaw("/api/grid/server/list", query).status, 403u);
}

TEST_F(ApiServiceTest, RevokedKeyIsRefusedEvenWithAVerifiedSignature) {
  const domain::NewApiKey key = accounts_.CreateApiKey("default", "System User");
  const std::string query = Auth(key) + "&v=1.9";
  ASSERT_EQ(GetRaw("/api/grid/server/list", query).status, 200u);
  accounts_.RevokeApiKey(key.api_key);
  EXPECT_EQ(GetRaw("/api/grid/server/list", query).status, 403u);
}

// A GET of grid/server/list signed with HMAC-SHA256 (docs/api.md) by `key`, with a nonce
// never used before.
std::string HmacQuery(const domain::NewApiKey& key, int64_t now_seconds) {
  static int nonce_counter = 0;
  const std::string nonce = "nonce-" + std::to_string(1'000'000 + ++nonce_counter) + "-abcdef";
  const std::string timestamp = std::to_string(now_seconds);
  Pairs params = {{"api_key", key.api_key},
                  {"v", "1.9"},
                  {"sig_method", "HMAC-SHA256"},
                  {"timestamp", timestamp},
                  {"nonce", nonce}};
  params.emplace_back(
      "sig", HmacVerifier::HmacSha256Hex(
                 key.shared_secret, HmacVerifier::CanonicalString("GET", "/api/grid/server/list",
                                                                  params, timestamp, nonce)));
  return Query(params);
}

TEST_F(ApiServiceTest, ARotatedKeysOldSecretSignsUntilTheGracePeriodEnds) {
  const domain::NewApiKey old_key = accounts_.CreateApiKey("default", "System User");
  ASSERT_EQ(Get("/api/grid/server/list", {}, &old_key).status, 200u);
  const domain::NewApiKey new_key = accounts_.RotateApiKey(old_key.api_key, 60).key;
  for (const auto* key : {&old_key, &new_key}) {
    EXPECT_EQ(Get("/api/grid/server/list", {}, key).status, 200u);
    EXPECT_EQ(GetRaw("/api/grid/server/list", HmacQuery(*key, clock_.NowSeconds())).status, 200u);
  }
  clock_.AdvanceMs(59'999);
  EXPECT_EQ(Get("/api/grid/server/list", {}, &old_key).status, 200u);
  EXPECT_EQ(GetRaw("/api/grid/server/list", HmacQuery(old_key, clock_.NowSeconds())).status, 200u);
  clock_.AdvanceMs(1);
  Reply refused = Get("/api/grid/server/list", {}, &old_key);
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(refused.Message().find("invalid or expired signature"), std::string::npos)
      << refused.raw;
  refused = GetRaw("/api/grid/server/list", HmacQuery(old_key, clock_.NowSeconds()));
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(refused.Message().find("invalid signature"), std::string::npos) << refused.raw;
  EXPECT_EQ(Get("/api/grid/server/list", {}, &new_key).status, 200u);
  EXPECT_EQ(GetRaw("/api/grid/server/list", HmacQuery(new_key, clock_.NowSeconds())).status, 200u);
}

TEST_F(ApiServiceTest, RotationWithoutGraceCutsTheOldSecretEvenForAVerifiedSignature) {
  const domain::NewApiKey old_key = accounts_.CreateApiKey("default", "System User");
  // Verified once, this exact signature would be served from the verifier's cache.
  const std::string query = Auth(old_key) + "&v=1.9";
  ASSERT_EQ(GetRaw("/api/grid/server/list", query).status, 200u);
  const domain::NewApiKey new_key = accounts_.RotateApiKey(old_key.api_key, 0).key;
  EXPECT_EQ(GetRaw("/api/grid/server/list", query).status, 403u);
  EXPECT_EQ(GetRaw("/api/grid/server/list", HmacQuery(old_key, clock_.NowSeconds())).status, 403u);
  EXPECT_EQ(Get("/api/grid/server/list", {}, &new_key).status, 200u);
}

TEST_F(ApiServiceTest, AnHmacOnlyKeysMd5SignaturesAreRefused) {
  const domain::NewApiKey key = accounts_.CreateApiKey("default", "System User");
  ASSERT_EQ(Get("/api/grid/server/list", {}, &key).status, 200u);
  accounts_.SetApiKeySigning(key.api_key, "hmac-only");
  Reply refused = Get("/api/grid/server/list", {}, &key);
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(refused.Message().find("must sign with sig_method=HMAC-SHA256"), std::string::npos)
      << refused.raw;
  EXPECT_EQ(GetRaw("/api/grid/server/list", HmacQuery(key, clock_.NowSeconds())).status, 200u);
  EXPECT_EQ(Get("/api/grid/server/list").status, 200u) << "other keys are not affected";
  accounts_.SetApiKeySigning(key.api_key, "md5+hmac");
  EXPECT_EQ(Get("/api/grid/server/list", {}, &key).status, 200u);
}

TEST_F(ApiServiceTest, RoleMatrixCoversEveryRoute) {
  std::map<domain::Role, domain::NewApiKey> keys = {
      {domain::Role::kSuperUser, super_},
      {domain::Role::kSystemUser, accounts_.CreateApiKey("default", "System User")},
      {domain::Role::kBillingUser, accounts_.CreateApiKey("default", "Billing User")},
      {domain::Role::kReadOnlyUser, accounts_.CreateApiKey("default", "Read Only User")},
  };
  ASSERT_FALSE(api_.routes().empty());
  for (const auto& [path, route] : api_.routes()) {
    auto spec = SpecRoles().find(route.method);
    if (spec == SpecRoles().end()) {
      ADD_FAILURE() << path << " (" << route.method << ") is not in the spec's role table";
      continue;
    }
    for (const auto& [role, key] : keys) {
      Reply reply = Get(path, {}, &key);
      const bool allowed = spec->second.count(role) > 0;
      if (allowed) {
        EXPECT_NE(reply.status, 401u)
            << path << " as " << domain::RoleName(role) << ": " << reply.raw;
        EXPECT_NE(reply.status, 403u) << path << " as " << domain::RoleName(role);
      } else {
        EXPECT_EQ(reply.status, 401u)
            << path << " as " << domain::RoleName(role) << ": " << reply.raw;
        EXPECT_EQ(reply.First()["errorcode"], "Unauthorized");
      }
      EXPECT_EQ(reply.body["method"], route.method) << path;
    }
  }
}

TEST_F(ApiServiceTest, RoleIsCheckedBeforeParameters) {
  const domain::NewApiKey reader = accounts_.CreateApiKey("default", "Read Only User");
  // No v, nonsense parameters: a key without rights still learns only that it has none.
  Reply reply = GetRaw("/api/grid/server/add", Auth(reader) + "&server.ram=huge");
  EXPECT_EQ(reply.status, 401u) << reply.raw;
}

// ---------------------------------------------------------------------------- version, format

TEST_F(ApiServiceTest, MissingVersionIs400) {
  Reply reply = GetRaw("/api/grid/server/list", Auth(super_));
  EXPECT_EQ(reply.status, 400u);
  EXPECT_EQ(reply.First()["errorcode"], "IllegalArgumentException");
  EXPECT_NE(reply.Message().find("parameter: v"), std::string::npos) << reply.raw;
}

TEST_F(ApiServiceTest, UnknownVersionIs400) {
  Reply reply = GetRaw("/api/grid/server/list", Auth(super_) + "&v=2.0");
  EXPECT_EQ(reply.status, 400u);
  EXPECT_NE(reply.Message().find("2.0"), std::string::npos) << reply.raw;
}

TEST_F(ApiServiceTest, EveryClientVersionIsAccepted) {
  for (const char* v : {"1.0", "1.4", "1.5", "1.6", "1.8", "1.9"}) {
    EXPECT_EQ(GetRaw("/api/grid/server/list", Auth(super_) + "&v=" + v).status, 200u) << v;
  }
}

TEST_F(ApiServiceTest, XmlAndCsvFormatsAnswerInTheirContentType) {
  for (const char* format : {"xml", "XML", "csv", "Csv"}) {
    SCOPED_TRACE(format);
    HttpResponse response = api_.Handle(
        HttpRequest{"GET", "/api/grid/server/list?" + Auth(super_) + "&v=1.9&format=" + format, "",
                    "", "127.0.0.1"});
    EXPECT_EQ(response.status, 200u) << response.body;
    const bool xml = std::tolower(static_cast<unsigned char>(format[0])) == 'x';
    EXPECT_EQ(response.content_type, xml ? "text/xml; charset=UTF-8" : "text/csv; charset=UTF-8");
    if (xml) {
      EXPECT_NE(response.body.find("<response method=\"/grid/server/list\" status=\"success\">"),
                std::string::npos)
          << response.body;
    } else {
      EXPECT_EQ(response.body.rfind("# SUCCESS, /grid/server/list, TOTAL, ", 0), 0u)
          << response.body;
    }
  }
  EXPECT_EQ(GetRaw("/api/grid/server/list", Auth(super_) + "&v=1.9&format=json").status, 200u);
}

TEST_F(ApiServiceTest, UnknownFormatIs400InJsonNamingTheFormats) {
  Reply reply = GetRaw("/api/grid/server/list", Auth(super_) + "&v=1.9&format=yaml");
  EXPECT_EQ(reply.status, 400u);
  for (const char* format : {"json", "xml", "csv"}) {
    EXPECT_NE(reply.Message().find(format), std::string::npos) << reply.raw;
  }
}

TEST_F(ApiServiceTest, ErrorsBeforeTheFormatCheckUseTheRequestedFormat) {
  HttpResponse unknown =
      api_.Handle(HttpRequest{"GET", "/api/grid/nothing/list?format=xml", "", "", "127.0.0.1"});
  EXPECT_EQ(unknown.status, 400u);
  EXPECT_EQ(unknown.content_type, "text/xml; charset=UTF-8");
  EXPECT_NE(unknown.body.find("status=\"failure\""), std::string::npos) << unknown.body;
  HttpResponse denied = api_.Handle(HttpRequest{
      "GET", "/api/grid/server/list?api_key=nobody&sig=0&v=1.9&format=csv", "", "", "127.0.0.1"});
  EXPECT_EQ(denied.status, 403u);
  EXPECT_EQ(denied.content_type, "text/csv; charset=UTF-8");
  EXPECT_EQ(denied.body.rfind("# FAILURE, /grid/server/list, ", 0), 0u) << denied.body;
  HttpResponse unknown_format =
      api_.Handle(HttpRequest{"GET", "/api/grid/nothing/list?format=yaml", "", "", "127.0.0.1"});
  EXPECT_EQ(unknown_format.content_type, "application/json; charset=UTF-8");
}

TEST_F(ApiServiceTest, ServerEditNeedsVersion16) {
  Reply old = GetRaw("/api/grid/server/edit", Auth(super_) + "&v=1.5&id=1&server.ram=1GB");
  EXPECT_EQ(old.status, 400u);
  EXPECT_NE(old.Message().find("1.6"), std::string::npos) << old.raw;
  Reply current = GetRaw("/api/grid/server/edit", Auth(super_) + "&v=1.6&id=1&server.ram=1GB");
  EXPECT_EQ(current.status, 400u);  // no server 1 — but not refused for its version
  EXPECT_EQ(current.Message().find("1.6"), std::string::npos) << current.raw;
  EXPECT_EQ(current.Message(), std::string(kNoObjectFound));
}

// ------------------------------------------------------------------------------ transport

TEST_F(ApiServiceTest, PostWithFormBody) {
  HttpRequest request{"POST", "/api/grid/ip/list", "application/x-www-form-urlencoded",
                      Auth(super_) + "&v=1.9&ip.type=Private", "127.0.0.1"};
  Reply reply = Send(request);
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  EXPECT_EQ(reply.body["summary"]["total"], IpCount(false));
  for (const auto& ip : reply.body["list"]) EXPECT_EQ(ip["public"], false);
}

TEST_F(ApiServiceTest, PostWithQueryStringAndEmptyBodyLikeLibcloud) {
  const std::string ip = FreePublicIp();
  HttpRequest request{"POST",
                      "/api/grid/server/add?" + Auth(super_) + "&v=1.8&format=json&" +
                          Query({{"name", "node1"},
                                 {"image", "debian-12-amd64"},
                                 {"server.ram", "512MB"},
                                 {"ip", ip},
                                 {"description", ""}}),
                      "", "", "127.0.0.1"};
  Reply reply = Send(request);
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  EXPECT_EQ(reply.First()["name"], "node1");
}

TEST_F(ApiServiceTest, PostServerAddWithFormBody) {
  const std::string ip = FreePublicIp();
  HttpRequest request{"POST", "/api/grid/server/add",
                      "application/x-www-form-urlencoded; charset=UTF-8",
                      Auth(super_) + "&v=1.9&" +
                          Query({{"name", "form server"},
                                 {"image", "debian-12-amd64"},
                                 {"server.ram", "1GB"},
                                 {"ip", ip}}),
                      "127.0.0.1"};
  Reply reply = Send(request);
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  EXPECT_EQ(reply.First()["name"], "form server");
  EXPECT_EQ(reply.First()["ram"]["name"], "1GB");
  EXPECT_EQ(Get("/api/grid/server/list").body["summary"]["total"], 1);
}

// ---------------------------------------------------------------------------------- paging

TEST_F(ApiServiceTest, UnpaginatedListReturnsEverythingWithNumpagesZero) {
  Reply reply = Get("/api/grid/ip/list");
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  const int64_t total = IpCount(true) + IpCount(false);
  EXPECT_EQ(reply.body["summary"]["total"], total);
  EXPECT_EQ(reply.body["summary"]["returned"], total);
  EXPECT_EQ(reply.body["summary"]["start"], 0);
  EXPECT_EQ(reply.body["summary"]["numpages"], 0);
  EXPECT_EQ(static_cast<int64_t>(reply.body["list"].size()), total);
}

TEST_F(ApiServiceTest, PagingGivesTheRightSliceAndSummary) {
  const json all = Get("/api/grid/ip/list").body["list"];
  const int64_t total = static_cast<int64_t>(all.size());
  ASSERT_GT(total, 25);
  Reply page = Get("/api/grid/ip/list", {{"num_items", "10"}, {"page", "2"}});
  ASSERT_EQ(page.status, 200u) << page.raw;
  EXPECT_EQ(page.body["summary"]["total"], total);
  EXPECT_EQ(page.body["summary"]["start"], 20);
  EXPECT_EQ(page.body["summary"]["returned"], 10);
  EXPECT_EQ(page.body["summary"]["numpages"], (total + 9) / 10);
  ASSERT_EQ(page.body["list"].size(), 10u);
  EXPECT_EQ(page.body["list"][0]["id"], all[20]["id"]);
  EXPECT_EQ(page.body["list"][9]["id"], all[29]["id"]);

  const int64_t last = (total + 9) / 10 - 1;
  Reply tail = Get("/api/grid/ip/list", {{"num_items", "10"}, {"page", std::to_string(last)}});
  EXPECT_EQ(tail.body["summary"]["start"], last * 10);
  EXPECT_EQ(tail.body["summary"]["returned"], total - last * 10);
  EXPECT_EQ(tail.body["list"].back()["id"], all.back()["id"]);

  Reply beyond = Get("/api/grid/ip/list", {{"num_items", "10"}, {"page", "1000"}});
  EXPECT_EQ(beyond.status, 200u);
  EXPECT_EQ(beyond.body["summary"]["returned"], 0);
  EXPECT_TRUE(beyond.body["list"].empty());

  Reply first = Get("/api/grid/ip/list", {{"num_items", "7"}});  // page defaults to 0
  EXPECT_EQ(first.body["summary"]["start"], 0);
  EXPECT_EQ(first.body["summary"]["returned"], 7);
  EXPECT_EQ(first.body["summary"]["numpages"], (total + 6) / 7);
  EXPECT_EQ(first.body["list"][0]["id"], all[0]["id"]);
}

TEST_F(ApiServiceTest, BadPagingParametersAre400) {
  EXPECT_EQ(Get("/api/grid/ip/list", {{"num_items", "0"}}).status, 400u);
  EXPECT_EQ(Get("/api/grid/ip/list", {{"num_items", "ten"}}).status, 400u);
  EXPECT_EQ(Get("/api/grid/ip/list", {{"num_items", "5"}, {"page", "-1"}}).status, 400u);
}

// page × num_items must not overflow into a negative start: any key, even read-only, could
// otherwise make gridd read outside the result list. Run in a child process, since the
// failure mode is a crash; the child exits 0 only when the answer is sane.
TEST_F(ApiServiceTest, HugePageNumbersDoNotOverflow) {
  const std::string query = Auth(super_) + "&v=1.9&num_items=2&page=9223372036854775807";
  const HttpRequest request{"GET", "/api/grid/ip/list?" + query, "", "", "127.0.0.1"};
  EXPECT_EXIT(
      {
        const HttpResponse response = api_.Handle(request);
        const json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
        const bool sane =
            !body.is_discarded() &&
            ((response.status == 200 && body["list"].empty() && body["summary"]["start"] >= 0) ||
             response.status == 400);
        std::_Exit(sane ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(ApiServiceTest, HugePageSizeGivesOnePage) {
  Reply reply = Get("/api/grid/ip/list", {{"num_items", "9223372036854775807"}});
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  const int64_t total = IpCount(true) + IpCount(false);
  EXPECT_EQ(reply.body["summary"]["total"], total);
  EXPECT_EQ(reply.body["summary"]["returned"], total);
  EXPECT_EQ(reply.body["summary"]["start"], 0);
  EXPECT_EQ(reply.body["summary"]["numpages"], 1);
}

TEST_F(ApiServiceTest, JobListDefaultsToOneHundred) {
  InsertJobs(105);
  Reply reply = Get("/api/grid/job/list");
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  EXPECT_EQ(reply.body["summary"]["total"], 105);
  EXPECT_EQ(reply.body["summary"]["returned"], 100);
  EXPECT_EQ(reply.body["summary"]["start"], 0);
  ASSERT_EQ(reply.body["list"].size(), 100u);
  // Newest first: jclouds asks for num_items=1 and treats the answer as the latest job.
  EXPECT_GT(reply.body["list"][0]["id"].get<int64_t>(), reply.body["list"][1]["id"].get<int64_t>());

  Reply rest = Get("/api/grid/job/list", {{"num_items", "50"}, {"page", "2"}});
  EXPECT_EQ(rest.body["summary"]["returned"], 5);
  EXPECT_EQ(rest.body["summary"]["start"], 100);
  EXPECT_EQ(rest.body["summary"]["numpages"], 3);
}

// --------------------------------------------------------------------------------- lookups

TEST_F(ApiServiceTest, LookupOfLookupsListsAll24) {
  Reply reply = Get("/api/common/lookup/list", {{"lookup", "lookups"}});
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  EXPECT_EQ(reply.body["list"].size(), 24u);
  EXPECT_EQ(reply.body["summary"]["total"], 24);
  EXPECT_EQ(reply.body["summary"]["returned"], 24);
  EXPECT_EQ(reply.body["summary"]["numpages"], 0);
  std::set<std::string> names;
  for (const auto& option : reply.body["list"]) {
    EXPECT_EQ(option["object"], "option");
    names.insert(option["name"].get<std::string>());
  }
  for (const char* name : {"server.ram", "ip.datacenter", "job.state", "image.gsitype"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
}

TEST_F(ApiServiceTest, EveryCataloguedLookupAnswers) {
  Reply catalogue = Get("/api/common/lookup/list", {{"lookup", "lookups"}});
  for (const auto& entry : catalogue.body["list"]) {
    const std::string name = entry["name"];
    Reply reply = Get("/api/common/lookup/list", {{"lookup", name}});
    EXPECT_EQ(reply.status, 200u) << name << ": " << reply.raw;
    EXPECT_FALSE(reply.body["list"].empty()) << name;
  }
}

TEST_F(ApiServiceTest, LookupServerRam) {
  Reply reply = Get("/api/common/lookup/list", {{"lookup", "server.ram"}});
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  std::vector<std::string> names;
  for (const auto& option : reply.body["list"]) names.push_back(option["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"512MB", "1GB", "2GB", "4GB", "8GB", "16GB", "24GB"}));
  EXPECT_EQ(reply.body["list"][0]["id"], 1);
  EXPECT_EQ(reply.body["list"][0]["description"], "Server with 512MB RAM");
}

TEST_F(ApiServiceTest, LookupIpDatacenterComesFromTheConfiguration) {
  Reply reply = Get("/api/common/lookup/list", {{"lookup", "ip.datacenter"}});
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  ASSERT_EQ(reply.body["list"].size(), TestConfig().datacenters.size());
  const auto& seed = TestConfig().datacenters.front();
  EXPECT_EQ(reply.First()["id"], seed.id);
  EXPECT_EQ(reply.First()["name"], seed.name);
  EXPECT_EQ(reply.First()["description"], seed.description);
}

TEST_F(ApiServiceTest, UnknownLookupIs400) {
  Reply reply = Get("/api/common/lookup/list", {{"lookup", "server.colour"}});
  EXPECT_EQ(reply.status, 400u);
  EXPECT_NE(reply.Message().find("server.colour"), std::string::npos) << reply.raw;
  EXPECT_EQ(Get("/api/common/lookup/list").status, 400u);  // lookup is required
}

TEST_F(ApiServiceTest, LookupSortedByNameDescending) {
  Reply reply = Get("/api/common/lookup/list",
                    {{"lookup", "server.ram"}, {"sort", "name"}, {"asc", "false"}});
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  std::vector<std::string> names;
  for (const auto& option : reply.body["list"]) names.push_back(option["name"]);
  ASSERT_EQ(names.size(), 7u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end(), std::greater<>()))
      << ::testing::PrintToString(names);
  EXPECT_NE(names.front(), "512MB");  // the natural order's first is not where it was

  Reply by_id =
      Get("/api/common/lookup/list", {{"lookup", "server.ram"}, {"sort", "id"}, {"asc", "desc"}});
  EXPECT_EQ(by_id.First()["id"], 9);
  EXPECT_EQ(by_id.body["list"].back()["id"], 1);
  EXPECT_EQ(Get("/api/common/lookup/list", {{"lookup", "server.ram"}, {"sort", "colour"}}).status,
            400u);
}

// ----------------------------------------------------------------------------------- options

TEST_F(ApiServiceTest, IpFiltersAcceptOptionNamesInAnyCaseAndIds) {
  Reply unassigned = Get("/api/grid/ip/list", {{"ip.state", "unassigned"}});
  ASSERT_EQ(unassigned.status, 200u) << unassigned.raw;
  EXPECT_EQ(unassigned.body["summary"]["total"], IpCount(true) + IpCount(false));
  for (const auto& ip : unassigned.body["list"]) EXPECT_EQ(ip["state"]["name"], "Unassigned");

  Reply public_ips = Get("/api/grid/ip/list", {{"ip.type", "1"}});
  ASSERT_EQ(public_ips.status, 200u) << public_ips.raw;
  EXPECT_EQ(public_ips.body["summary"]["total"], IpCount(true));
  for (const auto& ip : public_ips.body["list"]) {
    EXPECT_EQ(ip["public"], true);
    EXPECT_TRUE(ip.contains("datacenter"));  // libcloud needs it on every IP
  }

  Reply bad = Get("/api/grid/ip/list", {{"ip.state", "half-assigned"}});
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(bad.Message().find("ip.state"), std::string::npos) << bad.raw;
}

TEST_F(ApiServiceTest, AssignedFilterSeesTheNewServersIp) {
  const std::string ip = FreePublicIp();
  ASSERT_EQ(AddServer("web01", ip).status, 200u);
  Reply assigned = Get("/api/grid/ip/list", {{"ip.state", "ASSIGNED"}});
  ASSERT_EQ(assigned.body["list"].size(), 1u) << assigned.raw;
  EXPECT_EQ(assigned.First()["ip"], ip);
  Reply free = Get("/api/grid/ip/list", {{"ip.type", "Public"}, {"ip.state", "Unassigned"}});
  EXPECT_NE(free.First()["ip"], ip);  // the next libcloud create picks another address
}

// ------------------------------------------------------------------------- server lifecycle

TEST_F(ApiServiceTest, ServerAddListGetPowerDelete) {
  const std::string ip = FreePublicIp();
  Reply added = AddServer("web01", ip);
  ASSERT_EQ(added.status, 200u) << added.raw;
  EXPECT_EQ(added.body["method"], "/grid/server/add");
  ASSERT_EQ(added.body["list"].size(), 1u);
  EXPECT_FALSE(added.First().contains("id")) << "GoGrid's add answer has no id";
  EXPECT_EQ(added.First()["name"], "web01");
  EXPECT_EQ(added.First()["ram"]["name"], "512MB");
  EXPECT_EQ(added.First()["ip"]["ip"], ip);
  EXPECT_EQ(added.First()["ip"]["state"]["name"], "Assigned");
  EXPECT_EQ(added.First()["image"]["name"], "debian-12-amd64");
  EXPECT_GE(queued_, 1);

  Reply listed = Get("/api/grid/server/list");
  ASSERT_EQ(listed.status, 200u) << listed.raw;
  ASSERT_EQ(listed.body["list"].size(), 1u);
  json& server = listed.First();
  ASSERT_TRUE(server["id"].is_number_integer());
  const int64_t id = server["id"];
  EXPECT_GT(id, 0);
  EXPECT_EQ(server["ip"]["ip"], ip);
  EXPECT_EQ(server["datacenter"]["name"], TestConfig().datacenters.front().name);

  for (const Pairs& selector :
       {Pairs{{"id", std::to_string(id)}}, Pairs{{"name", "web01"}}, Pairs{{"server", "web01"}},
        Pairs{{"server", std::to_string(id)}}}) {
    Reply got = Get("/api/grid/server/get", selector);
    ASSERT_EQ(got.status, 200u) << got.raw;
    EXPECT_EQ(got.First()["id"], id);
  }
  Reply missing = Get("/api/grid/server/get", {{"id", std::to_string(id + 100)}});
  EXPECT_EQ(missing.status, 400u);
  EXPECT_EQ(missing.Message(), std::string(kNoObjectFound));

  // The create job is still queued: changes wait for it.
  Reply busy = Get("/api/grid/server/power", {{"id", std::to_string(id)}, {"power", "stop"}});
  EXPECT_EQ(busy.status, 400u) << busy.raw;
  FinishPendingJobs(domain::server_state::kOn);
  EXPECT_EQ(Get("/api/grid/server/get", {{"id", std::to_string(id)}}).First()["state"]["name"],
            "On");

  Reply stopped = Get("/api/grid/server/power", {{"id", std::to_string(id)}, {"power", "stop"}});
  ASSERT_EQ(stopped.status, 200u) << stopped.raw;
  EXPECT_EQ(stopped.First()["id"], id);
  EXPECT_EQ(stopped.First()["state"]["name"], "Stopping");
  FinishPendingJobs(domain::server_state::kOff);

  Reply bad_power = Get("/api/grid/server/power", {{"id", std::to_string(id)}, {"power", "melt"}});
  EXPECT_EQ(bad_power.status, 400u);

  Reply restarted = Get("/api/grid/server/power", {{"server", "web01"}, {"power", "restart"}});
  ASSERT_EQ(restarted.status, 200u) << restarted.raw;
  EXPECT_EQ(restarted.First()["state"]["name"], "Restarting");
  FinishPendingJobs(domain::server_state::kOn);

  Reply deleted = Get("/api/grid/server/delete", {{"id", std::to_string(id)}});
  ASSERT_EQ(deleted.status, 200u) << deleted.raw;
  EXPECT_EQ(deleted.First()["id"], id);
  EXPECT_EQ(deleted.First()["state"]["name"], "On");  // as it was when the delete was accepted
  Reply again = Get("/api/grid/server/delete", {{"id", std::to_string(id)}});
  EXPECT_EQ(again.status, 400u) << again.raw;

  Reply jobs = Get("/api/grid/job/list");
  ASSERT_EQ(jobs.status, 200u);
  std::vector<std::string> commands;
  for (const auto& job : jobs.body["list"]) commands.push_back(job["command"]["name"]);
  EXPECT_EQ(commands, (std::vector<std::string>{"DeleteVirtualServer", "RestartVirtualServer",
                                                "StopVirtualServer", "CreateVirtualServer"}));
}

TEST_F(ApiServiceTest, ServerAddValidatesItsParameters) {
  const std::string ip = FreePublicIp();
  Reply no_name = Get("/api/grid/server/add",
                      {{"image", "debian-12-amd64"}, {"server.ram", "512MB"}, {"ip", ip}});
  EXPECT_EQ(no_name.status, 400u);
  EXPECT_NE(no_name.Message().find("name"), std::string::npos);
  Reply bad_ram =
      Get("/api/grid/server/add",
          {{"name", "x"}, {"image", "debian-12-amd64"}, {"server.ram", "3GB"}, {"ip", ip}});
  EXPECT_EQ(bad_ram.status, 400u);
  EXPECT_NE(bad_ram.Message().find("server.ram"), std::string::npos);
  Reply long_name = Get("/api/grid/server/add", {{"name", std::string(21, 'a')},
                                                 {"image", "debian-12-amd64"},
                                                 {"server.ram", "512MB"},
                                                 {"ip", ip}});
  EXPECT_EQ(long_name.status, 400u);
  Reply foreign_ip = Get("/api/grid/server/add", {{"name", "x"},
                                                  {"image", "debian-12-amd64"},
                                                  {"server.ram", "512MB"},
                                                  {"ip", "203.0.113.9"}});
  EXPECT_EQ(foreign_ip.status, 400u);
  // None of them left a server or a job behind.
  EXPECT_EQ(Get("/api/grid/server/list").body["summary"]["total"], 0);
  EXPECT_EQ(Get("/api/grid/job/list").body["summary"]["total"], 0);
}

TEST_F(ApiServiceTest, RamAliasFromApi10Clients) {
  const std::string ip = FreePublicIp();
  Reply reply = Get("/api/grid/server/add",
                    {{"name", "old"}, {"image", "debian-12-amd64"}, {"ram", "2GB"}, {"ip", ip}});
  ASSERT_EQ(reply.status, 200u) << reply.raw;
  EXPECT_EQ(reply.First()["ram"]["name"], "2GB");
}

// -------------------------------------------------------------------------------- passwords

TEST_F(ApiServiceTest, PasswordListServerIdMatchesServerList) {
  ASSERT_EQ(AddServer("web01", FreePublicIp()).status, 200u);
  ASSERT_EQ(AddServer("web02", FreePublicIp()).status, 200u);
  Reply servers = Get("/api/grid/server/list");
  Reply passwords = Get("/api/support/password/list");
  ASSERT_EQ(passwords.status, 200u) << passwords.raw;
  ASSERT_EQ(passwords.body["list"].size(), 2u);
  std::set<int64_t> server_ids;
  for (const auto& server : servers.body["list"]) server_ids.insert(server["id"].get<int64_t>());
  std::set<int64_t> password_server_ids;
  for (const auto& password : passwords.body["list"]) {
    EXPECT_EQ(password["object"], "password");
    EXPECT_EQ(password["applicationtype"], "os");
    EXPECT_EQ(password["username"], "root");
    EXPECT_GE(password["password"].get<std::string>().size(), 8u);
    // libcloud matches the raw JSON values: an integer here, an integer in server/list.
    ASSERT_TRUE(password["server"]["id"].is_number_integer()) << password.dump();
    password_server_ids.insert(password["server"]["id"].get<int64_t>());
  }
  EXPECT_EQ(password_server_ids, server_ids);
  for (const auto& server : servers.body["list"]) {
    bool found = false;
    for (const auto& password : passwords.body["list"]) {
      found = found || password["server"]["id"] == server["id"];
    }
    EXPECT_TRUE(found) << server.dump();
  }
}

TEST_F(ApiServiceTest, PasswordGetAliasesAnswerAlike) {
  ASSERT_EQ(AddServer("web01", FreePublicIp()).status, 200u);
  Reply listed = Get("/api/support/password/list");
  ASSERT_EQ(listed.body["list"].size(), 1u);
  const std::string id = std::to_string(listed.First()["id"].get<int64_t>());

  Reply canonical = Get("/api/support/password/get", {{"id", id}});
  ASSERT_EQ(canonical.status, 200u) << canonical.raw;
  EXPECT_EQ(canonical.body["method"], "/support/password/get");
  EXPECT_EQ(canonical.First(), listed.First());
  for (const char* alias : {"/api/grid/password/get", "/api/support/grid/password/get"}) {
    Reply reply = Get(alias, {{"id", id}});
    EXPECT_EQ(reply.status, 200u) << alias;
    EXPECT_EQ(reply.raw, canonical.raw) << alias;
  }
  Reply by_password = Get("/api/support/password/get", {{"password", id}});
  EXPECT_EQ(by_password.raw, canonical.raw);
  Reply missing = Get("/api/grid/password/get", {{"id", "999999"}});
  EXPECT_EQ(missing.status, 400u);
  EXPECT_EQ(missing.body["method"], "/support/password/get");
}

// --------------------------------------------------------------------- in-memory database

// Database(":memory:") is documented as a private in-memory database for tests and tools, and
// ApplySeeds is how every gridd database gets its datacenters, pools and images. ApplySeeds must
// not read the catalogue (a Database::Read) inside its own Database::Write: on ":memory:" Read
// falls back to Write, which would lock the non-recursive writer mutex the thread already holds.
// Runs on its own thread so a hang fails this test instead of stalling the suite; the objects
// are leaked when it hangs.
TEST(InMemorySeedTest, ApplySeedsFinishesOnAnInMemoryDatabase) {
  struct Stack {
    ManualClock clock{kStartMs};
    SecretBox box{TestKey()};
    store::Database db{":memory:"};
    domain::Catalog catalog{db};
    domain::AccountService accounts{db, catalog, clock, box, 4};
  };
  const Config& config = TestConfig();
  ASSERT_FALSE(config.ip_pools.empty());
  auto* stack = new Stack;
  std::promise<void> promise;
  std::future<void> done = promise.get_future();
  std::thread([stack, &config, promise = std::move(promise)]() mutable {
    try {
      stack->accounts.ApplySeeds(config);
      promise.set_value();
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
  }).detach();
  if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    FAIL() << "AccountService::ApplySeeds on Database(\":memory:\") did not finish in 10 s "
              "(self-deadlock on the writer mutex)";
  }
  EXPECT_NO_THROW(done.get());
  EXPECT_EQ(stack->catalog.Datacenters().size(), config.datacenters.size());
  delete stack;
}

// docs/api.md documents exactly the routed methods: a "## group.object.verb" heading for each,
// followed by a line with its path, the version it needs and the roles that may call it, all
// as the route table says. Alias paths are named in their method's section.
TEST_F(ApiServiceTest, TheApiReferenceDocumentsEveryRouteAsRouted) {
  std::ifstream in(gridd::testing::SourceDir() / "docs" / "api.md");
  ASSERT_TRUE(in) << "docs/api.md is missing";
  struct Documented {
    std::string path;
    std::string since;
    std::string roles;
    std::string section;
  };
  std::map<std::string, Documented> documented;  // by method path, "/grid/server/list"
  std::string current;
  bool in_methods = false;
  for (std::string line; std::getline(in, line);) {
    // Method sections are the "## " headings of the "# Methods" part, up to the next part.
    if (line.rfind("# ", 0) == 0) in_methods = line == "# Methods";
    if (!in_methods) continue;
    if (line.rfind("## ", 0) == 0) {
      current = "/" + line.substr(3);
      std::replace(current.begin(), current.end(), '.', '/');
      EXPECT_FALSE(documented.count(current)) << line << " is documented twice";
      documented[current] = {};
      continue;
    }
    if (current.empty()) continue;
    Documented& doc = documented[current];
    doc.section += line + "\n";
    const std::string since_mark = " · since ", roles_mark = " · roles: ";
    const auto since_at = line.find(since_mark);
    const auto roles_at = line.find(roles_mark);
    if (doc.path.empty() && line.rfind("`/api/", 0) == 0 && since_at != std::string::npos &&
        roles_at != std::string::npos) {
      doc.path = line.substr(1, line.find('`', 1) - 1);
      doc.since =
          line.substr(since_at + since_mark.size(), roles_at - since_at - since_mark.size());
      doc.roles = line.substr(roles_at + roles_mark.size());
    }
  }
  ASSERT_FALSE(documented.empty()) << "no method sections under '# Methods'";

  const std::map<unsigned, const char*> role_names = {{kSuper, "Super User"},
                                                      {kSystem, "System User"},
                                                      {kBilling, "Billing User"},
                                                      {kReadOnly, "Read Only User"}};
  std::set<std::string> routed;
  for (const auto& [path, route] : api_.routes()) {
    routed.insert(route.method);
    auto it = documented.find(route.method);
    if (it == documented.end()) {
      ADD_FAILURE() << route.method << " is routed but not documented in docs/api.md";
      continue;
    }
    const Documented& doc = it->second;
    if (path != doc.path) {
      EXPECT_NE(doc.section.find("`" + path + "`"), std::string::npos)
          << "the alias path " << path << " is not named in the section of " << route.method;
      continue;
    }
    char since[8];
    std::snprintf(since, sizeof(since), "%.1f", route.min_version);
    EXPECT_EQ(doc.since, since) << route.method;
    std::string roles;
    for (const auto& [mask, name] : role_names) {
      if (route.roles & mask) roles += std::string(roles.empty() ? "" : ", ") + name;
    }
    EXPECT_EQ(doc.roles, roles) << route.method;
  }
  for (const auto& [method, doc] : documented) {
    EXPECT_TRUE(routed.count(method)) << method << " is documented but not routed";
    EXPECT_FALSE(doc.path.empty()) << method << " has no path · since · roles line";
  }
}

// docs/openapi.yaml describes exactly the routed paths (aliases included), and each method's
// parameters there are the ones docs/api.md's table lists for it.
TEST_F(ApiServiceTest, TheOpenApiDescriptionCoversEveryRouteWithApiMdsParameters) {
  // Parameter names per method in api.md's tables ("| `a`, `b` | type | ...").
  std::map<std::string, std::set<std::string>> api_md;
  {
    std::ifstream in(gridd::testing::SourceDir() / "docs" / "api.md");
    ASSERT_TRUE(in) << "docs/api.md is missing";
    std::string method;
    bool in_methods = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("# ", 0) == 0) in_methods = line == "# Methods";
      if (!in_methods) continue;
      if (line.rfind("## ", 0) == 0) {
        method = "/" + line.substr(3);
        std::replace(method.begin(), method.end(), '.', '/');
        api_md[method];
      } else if (!method.empty() && line.rfind("| `", 0) == 0) {
        const std::string names = line.substr(1, line.find('|', 1) - 1);
        for (std::size_t at = names.find('`'); at != std::string::npos;) {
          const std::size_t end = names.find('`', at + 1);
          api_md[method].insert(names.substr(at + 1, end - at - 1));
          at = names.find('`', end + 1);
        }
      }
    }
  }
  // Paths, and the parameter names of each path's get operation, from the YAML's fixed layout:
  // paths at two spaces, "- name:" entries under "parameters:".
  std::ifstream in(gridd::testing::SourceDir() / "docs" / "openapi.yaml");
  ASSERT_TRUE(in) << "docs/openapi.yaml is missing";
  std::map<std::string, std::set<std::string>> described;
  std::string first_line;
  std::getline(in, first_line);
  bool in_paths = false;
  bool openapi_31 = false;
  std::string path, verb;
  for (std::string line = first_line; in; std::getline(in, line)) {
    if (line == "openapi: 3.1.0") openapi_31 = true;
    if (!line.empty() && line[0] != ' ' && line[0] != '#') in_paths = line == "paths:";
    if (!in_paths) continue;
    if (line.size() > 3 && line.rfind("  /", 0) == 0 && line.back() == ':') {
      path = line.substr(2, line.size() - 3);
      EXPECT_FALSE(described.count(path)) << path << " is described twice";
      described[path];
    } else if (line.rfind("    ", 0) == 0 && line[4] != ' ') {
      verb = line.substr(4, line.find(':') - 4);
    } else if (verb == "get" && line.rfind("        - name: \"", 0) == 0) {
      const std::size_t start = line.find('"') + 1;
      described[path].insert(line.substr(start, line.rfind('"') - start));
    }
  }
  EXPECT_TRUE(openapi_31) << "docs/openapi.yaml does not declare openapi: 3.1.0";
  ASSERT_FALSE(described.empty()) << "no paths in docs/openapi.yaml";

  std::set<std::string> routed;
  for (const auto& [route_path, route] : api_.routes()) {
    routed.insert(route_path);
    auto it = described.find(route_path);
    if (it == described.end()) {
      ADD_FAILURE() << route_path << " is routed but not described in docs/openapi.yaml";
      continue;
    }
    std::set<std::string> expected = api_md[route.method];
    for (const char* common : {"api_key", "sig", "v", "format"}) expected.erase(common);
    EXPECT_EQ(it->second, expected) << route_path << ": docs/openapi.yaml and docs/api.md list "
                                    << "different parameters for " << route.method;
  }
  for (const auto& [described_path, params] : described) {
    EXPECT_TRUE(routed.count(described_path))
        << described_path << " is described in docs/openapi.yaml but not routed";
  }
}

// ------------------------------------------------------------------- versions (spec §7, §8)

// A signed GET at API version `v`.
#define GET_AT(v, path, ...) GetRaw(path, Auth(super_) + "&v=" v "&" + Query(Pairs __VA_ARGS__))

TEST_F(ApiServiceTest, DatacenterParametersCountFromVersion15) {
  // Before 1.5 a datacenter is a parameter the version does not know: ignored, like any other.
  for (const char* path : {"/api/grid/server/list", "/api/grid/ip/list", "/api/grid/image/list",
                           "/api/grid/job/list", "/api/support/password/list"}) {
    SCOPED_TRACE(path);
    Reply old = GET_AT("1.4", path, {{"datacenter", "Atlantis"}});
    EXPECT_EQ(old.status, 200u) << old.raw;
    Reply current = GET_AT("1.5", path, {{"datacenter", "Atlantis"}});
    EXPECT_EQ(current.status, 400u) << current.raw;
    EXPECT_NE(current.Message().find("datacenter"), std::string::npos) << current.raw;
  }
  // The lookups are not gated: salt asks for ip.datacenter with v=1.0.
  Reply salt = GET_AT("1.0", "/api/common/lookup/list", {{"lookup", "ip.datacenter"}});
  EXPECT_EQ(salt.status, 200u) << salt.raw;
  EXPECT_EQ(salt.First()["name"], "US-West-1");
}

TEST_F(ApiServiceTest, IpFiltersCountFromVersion11) {
  AddServer("web1", FreePublicIp());
  Reply old = GET_AT("1.0", "/api/grid/ip/list", {{"ip.state", "Assigned"}});
  EXPECT_EQ(old.body["list"].size(), static_cast<size_t>(IpCount(true) + IpCount(false)));
  Reply current = GET_AT("1.1", "/api/grid/ip/list", {{"ip.state", "Assigned"}});
  EXPECT_EQ(current.body["list"].size(), 1u) << current.raw;
}

TEST_F(ApiServiceTest, ImageFiltersCountFromVersion12) {
  const size_t all = Get("/api/grid/image/list").body["list"].size();
  ASSERT_GT(all, 0u);
  for (const Pairs& filter :
       {Pairs{{"isPublic", "false"}}, Pairs{{"state", "Trash"}}, Pairs{{"image.state", "Trash"}}}) {
    Reply old = GetRaw("/api/grid/image/list", Auth(super_) + "&v=1.1&" + Query(filter));
    EXPECT_EQ(old.body["list"].size(), all) << filter[0].first;
    Reply current = GetRaw("/api/grid/image/list", Auth(super_) + "&v=1.2&" + Query(filter));
    EXPECT_TRUE(current.body["list"].empty()) << filter[0].first << ": " << current.raw;
  }
}

TEST_F(ApiServiceTest, MethodsAnswerFromTheVersionThatIntroducedThem) {
  const std::vector<std::pair<std::string, std::string>> introduced = {
      {"/api/grid/image/save", "1.2"},    {"/api/grid/image/get", "1.3"},
      {"/api/grid/image/edit", "1.3"},    {"/api/grid/image/delete", "1.3"},
      {"/api/grid/image/restore", "1.3"}, {"/api/grid/loadbalancer/edit", "1.4"},
      {"/api/grid/server/edit", "1.6"},
  };
  const char* versions[] = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9"};
  for (const auto& [path, since] : introduced) {
    for (const char* v : versions) {
      Reply reply = GetRaw(path, Auth(super_) + "&v=" + v);
      const bool known = std::string(v) >= since;
      if (known) {
        EXPECT_EQ(reply.Message().find("needs API version"), std::string::npos)
            << path << " v=" << v << ": " << reply.raw;
      } else {
        EXPECT_EQ(reply.status, 400u) << path << " v=" << v;
        EXPECT_NE(reply.Message().find("needs API version " + since), std::string::npos)
            << path << " v=" << v << ": " << reply.raw;
      }
    }
  }
  for (const char* v : versions) {
    EXPECT_EQ(GetRaw("/api/myaccount/billing/get", Auth(super_) + "&v=" + v).status, 200u) << v;
  }
}

TEST_F(ApiServiceTest, SavingStatesAreNamedAsTheCallersVersionKnowsThem) {
  const std::string ip = FreePublicIp();
  AddServer("web1", ip);
  FinishPendingJobs(domain::server_state::kOn);
  const std::string id =
      std::to_string(Get("/api/grid/server/get", {{"name", "web1"}}).First()["id"].get<int64_t>());
  Reply saved = Get("/api/grid/image/save", {{"server", id}, {"friendlyName", "golden"}});
  ASSERT_EQ(saved.status, 200u) << saved.raw;
  EXPECT_EQ(saved.First()["state"]["name"], "Saving");
  auto state_at = [&](const char* v) {
    Reply reply = GetRaw("/api/grid/server/get", Auth(super_) + "&v=" + v + "&id=" + id);
    return reply.First()["state"]["name"].get<std::string>();
  };
  // A running server is stopped for the copy: Saving at every version.
  for (const char* v : {"1.0", "1.7", "1.8", "1.9"}) EXPECT_EQ(state_at(v), "Saving") << v;
  db_.Write([&](store::Connection& c) {
    store::servers::SetState(c, std::stoll(id), domain::server_state::kOffSaving, clock_.NowMs());
  });
  EXPECT_EQ(state_at("1.8"), "Saving");
  EXPECT_EQ(state_at("1.9"), "Off/Saving");
  db_.Write([&](store::Connection& c) {
    store::servers::SetState(c, std::stoll(id), domain::server_state::kOnSaving, clock_.NowMs());
  });
  EXPECT_EQ(state_at("1.7"), "Saving");
  EXPECT_EQ(state_at("1.8"), "On/Saving");
  db_.Write([&](store::Connection& c) {
    store::servers::SetState(c, std::stoll(id), domain::server_state::kOffSaving, clock_.NowMs());
  });
  // The password list nests the same server, under the same rule.
  Reply passwords = GetRaw("/api/support/password/list", Auth(super_) + "&v=1.8");
  EXPECT_EQ(passwords.First()["server"]["state"]["name"], "Saving") << passwords.raw;
}

TEST_F(ApiServiceTest, BillingSummaryGainsTimestampsIn11AndProjectionsIn13) {
  Reply v10 = GetRaw("/api/myaccount/billing/get", Auth(super_) + "&v=1.0");
  ASSERT_EQ(v10.status, 200u) << v10.raw;
  const json& old = v10.First();
  EXPECT_EQ(old["object"], "billingsummary");
  for (const char* key : {"startDate", "endDate", "memoryAllotment", "memoryInUse", "memoryAccrued",
                          "memoryOverage", "memoryOverageCharge", "transferAllotment",
                          "transferAccrued", "transferOverage", "transferOverageCharge"}) {
    EXPECT_TRUE(old.contains(key)) << key;
  }
  EXPECT_FALSE(old.contains("startTimestamp"));
  EXPECT_FALSE(old.contains("memoryProjectedUsage"));
  const json v11 = GetRaw("/api/myaccount/billing/get", Auth(super_) + "&v=1.1").First();
  EXPECT_TRUE(v11["startTimestamp"].is_number_integer());
  EXPECT_LT(v11["startTimestamp"].get<int64_t>(), kStartMs);
  EXPECT_GT(v11["endTimestamp"].get<int64_t>(), kStartMs);
  EXPECT_FALSE(v11.contains("memoryProjectedUsage"));
  const json v13 = GetRaw("/api/myaccount/billing/get", Auth(super_) + "&v=1.3").First();
  for (const char* key : {"memoryProjectedUsage", "memoryProjectedOverageCharge",
                          "memoryProjectedTotalCharge", "transferProjectedUsage",
                          "transferProjectedOverageCharge", "transferProjectedTotalCharge"}) {
    EXPECT_TRUE(v13.contains(key)) << key;
  }
  // kStartMs is in November 2023; periods start on the 1st by default.
  EXPECT_EQ(v13["startDate"], "Wed Nov 01 00:00:00 UTC 2023");
  EXPECT_EQ(v13["endDate"], "Fri Dec 01 00:00:00 UTC 2023");
}

TEST_F(ApiServiceTest, BillingCountsTheAccountsServersAndComesInCsv) {
  AddServer("web1", FreePublicIp());  // 512 MB
  FinishPendingJobs(domain::server_state::kOn);
  clock_.AdvanceMs(10 * 3'600'000);
  const json bill = Get("/api/myaccount/billing/get").First();
  EXPECT_EQ(bill["memoryAccrued"], 5);
  EXPECT_EQ(bill["memoryInUse"], 0.5);
  EXPECT_EQ(bill["transferAccrued"], 0) << "no load balancer, nothing measured";
  HttpResponse csv = api_.Handle(
      HttpRequest{"GET", "/api/myaccount/billing/get?" + Auth(super_) + "&v=1.0&format=csv", "", "",
                  "127.0.0.1"});
  EXPECT_EQ(csv.content_type, "text/csv; charset=UTF-8");
  EXPECT_NE(csv.body.find("# startDate,endDate,memoryAllotment,memoryInUse,memoryAccrued,"
                          "memoryOverage,memoryOverageCharge,transferAllotment,transferAccrued,"
                          "transferOverage,transferOverageCharge"),
            std::string::npos)
      << csv.body;
}

// -------------------------------------------------------------------------- images (§8.9-8.14)

TEST_F(ApiServiceTest, ImageListFiltersAsTheSpecNamesThem) {
  const size_t all = Get("/api/grid/image/list").body["list"].size();
  ASSERT_EQ(all, TestConfig().images.size());
  // type / image.type by name or id, any case; every shipped image is a Web Server.
  for (const Pairs& filter : {Pairs{{"type", "web server"}}, Pairs{{"image.type", "1"}}}) {
    EXPECT_EQ(Get("/api/grid/image/list", filter).body["list"].size(), all) << filter[0].first;
  }
  EXPECT_TRUE(
      Get("/api/grid/image/list", {{"image.type", "Database Server"}}).body["list"].empty());
  EXPECT_EQ(Get("/api/grid/image/list", {{"isPublic", "true"}}).body["list"].size(), all);
  EXPECT_EQ(Get("/api/grid/image/list", {{"state", "Available"}}).body["list"].size(), all);
  // Images are usable in every datacenter; the filter must still name one.
  EXPECT_EQ(Get("/api/grid/image/list", {{"datacenter", "1"}}).body["list"].size(), all);
  EXPECT_EQ(Get("/api/grid/image/list", {{"datacenter", "US-West-1"}}).body["list"].size(), all);
  for (const Pairs& bad : {Pairs{{"datacenter", "Mars-1"}}, Pairs{{"image.state", "Lost"}},
                           Pairs{{"type", "Mainframe"}}, Pairs{{"isPublic", "yes"}}}) {
    Reply reply = Get("/api/grid/image/list", bad);
    EXPECT_EQ(reply.status, 400u) << bad[0].first;
    EXPECT_NE(reply.Message().find(bad[0].first), std::string::npos) << reply.raw;
  }
}

TEST_F(ApiServiceTest, ImageGetBySelectorsAndSavedImagesInEveryFormat) {
  Reply both = Get("/api/grid/image/get", {{"id", "1"}, {"id", "2"}});
  EXPECT_EQ(both.body["list"].size(), 2u);
  EXPECT_EQ(Get("/api/grid/image/get", {{"name", "debian-12-amd64"}}).First()["id"], 1);
  EXPECT_EQ(Get("/api/grid/image/get", {{"image", "Debian 12 (64-bit)"}}).First()["id"], 1);
  EXPECT_EQ(Get("/api/grid/image/get", {{"id", "1"}, {"image", "2"}}).status, 400u);
  EXPECT_NE(Get("/api/grid/image/get", {{"id", "999"}}).Message().find("No object found"),
            std::string::npos);

  AddServer("web1", FreePublicIp());
  FinishPendingJobs(domain::server_state::kOn);
  Reply saved =
      Get("/api/grid/image/save",
          {{"server", "web1"}, {"friendlyName", "a, \"b\" & <c>"}, {"description", "x\ny"}});
  ASSERT_EQ(saved.status, 200u) << saved.raw;
  EXPECT_EQ(saved.body["method"], "/grid/image/save");
  const std::string id = std::to_string(saved.First()["id"].get<int64_t>());
  for (const char* format : {"xml", "csv"}) {
    HttpResponse response = api_.Handle(HttpRequest{
        "GET", "/api/grid/image/get?" + Auth(super_) + "&v=1.9&format=" + format + "&id=" + id, "",
        "", "127.0.0.1"});
    EXPECT_EQ(response.status, 200u) << response.body;
    if (std::string(format) == "xml") {
      EXPECT_NE(response.body.find("<object name=\"serverimage\">"), std::string::npos);
      EXPECT_NE(response.body.find("a, &quot;b&quot; &amp; &lt;c&gt;"), std::string::npos)
          << response.body;
    } else {
      EXPECT_NE(response.body.find("\"a, \"\"b\"\" & <c>\""), std::string::npos) << response.body;
    }
  }
  // Save's parameters: both are required, and the server must be the caller's.
  Reply no_name = Get("/api/grid/image/save", {{"server", "web1"}});
  EXPECT_NE(no_name.Message().find("friendlyName"), std::string::npos) << no_name.raw;
  Reply no_server = Get("/api/grid/image/save", {{"friendlyName", "x"}});
  EXPECT_NE(no_server.Message().find("server"), std::string::npos) << no_server.raw;
  Reply edit_bad = Get("/api/grid/image/edit", {{"id", id}, {"isPublic", "sometimes"}});
  EXPECT_NE(edit_bad.Message().find("isPublic"), std::string::npos) << edit_bad.raw;
}

}  // namespace
}  // namespace gridd::api
