#include "gridd/domain/account_service.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "grid_fixture.h"
#include "support/test_paths.h"

namespace gridd::domain {
namespace {

namespace fs = std::filesystem;
using testing::Addresses;
using testing::FixedKey;
using testing::GridFixture;
using testing::SeedConfig;

bool IsLowerHex(const std::string& text) {
  return !text.empty() && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The operator's services on their own database, without the fixture's accounts.
struct Standalone {
  explicit Standalone(const std::string& path = ":memory:")
      : db(path),
        catalog(db),
        clock(1'700'000'000'000),
        box(FixedKey()),
        accounts(db, catalog, clock, box, 4) {}
  store::Database db;
  Catalog catalog;
  ManualClock clock;
  SecretBox box;
  AccountService accounts;
};

Config SeedConfigWithPools() {
  Config config = SeedConfig();
  config.ip_pools = {IpPoolSeed{"US-West-1", true, "192.0.2.0/28", "gridd-public-1"},
                     IpPoolSeed{"US-West-1", false, "198.51.100.0/28", "gridd-private-1"}};
  return config;
}

using AccountServiceTest = GridFixture;

// ------------------------------------------------------------------------------------ accounts
TEST(InitialAccountTest, IsCreatedOnceWithASuperUserKey) {
  Standalone s;
  const auto first = s.accounts.EnsureInitialAccount("default");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->account, "default");
  EXPECT_EQ(first->role, Role::kSuperUser);
  EXPECT_EQ(first->api_key.size(), 16u);
  EXPECT_TRUE(IsLowerHex(first->api_key)) << first->api_key;
  EXPECT_EQ(first->shared_secret.size(), 32u);
  EXPECT_TRUE(IsLowerHex(first->shared_secret)) << first->shared_secret;

  const auto key = s.accounts.FindApiKey(first->api_key);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->shared_secret, first->shared_secret);
  EXPECT_EQ(key->account_name, "default");
  EXPECT_EQ(key->role, Role::kSuperUser);

  EXPECT_FALSE(s.accounts.EnsureInitialAccount("default").has_value());
  EXPECT_FALSE(s.accounts.EnsureInitialAccount("other").has_value());
  EXPECT_EQ(s.accounts.ListAccounts().size(), 1u);
  EXPECT_EQ(s.accounts.ListApiKeys(std::nullopt).size(), 1u);
}

TEST_F(AccountServiceTest, NoInitialAccountWhenAccountsExist) {
  EXPECT_FALSE(accounts_.EnsureInitialAccount("default").has_value());
  EXPECT_EQ(accounts_.ListAccounts().size(), 2u);
}

TEST_F(AccountServiceTest, AccountNamesAreUniqueAndValidated) {
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateAccount("alice"); }),
            "account 'alice' already exists");
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateAccount("ALICE"); }),
            "account 'ALICE' already exists");
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateAccount(""); }),
            "account name must be 1-64 characters");
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateAccount(std::string(65, 'a')); }),
            "account name must be 1-64 characters");
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateAccount("a b"); }),
            "account name may only contain letters, digits and - _ . @");
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateAccount("42"); }),
            "account name must not be a number");
  EXPECT_EQ(accounts_.ListAccounts().size(), 2u);
  EXPECT_EQ(accounts_.CreateAccount("ops@example.org").name, "ops@example.org");
  EXPECT_EQ(accounts_.CreateAccount(std::string(64, 'z')).name.size(), 64u);
}

TEST_F(AccountServiceTest, FindAccountByIdOrName) {
  EXPECT_EQ(accounts_.FindAccount(std::to_string(bob_.account_id)).name, "bob");
  EXPECT_EQ(accounts_.FindAccount("Bob").id, bob_.account_id);
  EXPECT_EQ(IllegalArgument([&] { accounts_.FindAccount("zed"); }), "no account 'zed'");
  EXPECT_EQ(IllegalArgument([&] { accounts_.FindAccount("999"); }), "no account '999'");
}

TEST_F(AccountServiceTest, ANewAccountGetsABlockOfEverySharedPool) {
  const Account carol = accounts_.CreateAccount("carol");
  const Caller caller = CallerFor(carol);
  EXPECT_EQ(Addresses(grid_.ListIps(caller, {})),
            (std::vector<std::string>{"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13",
                                      "198.51.100.10", "198.51.100.11", "198.51.100.12",
                                      "198.51.100.13"}));
  // The /28 pools have 13 hosts: the fourth account only gets what is left.
  const Caller dave = CallerFor(accounts_.CreateAccount("dave"));
  EXPECT_EQ(Addresses(grid_.ListIps(dave, {})),
            (std::vector<std::string>{"192.0.2.14", "198.51.100.14"}));
  const Caller erin = CallerFor(accounts_.CreateAccount("erin"));
  EXPECT_TRUE(grid_.ListIps(erin, {}).empty());
}

// ------------------------------------------------------------------------------------ api keys
TEST_F(AccountServiceTest, ApiKeysCarryTheirRole) {
  struct Case {
    const char* text;
    Role role;
  };
  for (const Case& c :
       {Case{"Super User", Role::kSuperUser}, Case{"system", Role::kSystemUser},
        Case{"Billing User", Role::kBillingUser}, Case{"read-only", Role::kReadOnlyUser},
        Case{"Read Only User", Role::kReadOnlyUser}}) {
    const NewApiKey created = accounts_.CreateApiKey("alice", c.text);
    EXPECT_EQ(created.role, c.role) << c.text;
    EXPECT_EQ(created.account, "alice");
    const auto found = accounts_.FindApiKey(created.api_key);
    ASSERT_TRUE(found.has_value()) << c.text;
    EXPECT_EQ(found->role, c.role) << c.text;
    EXPECT_EQ(found->account_id, alice_.account_id);
    EXPECT_EQ(found->shared_secret, created.shared_secret);
  }
  EXPECT_EQ(accounts_.ListApiKeys(std::string("alice")).size(), 6u);
  EXPECT_EQ(accounts_.ListApiKeys(std::string("bob")).size(), 1u);
}

TEST_F(AccountServiceTest, BadRolesAndAccountsCreateNoKey) {
  const size_t before = accounts_.ListApiKeys(std::nullopt).size();
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateApiKey("alice", "admin"); }),
            "unknown role 'admin'; use Super User, System User, Billing User or Read Only User");
  EXPECT_EQ(IllegalArgument([&] { accounts_.CreateApiKey("zed", "super"); }), "no account 'zed'");
  EXPECT_EQ(accounts_.ListApiKeys(std::nullopt).size(), before);
}

TEST_F(AccountServiceTest, ARevokedKeyIsNoLongerFound) {
  const NewApiKey key = accounts_.CreateApiKey("bob", "system");
  ASSERT_TRUE(accounts_.FindApiKey(key.api_key).has_value());  // now cached
  accounts_.RevokeApiKey(key.api_key);
  EXPECT_FALSE(accounts_.FindApiKey(key.api_key).has_value());
  EXPECT_FALSE(accounts_.FindApiKey(key.api_key).has_value());

  bool listed_revoked = false;
  for (const auto& listed : accounts_.ListApiKeys(std::string("bob"))) {
    if (listed.key == key.api_key) listed_revoked = listed.revoked;
  }
  EXPECT_TRUE(listed_revoked);
  EXPECT_EQ(IllegalArgument([&] { accounts_.RevokeApiKey(key.api_key); }),
            "no active API key '" + key.api_key + "'");
  EXPECT_EQ(IllegalArgument([&] { accounts_.RevokeApiKey("0000000000000000"); }),
            "no active API key '0000000000000000'");
  // Bob's other key still works.
  EXPECT_TRUE(accounts_.FindApiKey(bob_.api_key).has_value());
  EXPECT_FALSE(accounts_.FindApiKey("").has_value());
  EXPECT_FALSE(accounts_.FindApiKey("ffffffffffffffff").has_value());
}

TEST_F(AccountServiceTest, RotationKeepsTheOldSecretForItsGracePeriodOnly) {
  const NewApiKey key = accounts_.CreateApiKey("bob", "system");
  ASSERT_TRUE(accounts_.FindApiKey(key.api_key).has_value());  // now cached
  const RotatedApiKey rotated = accounts_.RotateApiKey(key.api_key, 3600);
  EXPECT_EQ(rotated.key.api_key, key.api_key);
  EXPECT_EQ(rotated.key.role, Role::kSystemUser);
  EXPECT_TRUE(IsLowerHex(rotated.key.shared_secret));
  EXPECT_NE(rotated.key.shared_secret, key.shared_secret);
  EXPECT_EQ(rotated.previous_secret_until_ms, clock_.NowMs() + 3'600'000);

  // The cached record is replaced: the next request sees both secrets.
  auto found = accounts_.FindApiKey(key.api_key);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->shared_secret, rotated.key.shared_secret);
  EXPECT_EQ(found->previous_secret, key.shared_secret);
  EXPECT_EQ(found->previous_secret_until_ms, rotated.previous_secret_until_ms);
  auto listed = accounts_.ListApiKeys(std::string("bob"));
  auto it = std::find_if(listed.begin(), listed.end(),
                         [&](const ApiKey& k) { return k.key == key.api_key; });
  ASSERT_NE(it, listed.end());
  EXPECT_EQ(it->previous_secret_until_ms, rotated.previous_secret_until_ms);
  clock_.AdvanceMs(3'600'000);
  listed = accounts_.ListApiKeys(std::string("bob"));
  it = std::find_if(listed.begin(), listed.end(),
                    [&](const ApiKey& k) { return k.key == key.api_key; });
  EXPECT_TRUE(it->previous_secret.empty()) << "an expired secret is not listed";

  // A second rotation replaces the secret kept from the first.
  const RotatedApiKey again = accounts_.RotateApiKey(key.api_key, 0);
  found = accounts_.FindApiKey(key.api_key);
  EXPECT_EQ(found->shared_secret, again.key.shared_secret);
  EXPECT_EQ(found->previous_secret, rotated.key.shared_secret);
  EXPECT_EQ(found->previous_secret_until_ms, clock_.NowMs());

  accounts_.RevokeApiKey(key.api_key);
  EXPECT_EQ(IllegalArgument([&] { accounts_.RotateApiKey(key.api_key, 60); }),
            "no active API key '" + key.api_key + "'");
  EXPECT_EQ(IllegalArgument([&] { accounts_.RotateApiKey("0000000000000000", 60); }),
            "no active API key '0000000000000000'");
  EXPECT_EQ(IllegalArgument([&] { accounts_.RotateApiKey(bob_.api_key, -1); }),
            "grace period must not be negative");
}

TEST_F(AccountServiceTest, SigningPolicyIsStoredPerKey) {
  const NewApiKey key = accounts_.CreateApiKey("bob", "system");
  EXPECT_EQ(accounts_.FindApiKey(key.api_key)->signing, SigningPolicy::kAny);
  EXPECT_EQ(accounts_.SetApiKeySigning(key.api_key, "hmac-only").signing, SigningPolicy::kHmacOnly);
  EXPECT_EQ(accounts_.FindApiKey(key.api_key)->signing, SigningPolicy::kHmacOnly);
  EXPECT_EQ(accounts_.FindApiKey(bob_.api_key)->signing, SigningPolicy::kAny);
  EXPECT_EQ(accounts_.SetApiKeySigning(key.api_key, "md5+hmac").signing, SigningPolicy::kAny);
  EXPECT_EQ(accounts_.FindApiKey(key.api_key)->signing, SigningPolicy::kAny);
  EXPECT_EQ(IllegalArgument([&] { accounts_.SetApiKeySigning(key.api_key, "md5-only"); }),
            "unknown signing policy 'md5-only'; use md5+hmac or hmac-only");
  EXPECT_EQ(accounts_.FindApiKey(key.api_key)->signing, SigningPolicy::kAny);
  accounts_.RevokeApiKey(key.api_key);
  EXPECT_EQ(IllegalArgument([&] { accounts_.SetApiKeySigning(key.api_key, "hmac-only"); }),
            "no active API key '" + key.api_key + "'");
}

// ------------------------------------------------------------------------------------ ip pools
TEST_F(AccountServiceTest, ANewSharedPoolGivesEveryAccountItsBlock) {
  const IpPoolInfo info =
      accounts_.AddIpPool({"US-West-1", "public", "192.0.2.16/28", std::nullopt, std::nullopt});
  EXPECT_EQ(info.pool.cidr, "192.0.2.16/28");
  EXPECT_EQ(info.pool.subnet, "192.0.2.16/255.255.255.240");
  EXPECT_EQ(info.pool.network, "gridd-public-1");
  EXPECT_EQ(info.datacenter, "US-West-1");
  EXPECT_FALSE(info.account.has_value());
  EXPECT_EQ(info.total, 13);
  EXPECT_EQ(info.assigned, 0);

  IpFilter public_only;
  public_only.type = ip_type::kPublic;
  EXPECT_EQ(Addresses(grid_.ListIps(alice_, public_only)),
            (std::vector<std::string>{"192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5",
                                      "192.0.2.18", "192.0.2.19", "192.0.2.20", "192.0.2.21"}));
  const auto bobs = Addresses(grid_.ListIps(bob_, public_only));
  ASSERT_EQ(bobs.size(), 8u);
  EXPECT_EQ(bobs[4], "192.0.2.22");
  EXPECT_EQ(bobs[7], "192.0.2.25");
  // The new addresses are usable right away.
  EXPECT_EQ(Add(alice_, "web1", "192.0.2.18").ip.address, "192.0.2.18");
}

TEST_F(AccountServiceTest, OverlappingOrDuplicatePoolsAreRejected) {
  auto add = [&](const std::string& cidr) {
    accounts_.AddIpPool({"US-West-1", "public", cidr, std::nullopt, std::nullopt});
  };
  EXPECT_EQ(IllegalArgument([&] { add("192.0.2.0/28"); }), "IP pool 192.0.2.0/28 already exists");
  EXPECT_EQ(IllegalArgument([&] { add("192.0.2.8/29"); }),
            "IP pool 192.0.2.8/29 overlaps 192.0.2.0/28");
  EXPECT_EQ(IllegalArgument([&] { add("192.0.0.0/16"); }),
            "IP pool 192.0.0.0/16 overlaps 192.0.2.0/28");
  EXPECT_EQ(IllegalArgument([&] { add("198.51.100.0/24"); }),
            "IP pool 198.51.100.0/24 overlaps 198.51.100.0/28");
  EXPECT_EQ(accounts_.ListIpPools().size(), 2u);
  EXPECT_EQ(Count("SELECT count(*) FROM ips"), 26);
  // The neighbour just after the pool is fine.
  EXPECT_NO_THROW(add("192.0.2.16/29"));
  EXPECT_EQ(accounts_.ListIpPools().size(), 3u);
}

TEST_F(AccountServiceTest, BadPoolRequestsNameTheProblem) {
  const std::string dc_error = IllegalArgument([&] {
    accounts_.AddIpPool({"Mars-1", "public", "203.0.113.0/28", std::nullopt, std::nullopt});
  });
  EXPECT_NE(dc_error.find("'Mars-1' for datacenter"), std::string::npos) << dc_error;
  EXPECT_EQ(IllegalArgument([&] {
              accounts_.AddIpPool({"1", "shared", "203.0.113.0/28", std::nullopt, std::nullopt});
            }),
            "type must be public or private");
  EXPECT_EQ(IllegalArgument([&] {
              accounts_.AddIpPool({"1", "public", "203.0.113.1/28", std::nullopt, std::nullopt});
            }),
            "'203.0.113.1/28' has host bits set; the network is 203.0.113.0/28");
  EXPECT_EQ(IllegalArgument([&] {
              accounts_.AddIpPool({"1", "public", "203.0.113.0/28", "zed", std::nullopt});
            }),
            "no account 'zed'");
  EXPECT_EQ(accounts_.ListIpPools().size(), 2u);
}

TEST_F(AccountServiceTest, ADedicatedPoolBelongsToOneAccount) {
  const IpPoolInfo info =
      accounts_.AddIpPool({"1", "public", "203.0.113.0/29", "bob", std::string("bob-net")});
  EXPECT_EQ(info.account, "bob");
  EXPECT_EQ(info.pool.network, "bob-net");
  EXPECT_EQ(info.total, 5);

  IpFilter public_only;
  public_only.type = ip_type::kPublic;
  const auto bobs = Addresses(grid_.ListIps(bob_, public_only));
  EXPECT_EQ(bobs.size(), 4u + 5u);
  EXPECT_EQ(bobs.back(), "203.0.113.6");
  EXPECT_EQ(grid_.ListIps(alice_, public_only).size(), 4u);
  // New accounts get blocks of the shared pools only.
  const Caller carol = CallerFor(accounts_.CreateAccount("carol"));
  for (const auto& ip : grid_.ListIps(carol, {})) {
    EXPECT_EQ(ip.address.rfind("203.0.113.", 0), std::string::npos) << ip.address;
  }
}

TEST_F(AccountServiceTest, ListIpPoolsReportsUsage) {
  Add(alice_, "web1", "192.0.2.2");
  Add(bob_, "web1", "192.0.2.6");
  const auto pools = accounts_.ListIpPools();
  ASSERT_EQ(pools.size(), 2u);
  EXPECT_EQ(pools[0].pool.cidr, "192.0.2.0/28");
  EXPECT_TRUE(pools[0].pool.is_public);
  EXPECT_EQ(pools[0].datacenter, "US-West-1");
  EXPECT_EQ(pools[0].total, 13);
  EXPECT_EQ(pools[0].assigned, 2);
  EXPECT_EQ(pools[1].pool.cidr, "198.51.100.0/28");
  EXPECT_FALSE(pools[1].pool.is_public);
  EXPECT_EQ(pools[1].pool.network, "gridd-private-1");
  EXPECT_EQ(pools[1].assigned, 0);
}

// -------------------------------------------------------------------------------------- seeds
TEST(ApplySeedsTest, IsIdempotentAndKeepsOwnership) {
  Standalone s((gridd::testing::ScratchDir("gridd-seeds-test") / "gridd.db").string());
  s.accounts.ApplySeeds(SeedConfigWithPools());
  const Account alice = s.accounts.CreateAccount("alice");
  s.accounts.ApplySeeds(SeedConfigWithPools());
  s.accounts.ApplySeeds(SeedConfigWithPools());

  const auto pools = s.accounts.ListIpPools();
  ASSERT_EQ(pools.size(), 2u);
  EXPECT_EQ(pools[0].total, 13);
  EXPECT_EQ(pools[0].pool.network, "gridd-public-1");
  const auto images = s.accounts.ListImages();
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].name, "debian-12-amd64");
  EXPECT_EQ(images[0].location, "gridd/debian-12-amd64.qcow2");
  EXPECT_EQ(images[0].storage_pool, "gridd");
  EXPECT_EQ(images[1].type, 2);
  const int64_t owned = s.db.Read([&](store::Connection& c) {
    return store::ip_pools::CountOwned(c, pools[0].pool.id, alice.id);
  });
  EXPECT_EQ(owned, 4);
}

TEST(ApplySeedsTest, UpdatesImagesAndDatacentersInPlace) {
  Standalone s;
  s.accounts.ApplySeeds(SeedConfig());
  const int64_t debian_id = s.accounts.ListImages()[0].id;
  Config changed = SeedConfig();
  changed.datacenters[0].description = "Renamed";
  changed.images[0].friendly_name = "Debian 12.5 (64-bit)";
  s.accounts.ApplySeeds(changed);
  const auto images = s.accounts.ListImages();
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].id, debian_id);
  EXPECT_EQ(images[0].friendly_name, "Debian 12.5 (64-bit)");
  const auto datacenters = s.catalog.Datacenters();
  ASSERT_EQ(datacenters.size(), 1u);
  EXPECT_EQ(datacenters[0].description, "Renamed");
}

TEST(ApplySeedsTest, RejectsAPoolInAnUnknownDatacenter) {
  Standalone s((gridd::testing::ScratchDir("gridd-seeds-test") / "gridd.db").string());
  Config config = SeedConfigWithPools();
  config.ip_pools[1].datacenter = "US-East-9";
  try {
    s.accounts.ApplySeeds(config);
    FAIL() << "a pool in an unknown datacenter was accepted";
  } catch (const ApiError& error) {
    EXPECT_NE(std::string(error.what()).find("'US-East-9' for ippool.datacenter"),
              std::string::npos)
        << error.what();
  }
}

// The database layer documents ":memory:" as a supported mode (one shared connection). Seeding
// IP pools there must not hang: ApplySeeds resolves the pool's datacenter through the Catalog
// (a Database::Read) while it holds Database::Write, and with no reader connections Read is a
// second Write on the same non-recursive mutex.
TEST(ApplySeedsTest, SeedsIpPoolsIntoAnInMemoryDatabase) {
  auto s = std::make_unique<Standalone>();
  auto result = std::make_shared<std::promise<std::string>>();
  std::future<std::string> done = result->get_future();
  Standalone* raw = s.get();
  std::thread([raw, result] {
    try {
      raw->accounts.ApplySeeds(SeedConfigWithPools());
      result->set_value("");
    } catch (const std::exception& error) {
      result->set_value(error.what());
    }
  }).detach();
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    s.release();  // still in use by the hung thread
    FAIL() << "ApplySeeds with IP pools did not return within 5 s on a \":memory:\" database "
              "(nested Database::Read inside Database::Write deadlocks)";
  }
  EXPECT_EQ(done.get(), "");
  EXPECT_EQ(s->accounts.ListIpPools().size(), 2u);
}

// ------------------------------------------------------------------------- initial credentials
TEST(InitialCredentialsTest, AreWrittenPrivatelyAsJson) {
  const fs::path dir = gridd::testing::ScratchDir("gridd-credentials-test");
  const NewApiKey key{"default", "0123456789abcdef", "fedcba9876543210fedcba9876543210",
                      Role::kSuperUser};
  const fs::path path = WriteInitialCredentials(dir, key);
  EXPECT_EQ(path, dir / "initial-credentials.json");
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  std::ifstream in(path);
  const auto json = nlohmann::json::parse(in);
  EXPECT_EQ(json["account"], "default");
  EXPECT_EQ(json["api_key"], "0123456789abcdef");
  EXPECT_EQ(json["shared_secret"], "fedcba9876543210fedcba9876543210");
  EXPECT_FALSE(fs::exists(dir / "initial-credentials.json.tmp"));

  // Written again (a new key) it replaces the old content.
  const NewApiKey second{"default", "aaaaaaaaaaaaaaaa", "b", Role::kSuperUser};
  WriteInitialCredentials(dir, second);
  std::ifstream again(path);
  EXPECT_EQ(nlohmann::json::parse(again)["api_key"], "aaaaaaaaaaaaaaaa");
}

}  // namespace
}  // namespace gridd::domain
