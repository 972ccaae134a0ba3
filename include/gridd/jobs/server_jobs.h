// Job handlers that carry server changes out on a hypervisor, and the materialisation of
// servers' domains on a hypervisor that forgets its state (libvirt's test driver).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "gridd/common/clock.h"
#include "gridd/common/crypto.h"
#include "gridd/jobs/hosts.h"
#include "gridd/jobs/job_runner.h"
#include "gridd/store/database.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::jobs {

struct ServerJobOptions {
  int shutdown_timeout_seconds = 60;
  // Real guests: each server gets a NoCloud seed (needs the box to read its root password)
  // and its serial console written to <console_dir>/gridd-<id>.log. Null / empty: neither
  // (libvirt's test driver boots nothing).
  const SecretBox* box = nullptr;
  std::filesystem::path console_dir;
  std::string domain_type = "qemu";  // "kvm" or "qemu" (the test driver overrides it)
};

// Registers the handlers for Create/Start/Stop/Restart/Update/DeleteVirtualServer,
// SaveServerImage and DeleteServerImage (the purge of a trashed image's volume), Reconcile- and
// EvacuateVirtualServer, MoveVirtualServer. Each job runs on the hypervisor of its server's
// host (a move on both hosts' connections).
void RegisterServerJobs(JobRunner& runner, store::Database& db, HostRegistry& hosts,
                        const Clock& clock, const ServerJobOptions& options);

// Queues a DeleteServerImage job (owner "gridd") for every image that has been in the Trash
// for `retention_ms` or longer and that no server uses; an image a server still runs on waits
// until its last such server is deleted. Returns how many jobs were queued.
int QueueTrashPurges(store::Database& db, const Clock& clock, int64_t retention_ms);

// Domain name, disk volume, seed volume and console log gridd uses for a server.
std::string DomainName(int64_t server_id);
std::string DiskVolume(int64_t server_id);
std::string SeedVolume(int64_t server_id);
std::filesystem::path ConsoleLogPath(const std::filesystem::path& console_dir, int64_t server_id);

// Follows the hypervisor's lifecycle events: a guest that stops or starts by itself (powered
// off from inside, crashed, rebooted) is shown Off or On at once. Servers with a job under way
// are left to their job. With `host_id`, events about servers placed on another host (a stale
// copy left by an evacuation) are ignored.
void FollowServerStates(store::Database& db, virt::Hypervisor& hypervisor, const Clock& clock,
                        std::optional<int64_t> host_id = std::nullopt);

// Cuts every console log in `console_dir` larger than max_bytes back to its last max_bytes / 2
// bytes. QEMU appends to the file, so it keeps writing at the new end; output written during
// the cut itself may be lost.
void TrimConsoleLogs(const std::filesystem::path& console_dir, int64_t max_bytes);

// Hypervisors with volatile state (libvirt's test driver) forget every domain and volume when
// they restart. gridd does not rebuild them all at start: a server's domain is materialised
// from the database when something first acts on it (HostRegistry::ForServer).

// Copies saved images' volumes again from their parent images (parents first, as ids grow);
// run when a volatile host is connected or returns. Costs one call per saved image.
void RestoreVolatileImages(store::Database& db, virt::Hypervisor& hypervisor);

// Defines the server's domain on a volatile hypervisor that does not have it, from the
// database: same name, UUID (VolatileDomainUuid), RAM, disk and address, started when the
// server is On (or on its way to On). True when it defined the domain; false when the domain
// exists already or the server is gone.
bool MaterialiseServer(store::Database& db, virt::Hypervisor& hypervisor, int64_t server_id);

// The UUID of a server's domain on a volatile hypervisor, the same at every materialisation.
std::string VolatileDomainUuid(int64_t server_id);

}  // namespace gridd::jobs
