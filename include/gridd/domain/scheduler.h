// Placement of new servers on hypervisor hosts. The scheduler keeps every host's capacity and
// use in memory, indexed by free RAM per datacenter, so one decision costs O(log hosts) however
// many hosts and servers there are (no scan of the servers table).
//
// Policy (docs/operations.md, "Scheduling"):
//  - filters: the host is Up, not in maintenance, and serves the server's datacenter; the
//    server's RAM fits under the host's RAM times its overcommit ratio;
//  - weigher: "spread" (default) takes the host with the most free RAM, "pack" the one with the
//    least free RAM that still fits. Ties go to the lower host id.
//
// Thread-safe. Reserve() and Release() are called inside the database transaction that creates
// or deletes the server, and the database serializes writers, so two concurrent adds can never
// both take the last room on a host.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gridd::domain {

enum class PlacementPolicy { kSpread, kPack };

// "spread" or "pack"; nullopt for anything else.
std::optional<PlacementPolicy> ParsePlacementPolicy(const std::string& text);

struct HostSlot {
  int64_t id = 0;
  std::string name;
  std::optional<int64_t> datacenter_id;  // empty: serves every datacenter
  int64_t ram_mib = 0;                   // physical RAM libvirt reports
  unsigned cpus = 0;
  double ram_overcommit = 1.0;
  int64_t used_mib = 0;  // RAM of the servers placed on the host
  int64_t servers = 0;
  bool up = true;
  bool maintenance = false;

  int64_t LimitMib() const;  // ram_mib × ram_overcommit, rounded down
  int64_t FreeMib() const { return LimitMib() - used_mib; }
  bool Eligible() const { return up && !maintenance; }
};

class Scheduler {
 public:
  explicit Scheduler(PlacementPolicy policy = PlacementPolicy::kSpread) : policy_(policy) {}

  PlacementPolicy policy() const { return policy_; }

  // Adds a host or replaces what is known of it; its use (RAM, servers) is kept when it was
  // known already.
  void Upsert(const HostSlot& slot);
  void Remove(int64_t host_id);
  void SetUp(int64_t host_id, bool up);
  void SetMaintenance(int64_t host_id, bool maintenance);
  void SetRam(int64_t host_id, int64_t ram_mib, unsigned cpus);

  // Chooses a host for a server of `ram_mib` in the datacenter and books the RAM on it.
  // nullopt: no host passes the filters.
  std::optional<int64_t> Reserve(int64_t datacenter_id, int64_t ram_mib);
  // Books RAM on one given host when it has room (a RAM change); false otherwise.
  bool ReserveOn(int64_t host_id, int64_t ram_mib);
  // Books RAM whatever the room: a whole server (found on a host at start, or moved there by
  // evacuation) or only RAM (undoing a Release).
  void Charge(int64_t host_id, int64_t ram_mib, bool whole_server = true);
  // Gives back what Reserve, ReserveOn or Charge booked: a whole server (deleted or moved
  // away), or only RAM (a server made smaller).
  void Release(int64_t host_id, int64_t ram_mib, bool whole_server = true);

  // Sets the booked RAM and servers outright (a recount from the database).
  void SetUse(int64_t host_id, int64_t used_mib, int64_t servers);

  std::optional<HostSlot> Get(int64_t host_id) const;
  std::vector<HostSlot> List() const;
  // False when the host is known and Down: its servers' state is unknown.
  bool Reachable(int64_t host_id) const;

 private:
  // Free RAM, then the host id negated so equal free RAM prefers the lower id in both
  // directions of search.
  using Key = std::pair<int64_t, int64_t>;
  static constexpr int64_t kAnyDatacenter = 0;

  void Index(const HostSlot& slot);
  void Unindex(const HostSlot& slot);
  void Book(HostSlot& slot, int64_t ram_mib, int64_t servers);
  const Key* Best(const std::set<Key>& candidates, int64_t ram_mib) const;

  mutable std::mutex mutex_;
  PlacementPolicy policy_;
  std::unordered_map<int64_t, HostSlot> hosts_;
  // Eligible hosts by datacenter id (kAnyDatacenter: hosts serving every datacenter).
  std::unordered_map<int64_t, std::set<Key>> eligible_;
};

// Bookings made inside a database transaction, given back unless Keep() is called once it
// has committed (a refused request, a rollback). Undo() at the start of a transaction body
// that the database may run again.
class TentativeBooking {
 public:
  explicit TentativeBooking(Scheduler* scheduler) : scheduler_(scheduler) {}
  ~TentativeBooking() { Undo(); }
  TentativeBooking(const TentativeBooking&) = delete;
  TentativeBooking& operator=(const TentativeBooking&) = delete;

  // A whole server booked with Reserve.
  void Server(int64_t host_id, int64_t ram_mib) { entries_.push_back({host_id, ram_mib, true}); }
  // RAM added with ReserveOn (positive) or given back with Release (negative).
  void Ram(int64_t host_id, int64_t delta_mib) { entries_.push_back({host_id, delta_mib, false}); }
  void Undo();
  void Keep() { entries_.clear(); }

 private:
  struct Entry {
    int64_t host_id;
    int64_t ram_mib;
    bool whole_server;
  };
  Scheduler* scheduler_;
  std::vector<Entry> entries_;
};

}  // namespace gridd::domain
