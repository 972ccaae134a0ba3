// The hypervisor hosts gridd drives: one libvirt connection per host, each host's state
// (Up/Down, maintenance) and the scheduler's view of its capacity. Job handlers, the
// reconciler and the admin commands find a server's hypervisor here.
//
// It opens hypervisors through a factory (gridd's: a virt::HostConnection per host). A
// HostConnection reports the host Up or Down by itself, and the registry follows it through
// MarkDown/MarkUp. A Down host's servers show state Unknown, a job that needs the host waits
// for it until the job's deadline and then fails naming the host, and when the host returns
// its domains are reconciled (a volatile host's servers are materialised on demand).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gridd/domain/entities.h"
#include "gridd/domain/scheduler.h"
#include "gridd/store/database.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::jobs {

// Opens the hypervisor of a host at `uri`. May throw when the host does not answer; a
// virt::HostConnection instead starts Down and is followed until it answers.
using HypervisorFactory = std::function<std::unique_ptr<virt::Hypervisor>(const domain::Host& host,
                                                                          const std::string& uri)>;

struct HostView {
  domain::Host host;
  std::string uri;  // the URI in use (the default host's comes from the configuration)
  bool connected = false;
  std::string last_error;  // why the host is Down, when gridd knows
  domain::HostSlot slot;   // capacity and use
  unsigned vcpus_used = 0;
};

class HostRegistry {
 public:
  // Hosts from the database. `default_uri` is the [libvirt] uri, used by a host row without
  // one (the "default" host of an install made before hosts existed).
  HostRegistry(store::Database& db, domain::Scheduler& scheduler, HypervisorFactory connect,
               std::string default_uri);
  // One fixed hypervisor and no database rows (unit tests, tools): every server runs on it.
  explicit HostRegistry(virt::Hypervisor& only);
  ~HostRegistry();

  // Called after each new connection, before the host takes servers: defines pools, follows
  // domain events, restores a volatile hypervisor's saved images.
  using ConnectHook = std::function<void(const domain::Host&, virt::Hypervisor&)>;
  void OnConnect(ConnectHook hook) { on_connect_ = std::move(hook); }
  // Called when a Down host answers again (reconcile its domains).
  void OnReturn(std::function<void(int64_t host_id)> hook) {
    std::lock_guard<std::mutex> lock(mutex_);  // host connections may already report
    on_return_ = std::move(hook);
  }

  // Reads the hosts, connects to each (one that does not answer is marked Down) and books each
  // host's servers in the scheduler.
  void Load();

  // The hypervisor of a server: its host's, or the default host's when it has none. On a
  // volatile host (libvirt's test driver) the server's domain is first materialised from the
  // database when the host does not have it (MaterialiseServer). When the host is Down, a job's
  // thread waits for it to come back until the job's deadline (the job then fails naming the host);
  // outside a job this throws a transient HypervisorError naming the host at once.
  virt::Hypervisor& ForServer(const domain::Server& server);
  virt::Hypervisor& ForHost(int64_t host_id);
  // True when servers' domains on `hypervisor` are materialised on demand: a volatile host of
  // a registry with a database. ForServer then builds a missing domain, and the reconciler
  // does not count one not built yet as missing.
  bool MaterialisesOnDemand(const virt::Hypervisor& hypervisor) const {
    return db_ != nullptr && hypervisor.volatile_state();
  }
  // The host a server without one runs on; nullopt when there is none.
  std::optional<int64_t> DefaultHostId() const;
  std::optional<int64_t> HostOf(const domain::Server& server) const;
  std::string HostName(int64_t host_id) const;
  bool SharedStorage(int64_t host_id) const;

  // Connected, Up hosts with their hypervisors.
  struct Connected {
    domain::Host host;
    virt::Hypervisor* hypervisor = nullptr;
  };
  std::vector<Connected> UpHosts();
  // Every host, Up or not (hypervisor null when not connected).
  std::vector<Connected> AllHosts();

  // The connection layer's calls. MarkDown records the state (servers show Unknown, nothing
  // new is placed there). MarkUp connects if needed, reads the capacity again and runs the
  // return hook; false (and the host stays Down) when it does not answer.
  void MarkDown(int64_t host_id, const std::string& reason, bool by_operator = false);
  bool MarkUp(int64_t host_id, std::string* error = nullptr);
  // Tries MarkUp on every Down host that gridd marked Down itself (it did not answer when
  // connecting), not on hosts the operator marked Down.
  void RetryUnreachable();
  // Stops following the host connections' Up/Down reports (waits for a report in progress).
  // Call before anything the hooks use is destroyed; not from a hook.
  void StopFollowing();

  // Operator commands (gridctl host ...). Errors are GoGrid-style 400s that change nothing.
  domain::Host Add(const std::string& name, const std::string& uri, int64_t datacenter_id,
                   double ram_overcommit, bool shared_storage);
  void Remove(const std::string& name);
  domain::Host SetMaintenance(const std::string& name, bool maintenance);
  domain::Host Find(const std::string& name);
  std::vector<HostView> List();

  // Re-counts every host's booked RAM and servers from the servers table, inside a write
  // transaction so no placement interleaves (corrects any drift; runs with the reconciler).
  void RecountUse();

  domain::Scheduler* scheduler() { return scheduler_; }
  store::Database* db() { return db_; }

 private:
  struct Entry {
    domain::Host host;
    std::unique_ptr<virt::Hypervisor> owned;
    virt::Hypervisor* hypervisor = nullptr;
    std::string last_error;
    bool marked_by_operator = false;
    bool prepared = false;  // the connect hook has run on `hypervisor`
  };
  // A host connection reported the host Up or Down (on the connection's thread).
  void OnConnectionState(int64_t host_id, bool up);
  void Follow(int64_t host_id, virt::Hypervisor* hypervisor);
  std::string UriOf(const domain::Host& host) const;
  // Connects outside the lock; fills capacity in the scheduler. Throws on failure.
  std::unique_ptr<virt::Hypervisor> Connect(const domain::Host& host, virt::HostCapacity& capacity);
  void WriteState(int64_t host_id, int64_t state);
  domain::HostSlot SlotFor(const domain::Host& host, const virt::HostCapacity& capacity) const;

  store::Database* db_ = nullptr;
  domain::Scheduler* scheduler_ = nullptr;
  HypervisorFactory connect_;
  std::string default_uri_;
  ConnectHook on_connect_;
  std::function<void(int64_t)> on_return_;
  mutable std::mutex mutex_;
  std::condition_variable host_up_;  // a host came Up (jobs waiting in ForHost)
  std::map<int64_t, std::shared_ptr<Entry>> entries_;
  // Hypervisors of removed hosts stay alive: a job may still hold a reference.
  std::vector<std::unique_ptr<virt::Hypervisor>> retired_;
  std::optional<int64_t> default_host_;
};

}  // namespace gridd::jobs
