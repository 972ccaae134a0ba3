#include "gridd/store/repositories.h"

#include <algorithm>
#include <charconv>

#include "gridd/domain/lookups.h"

namespace gridd::store {

// ---------------------------------------------------------------------------------- accounts
namespace accounts {
namespace {
Account Row(const Statement& s) { return Account{s.Int(0), s.Text(1), s.Int(2)}; }
}  // namespace

int64_t Insert(Connection& c, const std::string& name, int64_t now_ms) {
  c.Prepare("INSERT INTO accounts (name, created_ms) VALUES (?, ?)")
      .Bind(1, name)
      .Bind(2, now_ms)
      .Run();
  return c.LastInsertId();
}

std::optional<Account> FindByName(Connection& c, const std::string& name) {
  auto s = c.Prepare("SELECT id, name, created_ms FROM accounts WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::optional<Account> FindById(Connection& c, int64_t id) {
  auto s = c.Prepare("SELECT id, name, created_ms FROM accounts WHERE id = ?");
  s.Bind(1, id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::vector<Account> List(Connection& c) {
  auto s = c.Prepare("SELECT id, name, created_ms FROM accounts ORDER BY id");
  std::vector<Account> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}

int64_t Count(Connection& c) {
  auto s = c.Prepare("SELECT count(*) FROM accounts");
  s.Step();
  return s.Int(0);
}
}  // namespace accounts

// ---------------------------------------------------------------------------------- api keys
namespace api_keys {
namespace {
constexpr const char* kSelect =
    "SELECT k.id, k.account_id, a.name, k.api_key, k.secret_enc, k.role, k.revoked, k.created_ms, "
    "k.signing, k.previous_secret_enc, k.previous_secret_until_ms "
    "FROM api_keys k JOIN accounts a ON a.id = k.account_id ";

const char* SigningColumn(domain::SigningPolicy policy) {
  return policy == domain::SigningPolicy::kHmacOnly ? "hmac" : "any";
}

ApiKey Row(const Statement& s, const SecretBox& box) {
  ApiKey key;
  key.id = s.Int(0);
  key.account_id = s.Int(1);
  key.account_name = s.Text(2);
  key.key = s.Text(3);
  key.shared_secret = box.Open(s.Blob(4));
  key.role = static_cast<domain::Role>(s.Int(5));
  key.revoked = s.Int(6) != 0;
  key.created_ms = s.Int(7);
  key.signing =
      s.Text(8) == "hmac" ? domain::SigningPolicy::kHmacOnly : domain::SigningPolicy::kAny;
  if (!s.IsNull(9)) {
    key.previous_secret = box.Open(s.Blob(9));
    key.previous_secret_until_ms = s.Int(10);
  }
  return key;
}
}  // namespace

void Insert(Connection& c, const ApiKey& key, const SecretBox& box) {
  c.Prepare(
       "INSERT INTO api_keys (account_id, api_key, secret_enc, role, revoked, created_ms) "
       "VALUES (?, ?, ?, ?, 0, ?)")
      .Bind(1, key.account_id)
      .Bind(2, key.key)
      .BindBlob(3, box.Seal(key.shared_secret))
      .Bind(4, static_cast<int64_t>(key.role))
      .Bind(5, key.created_ms)
      .Run();
}

std::optional<ApiKey> FindByKey(Connection& c, const std::string& key, const SecretBox& box) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE k.api_key = ?");
  s.Bind(1, key);
  if (!s.Step()) return std::nullopt;
  return Row(s, box);
}

std::vector<ApiKey> List(Connection& c, std::optional<int64_t> account_id, const SecretBox& box) {
  auto s =
      c.Prepare(std::string(kSelect) + "WHERE (?1 IS NULL OR k.account_id = ?1) ORDER BY k.id");
  s.Bind(1, account_id);
  std::vector<ApiKey> out;
  while (s.Step()) out.push_back(Row(s, box));
  return out;
}

bool Revoke(Connection& c, const std::string& key) {
  c.Prepare("UPDATE api_keys SET revoked = 1 WHERE api_key = ? AND revoked = 0").Bind(1, key).Run();
  return c.Changes() == 1;
}

bool SetRole(Connection& c, const std::string& key, int64_t role) {
  c.Prepare("UPDATE api_keys SET role = ? WHERE api_key = ? AND revoked = 0")
      .Bind(1, role)
      .Bind(2, key)
      .Run();
  return c.Changes() == 1;
}

bool SetSigning(Connection& c, const std::string& key, domain::SigningPolicy policy) {
  c.Prepare("UPDATE api_keys SET signing = ? WHERE api_key = ? AND revoked = 0")
      .Bind(1, std::string(SigningColumn(policy)))
      .Bind(2, key)
      .Run();
  return c.Changes() == 1;
}

bool Rotate(Connection& c, const std::string& key, const std::string& new_secret,
            int64_t previous_until_ms, const SecretBox& box) {
  c.Prepare(
       "UPDATE api_keys SET previous_secret_enc = secret_enc, previous_secret_until_ms = ?, "
       "secret_enc = ? WHERE api_key = ? AND revoked = 0")
      .Bind(1, previous_until_ms)
      .BindBlob(2, box.Seal(new_secret))
      .Bind(3, key)
      .Run();
  return c.Changes() == 1;
}
}  // namespace api_keys

// ------------------------------------------------------------------------------- datacenters
namespace datacenters {
void Upsert(Connection& c, const Datacenter& datacenter) {
  c.Prepare(
       "INSERT INTO datacenters (id, name, description) VALUES (?, ?, ?) "
       "ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description")
      .Bind(1, datacenter.id)
      .Bind(2, datacenter.name)
      .Bind(3, datacenter.description)
      .Run();
}

std::vector<Datacenter> List(Connection& c) {
  auto s = c.Prepare("SELECT id, name, description FROM datacenters ORDER BY id");
  std::vector<Datacenter> out;
  while (s.Step()) out.push_back(Datacenter{s.Int(0), s.Text(1), s.Text(2)});
  return out;
}

int64_t Insert(Connection& c, const std::string& name, const std::string& description) {
  c.Prepare(
       "INSERT INTO datacenters (id, name, description) "
       "VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM datacenters), ?, ?)")
      .Bind(1, name)
      .Bind(2, description)
      .Run();
  return c.LastInsertId();
}
}  // namespace datacenters

// --------------------------------------------------------------------------------------- hosts
namespace hosts {
namespace {
constexpr const char* kSelect =
    "SELECT id, name, uri, datacenter_id, ram_overcommit, state, maintenance, shared_storage, "
    "created_ms FROM hosts ";
Host Row(const Statement& s) {
  Host host;
  host.id = s.Int(0);
  host.name = s.Text(1);
  host.uri = s.Text(2);
  host.datacenter_id = s.OptionalInt(3);
  host.ram_overcommit = s.Double(4);
  host.state = s.Int(5);
  host.maintenance = s.Int(6) != 0;
  host.shared_storage = s.Int(7) != 0;
  host.created_ms = s.Int(8);
  return host;
}
}  // namespace

std::vector<Host> List(Connection& c) {
  auto s = c.Prepare(std::string(kSelect) + "ORDER BY id");
  std::vector<Host> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}

std::optional<Host> Get(Connection& c, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ?");
  s.Bind(1, id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::optional<Host> FindByName(Connection& c, const std::string& name) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

int64_t Insert(Connection& c, const Host& host) {
  c.Prepare(
       "INSERT INTO hosts (name, uri, datacenter_id, ram_overcommit, state, maintenance, "
       "shared_storage, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
      .Bind(1, host.name)
      .Bind(2, host.uri)
      .Bind(3, host.datacenter_id)
      .Bind(4, host.ram_overcommit)
      .Bind(5, host.state)
      .Bind(6, host.maintenance)
      .Bind(7, host.shared_storage)
      .Bind(8, host.created_ms)
      .Run();
  return c.LastInsertId();
}

void Update(Connection& c, const Host& host) {
  c.Prepare(
       "UPDATE hosts SET uri = ?, ram_overcommit = ?, state = ?, maintenance = ?, "
       "shared_storage = ? WHERE id = ?")
      .Bind(1, host.uri)
      .Bind(2, host.ram_overcommit)
      .Bind(3, host.state)
      .Bind(4, host.maintenance)
      .Bind(5, host.shared_storage)
      .Bind(6, host.id)
      .Run();
}

void Delete(Connection& c, int64_t id) {
  c.Prepare("DELETE FROM hosts WHERE id = ?").Bind(1, id).Run();
}

int64_t CountServers(Connection& c, int64_t host_id) {
  auto s = c.Prepare("SELECT COUNT(*) FROM servers WHERE host_id = ?");
  s.Bind(1, host_id);
  s.Step();
  return s.Int(0);
}
}  // namespace hosts

// ------------------------------------------------------------------------- operating systems
namespace operating_systems {
std::vector<domain::Option> List(Connection& c) {
  auto s = c.Prepare("SELECT id, name, description FROM operating_systems ORDER BY id");
  std::vector<domain::Option> out;
  while (s.Step()) out.push_back(domain::Option{s.Int(0), s.Text(1), s.Text(2)});
  return out;
}

int64_t FindOrInsert(Connection& c, const std::string& name) {
  auto s = c.Prepare("SELECT id FROM operating_systems WHERE name = ?");
  s.Bind(1, name);
  if (s.Step()) return s.Int(0);
  c.Prepare("INSERT INTO operating_systems (name, description) VALUES (?, ?)")
      .Bind(1, name)
      .Bind(2, name)
      .Run();
  return c.LastInsertId();
}
}  // namespace operating_systems

// ---------------------------------------------------------------------------------- ip pools
namespace ip_pools {
namespace {
constexpr const char* kSelect =
    "SELECT id, datacenter_id, account_id, public, cidr, subnet, network FROM ip_pools ";
IpPool Row(const Statement& s) {
  IpPool pool;
  pool.id = s.Int(0);
  pool.datacenter_id = s.Int(1);
  pool.account_id = s.OptionalInt(2);
  pool.is_public = s.Int(3) != 0;
  pool.cidr = s.Text(4);
  pool.subnet = s.Text(5);
  pool.network = s.Text(6);
  return pool;
}
}  // namespace

int64_t Insert(Connection& c, const IpPool& pool, int64_t now_ms) {
  c.Prepare(
       "INSERT INTO ip_pools (datacenter_id, account_id, public, cidr, subnet, network, "
       "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .Bind(1, pool.datacenter_id)
      .Bind(2, pool.account_id)
      .Bind(3, pool.is_public)
      .Bind(4, pool.cidr)
      .Bind(5, pool.subnet)
      .Bind(6, pool.network)
      .Bind(7, now_ms)
      .Run();
  return c.LastInsertId();
}

std::optional<IpPool> FindByCidr(Connection& c, const std::string& cidr) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE cidr = ?");
  s.Bind(1, cidr);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::vector<IpPool> List(Connection& c) {
  auto s = c.Prepare(std::string(kSelect) + "ORDER BY id");
  std::vector<IpPool> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}

void InsertAddress(Connection& c, int64_t pool_id, const std::string& address,
                   std::optional<int64_t> account_id) {
  c.Prepare("INSERT INTO ips (pool_id, account_id, address, state) VALUES (?, ?, ?, 1)")
      .Bind(1, pool_id)
      .Bind(2, account_id)
      .Bind(3, address)
      .Run();
}

int AllocateBlock(Connection& c, int64_t pool_id, int64_t account_id, int count) {
  c.Prepare(
       "UPDATE ips SET account_id = ? WHERE id IN "
       "(SELECT id FROM ips WHERE pool_id = ? AND account_id IS NULL ORDER BY id LIMIT ?)")
      .Bind(1, account_id)
      .Bind(2, pool_id)
      .Bind(3, count)
      .Run();
  return c.Changes();
}

int64_t CountOwned(Connection& c, int64_t pool_id, int64_t account_id) {
  auto s = c.Prepare("SELECT count(*) FROM ips WHERE pool_id = ? AND account_id = ?");
  s.Bind(1, pool_id).Bind(2, account_id);
  s.Step();
  return s.Int(0);
}

Usage UsageOf(Connection& c, int64_t pool_id) {
  auto s = c.Prepare("SELECT count(*), coalesce(sum(state = 2), 0) FROM ips WHERE pool_id = ?");
  s.Bind(1, pool_id);
  s.Step();
  return Usage{s.Int(0), s.Int(1)};
}

void Delete(Connection& c, int64_t pool_id) {
  c.Prepare("DELETE FROM ips WHERE pool_id = ?").Bind(1, pool_id).Run();
  c.Prepare("DELETE FROM ip_pools WHERE id = ?").Bind(1, pool_id).Run();
}
}  // namespace ip_pools

// ----------------------------------------------------------------------------------------- ips
namespace ips {
namespace {
constexpr const char* kSelect =
    "SELECT i.id, i.pool_id, i.account_id, i.address, p.subnet, p.public, i.state, "
    "p.datacenter_id, i.server_id, p.network FROM ips i JOIN ip_pools p ON p.id = i.pool_id ";
// kSelect's columns from column `first` on (servers:: reads them after a server's).
Ip Row(const Statement& s, int first = 0) {
  Ip ip;
  ip.id = s.Int(first + 0);
  ip.pool_id = s.Int(first + 1);
  ip.account_id = s.OptionalInt(first + 2);
  ip.address = s.Text(first + 3);
  ip.subnet = s.Text(first + 4);
  ip.is_public = s.Int(first + 5) != 0;
  ip.state = s.Int(first + 6);
  ip.datacenter_id = s.Int(first + 7);
  ip.server_id = s.OptionalInt(first + 8);
  ip.network = s.Text(first + 9);
  return ip;
}
}  // namespace

std::vector<Ip> List(Connection& c, int64_t account_id, const Filter& filter) {
  auto s = c.Prepare(std::string(kSelect) +
                     "WHERE i.account_id = ?1 AND (?2 IS NULL OR i.state = ?2) "
                     "AND (?3 IS NULL OR p.public = ?3) ORDER BY i.id");
  s.Bind(1, account_id).Bind(2, filter.state);
  if (filter.is_public) {
    s.Bind(3, static_cast<int64_t>(*filter.is_public));
  } else {
    s.BindNull(3);
  }
  std::vector<Ip> out;
  while (s.Step()) {
    Ip ip = Row(s);
    if (!filter.datacenters.empty() &&
        std::find(filter.datacenters.begin(), filter.datacenters.end(), ip.datacenter_id) ==
            filter.datacenters.end()) {
      continue;
    }
    out.push_back(std::move(ip));
  }
  return out;
}

std::optional<Ip> Get(Connection& c, int64_t account_id, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE i.id = ? AND i.account_id = ?");
  s.Bind(1, id).Bind(2, account_id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::optional<Ip> FindByAddress(Connection& c, int64_t account_id, const std::string& address) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE i.address = ? AND i.account_id = ?");
  s.Bind(1, address).Bind(2, account_id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

bool Assign(Connection& c, int64_t ip_id, int64_t server_id) {
  c.Prepare("UPDATE ips SET state = 2, server_id = ? WHERE id = ? AND state = 1")
      .Bind(1, server_id)
      .Bind(2, ip_id)
      .Run();
  return c.Changes() == 1;
}

void Release(Connection& c, int64_t ip_id) {
  c.Prepare("UPDATE ips SET state = 1, server_id = NULL WHERE id = ?").Bind(1, ip_id).Run();
}

bool AssignAsVirtualIp(Connection& c, int64_t ip_id) {
  c.Prepare("UPDATE ips SET state = 2, server_id = NULL WHERE id = ? AND state = 1")
      .Bind(1, ip_id)
      .Run();
  return c.Changes() == 1;
}
}  // namespace ips

// -------------------------------------------------------------------------------------- images
namespace images {
namespace {
constexpr const char* kSelect =
    "SELECT m.id, m.owner_account_id, coalesce(a.name, 'GoGrid'), m.name, m.friendly_name, "
    "m.description, m.os_id, m.architecture, m.type, m.state, m.price, m.location, m.is_active, "
    "m.is_public, m.storage_pool, m.volume, m.created_ms, m.updated_ms, m.parent_image_id "
    "FROM images m LEFT JOIN accounts a ON a.id = m.owner_account_id ";
Image Row(const Statement& s) {
  Image image;
  image.id = s.Int(0);
  image.owner_account_id = s.OptionalInt(1);
  image.owner_name = s.Text(2);
  image.name = s.Text(3);
  image.friendly_name = s.Text(4);
  image.description = s.Text(5);
  image.os_id = s.Int(6);
  image.architecture = s.Int(7);
  image.type = s.Int(8);
  image.state = s.Int(9);
  image.price = s.Double(10);
  image.location = s.Text(11);
  image.is_active = s.Int(12) != 0;
  image.is_public = s.Int(13) != 0;
  image.storage_pool = s.Text(14);
  image.volume = s.Text(15);
  image.created_ms = s.Int(16);
  image.updated_ms = s.Int(17);
  image.parent_image_id = s.OptionalInt(18);
  return image;
}
// Public images are everyone's; a published customer image in the Trash is only its owner's.
// A purged image (Deleted, its volume gone) is no one's: its row stays so its id and jobs do.
constexpr const char* kVisible =
    "m.state != 3 AND (m.owner_account_id = ?1 OR (m.is_public = 1 AND m.state != 4)) ";
}  // namespace

int64_t UpsertPublic(Connection& c, const Image& image, int64_t now_ms) {
  c.Prepare(
       "INSERT INTO images (owner_account_id, name, friendly_name, description, os_id, "
       "architecture, type, state, price, location, is_active, is_public, storage_pool, volume, "
       "created_ms, updated_ms) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, 1, ?10, ?11, "
       "?12, ?12) ON CONFLICT(name) DO UPDATE SET friendly_name = excluded.friendly_name, "
       "description = excluded.description, os_id = excluded.os_id, "
       "architecture = excluded.architecture, type = excluded.type, price = excluded.price, "
       "location = excluded.location, storage_pool = excluded.storage_pool, "
       "volume = excluded.volume, state = excluded.state, "
       "updated_ms = CASE WHEN images.friendly_name IS excluded.friendly_name AND "
       "images.description IS excluded.description AND images.volume IS excluded.volume "
       "THEN images.updated_ms ELSE excluded.updated_ms END "
       "WHERE images.owner_account_id IS NULL")
      .Bind(1, image.name)
      .Bind(2, image.friendly_name)
      .Bind(3, image.description)
      .Bind(4, image.os_id)
      .Bind(5, image.architecture)
      .Bind(6, image.type)
      .Bind(7, image.state)
      .Bind(8, image.price)
      .Bind(9, image.location)
      .Bind(10, image.storage_pool)
      .Bind(11, image.volume)
      .Bind(12, now_ms)
      .Run();
  auto s = c.Prepare("SELECT id FROM images WHERE name = ?");
  s.Bind(1, image.name);
  s.Step();
  return s.Int(0);
}

std::vector<Image> ListVisible(Connection& c, int64_t account_id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE " + kVisible + "ORDER BY m.id");
  s.Bind(1, account_id);
  std::vector<Image> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}

std::optional<Image> GetVisible(Connection& c, int64_t account_id, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE " + kVisible + "AND m.id = ?2");
  s.Bind(1, account_id).Bind(2, id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::vector<Image> FindVisibleByName(Connection& c, int64_t account_id, const std::string& name) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE " + kVisible +
                     "AND (m.name = ?2 OR m.friendly_name = ?2) ORDER BY m.id");
  s.Bind(1, account_id).Bind(2, name);
  std::vector<Image> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}

std::optional<Image> GetAny(Connection& c, int64_t id) {
  static const std::string sql = std::string(kSelect) + "WHERE m.id = ?";  // every server shown
  auto s = c.Prepare(sql);
  s.Bind(1, id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::vector<Image> ListAll(Connection& c) {
  auto s = c.Prepare(std::string(kSelect) + "ORDER BY m.id");
  std::vector<Image> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}

int64_t InsertPrivate(Connection& c, const Image& image) {
  c.Prepare(
       "INSERT INTO images (owner_account_id, name, friendly_name, description, os_id, "
       "architecture, type, state, price, location, is_active, is_public, storage_pool, volume, "
       "created_ms, updated_ms, parent_image_id) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)")
      .Bind(1, image.owner_account_id)
      .Bind(2, image.name)
      .Bind(3, image.friendly_name)
      .Bind(4, image.description)
      .Bind(5, image.os_id)
      .Bind(6, image.architecture)
      .Bind(7, image.type)
      .Bind(8, image.state)
      .Bind(9, image.price)
      .Bind(10, image.location)
      .Bind(11, image.is_active)
      .Bind(12, image.is_public)
      .Bind(13, image.storage_pool)
      .Bind(14, image.volume)
      .Bind(15, image.created_ms)
      .Bind(16, image.updated_ms)
      .Bind(17, image.parent_image_id)
      .Run();
  return c.LastInsertId();
}

void Update(Connection& c, const Image& image) {
  c.Prepare(
       "UPDATE images SET friendly_name = ?, description = ?, state = ?, is_active = ?, "
       "is_public = ?, updated_ms = ? WHERE id = ?")
      .Bind(1, image.friendly_name)
      .Bind(2, image.description)
      .Bind(3, image.state)
      .Bind(4, image.is_active)
      .Bind(5, image.is_public)
      .Bind(6, image.updated_ms)
      .Bind(7, image.id)
      .Run();
}

void Delete(Connection& c, int64_t id) {
  c.Prepare("DELETE FROM images WHERE id = ?").Bind(1, id).Run();
}

std::vector<Image> ListPurgeable(Connection& c, int64_t trashed_before_ms) {
  // Job object type 5 is ServerImage; states 1 and 2 are Queued and Processing.
  auto s = c.Prepare(std::string(kSelect) +
                     "WHERE m.state = 4 AND m.owner_account_id IS NOT NULL AND "
                     "m.updated_ms <= ?1 "
                     "AND NOT EXISTS (SELECT 1 FROM servers s WHERE s.image_id = m.id) "
                     "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.object_type = 5 AND "
                     "j.object_id = m.id AND j.state IN (1, 2)) ORDER BY m.id");
  s.Bind(1, trashed_before_ms);
  std::vector<Image> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}
}  // namespace images

// ------------------------------------------------------------------------------------- servers
namespace servers {
namespace {
constexpr const char* kSelect =
    "SELECT id, account_id, name, description, image_id, ram, type, state, ip_id, mac, deleting, "
    "created_ms, updated_ms, host_id FROM servers ";
Server Row(const Statement& s) {
  Server server;
  server.id = s.Int(0);
  server.account_id = s.Int(1);
  server.name = s.Text(2);
  server.description = s.Text(3);
  server.image_id = s.Int(4);
  server.ram = s.Int(5);
  server.type = s.Int(6);
  server.state = s.Int(7);
  server.ip_id = s.Int(8);
  server.mac = s.Text(9);
  server.deleting = s.Int(10) != 0;
  server.created_ms = s.Int(11);
  server.updated_ms = s.Int(12);
  server.host_id = s.OptionalInt(13);
  return server;
}
std::vector<Server> Rows(Statement& s) {
  std::vector<Server> out;
  while (s.Step()) out.push_back(Row(s));
  return out;
}
// kSelect's columns, then ips::kSelect's of the server's IP when it is one of the account's.
constexpr const char* kSelectWithIp =
    "SELECT s.id, s.account_id, s.name, s.description, s.image_id, s.ram, s.type, s.state, "
    "s.ip_id, s.mac, s.deleting, s.created_ms, s.updated_ms, s.host_id, "
    "i.id, i.pool_id, i.account_id, i.address, p.subnet, p.public, i.state, p.datacenter_id, "
    "i.server_id, p.network FROM servers s "
    "LEFT JOIN ips i ON i.id = s.ip_id AND i.account_id = s.account_id "
    "LEFT JOIN ip_pools p ON p.id = i.pool_id ";
constexpr int kIpColumn = 14;
WithIp RowWithIp(const Statement& s) {
  WithIp row{Row(s), std::nullopt};
  // p.subnet is never NULL in a pool: NULL means no IP (or no pool) was found.
  if (!s.IsNull(kIpColumn + 4)) row.ip = ips::Row(s, kIpColumn);
  return row;
}
// expected_rows: room made in advance, so that a page is not moved as the vector grows.
std::vector<WithIp> RowsWithIp(Statement& s, size_t expected_rows = 0) {
  std::vector<WithIp> out;
  out.reserve(expected_rows);
  while (s.Step()) out.push_back(RowWithIp(s));
  return out;
}
}  // namespace

int64_t Insert(Connection& c, const Server& server) {
  // The MAC derives from the id, which is only known after the insert: write a unique
  // placeholder first, then the real address.
  c.Prepare(
       "INSERT INTO servers (account_id, name, description, image_id, ram, type, state, ip_id, "
       "mac, deleting, created_ms, updated_ms, host_id) "
       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)")
      .Bind(1, server.account_id)
      .Bind(2, server.name)
      .Bind(3, server.description)
      .Bind(4, server.image_id)
      .Bind(5, server.ram)
      .Bind(6, server.type)
      .Bind(7, server.state)
      .Bind(8, server.ip_id)
      .Bind(9, "pending-" + std::to_string(server.ip_id))
      .Bind(10, server.created_ms)
      .Bind(11, server.updated_ms)
      .Bind(12, server.host_id)
      .Run();
  const int64_t id = c.LastInsertId();
  usage::TrackServer(c, id, server.created_ms);
  return id;
}

std::optional<Server> Get(Connection& c, int64_t account_id, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ? AND account_id = ?");
  s.Bind(1, id).Bind(2, account_id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::optional<Server> GetAny(Connection& c, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ?");
  s.Bind(1, id);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::vector<Server> FindByName(Connection& c, int64_t account_id, const std::string& name) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE account_id = ? AND name = ? ORDER BY id");
  s.Bind(1, account_id).Bind(2, name);
  return Rows(s);
}

std::vector<Server> List(Connection& c, int64_t account_id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE account_id = ? ORDER BY id");
  s.Bind(1, account_id);
  return Rows(s);
}

std::optional<WithIp> GetWithIp(Connection& c, int64_t account_id, int64_t id) {
  static const std::string sql = std::string(kSelectWithIp) + "WHERE s.id = ? AND s.account_id = ?";
  auto s = c.Prepare(sql);
  s.Bind(1, id).Bind(2, account_id);
  if (!s.Step()) return std::nullopt;
  return RowWithIp(s);
}

std::vector<WithIp> FindByNameWithIp(Connection& c, int64_t account_id, const std::string& name) {
  auto s =
      c.Prepare(std::string(kSelectWithIp) + "WHERE s.account_id = ? AND s.name = ? ORDER BY s.id");
  s.Bind(1, account_id).Bind(2, name);
  return RowsWithIp(s);
}

std::vector<WithIp> ListWithIp(Connection& c, int64_t account_id) {
  auto s = c.Prepare(std::string(kSelectWithIp) + "WHERE s.account_id = ? ORDER BY s.id");
  s.Bind(1, account_id);
  return RowsWithIp(s);
}

int64_t Count(Connection& c, int64_t account_id, std::optional<int64_t> type) {
  // server_counts is kept by triggers on servers (migration 10): one row per type, not a scan
  // of the account's servers.
  auto s =
      type ? c.Prepare(
                 "SELECT coalesce(sum(servers), 0) FROM server_counts "
                 "WHERE account_id = ? AND type = ?")
           : c.Prepare("SELECT coalesce(sum(servers), 0) FROM server_counts WHERE account_id = ?");
  s.Bind(1, account_id);
  if (type) s.Bind(2, *type);
  s.Step();
  return s.Int(0);
}

std::vector<WithIp> ListPage(Connection& c, int64_t account_id, std::optional<int64_t> type,
                             int64_t offset, int64_t limit) {
  // The page's ids come from an index alone, so the entries skipped before it cost no table
  // reads; only the page's rows are read and joined.
  static const std::string all_types =
      std::string(kSelectWithIp) +
      "WHERE s.id IN (SELECT id FROM servers WHERE account_id = ?1 ORDER BY id LIMIT ?2 OFFSET "
      "?3) ORDER BY s.id";
  static const std::string one_type =
      std::string(kSelectWithIp) +
      "WHERE s.id IN (SELECT id FROM servers WHERE account_id = ?1 AND type = ?4 ORDER BY id "
      "LIMIT ?2 OFFSET ?3) ORDER BY s.id";
  auto s = c.Prepare(type ? one_type : all_types);
  s.Bind(1, account_id).Bind(2, limit).Bind(3, offset);
  if (type) s.Bind(4, *type);
  return RowsWithIp(s, static_cast<size_t>(std::clamp<int64_t>(limit, 0, 1000)));
}

std::vector<Server> ListAll(Connection& c) {
  auto s = c.Prepare(std::string(kSelect) + "ORDER BY id");
  return Rows(s);
}

void SetState(Connection& c, int64_t id, int64_t state, int64_t now_ms) {
  c.Prepare("UPDATE servers SET state = ?, updated_ms = ? WHERE id = ?")
      .Bind(1, state)
      .Bind(2, now_ms)
      .Bind(3, id)
      .Run();
  usage::TrackServer(c, id, now_ms);
}

void Update(Connection& c, const Server& server) {
  c.Prepare(
       "UPDATE servers SET name = ?, description = ?, ram = ?, type = ?, state = ?, mac = ?, "
       "deleting = ?, updated_ms = ? WHERE id = ?")
      .Bind(1, server.name)
      .Bind(2, server.description)
      .Bind(3, server.ram)
      .Bind(4, server.type)
      .Bind(5, server.state)
      .Bind(6, server.mac)
      .Bind(7, server.deleting)
      .Bind(8, server.updated_ms)
      .Bind(9, server.id)
      .Run();
  usage::TrackServer(c, server.id, server.updated_ms);
}

void SetHost(Connection& c, int64_t id, int64_t host_id) {
  c.Prepare("UPDATE servers SET host_id = ? WHERE id = ?").Bind(1, host_id).Bind(2, id).Run();
}

std::vector<Server> ListOnHost(Connection& c, int64_t host_id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE host_id = ? ORDER BY id");
  s.Bind(1, host_id);
  return Rows(s);
}

std::vector<Server> ListUnplaced(Connection& c) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE host_id IS NULL ORDER BY id");
  return Rows(s);
}

void Delete(Connection& c, int64_t id, int64_t now_ms) {
  c.Prepare("DELETE FROM servers WHERE id = ?").Bind(1, id).Run();
  usage::TrackServer(c, id, now_ms);
}

void Delete(Connection& c, int64_t id) {
  auto s = c.Prepare("SELECT updated_ms FROM servers WHERE id = ?");
  s.Bind(1, id);
  const int64_t last_change = s.Step() ? s.Int(0) : 0;
  Delete(c, id, last_change);
}
}  // namespace servers

// ------------------------------------------------------------------------------------- usage
namespace usage {

void TrackServer(Connection& c, int64_t server_id, int64_t now_ms) {
  std::optional<ServerInterval> now;
  std::optional<int64_t> account_id;
  {
    auto s = c.Prepare("SELECT account_id, ram, state FROM servers WHERE id = ?");
    s.Bind(1, server_id);
    if (s.Step()) {
      account_id = s.Int(0);
      const int64_t state = s.Int(2);
      now = ServerInterval{
          server_id, s.Int(1),
          state != domain::server_state::kOff && state != domain::server_state::kOffSaving, now_ms,
          std::nullopt};
    }
  }
  auto open = c.Prepare(
      "SELECT id, ram, powered_on, start_ms FROM server_usage WHERE server_id = ? AND end_ms IS "
      "NULL");
  open.Bind(1, server_id);
  if (open.Step()) {
    const int64_t open_id = open.Int(0);
    if (now && open.Int(1) == now->ram && (open.Int(2) != 0) == now->powered_on) return;
    const int64_t end = std::max(now_ms, open.Int(3));
    c.Prepare("UPDATE server_usage SET end_ms = ? WHERE id = ?")
        .Bind(1, end)
        .Bind(2, open_id)
        .Run();
  }
  if (!now) return;
  c.Prepare(
       "INSERT INTO server_usage (account_id, server_id, ram, powered_on, start_ms) "
       "VALUES (?, ?, ?, ?, ?)")
      .Bind(1, *account_id)
      .Bind(2, server_id)
      .Bind(3, now->ram)
      .Bind(4, now->powered_on)
      .Bind(5, now_ms)
      .Run();
}

std::vector<ServerInterval> ServerIntervals(Connection& c, int64_t account_id, int64_t from_ms,
                                            int64_t to_ms) {
  auto s = c.Prepare(
      "SELECT server_id, ram, powered_on, start_ms, end_ms FROM server_usage "
      "WHERE account_id = ? AND start_ms < ? AND (end_ms IS NULL OR end_ms > ?) ORDER BY id");
  s.Bind(1, account_id).Bind(2, to_ms).Bind(3, from_ms);
  std::vector<ServerInterval> out;
  while (s.Step()) {
    out.push_back(ServerInterval{s.Int(0), s.Int(1), s.Int(2) != 0, s.Int(3), s.OptionalInt(4)});
  }
  return out;
}

void RecordBalancerCounters(Connection& c, int64_t account_id, int64_t load_balancer_id,
                            int64_t created_ms, uint64_t bytes_in, uint64_t bytes_out,
                            int64_t now_ms) {
  const auto in = static_cast<int64_t>(bytes_in);
  const auto out = static_cast<int64_t>(bytes_out);
  int64_t grown_in = in;
  int64_t grown_out = out;
  auto last = c.Prepare(
      "SELECT bytes_in, bytes_out FROM transfer_counters WHERE load_balancer_id = ? AND "
      "created_ms = ?");
  last.Bind(1, load_balancer_id).Bind(2, created_ms);
  if (last.Step()) {
    // HAProxy's counters restart at 0 with each new worker: a smaller reading is a fresh count.
    if (in >= last.Int(0) && out >= last.Int(1)) {
      grown_in = in - last.Int(0);
      grown_out = out - last.Int(1);
    }
  }
  c.Prepare(
       "INSERT INTO transfer_counters (load_balancer_id, created_ms, bytes_in, bytes_out) "
       "VALUES (?, ?, ?, ?) ON CONFLICT(load_balancer_id) DO UPDATE SET "
       "created_ms = excluded.created_ms, bytes_in = excluded.bytes_in, "
       "bytes_out = excluded.bytes_out")
      .Bind(1, load_balancer_id)
      .Bind(2, created_ms)
      .Bind(3, in)
      .Bind(4, out)
      .Run();
  if (grown_in == 0 && grown_out == 0) return;
  c.Prepare(
       "INSERT INTO transfer_usage (account_id, load_balancer_id, bytes_in, bytes_out, at_ms) "
       "VALUES (?, ?, ?, ?, ?)")
      .Bind(1, account_id)
      .Bind(2, load_balancer_id)
      .Bind(3, grown_in)
      .Bind(4, grown_out)
      .Bind(5, now_ms)
      .Run();
}

Transfer TransferBetween(Connection& c, int64_t account_id, int64_t from_ms, int64_t to_ms) {
  auto s = c.Prepare(
      "SELECT coalesce(sum(bytes_in), 0), coalesce(sum(bytes_out), 0) FROM transfer_usage "
      "WHERE account_id = ? AND at_ms >= ? AND at_ms < ?");
  s.Bind(1, account_id).Bind(2, from_ms).Bind(3, to_ms);
  s.Step();
  return Transfer{s.Int(0), s.Int(1)};
}

}  // namespace usage

// ------------------------------------------------------------------------------ load balancers
namespace load_balancers {
namespace {
constexpr const char* kSelect =
    "SELECT id, account_id, name, description, vip_id, port, type, persistence, state, deleting, "
    "created_ms, updated_ms FROM load_balancers ";
LoadBalancer Row(const Statement& s) {
  LoadBalancer balancer;
  balancer.id = s.Int(0);
  balancer.account_id = s.Int(1);
  balancer.name = s.Text(2);
  balancer.description = s.Text(3);
  balancer.vip_id = s.Int(4);
  balancer.port = static_cast<int>(s.Int(5));
  balancer.type = s.Int(6);
  balancer.persistence = s.Int(7);
  balancer.state = s.Int(8);
  balancer.deleting = s.Int(9) != 0;
  balancer.created_ms = s.Int(10);
  balancer.updated_ms = s.Int(11);
  return balancer;
}
std::vector<LoadBalancer> Rows(Connection& c, Statement& s) {
  std::vector<LoadBalancer> out;
  while (s.Step()) out.push_back(Row(s));
  for (auto& balancer : out) {
    auto members = c.Prepare(
        "SELECT ip_id, port FROM load_balancer_members WHERE lb_id = ? ORDER BY position");
    members.Bind(1, balancer.id);
    while (members.Step()) {
      balancer.members.push_back(
          domain::LoadBalancerMember{members.Int(0), static_cast<int>(members.Int(1))});
    }
  }
  return out;
}
std::optional<LoadBalancer> One(Connection& c, Statement& s) {
  auto rows = Rows(c, s);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}
void WriteMembers(Connection& c, const LoadBalancer& balancer) {
  c.Prepare("DELETE FROM load_balancer_members WHERE lb_id = ?").Bind(1, balancer.id).Run();
  int position = 0;
  for (const auto& member : balancer.members) {
    c.Prepare(
         "INSERT INTO load_balancer_members (lb_id, position, ip_id, port) VALUES (?, ?, ?, ?)")
        .Bind(1, balancer.id)
        .Bind(2, position++)
        .Bind(3, member.ip_id)
        .Bind(4, member.port)
        .Run();
  }
}
}  // namespace

int64_t Insert(Connection& c, const LoadBalancer& balancer) {
  c.Prepare(
       "INSERT INTO load_balancers (account_id, name, description, vip_id, port, type, "
       "persistence, state, deleting, created_ms, updated_ms) "
       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)")
      .Bind(1, balancer.account_id)
      .Bind(2, balancer.name)
      .Bind(3, balancer.description)
      .Bind(4, balancer.vip_id)
      .Bind(5, balancer.port)
      .Bind(6, balancer.type)
      .Bind(7, balancer.persistence)
      .Bind(8, balancer.state)
      .Bind(9, balancer.created_ms)
      .Bind(10, balancer.updated_ms)
      .Run();
  LoadBalancer stored = balancer;
  stored.id = c.LastInsertId();
  WriteMembers(c, stored);
  return stored.id;
}

std::optional<LoadBalancer> Get(Connection& c, int64_t account_id, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ? AND account_id = ?");
  s.Bind(1, id).Bind(2, account_id);
  return One(c, s);
}

std::optional<LoadBalancer> GetAny(Connection& c, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ?");
  s.Bind(1, id);
  return One(c, s);
}

std::vector<LoadBalancer> FindByName(Connection& c, int64_t account_id, const std::string& name) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE account_id = ? AND name = ? ORDER BY id");
  s.Bind(1, account_id).Bind(2, name);
  return Rows(c, s);
}

std::vector<LoadBalancer> List(Connection& c, int64_t account_id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE account_id = ? ORDER BY id");
  s.Bind(1, account_id);
  return Rows(c, s);
}

std::vector<LoadBalancer> ListAll(Connection& c) {
  auto s = c.Prepare(std::string(kSelect) + "ORDER BY id");
  return Rows(c, s);
}

void Update(Connection& c, const LoadBalancer& balancer) {
  c.Prepare(
       "UPDATE load_balancers SET name = ?, description = ?, port = ?, type = ?, persistence = ?, "
       "state = ?, deleting = ?, updated_ms = ? WHERE id = ?")
      .Bind(1, balancer.name)
      .Bind(2, balancer.description)
      .Bind(3, balancer.port)
      .Bind(4, balancer.type)
      .Bind(5, balancer.persistence)
      .Bind(6, balancer.state)
      .Bind(7, balancer.deleting)
      .Bind(8, balancer.updated_ms)
      .Bind(9, balancer.id)
      .Run();
  WriteMembers(c, balancer);
}

void SetState(Connection& c, int64_t id, int64_t state, int64_t now_ms) {
  c.Prepare("UPDATE load_balancers SET state = ?, updated_ms = ? WHERE id = ? AND state != ?")
      .Bind(1, state)
      .Bind(2, now_ms)
      .Bind(3, id)
      .Bind(4, state)
      .Run();
}

void Delete(Connection& c, int64_t id) {
  c.Prepare("DELETE FROM load_balancer_members WHERE lb_id = ?").Bind(1, id).Run();
  c.Prepare("DELETE FROM load_balancers WHERE id = ?").Bind(1, id).Run();
}
}  // namespace load_balancers

// ----------------------------------------------------------------------------------- passwords
namespace passwords {
namespace {
constexpr const char* kSelect =
    "SELECT id, account_id, server_id, applicationtype, username, password_enc FROM passwords ";
Password Row(const Statement& s, const SecretBox& box) {
  Password password;
  password.id = s.Int(0);
  password.account_id = s.Int(1);
  password.server_id = s.OptionalInt(2);
  password.application_type = s.Text(3);
  password.username = s.Text(4);
  password.password = box.Open(s.Blob(5));
  return password;
}
}  // namespace

int64_t Insert(Connection& c, const Password& password, const SecretBox& box, int64_t now_ms) {
  c.Prepare(
       "INSERT INTO passwords (account_id, server_id, applicationtype, username, password_enc, "
       "created_ms) VALUES (?, ?, ?, ?, ?, ?)")
      .Bind(1, password.account_id)
      .Bind(2, password.server_id)
      .Bind(3, password.application_type)
      .Bind(4, password.username)
      .BindBlob(5, box.Seal(password.password))
      .Bind(6, now_ms)
      .Run();
  return c.LastInsertId();
}

std::vector<Password> List(Connection& c, int64_t account_id, const SecretBox& box) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE account_id = ? ORDER BY id");
  s.Bind(1, account_id);
  std::vector<Password> out;
  while (s.Step()) out.push_back(Row(s, box));
  return out;
}

std::optional<Password> Get(Connection& c, int64_t account_id, int64_t id, const SecretBox& box) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ? AND account_id = ?");
  s.Bind(1, id).Bind(2, account_id);
  if (!s.Step()) return std::nullopt;
  return Row(s, box);
}

void DeleteForServer(Connection& c, int64_t server_id) {
  c.Prepare("DELETE FROM passwords WHERE server_id = ?").Bind(1, server_id).Run();
}
}  // namespace passwords

// ---------------------------------------------------------------------------------------- jobs
namespace jobs {
namespace {
constexpr const char* kSelect =
    "SELECT id, account_id, object_type, object_id, object_name, command, state, attempts, owner, "
    "detail, datacenter_id, payload, error, lease_until_ms, next_run_ms, created_ms, updated_ms "
    "FROM jobs ";
Job Row(const Statement& s) {
  Job job;
  job.id = s.Int(0);
  job.account_id = s.Int(1);
  job.object_type = s.Int(2);
  job.object_id = s.Int(3);
  job.object_name = s.Text(4);
  job.command = s.Int(5);
  job.state = s.Int(6);
  job.attempts = static_cast<int>(s.Int(7));
  job.owner = s.Text(8);
  job.detail = nlohmann::ordered_json::parse(s.Text(9));
  job.datacenter_id = s.OptionalInt(10);
  job.payload = nlohmann::json::parse(s.Text(11));
  job.error = s.OptionalText(12);
  job.lease_until_ms = s.OptionalInt(13);
  job.next_run_ms = s.Int(14);
  job.created_ms = s.Int(15);
  job.updated_ms = s.Int(16);
  return job;
}
void LoadHistory(Connection& c, Job& job) {
  auto s = c.Prepare("SELECT id, state, note, at_ms FROM job_history WHERE job_id = ? ORDER BY id");
  s.Bind(1, job.id);
  job.history.clear();
  while (s.Step()) {
    job.history.push_back(JobHistoryEntry{s.Int(0), s.Int(1), s.OptionalText(2), s.Int(3)});
  }
}
}  // namespace

int64_t Insert(Connection& c, Job& job, int64_t now_ms) {
  job.state = domain::job_state::kQueued;
  job.created_ms = job.updated_ms = now_ms;
  if (job.next_run_ms == 0) job.next_run_ms = now_ms;
  c.Prepare(
       "INSERT INTO jobs (account_id, object_type, object_id, object_name, command, state, "
       "attempts, owner, detail, datacenter_id, payload, next_run_ms, created_ms, updated_ms) "
       "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)")
      .Bind(1, job.account_id)
      .Bind(2, job.object_type)
      .Bind(3, job.object_id)
      .Bind(4, job.object_name)
      .Bind(5, job.command)
      .Bind(6, job.state)
      .Bind(7, job.owner)
      .Bind(8, job.detail.dump())
      .Bind(9, job.datacenter_id)
      .Bind(10, job.payload.dump())
      .Bind(11, job.next_run_ms)
      .Bind(12, now_ms)
      .Bind(13, now_ms)
      .Run();
  job.id = c.LastInsertId();
  AppendHistory(c, job.id, domain::job_state::kCreated, std::nullopt, now_ms);
  AppendHistory(c, job.id, domain::job_state::kQueued, std::nullopt, now_ms);
  return job.id;
}

std::optional<Job> Get(Connection& c, int64_t account_id, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ? AND account_id = ?");
  s.Bind(1, id).Bind(2, account_id);
  if (!s.Step()) return std::nullopt;
  Job job = Row(s);
  LoadHistory(c, job);
  return job;
}

std::optional<Job> GetAny(Connection& c, int64_t id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE id = ?");
  s.Bind(1, id);
  if (!s.Step()) return std::nullopt;
  Job job = Row(s);
  LoadHistory(c, job);
  return job;
}

std::optional<Job> Newest(Connection& c, int64_t object_type, int64_t object_id,
                          std::optional<int64_t> command) {
  auto s = c.Prepare(std::string(kSelect) +
                     "WHERE object_type = ?1 AND object_id = ?2 AND (?3 IS NULL OR command = ?3) "
                     "ORDER BY id DESC LIMIT 1");
  s.Bind(1, object_type).Bind(2, object_id).Bind(3, command);
  if (!s.Step()) return std::nullopt;
  return Row(s);
}

std::vector<Job> List(Connection& c, int64_t account_id) {
  auto s = c.Prepare(std::string(kSelect) + "WHERE account_id = ? ORDER BY id DESC");
  s.Bind(1, account_id);
  std::vector<Job> out;
  while (s.Step()) out.push_back(Row(s));
  for (auto& job : out) LoadHistory(c, job);
  return out;
}

std::vector<int64_t> FindIds(Connection& c, const Query& query) {
  // Only the shape of the filter goes into the SQL text (how many values each list has), so
  // the statement cache holds one statement per shape; the values are bound.
  std::string sql =
      "SELECT id FROM jobs WHERE account_id = ? AND created_ms >= ? AND created_ms <= ?";
  auto in_list = [&](const char* column, size_t count) {
    if (count == 0) return;
    sql.append(" AND ").append(column).append(" IN (");
    for (size_t i = 0; i < count; ++i) sql.append(i == 0 ? "?" : ", ?");
    sql.append(")");
  };
  in_list("object_type", query.object_types.size());
  in_list("command", query.commands.size());
  in_list("state", query.states.size());
  in_list("datacenter_id", query.datacenters.size());
  if (query.owner) sql.append(" AND owner = ?");
  // An object given as a number matches that id too, but only written as the number itself
  // ("42", not "042"), as the object's id is shown.
  std::optional<int64_t> object_id;
  if (query.object) {
    int64_t id = 0;
    const auto& text = *query.object;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec == std::errc() && ptr == text.data() + text.size() && std::to_string(id) == text) {
      object_id = id;
    }
    sql.append(object_id ? " AND (object_name = ? OR object_id = ?)" : " AND object_name = ?");
  }
  sql.append(" ORDER BY id DESC");

  auto s = c.Prepare(sql);
  int index = 0;
  s.Bind(++index, query.account_id);
  s.Bind(++index, query.created_from_ms);
  s.Bind(++index, query.created_to_ms);
  for (const auto* list :
       {&query.object_types, &query.commands, &query.states, &query.datacenters}) {
    for (int64_t value : *list) s.Bind(++index, value);
  }
  if (query.owner) s.Bind(++index, *query.owner);
  if (query.object) {
    s.Bind(++index, *query.object);
    if (object_id) s.Bind(++index, *object_id);
  }
  std::vector<int64_t> ids;
  while (s.Step()) ids.push_back(s.Int(0));
  return ids;
}

void AppendHistory(Connection& c, int64_t job_id, int64_t state,
                   const std::optional<std::string>& note, int64_t now_ms) {
  c.Prepare("INSERT INTO job_history (job_id, state, note, at_ms) VALUES (?, ?, ?, ?)")
      .Bind(1, job_id)
      .Bind(2, state)
      .Bind(3, note)
      .Bind(4, now_ms)
      .Run();
}

bool HasPending(Connection& c, int64_t object_type, int64_t object_id) {
  auto s = c.Prepare(
      "SELECT 1 FROM jobs WHERE object_type = ? AND object_id = ? AND state IN (1, 2) LIMIT 1");
  s.Bind(1, object_type).Bind(2, object_id);
  return s.Step();
}

std::optional<Job> Claim(Connection& c, int64_t now_ms, int64_t lease_ms) {
  auto pick = c.Prepare(
      "SELECT j.id FROM jobs j WHERE j.state = 1 AND j.next_run_ms <= ?1 AND NOT EXISTS ("
      "SELECT 1 FROM jobs p WHERE p.object_type = j.object_type AND p.object_id = j.object_id "
      "AND p.id < j.id AND p.state IN (1, 2)) ORDER BY j.id LIMIT 1");
  pick.Bind(1, now_ms);
  if (!pick.Step()) return std::nullopt;
  const int64_t id = pick.Int(0);
  c.Prepare(
       "UPDATE jobs SET state = 2, attempts = attempts + 1, lease_until_ms = ?, updated_ms = ? "
       "WHERE id = ?")
      .Bind(1, now_ms + lease_ms)
      .Bind(2, now_ms)
      .Bind(3, id)
      .Run();
  AppendHistory(c, id, domain::job_state::kProcessing, std::nullopt, now_ms);
  return GetAny(c, id);
}

void Finish(Connection& c, int64_t job_id, int64_t state, const std::optional<std::string>& error,
            int64_t now_ms) {
  c.Prepare(
       "UPDATE jobs SET state = ?, error = ?, lease_until_ms = NULL, updated_ms = ? WHERE id = ?")
      .Bind(1, state)
      .Bind(2, error)
      .Bind(3, now_ms)
      .Bind(4, job_id)
      .Run();
  AppendHistory(c, job_id, state, error, now_ms);
}

void Retry(Connection& c, int64_t job_id, int64_t next_run_ms, const std::string& note,
           int64_t now_ms) {
  c.Prepare(
       "UPDATE jobs SET state = 1, error = ?, lease_until_ms = NULL, next_run_ms = ?, "
       "updated_ms = ? WHERE id = ?")
      .Bind(1, note)
      .Bind(2, next_run_ms)
      .Bind(3, now_ms)
      .Bind(4, job_id)
      .Run();
  AppendHistory(c, job_id, domain::job_state::kFailed, note, now_ms);
  AppendHistory(c, job_id, domain::job_state::kQueued, "retrying", now_ms);
}

int RequeueExpired(Connection& c, int64_t expired_before_ms, int64_t now_ms) {
  auto s = c.Prepare("SELECT id FROM jobs WHERE state = 2 AND lease_until_ms < ?");
  s.Bind(1, expired_before_ms);
  std::vector<int64_t> ids;
  while (s.Step()) ids.push_back(s.Int(0));
  for (int64_t id : ids) {
    c.Prepare(
         "UPDATE jobs SET state = 1, lease_until_ms = NULL, next_run_ms = ?, updated_ms = ? "
         "WHERE id = ?")
        .Bind(1, now_ms)
        .Bind(2, now_ms)
        .Bind(3, id)
        .Run();
    AppendHistory(c, id, domain::job_state::kQueued, "lease expired; taken up again", now_ms);
  }
  return static_cast<int>(ids.size());
}

int64_t CountUnfinished(Connection& c) {
  auto s = c.Prepare("SELECT count(*) FROM jobs WHERE state IN (1, 2)");
  s.Step();
  return s.Int(0);
}

bool RequeueFailed(Connection& c, int64_t job_id, const std::string& note, int64_t now_ms) {
  c.Prepare(
       "UPDATE jobs SET state = 1, attempts = 0, error = NULL, lease_until_ms = NULL, "
       "next_run_ms = ?, updated_ms = ? WHERE id = ? AND state = 4")
      .Bind(1, now_ms)
      .Bind(2, now_ms)
      .Bind(3, job_id)
      .Run();
  if (c.Changes() != 1) return false;
  AppendHistory(c, job_id, domain::job_state::kQueued, note, now_ms);
  return true;
}

std::optional<int64_t> NextRunMs(Connection& c) {
  auto s = c.Prepare("SELECT min(next_run_ms) FROM jobs WHERE state = 1");
  s.Step();
  return s.OptionalInt(0);
}
}  // namespace jobs

}  // namespace gridd::store
