#include "gridd/store/repositories.h"

#include <gtest/gtest.h>

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

namespace gridd::store {
namespace {

namespace job_state = domain::job_state;

constexpr int64_t kNow = 1'700'000'000'000;

std::array<uint8_t, SecretBox::kKeySize> FixedKey() {
  std::array<uint8_t, SecretBox::kKeySize> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  return key;
}

std::vector<int64_t> States(const Job& job) {
  std::vector<int64_t> out;
  for (const auto& entry : job.history) out.push_back(entry.state);
  return out;
}

class RepositoriesTest : public ::testing::Test {
 protected:
  RepositoriesTest() : db_(":memory:"), box_(FixedKey()) {}

  void SetUp() override {
    db_.Write([&](Connection& c) {
      alice_ = accounts::Insert(c, "alice", kNow);
      bob_ = accounts::Insert(c, "bob", kNow);
      datacenters::Upsert(c, Datacenter{1, "US-West-1", "US West 1 Datacenter"});
      datacenters::Upsert(c, Datacenter{2, "US-East-1", "US East 1 Datacenter"});
      Image image;
      image.name = "debian-12";
      image.friendly_name = "Debian 12";
      image.os_id = 10;
      image.location = "gridd/debian.qcow2";
      image.storage_pool = "gridd";
      image.volume = "debian.qcow2";
      image_ = images::UpsertPublic(c, image, kNow);
    });
  }

  // A pool of `hosts` addresses 10.<n>.0.2, 10.<n>.0.3, … with no owner.
  int64_t MakePool(int n, int hosts, bool is_public = true, int64_t datacenter = 1) {
    return db_.Write([&](Connection& c) {
      IpPool pool;
      pool.datacenter_id = datacenter;
      pool.is_public = is_public;
      pool.cidr = "10." + std::to_string(n) + ".0.0/24";
      pool.subnet = "10." + std::to_string(n) + ".0.0/255.255.255.0";
      pool.network = "net-" + std::to_string(n);
      const int64_t id = ip_pools::Insert(c, pool, kNow);
      for (int i = 0; i < hosts; ++i) {
        ip_pools::InsertAddress(c, id, "10." + std::to_string(n) + ".0." + std::to_string(i + 2),
                                std::nullopt);
      }
      return id;
    });
  }

  Ip OwnedIp(int64_t account, const std::string& address) {
    auto ip = db_.Read([&](Connection& c) { return ips::FindByAddress(c, account, address); });
    EXPECT_TRUE(ip.has_value()) << address;
    return ip.value_or(Ip{});
  }

  int64_t MakeServer(int64_t account, int64_t ip_id, const std::string& name) {
    return db_.Write([&](Connection& c) {
      Server server;
      server.account_id = account;
      server.name = name;
      server.image_id = image_;
      server.ip_id = ip_id;
      server.created_ms = server.updated_ms = kNow;
      const int64_t id = servers::Insert(c, server);
      EXPECT_TRUE(ips::Assign(c, ip_id, id));
      return id;
    });
  }

  Job NewJob(int64_t account, int64_t object_id, const std::string& name = "web1") {
    Job job;
    job.account_id = account;
    job.object_type = domain::job_object_type::kVirtualServer;
    job.object_id = object_id;
    job.object_name = name;
    job.command = domain::job_command::kCreateVirtualServer;
    job.owner = "key-" + std::to_string(account) + "@api";
    job.detail["type"] = "virtual_server";
    job.detail["name"] = name;
    job.datacenter_id = 1;
    return job;
  }

  int64_t InsertJob(Job job, int64_t now = kNow) {
    return db_.Write([&](Connection& c) { return jobs::Insert(c, job, now); });
  }

  std::optional<Job> Claim(int64_t now, int64_t lease_ms = 60'000) {
    return db_.Write([&](Connection& c) { return jobs::Claim(c, now, lease_ms); });
  }

  Job GetJob(int64_t id) {
    auto job = db_.Read([&](Connection& c) { return jobs::GetAny(c, id); });
    EXPECT_TRUE(job.has_value());
    return job.value_or(Job{});
  }

  Database db_;
  SecretBox box_;
  int64_t alice_ = 0;
  int64_t bob_ = 0;
  int64_t image_ = 0;
};

// ---------------------------------------------------------------------------------- accounts
TEST_F(RepositoriesTest, AccountsAreFoundByIdAndCaseInsensitiveName) {
  db_.Read([&](Connection& c) {
    EXPECT_EQ(accounts::Count(c), 2);
    auto alice = accounts::FindByName(c, "ALICE");
    ASSERT_TRUE(alice.has_value());
    EXPECT_EQ(alice->id, alice_);
    EXPECT_EQ(alice->name, "alice");
    EXPECT_EQ(alice->created_ms, kNow);
    EXPECT_EQ(accounts::FindById(c, bob_)->name, "bob");
    EXPECT_FALSE(accounts::FindById(c, 999).has_value());
    EXPECT_FALSE(accounts::FindByName(c, "carol").has_value());
    auto all = accounts::List(c);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].name, "alice");
    EXPECT_EQ(all[1].name, "bob");
  });
  EXPECT_THROW(db_.Write([](Connection& c) { accounts::Insert(c, "Bob", kNow); }), StoreError);
}

// ---------------------------------------------------------------------------------- api keys
TEST_F(RepositoriesTest, ApiKeySecretIsStoredEncrypted) {
  ApiKey key;
  key.account_id = alice_;
  key.key = "3116784158f0af2d";
  key.shared_secret = "plaintext-shared-secret-42";
  key.role = domain::Role::kSystemUser;
  key.created_ms = kNow;
  db_.Write([&](Connection& c) { api_keys::Insert(c, key, box_); });

  const std::string raw = db_.Read([](Connection& c) {
    auto s = c.Prepare("SELECT secret_enc FROM api_keys WHERE api_key = '3116784158f0af2d'");
    EXPECT_TRUE(s.Step());
    return s.Blob(0);
  });
  EXPECT_EQ(raw.find("plaintext-shared-secret-42"), std::string::npos);
  EXPECT_EQ(raw.find("plaintext"), std::string::npos);
  EXPECT_EQ(raw.size(), 12 + key.shared_secret.size() + 16);

  auto found = db_.Read([&](Connection& c) { return api_keys::FindByKey(c, key.key, box_); });
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->shared_secret, "plaintext-shared-secret-42");
  EXPECT_EQ(found->account_id, alice_);
  EXPECT_EQ(found->account_name, "alice");
  EXPECT_EQ(found->role, domain::Role::kSystemUser);
  EXPECT_FALSE(found->revoked);
  EXPECT_EQ(found->created_ms, kNow);

  // Without the master key the secret cannot be read back.
  std::array<uint8_t, SecretBox::kKeySize> other_key{};
  const SecretBox other(other_key);
  EXPECT_THROW(db_.Read([&](Connection& c) { return api_keys::FindByKey(c, key.key, other); }),
               std::runtime_error);
}

TEST_F(RepositoriesTest, ARotatedKeysOldSecretStaysEncryptedAndItsSigningPolicyIsKept) {
  ApiKey key;
  key.account_id = alice_;
  key.key = "7a1c";
  key.shared_secret = "first-plaintext-secret";
  key.role = domain::Role::kSuperUser;
  db_.Write([&](Connection& c) { api_keys::Insert(c, key, box_); });
  EXPECT_TRUE(db_.Write([&](Connection& c) {
    return api_keys::Rotate(c, key.key, "second-plaintext-secret", kNow + 1000, box_);
  }));
  EXPECT_TRUE(db_.Write([&](Connection& c) {
    return api_keys::SetSigning(c, key.key, domain::SigningPolicy::kHmacOnly);
  }));

  const auto [current, previous] = db_.Read([](Connection& c) {
    auto s =
        c.Prepare("SELECT secret_enc, previous_secret_enc FROM api_keys WHERE api_key = '7a1c'");
    EXPECT_TRUE(s.Step());
    return std::pair{s.Blob(0), s.Blob(1)};
  });
  EXPECT_EQ(current.find("plaintext"), std::string::npos);
  EXPECT_EQ(previous.find("plaintext"), std::string::npos);
  EXPECT_FALSE(previous.empty());
  auto found = db_.Read([&](Connection& c) { return api_keys::FindByKey(c, key.key, box_); });
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->shared_secret, "second-plaintext-secret");
  EXPECT_EQ(found->previous_secret, "first-plaintext-secret");
  EXPECT_EQ(found->previous_secret_until_ms, kNow + 1000);
  EXPECT_EQ(found->signing, domain::SigningPolicy::kHmacOnly);

  // A revoked key is neither rotated nor changed.
  EXPECT_TRUE(db_.Write([&](Connection& c) { return api_keys::Revoke(c, key.key); }));
  EXPECT_FALSE(
      db_.Write([&](Connection& c) { return api_keys::Rotate(c, key.key, "third", kNow, box_); }));
  EXPECT_FALSE(db_.Write([&](Connection& c) {
    return api_keys::SetSigning(c, key.key, domain::SigningPolicy::kAny);
  }));
  found = db_.Read([&](Connection& c) { return api_keys::FindByKey(c, key.key, box_); });
  EXPECT_EQ(found->shared_secret, "second-plaintext-secret");
  EXPECT_EQ(found->signing, domain::SigningPolicy::kHmacOnly);
}

TEST_F(RepositoriesTest, ApiKeysListByAccountAndRevokeOnce) {
  db_.Write([&](Connection& c) {
    for (const auto& [account, name] : {std::pair{alice_, "k-alice-1"}, std::pair{bob_, "k-bob"},
                                        std::pair{alice_, "k-alice-2"}}) {
      ApiKey key;
      key.account_id = account;
      key.key = name;
      key.shared_secret = std::string("s-") + name;
      key.role = domain::Role::kSuperUser;
      api_keys::Insert(c, key, box_);
    }
  });
  db_.Read([&](Connection& c) {
    auto of_alice = api_keys::List(c, alice_, box_);
    ASSERT_EQ(of_alice.size(), 2u);
    EXPECT_EQ(of_alice[0].key, "k-alice-1");
    EXPECT_EQ(of_alice[1].key, "k-alice-2");
    EXPECT_EQ(of_alice[1].shared_secret, "s-k-alice-2");
    EXPECT_EQ(api_keys::List(c, std::nullopt, box_).size(), 3u);
    EXPECT_FALSE(api_keys::FindByKey(c, "unknown", box_).has_value());
  });
  EXPECT_TRUE(db_.Write([](Connection& c) { return api_keys::Revoke(c, "k-bob"); }));
  EXPECT_FALSE(db_.Write([](Connection& c) { return api_keys::Revoke(c, "k-bob"); }));
  EXPECT_FALSE(db_.Write([](Connection& c) { return api_keys::Revoke(c, "unknown"); }));
  db_.Read([&](Connection& c) {
    EXPECT_TRUE(api_keys::FindByKey(c, "k-bob", box_)->revoked);
    EXPECT_FALSE(api_keys::FindByKey(c, "k-alice-1", box_)->revoked);
  });
}

// ------------------------------------------------------------------------ lookups in the store
TEST_F(RepositoriesTest, DatacenterUpsertRenames) {
  db_.Write([](Connection& c) { datacenters::Upsert(c, Datacenter{1, "US-West-2", "renamed"}); });
  auto list = db_.Read([](Connection& c) { return datacenters::List(c); });
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, 1);
  EXPECT_EQ(list[0].name, "US-West-2");
  EXPECT_EQ(list[0].description, "renamed");
}

TEST_F(RepositoriesTest, OperatingSystemsKeepGoGridIdsAndAddNewOnes) {
  db_.Write([](Connection& c) {
    EXPECT_EQ(operating_systems::FindOrInsert(c, "CentOS 5.3 (64-bit)"), 17);
    EXPECT_EQ(operating_systems::FindOrInsert(c, "centos 5.3 (64-BIT)"), 17);
    const int64_t debian = operating_systems::FindOrInsert(c, "Debian 12 (64-bit)");
    EXPECT_GT(debian, 19);
    EXPECT_EQ(operating_systems::FindOrInsert(c, "Debian 12 (64-bit)"), debian);
    auto list = operating_systems::List(c);
    EXPECT_EQ(list.size(), 13u);
    EXPECT_EQ(list.back().name, "Debian 12 (64-bit)");
  });
}

TEST_F(RepositoriesTest, ImageUpsertKeepsTheIdAndUpdates) {
  db_.Write([&](Connection& c) {
    Image image = *images::GetAny(c, image_);
    image.friendly_name = "Debian 12 (new)";
    image.volume = "debian-v2.qcow2";
    EXPECT_EQ(images::UpsertPublic(c, image, kNow + 5), image_);
    auto stored = images::GetVisible(c, bob_, image_);
    ASSERT_TRUE(stored.has_value());
    EXPECT_EQ(stored->friendly_name, "Debian 12 (new)");
    EXPECT_EQ(stored->volume, "debian-v2.qcow2");
    EXPECT_EQ(stored->owner_name, "GoGrid");
    EXPECT_EQ(stored->created_ms, kNow);
    EXPECT_EQ(stored->updated_ms, kNow + 5);
    EXPECT_EQ(images::FindVisibleByName(c, alice_, "Debian 12 (new)").size(), 1u);
    EXPECT_EQ(images::FindVisibleByName(c, alice_, "debian-12").size(), 1u);
    EXPECT_EQ(images::ListAll(c).size(), 1u);
  });
}

// ---------------------------------------------------------------------------------- ip pools
TEST_F(RepositoriesTest, AllocateBlockHandsOutUnownedAddressesInOrder) {
  const int64_t pool = MakePool(1, 5);
  db_.Write([&](Connection& c) {
    EXPECT_EQ(ip_pools::AllocateBlock(c, pool, alice_, 3), 3);
    EXPECT_EQ(ip_pools::AllocateBlock(c, pool, bob_, 3), 2);  // only two left
    EXPECT_EQ(ip_pools::AllocateBlock(c, pool, bob_, 3), 0);
    EXPECT_EQ(ip_pools::CountOwned(c, pool, alice_), 3);
    EXPECT_EQ(ip_pools::CountOwned(c, pool, bob_), 2);
  });
  db_.Read([&](Connection& c) {
    std::vector<std::string> of_alice;
    for (const auto& ip : ips::List(c, alice_, {})) of_alice.push_back(ip.address);
    EXPECT_EQ(of_alice, (std::vector<std::string>{"10.1.0.2", "10.1.0.3", "10.1.0.4"}));
    std::vector<std::string> of_bob;
    for (const auto& ip : ips::List(c, bob_, {})) of_bob.push_back(ip.address);
    EXPECT_EQ(of_bob, (std::vector<std::string>{"10.1.0.5", "10.1.0.6"}));
  });
}

TEST_F(RepositoriesTest, PoolsAreFoundByCidrAndReportUsage) {
  const int64_t pool = MakePool(2, 4);
  db_.Write([&](Connection& c) { ip_pools::AllocateBlock(c, pool, alice_, 4); });
  auto found = db_.Read([](Connection& c) { return ip_pools::FindByCidr(c, "10.2.0.0/24"); });
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, pool);
  EXPECT_EQ(found->subnet, "10.2.0.0/255.255.255.0");
  EXPECT_EQ(found->network, "net-2");
  EXPECT_FALSE(found->account_id.has_value());
  MakeServer(alice_, OwnedIp(alice_, "10.2.0.3").id, "web1");
  auto usage = db_.Read([&](Connection& c) { return ip_pools::UsageOf(c, pool); });
  EXPECT_EQ(usage.total, 4);
  EXPECT_EQ(usage.assigned, 1);
  EXPECT_THROW(MakePool(2, 0), StoreError);  // a CIDR is registered once
}

// ----------------------------------------------------------------------------------------- ips
TEST_F(RepositoriesTest, AnIpCanBeAssignedOnlyOnce) {
  const int64_t pool = MakePool(1, 2);
  db_.Write([&](Connection& c) { ip_pools::AllocateBlock(c, pool, alice_, 2); });
  const Ip ip = OwnedIp(alice_, "10.1.0.2");
  EXPECT_EQ(ip.state, domain::ip_state::kUnassigned);
  db_.Write([&](Connection& c) {
    EXPECT_TRUE(ips::Assign(c, ip.id, 41));
    EXPECT_FALSE(ips::Assign(c, ip.id, 42));
  });
  Ip assigned = OwnedIp(alice_, "10.1.0.2");
  EXPECT_EQ(assigned.state, domain::ip_state::kAssigned);
  EXPECT_EQ(assigned.server_id, 41);
  db_.Write([&](Connection& c) { ips::Release(c, ip.id); });
  Ip released = OwnedIp(alice_, "10.1.0.2");
  EXPECT_EQ(released.state, domain::ip_state::kUnassigned);
  EXPECT_FALSE(released.server_id.has_value());
  db_.Write([&](Connection& c) { EXPECT_TRUE(ips::Assign(c, ip.id, 43)); });
}

TEST_F(RepositoriesTest, IpListFiltersByStateTypeAndDatacenter) {
  const int64_t pub = MakePool(1, 3, true, 1);
  const int64_t priv = MakePool(2, 2, false, 1);
  const int64_t east = MakePool(3, 1, true, 2);
  db_.Write([&](Connection& c) {
    for (int64_t pool : {pub, priv, east}) ip_pools::AllocateBlock(c, pool, alice_, 10);
  });
  MakeServer(alice_, OwnedIp(alice_, "10.1.0.3").id, "web1");
  auto addresses = [&](const ips::Filter& filter) {
    std::vector<std::string> out;
    db_.Read([&](Connection& c) {
      for (const auto& ip : ips::List(c, alice_, filter)) out.push_back(ip.address);
    });
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(addresses({}).size(), 6u);
  EXPECT_EQ((addresses({domain::ip_state::kAssigned, std::nullopt, {}})), V{"10.1.0.3"});
  EXPECT_EQ((addresses({domain::ip_state::kUnassigned, std::nullopt, {}})).size(), 5u);
  EXPECT_EQ((addresses({std::nullopt, false, {}})), (V{"10.2.0.2", "10.2.0.3"}));
  EXPECT_EQ((addresses({std::nullopt, true, {}})).size(), 4u);
  EXPECT_EQ((addresses({std::nullopt, std::nullopt, {2}})), V{"10.3.0.2"});
  EXPECT_EQ((addresses({std::nullopt, true, {1}})), (V{"10.1.0.2", "10.1.0.3", "10.1.0.4"}));
  EXPECT_TRUE((addresses({std::nullopt, std::nullopt, {3}})).empty());
  db_.Read([&](Connection& c) { EXPECT_TRUE(ips::List(c, bob_, {}).empty()); });
}

// ------------------------------------------------------------------------------- account scope
TEST_F(RepositoriesTest, EveryCustomerQueryIsScopedByAccount) {
  const int64_t pool = MakePool(1, 4);
  db_.Write([&](Connection& c) {
    ip_pools::AllocateBlock(c, pool, alice_, 2);
    ip_pools::AllocateBlock(c, pool, bob_, 2);
  });
  const Ip ip = OwnedIp(alice_, "10.1.0.2");
  const int64_t server = MakeServer(alice_, ip.id, "web1");
  const int64_t password = db_.Write([&](Connection& c) {
    Password p;
    p.account_id = alice_;
    p.server_id = server;
    p.application_type = "os";
    p.username = "root";
    p.password = "Hunter2Hunter2";
    return passwords::Insert(c, p, box_, kNow);
  });
  const int64_t job = InsertJob(NewJob(alice_, server));

  db_.Read([&](Connection& c) {
    // Alice sees her own objects…
    EXPECT_TRUE(servers::Get(c, alice_, server).has_value());
    EXPECT_EQ(servers::FindByName(c, alice_, "web1").size(), 1u);
    EXPECT_EQ(servers::List(c, alice_).size(), 1u);
    EXPECT_TRUE(ips::FindByAddress(c, alice_, "10.1.0.2").has_value());
    EXPECT_TRUE(ips::Get(c, alice_, ip.id).has_value());
    auto pw = passwords::Get(c, alice_, password, box_);
    ASSERT_TRUE(pw.has_value());
    EXPECT_EQ(pw->password, "Hunter2Hunter2");
    EXPECT_EQ(passwords::List(c, alice_, box_).size(), 1u);
    EXPECT_TRUE(jobs::Get(c, alice_, job).has_value());
    EXPECT_EQ(jobs::List(c, alice_).size(), 1u);

    // …and Bob sees none of them.
    EXPECT_FALSE(servers::Get(c, bob_, server).has_value());
    EXPECT_TRUE(servers::FindByName(c, bob_, "web1").empty());
    EXPECT_TRUE(servers::List(c, bob_).empty());
    EXPECT_FALSE(ips::FindByAddress(c, bob_, "10.1.0.2").has_value());
    EXPECT_FALSE(ips::Get(c, bob_, ip.id).has_value());
    EXPECT_FALSE(passwords::Get(c, bob_, password, box_).has_value());
    EXPECT_TRUE(passwords::List(c, bob_, box_).empty());
    EXPECT_FALSE(jobs::Get(c, bob_, job).has_value());
    EXPECT_TRUE(jobs::List(c, bob_).empty());
    // Operator views are not scoped.
    EXPECT_TRUE(servers::GetAny(c, server).has_value());
    EXPECT_TRUE(jobs::GetAny(c, job).has_value());
    EXPECT_EQ(servers::ListAll(c).size(), 1u);
  });
}

TEST_F(RepositoriesTest, PasswordsAreStoredEncrypted) {
  db_.Write([&](Connection& c) {
    Password p;
    p.account_id = alice_;
    p.application_type = "os";
    p.username = "root";
    p.password = "CorrectHorseBattery";
    passwords::Insert(c, p, box_, kNow);
    auto s = c.Prepare("SELECT password_enc FROM passwords");
    ASSERT_TRUE(s.Step());
    EXPECT_EQ(s.Blob(0).find("CorrectHorse"), std::string::npos);
  });
}

TEST_F(RepositoriesTest, ServerUpdateAndDelete) {
  const int64_t pool = MakePool(1, 2);
  db_.Write([&](Connection& c) { ip_pools::AllocateBlock(c, pool, alice_, 2); });
  const int64_t id = MakeServer(alice_, OwnedIp(alice_, "10.1.0.2").id, "web1");
  db_.Write([&](Connection& c) {
    Server server = *servers::Get(c, alice_, id);
    server.description = "edited";
    server.ram = 3;
    server.mac = "52:54:00:00:00:01";
    server.deleting = true;
    server.updated_ms = kNow + 1;
    servers::Update(c, server);
    servers::SetState(c, id, domain::server_state::kOn, kNow + 2);
  });
  auto server = db_.Read([&](Connection& c) { return servers::Get(c, alice_, id); });
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ(server->description, "edited");
  EXPECT_EQ(server->ram, 3);
  EXPECT_EQ(server->mac, "52:54:00:00:00:01");
  EXPECT_TRUE(server->deleting);
  EXPECT_EQ(server->state, domain::server_state::kOn);
  EXPECT_EQ(server->updated_ms, kNow + 2);
  db_.Write([&](Connection& c) { servers::Delete(c, id); });
  EXPECT_FALSE(db_.Read([&](Connection& c) { return servers::GetAny(c, id); }).has_value());
}

// A client may still hold the id of a deleted object (a failed image save, a deleted server):
// the next object must not answer to it.
TEST_F(RepositoriesTest, IdsOfDeletedImagesAndServersAreNeverHandedOutAgain) {
  auto save = [&](const std::string& name) {
    return db_.Write([&](Connection& c) {
      Image image;
      image.owner_account_id = alice_;
      image.name = name;
      image.friendly_name = name;
      image.os_id = 10;
      image.state = domain::image_state::kSaving;
      image.location = "gridd/" + name;
      image.storage_pool = "gridd";
      image.volume = name + ".qcow2";
      image.parent_image_id = image_;
      return images::InsertPrivate(c, image);
    });
  };
  const int64_t failed = save("GSI-failed");
  db_.Write([&](Connection& c) { images::Delete(c, failed); });
  const int64_t next = save("GSI-next");
  EXPECT_GT(next, failed);
  EXPECT_FALSE(db_.Read([&](Connection& c) { return images::GetAny(c, failed); }).has_value());

  const int64_t pool = MakePool(1, 2);
  db_.Write([&](Connection& c) { ip_pools::AllocateBlock(c, pool, alice_, 2); });
  const int64_t deleted = MakeServer(alice_, OwnedIp(alice_, "10.1.0.2").id, "web1");
  db_.Write([&](Connection& c) { servers::Delete(c, deleted, kNow + 1); });
  const int64_t server = MakeServer(alice_, OwnedIp(alice_, "10.1.0.3").id, "web2");
  EXPECT_GT(server, deleted);
  EXPECT_FALSE(db_.Read([&](Connection& c) { return servers::GetAny(c, deleted); }).has_value());
}

// ------------------------------------------------------------------------------------- usage
TEST_F(RepositoriesTest, EveryServerChangeKeepsOneOpenUsageIntervalInStep) {
  const int64_t pool = MakePool(1, 2);
  db_.Write([&](Connection& c) { ip_pools::AllocateBlock(c, pool, alice_, 2); });
  const int64_t id = MakeServer(alice_, OwnedIp(alice_, "10.1.0.2").id, "web1");  // Starting
  auto intervals = [&] {
    return db_.Read(
        [&](Connection& c) { return usage::ServerIntervals(c, alice_, 0, kNow + 100); });
  };
  ASSERT_EQ(intervals().size(), 1u);
  EXPECT_EQ(intervals()[0].start_ms, kNow);
  EXPECT_TRUE(intervals()[0].powered_on);
  EXPECT_FALSE(intervals()[0].end_ms.has_value());

  db_.Write([&](Connection& c) {
    servers::SetState(c, id, domain::server_state::kOn, kNow + 1);  // still on: no new interval
    servers::SetState(c, id, domain::server_state::kOff, kNow + 2);
    Server server = *servers::Get(c, alice_, id);
    server.ram = 3;
    server.description = "bookkeeping only";
    server.updated_ms = kNow + 3;
    servers::Update(c, server);
    server.updated_ms = kNow + 4;
    servers::Update(c, server);  // nothing billable changed
  });
  auto after = intervals();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[0].end_ms, kNow + 2);
  EXPECT_FALSE(after[1].powered_on);
  EXPECT_EQ(after[1].start_ms, kNow + 2);
  EXPECT_EQ(after[1].end_ms, kNow + 3);
  EXPECT_EQ(after[2].ram, 3);
  EXPECT_FALSE(after[2].end_ms.has_value());

  // A change that rolls back leaves no usage record behind.
  EXPECT_THROW(db_.Write([&](Connection& c) {
    servers::SetState(c, id, domain::server_state::kOn, kNow + 5);
    throw std::runtime_error("rolled back");
  }),
               std::runtime_error);
  EXPECT_EQ(intervals().size(), 3u);

  db_.Write([&](Connection& c) { servers::Delete(c, id, kNow + 9); });
  after = intervals();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[2].end_ms, kNow + 9);
  EXPECT_TRUE(
      db_.Read([&](Connection& c) { return usage::ServerIntervals(c, bob_, 0, kNow + 100); })
          .empty());
  // Only intervals overlapping the asked window come back.
  EXPECT_EQ(
      db_.Read([&](Connection& c) { return usage::ServerIntervals(c, alice_, kNow + 3, kNow + 4); })
          .size(),
      1u);
}

TEST_F(RepositoriesTest, BalancerCountersAddTheirGrowthAndSurviveResets) {
  db_.Write([&](Connection& c) {
    usage::RecordBalancerCounters(c, alice_, 5, kNow, 10, 1000, kNow);
    usage::RecordBalancerCounters(c, alice_, 5, kNow, 10, 1000, kNow + 1);  // idle: nothing
    usage::RecordBalancerCounters(c, alice_, 5, kNow, 30, 1500, kNow + 2);
    usage::RecordBalancerCounters(c, alice_, 5, kNow, 4, 200, kNow + 3);  // new HAProxy worker
    usage::RecordBalancerCounters(c, bob_, 6, kNow, 1, 7, kNow + 3);
  });
  auto transfer =
      db_.Read([&](Connection& c) { return usage::TransferBetween(c, alice_, kNow, kNow + 10); });
  EXPECT_EQ(transfer.bytes_in, 10 + 20 + 4);
  EXPECT_EQ(transfer.bytes_out, 1000 + 500 + 200);
  auto early =
      db_.Read([&](Connection& c) { return usage::TransferBetween(c, alice_, kNow, kNow + 2); });
  EXPECT_EQ(early.bytes_out, 1000);
  EXPECT_EQ(db_.Read([&](Connection& c) { return usage::TransferBetween(c, bob_, 0, kNow + 10); })
                .bytes_out,
            7);
  EXPECT_EQ(db_.Read([](Connection& c) {
    auto q = c.Prepare("SELECT count(*) FROM transfer_usage");
    q.Step();
    return q.Int(0);
  }),
            4);

  // A later balancer that reuses id 6 (bob's was deleted) starts from its own first reading.
  db_.Write([&](Connection& c) {
    usage::RecordBalancerCounters(c, alice_, 6, kNow + 5, 3, 50, kNow + 6);
  });
  EXPECT_EQ(
      db_.Read([&](Connection& c) { return usage::TransferBetween(c, alice_, kNow + 6, kNow + 7); })
          .bytes_out,
      50);
}

// ---------------------------------------------------------------------------------------- jobs
TEST_F(RepositoriesTest, InsertQueuesTheJobWithCreatedAndQueuedHistory) {
  Job job = NewJob(alice_, 7);
  const int64_t id = db_.Write([&](Connection& c) { return jobs::Insert(c, job, kNow); });
  EXPECT_EQ(job.id, id);
  const Job stored = GetJob(id);
  EXPECT_EQ(stored.state, job_state::kQueued);
  EXPECT_EQ(stored.attempts, 0);
  EXPECT_EQ(stored.next_run_ms, kNow);
  EXPECT_EQ(stored.created_ms, kNow);
  EXPECT_EQ(stored.object_name, "web1");
  EXPECT_EQ(stored.owner, job.owner);
  EXPECT_EQ(stored.detail.dump(), R"({"type":"virtual_server","name":"web1"})");
  EXPECT_EQ(stored.datacenter_id, 1);
  EXPECT_EQ(States(stored), (std::vector<int64_t>{job_state::kCreated, job_state::kQueued}));
  for (const auto& entry : stored.history) EXPECT_EQ(entry.at_ms, kNow);
  EXPECT_TRUE(db_.Read([](Connection& c) {
    return jobs::HasPending(c, domain::job_object_type::kVirtualServer, 7);
  }));
  EXPECT_FALSE(db_.Read([](Connection& c) {
    return jobs::HasPending(c, domain::job_object_type::kVirtualServer, 8);
  }));
}

TEST_F(RepositoriesTest, ClaimTakesTheOldestJobAndLeasesIt) {
  const int64_t id = InsertJob(NewJob(alice_, 7));
  auto claimed = Claim(kNow + 10, 30'000);
  ASSERT_TRUE(claimed.has_value());
  EXPECT_EQ(claimed->id, id);
  EXPECT_EQ(claimed->state, job_state::kProcessing);
  EXPECT_EQ(claimed->attempts, 1);
  EXPECT_EQ(claimed->lease_until_ms, kNow + 10 + 30'000);
  EXPECT_EQ(States(*claimed), (std::vector<int64_t>{job_state::kCreated, job_state::kQueued,
                                                    job_state::kProcessing}));
  EXPECT_FALSE(Claim(kNow + 10).has_value());
  EXPECT_EQ(db_.Read([](Connection& c) { return jobs::CountUnfinished(c); }), 1);
}

TEST_F(RepositoriesTest, ClaimKeepsTheOrderOfJobsOnOneObject) {
  const int64_t first = InsertJob(NewJob(alice_, 7));
  const int64_t second = InsertJob(NewJob(alice_, 7));
  const int64_t other = InsertJob(NewJob(bob_, 8, "db1"));

  EXPECT_EQ(Claim(kNow)->id, first);
  // The second job on server 7 waits for the first; the job on server 8 does not.
  EXPECT_EQ(Claim(kNow)->id, other);
  EXPECT_FALSE(Claim(kNow).has_value());

  db_.Write([&](Connection& c) {
    jobs::Finish(c, first, job_state::kSucceeded, std::nullopt, kNow + 1);
  });
  auto next = Claim(kNow + 2);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->id, second);
  const Job done = GetJob(first);
  EXPECT_EQ(done.state, job_state::kSucceeded);
  EXPECT_FALSE(done.lease_until_ms.has_value());
  EXPECT_EQ(States(done).back(), job_state::kSucceeded);
}

TEST_F(RepositoriesTest, AFailedJobStillReleasesTheObject) {
  const int64_t first = InsertJob(NewJob(alice_, 7));
  const int64_t second = InsertJob(NewJob(alice_, 7));
  Claim(kNow);
  db_.Write([&](Connection& c) {
    jobs::Finish(c, first, job_state::kFatal, std::string("disk missing"), kNow + 1);
  });
  EXPECT_EQ(Claim(kNow + 1)->id, second);
  const Job fatal = GetJob(first);
  EXPECT_EQ(fatal.error, "disk missing");
  EXPECT_EQ(fatal.history.back().note, "disk missing");
}

TEST_F(RepositoriesTest, ClaimSkipsJobsScheduledForLater) {
  Job later = NewJob(alice_, 7);
  later.next_run_ms = kNow + 5000;
  const int64_t id = InsertJob(later);
  EXPECT_FALSE(Claim(kNow).has_value());
  EXPECT_FALSE(Claim(kNow + 4999).has_value());
  EXPECT_EQ(db_.Read([](Connection& c) { return jobs::NextRunMs(c); }), kNow + 5000);
  auto claimed = Claim(kNow + 5000);
  ASSERT_TRUE(claimed.has_value());
  EXPECT_EQ(claimed->id, id);
  EXPECT_EQ(db_.Read([](Connection& c) { return jobs::NextRunMs(c); }), std::nullopt);
}

TEST_F(RepositoriesTest, RetryRecordsTheFailureAndDelaysTheNextAttempt) {
  const int64_t id = InsertJob(NewJob(alice_, 7));
  Claim(kNow);
  db_.Write([&](Connection& c) { jobs::Retry(c, id, kNow + 2000, "hypervisor busy", kNow + 100); });
  const Job retried = GetJob(id);
  EXPECT_EQ(retried.state, job_state::kQueued);
  EXPECT_EQ(retried.error, "hypervisor busy");
  EXPECT_EQ(retried.next_run_ms, kNow + 2000);
  EXPECT_FALSE(retried.lease_until_ms.has_value());
  ASSERT_EQ(retried.history.size(), 5u);
  EXPECT_EQ(retried.history[3].state, job_state::kFailed);
  EXPECT_EQ(retried.history[3].note, "hypervisor busy");
  EXPECT_EQ(retried.history[3].at_ms, kNow + 100);
  EXPECT_EQ(retried.history[4].state, job_state::kQueued);
  EXPECT_EQ(retried.history[4].note, "retrying");

  EXPECT_FALSE(Claim(kNow + 1999).has_value());
  auto again = Claim(kNow + 2000);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->attempts, 2);
}

TEST_F(RepositoriesTest, RequeueExpiredTakesUpJobsWhoseLeaseEnded) {
  const int64_t id = InsertJob(NewJob(alice_, 7));
  const int64_t fresh = InsertJob(NewJob(alice_, 8, "web2"));
  Claim(kNow, 1000);        // lease until kNow + 1000
  Claim(kNow + 500, 1000);  // lease until kNow + 1500
  db_.Write([&](Connection& c) {
    EXPECT_EQ(jobs::RequeueExpired(c, kNow + 1000, kNow + 1000), 0);  // not yet over
    EXPECT_EQ(jobs::RequeueExpired(c, kNow + 1001, kNow + 1001), 1);
  });
  const Job requeued = GetJob(id);
  EXPECT_EQ(requeued.state, job_state::kQueued);
  EXPECT_FALSE(requeued.lease_until_ms.has_value());
  EXPECT_EQ(requeued.history.back().state, job_state::kQueued);
  EXPECT_EQ(requeued.history.back().note, "lease expired; taken up again");
  EXPECT_EQ(GetJob(fresh).state, job_state::kProcessing);

  auto again = Claim(kNow + 1001);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->id, id);
  EXPECT_EQ(again->attempts, 2);
  EXPECT_EQ(db_.Read([](Connection& c) { return jobs::CountUnfinished(c); }), 2);
}

TEST_F(RepositoriesTest, JobListIsNewestFirstWithHistory) {
  const int64_t a = InsertJob(NewJob(alice_, 7), kNow);
  const int64_t b = InsertJob(NewJob(alice_, 8, "web2"), kNow + 1);
  const int64_t c = InsertJob(NewJob(alice_, 9, "web3"), kNow + 2);
  auto list = db_.Read([&](Connection& conn) { return jobs::List(conn, alice_); });
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].id, c);
  EXPECT_EQ(list[1].id, b);
  EXPECT_EQ(list[2].id, a);
  for (const auto& job : list) EXPECT_EQ(job.history.size(), 2u);
}

TEST_F(RepositoriesTest, AServerPageIsTheAccountsServersInIdOrder) {
  const int64_t pool = MakePool(1, 8);
  db_.Write([&](Connection& c) {
    ip_pools::AllocateBlock(c, pool, alice_, 5);
    ip_pools::AllocateBlock(c, pool, bob_, 3);
  });
  std::vector<int64_t> alices;
  for (int i = 0; i < 5; ++i) {
    alices.push_back(MakeServer(alice_, OwnedIp(alice_, "10.1.0." + std::to_string(i + 2)).id,
                                "web" + std::to_string(i)));
  }
  MakeServer(bob_, OwnedIp(bob_, "10.1.0.7").id, "bob1");
  db_.Write([&](Connection& c) {
    Server server = *servers::Get(c, alice_, alices[3]);
    server.type = 2;
    servers::Update(c, server);
  });
  db_.Read([&](Connection& c) {
    EXPECT_EQ(servers::Count(c, alice_, std::nullopt), 5);
    EXPECT_EQ(servers::Count(c, bob_, std::nullopt), 1);
    EXPECT_EQ(servers::Count(c, alice_, 2), 1);
    auto page = servers::ListPage(c, alice_, std::nullopt, 1, 2);
    ASSERT_EQ(page.size(), 2u);
    EXPECT_EQ(page[0].server.id, alices[1]);
    EXPECT_EQ(page[1].server.id, alices[2]);
    // Each server comes with its own IP and the IP's pool.
    ASSERT_TRUE(page[0].ip.has_value());
    EXPECT_EQ(page[0].ip->address, "10.1.0.3");
    EXPECT_EQ(page[0].ip->server_id, alices[1]);
    EXPECT_EQ(page[0].ip->subnet, "10.1.0.0/255.255.255.0");
    EXPECT_EQ(page[0].ip->datacenter_id, 1);
    ASSERT_TRUE(page[1].ip.has_value());
    EXPECT_EQ(page[1].ip->address, "10.1.0.4");
    EXPECT_EQ(servers::ListPage(c, alice_, std::nullopt, 4, 10).size(), 1u);
    EXPECT_TRUE(servers::ListPage(c, alice_, std::nullopt, 5, 10).empty());
    auto typed = servers::ListPage(c, alice_, 1, 0, 10);
    ASSERT_EQ(typed.size(), 4u);
    for (const auto& row : typed) EXPECT_NE(row.server.id, alices[3]);
    auto second_typed = servers::ListPage(c, alice_, 1, 3, 10);
    ASSERT_EQ(second_typed.size(), 1u);
    EXPECT_EQ(second_typed[0].server.id, alices[4]);
  });
}

TEST_F(RepositoriesTest, AServerReadWithItsIpHasNoIpThatIsNotItsAccounts) {
  const int64_t pool = MakePool(1, 4);
  db_.Write([&](Connection& c) {
    ip_pools::AllocateBlock(c, pool, alice_, 2);
    ip_pools::AllocateBlock(c, pool, bob_, 2);
  });
  const int64_t web = MakeServer(alice_, OwnedIp(alice_, "10.1.0.2").id, "web");
  // A broken row: the server names one of bob's addresses.
  const int64_t broken = MakeServer(alice_, OwnedIp(bob_, "10.1.0.4").id, "broken");
  db_.Read([&](Connection& c) {
    auto found = servers::GetWithIp(c, alice_, web);
    ASSERT_TRUE(found.has_value());
    ASSERT_TRUE(found->ip.has_value());
    EXPECT_EQ(found->ip->address, "10.1.0.2");
    EXPECT_FALSE(servers::GetWithIp(c, bob_, web).has_value()) << "another account's server";
    auto by_name = servers::FindByNameWithIp(c, alice_, "broken");
    ASSERT_EQ(by_name.size(), 1u);
    EXPECT_EQ(by_name[0].server.id, broken);
    EXPECT_FALSE(by_name[0].ip.has_value());
    auto all = servers::ListWithIp(c, alice_);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_TRUE(all[0].ip.has_value());
    EXPECT_FALSE(all[1].ip.has_value());
  });
}

TEST_F(RepositoriesTest, ServerTotalsFollowInsertsDeletesAndTypeChanges) {
  const int64_t pool = MakePool(1, 8);
  db_.Write([&](Connection& c) {
    ip_pools::AllocateBlock(c, pool, alice_, 5);
    ip_pools::AllocateBlock(c, pool, bob_, 3);
  });
  auto totals = [&](int64_t account) {
    return db_.Read([&](Connection& c) {
      return std::array<int64_t, 3>{servers::Count(c, account, std::nullopt),
                                    servers::Count(c, account, 1), servers::Count(c, account, 2)};
    });
  };
  using Totals = std::array<int64_t, 3>;
  EXPECT_EQ(totals(alice_), (Totals{0, 0, 0}));
  const int64_t web1 = MakeServer(alice_, OwnedIp(alice_, "10.1.0.2").id, "web1");
  const int64_t web2 = MakeServer(alice_, OwnedIp(alice_, "10.1.0.3").id, "web2");
  MakeServer(bob_, OwnedIp(bob_, "10.1.0.7").id, "bob1");
  EXPECT_EQ(totals(alice_), (Totals{2, 2, 0}));
  EXPECT_EQ(totals(bob_), (Totals{1, 1, 0}));

  // A type change moves the server from one total to the other; other changes move nothing.
  db_.Write([&](Connection& c) {
    Server server = *servers::Get(c, alice_, web2);
    server.type = 2;
    servers::Update(c, server);
    server.description = "database";
    servers::Update(c, server);
    servers::SetState(c, web2, domain::server_state::kOff, kNow);
  });
  EXPECT_EQ(totals(alice_), (Totals{2, 1, 1}));

  // An insert whose transaction fails counts nothing.
  EXPECT_THROW(db_.Write([&](Connection& c) {
    Server server;
    server.account_id = alice_;
    server.name = "failed";
    server.image_id = image_;
    server.ip_id = OwnedIp(alice_, "10.1.0.4").id;
    servers::Insert(c, server);
    throw std::runtime_error("the add fails after its insert");
  }),
               std::runtime_error);
  EXPECT_EQ(totals(alice_), (Totals{2, 1, 1}));

  db_.Write([&](Connection& c) { servers::Delete(c, web1, kNow); });
  EXPECT_EQ(totals(alice_), (Totals{1, 0, 1}));
  db_.Write([&](Connection& c) { servers::Delete(c, web2); });
  EXPECT_EQ(totals(alice_), (Totals{0, 0, 0}));
  EXPECT_EQ(totals(bob_), (Totals{1, 1, 0}));
}

TEST_F(RepositoriesTest, JobIdsMatchEveryFilterNewestFirst) {
  Job web1 = NewJob(alice_, 7, "web1");
  const int64_t a = InsertJob(web1, kNow);
  Job web2 = NewJob(alice_, 42, "web2");
  web2.command = domain::job_command::kStopVirtualServer;
  web2.datacenter_id = 2;
  const int64_t b = InsertJob(web2, kNow + 10);
  // Named like another server's id: found by that name and by that id.
  Job named = NewJob(alice_, 9, "42");
  named.owner = "someone-else@api";
  named.datacenter_id = std::nullopt;
  const int64_t c = InsertJob(named, kNow + 20);
  InsertJob(NewJob(bob_, 7, "web1"), kNow + 30);
  db_.Write([&](Connection& conn) { jobs::Finish(conn, a, job_state::kSucceeded, {}, kNow); });

  auto ids = [&](jobs::Query query) {
    query.account_id = alice_;
    return db_.Read([&](Connection& conn) { return jobs::FindIds(conn, query); });
  };
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(ids({}), (Ids{c, b, a}));
  jobs::Query query;
  query.object = "web1";
  EXPECT_EQ(ids(query), (Ids{a}));
  query.object = "42";
  EXPECT_EQ(ids(query), (Ids{c, b}));
  query.object = "042";  // not how an id is written: names only
  EXPECT_TRUE(ids(query).empty());
  query.object = "7";
  EXPECT_EQ(ids(query), (Ids{a}));
  query = {};
  query.commands = {domain::job_command::kStopVirtualServer};
  EXPECT_EQ(ids(query), (Ids{b}));
  query = {};
  query.states = {job_state::kSucceeded, job_state::kFailed};
  EXPECT_EQ(ids(query), (Ids{a}));
  query = {};
  query.datacenters = {1, 2};
  EXPECT_EQ(ids(query), (Ids{b, a}));  // a job without a datacenter is in none
  query = {};
  query.owner = "someone-else@api";
  EXPECT_EQ(ids(query), (Ids{c}));
  query = {};
  query.object_types = {domain::job_object_type::kLoadBalancer};
  EXPECT_TRUE(ids(query).empty());
  query = {};
  query.created_from_ms = kNow + 10;
  query.created_to_ms = kNow + 10;
  EXPECT_EQ(ids(query), (Ids{b}));
}

}  // namespace
}  // namespace gridd::store
