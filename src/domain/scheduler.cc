#include "gridd/domain/scheduler.h"

#include <cmath>
#include <iterator>
#include <limits>

namespace gridd::domain {

std::optional<PlacementPolicy> ParsePlacementPolicy(const std::string& text) {
  if (text == "spread") return PlacementPolicy::kSpread;
  if (text == "pack") return PlacementPolicy::kPack;
  return std::nullopt;
}

int64_t HostSlot::LimitMib() const {
  return static_cast<int64_t>(std::floor(static_cast<double>(ram_mib) * ram_overcommit));
}

void Scheduler::Index(const HostSlot& slot) {
  if (!slot.Eligible()) return;
  eligible_[slot.datacenter_id.value_or(kAnyDatacenter)].insert({slot.FreeMib(), -slot.id});
}

void Scheduler::Unindex(const HostSlot& slot) {
  auto it = eligible_.find(slot.datacenter_id.value_or(kAnyDatacenter));
  if (it != eligible_.end()) it->second.erase({slot.FreeMib(), -slot.id});
}

void Scheduler::Book(HostSlot& slot, int64_t ram_mib, int64_t servers) {
  Unindex(slot);
  slot.used_mib += ram_mib;
  slot.servers += servers;
  if (slot.used_mib < 0) slot.used_mib = 0;
  if (slot.servers < 0) slot.servers = 0;
  Index(slot);
}

void Scheduler::Upsert(const HostSlot& slot) {
  std::lock_guard<std::mutex> lock(mutex_);
  HostSlot fresh = slot;
  auto it = hosts_.find(slot.id);
  if (it != hosts_.end()) {
    Unindex(it->second);
    fresh.used_mib = it->second.used_mib;
    fresh.servers = it->second.servers;
  }
  hosts_[slot.id] = fresh;
  Index(fresh);
}

void Scheduler::Remove(int64_t host_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it == hosts_.end()) return;
  Unindex(it->second);
  hosts_.erase(it);
}

void Scheduler::SetUp(int64_t host_id, bool up) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it == hosts_.end()) return;
  Unindex(it->second);
  it->second.up = up;
  Index(it->second);
}

void Scheduler::SetMaintenance(int64_t host_id, bool maintenance) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it == hosts_.end()) return;
  Unindex(it->second);
  it->second.maintenance = maintenance;
  Index(it->second);
}

void Scheduler::SetRam(int64_t host_id, int64_t ram_mib, unsigned cpus) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it == hosts_.end()) return;
  Unindex(it->second);
  it->second.ram_mib = ram_mib;
  it->second.cpus = cpus;
  Index(it->second);
}

const Scheduler::Key* Scheduler::Best(const std::set<Key>& candidates, int64_t ram_mib) const {
  if (candidates.empty()) return nullptr;
  if (policy_ == PlacementPolicy::kSpread) {
    // The most free RAM (the lowest id among equals: its -id is the largest); if even that
    // host lacks room, none has it.
    const Key& most = *candidates.rbegin();
    return most.first >= ram_mib ? &most : nullptr;
  }
  // Pack: the least free RAM that still fits, the lowest id among equals.
  auto it = candidates.lower_bound({ram_mib, std::numeric_limits<int64_t>::min()});
  if (it == candidates.end()) return nullptr;
  auto last = candidates.upper_bound({it->first, std::numeric_limits<int64_t>::max()});
  return &*std::prev(last);
}

std::optional<int64_t> Scheduler::Reserve(int64_t datacenter_id, int64_t ram_mib) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Key* chosen = nullptr;
  for (int64_t group : {datacenter_id, kAnyDatacenter}) {
    auto it = eligible_.find(group);
    if (it == eligible_.end()) continue;
    const Key* best = Best(it->second, ram_mib);
    if (best == nullptr) continue;
    const bool better = chosen == nullptr ||
                        (policy_ == PlacementPolicy::kSpread ? *best > *chosen : *best < *chosen);
    if (better) chosen = best;
  }
  if (chosen == nullptr) return std::nullopt;
  const int64_t host_id = -chosen->second;
  Book(hosts_.at(host_id), ram_mib, 1);
  return host_id;
}

bool Scheduler::ReserveOn(int64_t host_id, int64_t ram_mib) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it == hosts_.end() || it->second.FreeMib() < ram_mib) return false;
  Book(it->second, ram_mib, 0);
  return true;
}

void Scheduler::Charge(int64_t host_id, int64_t ram_mib, bool whole_server) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it != hosts_.end()) Book(it->second, ram_mib, whole_server ? 1 : 0);
}

void Scheduler::Release(int64_t host_id, int64_t ram_mib, bool whole_server) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it != hosts_.end()) Book(it->second, -ram_mib, whole_server ? -1 : 0);
}

void Scheduler::SetUse(int64_t host_id, int64_t used_mib, int64_t servers) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it == hosts_.end()) return;
  Unindex(it->second);
  it->second.used_mib = used_mib;
  it->second.servers = servers;
  Index(it->second);
}

std::optional<HostSlot> Scheduler::Get(int64_t host_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  if (it == hosts_.end()) return std::nullopt;
  return it->second;
}

std::vector<HostSlot> Scheduler::List() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<HostSlot> out;
  out.reserve(hosts_.size());
  for (const auto& [id, slot] : hosts_) out.push_back(slot);
  return out;
}

bool Scheduler::Reachable(int64_t host_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = hosts_.find(host_id);
  return it == hosts_.end() || it->second.up;
}

void TentativeBooking::Undo() {
  for (const auto& entry : entries_) {
    if (entry.whole_server) {
      scheduler_->Release(entry.host_id, entry.ram_mib, true);
    } else if (entry.ram_mib > 0) {
      scheduler_->Release(entry.host_id, entry.ram_mib, false);
    } else if (entry.ram_mib < 0) {
      scheduler_->Charge(entry.host_id, -entry.ram_mib, false);
    }
  }
  entries_.clear();
}

}  // namespace gridd::domain
