#include "gridd/jobs/hosts.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <unordered_map>

#include "gridd/common/error.h"
#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"

namespace gridd::jobs {
namespace {

using domain::Host;
namespace host_state = domain::host_state;

// The vCPUs gridd gives a server of this RAM (the same rule as the domain definition).
unsigned VcpusFor(int64_t ram_option) {
  return static_cast<unsigned>(std::clamp<uint64_t>(domain::RamMib(ram_option) / 1024, 1, 8));
}

}  // namespace

HostRegistry::HostRegistry(store::Database& db, domain::Scheduler& scheduler,
                           HypervisorFactory connect, std::string default_uri)
    : db_(&db),
      scheduler_(&scheduler),
      connect_(std::move(connect)),
      default_uri_(std::move(default_uri)) {}

HostRegistry::HostRegistry(virt::Hypervisor& only) {
  auto entry = std::make_shared<Entry>();
  entry->host.name = "default";
  entry->hypervisor = &only;
  entries_[0] = entry;
  default_host_ = 0;
}

HostRegistry::~HostRegistry() = default;

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
  auto hypervisor = connect_(UriOf(host));
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
        entry->owned = Connect(host, capacity);
        entry->hypervisor = entry->owned.get();
        host.state = host_state::kUp;
        spdlog::info("host {}: {} ({} MiB RAM, {} CPUs)", host.name, entry->hypervisor->uri(),
                     capacity.memory_mib, capacity.cpus);
      } catch (const std::exception& error) {
        host.state = host_state::kDown;
        entry->last_error = error.what();
        spdlog::error("host {}: {} does not answer: {}; marked Down", host.name, UriOf(host),
                      error.what());
      }
      if (host.state != stored.state) WriteState(host.id, host.state);
    }
    entry->host = host;
    scheduler_->Upsert(SlotFor(host, capacity));
    std::lock_guard<std::mutex> lock(mutex_);
    entries_[host.id] = entry;
    if (host.uri.empty() || !default_host_) default_host_ = host.id;
  }
  RecountUse();
}

void HostRegistry::RecountUse() {
  if (db_ == nullptr) return;
  db_->Write([&](store::Connection& c) {
    std::unordered_map<int64_t, std::pair<int64_t, int64_t>> use;  // host: RAM, servers
    auto s = c.Prepare("SELECT host_id, ram FROM servers WHERE host_id IS NOT NULL");
    while (s.Step()) {
      auto& [ram, servers] = use[s.Int(0)];
      ram += static_cast<int64_t>(domain::RamMib(s.Int(1)));
      ++servers;
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
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(host_id);
  if (it == entries_.end()) {
    throw virt::HypervisorError(virt::HypervisorErrorKind::kInvalid,
                                "host " + std::to_string(host_id) + " is not known to gridd");
  }
  const Entry& entry = *it->second;
  if (entry.hypervisor == nullptr || entry.host.state != host_state::kUp) {
    throw virt::HypervisorError(
        virt::HypervisorErrorKind::kTransient,
        "host " + entry.host.name + " is Down" +
            (entry.last_error.empty() ? "" : " (" + entry.last_error + ")"));
  }
  return *entry.hypervisor;
}

virt::Hypervisor& HostRegistry::ForServer(const domain::Server& server) {
  auto host = HostOf(server);
  if (!host) {
    throw virt::HypervisorError(virt::HypervisorErrorKind::kInvalid,
                                "server " + std::to_string(server.id) + " has no host");
  }
  return ForHost(*host);
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
    it->second->last_error = reason;
    it->second->marked_by_operator = by_operator;
    if (it->second->host.state == host_state::kDown) return;
    it->second->host.state = host_state::kDown;
  }
  if (scheduler_ != nullptr) scheduler_->SetUp(host_id, false);
  if (db_ != nullptr) WriteState(host_id, host_state::kDown);
  spdlog::warn("host {}: Down: {}", HostName(host_id), reason);
}

bool HostRegistry::MarkUp(int64_t host_id, std::string* error) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(host_id);
    if (it == entries_.end()) {
      if (error) *error = "host " + std::to_string(host_id) + " is not known to gridd";
      return false;
    }
    entry = it->second;
  }
  virt::HostCapacity capacity;
  std::unique_ptr<virt::Hypervisor> fresh;
  try {
    if (entry->hypervisor == nullptr) {
      fresh = Connect(entry->host, capacity);
    } else {
      capacity = entry->hypervisor->Capacity();  // answers again?
    }
  } catch (const std::exception& failure) {
    std::lock_guard<std::mutex> lock(mutex_);
    entry->last_error = failure.what();
    if (error) *error = failure.what();
    return false;
  }
  bool was_down = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fresh) {
      entry->owned = std::move(fresh);
      entry->hypervisor = entry->owned.get();
    }
    was_down = entry->host.state != host_state::kUp;
    entry->host.state = host_state::kUp;
    entry->last_error.clear();
    entry->marked_by_operator = false;
  }
  if (scheduler_ != nullptr) {
    scheduler_->SetRam(host_id, static_cast<int64_t>(capacity.memory_mib), capacity.cpus);
    scheduler_->SetUp(host_id, true);
  }
  if (was_down) {
    if (db_ != nullptr) WriteState(host_id, host_state::kUp);
    spdlog::info("host {}: Up again", entry->host.name);
    if (on_return_) on_return_(host_id);
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
    hypervisor = connect_(uri);
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
  scheduler_->Upsert(SlotFor(host, capacity));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_[host.id] = entry;
    if (!default_host_) default_host_ = host.id;
  }
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
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    if (it->second->owned) retired_.push_back(std::move(it->second->owned));
    entries_.erase(it);
  }
  if (default_host_ && *default_host_ == id) {
    default_host_.reset();
    if (!entries_.empty()) default_host_ = entries_.begin()->first;
  }
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
    auto s = c.Prepare("SELECT host_id, ram FROM servers WHERE host_id IS NOT NULL");
    while (s.Step()) vcpus[s.Int(0)] += VcpusFor(s.Int(1));
  });
  std::vector<HostView> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, entry] : entries_) {
    HostView view;
    view.host = entry->host;
    view.uri = UriOf(entry->host);
    view.connected = entry->hypervisor != nullptr;
    view.last_error = entry->last_error;
    if (auto slot = scheduler_->Get(id)) view.slot = *slot;
    view.vcpus_used = vcpus[id];
    out.push_back(std::move(view));
  }
  return out;
}

}  // namespace gridd::jobs
