#include "gridd/domain/account_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

#include "domain/rules.h"
#include "gridd/common/error.h"
#include "gridd/store/repositories.h"

namespace gridd::domain {
namespace {

using store::Connection;

std::string FormatIpv4(uint32_t address) {
  in_addr in{};
  in.s_addr = htonl(address);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &in, text, sizeof(text));
  return text;
}

void CheckAccountName(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    ThrowIllegalArgument("account name must be 1-64 characters");
  }
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.' && c != '@') {
      ThrowIllegalArgument("account name may only contain letters, digits and - _ . @");
    }
  }
  if (ParsePositiveId(name)) ThrowIllegalArgument("account name must not be a number");
}

}  // namespace

ParsedCidr ParseIpv4Cidr(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos) ThrowIllegalArgument("CIDR must look like 203.0.113.0/28");
  const std::string address_text = text.substr(0, slash);
  const std::string bits_text = text.substr(slash + 1);
  in_addr in{};
  if (inet_pton(AF_INET, address_text.c_str(), &in) != 1) {
    ThrowIllegalArgument("'" + address_text + "' is not an IPv4 address");
  }
  int bits = 0;
  auto [ptr, ec] = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
  if (ec != std::errc() || ptr != bits_text.data() + bits_text.size() || bits < 16 || bits > 29) {
    ThrowIllegalArgument("prefix length must be between /16 and /29");
  }
  const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  const uint32_t address = ntohl(in.s_addr);
  const uint32_t network = address & mask;
  if (network != address) {
    ThrowIllegalArgument("'" + text + "' has host bits set; the network is " + FormatIpv4(network) +
                         "/" + std::to_string(bits));
  }
  ParsedCidr parsed;
  parsed.cidr = FormatIpv4(network) + "/" + std::to_string(bits);
  parsed.subnet = FormatIpv4(network) + "/" + FormatIpv4(mask);
  const uint32_t broadcast = network | ~mask;
  parsed.network = network;
  parsed.broadcast = broadcast;
  for (uint32_t host = network + 2; host < broadcast; ++host)
    parsed.hosts.push_back(FormatIpv4(host));
  return parsed;
}

std::filesystem::path WriteInitialCredentials(const std::filesystem::path& data_dir,
                                              const NewApiKey& key) {
  auto path = data_dir / "initial-credentials.json";  // returned: not const, so it is moved
  const auto temp = data_dir / "initial-credentials.json.tmp";
  nlohmann::ordered_json body = {
      {"account", key.account}, {"api_key", key.api_key}, {"shared_secret", key.shared_secret}};
  const std::string text = body.dump(2) + "\n";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot write " + temp.string() + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  return path;
}

AccountService::AccountService(store::Database& db, Catalog& catalog, const Clock& clock,
                               const SecretBox& box, int ip_block_size)
    : db_(db), catalog_(catalog), clock_(clock), box_(box), ip_block_size_(ip_block_size) {}

void AccountService::ApplySeeds(const Config& config) {
  db_.Write([&](Connection& c) {
    for (const auto& seed : config.datacenters) {
      store::datacenters::Upsert(c, Datacenter{seed.id, seed.name, seed.description});
    }
  });
  catalog_.Invalidate();
  // Read outside the write transaction: a catalogue load inside it would need the writer again.
  const auto datacenters = catalog_.Datacenters();
  for (const auto& seed : config.ip_pools) {
    db_.Write([&](Connection& c) {
      const ParsedCidr parsed = ParseIpv4Cidr(seed.cidr);
      if (store::ip_pools::FindByCidr(c, parsed.cidr)) return;
      IpPool pool;
      pool.datacenter_id = ResolveOption(datacenters, "ippool.datacenter", seed.datacenter).id;
      pool.is_public = seed.is_public;
      pool.cidr = seed.cidr;
      pool.network = seed.network;
      InsertPool(c, pool);
    });
  }
  db_.Write([&](Connection& c) {
    const int64_t now = clock_.NowMs();
    for (const auto& seed : config.images) UpsertImage(c, seed, config.storage_pool, now);
  });
  catalog_.Invalidate();
}

int64_t AccountService::UpsertImage(Connection& c, const ImageSeed& seed,
                                    const std::string& storage_pool, int64_t now_ms) {
  Image image;
  image.name = seed.name;
  image.friendly_name = seed.friendly_name;
  image.description = seed.description;
  image.os_id = store::operating_systems::FindOrInsert(c, seed.os);
  image.architecture =
      ResolveOption(*FixedLookup("image.architecture"), "image.architecture", seed.architecture).id;
  image.type = ResolveOption(*FixedLookup("image.type"), "image.type", seed.type).id;
  image.state = image_state::kAvailable;
  image.price = seed.price;
  image.location = "gridd/" + seed.volume;
  image.storage_pool = storage_pool;
  image.volume = seed.volume;
  return store::images::UpsertPublic(c, image, now_ms);
}

void AccountService::AddImage(const ImageSeed& seed, const std::string& storage_pool) {
  db_.Write([&](Connection& c) { UpsertImage(c, seed, storage_pool, clock_.NowMs()); });
  catalog_.Invalidate();
}

std::optional<NewApiKey> AccountService::EnsureInitialAccount(const std::string& name) {
  const bool empty = db_.Read([&](Connection& c) { return store::accounts::Count(c) == 0; });
  if (!empty) return std::nullopt;
  CreateAccount(name);
  return CreateApiKey(name, "Super User");
}

Account AccountService::CreateAccount(const std::string& name) {
  CheckAccountName(name);
  return db_.Write([&](Connection& c) {
    if (store::accounts::FindByName(c, name)) {
      ThrowIllegalArgument("account '" + name + "' already exists");
    }
    const int64_t id = store::accounts::Insert(c, name, clock_.NowMs());
    AllocateBlocks(c, id);
    return *store::accounts::FindById(c, id);
  });
}

void AccountService::AllocateBlocks(Connection& c, int64_t account_id) {
  for (const auto& pool : store::ip_pools::List(c)) {
    if (pool.account_id) continue;
    const int64_t owned = store::ip_pools::CountOwned(c, pool.id, account_id);
    if (owned < ip_block_size_) {
      store::ip_pools::AllocateBlock(c, pool.id, account_id,
                                     ip_block_size_ - static_cast<int>(owned));
    }
  }
}

std::vector<Account> AccountService::ListAccounts() {
  return db_.Read([&](Connection& c) { return store::accounts::List(c); });
}

Account AccountService::FindAccount(const std::string& id_or_name) {
  return db_.Read([&](Connection& c) {
    std::optional<Account> account;
    if (auto id = ParsePositiveId(id_or_name)) account = store::accounts::FindById(c, *id);
    if (!account) account = store::accounts::FindByName(c, id_or_name);
    if (!account) ThrowIllegalArgument("no account '" + id_or_name + "'");
    return *account;
  });
}

NewApiKey AccountService::CreateApiKey(const std::string& account_ref,
                                       const std::string& role_text) {
  auto role = ParseRole(role_text);
  if (!role) {
    ThrowIllegalArgument("unknown role '" + role_text +
                         "'; use Super User, System User, Billing User or Read Only User");
  }
  const Account account = FindAccount(account_ref);
  ApiKey key;
  key.account_id = account.id;
  key.account_name = account.name;
  key.key = RandomHex(8);
  key.shared_secret = RandomHex(16);
  key.role = *role;
  key.created_ms = clock_.NowMs();
  db_.Write([&](Connection& c) { store::api_keys::Insert(c, key, box_); });
  return NewApiKey{account.name, key.key, key.shared_secret, key.role};
}

std::vector<ApiKey> AccountService::ListApiKeys(const std::optional<std::string>& account) {
  std::optional<int64_t> account_id;
  if (account) account_id = FindAccount(*account).id;
  auto keys = db_.Read([&](Connection& c) { return store::api_keys::List(c, account_id, box_); });
  // A replaced secret whose grace period is over verifies nothing: not worth showing.
  const int64_t now_ms = clock_.NowMs();
  for (auto& key : keys) {
    if (key.previous_secret_until_ms <= now_ms) {
      key.previous_secret.clear();
      key.previous_secret_until_ms = 0;
    }
  }
  return keys;
}

void AccountService::RevokeApiKey(const std::string& api_key) {
  const bool revoked =
      db_.Write([&](Connection& c) { return store::api_keys::Revoke(c, api_key); });
  ForgetCachedKey(api_key);
  if (!revoked) ThrowIllegalArgument("no active API key '" + api_key + "'");
}

ApiKey AccountService::SetApiKeyRole(const std::string& api_key, const std::string& role_text) {
  auto role = ParseRole(role_text);
  if (!role) {
    ThrowIllegalArgument("unknown role '" + role_text +
                         "'; use Super User, System User, Billing User or Read Only User");
  }
  auto key = db_.Write([&](Connection& c) -> std::optional<ApiKey> {
    if (!store::api_keys::SetRole(c, api_key, static_cast<int64_t>(*role))) return std::nullopt;
    return store::api_keys::FindByKey(c, api_key, box_);
  });
  ForgetCachedKey(api_key);  // the cached record carries the old role
  if (!key) ThrowIllegalArgument("no active API key '" + api_key + "'");
  return *key;
}

ApiKey AccountService::SetApiKeySigning(const std::string& api_key,
                                        const std::string& policy_text) {
  auto policy = ParseSigningPolicy(policy_text);
  if (!policy)
    ThrowIllegalArgument("unknown signing policy '" + policy_text + "'; use md5+hmac or hmac-only");
  auto key = db_.Write([&](Connection& c) -> std::optional<ApiKey> {
    if (!store::api_keys::SetSigning(c, api_key, *policy)) return std::nullopt;
    return store::api_keys::FindByKey(c, api_key, box_);
  });
  ForgetCachedKey(api_key);
  if (!key) ThrowIllegalArgument("no active API key '" + api_key + "'");
  return *key;
}

RotatedApiKey AccountService::RotateApiKey(const std::string& api_key, int64_t grace_seconds) {
  if (grace_seconds < 0) ThrowIllegalArgument("grace period must not be negative");
  const std::string secret = RandomHex(16);
  const int64_t until_ms = clock_.NowMs() + grace_seconds * 1000;
  auto key = db_.Write([&](Connection& c) -> std::optional<ApiKey> {
    if (!store::api_keys::Rotate(c, api_key, secret, until_ms, box_)) return std::nullopt;
    return store::api_keys::FindByKey(c, api_key, box_);
  });
  ForgetCachedKey(api_key);
  if (!key) ThrowIllegalArgument("no active API key '" + api_key + "'");
  return RotatedApiKey{NewApiKey{key->account_name, key->key, key->shared_secret, key->role},
                       until_ms};
}

void AccountService::ForgetCachedKey(const std::string& api_key) {
  std::lock_guard<std::mutex> lock(keys_mutex_);
  keys_.erase(api_key);
  ++key_generation_;
}

std::optional<ApiKey> AccountService::FindApiKey(const std::string& api_key) {
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(keys_mutex_);
    auto it = keys_.find(api_key);
    if (it != keys_.end()) return it->second;
    generation = key_generation_;
  }
  auto key = db_.Read([&](Connection& c) { return store::api_keys::FindByKey(c, api_key, box_); });
  if (!key || key->revoked) return std::nullopt;
  std::lock_guard<std::mutex> lock(keys_mutex_);
  // A revocation that landed while the row was read may concern this key: don't cache it.
  if (generation == key_generation_) keys_.emplace(api_key, *key);
  return key;
}

int64_t AccountService::InsertPool(Connection& c, const IpPool& request) {
  const ParsedCidr parsed = ParseIpv4Cidr(request.cidr);
  if (store::ip_pools::FindByCidr(c, parsed.cidr)) {
    ThrowIllegalArgument("IP pool " + parsed.cidr + " already exists");
  }
  for (const auto& existing : store::ip_pools::List(c)) {
    const ParsedCidr other = ParseIpv4Cidr(existing.cidr);
    if (parsed.network <= other.broadcast && other.network <= parsed.broadcast) {
      ThrowIllegalArgument("IP pool " + parsed.cidr + " overlaps " + existing.cidr);
    }
  }
  IpPool pool = request;
  pool.cidr = parsed.cidr;
  pool.subnet = parsed.subnet;
  const int64_t pool_id = store::ip_pools::Insert(c, pool, clock_.NowMs());
  for (const auto& host : parsed.hosts) {
    store::ip_pools::InsertAddress(c, pool_id, host, pool.account_id);
  }
  if (!pool.account_id) {
    for (const auto& account : store::accounts::List(c)) {
      store::ip_pools::AllocateBlock(c, pool_id, account.id, ip_block_size_);
    }
  }
  return pool_id;
}

IpPoolInfo AccountService::AddIpPool(const IpPoolRequest& request) {
  IpPool pool;
  pool.datacenter_id = ResolveOption(catalog_.Datacenters(), "datacenter", request.datacenter).id;
  if (request.type != "public" && request.type != "private") {
    ThrowIllegalArgument("type must be public or private");
  }
  pool.is_public = request.type == "public";
  pool.cidr = request.cidr;
  if (request.account) pool.account_id = FindAccount(*request.account).id;
  pool.network =
      request.network.value_or("gridd-" + request.type + "-" + std::to_string(pool.datacenter_id));
  const int64_t id = db_.Write([&](Connection& c) { return InsertPool(c, pool); });
  for (auto& info : ListIpPools()) {
    if (info.pool.id == id) return info;
  }
  throw ApiError(ErrorClass::kUnexpected, "IP pool vanished after insert");
}

std::vector<IpPoolInfo> AccountService::ListIpPools() {
  const auto datacenters = catalog_.Datacenters();
  return db_.Read([&](Connection& c) {
    std::vector<IpPoolInfo> out;
    for (const auto& pool : store::ip_pools::List(c)) {
      IpPoolInfo info;
      info.pool = pool;
      const Option* dc = FindOption(datacenters, std::to_string(pool.datacenter_id));
      info.datacenter = dc ? dc->name : std::to_string(pool.datacenter_id);
      if (pool.account_id) {
        if (auto account = store::accounts::FindById(c, *pool.account_id))
          info.account = account->name;
      }
      auto usage = store::ip_pools::UsageOf(c, pool.id);
      info.total = usage.total;
      info.assigned = usage.assigned;
      out.push_back(std::move(info));
    }
    return out;
  });
}

IpPoolInfo AccountService::RemoveIpPool(const std::string& id_or_cidr) {
  IpPoolInfo removed;
  for (const auto& info : ListIpPools()) {
    if (std::to_string(info.pool.id) == id_or_cidr || info.pool.cidr == id_or_cidr) removed = info;
  }
  if (removed.pool.id == 0) ThrowIllegalArgument("no IP pool '" + id_or_cidr + "'");
  // Checked again in the transaction that deletes, so an address assigned meanwhile stops it.
  db_.Write([&](Connection& c) {
    const auto usage = store::ip_pools::UsageOf(c, removed.pool.id);
    if (usage.assigned > 0) {
      ThrowIllegalArgument("IP pool " + removed.pool.cidr +
                           " is in use: " + std::to_string(usage.assigned) +
                           " address(es) assigned to servers or load balancers");
    }
    store::ip_pools::Delete(c, removed.pool.id);
  });
  return removed;
}

std::vector<Image> AccountService::ListImages() {
  return db_.Read([&](Connection& c) { return store::images::ListAll(c); });
}

}  // namespace gridd::domain
