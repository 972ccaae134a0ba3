#include "daemon/host_commands.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <stdexcept>

#include "daemon/admin_args.h"
#include "daemon/admin_commands.h"
#include "gridd/common/error.h"
#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"

namespace gridd::daemon {
namespace {

using Json = nlohmann::ordered_json;
namespace host_state = domain::host_state;
namespace server_state = domain::server_state;

bool OnOff(const std::string& text, const char* key) {
  if (text == "on" || text == "true" || text == "yes") return true;
  if (text == "off" || text == "false" || text == "no") return false;
  ThrowIllegalArgument(std::string(key) + " must be on or off, not '" + text + "'");
}

int64_t ResolveDatacenter(HostContext& context, const std::string& value) {
  return domain::ResolveOption(context.catalog.Datacenters(), "datacenter", value).id;
}

std::string DatacenterName(HostContext& context, const std::optional<int64_t>& id) {
  if (!id) return "any";
  const auto datacenters = context.catalog.Datacenters();
  const auto* option = domain::FindOption(datacenters, std::to_string(*id));
  return option != nullptr ? option->name : std::to_string(*id);
}

Json HostJson(HostContext& context, const jobs::HostView& view) {
  const auto& host = view.host;
  const char* state = host.maintenance                                  ? "Maintenance"
                      : host.state == host_state::kUp && view.connected ? "Up"
                                                                        : "Down";
  return Json{{"name", host.name},
              {"uri", view.uri},
              {"datacenter", DatacenterName(context, host.datacenter_id)},
              {"state", state},
              {"ram_mib", view.slot.ram_mib},
              {"ram_overcommit", host.ram_overcommit},
              {"ram_used_mib", view.slot.used_mib},
              {"ram_free_mib", view.slot.FreeMib()},
              {"vcpus", view.slot.cpus},
              {"vcpus_used", view.vcpus_used},
              {"servers", view.slot.servers},
              {"shared_storage", host.shared_storage},
              {"error", view.last_error.empty() ? Json(nullptr) : Json(view.last_error)}};
}

Json HostJsonByName(HostContext& context, const std::string& name) {
  for (const auto& view : context.hosts.List()) {
    if (view.host.name == name) return HostJson(context, view);
  }
  ThrowIllegalArgument("no host '" + name + "'");
}

double ParseOvercommit(const std::string& text) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    ThrowIllegalArgument("ram-overcommit must be a number such as 1.5, not '" + text + "'");
  }
  return value;
}

}  // namespace

Json EvacuateHost(HostContext& context, const std::string& name) {
  const domain::Host host = context.hosts.Find(name);
  if (host.state != host_state::kDown) {
    ThrowIllegalArgument("host '" + host.name +
                         "' is Up; evacuation re-creates the servers of a Down host (mark it "
                         "Down with `gridctl host down` once it is fenced)");
  }
  auto* scheduler = context.hosts.scheduler();
  // Room booked on target hosts, given back if the transaction does not commit.
  std::vector<std::pair<int64_t, int64_t>> booked;  // host, RAM
  Json moved = Json::array();
  Json left = Json::array();
  try {
    context.db.Write([&](store::Connection& c) {
      for (const auto& [target, ram] : booked) scheduler->Release(target, ram);
      booked.clear();
      moved = Json::array();
      left = Json::array();
      const int64_t now = context.clock.NowMs();
      for (auto server : store::servers::ListOnHost(c, host.id)) {
        auto ip = store::ips::Get(c, server.account_id, server.ip_id);
        if (!ip) continue;
        if (server.deleting ||
            store::jobs::HasPending(c, domain::job_object_type::kVirtualServer, server.id)) {
          left.push_back(
              Json{{"server", server.id},
                   {"name", server.name},
                   {"reason", "a job is under way on it; evacuate again after it ends"}});
          continue;
        }
        const auto ram = static_cast<int64_t>(domain::RamMib(server.ram));
        auto target = scheduler->Reserve(ip->datacenter_id, ram);
        if (!target) {
          left.push_back(Json{
              {"server", server.id},
              {"name", server.name},
              {"reason", "no Up host in datacenter " + DatacenterName(context, ip->datacenter_id) +
                             " has room for " + std::to_string(ram) + " MB"}});
          continue;
        }
        booked.emplace_back(*target, ram);
        // It ran (or was meant to run) before the host failed: it runs again after the move.
        const bool start = server.state != server_state::kOff &&
                           server.state != server_state::kStopping &&
                           server.state != server_state::kOffSaving;
        store::servers::SetHost(c, server.id, *target);
        server.state = start ? server_state::kStarting : server_state::kOff;
        server.updated_ms = now;
        store::servers::Update(c, server);

        domain::Job job;
        job.account_id = server.account_id;
        job.object_type = domain::job_object_type::kVirtualServer;
        job.object_id = server.id;
        job.object_name = server.name;
        job.command = domain::job_command::kEvacuateVirtualServer;
        job.owner = "gridd operator";
        job.datacenter_id = ip->datacenter_id;
        job.detail["type"] = "virtual_server";
        job.detail["name"] = server.name;
        job.detail["ip"] = ip->address;
        job.detail["from_host"] = host.name;
        job.detail["to_host"] = context.hosts.HostName(*target);
        job.payload["start"] = start;
        job.payload["from_host"] = host.id;
        const int64_t job_id = store::jobs::Insert(c, job, now);
        moved.push_back(Json{{"server", server.id},
                             {"name", server.name},
                             {"ip", ip->address},
                             {"to_host", context.hosts.HostName(*target)},
                             {"job", job_id}});
      }
    });
  } catch (...) {
    for (const auto& [target, ram] : booked) scheduler->Release(target, ram);
    throw;
  }
  // The room on the failed host is free once its servers have left.
  for (const auto& [target, ram] : booked) scheduler->Release(host.id, ram);
  if (!moved.empty()) context.wake_jobs();
  spdlog::warn("host {}: evacuating {} server(s); {} left", host.name, moved.size(), left.size());
  return Json{{"host", host.name}, {"moved", moved}, {"left", left}};
}

Json MoveServer(HostContext& context, const std::string& server_name,
                const std::string& host_name) {
  const domain::Server found = FindServer(context.db, server_name);
  const domain::Host target = context.hosts.Find(host_name);
  const auto source_id = context.hosts.HostOf(found);
  if (!source_id) ThrowIllegalArgument("server '" + found.name + "' has no host");
  const std::string source_name = context.hosts.HostName(*source_id);
  if (*source_id == target.id) {
    ThrowIllegalArgument("server '" + found.name + "' is on host '" + target.name + "' already");
  }
  // The registry knows whether each host answers now; the row only what was last written.
  std::optional<domain::Host> source;
  bool target_up = false;
  for (const auto& known : context.hosts.UpHosts()) {
    if (known.host.id == *source_id) source = known.host;
    if (known.host.id == target.id) target_up = true;
  }
  if (!target_up) ThrowIllegalArgument("host '" + target.name + "' is Down");
  if (target.maintenance) ThrowIllegalArgument("host '" + target.name + "' is in maintenance");
  if (!source) {
    ThrowIllegalArgument("host '" + source_name + "' of server '" + found.name +
                         "' is Down; use `gridctl host evacuate`");
  }
  if (source->datacenter_id != target.datacenter_id) {
    ThrowIllegalArgument("host '" + target.name + "' is in datacenter " +
                         DatacenterName(context, target.datacenter_id) + ", server '" + found.name +
                         "' in " + DatacenterName(context, source->datacenter_id));
  }
  auto* scheduler = context.hosts.scheduler();
  const auto ram = static_cast<int64_t>(domain::RamMib(found.ram));
  if (!scheduler->ReserveOn(target.id, ram)) {
    ThrowIllegalArgument("host '" + target.name + "' has no room for " + std::to_string(ram) +
                         " MB");
  }
  int64_t job_id = 0;
  try {
    job_id = context.db.Write([&](store::Connection& c) {
      auto server = store::servers::GetAny(c, found.id);
      if (!server || server->deleting) {
        ThrowIllegalArgument("server '" + found.name + "' is being deleted");
      }
      if (server->host_id != found.host_id) {
        ThrowIllegalArgument("server '" + found.name + "' has moved meanwhile; try again");
      }
      if (store::jobs::HasPending(c, domain::job_object_type::kVirtualServer, server->id)) {
        ThrowIllegalArgument("a job is under way on server '" + server->name +
                             "'; move it after the job ends");
      }
      auto ip = store::ips::Get(c, server->account_id, server->ip_id);
      domain::Job job;
      job.account_id = server->account_id;
      job.object_type = domain::job_object_type::kVirtualServer;
      job.object_id = server->id;
      job.object_name = server->name;
      job.command = domain::job_command::kMoveVirtualServer;
      job.owner = "gridd operator";
      if (ip) job.datacenter_id = ip->datacenter_id;
      job.detail["type"] = "virtual_server";
      job.detail["name"] = server->name;
      if (ip) job.detail["ip"] = ip->address;
      job.detail["from_host"] = source_name;
      job.detail["to_host"] = target.name;
      // What the server must be after the move: its wanted state, not what a half-done move
      // finds on the source.
      job.payload["start"] = server->state != server_state::kOff &&
                             server->state != server_state::kStopping &&
                             server->state != server_state::kOffSaving;
      job.payload["from_host"] = *source_id;
      job.payload["to_host"] = target.id;
      return store::jobs::Insert(c, job, context.clock.NowMs());
    });
  } catch (...) {
    scheduler->Release(target.id, ram, false);
    throw;
  }
  context.wake_jobs();
  spdlog::info("server {}: moving from host {} to host {} (job {})", found.id, source_name,
               target.name, job_id);
  return Json{{"server", found.id},
              {"name", found.name},
              {"from_host", source_name},
              {"to_host", target.name},
              {"job", job_id}};
}

std::optional<nlohmann::json> RunHostCommand(HostContext& context, const std::string& command,
                                             const nlohmann::json& args) {
  if (command == "datacenter.add") {
    const std::string name = RequiredString(args, "name");
    const std::string description =
        OptionalString(args, "description").value_or(name + " Datacenter");
    if (name.size() > 64) ThrowIllegalArgument("datacenter name is longer than 64 characters");
    const int64_t id = context.db.Write([&](store::Connection& c) {
      for (const auto& dc : store::datacenters::List(c)) {
        if (domain::FindOption({domain::Option{dc.id, dc.name, dc.description}}, name)) {
          ThrowIllegalArgument("datacenter '" + name + "' exists (id " + std::to_string(dc.id) +
                               ")");
        }
      }
      return store::datacenters::Insert(c, name, description);
    });
    context.catalog.Invalidate();
    return Json{{"id", id}, {"name", name}, {"description", description}};
  }
  if (command == "host.list") {
    Json out = Json::array();
    for (const auto& view : context.hosts.List()) out.push_back(HostJson(context, view));
    return out;
  }
  if (command == "host.add") {
    const std::string name = RequiredString(args, "name");
    const std::string uri = RequiredString(args, "uri");
    const int64_t datacenter = ResolveDatacenter(context, RequiredString(args, "datacenter"));
    const double overcommit =
        ParseOvercommit(OptionalString(args, "ram_overcommit").value_or("1.0"));
    const bool shared =
        OnOff(OptionalString(args, "shared_storage").value_or("off"), "shared-storage");
    context.hosts.Add(name, uri, datacenter, overcommit, shared);
    return HostJsonByName(context, name);
  }
  if (command == "host.remove") {
    const std::string name = RequiredString(args, "name");
    context.hosts.Remove(name);
    return Json{{"name", name}, {"removed", true}};
  }
  if (command == "host.maintenance") {
    const std::string name = RequiredString(args, "name");
    context.hosts.SetMaintenance(name, OnOff(RequiredString(args, "mode"), "mode"));
    return HostJsonByName(context, name);
  }
  if (command == "host.down") {
    const domain::Host host = context.hosts.Find(RequiredString(args, "name"));
    context.hosts.MarkDown(host.id, "marked Down by the operator", true);
    return HostJsonByName(context, host.name);
  }
  if (command == "host.up") {
    const domain::Host host = context.hosts.Find(RequiredString(args, "name"));
    std::string error;
    if (!context.hosts.MarkUp(host.id, &error)) {
      ThrowIllegalArgument("host '" + host.name + "' does not answer: " + error);
    }
    return HostJsonByName(context, host.name);
  }
  if (command == "host.evacuate") return EvacuateHost(context, RequiredString(args, "name"));
  if (command == "server.move") {
    return MoveServer(context, RequiredString(args, "server"), RequiredString(args, "host"));
  }
  return std::nullopt;
}

}  // namespace gridd::daemon
