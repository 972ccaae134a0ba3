#include "gridd/domain/lookups.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include "gridd/common/error.h"

namespace gridd::domain {
namespace {

using Options = std::vector<Option>;

Option Opt(int64_t id, std::string name, std::optional<std::string> description) {
  return Option{id, std::move(name), std::move(description)};
}

const Options kServerRam = {
    Opt(1, "512MB", "Server with 512MB RAM"), Opt(2, "1GB", "Server with 1GB RAM"),
    Opt(3, "2GB", "Server with 2GB RAM"),     Opt(4, "4GB", "Server with 4GB RAM"),
    Opt(5, "8GB", "Server with 8GB RAM"),     Opt(8, "16GB", "Server with 16GB RAM"),
    Opt(9, "24GB", "Server with 24GB RAM"),
};
const Options kServerState = {
    Opt(1, "On", "Server is in active state."),
    Opt(2, "Starting", "Server is in transient state...Starting."),
    Opt(3, "Off", "Server is in inactive state."),
    Opt(4, "Stopping", "Server is in transient state...Stopping."),
    Opt(5, "Restarting", "Server is in transient state...Restarting"),
    Opt(6, "Saving", "Server is in transient state...Saving"),
    Opt(7, "Restoring", "Server is in transient state...Restoring"),
    Opt(8, "Updating", "Server is in transient state...Updating"),
    Opt(9, "On/Saving", "Server is in a transient state but is on...Saving"),
    Opt(10, "Off/Saving", "Server is in a transient state but is off...Saving"),
};
const Options kServerType = {
    Opt(1, "Web Server", "Web or Application Server"),
    Opt(2, "Database Server", "Database Server"),
};
const Options kIpState = {
    Opt(1, "Unassigned", "IP is available to use"),
    Opt(2, "Assigned", "IP is reserved or in use"),
};
const Options kIpType = {
    Opt(1, "Public", "Public IP address"),
    Opt(2, "Private", "Private IP address"),
};
const Options kImageState = {
    Opt(1, "Saving", "Image is being saved"),
    Opt(2, "Available", "Image is available for adds"),
    Opt(3, "Deleted", "Image has been deleted"),
    Opt(4, "Trash", "Image is marked for deletion"),
    Opt(7, "Migrating", "Image is being migrated from another data center"),
};
const Options kImageArchitecture = {
    Opt(1, "32-bit", "32 bit OS"),
    Opt(2, "64-bit", "64 bit OS"),
};
const Options kImageGsiType = {
    Opt(1, "GoGrid", "Image provided by the operator"),
    Opt(2, "MyGSI", "Image saved by a customer"),
    Opt(3, "Partner", "Image provided by a partner"),
};
const Options kLoadBalancerType = {
    Opt(1, "Round Robin", ""),
    Opt(2, "Least Connect", ""),
};
const Options kLoadBalancerPersistence = {
    Opt(1, "None", ""),
    Opt(2, "SSL Sticky", ""),
    Opt(3, "Source Address", ""),
};
const Options kLoadBalancerState = {
    Opt(1, "On", "Loadbalancer is enabled and on."),
    Opt(2, "Off", "Loadbalancer is disabled and off."),
    Opt(3, "Unavailable", "Loadbalancer is enabled, but real ips are unreachable."),
    Opt(4, "Unknown", "Loadbalancer state is unknown."),
};
const Options kLoadBalancerOs = {
    Opt(1, "F5", "The F5 Load Balancer."),
    Opt(2, "HAProxy", "HAProxy, supervised by gridd."),
};
const Options kJobState = {
    Opt(1, "Queued", "Change request is new to the system."),
    Opt(2, "Processing", "Change request is is transient state...Processing."),
    Opt(3, "Succeeded", "Change request has succeeded."),
    Opt(4, "Failed", "Change request has failed."),
    Opt(5, "Canceled", "Change request has been canceled."),
    Opt(6, "Fatal", "Change request had Fatal or Unrecoverable Failure"),
    Opt(7, "Created", "Change request is created but not queued yet"),
};
const Options kJobCommand = {
    Opt(1, "StartVirtualServer", "Start Virtual Server"),
    Opt(2, "StopVirtualServer", "Stop Virtual Server"),
    Opt(3, "RestartVirtualServer", "Restart Virtual Server"),
    Opt(4, "UpdateVirtualServer", "Update Virtual Server"),
    Opt(5, "SaveServerImage", "Save Server Image"),
    Opt(6, "CreateVirtualServer", "Create Virtual Server"),
    Opt(7, "DeleteVirtualServer", "Delete Virtual Server"),
    Opt(8, "DeleteServerImage", "Delete Server Image"),
    Opt(9, "RestoreServerImage", "Restore Server Image"),
    Opt(10, "CreateLoadBalancer", "Create Load Balancer"),
    Opt(11, "UpdateLoadBalancer", "Update Load Balancer"),
    Opt(12, "DeleteLoadBalancer", "Delete Load Balancer"),
    // gridd extension: the reconciler repairs drift between a hypervisor and the database.
    Opt(13, "ReconcileVirtualServer", "Reconcile Virtual Server"),
    // gridd extension: a server re-created on another host when its own is Down.
    Opt(14, "EvacuateVirtualServer", "Evacuate Virtual Server"),
    // gridd extension: a server moved to another Up host (gridctl server move).
    Opt(15, "MoveVirtualServer", "Move Virtual Server"),
};
const Options kJobObjectType = {
    Opt(1, "VirtualServer", std::nullopt), Opt(2, "LoadBalancer", std::nullopt),
    Opt(3, "CloudStorage", std::nullopt),  Opt(4, "StorageDNS", std::nullopt),
    Opt(5, "ServerImage", std::nullopt),   Opt(6, "DedicatedServer", std::nullopt),
};

const Options kCatalogue = {
    Opt(1, "loadbalancer.type", "Load Balancer Types"),
    Opt(2, "loadbalancer.persistence", "Load Balancer Persistence Types"),
    Opt(3, "loadbalancer.state", "Load Balancer States"),
    Opt(4, "loadbalancer.os", "Load Balancer OS's"),
    Opt(5, "server.type", "Server Types"),
    Opt(6, "server.ram", "Server Ram"),
    Opt(7, "server.state", "Server States"),
    Opt(8, "server.os", "Server OS's"),
    Opt(9, "ip.type", "IP Address Types"),
    Opt(10, "ip.state", "IP Address States"),
    Opt(11, "job.state", "Job States"),
    Opt(12, "job.command", "Job Commands"),
    Opt(13, "job.objecttype", "Job Object Types"),
    Opt(14, "image.state", "Image States"),
    Opt(15, "image.type", "Image Types"),
    Opt(16, "image.os", "Image OS's"),
    Opt(17, "image.architecture", "Image OS Architectures"),
    Opt(18, "datacenter", "Datacenters"),
    Opt(19, "loadbalancer.datacenter", "Datacenters"),
    Opt(20, "server.datacenter", "Datacenters"),
    Opt(21, "job.datacenter", "Datacenters"),
    Opt(22, "ip.datacenter", "Datacenters"),
    Opt(23, "image.minram", "Image Ram"),
    Opt(24, "image.gsitype", "GoGrid Server Image Type"),
};

// Lower-case without spaces, so "Round Robin", "round robin" and "roundrobin" agree.
std::string Normalize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == ' ') continue;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

}  // namespace

const std::vector<Option>* FixedLookup(std::string_view name) {
  static const std::map<std::string, const Options*, std::less<>> lookups = {
      {"server.ram", &kServerRam},
      {"image.minram", &kServerRam},
      {"server.state", &kServerState},
      {"server.type", &kServerType},
      {"image.type", &kServerType},
      {"ip.state", &kIpState},
      {"ip.type", &kIpType},
      {"image.state", &kImageState},
      {"image.architecture", &kImageArchitecture},
      {"image.gsitype", &kImageGsiType},
      {"loadbalancer.type", &kLoadBalancerType},
      {"loadbalancer.persistence", &kLoadBalancerPersistence},
      {"loadbalancer.state", &kLoadBalancerState},
      {"loadbalancer.os", &kLoadBalancerOs},
      {"job.state", &kJobState},
      {"job.command", &kJobCommand},
      {"job.objecttype", &kJobObjectType},
      {"lookups", &kCatalogue},
  };
  auto it = lookups.find(name);
  return it == lookups.end() ? nullptr : it->second;
}

const std::vector<Option>& LookupCatalogue() { return kCatalogue; }

const Option* FindOption(const std::vector<Option>& options, std::string_view value) {
  int64_t id = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
  if (ec == std::errc() && ptr == value.data() + value.size()) {
    for (const auto& option : options) {
      if (option.id == id) return &option;
    }
    return nullptr;
  }
  const std::string wanted = Normalize(value);
  for (const auto& option : options) {
    if (Normalize(option.name) == wanted) return &option;
  }
  return nullptr;
}

const Option& ResolveOption(const std::vector<Option>& options, std::string_view parameter,
                            std::string_view value) {
  if (const Option* option = FindOption(options, value)) return *option;
  std::string accepted;
  for (const auto& option : options) {
    if (!accepted.empty()) accepted += ", ";
    accepted += option.name + " (" + std::to_string(option.id) + ")";
  }
  ThrowIllegalArgument("Invalid value '" + std::string(value) + "' for " + std::string(parameter) +
                       "; expected one of: " + accepted);
}

const Option& OptionById(const std::vector<Option>& options, int64_t id) {
  for (const auto& option : options) {
    if (option.id == id) return option;
  }
  throw ApiError(ErrorClass::kUnexpected, "unknown option id " + std::to_string(id));
}

uint64_t RamMib(int64_t ram_option_id) {
  switch (ram_option_id) {
    case 1:
      return 512;
    case 2:
      return 1024;
    case 3:
      return 2048;
    case 4:
      return 4096;
    case 5:
      return 8192;
    case 8:
      return 16384;
    case 9:
      return 24576;
    default:
      throw ApiError(ErrorClass::kUnexpected,
                     "unknown RAM option " + std::to_string(ram_option_id));
  }
}

}  // namespace gridd::domain
