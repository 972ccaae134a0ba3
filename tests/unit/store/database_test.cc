#include "gridd/store/database.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "gridd/store/repositories.h"
#include "support/test_paths.h"

namespace gridd::store {
namespace {

namespace fs = std::filesystem;

std::string TempDatabase() {
  return (gridd::testing::ScratchDir("gridd-db-test") / "gridd.db").string();
}

int64_t UserVersion(Connection& c) {
  auto s = c.Prepare("PRAGMA user_version");
  s.Step();
  return s.Int(0);
}

int64_t CountOs(Connection& c) {
  auto s = c.Prepare("SELECT count(*) FROM operating_systems");
  s.Step();
  return s.Int(0);
}

std::string JournalMode(Connection& c) {
  auto s = c.Prepare("PRAGMA journal_mode");
  s.Step();
  return s.Text(0);
}

TEST(DatabaseTest, InMemoryDatabaseIsMigratedToTheLatestSchema) {
  Database db(":memory:");
  EXPECT_GE(LatestSchemaVersion(), 1);
  EXPECT_EQ(db.schema_version(), LatestSchemaVersion());
  db.Read([](Connection& c) {
    EXPECT_EQ(UserVersion(c), LatestSchemaVersion());
    for (const char* table :
         {"accounts", "api_keys", "datacenters", "operating_systems", "ip_pools", "ips", "images",
          "servers", "passwords", "jobs", "job_history"}) {
      auto s = c.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?");
      s.Bind(1, table);
      s.Step();
      EXPECT_EQ(s.Int(0), 1) << "missing table " << table;
    }
    // The operating systems GoGrid clients know by id come with the schema.
    EXPECT_EQ(CountOs(c), 12);
  });
}

TEST(DatabaseTest, FileDatabaseUsesWalOnWriterAndReaders) {
  Database db(TempDatabase());
  EXPECT_EQ(db.Write([](Connection& c) { return JournalMode(c); }), "wal");
  EXPECT_EQ(db.Read([](Connection& c) { return JournalMode(c); }), "wal");
}

// Only gridd may touch its database while it runs: another process (an operator's sqlite3,
// a second daemon pointed at the same file) is refused instead of reading or writing beside
// it; the file opens normally once gridd has let go of it.
TEST(DatabaseTest, AnotherProcessCannotOpenTheFileWhileItIsOpen) {
  const std::string path = TempDatabase();
  // A process of its own (not a fork, which would inherit this one's SQLite state): Debian's
  // Python reads the schema through the system's libsqlite3; its exit status is the SQLite
  // result code, 5 being SQLITE_BUSY ("database is locked").
  auto read_from_another_process = [&path] {
    static constexpr char kRead[] =
        "import sqlite3, sys\n"
        "try:\n"
        "    db = sqlite3.connect(sys.argv[1], timeout=0)\n"
        "    db.execute('SELECT count(*) FROM sqlite_master').fetchall()\n"
        "except sqlite3.OperationalError as e:\n"
        "    sys.exit(5 if 'locked' in str(e) else 1)\n";
    const pid_t child = ::fork();
    if (child == 0) {
      ::execl("/usr/bin/python3", "python3", "-I", "-c", kRead, path.c_str(), nullptr);
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  {
    Database db(path);
    db.Write([](Connection& c) { accounts::Insert(c, "alice", 1000); });
    EXPECT_EQ(read_from_another_process(), SQLITE_BUSY);
    // This process's own connections still share the file.
    Database second(path);
    EXPECT_TRUE(second.Read([](Connection& c) { return accounts::FindByName(c, "alice"); }));
  }
  EXPECT_EQ(read_from_another_process(), SQLITE_OK);
}

TEST(DatabaseTest, ForeignKeysAreEnforced) {
  Database db(":memory:");
  EXPECT_THROW(db.Write([](Connection& c) {
    c.Prepare(
         "INSERT INTO servers (account_id, name, image_id, ram, type, state, ip_id, mac, "
         "created_ms, updated_ms) VALUES (999, 'x', 999, 1, 1, 1, 999, 'm', 0, 0)")
        .Run();
  }),
               StoreError);
}

TEST(DatabaseTest, ReopeningKeepsDataAndDoesNotMigrateAgain) {
  const std::string path = TempDatabase();
  {
    Database db(path);
    db.Write([](Connection& c) {
      accounts::Insert(c, "alice", 1000);
      // A row the first migration inserts: if the migration ran again it would come back
      // (or the CREATE TABLEs would fail).
      c.Exec("DELETE FROM operating_systems WHERE id = 1");
    });
  }
  Database reopened(path);
  EXPECT_EQ(reopened.schema_version(), LatestSchemaVersion());
  reopened.Read([](Connection& c) {
    EXPECT_EQ(UserVersion(c), LatestSchemaVersion());
    auto alice = accounts::FindByName(c, "alice");
    ASSERT_TRUE(alice.has_value());
    EXPECT_EQ(alice->created_ms, 1000);
    EXPECT_EQ(CountOs(c), 11);
  });
}

// A database written before migration 5, with objects already deleted: the upgrade keeps
// every row (none cascades away), and no id a client was ever given comes back.
TEST(DatabaseTest, UpgradeNeverHandsOutTheIdsOfObjectsDeletedBeforeIt) {
  const std::string path = TempDatabase();
  {
    // The schema as it was before migration 5: today's, without AUTOINCREMENT and without
    // what later migrations added (the hosts table and servers.host_id, the server counters).
    std::vector<std::string> old_schema;
    Database current(":memory:");
    current.Read([&](Connection& c) {
      auto s = c.Prepare(
          "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'sqlite_sequence' "
          "AND name NOT IN ('hosts', 'servers_by_host_ram', 'servers_by_account_type') "
          "AND name NOT LIKE 'server_counts%' ORDER BY type = 'index', rowid");
      while (s.Step()) {
        std::string sql = s.Text(0);
        const std::string host_column = ", host_id INTEGER REFERENCES hosts(id)";
        if (auto at = sql.find(host_column); at != std::string::npos) {
          sql.erase(at, host_column.size());
        }
        for (auto at = sql.find(" AUTOINCREMENT"); at != std::string::npos;
             at = sql.find(" AUTOINCREMENT")) {
          sql.erase(at, std::string(" AUTOINCREMENT").size());
        }
        old_schema.push_back(sql);
      }
    });
    Connection old(path);
    for (const auto& sql : old_schema) old.Exec(sql);
    old.Exec(R"sql(
INSERT INTO accounts VALUES (1, 'alice', 0);
INSERT INTO datacenters VALUES (1, 'US-West-1', 'US West 1');
INSERT INTO operating_systems VALUES (10, 'CentOS 5.1 (64-bit)', 'CentOS');
INSERT INTO ip_pools VALUES (1, 1, 1, 1, '10.1.0.0/24', '10.1.0.0/255.255.255.0', 'net', 0);
INSERT INTO ips VALUES (1, 1, 1, '10.1.0.2', 2, 3), (2, 1, 1, '10.1.0.3', 2, NULL),
                       (3, 1, 1, '10.1.0.4', 1, NULL);
INSERT INTO images (id, owner_account_id, name, friendly_name, os_id, architecture, type, state,
                    location, is_public, storage_pool, volume, created_ms, updated_ms,
                    parent_image_id)
  VALUES (1, NULL, 'base', 'Base', 10, 2, 1, 2, 'gridd/base', 1, 'gridd', 'base.qcow2', 0, 0,
          NULL),
         (2, 1, 'GSI-saved', 'Saved', 10, 2, 2, 2, 'gridd/saved', 0, 'gridd', 'saved.qcow2', 0,
          0, 1);
INSERT INTO servers (id, account_id, name, image_id, ram, type, state, ip_id, mac, created_ms,
                     updated_ms)
  VALUES (3, 1, 'web1', 2, 1, 1, 1, 1, '52:54:00:00:00:01', 0, 0);
INSERT INTO load_balancers (id, account_id, name, vip_id, port, type, persistence, state,
                            created_ms, updated_ms)
  VALUES (4, 1, 'lb1', 2, 80, 1, 1, 1, 0, 0);
INSERT INTO load_balancer_members (lb_id, position, ip_id, port) VALUES (4, 0, 3, 8080);
-- Ids handed out earlier whose rows are gone: image 9 (a failed save), server 7 and load
-- balancer 5, remembered by their jobs and metering.
INSERT INTO jobs (id, account_id, object_type, object_id, object_name, command, state, owner,
                  detail, next_run_ms, created_ms, updated_ms)
  VALUES (20, 1, 5, 9, 'GSI-failed', 12, 4, 'k@api', '{}', 0, 0, 0),
         (21, 1, 1, 7, 'gone', 1, 3, 'k@api', '{}', 0, 0, 0);
INSERT INTO server_usage (account_id, server_id, ram, powered_on, start_ms, end_ms)
  VALUES (1, 7, 1, 1, 0, 10);
INSERT INTO transfer_counters VALUES (5, 0, 0, 0);
PRAGMA user_version = 4;
)sql");
  }
  Database upgraded(path);
  ASSERT_EQ(upgraded.schema_version(), LatestSchemaVersion());
  auto count = [](Connection& c, const std::string& sql) {
    auto s = c.Prepare(sql);
    s.Step();
    return s.Int(0);
  };
  upgraded.Read([&](Connection& c) {
    EXPECT_EQ(count(c, "SELECT count(*) FROM images"), 2);
    EXPECT_EQ(count(c, "SELECT count(*) FROM servers"), 1);
    EXPECT_EQ(count(c, "SELECT count(*) FROM load_balancer_members"), 1) << "no cascade";
    EXPECT_EQ(count(c, "SELECT count(*) FROM jobs"), 2);
    EXPECT_EQ(count(c, "SELECT count(*) FROM sqlite_master WHERE name = 'servers_by_account'"), 1);
    auto saved = images::GetAny(c, 2);
    ASSERT_TRUE(saved.has_value());
    EXPECT_EQ(saved->parent_image_id, 1);
    // Hosts: one "default" host (the configured URI, every datacenter) runs the old servers.
    auto all_hosts = hosts::List(c);
    ASSERT_EQ(all_hosts.size(), 1u);
    EXPECT_EQ(all_hosts[0].name, "default");
    EXPECT_EQ(all_hosts[0].uri, "");
    EXPECT_FALSE(all_hosts[0].datacenter_id.has_value());
    EXPECT_EQ(servers::GetAny(c, 3)->host_id, all_hosts[0].id);
  });
  upgraded.Write([&](Connection& c) {
    Image image = *images::GetAny(c, 2);
    image.name = "GSI-next";
    EXPECT_GT(images::InsertPrivate(c, image), 9);
    EXPECT_GT(count(c, "SELECT seq FROM sqlite_sequence WHERE name = 'servers'"), 6);
    EXPECT_GT(count(c, "SELECT seq FROM sqlite_sequence WHERE name = 'load_balancers'"), 4);
    EXPECT_EQ(count(c, "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"), 21);
  });
  // Foreign keys are enforced again after the upgrade.
  EXPECT_THROW(upgraded.Write([](Connection& c) { c.Exec("DELETE FROM images WHERE id = 1"); }),
               StoreError);
}

// A database of schema 9, from before the server counters (migration 10), with servers in it:
// the upgrade counts them, and from then on the counters follow every insert and delete.
TEST(DatabaseTest, UpgradeCountsTheServersAlreadyThere) {
  constexpr int kBeforeServerCounts = 9;
  const std::string path = TempDatabase();
  { Database created(path); }
  {
    Connection old(path);
    old.Exec(R"sql(
DROP TRIGGER server_counts_on_insert;
DROP TRIGGER server_counts_on_delete;
DROP TRIGGER server_counts_on_update;
DROP TABLE server_counts;
DROP INDEX servers_by_account_type;
INSERT INTO accounts VALUES (1, 'alice', 0), (2, 'bob', 0), (3, 'carol', 0);
INSERT INTO datacenters VALUES (1, 'US-West-1', 'US West 1');
INSERT INTO ip_pools VALUES (1, 1, NULL, 1, '10.1.0.0/24', '10.1.0.0/255.255.255.0', '', 0);
INSERT INTO ips (id, pool_id, account_id, address, state, server_id) VALUES
  (1, 1, 1, '10.1.0.2', 2, 1), (2, 1, 1, '10.1.0.3', 2, 2), (3, 1, 1, '10.1.0.4', 2, 3),
  (4, 1, 2, '10.1.0.5', 2, 4), (5, 1, 1, '10.1.0.6', 1, NULL);
INSERT INTO images (id, owner_account_id, name, friendly_name, os_id, architecture, type, state,
                    location, is_public, storage_pool, volume, created_ms, updated_ms)
  VALUES (1, NULL, 'base', 'Base', 10, 2, 1, 2, 'gridd/base', 1, 'gridd', 'base.qcow2', 0, 0);
INSERT INTO servers (id, account_id, name, image_id, ram, type, state, ip_id, mac, created_ms,
                     updated_ms)
  VALUES (1, 1, 'web1', 1, 1, 1, 2, 1, 'm1', 0, 0), (2, 1, 'web2', 1, 1, 1, 2, 2, 'm2', 0, 0),
         (3, 1, 'db1', 1, 1, 2, 2, 3, 'm3', 0, 0), (4, 2, 'bob1', 1, 1, 1, 2, 4, 'm4', 0, 0);
)sql");
    old.Exec("PRAGMA user_version = " + std::to_string(kBeforeServerCounts));
  }
  Database upgraded(path);
  ASSERT_EQ(upgraded.schema_version(), LatestSchemaVersion());
  upgraded.Read([](Connection& c) {
    EXPECT_EQ(servers::Count(c, 1, std::nullopt), 3);
    EXPECT_EQ(servers::Count(c, 1, 1), 2);
    EXPECT_EQ(servers::Count(c, 1, 2), 1);
    EXPECT_EQ(servers::Count(c, 2, std::nullopt), 1);
    EXPECT_EQ(servers::Count(c, 3, std::nullopt), 0);
  });
  upgraded.Write([](Connection& c) {
    Server server;
    server.account_id = 1;
    server.name = "web3";
    server.image_id = 1;
    server.type = 2;
    server.ip_id = 5;
    servers::Insert(c, server);
    servers::Delete(c, 1, 0);
  });
  upgraded.Read([](Connection& c) {
    EXPECT_EQ(servers::Count(c, 1, std::nullopt), 3);
    EXPECT_EQ(servers::Count(c, 1, 1), 1);
    EXPECT_EQ(servers::Count(c, 1, 2), 2);
  });
}

TEST(DatabaseTest, RefusesADatabaseFromANewerGridd) {
  const std::string path = TempDatabase();
  { Database db(path); }
  {
    Connection raw(path);
    raw.Exec("PRAGMA user_version = " + std::to_string(LatestSchemaVersion() + 1));
  }
  try {
    Database db(path);
    FAIL() << "opened a database with a newer schema";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("newer"), std::string::npos) << error.what();
  }
  // Nothing was changed by the refused open.
  Connection raw(path);
  EXPECT_EQ(UserVersion(raw), LatestSchemaVersion() + 1);
}

TEST(DatabaseTest, WriteReturnsTheLambdasResultAndCommits) {
  Database db(":memory:");
  const int64_t id = db.Write([](Connection& c) { return accounts::Insert(c, "alice", 1); });
  EXPECT_GT(id, 0);
  EXPECT_EQ(db.Read([](Connection& c) { return accounts::Count(c); }), 1);
}

TEST(DatabaseTest, WriteRollsBackWhenTheLambdaThrows) {
  for (const std::string& path : {std::string(":memory:"), TempDatabase()}) {
    Database db(path);
    EXPECT_THROW(db.Write([](Connection& c) {
      accounts::Insert(c, "alice", 1);
      accounts::Insert(c, "bob", 1);
      throw std::invalid_argument("validation failed");
    }),
                 std::invalid_argument);
    EXPECT_EQ(db.Read([](Connection& c) { return accounts::Count(c); }), 0) << path;
    // The writer is usable again: no transaction was left open.
    db.Write([](Connection& c) { accounts::Insert(c, "carol", 1); });
    EXPECT_EQ(db.Read([](Connection& c) { return accounts::Count(c); }), 1) << path;
  }
}

TEST(DatabaseTest, WriteRollsBackWhenAStatementFails) {
  Database db(TempDatabase());
  db.Write([](Connection& c) { accounts::Insert(c, "alice", 1); });
  EXPECT_THROW(db.Write([](Connection& c) {
    accounts::Insert(c, "bob", 1);
    accounts::Insert(c, "ALICE", 1);  // names are unique, ignoring case
  }),
               StoreError);
  db.Read([](Connection& c) {
    EXPECT_EQ(accounts::Count(c), 1);
    EXPECT_FALSE(accounts::FindByName(c, "bob").has_value());
  });
}

TEST(DatabaseTest, ReadSeesWritesCommittedAfterItsLastUseOnEveryReader) {
  // A reader whose cached statement is left un-reset keeps its old snapshot: the second round
  // of reads would still see 0 accounts. Nesting takes all four reader connections.
  Database db(TempDatabase(), 4);
  auto count_on_every_reader = [&] {
    return db.Read([&](Connection& a) {
      return db.Read([&](Connection& b) {
        return db.Read([&](Connection& c) {
          return db.Read([&](Connection& d) {
            return std::vector<int64_t>{accounts::Count(a), accounts::Count(b), accounts::Count(c),
                                        accounts::Count(d)};
          });
        });
      });
    });
  };
  EXPECT_EQ(count_on_every_reader(), (std::vector<int64_t>{0, 0, 0, 0}));
  db.Write([](Connection& c) { accounts::Insert(c, "alice", 1); });
  EXPECT_EQ(count_on_every_reader(), (std::vector<int64_t>{1, 1, 1, 1}));

  // The same with a query that stops after the first of several rows.
  auto newest_name = [&] {
    return db.Read([](Connection& c) {
      auto s = c.Prepare("SELECT name FROM accounts ORDER BY id DESC");
      s.Step();
      return s.Text(0);
    });
  };
  db.Write([](Connection& c) { accounts::Insert(c, "bob", 1); });
  EXPECT_EQ(newest_name(), "bob");
  db.Write([](Connection& c) { accounts::Insert(c, "carol", 1); });
  EXPECT_EQ(newest_name(), "carol");
  EXPECT_EQ(db.Read([](Connection& c) { return accounts::List(c).size(); }), 3u);
  for (int i = 0; i < 8; ++i) {
    db.Write([&](Connection& c) { accounts::Insert(c, "user" + std::to_string(i), 1); });
    EXPECT_EQ(db.Read([](Connection& c) { return accounts::Count(c); }), 4 + i);
  }
}

TEST(DatabaseTest, ReadersSeeOnlyCommittedData) {
  Database db(TempDatabase());
  db.Write([&](Connection& c) {
    accounts::Insert(c, "alice", 1);
    // WAL: a reader does not wait for the open write transaction and does not see it.
    EXPECT_EQ(db.Read([](Connection& r) { return accounts::Count(r); }), 0);
  });
  EXPECT_EQ(db.Read([](Connection& r) { return accounts::Count(r); }), 1);
}

TEST(DatabaseTest, AtomicJoinsTheWritesAndReadsMadeInsideIt) {
  Database db(TempDatabase());
  db.Atomic([&](Connection&) {
    db.Write([](Connection& c) { accounts::Insert(c, "alice", 1); });
    // Inside Atomic a read sees the transaction's own change (a service reads back what it wrote).
    EXPECT_EQ(db.Read([](Connection& r) { return accounts::Count(r); }), 1);
    db.Write([](Connection& c) { accounts::Insert(c, "bob", 1); });
  });
  EXPECT_EQ(db.Read([](Connection& r) { return accounts::Count(r); }), 2);
}

TEST(DatabaseTest, AtomicCommitsNothingWhenAnyPartThrows) {
  Database db(TempDatabase());
  EXPECT_THROW(db.Atomic([&](Connection&) {
    db.Write([](Connection& c) { accounts::Insert(c, "alice", 1); });
    db.Write([](Connection&) { throw std::runtime_error("second change refused"); });
  }),
               std::runtime_error);
  EXPECT_EQ(db.Read([](Connection& r) { return accounts::Count(r); }), 0);
  // A nested write that throws and is handled rolls back only its own part.
  db.Atomic([&](Connection&) {
    db.Write([](Connection& c) { accounts::Insert(c, "alice", 1); });
    try {
      db.Write([](Connection& c) {
        accounts::Insert(c, "bob", 1);
        throw std::runtime_error("refused");
      });
    } catch (const std::runtime_error&) {
    }
  });
  EXPECT_EQ(db.Read([](Connection& r) { return accounts::Count(r); }), 1);
}

TEST(DatabaseTest, BackupIsAPrivateSelfContainedCopyTakenWhileWritesGoOn) {
  const fs::path dir = gridd::testing::ScratchDir("gridd-db-test");
  Database db((dir / "gridd.db").string());
  db.Write([](Connection& c) { accounts::Insert(c, "alice", 1); });
  // An open write transaction elsewhere does not block the copy, and is not in it.
  db.Write([&](Connection& c) {
    accounts::Insert(c, "bob", 1);
    db.BackupTo(dir / "backup.db");
  });
  EXPECT_EQ(fs::status(dir / "backup.db").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_FALSE(fs::exists(dir / "backup.db-wal"));
  Database restored((dir / "backup.db").string());
  EXPECT_EQ(restored.Read([](Connection& r) { return accounts::Count(r); }), 1);
  EXPECT_EQ(restored.schema_version(), LatestSchemaVersion());
  EXPECT_THROW(db.BackupTo(dir / "missing" / "backup.db"), std::exception);
}

TEST(DatabaseTest, ReadCannotModifyTheDatabase) {
  Database db(TempDatabase());
  EXPECT_THROW(db.Read([](Connection& c) { accounts::Insert(c, "alice", 1); }), StoreError);
  EXPECT_EQ(db.Read([](Connection& c) { return accounts::Count(c); }), 0);
}

TEST(DatabaseTest, ReadRecoversAfterTheLambdaThrows) {
  Database db(TempDatabase(), 1);
  EXPECT_THROW(db.Read([](Connection& c) {
    accounts::Count(c);
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  db.Write([](Connection& c) { accounts::Insert(c, "alice", 1); });
  EXPECT_EQ(db.Read([](Connection& c) { return accounts::Count(c); }), 1);
}

TEST(DatabaseTest, OpeningAnUnusablePathFails) {
  const fs::path dir = gridd::testing::ScratchDir("gridd-db-test");
  EXPECT_THROW(Database((dir / "missing" / "gridd.db").string()), StoreError);
}

TEST(StatementTest, BindsAndReadsEveryType) {
  Database db(":memory:");
  db.Write([](Connection& c) {
    c.Exec("CREATE TABLE t (i INTEGER, d REAL, s TEXT, b BLOB, n INTEGER)");
    const std::string blob("a\0b\xff", 4);
    c.Prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?)")
        .Bind(1, int64_t{1} << 40)
        .Bind(2, 2.5)
        .Bind(3, std::string("h\xC3\xA9llo"))
        .BindBlob(4, blob)
        .Bind(5, std::optional<int64_t>())
        .Run();
    auto s = c.Prepare("SELECT i, d, s, b, n FROM t");
    ASSERT_TRUE(s.Step());
    EXPECT_EQ(s.Int(0), int64_t{1} << 40);
    EXPECT_EQ(s.Double(1), 2.5);
    EXPECT_EQ(s.Text(2), "h\xC3\xA9llo");
    EXPECT_EQ(s.Blob(3), blob);
    EXPECT_TRUE(s.IsNull(4));
    EXPECT_EQ(s.OptionalInt(4), std::nullopt);
    EXPECT_EQ(s.OptionalText(4), std::nullopt);
    EXPECT_EQ(s.OptionalInt(0), int64_t{1} << 40);
    EXPECT_FALSE(s.Step());
  });
}

TEST(StatementTest, ValuesAreBoundNeverSpliced) {
  Database db(":memory:");
  db.Write([](Connection& c) {
    accounts::Insert(c, "x'); DROP TABLE accounts; --", 1);
    EXPECT_TRUE(accounts::FindByName(c, "x'); DROP TABLE accounts; --").has_value());
    EXPECT_EQ(accounts::Count(c), 1);
  });
}

TEST(StatementTest, BadSqlIsAStoreError) {
  Database db(":memory:");
  EXPECT_THROW(db.Write([](Connection& c) { c.Prepare("SELECT nothing FROM nowhere"); }),
               StoreError);
  EXPECT_THROW(db.Write([](Connection& c) { c.Exec("NOT SQL"); }), StoreError);
}

}  // namespace
}  // namespace gridd::store
