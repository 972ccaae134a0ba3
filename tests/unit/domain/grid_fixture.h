// A small grid for the domain tests: one datacenter, a public and a private /28 pool, two
// images and two customer accounts (alice, bob) with blocks of four addresses from each pool,
// all in an in-memory database with a hand-moved clock and a fixed master key.
//
//   alice: public 192.0.2.2-5    private 198.51.100.2-5
//   bob:   public 192.0.2.6-9    private 198.51.100.6-9
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/common/config.h"
#include "gridd/common/crypto.h"
#include "gridd/common/error.h"
#include "gridd/domain/account_service.h"
#include "gridd/domain/grid_service.h"
#include "gridd/store/database.h"
#include "gridd/store/repositories.h"

namespace gridd::domain::testing {

// The addresses of `ips`, in their order.
inline std::vector<std::string> Addresses(const std::vector<Ip>& ips) {
  std::vector<std::string> out;
  for (const auto& ip : ips) out.push_back(ip.address);
  return out;
}

inline std::array<uint8_t, SecretBox::kKeySize> FixedKey() {
  std::array<uint8_t, SecretBox::kKeySize> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(0xA0 + i);
  return key;
}

// The configuration's datacenter and images. The pools are added with AddIpPool.
inline Config SeedConfig() {
  Config config;
  config.datacenters = {DatacenterSeed{1, "US-West-1", "US West 1 Datacenter"}};
  ImageSeed debian;
  debian.name = "debian-12-amd64";
  debian.friendly_name = "Debian 12 (64-bit)";
  debian.description = "Debian 12 bookworm, minimal";
  debian.os = "Debian 12 (64-bit)";
  debian.architecture = "64-bit";
  debian.volume = "debian-12-amd64.qcow2";
  ImageSeed centos = debian;
  centos.name = "centos-7-x86_64";
  centos.friendly_name = "CentOS 7 (64-bit)";
  centos.description = "CentOS 7, minimal";
  centos.os = "CentOS 7 (64-bit)";
  centos.type = "Database Server";
  centos.volume = "centos-7-x86_64.qcow2";
  config.images = {debian, centos};
  return config;
}

// Every row count and every server's mutable columns: equal snapshots mean nothing changed.
struct Snapshot {
  int64_t servers = 0;
  int64_t jobs = 0;
  int64_t job_history = 0;
  int64_t assigned_ips = 0;
  int64_t passwords = 0;
  std::string server_rows;
  int queued_callbacks = 0;
  bool operator==(const Snapshot&) const = default;
};

inline std::ostream& operator<<(std::ostream& out, const Snapshot& s) {
  return out << "{servers " << s.servers << ", jobs " << s.jobs << ", history " << s.job_history
             << ", assigned ips " << s.assigned_ips << ", passwords " << s.passwords << ", rows ["
             << s.server_rows << "], callbacks " << s.queued_callbacks << "}";
}

class GridFixture : public ::testing::Test {
 protected:
  static constexpr int64_t kStartMs = 1'700'000'000'000;
  static constexpr int kBlockSize = 4;

  GridFixture()
      : db_(":memory:"),
        catalog_(db_),
        clock_(kStartMs),
        box_(FixedKey()),
        accounts_(db_, catalog_, clock_, box_, kBlockSize),
        grid_(db_, catalog_, clock_, box_, [this] { ++queued_callbacks_; }) {}

  void SetUp() override {
    accounts_.ApplySeeds(SeedConfig());
    accounts_.AddIpPool({"US-West-1", "public", "192.0.2.0/28", std::nullopt, std::nullopt});
    accounts_.AddIpPool({"1", "private", "198.51.100.0/28", std::nullopt, std::nullopt});
    alice_ = CallerFor(accounts_.CreateAccount("alice"));
    bob_ = CallerFor(accounts_.CreateAccount("bob"));
  }

  Caller CallerFor(const Account& account) {
    Caller caller;
    caller.account_id = account.id;
    caller.account_name = account.name;
    caller.api_key = accounts_.CreateApiKey(account.name, "Super User").api_key;
    caller.role = Role::kSuperUser;
    return caller;
  }

  static ServerAddRequest AddRequest(const std::string& name, const std::string& ip) {
    ServerAddRequest request;
    request.name = name;
    request.image = "debian-12-amd64";
    request.ram = "512MB";
    request.ip = ip;
    request.description = "";
    return request;
  }

  ServerView Add(const Caller& caller, const std::string& name, const std::string& ip) {
    return grid_.AddServer(caller, AddRequest(name, ip));
  }

  // Claims every runnable job and marks it Succeeded, as the workers would.
  void FinishPendingJobs() {
    while (true) {
      auto job = db_.Write([&](store::Connection& c) {
        auto claimed = store::jobs::Claim(c, clock_.NowMs(), 60'000);
        if (claimed) {
          store::jobs::Finish(c, claimed->id, job_state::kSucceeded, std::nullopt, clock_.NowMs());
        }
        return claimed;
      });
      if (!job) return;
    }
  }

  void SetServerState(int64_t server_id, int64_t state) {
    db_.Write([&](store::Connection& c) {
      store::servers::SetState(c, server_id, state, clock_.NowMs());
    });
  }

  Server GetServer(const Caller& caller, int64_t id) {
    auto server = db_.Read(
        [&](store::Connection& c) { return store::servers::Get(c, caller.account_id, id); });
    EXPECT_TRUE(server.has_value()) << "server " << id;
    return server.value_or(Server{});
  }

  int64_t Count(const std::string& sql) {
    return db_.Read([&](store::Connection& c) {
      auto s = c.Prepare(sql);
      s.Step();
      return s.Int(0);
    });
  }

  Snapshot Take() {
    Snapshot s;
    s.servers = Count("SELECT count(*) FROM servers");
    s.jobs = Count("SELECT count(*) FROM jobs");
    s.job_history = Count("SELECT count(*) FROM job_history");
    s.assigned_ips = Count("SELECT count(*) FROM ips WHERE state = 2 OR server_id IS NOT NULL");
    s.passwords = Count("SELECT count(*) FROM passwords");
    s.server_rows = db_.Read([](store::Connection& c) {
      auto q = c.Prepare(
          "SELECT coalesce(group_concat(id || ':' || name || ':' || state || ':' || ram || ':' || "
          "type || ':' || deleting || ':' || description || ':' || updated_ms, ';'), '') "
          "FROM (SELECT * FROM servers ORDER BY id)");
      q.Step();
      return q.Text(0);
    });
    s.queued_callbacks = queued_callbacks_;
    return s;
  }

  // Runs `fn`, expects a 400 IllegalArgumentException and returns its message.
  template <typename F>
  static std::string IllegalArgument(F&& fn) {
    try {
      fn();
    } catch (const ApiError& error) {
      EXPECT_EQ(error.error_class(), ErrorClass::kIllegalArgument) << error.what();
      return error.what();
    }
    ADD_FAILURE() << "no ApiError was thrown";
    return "";
  }

  // Like IllegalArgument, and also expects that nothing in the database changed and no job
  // was announced.
  template <typename F>
  std::string Rejected(F&& fn) {
    const Snapshot before = Take();
    std::string message = IllegalArgument(std::forward<F>(fn));
    EXPECT_EQ(Take(), before) << "rejected with '" << message << "' but changed the grid";
    return message;
  }

  static Selector ById(int64_t id) { return Selector{Selector::Kind::kId, std::to_string(id)}; }
  static Selector ByName(const std::string& name) { return Selector{Selector::Kind::kName, name}; }
  static Selector ByEither(const std::string& value) {
    return Selector{Selector::Kind::kIdOrName, value};
  }

  store::Database db_;
  Catalog catalog_;
  ManualClock clock_;
  SecretBox box_;
  AccountService accounts_;
  int queued_callbacks_ = 0;
  GridService grid_;
  Caller alice_;
  Caller bob_;
};

}  // namespace gridd::domain::testing
