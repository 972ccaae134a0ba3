#include "gridd/jobs/hosts.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <unordered_map>

#include "gridd/common/error.h"
#include "gridd/domain/lookups.h"
#include "gridd/jobs/job_runner.h"
#include "gridd/jobs/server_jobs.h"
#include "gridd/store/repositories.h"
#include "gridd/virt/host_connection.h"

namespace gridd::jobs {
namespace {

using domain::Host;
namespace host_state = domain::host_state;

// The vCPUs gridd gives a server of this RAM (the same rule as the domain definition).
unsigned VcpusFor(int64_t ram_option) {
  return static_cast<unsigned>(std::clamp<uint64_t>(domain::RamMib(ram_option) / 1024, 1, 8));
}

// The placed servers counted per host and RAM option, summed by SQLite from the index
// servers_by_host_ram: one row per host and RAM size, however many servers there are.
struct PlacedServers {
  int64_t host_id;
  int64_t ram_option;
  int64_t servers;
};
std::vector<PlacedServers> PlacedServersByHostAndRam(store::Connection& c) {
  auto s = c.Prepare(
      "SELECT host_id, ram, COUNT(*) FROM servers WHERE host_id IS NOT NULL "
      "GROUP BY host_id, ram");
  std::vector<PlacedServers> out;
  while (s.Step()) out.push_back({s.Int(0), s.Int(1), s.Int(2)});
  return out;
}

virt::HostConnection* AsConnection(virt::Hypervisor* hypervisor) {
  return dynamic_cast<virt::HostConnection*>(hypervisor);
}

}  // namespace

HostRegistry::HostRegistry(store::Database& db, domain::Scheduler& scheduler,
                           HypervisorFactory connect, std::string default_uri)
    : db_(&db),
      scheduler_(&scheduler),
      connect_(std::move(connect)),
      default_uri_(std::move(default_uri)) {}

HostRegistry::HostRegistry(virt::Hypervisor& only) : default_host_(0) {
  auto entry = std::make_shared<Entry>();
  entry->host.name = "default";
  entry->hypervisor = &only;
  entries_[0] = entry;
}

HostRegistry::~HostRegistry() { StopFollowing(); }

void HostRegistry::StopFollowing() {
  std::vector<virt::HostConnection*> connections;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [id, entry] : entries_) {
      if (auto* connection = AsConnection(entry->owned.get())) connections.push_back(connection);
    }
    for (const auto& retired : retired_) {
      if (auto* connection = AsConnection(retired.get())) connections.push_back(connection);
    }
  }
  for (auto* connection : connections) connection->OnHostStateChange(nullptr);
}

void HostRegistry::Follow(int64_t host_id, virt::Hypervisor* hypervisor) {
  auto* connection = AsConnection(hypervisor);
  if (connection == nullptr) return;
  connection->OnHostStateChange([this, host_id](virt::HostState state) {
    OnConnectionState(host_id, state == virt::HostState::kUp);
  });
}

void HostRegistry::OnConnectionState(int64_t host_id, bool up) {
  std::string uri;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(host_id);
    if (it == entries_.end()) return;
    const Entry& entry = *it->second;
    // A host the operator marked Down stays Down until `gridctl host up`.
    if (up && entry.marked_by_operator) return;
    if (up == (entry.host.state == host_state::kUp)) return;
    uri = UriOf(entry.host);
  }
  if (!up) {
    MarkDown(host_id, "no answer from " + uri);
    return;
  }
  std::string error;
  if (!MarkUp(host_id, &error)) {
    spdlog::warn("host {}: answers again, but not yet usable: {}", HostName(host_id), error);
  }
}

std::string HostRegistry::UriOf(const Host& host) const {
  return host.uri.empty() ? default_uri_ : host.uri;
}

domain::HostSlot HostRegistry::SlotFor(const Host& host, const virt::HostCapacity& capacity) const {
  domain::HostSlot slot;
  slot.id = host.id;
  slot.name = host.name;
  slot.datacenter_id = host.datacenter_id;
  slot.ram_mib = static_cast<int64_t>(capacity.memory_mib);
  slot.cpus = capacity.cpus;
  slot.ram_overcommit = host.ram_overcommit;
  slot.up = host.state == host_state::kUp;
  slot.maintenance = host.maintenance;
  return slot;
}

std::unique_ptr<virt::Hypervisor> HostRegistry::Connect(const Host& host,
                                                        virt::HostCapacity& capacity) {
  auto hypervisor = connect_(host, UriOf(host));
  capacity = hypervisor->Capacity();
  if (on_connect_) on_connect_(host, *hypervisor);
  return hypervisor;
}

void HostRegistry::WriteState(int64_t host_id, int64_t state) {
  db_->Write([&](store::Connection& c) {
    if (auto host = store::hosts::Get(c, host_id)) {
      host->state = state;
      store::hosts::Update(c, *host);
    }
  });
}

void HostRegistry::Load() {
  const auto hosts = db_->Read([](store::Connection& c) { return store::hosts::List(c); });
  for (const auto& stored : hosts) {
    Host host = stored;
    auto entry = std::make_shared<Entry>();
    virt::HostCapacity capacity;
    // A host the operator marked Down stays Down until `gridctl host up`.
    entry->marked_by_operator = host.state == host_state::kDown;
    if (!entry->marked_by_operator) {
      try {
        entry->owned = connect_(host, UriOf(host));
        entry->hypervisor = entry->owned.get();
        capacity = entry->hypervisor->Capacity();
        if (on_connect_) on_connect_(host, *entry->hypervisor);
        entry->prepared = true;
        host.state = host_state::kUp;
        spdlog::info("host {}: {} ({} MiB RAM, {} CPUs)", host.name, entry->hypervisor->uri(),
                     capacity.memory_mib, capacity.cpus);
      } catch (const std::exception& error) {
        host.state = host_state::kDown;
        entry->last_error = error.what();
        // A host connection keeps trying by itself and reports the host Up when it answers;
        // any other hypervisor is opened again by RetryUnreachable.
        if (AsConnection(entry->hypervisor) == nullptr) {
          entry->owned.reset();
          entry->hypervisor = nullptr;
        }
        spdlog::error("host {}: {} does not answer: {}; marked Down", host.name, UriOf(host),
                      error.what());
      }
      if (host.state != stored.state) WriteState(host.id, host.state);
    }
    entry->host = host;
    scheduler_->Upsert(SlotFor(host, capacity));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      entries_[host.id] = entry;
      if (host.uri.empty() || !default_host_) default_host_ = host.id;
    }
    Follow(host.id, entry->hypervisor);
  }
  RecountUse();
}

void HostRegistry::RecountUse() {
  if (db_ == nullptr) return;
  db_->Write([&](store::Connection& c) {
    std::unordered_map<int64_t, std::pair<int64_t, int64_t>> use;  // host: RAM, servers
    for (const auto& placed : PlacedServersByHostAndRam(c)) {
      auto& [ram, servers] = use[placed.host_id];
      ram += static_cast<int64_t>(domain::RamMib(placed.ram_option)) * placed.servers;
      servers += placed.servers;
    }
    for (const auto& slot : scheduler_->List()) {
      const auto& [ram, servers] = use[slot.id];
      scheduler_->SetUse(slot.id, ram, servers);
    }
  });
}

std::optional<int64_t> HostRegistry::DefaultHostId() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return default_host_;
}

std::optional<int64_t> HostRegistry::HostOf(const domain::Server& server) const {
  if (db_ == nullptr) return default_host_;  // one fixed hypervisor
  return server.host_id ? server.host_id : DefaultHostId();
}

std::string HostRegistry::HostName(int64_t host_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(host_id);
  return it == entries_.end() ? "#" + std::to_string(host_id) : it->second->host.name;
}

bool HostRegistry::SharedStorage(int64_t host_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(host_id);
  return it != entries_.end() && it->second->host.shared_storage;
}

virt::Hypervisor& HostRegistry::ForHost(int64_t host_id) {
  const auto deadline = CurrentJobDeadline();
  const auto started = std::chrono::steady_clock::now();
  bool step_set = false;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto it = entries_.find(host_id);
    if (it == entries_.end()) {
      throw virt::HypervisorError(virt::HypervisorErrorKind::kInvalid,
                                  "host " + std::to_string(host_id) + " is not known to gridd");
    }
    const std::shared_ptr<Entry> entry = it->second;
    if (entry->hypervisor != nullptr && entry->host.state == host_state::kUp) {
      return *entry->hypervisor;
    }
    const std::string down = "host " + entry->host.name + " is Down" +
                             (entry->last_error.empty() ? "" : " (" + entry->last_error + ")");
    // Outside a job nobody waits: the caller (reconciler, API) reports the host Down.
    if (!deadline) throw virt::HypervisorError(virt::HypervisorErrorKind::kTransient, down);
    if (std::chrono::steady_clock::now() >= *deadline) {
      // Not retryable: the job has had its whole deadline to wait for the host.
      const auto waited = std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::steady_clock::now() - started);
      throw virt::HypervisorError(virt::HypervisorErrorKind::kInternal,
                                  down + "; waited " + std::to_string(waited.count()) +
                                      " s for it, until the job's deadline");
    }
    if (!step_set) {
      lock.unlock();
      SetJobStep("host " + entry->host.name + " to come back Up");
      lock.lock();
      step_set = true;
      continue;
    }
    host_up_.wait_until(lock, *deadline);
  }
}

virt::Hypervisor& HostRegistry::ForServer(const domain::Server& server) {
  auto host = HostOf(server);
  if (!host) {
    throw virt::HypervisorError(virt::HypervisorErrorKind::kInvalid,
                                "server " + std::to_string(server.id) + " has no host");
  }
  virt::Hypervisor& hypervisor = ForHost(*host);
  // The one place a volatile host's domain is materialised: whatever acts on a server's
  // domain finds it here first.
  if (MaterialisesOnDemand(hypervisor)) MaterialiseServer(*db_, hypervisor, server.id);
  return hypervisor;
}

std::vector<HostRegistry::Connected> HostRegistry::AllHosts() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Connected> out;
  for (const auto& [id, entry] : entries_) out.push_back({entry->host, entry->hypervisor});
  return out;
}

std::vector<HostRegistry::Connected> HostRegistry::UpHosts() {
  auto all = AllHosts();
  std::erase_if(all, [](const Connected& host) {
    return host.hypervisor == nullptr || host.host.state != host_state::kUp;
  });
  return all;
}

void HostRegistry::MarkDown(int64_t host_id, const std::string& reason, bool by_operator) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(host_id);
    if (it == entries_.end()) return;
    // An automatic Down of a host the operator marked Down keeps the operator's mark.
    if (by_operator || it->second->host.state == host_state::kUp) {
      it->second->last_error = reason;
      it->second->marked_by_operator = by_operator;
    }
    if (it->second->host.state == host_state::kDown) return;
    it->second->host.state = host_state::kDown;
  }
  if (scheduler_ != nullptr) scheduler_->SetUp(host_id, false);
  if (db_ != nullptr) WriteState(host_id, host_state::kDown);
  spdlog::warn("host {}: Down: {}", HostName(host_id), reason);
}

bool HostRegistry::MarkUp(int64_t host_id, std::string* error) {
  std::shared_ptr<Entry> entry;
  virt::Hypervisor* hypervisor = nullptr;
  bool prepare = false;
  bool was_down = false;
  Host host;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(host_id);
    if (it == entries_.end()) {
      if (error) *error = "host " + std::to_string(host_id) + " is not known to gridd";
      return false;
    }
    entry = it->second;
    hypervisor = entry->hypervisor;
    prepare = !entry->prepared;
    was_down = entry->host.state != host_state::kUp;
    host = entry->host;
  }
  virt::HostCapacity capacity;
  std::unique_ptr<virt::Hypervisor> fresh;
  std::string failed;
  try {
    if (hypervisor == nullptr) {
      fresh = connect_(host, UriOf(host));
      hypervisor = fresh.get();
      prepare = true;
    }
    capacity = hypervisor->Capacity();  // answers again?
    if (prepare) {
      if (on_connect_) on_connect_(host, *hypervisor);
    } else if (was_down && hypervisor->volatile_state() && db_ != nullptr) {
      // A volatile host (the test driver behind a libvirtd) may have come back empty: its
      // saved images are copied again, as at gridd's start, and its servers' domains are
      // materialised when something acts on them (ForServer).
      RestoreVolatileImages(*db_, *hypervisor);
    }
  } catch (const std::exception& failure) {
    failed = failure.what();
  }
  const bool follow = fresh && AsConnection(fresh.get()) != nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A new host connection is kept even when the host does not answer yet: it reports the
    // host Up once it does.
    if (fresh && (failed.empty() || follow)) {
      if (entry->owned) retired_.push_back(std::move(entry->owned));
      entry->owned = std::move(fresh);
      entry->hypervisor = entry->owned.get();
    }
    if (!failed.empty()) {
      entry->last_error = failed;
      if (error) *error = failed;
    } else {
      entry->prepared = true;
      was_down = entry->host.state != host_state::kUp;
      entry->host.state = host_state::kUp;
      entry->last_error.clear();
      entry->marked_by_operator = false;
    }
  }
  if (follow) Follow(host_id, hypervisor);
  if (!failed.empty()) return false;
  if (scheduler_ != nullptr) {
    scheduler_->SetRam(host_id, static_cast<int64_t>(capacity.memory_mib), capacity.cpus);
    scheduler_->SetUp(host_id, true);
  }
  host_up_.notify_all();
  if (was_down) {
    if (db_ != nullptr) WriteState(host_id, host_state::kUp);
    spdlog::info("host {}: Up again", host.name);
    std::function<void(int64_t)> on_return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      on_return = on_return_;
    }
    if (on_return) on_return(host_id);
  }
  return true;
}

void HostRegistry::RetryUnreachable() {
  std::vector<int64_t> candidates;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [id, entry] : entries_) {
      if (entry->host.state == host_state::kDown && !entry->marked_by_operator &&
          entry->hypervisor == nullptr) {
        candidates.push_back(id);
      }
    }
  }
  for (int64_t id : candidates) MarkUp(id);
}

Host HostRegistry::Find(const std::string& name) {
  auto host = db_->Read([&](store::Connection& c) { return store::hosts::FindByName(c, name); });
  if (!host) ThrowIllegalArgument("no host '" + name + "'");
  return *host;
}

Host HostRegistry::Add(const std::string& name, const std::string& uri, int64_t datacenter_id,
                       double ram_overcommit, bool shared_storage) {
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_' || c == '.';
      })) {
    ThrowIllegalArgument("host name '" + name + "' must be 1-64 letters, digits, '-', '_' or '.'");
  }
  if (uri.empty() || uri.find("://") == std::string::npos) {
    ThrowIllegalArgument("'" + uri + "' is not a libvirt URI (e.g. qemu+ssh://root@kvm1/system)");
  }
  if (!(ram_overcommit >= 0.1 && ram_overcommit <= 10.0)) {
    ThrowIllegalArgument("ram-overcommit must be between 0.1 and 10");
  }
  Host host;
  host.name = name;
  host.uri = uri;
  host.datacenter_id = datacenter_id;
  host.ram_overcommit = ram_overcommit;
  host.shared_storage = shared_storage;
  db_->Read([&](store::Connection& c) {
    if (store::hosts::FindByName(c, name)) ThrowIllegalArgument("host '" + name + "' exists");
    for (const auto& other : store::hosts::List(c)) {
      if (other.uri == uri) {
        ThrowIllegalArgument("host '" + other.name + "' has URI " + uri + " already");
      }
    }
  });
  // A host that does not answer is not added: the operator sees libvirt's reason at once.
  virt::HostCapacity capacity;
  std::unique_ptr<virt::Hypervisor> hypervisor;
  try {
    hypervisor = connect_(host, uri);
    capacity = hypervisor->Capacity();
  } catch (const std::exception& error) {
    ThrowIllegalArgument("cannot connect to " + uri + ": " + error.what());
  }
  host.created_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  host.id = db_->Write([&](store::Connection& c) {
    if (store::hosts::FindByName(c, name)) ThrowIllegalArgument("host '" + name + "' exists");
    return store::hosts::Insert(c, host);
  });
  if (on_connect_) {
    try {
      on_connect_(host, *hypervisor);
    } catch (const std::exception& error) {
      spdlog::warn("host {}: preparing it: {}", name, error.what());
    }
  }
  auto entry = std::make_shared<Entry>();
  entry->host = host;
  entry->owned = std::move(hypervisor);
  entry->hypervisor = entry->owned.get();
  entry->prepared = true;
  host.state = host_state::kUp;
  entry->host.state = host_state::kUp;
  scheduler_->Upsert(SlotFor(host, capacity));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_[host.id] = entry;
    if (!default_host_) default_host_ = host.id;
  }
  Follow(host.id, entry->hypervisor);
  spdlog::info("host {}: added, {} ({} MiB RAM, {} CPUs)", name, uri, capacity.memory_mib,
               capacity.cpus);
  return host;
}

void HostRegistry::Remove(const std::string& name) {
  const int64_t id = db_->Write([&](store::Connection& c) {
    auto host = store::hosts::FindByName(c, name);
    if (!host) ThrowIllegalArgument("no host '" + name + "'");
    const int64_t servers = store::hosts::CountServers(c, host->id);
    if (servers > 0) {
      ThrowIllegalArgument("host '" + host->name + "' has " + std::to_string(servers) +
                           " server(s); delete or evacuate them first");
    }
    // Servers without a host run on the default host: it stays while any exists.
    if (default_host_ && *default_host_ == host->id) {
      auto s = c.Prepare("SELECT COUNT(*) FROM servers WHERE host_id IS NULL");
      s.Step();
      if (s.Int(0) > 0) {
        ThrowIllegalArgument("host '" + host->name + "' runs servers that have no host recorded");
      }
    }
    store::hosts::Delete(c, host->id);
    return host->id;
  });
  scheduler_->Remove(id);
  virt::HostConnection* connection = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(id);
    if (it != entries_.end()) {
      connection = AsConnection(it->second->owned.get());
      if (it->second->owned) retired_.push_back(std::move(it->second->owned));
      entries_.erase(it);
    }
    if (default_host_ && *default_host_ == id) {
      default_host_.reset();
      if (!entries_.empty()) default_host_ = entries_.begin()->first;
    }
  }
  // A removed host's Up and Down are no longer news.
  if (connection != nullptr) connection->OnHostStateChange(nullptr);
  spdlog::info("host {}: removed", name);
}

Host HostRegistry::SetMaintenance(const std::string& name, bool maintenance) {
  Host host = db_->Write([&](store::Connection& c) {
    auto found = store::hosts::FindByName(c, name);
    if (!found) ThrowIllegalArgument("no host '" + name + "'");
    found->maintenance = maintenance;
    store::hosts::Update(c, *found);
    return *found;
  });
  scheduler_->SetMaintenance(host.id, maintenance);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(host.id);
  if (it != entries_.end()) it->second->host.maintenance = maintenance;
  host.state = it != entries_.end() ? it->second->host.state : host.state;
  return host;
}

std::vector<HostView> HostRegistry::List() {
  std::unordered_map<int64_t, unsigned> vcpus;
  db_->Read([&](store::Connection& c) {
    for (const auto& placed : PlacedServersByHostAndRam(c)) {
      vcpus[placed.host_id] += VcpusFor(placed.ram_option) * static_cast<unsigned>(placed.servers);
    }
  });
  std::vector<HostView> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, entry] : entries_) {
    HostView view;
    view.host = entry->host;
    view.uri = UriOf(entry->host);
    // A host connection's own state is followed through its reports (MarkDown/MarkUp), so
    // the list shows one state: the one jobs and the scheduler act on.
    view.connected = entry->hypervisor != nullptr;
    view.last_error = entry->last_error;
    if (auto slot = scheduler_->Get(id)) view.slot = *slot;
    view.vcpus_used = vcpus[id];
    out.push_back(std::move(view));
  }
  return out;
}

}  // namespace gridd::jobs
