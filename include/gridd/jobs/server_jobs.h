// Job handlers that carry server changes out on a hypervisor, and the start-up pass that
// rebuilds servers on a hypervisor that forgets its state (libvirt's test driver).
#pragma once

#include <memory>
#include <string>

#include "gridd/common/clock.h"
#include "gridd/jobs/job_runner.h"
#include "gridd/store/database.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::jobs {

struct ServerJobOptions {
  int shutdown_timeout_seconds = 60;
};

// Registers the handlers for Create/Start/Stop/Restart/Update/DeleteVirtualServer and
// SaveServerImage.
void RegisterServerJobs(JobRunner& runner, store::Database& db, virt::Hypervisor& hypervisor,
                        const Clock& clock, ServerJobOptions options);

// Domain name and disk volume gridd uses for a server.
std::string DomainName(int64_t server_id);
std::string DiskVolume(int64_t server_id);

// For hypervisors with volatile state: copies saved images' volumes again from their parent
// images, defines every server's domain again and starts those the database says are on.
// Returns the number of servers rebuilt.
int RestoreVolatileServers(store::Database& db, virt::Hypervisor& hypervisor);

}  // namespace gridd::jobs
