// The operator's side of gridd: accounts, API keys, IP pools and the catalogue seeded from the
// configuration. Reached through gridctl (the admin socket) and at start-up, never through the
// customer API.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/common/config.h"
#include "gridd/common/crypto.h"
#include "gridd/domain/entities.h"
#include "gridd/domain/grid_service.h"
#include "gridd/store/database.h"

namespace gridd::domain {

struct NewApiKey {
  std::string account;
  std::string api_key;
  std::string shared_secret;
  Role role = Role::kSuperUser;
};

struct RotatedApiKey {
  NewApiKey key;
  int64_t previous_secret_until_ms = 0;  // the old secret verifies before this time
};

struct IpPoolRequest {
  std::string datacenter;              // id or name
  std::string type;                    // "public" / "private"
  std::string cidr;                    // IPv4, e.g. 203.0.113.0/28
  std::optional<std::string> account;  // give the whole pool to one account
  std::optional<std::string> network;  // libvirt network; default gridd-<type>-<datacenter id>
};

struct IpPoolInfo {
  IpPool pool;
  std::string datacenter;
  std::optional<std::string> account;
  int64_t total = 0;
  int64_t assigned = 0;
};

class AccountService {
 public:
  AccountService(store::Database& db, Catalog& catalog, const Clock& clock, const SecretBox& box,
                 int ip_block_size);

  // Applies the configuration's datacenters, IP pools and images; idempotent.
  void ApplySeeds(const Config& config);
  // With no account yet: creates `name` with a Super User key and returns its credentials.
  std::optional<NewApiKey> EnsureInitialAccount(const std::string& name);

  Account CreateAccount(const std::string& name);
  std::vector<Account> ListAccounts();
  // Resolves an account given by id or name; throws ApiError (400) when unknown.
  Account FindAccount(const std::string& id_or_name);
  NewApiKey CreateApiKey(const std::string& account, const std::string& role);
  std::vector<ApiKey> ListApiKeys(const std::optional<std::string>& account);
  void RevokeApiKey(const std::string& api_key);
  // Gives an active key another role; requests signed with it use the new role at once.
  ApiKey SetApiKeyRole(const std::string& api_key, const std::string& role);
  // Sets which signatures an active key may use ("md5+hmac" or "hmac-only"); applies to the
  // key's next request.
  ApiKey SetApiKeySigning(const std::string& api_key, const std::string& policy);
  // Gives an active key a new shared secret; the old one keeps verifying for `grace_seconds`
  // (0: it stops at once). Any secret kept from an earlier rotation is dropped.
  RotatedApiKey RotateApiKey(const std::string& api_key, int64_t grace_seconds);
  // The key's record (cached in memory after the first lookup); nullopt when unknown.
  std::optional<ApiKey> FindApiKey(const std::string& api_key);

  IpPoolInfo AddIpPool(const IpPoolRequest& request);
  std::vector<IpPoolInfo> ListIpPools();
  // Removes a pool (given by id or CIDR) and its addresses; refused while any is assigned.
  IpPoolInfo RemoveIpPool(const std::string& id_or_cidr);
  std::vector<Image> ListImages();
  // Adds a public image (or updates the one of that name) whose volume is in storage_pool.
  // Throws ApiError (400) naming the field for an unknown architecture or type.
  void AddImage(const ImageSeed& seed, const std::string& storage_pool);

 private:
  int64_t UpsertImage(store::Connection& c, const ImageSeed& seed, const std::string& storage_pool,
                      int64_t now_ms);
  int64_t InsertPool(store::Connection& c, const IpPool& pool);
  void AllocateBlocks(store::Connection& c, int64_t account_id);
  // Drops the cached record after a change, so the next request reads the new one.
  void ForgetCachedKey(const std::string& api_key);

  store::Database& db_;
  Catalog& catalog_;
  const Clock& clock_;
  const SecretBox& box_;
  int ip_block_size_;
  std::mutex keys_mutex_;
  std::unordered_map<std::string, ApiKey> keys_;
  uint64_t key_generation_ = 0;  // bumped by every change to a key
};

// Parses an IPv4 CIDR into its usable host addresses: the network and broadcast addresses and
// the first host (the gateway of the libvirt network) are left out. Throws ApiError (400).
struct ParsedCidr {
  std::string cidr;    // normalized
  std::string subnet;  // "<network>/<netmask>"
  std::vector<std::string> hosts;
  uint32_t network = 0;    // first address of the range
  uint32_t broadcast = 0;  // last address of the range
};
ParsedCidr ParseIpv4Cidr(const std::string& text);

// Writes <data_dir>/initial-credentials.json with mode 0600 (atomically).
std::filesystem::path WriteInitialCredentials(const std::filesystem::path& data_dir,
                                              const NewApiKey& key);

}  // namespace gridd::domain
