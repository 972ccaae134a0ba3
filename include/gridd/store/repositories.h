// Repositories: the only place that knows gridd's SQL. Each function takes the Connection of
// the transaction it runs in (Database::Read / Database::Write), so callers compose several of
// them atomically. Every customer-facing query is scoped by account id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gridd/common/crypto.h"
#include "gridd/domain/entities.h"
#include "gridd/domain/lookups.h"
#include "gridd/store/database.h"

namespace gridd::store {

using domain::Account;
using domain::ApiKey;
using domain::Datacenter;
using domain::Host;
using domain::Image;
using domain::Ip;
using domain::IpPool;
using domain::Job;
using domain::JobHistoryEntry;
using domain::LoadBalancer;
using domain::Password;
using domain::Server;

namespace accounts {
int64_t Insert(Connection& c, const std::string& name, int64_t now_ms);
std::optional<Account> FindByName(Connection& c, const std::string& name);
std::optional<Account> FindById(Connection& c, int64_t id);
std::vector<Account> List(Connection& c);
int64_t Count(Connection& c);
}  // namespace accounts

namespace api_keys {
void Insert(Connection& c, const ApiKey& key, const SecretBox& box);
std::optional<ApiKey> FindByKey(Connection& c, const std::string& key, const SecretBox& box);
std::vector<ApiKey> List(Connection& c, std::optional<int64_t> account_id, const SecretBox& box);
bool Revoke(Connection& c, const std::string& key);
// Changes an active key's role; false when no active key has that value.
bool SetRole(Connection& c, const std::string& key, int64_t role);
// Sets an active key's signing policy; false when no active key has that value.
bool SetSigning(Connection& c, const std::string& key, domain::SigningPolicy policy);
// Replaces an active key's secret; the old one keeps verifying until `previous_until_ms`
// (a time in the past drops it). False when no active key has that value.
bool Rotate(Connection& c, const std::string& key, const std::string& new_secret,
            int64_t previous_until_ms, const SecretBox& box);
}  // namespace api_keys

namespace datacenters {
void Upsert(Connection& c, const Datacenter& datacenter);
std::vector<Datacenter> List(Connection& c);
}  // namespace datacenters

namespace operating_systems {
std::vector<domain::Option> List(Connection& c);
// Returns the id of the OS with this name, adding it when new.
int64_t FindOrInsert(Connection& c, const std::string& name);
}  // namespace operating_systems

namespace ip_pools {
int64_t Insert(Connection& c, const IpPool& pool, int64_t now_ms);
std::optional<IpPool> FindByCidr(Connection& c, const std::string& cidr);
std::vector<IpPool> List(Connection& c);
void InsertAddress(Connection& c, int64_t pool_id, const std::string& address,
                   std::optional<int64_t> account_id);
// Gives up to `count` unowned addresses of the pool to the account; returns how many.
int AllocateBlock(Connection& c, int64_t pool_id, int64_t account_id, int count);
int64_t CountOwned(Connection& c, int64_t pool_id, int64_t account_id);
struct Usage {
  int64_t total = 0;
  int64_t assigned = 0;
};
Usage UsageOf(Connection& c, int64_t pool_id);
// Removes the pool and all its addresses; the caller checks that none is assigned.
void Delete(Connection& c, int64_t pool_id);
}  // namespace ip_pools

namespace ips {
struct Filter {
  std::optional<int64_t> state;
  std::optional<bool> is_public;
  std::vector<int64_t> datacenters;
};
std::vector<Ip> List(Connection& c, int64_t account_id, const Filter& filter);
std::optional<Ip> Get(Connection& c, int64_t account_id, int64_t id);
std::optional<Ip> FindByAddress(Connection& c, int64_t account_id, const std::string& address);
// Marks an Unassigned IP Assigned to the server; false if someone else took it first.
bool Assign(Connection& c, int64_t ip_id, int64_t server_id);
void Release(Connection& c, int64_t ip_id);
// Marks an Unassigned IP Assigned as a load balancer's virtual IP; false if it was taken.
bool AssignAsVirtualIp(Connection& c, int64_t ip_id);
}  // namespace ips

namespace images {
// Inserts or updates an operator image by its unique name; returns its id.
int64_t UpsertPublic(Connection& c, const Image& image, int64_t now_ms);
std::vector<Image> ListVisible(Connection& c, int64_t account_id);
std::optional<Image> GetVisible(Connection& c, int64_t account_id, int64_t id);
std::vector<Image> FindVisibleByName(Connection& c, int64_t account_id, const std::string& name);
std::optional<Image> GetAny(Connection& c, int64_t id);
std::vector<Image> ListAll(Connection& c);
// A customer's image (grid.image.save); returns its id.
int64_t InsertPrivate(Connection& c, const Image& image);
// Writes what a customer or a job may change: names, flags, state and updated time.
void Update(Connection& c, const Image& image);
// Images in the Trash since `trashed_before_ms` or earlier (their last change) that no server
// uses and no job is pending on: their volumes may be purged.
std::vector<Image> ListPurgeable(Connection& c, int64_t trashed_before_ms);
void Delete(Connection& c, int64_t id);
}  // namespace images

namespace servers {
int64_t Insert(Connection& c, const Server& server);
std::optional<Server> Get(Connection& c, int64_t account_id, int64_t id);
std::optional<Server> GetAny(Connection& c, int64_t id);
std::vector<Server> FindByName(Connection& c, int64_t account_id, const std::string& name);
std::vector<Server> List(Connection& c, int64_t account_id);
// A server read together with its IP (and the IP's pool) in one query; no IP when the server
// names an address that is not its account's.
struct WithIp {
  Server server;
  std::optional<Ip> ip;
};
std::optional<WithIp> GetWithIp(Connection& c, int64_t account_id, int64_t id);
std::vector<WithIp> FindByNameWithIp(Connection& c, int64_t account_id, const std::string& name);
std::vector<WithIp> ListWithIp(Connection& c, int64_t account_id);
// The account's servers (of one type, when given): how many (a counter, not a scan), and
// `limit` of them from position `offset` in id order, so a page costs the same whatever the
// account's size.
int64_t Count(Connection& c, int64_t account_id, std::optional<int64_t> type);
std::vector<WithIp> ListPage(Connection& c, int64_t account_id, std::optional<int64_t> type,
                             int64_t offset, int64_t limit);
std::vector<Server> ListAll(Connection& c);
void SetState(Connection& c, int64_t id, int64_t state, int64_t now_ms);
void Update(Connection& c, const Server& server);
// Moves the server to another host (placement, evacuation).
void SetHost(Connection& c, int64_t id, int64_t host_id);
// The servers placed on a host.
std::vector<Server> ListOnHost(Connection& c, int64_t host_id);
// The servers without a host (rows written before placement; they run on the default host).
std::vector<Server> ListUnplaced(Connection& c);
// Removes the server; its usage interval ends at now_ms.
void Delete(Connection& c, int64_t id, int64_t now_ms);
// Without a time, the interval ends at the server's last change.
void Delete(Connection& c, int64_t id);
}  // namespace servers

namespace hosts {
std::vector<Host> List(Connection& c);
std::optional<Host> Get(Connection& c, int64_t id);
std::optional<Host> FindByName(Connection& c, const std::string& name);
int64_t Insert(Connection& c, const Host& host);
// Writes state, maintenance, URI and overcommit (name and datacenter never change).
void Update(Connection& c, const Host& host);
void Delete(Connection& c, int64_t id);
int64_t CountServers(Connection& c, int64_t host_id);
}  // namespace hosts

namespace datacenters {
// Adds a datacenter with the next free id; returns it.
int64_t Insert(Connection& c, const std::string& name, const std::string& description);
}  // namespace datacenters

// Metering for billing. The servers:: writers call usage::TrackServer in their own statement's
// transaction, so no state change can commit without its usage record.
namespace usage {
struct ServerInterval {
  int64_t server_id = 0;
  int64_t ram = 0;  // server.ram option id
  bool powered_on = false;
  int64_t start_ms = 0;
  std::optional<int64_t> end_ms;  // open while the server keeps this RAM and power state
};
// Closes the server's open interval and opens a new one when its RAM or power changed; closes
// it when the server is gone.
void TrackServer(Connection& c, int64_t server_id, int64_t now_ms);
// Intervals of the account that overlap [from_ms, to_ms).
std::vector<ServerInterval> ServerIntervals(Connection& c, int64_t account_id, int64_t from_ms,
                                            int64_t to_ms);
struct Transfer {
  int64_t bytes_in = 0;
  int64_t bytes_out = 0;
};
// Records load-balancer traffic from HAProxy's cumulative counters: the growth since the last
// reading (all of it after a reload reset the counters) is added at now_ms. `created_ms` tells
// a balancer from a later one that reuses its id.
void RecordBalancerCounters(Connection& c, int64_t account_id, int64_t load_balancer_id,
                            int64_t created_ms, uint64_t bytes_in, uint64_t bytes_out,
                            int64_t now_ms);
Transfer TransferBetween(Connection& c, int64_t account_id, int64_t from_ms, int64_t to_ms);
}  // namespace usage

namespace load_balancers {
int64_t Insert(Connection& c, const LoadBalancer& balancer);
std::optional<LoadBalancer> Get(Connection& c, int64_t account_id, int64_t id);
std::optional<LoadBalancer> GetAny(Connection& c, int64_t id);
std::vector<LoadBalancer> FindByName(Connection& c, int64_t account_id, const std::string& name);
std::vector<LoadBalancer> List(Connection& c, int64_t account_id);
std::vector<LoadBalancer> ListAll(Connection& c);
// Updates the row and replaces the members.
void Update(Connection& c, const LoadBalancer& balancer);
void SetState(Connection& c, int64_t id, int64_t state, int64_t now_ms);
void Delete(Connection& c, int64_t id);
}  // namespace load_balancers

namespace passwords {
int64_t Insert(Connection& c, const Password& password, const SecretBox& box, int64_t now_ms);
std::vector<Password> List(Connection& c, int64_t account_id, const SecretBox& box);
std::optional<Password> Get(Connection& c, int64_t account_id, int64_t id, const SecretBox& box);
void DeleteForServer(Connection& c, int64_t server_id);
}  // namespace passwords

namespace jobs {
// Inserts the job with history entries Created and Queued; returns its id.
int64_t Insert(Connection& c, Job& job, int64_t now_ms);
std::optional<Job> Get(Connection& c, int64_t account_id, int64_t id);
std::optional<Job> GetAny(Connection& c, int64_t id);
std::vector<Job> List(Connection& c, int64_t account_id);  // newest first, with history
// What grid.job.list filters on; empty lists and absent values match everything.
struct Query {
  int64_t account_id = 0;
  int64_t created_from_ms = 0;        // inclusive
  int64_t created_to_ms = INT64_MAX;  // inclusive
  std::vector<int64_t> object_types;
  std::vector<int64_t> commands;
  std::vector<int64_t> states;
  std::vector<int64_t> datacenters;
  std::optional<std::string> owner;
  // The object's name, or its id written as the decimal number it is.
  std::optional<std::string> object;
};
// Ids of the account's jobs that match, newest first; the filtering is done by SQLite (with
// indexes for the object), so only the jobs a page shows need loading.
std::vector<int64_t> FindIds(Connection& c, const Query& query);
void AppendHistory(Connection& c, int64_t job_id, int64_t state,
                   const std::optional<std::string>& note, int64_t now_ms);
// The object's newest job (of `command` only, when given), without its history.
std::optional<Job> Newest(Connection& c, int64_t object_type, int64_t object_id,
                          std::optional<int64_t> command = std::nullopt);
// True while a Queued or Processing job acts on this object.
bool HasPending(Connection& c, int64_t object_type, int64_t object_id);
// Claims the oldest runnable Queued job whose object has no earlier unfinished job: state
// Processing, attempts+1, lease until now+lease. Returns nothing when no job is ready.
std::optional<Job> Claim(Connection& c, int64_t now_ms, int64_t lease_ms);
void Finish(Connection& c, int64_t job_id, int64_t state, const std::optional<std::string>& error,
            int64_t now_ms);
void Retry(Connection& c, int64_t job_id, int64_t next_run_ms, const std::string& note,
           int64_t now_ms);
// Puts Processing jobs whose lease ends before `expired_before_ms` back in the queue, runnable
// at once; `now_ms` is recorded as the time of the change. Returns how many.
int RequeueExpired(Connection& c, int64_t expired_before_ms, int64_t now_ms);
int64_t CountUnfinished(Connection& c);
// Puts a Failed job back in the queue, runnable at once, as a fresh run (attempts 0), with a
// Queued history entry carrying `note`. False when the job is not Failed.
bool RequeueFailed(Connection& c, int64_t job_id, const std::string& note, int64_t now_ms);
// Earliest next_run_ms of a Queued job, if any (for the worker's sleep).
std::optional<int64_t> NextRunMs(Connection& c);
}  // namespace jobs

}  // namespace gridd::store
