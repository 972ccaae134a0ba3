// Admin commands for hypervisor hosts and datacenters (`gridctl datacenter add`, `gridctl host
// add|list|maintenance|remove|down|up|evacuate`, `gridctl server move`).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "gridd/common/clock.h"
#include "gridd/domain/grid_service.h"
#include "gridd/jobs/hosts.h"
#include "gridd/store/database.h"

namespace gridd::daemon {

struct HostContext {
  store::Database& db;
  const Clock& clock;
  jobs::HostRegistry& hosts;
  domain::Catalog& catalog;         // datacenters are cached there
  std::function<void()> wake_jobs;  // evacuation jobs run at once
};

// Runs `command` when it is one of these commands; nothing otherwise.
std::optional<nlohmann::json> RunHostCommand(HostContext& context, const std::string& command,
                                             const nlohmann::json& args);

// Queues an EvacuateVirtualServer job for every server of a Down host: each is placed by the
// scheduler on another host of its datacenter (the row's host changes in the same transaction
// as the job, so the room is booked at once). Servers with no room, or with a job under way,
// stay and are listed. Throws a 400 when the host is not Down.
nlohmann::ordered_json EvacuateHost(HostContext& context, const std::string& name);

// Queues a MoveVirtualServer job moving a server to another Up host of its datacenter, with
// the target's room booked at once. Refused with a one-line 400 when the target is the
// server's own host, Down, in maintenance, full or in another datacenter, when the server's
// host is Down, or when a job is under way on the server.
nlohmann::ordered_json MoveServer(HostContext& context, const std::string& server,
                                  const std::string& host);

}  // namespace gridd::daemon
