// Versioned schema migrations. The database's PRAGMA user_version records how many have been
// applied; each runs in its own transaction, so a crash mid-migration leaves the previous
// version intact. Never edit a released migration: append a new one.
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gridd/store/database.h"

namespace gridd::store {
namespace {

// A migration is SQL text, or code for what SQL alone cannot say (rebuilding a table whatever
// columns earlier migrations gave it).
struct Migration {
  Migration(const char* sql_text) : sql(sql_text) {}  // NOLINT: a list of SQL texts reads best
  explicit Migration(void (*code_fn)(Connection&)) : code(code_fn) {}
  std::string_view sql;
  void (*code)(Connection&) = nullptr;
};

// Rebuilds `table` with `id INTEGER PRIMARY KEY AUTOINCREMENT`, keeping its columns, rows,
// indexes and triggers. Without AUTOINCREMENT SQLite gives a new row the largest id plus one,
// so deleting the newest row hands its id to the next one. The sequence starts above every id
// the table ever handed out that other tables still remember (`remembered_ids` is a query
// returning such ids). Runs with foreign keys off (see Migrate), as SQLite's table-rebuild
// procedure requires: dropping the old table must not cascade into its children.
void RebuildWithAutoincrement(Connection& c, const std::string& table,
                              const std::string& remembered_ids) {
  std::string create;
  {
    auto read_sql = c.Prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?");
    read_sql.Bind(1, table);
    if (!read_sql.Step()) throw StoreError(0, "migration 5: no table " + table);
    create = read_sql.Text(0);
  }
  if (create.find("AUTOINCREMENT") != std::string::npos) return;
  const std::regex head("^CREATE TABLE \"?" + table + "\"?\\s*\\(");
  const std::regex id_column("\\bid\\s+INTEGER\\s+PRIMARY\\s+KEY\\b", std::regex::icase);
  if (!std::regex_search(create, head) || !std::regex_search(create, id_column)) {
    throw StoreError(0, "migration 5: unexpected schema of " + table + ": " + create);
  }
  std::string rebuilt = std::regex_replace(create, head, "CREATE TABLE " + table + "_rebuilt (",
                                           std::regex_constants::format_first_only);
  rebuilt = std::regex_replace(rebuilt, id_column, "id INTEGER PRIMARY KEY AUTOINCREMENT",
                               std::regex_constants::format_first_only);
  std::vector<std::string> dependents;  // indexes and triggers, recreated after the swap
  {
    auto read_dependents = c.Prepare(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND "
        "sql IS NOT NULL");
    read_dependents.Bind(1, table);
    while (read_dependents.Step()) dependents.push_back(read_dependents.Text(0));
  }

  c.Exec(rebuilt);
  c.Exec("INSERT INTO " + table + "_rebuilt SELECT * FROM " + table);
  c.Exec("DROP TABLE " + table);
  c.Exec("ALTER TABLE " + table + "_rebuilt RENAME TO " + table);
  for (const auto& sql : dependents) c.Exec(sql);
  // The copy set the sequence to the largest id left; ids of deleted rows that other tables
  // still name (jobs, metering) count too.
  // (sqlite_sequence has no key to replace on, so its row is written anew.)
  c.Exec("DELETE FROM sqlite_sequence WHERE name = '" + table + "'");
  c.Exec("INSERT INTO sqlite_sequence (name, seq) SELECT '" + table +
         "', max(coalesce((SELECT max(id) FROM " + table + "), 0), coalesce((" + remembered_ids +
         "), 0))");
}

// Per-key signing policy ('any': GoGrid's MD5 or HMAC-SHA256; 'hmac': HMAC-SHA256 only) and
// key rotation (the replaced secret, sealed like the current one, verifies until
// previous_secret_until_ms). A column is added only where missing, so a database whose
// api_keys table was created with today's schema upgrades as well.
void AddApiKeySigningAndRotation(Connection& c) {
  std::set<std::string> columns;
  {
    auto info = c.Prepare("PRAGMA table_info(api_keys)");
    while (info.Step()) columns.insert(info.Text(1));
  }
  const std::pair<const char*, const char*> added[] = {
      {"signing", "signing TEXT NOT NULL DEFAULT 'any' CHECK (signing IN ('any', 'hmac'))"},
      {"previous_secret_enc", "previous_secret_enc BLOB"},
      {"previous_secret_until_ms", "previous_secret_until_ms INTEGER"},
  };
  for (const auto& [name, definition] : added) {
    if (!columns.contains(name))
      c.Exec(std::string("ALTER TABLE api_keys ADD COLUMN ") + definition);
  }
}

void NeverReuseObjectIds(Connection& c) {
  // Job object types (domain::job_object_type): 1 server, 2 load balancer, 5 image.
  RebuildWithAutoincrement(c, "images", "SELECT max(object_id) FROM jobs WHERE object_type = 5");
  RebuildWithAutoincrement(
      c, "servers",
      "SELECT max(m) FROM (SELECT max(object_id) AS m FROM jobs WHERE object_type = 1 "
      "UNION ALL SELECT max(server_id) FROM server_usage)");
  RebuildWithAutoincrement(
      c, "load_balancers",
      "SELECT max(m) FROM (SELECT max(object_id) AS m FROM jobs WHERE object_type = 2 "
      "UNION ALL SELECT max(load_balancer_id) FROM transfer_usage "
      "UNION ALL SELECT max(load_balancer_id) FROM transfer_counters)");
  RebuildWithAutoincrement(c, "passwords", "SELECT NULL");
  RebuildWithAutoincrement(c, "jobs", "SELECT max(job_id) FROM job_history");
}

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> migrations = {
      // 1: accounts, keys, datacenters, addresses, images, servers, passwords, jobs.
      R"sql(
CREATE TABLE accounts (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
  created_ms  INTEGER NOT NULL
);
CREATE TABLE api_keys (
  id          INTEGER PRIMARY KEY,
  account_id  INTEGER NOT NULL REFERENCES accounts(id),
  api_key     TEXT NOT NULL UNIQUE,
  secret_enc  BLOB NOT NULL,
  role        INTEGER NOT NULL,
  revoked     INTEGER NOT NULL DEFAULT 0,
  created_ms  INTEGER NOT NULL
);
CREATE TABLE datacenters (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
  description  TEXT NOT NULL
);
CREATE TABLE operating_systems (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE COLLATE NOCASE,
  description  TEXT NOT NULL
);
CREATE TABLE ip_pools (
  id             INTEGER PRIMARY KEY,
  datacenter_id  INTEGER NOT NULL REFERENCES datacenters(id),
  account_id     INTEGER REFERENCES accounts(id),
  public         INTEGER NOT NULL,
  cidr           TEXT NOT NULL UNIQUE,
  subnet         TEXT NOT NULL,
  network        TEXT NOT NULL,
  created_ms     INTEGER NOT NULL
);
CREATE TABLE ips (
  id             INTEGER PRIMARY KEY,
  pool_id        INTEGER NOT NULL REFERENCES ip_pools(id),
  account_id     INTEGER REFERENCES accounts(id),
  address        TEXT NOT NULL UNIQUE,
  state          INTEGER NOT NULL DEFAULT 1,
  server_id      INTEGER
);
CREATE INDEX ips_by_account ON ips(account_id, id);
CREATE INDEX ips_by_pool ON ips(pool_id, account_id);
CREATE TABLE images (
  id                INTEGER PRIMARY KEY,
  owner_account_id  INTEGER REFERENCES accounts(id),
  name              TEXT NOT NULL UNIQUE,
  friendly_name     TEXT NOT NULL,
  description       TEXT NOT NULL DEFAULT '',
  os_id             INTEGER NOT NULL REFERENCES operating_systems(id),
  architecture      INTEGER NOT NULL,
  type              INTEGER NOT NULL,
  state             INTEGER NOT NULL,
  price             REAL NOT NULL DEFAULT 0,
  location          TEXT NOT NULL,
  is_active         INTEGER NOT NULL DEFAULT 1,
  is_public         INTEGER NOT NULL,
  storage_pool      TEXT NOT NULL,
  volume            TEXT NOT NULL,
  created_ms        INTEGER NOT NULL,
  updated_ms        INTEGER NOT NULL
);
CREATE TABLE servers (
  id             INTEGER PRIMARY KEY,
  account_id     INTEGER NOT NULL REFERENCES accounts(id),
  name           TEXT NOT NULL,
  description    TEXT NOT NULL DEFAULT '',
  image_id       INTEGER NOT NULL REFERENCES images(id),
  ram            INTEGER NOT NULL,
  type           INTEGER NOT NULL,
  state          INTEGER NOT NULL,
  ip_id          INTEGER NOT NULL UNIQUE REFERENCES ips(id),
  mac            TEXT NOT NULL UNIQUE,
  deleting       INTEGER NOT NULL DEFAULT 0,
  created_ms     INTEGER NOT NULL,
  updated_ms     INTEGER NOT NULL
);
CREATE INDEX servers_by_account ON servers(account_id, id);
CREATE TABLE passwords (
  id               INTEGER PRIMARY KEY,
  account_id       INTEGER NOT NULL REFERENCES accounts(id),
  server_id        INTEGER UNIQUE,
  applicationtype  TEXT NOT NULL,
  username         TEXT NOT NULL,
  password_enc     BLOB NOT NULL,
  created_ms       INTEGER NOT NULL
);
CREATE INDEX passwords_by_account ON passwords(account_id, id);
CREATE TABLE jobs (
  id             INTEGER PRIMARY KEY,
  account_id     INTEGER NOT NULL REFERENCES accounts(id),
  object_type    INTEGER NOT NULL,
  object_id      INTEGER NOT NULL,
  object_name    TEXT NOT NULL,
  command        INTEGER NOT NULL,
  state          INTEGER NOT NULL,
  attempts       INTEGER NOT NULL DEFAULT 0,
  owner          TEXT NOT NULL,
  detail         TEXT NOT NULL,
  datacenter_id  INTEGER,
  payload        TEXT NOT NULL DEFAULT '{}',
  error          TEXT,
  lease_until_ms INTEGER,
  next_run_ms    INTEGER NOT NULL,
  created_ms     INTEGER NOT NULL,
  updated_ms     INTEGER NOT NULL
);
CREATE INDEX jobs_runnable ON jobs(state, next_run_ms);
CREATE INDEX jobs_by_object ON jobs(object_type, object_id, state);
CREATE INDEX jobs_by_account ON jobs(account_id, id);
CREATE TABLE job_history (
  id       INTEGER PRIMARY KEY,
  job_id   INTEGER NOT NULL REFERENCES jobs(id),
  state    INTEGER NOT NULL,
  note     TEXT,
  at_ms    INTEGER NOT NULL
);
CREATE INDEX job_history_by_job ON job_history(job_id, id);
INSERT INTO operating_systems (id, name, description) VALUES
  (1, 'Windows 2003 Standard (32-bit)', 'Windows 2003 Standard (32-bit)'),
  (2, 'Windows 2003 Standard (64-bit)', 'Windows 2003 Standard (64-bit)'),
  (5, 'CentOS 4.4 (32-bit)', 'CentOS Linux 4.4 (32-bit)'),
  (9, 'RHEL 5.1 (64-bit)', 'RHEL Linux 5.1 (64-bit)'),
  (10, 'CentOS 5.1 (64-bit)', 'CentOS Linux 5.1 (64-bit)'),
  (11, 'Windows 2008 Server (32-bit)', 'Windows 2008 Server (32-bit)'),
  (12, 'Windows 2008 Server (64-bit)', 'Windows 2008 Server (64-bit)'),
  (13, 'CentOS 5.2 (32-bit)', 'CentOS 5.2 (32-bit)'),
  (16, 'CentOS 5.3 (32-bit)', 'CentOS 5.3 (32-bit)'),
  (17, 'CentOS 5.3 (64-bit)', 'CentOS 5.3 (64-bit)'),
  (18, 'RHEL 5.4 (32-bit)', 'RHEL 5.4 (32-bit)'),
  (19, 'RHEL 5.4 (64-bit)', 'RHEL 5.4 (64-bit)');
)sql",
      // 2: load balancers and their real-IP pools.
      R"sql(
CREATE TABLE load_balancers (
  id           INTEGER PRIMARY KEY,
  account_id   INTEGER NOT NULL REFERENCES accounts(id),
  name         TEXT NOT NULL COLLATE NOCASE,
  description  TEXT NOT NULL DEFAULT '',
  vip_id       INTEGER NOT NULL UNIQUE REFERENCES ips(id),
  port         INTEGER NOT NULL,
  type         INTEGER NOT NULL,
  persistence  INTEGER NOT NULL,
  state        INTEGER NOT NULL,
  deleting     INTEGER NOT NULL DEFAULT 0,
  created_ms   INTEGER NOT NULL,
  updated_ms   INTEGER NOT NULL,
  UNIQUE (account_id, name)
);
CREATE TABLE load_balancer_members (
  id        INTEGER PRIMARY KEY,
  lb_id     INTEGER NOT NULL REFERENCES load_balancers(id) ON DELETE CASCADE,
  position  INTEGER NOT NULL,
  ip_id     INTEGER NOT NULL REFERENCES ips(id),
  port      INTEGER NOT NULL
);
CREATE INDEX load_balancer_members_by_lb ON load_balancer_members(lb_id, position);
)sql",
      // 3: metering for myaccount.billing.get: each server's RAM and power over time (one row
      // per interval, the open one has no end), and load-balancer traffic as HAProxy counts it;
      // the parent of saved images.
      R"sql(
CREATE TABLE server_usage (
  id          INTEGER PRIMARY KEY,
  account_id  INTEGER NOT NULL REFERENCES accounts(id),
  server_id   INTEGER NOT NULL,
  ram         INTEGER NOT NULL,
  powered_on  INTEGER NOT NULL,
  start_ms    INTEGER NOT NULL,
  end_ms      INTEGER
);
CREATE UNIQUE INDEX server_usage_open ON server_usage(server_id) WHERE end_ms IS NULL;
CREATE INDEX server_usage_by_account ON server_usage(account_id, start_ms);
INSERT INTO server_usage (account_id, server_id, ram, powered_on, start_ms)
  SELECT account_id, id, ram, state NOT IN (3, 10), CAST(strftime('%s', 'now') AS INTEGER) * 1000
  FROM servers;
CREATE TABLE transfer_usage (
  id                INTEGER PRIMARY KEY,
  account_id        INTEGER NOT NULL REFERENCES accounts(id),
  load_balancer_id  INTEGER NOT NULL,
  bytes_in          INTEGER NOT NULL,
  bytes_out         INTEGER NOT NULL,
  at_ms             INTEGER NOT NULL
);
CREATE INDEX transfer_usage_by_account ON transfer_usage(account_id, at_ms);
CREATE TABLE transfer_counters (
  load_balancer_id  INTEGER PRIMARY KEY,
  created_ms        INTEGER NOT NULL,
  bytes_in          INTEGER NOT NULL,
  bytes_out         INTEGER NOT NULL
);
-- The image a saved image was made from (its server's image), so a hypervisor that forgets
-- its volumes can rebuild the chain.
ALTER TABLE images ADD COLUMN parent_image_id INTEGER REFERENCES images(id);
)sql",
      // 4: idempotent requests (the idempotency_key extension): the answer to a mutating
      // request, written in the same transaction as its change and kept for 24 hours.
      R"sql(
CREATE TABLE idempotent_requests (
  account_id       INTEGER NOT NULL REFERENCES accounts(id),
  idempotency_key  TEXT NOT NULL,
  method           TEXT NOT NULL,
  params_hash      TEXT NOT NULL,
  status           INTEGER NOT NULL,
  content_type     TEXT NOT NULL,
  body             BLOB NOT NULL,
  created_ms       INTEGER NOT NULL,
  PRIMARY KEY (account_id, idempotency_key)
);
CREATE INDEX idempotent_requests_by_age ON idempotent_requests(created_ms);
)sql",
      // 5: an id handed to a client is never handed out again: images, servers, load
      // balancers, passwords and jobs get AUTOINCREMENT (IPs are never deleted).
      Migration(&NeverReuseObjectIds),
      // 6: per-key signing policy and key rotation in api_keys.
      Migration(&AddApiKeySigningAndRotation),
      // 7: many hypervisor hosts. Each server names the host it runs on. An existing install
      // gets one host, "default", with an empty URI (meaning the [libvirt] uri of the
      // configuration, read at every start) and no datacenter (it serves every datacenter), so
      // its servers keep running where they are.
      R"sql(
CREATE TABLE hosts (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
  uri             TEXT NOT NULL,
  datacenter_id   INTEGER REFERENCES datacenters(id),
  ram_overcommit  REAL NOT NULL DEFAULT 1.0,
  state           INTEGER NOT NULL DEFAULT 1,
  maintenance     INTEGER NOT NULL DEFAULT 0,
  shared_storage  INTEGER NOT NULL DEFAULT 0,
  created_ms      INTEGER NOT NULL
);
INSERT INTO hosts (name, uri, datacenter_id, created_ms)
  VALUES ('default', '', NULL, CAST(strftime('%s', 'now') AS INTEGER) * 1000);
ALTER TABLE servers ADD COLUMN host_id INTEGER REFERENCES hosts(id);
UPDATE servers SET host_id = (SELECT id FROM hosts WHERE name = 'default');
CREATE INDEX servers_by_host ON servers(host_id);
)sql",
      // 8: grid.job.list filtered by object (a name, or an id) finds the object's jobs through
      // an index instead of reading every job of the account.
      R"sql(
CREATE INDEX IF NOT EXISTS jobs_by_object_name ON jobs(object_name);
CREATE INDEX IF NOT EXISTS jobs_by_object_id ON jobs(object_id);
)sql",
      // 9: the scheduler's use per host (servers and booked RAM, re-counted at start and by
      // every reconciler pass) is summed from an index alone, not from every server row.
      R"sql(
DROP INDEX IF EXISTS servers_by_host;
CREATE INDEX servers_by_host_ram ON servers(host_id, ram);
)sql",
      // 10: grid.server.list's totals without counting: the number of servers of each account
      // and server type, kept by triggers in the transaction of every insert, delete and type
      // change, and filled from the servers already there. A page of servers of one type
      // reads its ids from an index.
      R"sql(
CREATE TABLE server_counts (
  account_id  INTEGER NOT NULL,
  type        INTEGER NOT NULL,
  servers     INTEGER NOT NULL,
  PRIMARY KEY (account_id, type)
) WITHOUT ROWID;
INSERT INTO server_counts (account_id, type, servers)
  SELECT account_id, type, count(*) FROM servers GROUP BY account_id, type;
CREATE TRIGGER server_counts_on_insert AFTER INSERT ON servers BEGIN
  INSERT INTO server_counts (account_id, type, servers) VALUES (NEW.account_id, NEW.type, 1)
    ON CONFLICT (account_id, type) DO UPDATE SET servers = servers + 1;
END;
CREATE TRIGGER server_counts_on_delete AFTER DELETE ON servers BEGIN
  UPDATE server_counts SET servers = servers - 1
    WHERE account_id = OLD.account_id AND type = OLD.type;
END;
CREATE TRIGGER server_counts_on_update AFTER UPDATE OF account_id, type ON servers
  WHEN OLD.account_id IS NOT NEW.account_id OR OLD.type IS NOT NEW.type BEGIN
  UPDATE server_counts SET servers = servers - 1
    WHERE account_id = OLD.account_id AND type = OLD.type;
  INSERT INTO server_counts (account_id, type, servers) VALUES (NEW.account_id, NEW.type, 1)
    ON CONFLICT (account_id, type) DO UPDATE SET servers = servers + 1;
END;
CREATE INDEX servers_by_account_type ON servers(account_id, type, id);
)sql",
  };
  return migrations;
}

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

int Migrate(Connection& connection) {
  int version = 0;
  {
    // Scoped: an unfinished statement would keep a table rebuild from dropping its table.
    auto version_query = connection.Prepare("PRAGMA user_version");
    version_query.Step();
    version = static_cast<int>(version_query.Int(0));
  }
  const auto& migrations = Migrations();
  if (version > static_cast<int>(migrations.size())) {
    throw StoreError(0, "database schema version " + std::to_string(version) +
                            " is newer than this gridd understands (" +
                            std::to_string(migrations.size()) + ")");
  }
  // Foreign keys are off while migrating (the pragma has no effect inside a transaction), so
  // a table rebuild does not cascade; each migration is checked before it commits instead.
  connection.Exec("PRAGMA foreign_keys = OFF");
  for (size_t i = static_cast<size_t>(version); i < migrations.size(); ++i) {
    connection.Exec("BEGIN IMMEDIATE");
    try {
      if (migrations[i].code) {
        migrations[i].code(connection);
      } else {
        connection.Exec(migrations[i].sql);
      }
      bool violated = false;
      {
        auto check = connection.Prepare("PRAGMA foreign_key_check");
        violated = check.Step();
      }
      if (violated) {
        throw StoreError(0, "migration " + std::to_string(i + 1) + " breaks a foreign key");
      }
      connection.Exec("PRAGMA user_version = " + std::to_string(i + 1));
      connection.Exec("COMMIT");
    } catch (...) {
      connection.Exec("ROLLBACK");
      connection.Exec("PRAGMA foreign_keys = ON");
      throw;
    }
  }
  connection.Exec("PRAGMA foreign_keys = ON");
  return static_cast<int>(migrations.size());
}

}  // namespace gridd::store
