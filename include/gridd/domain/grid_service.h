// The customer-facing rules of gridd: what may be listed, created, changed and deleted, by
// whom, and what job carries each change out. Every mutation validates its input completely
// first, then writes the new state and its job in one transaction, and returns at once; the
// job queue does the slow work on the hypervisor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/common/crypto.h"
#include "gridd/domain/entities.h"
#include "gridd/domain/lookups.h"
#include "gridd/domain/scheduler.h"
#include "gridd/store/database.h"

namespace gridd::store::servers {
struct WithIp;
}  // namespace gridd::store::servers

namespace gridd::domain {

// Who is calling: resolved from the API key by the API layer.
struct Caller {
  int64_t account_id = 0;
  std::string account_name;
  std::string api_key;
  Role role = Role::kReadOnlyUser;
  // GoGrid's job owner format: "<api_key>-<account id>@api".
  std::string JobOwner() const;
};

// How a request names one object: by numeric id, by exact name, or either.
struct Selector {
  enum class Kind { kId, kName, kIdOrName };
  Kind kind = Kind::kIdOrName;
  std::string value;
};

// The operator-defined lookups at one moment.
struct CatalogLookups {
  std::vector<Option> datacenters;
  std::vector<Option> operating_systems;
};

// The operator-defined lookups (datacenters, operating systems), cached in memory.
class Catalog {
 public:
  explicit Catalog(store::Database& db) : db_(db) {}
  // The current lookups, shared rather than copied: every answer reads them.
  std::shared_ptr<const CatalogLookups> Lookups();
  std::vector<Option> Datacenters() { return Lookups()->datacenters; }
  std::vector<Option> OperatingSystems() { return Lookups()->operating_systems; }
  void Invalidate();

 private:
  store::Database& db_;
  std::mutex mutex_;
  std::shared_ptr<const CatalogLookups> lookups_;  // null until loaded
};

// A server together with what a client sees of it.
struct ServerView {
  Server server;
  // Shared by the servers of one answer built from the same image: a page of 100 servers
  // copied the image's text into each of them.
  std::shared_ptr<const Image> image;
  Ip ip;
  bool include_id = true;  // false in server.add's answer (GoGrid's asynchronous add)
  // The server's host is Down: its real state is unknown (shown as state "Unknown").
  bool host_unreachable = false;
};

struct PasswordView {
  Password password;
  std::optional<ServerView> server;
};

struct ServerFilter {
  std::optional<int64_t> type;
  std::optional<bool> sandbox;
  std::vector<int64_t> datacenters;
};

struct ServerAddRequest {
  std::optional<std::string> name;
  std::optional<std::string> image;
  std::optional<std::string> ram;
  std::optional<std::string> ip;
  std::optional<std::string> description;
  std::optional<std::string> type;
};

struct ServerEditRequest {
  std::vector<Selector> selectors;
  std::optional<std::string> ram;
  std::optional<std::string> description;
  std::optional<std::string> type;
};

struct IpFilter {
  std::optional<int64_t> state;
  std::optional<int64_t> type;
  std::vector<int64_t> datacenters;
};

struct ImageFilter {
  std::optional<bool> is_public;
  std::optional<int64_t> type;
  std::optional<int64_t> state;
  std::vector<int64_t> datacenters;
};

struct ImageSaveRequest {
  std::optional<std::string> friendly_name;
  std::optional<std::string> server;  // id or name
  std::optional<std::string> description;
};

struct ImageEditRequest {
  std::vector<Selector> selectors;
  std::optional<std::string> friendly_name;
  std::optional<std::string> description;
  std::optional<bool> is_public;
};

struct JobFilter {
  std::optional<int64_t> start_ms;
  std::optional<int64_t> end_ms;
  std::vector<int64_t> object_types;
  std::vector<int64_t> commands;
  std::vector<int64_t> states;
  std::optional<std::string> owner;
  std::optional<std::string> object;
  std::vector<int64_t> datacenters;
};

// The part of a list a client asked for (grid.*.list's num_items and page), decided once the
// number of matching items is known: `limit` items from position `offset`.
struct ListWindow {
  int64_t offset = 0;
  int64_t limit = 0;
};
using WindowFor = std::function<ListWindow(int64_t total)>;

// One page of a list, and how many items the whole list has.
template <typename T>
struct ListPage {
  std::vector<T> items;
  int64_t total = 0;
};

// Prices and allotments of a billing period (config [billing]).
struct BillingOptions {
  int period_start_day = 1;
  int64_t memory_allotment_gb_hours = 0;
  double memory_allotment_price = 0;
  double memory_gb_hour_price = 0.19;
  int64_t transfer_allotment_gb = 0;
  double transfer_gb_price = 0;
  bool bill_powered_off_servers = true;
};

// The account's current billing period (spec §9.12): RAM in GB-hours, transfer in outbound GB,
// both from metering; whole units are rounded down, charges in US$.
struct BillingSummary {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int64_t memory_allotment = 0;
  double memory_in_use = 0;  // GB of RAM deployed now
  int64_t memory_accrued = 0;
  int64_t memory_overage = 0;
  double memory_overage_charge = 0;
  int64_t transfer_allotment = 0;
  int64_t transfer_accrued = 0;
  int64_t transfer_overage = 0;
  double transfer_overage_charge = 0;
  // Projections for the whole period: RAM as deployed now until its end, transfer at the rate
  // of the period so far.
  int64_t memory_projected_usage = 0;
  double memory_projected_overage_charge = 0;
  double memory_projected_total_charge = 0;
  int64_t transfer_projected_usage = 0;
  double transfer_projected_overage_charge = 0;
  double transfer_projected_total_charge = 0;
};

// The billing period containing `now_ms`: [start, end) from `start_day` 00:00 UTC to the same
// day of the next month.
std::pair<int64_t, int64_t> BillingPeriod(int64_t now_ms, int start_day);

struct GridServiceOptions {
  size_t max_name_length = 20;
  size_t max_description_length = 500;
  size_t max_image_name_length = 100;
  size_t password_length = 12;
  // IPv4 CIDRs a load balancer's virtual IP must lie in; empty allows any.
  std::vector<std::string> vip_networks;
  BillingOptions billing;
  // Places new servers on hosts and books their RAM; null: servers get no host (the jobs then
  // use the default host).
  Scheduler* scheduler = nullptr;
};

class GridService {
 public:
  // `on_job_queued` is called after every commit that queued a job, to wake the workers.
  GridService(store::Database& db, Catalog& catalog, const Clock& clock, const SecretBox& box,
              std::function<void()> on_job_queued, GridServiceOptions options = {});

  Catalog& catalog() { return catalog_; }
  // Options of a lookup by its name or id (common.lookup.list); 400 when unknown.
  std::vector<Option> Lookup(std::string_view lookup);
  // Resolves a datacenter given by id or name; 400 naming the parameter when unknown.
  int64_t ResolveDatacenter(std::string_view parameter, std::string_view value);

  std::vector<ServerView> ListServers(const Caller& caller, const ServerFilter& filter);
  // The page of ListServers that `window` picks, read without loading the other servers.
  ListPage<ServerView> ListServerPage(const Caller& caller, const ServerFilter& filter,
                                      const WindowFor& window);
  std::vector<ServerView> GetServers(const Caller& caller, const std::vector<Selector>& selectors);
  ServerView AddServer(const Caller& caller, const ServerAddRequest& request);
  ServerView EditServer(const Caller& caller, const ServerEditRequest& request);
  ServerView PowerServer(const Caller& caller, const std::vector<Selector>& selectors,
                         const std::optional<std::string>& power);
  ServerView DeleteServer(const Caller& caller, const std::vector<Selector>& selectors);

  std::vector<Ip> ListIps(const Caller& caller, const IpFilter& filter);
  std::vector<Ip> GetIps(const Caller& caller, const std::vector<std::string>& ids,
                         const std::vector<std::string>& addresses);

  std::vector<Image> ListImages(const Caller& caller, const ImageFilter& filter);
  std::vector<Image> GetImages(const Caller& caller, const std::vector<Selector>& selectors);
  // Saves a private image from a server's disk: the image is Saving and the server Saving
  // (Off/Saving when it was off) until the SaveServerImage job has copied the disk.
  Image SaveImage(const Caller& caller, const ImageSaveRequest& request);
  // Changes an owned image's friendly name, description or public flag.
  Image EditImage(const Caller& caller, const ImageEditRequest& request);
  // Moves an owned image to the Trash (no new servers from it) and back.
  Image DeleteImage(const Caller& caller, const std::vector<Selector>& selectors);
  Image RestoreImage(const Caller& caller, const std::vector<Selector>& selectors);

  std::vector<Job> ListJobs(const Caller& caller, const JobFilter& filter);
  // The page of ListJobs that `window` picks; only its jobs and their history are loaded.
  ListPage<Job> ListJobPage(const Caller& caller, const JobFilter& filter, const WindowFor& window);
  std::vector<Job> GetJobs(const Caller& caller, const std::vector<std::string>& ids);

  std::vector<PasswordView> ListPasswords(const Caller& caller,
                                          const std::vector<int64_t>& datacenters);
  std::vector<PasswordView> GetPasswords(const Caller& caller, const std::vector<std::string>& ids);

  // myaccount.billing.get: the current period of the caller's account.
  BillingSummary Billing(const Caller& caller);

 private:
  // `images`, when given, holds the images already read for this answer: a page of servers
  // mostly shares a few images, read once each rather than once per server.
  using ImagesRead = std::unordered_map<int64_t, std::shared_ptr<const Image>>;
  ServerView View(store::Connection& c, const Server& server, ImagesRead* images = nullptr);
  // The same for a server read with its IP.
  ServerView View(store::Connection& c, store::servers::WithIp row, ImagesRead* images = nullptr);
  // Resolves one server for a change: exactly one selector, exactly one match, no job pending.
  Server SelectOneForChange(store::Connection& c, const Caller& caller,
                            const std::vector<Selector>& selectors);
  // The servers a selector names, as Server or as store::servers::WithIp.
  template <typename Row>
  std::vector<Row> Select(store::Connection& c, const Caller& caller, const Selector& selector);
  std::vector<Image> SelectImages(store::Connection& c, const Caller& caller,
                                  const Selector& selector);
  // Resolves one image the caller owns for a change: exactly one selector and one match.
  Image SelectOwnImage(store::Connection& c, const Caller& caller,
                       const std::vector<Selector>& selectors);
  Job NewServerJob(const Caller& caller, const Server& server, const Ip& ip, const Image& image,
                   int64_t command);

  store::Database& db_;
  Catalog& catalog_;
  const Clock& clock_;
  const SecretBox& box_;
  std::function<void()> on_job_queued_;
  GridServiceOptions options_;
};

// Parses GoGrid's datetime inputs: "YYYY-MM-DD hh:mm:ss[.s] [TZD]", "YYYY-MM-DD",
// "MM/DD/YYYY", "MM/DD/YY", milliseconds since the epoch, or "now". 400 on anything else.
int64_t ParseDateTime(std::string_view parameter, std::string_view text, int64_t now_ms);

// MAC address gridd gives the server with this id (locally administered KVM prefix).
std::string MacForServer(int64_t server_id);

}  // namespace gridd::domain
