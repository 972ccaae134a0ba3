#include "gridd/jobs/server_jobs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"

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

virt::DomainSpec SpecFor(const ServerFacts& facts) {
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

// Defines everything a server needs on the hypervisor; each step is a no-op when done.
void Provision(virt::Hypervisor& hv, const ServerFacts& facts) {
  const std::string name = DomainName(facts.server.id);
  SetJobStep("the hypervisor to create disk " + DiskVolume(facts.server.id));
  hv.EnsureDisk(virt::DiskSpec{facts.image.storage_pool, facts.image.volume,
                               DiskVolume(facts.server.id)});
  SetJobStep("the hypervisor to define domain " + name);
  hv.DefineDomain(SpecFor(facts));
  SetJobStep("the hypervisor to reserve " + facts.ip.address + " for " + name);
  hv.EnsureDhcpReservation(ReservationFor(facts));
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
  ServerJobHandler(int64_t command, store::Database& db, virt::Hypervisor& hv, const Clock& clock,
                   ServerJobOptions options)
      : command_(command), db_(db), hv_(hv), clock_(clock), options_(options) {}

  FinalWrite Run(const Job& job) override {
    auto facts = LoadFacts(db_, job.object_id);
    if (!facts) return nullptr;  // already gone: nothing left to do
    const std::string name = DomainName(facts->server.id);
    SetJobStep("the hypervisor to report the state of " + name);
    auto step = [&name](const char* action) {
      SetJobStep(std::string("the hypervisor to ") + action + " " + name);
    };
    switch (command_) {
      case job_command::kCreateVirtualServer:
        Provision(hv_, *facts);
        step("start");
        hv_.Start(name);
        return SetState(facts->server.id, server_state::kOn, clock_);
      case job_command::kStartVirtualServer:
        if (hv_.State(name) == virt::PowerState::kMissing) Provision(hv_, *facts);
        step("start");
        hv_.Start(name);
        return SetState(facts->server.id, server_state::kOn, clock_);
      case job_command::kStopVirtualServer:
        step("shut down");
        hv_.Shutdown(name, options_.shutdown_timeout_seconds);
        return SetState(facts->server.id, server_state::kOff, clock_);
      case job_command::kRestartVirtualServer:
        if (hv_.State(name) == virt::PowerState::kMissing) Provision(hv_, *facts);
        step("reboot");
        hv_.Reboot(name);
        return SetState(facts->server.id, server_state::kOn, clock_);
      case job_command::kUpdateVirtualServer: {
        const bool was_running = hv_.State(name) == virt::PowerState::kRunning;
        Provision(hv_, *facts);
        // New RAM applies at the next boot; restart a running guest so it takes effect now.
        if (was_running && job.payload.value("ram_changed", false)) {
          step("restart, for the new RAM,");
          hv_.Shutdown(name, options_.shutdown_timeout_seconds);
          hv_.Start(name);
        }
        return SetState(facts->server.id, StateFromHypervisor(hv_.State(name)), clock_);
      }
      case job_command::kReconcileVirtualServer: {
        // Queued by the reconciler: re-create a vanished domain (started when the server is
        // On), then record the power state the hypervisor really shows.
        if (hv_.State(name) == virt::PowerState::kMissing) {
          Provision(hv_, *facts);
          if (job.payload.value("start", false)) hv_.Start(name);
        }
        return SetState(facts->server.id, StateFromHypervisor(hv_.State(name)), clock_);
      }
      case job_command::kDeleteVirtualServer: {
        step("undefine");
        hv_.UndefineDomain(name);
        hv_.DeleteDisk(facts->image.storage_pool, DiskVolume(facts->server.id));
        hv_.RemoveDhcpReservation(ReservationFor(*facts));
        const int64_t server_id = facts->server.id;
        const int64_t ip_id = facts->ip.id;
        return [server_id, ip_id, this](store::Connection& c) {
          store::passwords::DeleteForServer(c, server_id);
          store::servers::Delete(c, server_id, clock_.NowMs());
          store::ips::Release(c, ip_id);
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
      state = StateFromHypervisor(hv_.State(DomainName(server->id)));
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
  int64_t command_;
  store::Database& db_;
  virt::Hypervisor& hv_;
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
  ImageSaveHandler(store::Database& db, virt::Hypervisor& hv, const Clock& clock,
                   ServerJobOptions options)
      : db_(db), hv_(hv), clock_(clock), options_(options) {}

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
    if (was_on) hv_.Shutdown(name, options_.shutdown_timeout_seconds);
    try {
      hv_.CopyVolume(image->storage_pool, DiskVolume(server_id), image->volume, "qcow2");
    } catch (...) {
      if (was_on) StartAgain(name);
      throw;
    }
    if (was_on) hv_.Start(name);
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
    if (auto image = store::images::GetAny(c, job.object_id)) {
      try {
        hv_.DeleteDisk(image->storage_pool, image->volume);
      } catch (const std::exception& error) {
        spdlog::warn("jobs: cannot remove the copy for image {}: {}", image->name, error.what());
      }
      store::images::Delete(c, image->id);
    }
    const int64_t server_id = job.payload.value("server_id", int64_t{0});
    int64_t state = job.payload.value("previous_state", server_state::kOn);
    try {
      // What the hypervisor shows, in case the server could not be started again.
      state = StateFromHypervisor(hv_.State(DomainName(server_id)));
    } catch (const std::exception& error) {
      spdlog::warn("jobs: cannot read the state of server {}: {}", server_id, error.what());
    }
    RestoreServerState(c, server_id, state);
  }

 private:
  void StartAgain(const std::string& name) {
    try {
      hv_.Start(name);
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
  virt::Hypervisor& hv_;
  const Clock& clock_;
  ServerJobOptions options_;
};

}  // namespace

std::string DomainName(int64_t server_id) { return "gridd-" + std::to_string(server_id); }
std::string DiskVolume(int64_t server_id) { return "gridd-" + std::to_string(server_id) + ".qcow2"; }

void RegisterServerJobs(JobRunner& runner, store::Database& db, virt::Hypervisor& hypervisor,
                        const Clock& clock, ServerJobOptions options) {
  for (int64_t command :
       {job_command::kCreateVirtualServer, job_command::kStartVirtualServer,
        job_command::kStopVirtualServer, job_command::kRestartVirtualServer,
        job_command::kUpdateVirtualServer, job_command::kDeleteVirtualServer,
        job_command::kReconcileVirtualServer}) {
    runner.Register(command,
                    std::make_shared<ServerJobHandler>(command, db, hypervisor, clock, options));
  }
  runner.Register(job_command::kSaveServerImage,
                  std::make_shared<ImageSaveHandler>(db, hypervisor, clock, options));
}

// Saved images' volumes are gone too: each is copied again from its parent's volume (parents
// first, as ids grow), which is all a hypervisor without memory can offer.
void RestoreVolatileImages(store::Database& db, virt::Hypervisor& hypervisor) {
  auto images = db.Read([&](store::Connection& c) { return store::images::ListAll(c); });
  std::map<int64_t, const domain::Image*> by_id;
  for (const auto& image : images) by_id[image.id] = &image;
  for (const auto& image : images) {
    if (!image.parent_image_id || image.state == domain::image_state::kSaving) continue;
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

int RestoreVolatileServers(store::Database& db, virt::Hypervisor& hypervisor) {
  RestoreVolatileImages(db, hypervisor);
  auto servers = db.Read([&](store::Connection& c) { return store::servers::ListAll(c); });
  int restored = 0;
  for (const auto& server : servers) {
    try {
      auto facts = LoadFacts(db, server.id);
      if (!facts) continue;
      const std::string name = DomainName(server.id);
      if (hypervisor.State(name) != virt::PowerState::kMissing) continue;
      Provision(hypervisor, *facts);
      if (server.state != server_state::kOff && server.state != server_state::kStopping) {
        hypervisor.Start(name);
      }
      ++restored;
    } catch (const std::exception& error) {
      // One broken server must not keep the others (or gridd) from starting.
      spdlog::error("restore: server {} ({}): {}", server.id, server.name, error.what());
    }
  }
  return restored;
}

}  // namespace gridd::jobs
