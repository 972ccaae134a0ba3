// The things gridd manages, as plain values. Rows in the store, objects in the API and jobs'
// targets are all built from these; none of them knows SQLite or HTTP.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gridd::domain {

enum class Role : int { kSuperUser = 1, kSystemUser = 2, kBillingUser = 3, kReadOnlyUser = 4 };

const char* RoleName(Role role);  // "Super User", …
// Accepts "Super User"/"super", "System User"/"system", "Billing User"/"billing",
// "Read Only User"/"readonly"/"read-only"; nullopt otherwise.
std::optional<Role> ParseRole(std::string_view text);

enum class SigningPolicy { kAny, kHmacOnly };
const char* SigningPolicyName(SigningPolicy policy);  // "md5+hmac", "hmac-only"
// Accepts "md5+hmac"/"any" and "hmac-only"/"hmac"; nullopt otherwise.
std::optional<SigningPolicy> ParseSigningPolicy(std::string_view text);

struct Account {
  int64_t id = 0;
  std::string name;
  int64_t created_ms = 0;
};

struct ApiKey {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string account_name;
  std::string key;
  std::string shared_secret;  // decrypted; only ever held in memory
  Role role = Role::kReadOnlyUser;
  bool revoked = false;
  int64_t created_ms = 0;
  // Signatures the key may use; an HMAC-only key's MD5 signatures are refused.
  SigningPolicy signing = SigningPolicy::kAny;
  // After a rotation: the replaced secret (decrypted) and when it stops verifying.
  std::string previous_secret;
  int64_t previous_secret_until_ms = 0;
};

struct Datacenter {
  int64_t id = 0;
  std::string name;
  std::string description;
};

struct IpPool {
  int64_t id = 0;
  int64_t datacenter_id = 0;
  std::optional<int64_t> account_id;  // a pool given to one account; shared when empty
  bool is_public = true;
  std::string cidr;
  std::string subnet;   // "<network>/<netmask>" as GoGrid shows it
  std::string network;  // libvirt network carrying the pool
};

struct Ip {
  int64_t id = 0;
  int64_t pool_id = 0;
  std::optional<int64_t> account_id;
  std::string address;
  std::string subnet;
  bool is_public = true;
  int64_t state = 1;  // ip_state
  int64_t datacenter_id = 0;
  std::optional<int64_t> server_id;
  std::string network;
};

struct Image {
  int64_t id = 0;
  std::optional<int64_t> owner_account_id;  // empty for the operator's public images
  std::string owner_name;                   // "GoGrid"-style owner shown to clients
  std::string name;
  std::string friendly_name;
  std::string description;
  int64_t os_id = 0;
  int64_t architecture = 2;
  int64_t type = 1;
  int64_t state = 2;
  double price = 0;
  std::string location;
  bool is_active = true;
  bool is_public = true;
  std::string storage_pool;
  std::string volume;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::optional<int64_t> parent_image_id;  // a saved image's origin (its server's image)
};

struct Server {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string name;
  std::string description;
  int64_t image_id = 0;
  int64_t ram = 1;   // server.ram option id
  int64_t type = 1;  // server.type option id
  int64_t state = 2;
  int64_t ip_id = 0;
  std::string mac;
  bool deleting = false;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // The hypervisor host the server runs on; empty only for rows written before placement.
  std::optional<int64_t> host_id;
};

namespace host_state {
inline constexpr int64_t kUp = 1, kDown = 2;
}

// A hypervisor host gridd drives over libvirt (gridctl host add).
struct Host {
  int64_t id = 0;
  std::string name;
  std::string uri;  // empty: the [libvirt] uri of the configuration (the "default" host)
  std::optional<int64_t> datacenter_id;  // empty: serves every datacenter
  double ram_overcommit = 1.0;
  int64_t state = host_state::kUp;
  bool maintenance = false;
  bool shared_storage = false;  // servers' disks are visible to the other hosts as well
  int64_t created_ms = 0;
};

struct LoadBalancerMember {
  int64_t ip_id = 0;
  int port = 0;
};

struct LoadBalancer {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string name;
  std::string description;
  int64_t vip_id = 0;
  int port = 0;
  int64_t type = 1;         // loadbalancer.type option id
  int64_t persistence = 1;  // loadbalancer.persistence option id
  int64_t state = 4;        // loadbalancer.state option id
  bool deleting = false;
  std::vector<LoadBalancerMember> members;  // in the order the customer gave them
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

struct Password {
  int64_t id = 0;
  int64_t account_id = 0;
  std::optional<int64_t> server_id;
  std::string application_type;  // "os"
  std::string username;
  std::string password;  // decrypted
};

struct JobHistoryEntry {
  int64_t id = 0;
  int64_t state = 0;
  std::optional<std::string> note;
  int64_t at_ms = 0;
};

struct Job {
  int64_t id = 0;
  int64_t account_id = 0;
  int64_t object_type = 1;
  int64_t object_id = 0;
  std::string object_name;
  int64_t command = 0;
  int64_t state = 1;
  int attempts = 0;
  std::string owner;
  nlohmann::ordered_json detail = nlohmann::ordered_json::object();
  std::optional<int64_t> datacenter_id;
  nlohmann::json payload = nlohmann::json::object();  // what the handler needs
  std::optional<std::string> error;
  std::optional<int64_t> lease_until_ms;
  int64_t next_run_ms = 0;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::vector<JobHistoryEntry> history;
};

}  // namespace gridd::domain
