#include "gridd/jobs/server_jobs.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>

#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"
#include "gridd/virt/host_connection.h"
#include "gridd/virt/seed.h"

namespace gridd::jobs {
namespace {

using domain::Job;
using domain::Server;
namespace server_state = domain::server_state;
namespace job_command = domain::job_command;

// Everything a handler needs about a server, read in one snapshot.
struct ServerFacts {
  Server server;
  domain::Image image;
  domain::Ip ip;
};

std::optional<ServerFacts> LoadFacts(store::Database& db, int64_t server_id) {
  return db.Read([&](store::Connection& c) -> std::optional<ServerFacts> {
    auto server = store::servers::GetAny(c, server_id);
    if (!server) return std::nullopt;
    auto image = store::images::GetAny(c, server->image_id);
    auto ip = store::ips::Get(c, server->account_id, server->ip_id);
    if (!image || !ip) {
      throw std::runtime_error("server " + std::to_string(server_id) +
                               " references a missing image or IP");
    }
    return ServerFacts{*server, *image, *ip};
  });
}

// The server's initial root password, as support.password.list shows it.
std::string RootPassword(store::Database& db, const SecretBox& box, const Server& server) {
  return db.Read([&](store::Connection& c) {
    for (const auto& password : store::passwords::List(c, server.account_id, box)) {
      if (password.server_id == server.id) return password.password;
    }
    throw std::runtime_error("server " + std::to_string(server.id) + " has no root password");
  });
}

virt::DomainSpec SpecFor(const ServerFacts& facts, const ServerJobOptions& options) {
  virt::DomainSpec spec;
  spec.server_id = facts.server.id;
  spec.account_id = facts.server.account_id;
  spec.name = DomainName(facts.server.id);
  spec.hostname = facts.server.name;
  spec.description = facts.server.description;
  spec.memory_mib = domain::RamMib(facts.server.ram);
  spec.vcpus = static_cast<unsigned>(std::clamp<uint64_t>(spec.memory_mib / 1024, 1, 8));
  spec.mac = facts.server.mac;
  spec.network = facts.ip.network;
  spec.storage_pool = facts.image.storage_pool;
  spec.disk_volume = DiskVolume(facts.server.id);
  spec.domain_type = options.domain_type;
  if (options.box != nullptr) spec.seed_volume = SeedVolume(facts.server.id);
  if (!options.console_dir.empty()) {
    spec.console_log = ConsoleLogPath(options.console_dir, facts.server.id).string();
  }
  return spec;
}

virt::DhcpReservation ReservationFor(const ServerFacts& facts) {
  virt::DhcpReservation reservation;
  reservation.network = facts.ip.network;
  reservation.mac = facts.server.mac;
  reservation.ip = facts.ip.address;
  reservation.hostname = facts.server.name;
  reservation.server_id = facts.server.id;
  return reservation;
}

void EnsureSeed(virt::Hypervisor& hv, store::Database& db, const ServerFacts& facts,
                const ServerJobOptions& options) {
  const std::string volume = SeedVolume(facts.server.id);
  if (hv.VolumeExists(facts.image.storage_pool, volume)) return;
  virt::SeedFacts seed;
  seed.server_id = facts.server.id;
  seed.hostname = facts.server.name;
  seed.password_hash = Sha512Crypt(RootPassword(db, *options.box, facts.server));
  seed.address = facts.ip.address;
  seed.subnet = facts.ip.subnet;
  if (!facts.ip.network.empty()) seed.mac = facts.server.mac;
  hv.EnsureRawVolume(virt::RawVolume{facts.image.storage_pool, volume,
                                     virt::BuildSeedIso(virt::RenderSeed(seed))});
}

// Defines everything a server needs on the hypervisor; each step is a no-op when done.
void Provision(virt::Hypervisor& hv, store::Database& db, const ServerFacts& facts,
               const ServerJobOptions& options) {
  const std::string name = DomainName(facts.server.id);
  SetJobStep("the hypervisor to create disk " + DiskVolume(facts.server.id));
  hv.EnsureDisk(
      virt::DiskSpec{facts.image.storage_pool, facts.image.volume, DiskVolume(facts.server.id)});
  if (options.box != nullptr) {
    SetJobStep("the hypervisor to create the seed of " + name);
    EnsureSeed(hv, db, facts, options);
  }
  SetJobStep("the hypervisor to define domain " + name);
  virt::DomainSpec spec = SpecFor(facts, options);
  // A volatile host's domain is defined again whenever the host has forgotten it: a UUID
  // derived from the server keeps it the same domain each time.
  if (hv.volatile_state()) spec.uuid = VolatileDomainUuid(facts.server.id);
  hv.DefineDomain(spec);
  // A pool without a libvirt network gives its servers no NIC: the address reaches the guest
  // through the seed only.
  if (!facts.ip.network.empty()) {
    SetJobStep("the hypervisor to reserve " + facts.ip.address + " for " + name);
    hv.EnsureDhcpReservation(ReservationFor(facts));
  }
}

// Removes everything Provision makes. Each step is a no-op when already gone.
void Unprovision(virt::Hypervisor& hv, const ServerFacts& facts, const ServerJobOptions& options) {
  const std::string name = DomainName(facts.server.id);
  SetJobStep("the hypervisor to undefine " + name);
  hv.UndefineDomain(name);
  SetJobStep("the hypervisor to delete the disk of " + name);
  hv.DeleteDisk(facts.image.storage_pool, DiskVolume(facts.server.id));
  if (options.box != nullptr) hv.DeleteDisk(facts.image.storage_pool, SeedVolume(facts.server.id));
  if (!facts.ip.network.empty()) hv.RemoveDhcpReservation(ReservationFor(facts));
  if (!options.console_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove(ConsoleLogPath(options.console_dir, facts.server.id), ec);
  }
}

int64_t StateFromHypervisor(virt::PowerState state) {
  return state == virt::PowerState::kRunning || state == virt::PowerState::kPaused
             ? server_state::kOn
             : server_state::kOff;
}

FinalWrite SetState(int64_t server_id, int64_t state, const Clock& clock) {
  return [server_id, state, &clock](store::Connection& c) {
    store::servers::SetState(c, server_id, state, clock.NowMs());
  };
}

// One handler class for every server command keeps the shared pieces in one place.
class ServerJobHandler final : public JobHandler {
 public:
  ServerJobHandler(int64_t command, store::Database& db, HostRegistry& hosts, const Clock& clock,
                   const ServerJobOptions& options)
      : command_(command), db_(db), hosts_(hosts), clock_(clock), options_(options) {}

  FinalWrite Run(const Job& job) override {
    auto facts = LoadFacts(db_, job.object_id);
    if (!facts) return nullptr;  // already gone: nothing left to do
    const std::string name = DomainName(facts->server.id);
    SetJobStep("host " + HostLabel(facts->server) + " to answer");
    virt::Hypervisor& hv = hosts_.ForServer(facts->server);
    SetJobStep("the hypervisor to report the state of " + name);
    auto step = [&name](const char* action) {
      SetJobStep(std::string("the hypervisor to ") + action + " " + name);
    };
    switch (command_) {
      case job_command::kCreateVirtualServer:
        try {
          Provision(hv, db_, *facts, options_);
          step("start");
          hv.Start(name);
        } catch (const virt::HypervisorError& error) {
          if (error.retryable()) throw;
          // A broken image (or any other lasting refusal): leave no half-made disk, seed or
          // domain behind; the job fails with the hypervisor's message.
          try {
            Unprovision(hv, *facts, options_);
          } catch (const std::exception& cleanup) {
            spdlog::warn("jobs: server {}: cleanup after failed create: {}", facts->server.id,
                         cleanup.what());
          }
          throw;
        }
        return SetState(facts->server.id, server_state::kOn, clock_);
      case job_command::kStartVirtualServer:
        if (hv.State(name) == virt::PowerState::kMissing) Provision(hv, db_, *facts, options_);
        step("start");
        hv.Start(name);
        return SetState(facts->server.id, server_state::kOn, clock_);
      case job_command::kStopVirtualServer:
        step("shut down");
        hv.Shutdown(name, options_.shutdown_timeout_seconds);
        return SetState(facts->server.id, server_state::kOff, clock_);
      case job_command::kRestartVirtualServer:
        if (hv.State(name) == virt::PowerState::kMissing) Provision(hv, db_, *facts, options_);
        step("reboot");
        hv.Reboot(name);
        return SetState(facts->server.id, server_state::kOn, clock_);
      case job_command::kUpdateVirtualServer: {
        const bool was_running = hv.State(name) == virt::PowerState::kRunning;
        Provision(hv, db_, *facts, options_);
        // New RAM applies at the next boot; restart a running guest so it takes effect now.
        if (was_running && job.payload.value("ram_changed", false)) {
          step("restart, for the new RAM,");
          hv.Shutdown(name, options_.shutdown_timeout_seconds);
          hv.Start(name);
        }
        return SetState(facts->server.id, StateFromHypervisor(hv.State(name)), clock_);
      }
      case job_command::kEvacuateVirtualServer: {
        // The server's row already names its new host (gridctl host evacuate): build it there
        // from the database, as a create does, keeping id, name, IP, MAC and password. The
        // disk is cloned from the image again unless the hosts share storage, where it exists.
        Provision(hv, db_, *facts, options_);
        if (job.payload.value("start", false)) {
          step("start");
          hv.Start(name);
        }
        return SetState(facts->server.id, StateFromHypervisor(hv.State(name)), clock_);
      }
      case job_command::kReconcileVirtualServer: {
        // Queued by the reconciler: re-create a vanished domain (started when the server is
        // On), then record the power state the hypervisor really shows.
        if (hv.State(name) == virt::PowerState::kMissing) {
          Provision(hv, db_, *facts, options_);
          if (job.payload.value("start", false)) hv.Start(name);
        }
        return SetState(facts->server.id, StateFromHypervisor(hv.State(name)), clock_);
      }
      case job_command::kDeleteVirtualServer: {
        // A guest that ignores the power button is forced off: delete never waits on it.
        Unprovision(hv, *facts, options_);
        const int64_t server_id = facts->server.id;
        const int64_t ip_id = facts->ip.id;
        const auto host_id = hosts_.HostOf(facts->server);
        const auto ram_mib = static_cast<int64_t>(domain::RamMib(facts->server.ram));
        return [server_id, ip_id, host_id, ram_mib, this](store::Connection& c) {
          store::passwords::DeleteForServer(c, server_id);
          store::servers::Delete(c, server_id, clock_.NowMs());
          store::ips::Release(c, ip_id);
          // The host's room is given back with the row (a recount corrects the rare commit
          // that fails after this).
          if (host_id && hosts_.scheduler() != nullptr) {
            hosts_.scheduler()->Release(*host_id, ram_mib);
          }
        };
      }
      default:
        throw std::runtime_error("not a server command: " + std::to_string(command_));
    }
  }

  void OnFailure(const Job& job, store::Connection& c) override {
    auto server = store::servers::GetAny(c, job.object_id);
    if (!server) return;
    // Record what the hypervisor really shows, so the server does not stay in a transient
    // state forever; a failed delete leaves the server in place to be deleted again.
    int64_t state = server_state::kOff;
    try {
      state = StateFromHypervisor(hosts_.ForServer(*server).State(DomainName(server->id)));
    } catch (const std::exception& error) {
      spdlog::warn("jobs: cannot read the state of server {}: {}", server->id, error.what());
    }
    server->state = state;
    server->deleting = false;
    server->updated_ms = clock_.NowMs();
    store::servers::Update(c, *server);
  }

  void OnDeadline(const Job& job, store::Connection& c) override {
    auto server = store::servers::GetAny(c, job.object_id);
    if (!server) return;
    // The hypervisor did not answer in time, so it is not asked again here: a server in a
    // transient state is recorded Off, and the reconciler records what the hypervisor shows
    // once it answers. The server takes requests again at once.
    if (server->state != server_state::kOn && server->state != server_state::kOff) {
      server->state = server_state::kOff;
    }
    server->deleting = false;
    server->updated_ms = clock_.NowMs();
    store::servers::Update(c, *server);
  }

 private:
  std::string HostLabel(const Server& server) {
    auto host = hosts_.HostOf(server);
    return host ? hosts_.HostName(*host) : "(none)";
  }

  int64_t command_;
  store::Database& db_;
  HostRegistry& hosts_;
  const Clock& clock_;
  ServerJobOptions options_;
};

// MoveVirtualServer (gridctl server move): moves the server's domain from its host to another
// Up host of its datacenter with virt::MoveDomain, live where libvirt supports it for the pair,
// otherwise cold. The DHCP reservation moves along; the server's row names the new host, and
// the scheduler's bookings move, in the transaction that marks the job Succeeded. The target's
// room was booked when the move was queued; a failed move gives it back.
class MoveServerHandler final : public JobHandler {
 public:
  MoveServerHandler(store::Database& db, HostRegistry& hosts, const Clock& clock,
                    const ServerJobOptions& options)
      : db_(db), hosts_(hosts), clock_(clock), options_(options) {}

  FinalWrite Run(const Job& job) override {
    auto facts = LoadFacts(db_, job.object_id);
    if (!facts) return nullptr;  // deleted meanwhile
    const int64_t from = job.payload.value("from_host", int64_t{0});
    const int64_t to = job.payload.value("to_host", int64_t{0});
    const std::string name = DomainName(facts->server.id);
    SetJobStep("host " + hosts_.HostName(to) + " to answer");
    auto* target = dynamic_cast<virt::HostConnection*>(&hosts_.ForHost(to));
    SetJobStep("host " + hosts_.HostName(from) + " to answer");
    // Through ForServer, a volatile source host materialises the domain it has not built yet;
    // not when the target has it already (an earlier attempt moved it).
    const bool on_target = target != nullptr && target->State(name) != virt::PowerState::kMissing;
    auto* source = dynamic_cast<virt::HostConnection*>(
        !on_target && hosts_.HostOf(facts->server) == from ? &hosts_.ForServer(facts->server)
                                                           : &hosts_.ForHost(from));
    if (source == nullptr || target == nullptr) {
      throw virt::HypervisorError(virt::HypervisorErrorKind::kInvalid,
                                  "moving needs remote host connections on both hosts");
    }
    virt::DomainMove move;
    move.spec = SpecFor(*facts, options_);
    move.source_storage_pool = facts->image.storage_pool;
    move.shared_storage = hosts_.SharedStorage(from) && hosts_.SharedStorage(to);
    move.start = job.payload.value("start", false);
    move.shutdown_timeout_seconds = options_.shutdown_timeout_seconds;
    if (!facts->ip.network.empty()) {
      SetJobStep("host " + hosts_.HostName(to) + " to reserve " + facts->ip.address);
      target->EnsureDhcpReservation(ReservationFor(*facts));
    }
    SetJobStep("the move of " + name + " to host " + hosts_.HostName(to));
    const virt::MoveResult result = virt::MoveDomain(*source, *target, move);
    if (!facts->ip.network.empty()) source->RemoveDhcpReservation(ReservationFor(*facts));
    spdlog::info("server {}: moved from host {} to host {} ({}{})", facts->server.id,
                 hosts_.HostName(from), hosts_.HostName(to),
                 result.method == virt::MoveMethod::kLive ? "live" : "cold",
                 result.live_refusal.empty() ? "" : "; not live: " + result.live_refusal);
    const int64_t state = StateFromHypervisor(target->State(name));
    const int64_t server_id = facts->server.id;
    const auto ram = static_cast<int64_t>(domain::RamMib(facts->server.ram));
    return [this, server_id, from, to, state, ram](store::Connection& c) {
      store::servers::SetHost(c, server_id, to);
      store::servers::SetState(c, server_id, state, clock_.NowMs());
      if (auto* scheduler = hosts_.scheduler()) {
        scheduler->Charge(to, 0);  // the server itself; its RAM was booked when queued
        scheduler->Release(from, ram);
      }
    };
  }

  void OnFailure(const Job& job, store::Connection& c) override { GiveBack(job, c); }
  void OnDeadline(const Job& job, store::Connection& c) override { GiveBack(job, c); }

 private:
  // The server stays on its host: the room booked on the target is given back, and the server
  // shows its wanted state again (the reconciler records what the hypervisor shows).
  void GiveBack(const Job& job, store::Connection& c) {
    auto server = store::servers::GetAny(c, job.object_id);
    if (!server) return;
    if (auto* scheduler = hosts_.scheduler()) {
      scheduler->Release(job.payload.value("to_host", int64_t{0}),
                         static_cast<int64_t>(domain::RamMib(server->ram)), false);
    }
  }

  store::Database& db_;
  HostRegistry& hosts_;
  const Clock& clock_;
  ServerJobOptions options_;
};

// SaveServerImage: copies the server's disk into the image's own volume. A running server is
// shut down for the copy and started again: the image is then a consistent file system, and
// QEMU's image locks refuse to read a disk a running guest holds. The image becomes Available
// and the server returns to the state it had, both in the transaction that marks the job
// Succeeded; a failure removes the image and any partial copy and starts the server again.
class ImageSaveHandler final : public JobHandler {
 public:
  ImageSaveHandler(store::Database& db, HostRegistry& hosts, const Clock& clock,
                   const ServerJobOptions& options)
      : db_(db), hosts_(hosts), clock_(clock), options_(options) {}

  FinalWrite Run(const Job& job) override {
    auto image =
        db_.Read([&](store::Connection& c) { return store::images::GetAny(c, job.object_id); });
    if (!image || image->state != domain::image_state::kSaving) return nullptr;  // done already
    const int64_t server_id = job.payload.value("server_id", int64_t{0});
    auto facts = LoadFacts(db_, server_id);
    if (!facts)
      throw std::runtime_error("server " + std::to_string(server_id) + " no longer exists");
    const int64_t previous_state = job.payload.value("previous_state", server_state::kOn);
    const bool was_on = previous_state == server_state::kOn;
    const std::string name = DomainName(server_id);
    virt::Hypervisor& hv = hosts_.ForServer(facts->server);
    if (was_on) hv.Shutdown(name, options_.shutdown_timeout_seconds);
    try {
      hv.CopyVolume(image->storage_pool, DiskVolume(server_id), image->volume, "qcow2");
    } catch (...) {
      if (was_on) StartAgain(hv, name);
      throw;
    }
    if (was_on) hv.Start(name);
    const int64_t image_id = image->id;
    return [this, image_id, server_id, previous_state](store::Connection& c) {
      auto saved = store::images::GetAny(c, image_id);
      if (saved) {
        saved->state = domain::image_state::kAvailable;
        saved->updated_ms = clock_.NowMs();
        store::images::Update(c, *saved);
      }
      RestoreServerState(c, server_id, previous_state);
    };
  }

  void OnFailure(const Job& job, store::Connection& c) override {
    const int64_t server_id = job.payload.value("server_id", int64_t{0});
    auto server = store::servers::GetAny(c, server_id);
    if (auto image = store::images::GetAny(c, job.object_id)) {
      try {
        if (server) hosts_.ForServer(*server).DeleteDisk(image->storage_pool, image->volume);
      } catch (const std::exception& error) {
        spdlog::warn("jobs: cannot remove the copy for image {}: {}", image->name, error.what());
      }
      store::images::Delete(c, image->id);
    }
    int64_t state = job.payload.value("previous_state", server_state::kOn);
    try {
      // What the hypervisor shows, in case the server could not be started again.
      if (server)
        state = StateFromHypervisor(hosts_.ForServer(*server).State(DomainName(server_id)));
    } catch (const std::exception& error) {
      spdlog::warn("jobs: cannot read the state of server {}: {}", server_id, error.what());
    }
    RestoreServerState(c, server_id, state);
  }

 private:
  static void StartAgain(virt::Hypervisor& hv, const std::string& name) {
    try {
      hv.Start(name);
    } catch (const std::exception& error) {
      spdlog::error("jobs: cannot start {} again after a failed image copy: {}", name,
                    error.what());
    }
  }

  void RestoreServerState(store::Connection& c, int64_t server_id, int64_t previous_state) {
    auto server = store::servers::GetAny(c, server_id);
    if (!server) return;
    if (server->state == server_state::kOnSaving || server->state == server_state::kOffSaving ||
        server->state == server_state::kSaving) {
      store::servers::SetState(c, server_id, previous_state, clock_.NowMs());
    }
  }

  store::Database& db_;
  HostRegistry& hosts_;
  const Clock& clock_;
  ServerJobOptions options_;
};

// DeleteServerImage, queued by QueueTrashPurges: removes a trashed image's volume and marks
// the image Deleted (hidden from every customer; the row stays so its id is never reused and
// its jobs still name it). An image restored, or used by a server, meanwhile is left alone.
class ImagePurgeHandler final : public JobHandler {
 public:
  ImagePurgeHandler(store::Database& db, HostRegistry& hosts, const Clock& clock)
      : db_(db), hosts_(hosts), clock_(clock) {}

  FinalWrite Run(const Job& job) override {
    auto image = db_.Read([&](store::Connection& c) -> std::optional<domain::Image> {
      auto found = store::images::GetAny(c, job.object_id);
      if (!found || found->state != domain::image_state::kTrash || InUse(c, found->id)) {
        return std::nullopt;
      }
      return found;
    });
    if (!image) return nullptr;
    // Each host keeps its own copy of an image's volume (the same one on shared storage).
    for (const auto& host : hosts_.UpHosts()) {
      SetJobStep("host " + host.host.name + " to delete volume " + image->volume);
      host.hypervisor->DeleteDisk(image->storage_pool, image->volume);
    }
    const int64_t image_id = image->id;
    return [this, image_id](store::Connection& c) {
      auto purged = store::images::GetAny(c, image_id);
      if (!purged) return;
      purged->state = domain::image_state::kDeleted;
      purged->is_active = false;
      purged->is_public = false;
      purged->updated_ms = clock_.NowMs();
      store::images::Update(c, *purged);
    };
  }

  // The image stays in the Trash (restorable if its volume survived); the next pass after
  // the retention queues the purge again.
  void OnFailure(const Job&, store::Connection&) override {}

 private:
  static bool InUse(store::Connection& c, int64_t image_id) {
    auto s = c.Prepare("SELECT 1 FROM servers WHERE image_id = ? LIMIT 1");
    s.Bind(1, image_id);
    return s.Step();
  }

  store::Database& db_;
  HostRegistry& hosts_;
  const Clock& clock_;
};

}  // namespace

int QueueTrashPurges(store::Database& db, const Clock& clock, int64_t retention_ms) {
  return db.Write([&](store::Connection& c) {
    const int64_t now = clock.NowMs();
    int queued = 0;
    for (const auto& image : store::images::ListPurgeable(c, now - retention_ms)) {
      Job job;
      job.account_id = image.owner_account_id.value_or(0);
      job.object_type = domain::job_object_type::kServerImage;
      job.object_id = image.id;
      job.object_name = image.name;
      job.command = job_command::kDeleteServerImage;
      job.owner = "gridd";
      job.detail["type"] = "server_image";
      job.detail["name"] = image.name;
      job.detail["reason"] = "in the Trash since its retention period began";
      store::jobs::Insert(c, job, now);
      spdlog::info("images: purging the volume of {} ({}), in the Trash since {} ms", image.name,
                   image.volume, image.updated_ms);
      ++queued;
    }
    return queued;
  });
}

std::string DomainName(int64_t server_id) { return "gridd-" + std::to_string(server_id); }
std::string DiskVolume(int64_t server_id) {
  return "gridd-" + std::to_string(server_id) + ".qcow2";
}
std::string SeedVolume(int64_t server_id) {
  return "gridd-" + std::to_string(server_id) + "-seed.iso";
}
std::filesystem::path ConsoleLogPath(const std::filesystem::path& console_dir, int64_t server_id) {
  return console_dir / ("gridd-" + std::to_string(server_id) + ".log");
}

void FollowServerStates(store::Database& db, virt::Hypervisor& hypervisor, const Clock& clock,
                        std::optional<int64_t> host_id) {
  hypervisor.WatchStates([&db, &clock, host_id](const std::string& name, virt::PowerState state) {
    constexpr std::string_view kPrefix = "gridd-";
    if (name.rfind(kPrefix, 0) != 0) return;
    int64_t server_id = 0;
    const char* first = name.data() + kPrefix.size();
    const char* last = name.data() + name.size();
    auto [ptr, ec] = std::from_chars(first, last, server_id);
    if (ec != std::errc() || ptr != last) return;
    int64_t wanted;
    if (state == virt::PowerState::kRunning) {
      wanted = server_state::kOn;
    } else if (state == virt::PowerState::kShutOff) {
      wanted = server_state::kOff;
    } else {
      return;
    }
    try {
      db.Write([&](store::Connection& c) {
        auto server = store::servers::GetAny(c, server_id);
        if (!server || server->deleting || server->state == wanted) return;
        // A stale copy on a host the server was evacuated from says nothing about it.
        if (host_id && server->host_id && *server->host_id != *host_id) return;
        // A job under way owns the state; it writes the outcome itself.
        if (store::jobs::HasPending(c, domain::job_object_type::kVirtualServer, server_id)) return;
        store::servers::SetState(c, server_id, wanted, clock.NowMs());
        spdlog::info("server {}: {} by itself; now {}", server_id,
                     wanted == server_state::kOn ? "started" : "stopped",
                     wanted == server_state::kOn ? "On" : "Off");
      });
    } catch (const std::exception& error) {
      spdlog::warn("server {}: cannot record state change: {}", server_id, error.what());
    }
  });
}

void RegisterServerJobs(JobRunner& runner, store::Database& db, HostRegistry& hosts,
                        const Clock& clock, const ServerJobOptions& options) {
  for (int64_t command :
       {job_command::kCreateVirtualServer, job_command::kStartVirtualServer,
        job_command::kStopVirtualServer, job_command::kRestartVirtualServer,
        job_command::kUpdateVirtualServer, job_command::kDeleteVirtualServer,
        job_command::kReconcileVirtualServer, job_command::kEvacuateVirtualServer}) {
    runner.Register(command,
                    std::make_shared<ServerJobHandler>(command, db, hosts, clock, options));
  }
  runner.Register(job_command::kMoveVirtualServer,
                  std::make_shared<MoveServerHandler>(db, hosts, clock, options));
  runner.Register(job_command::kSaveServerImage,
                  std::make_shared<ImageSaveHandler>(db, hosts, clock, options));
  runner.Register(job_command::kDeleteServerImage,
                  std::make_shared<ImagePurgeHandler>(db, hosts, clock));
}

void RestoreVolatileImages(store::Database& db, virt::Hypervisor& hypervisor) {
  auto images = db.Read([&](store::Connection& c) { return store::images::ListAll(c); });
  std::map<int64_t, const domain::Image*> by_id;
  for (const auto& image : images) by_id[image.id] = &image;
  for (const auto& image : images) {
    if (!image.parent_image_id || image.state == domain::image_state::kSaving ||
        image.state == domain::image_state::kDeleted) {
      continue;  // nothing to copy yet, or purged on purpose
    }
    auto parent = by_id.find(*image.parent_image_id);
    if (parent == by_id.end()) continue;
    try {
      if (hypervisor.VolumeExists(image.storage_pool, image.volume)) continue;
      hypervisor.CopyVolume(image.storage_pool, parent->second->volume, image.volume, "qcow2");
    } catch (const std::exception& error) {
      spdlog::error("restore: image {} ({}): {}", image.id, image.name, error.what());
    }
  }
}

void TrimConsoleLogs(const std::filesystem::path& console_dir, int64_t max_bytes) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(console_dir, ec)) {
    const auto size = entry.file_size(ec);
    if (ec || static_cast<int64_t>(size) <= max_bytes) continue;
    const int64_t keep = max_bytes / 2;
    std::string tail(static_cast<size_t>(keep), '\0');
    {
      std::ifstream in(entry.path(), std::ios::binary);
      in.seekg(static_cast<std::streamoff>(size) - keep);
      in.read(tail.data(), keep);
      tail.resize(static_cast<size_t>(in.gcount()));
    }
    std::ofstream out(entry.path(), std::ios::binary | std::ios::trunc);
    out << "[gridd: console log cut to its last " << tail.size() << " bytes]\n" << tail;
  }
}

namespace {

// Whether a server's domain should run when it is materialised: as the database says, with
// the states of a job under way read as the state the job started from or aims at.
bool WantsRunning(store::Database& db, const Server& server) {
  switch (server.state) {
    case server_state::kOff:
    case server_state::kStopping:
    case server_state::kOffSaving:
      return false;
    case server_state::kUpdating:
      // The edit that changed the RAM recorded the state it found; a job queued before it did
      // so counts as On (the update restarts a running guest anyway).
      return db.Read([&](store::Connection& c) {
        const auto update = store::jobs::Newest(c, domain::job_object_type::kVirtualServer,
                                                server.id, job_command::kUpdateVirtualServer);
        return !update || !update->payload.is_object() ||
               update->payload.value("previous_state", server_state::kOn) != server_state::kOff;
      });
    default:
      return true;
  }
}

}  // namespace

bool MaterialiseServer(store::Database& db, virt::Hypervisor& hypervisor, int64_t server_id) {
  const std::string name = DomainName(server_id);
  if (hypervisor.State(name) != virt::PowerState::kMissing) return false;
  auto facts = LoadFacts(db, server_id);
  if (!facts) return false;
  SetJobStep("the hypervisor to materialise " + name + " from the database");
  Provision(hypervisor, db, *facts, ServerJobOptions{});
  if (WantsRunning(db, facts->server)) hypervisor.Start(name);
  spdlog::debug("server {}: domain {} materialised on {}", server_id, name, hypervisor.uri());
  return true;
}

std::string VolatileDomainUuid(int64_t server_id) {
  // A vendor-specific (RFC 9562 version 8) UUID: "gridd" in hex, then the server id in the
  // last 12 digits, so unique per server and the same at every materialisation.
  return fmt::format("67726964-6400-8000-8000-{:012x}", static_cast<uint64_t>(server_id));
}

}  // namespace gridd::jobs
