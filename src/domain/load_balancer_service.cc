#include "gridd/domain/load_balancer_service.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>

#include "domain/rules.h"
#include "gridd/common/error.h"
#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"

namespace gridd::domain {
namespace {

using store::Connection;

// The account's IP given as a dotted quad or, as dasein sends it, as the IP's id.
std::optional<Ip> FindAccountIp(Connection& c, int64_t account_id, const std::string& value) {
  if (auto by_address = store::ips::FindByAddress(c, account_id, value)) return by_address;
  if (auto id = ParsePositiveId(value)) return store::ips::Get(c, account_id, *id);
  return std::nullopt;
}

bool InNetwork(const std::string& address, const std::string& cidr) {
  unsigned a = 0, b = 0, c = 0, d = 0, bits = 0;
  if (std::sscanf(cidr.c_str(), "%u.%u.%u.%u/%u", &a, &b, &c, &d, &bits) != 5 || bits > 32) {
    return false;
  }
  unsigned x = 0, y = 0, z = 0, w = 0;
  if (std::sscanf(address.c_str(), "%u.%u.%u.%u", &x, &y, &z, &w) != 4) return false;
  const uint32_t network = (a << 24) | (b << 16) | (c << 8) | d;
  const uint32_t host = (x << 24) | (y << 16) | (z << 8) | w;
  const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  return (network & mask) == (host & mask);
}

}  // namespace

int ParsePort(const std::string& parameter, const std::string& value) {
  int port = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
  if (ec != std::errc() || ptr != value.data() + value.size() || port < 1 || port > 65535) {
    ThrowIllegalArgument("Parameter '" + parameter + "' must be a port between 1 and 65535, got '" +
                         value + "'");
  }
  return port;
}

LoadBalancerService::LoadBalancerService(store::Database& db, const Clock& clock,
                                         std::function<void()> on_job_queued,
                                         GridServiceOptions options)
    : db_(db), clock_(clock), on_job_queued_(std::move(on_job_queued)), options_(std::move(options)) {}

LoadBalancerView LoadBalancerService::View(Connection& c, const LoadBalancer& balancer) {
  LoadBalancerView view;
  view.balancer = balancer;
  auto vip = store::ips::Get(c, balancer.account_id, balancer.vip_id);
  if (!vip) {
    throw ApiError(ErrorClass::kUnexpected,
                   "load balancer " + std::to_string(balancer.id) + " has no virtual IP");
  }
  view.vip = *vip;
  for (const auto& member : balancer.members) {
    auto ip = store::ips::Get(c, balancer.account_id, member.ip_id);
    if (ip) view.members.emplace_back(*ip, member.port);
  }
  return view;
}

std::vector<LoadBalancer> LoadBalancerService::Select(Connection& c, const Caller& caller,
                                                      const Selector& selector) {
  auto id = ParsePositiveId(selector.value);
  if (selector.kind == Selector::Kind::kId && !id) {
    ThrowIllegalArgument("Parameter 'id' must be a positive integer, got '" + selector.value + "'");
  }
  if (selector.kind != Selector::Kind::kName && id) {
    if (auto balancer = store::load_balancers::Get(c, caller.account_id, *id)) return {*balancer};
    if (selector.kind == Selector::Kind::kId) return {};
  }
  return store::load_balancers::FindByName(c, caller.account_id, selector.value);
}

LoadBalancer LoadBalancerService::SelectOne(Connection& c, const Caller& caller,
                                            const std::vector<Selector>& selectors) {
  if (selectors.empty())
    ThrowIllegalArgument("Missing required parameter: id, name or loadbalancer");
  if (selectors.size() > 1) {
    ThrowIllegalArgument(
        "Give exactly one of id, name or loadbalancer to select the load balancer");
  }
  auto matches = Select(c, caller, selectors.front());
  if (matches.empty()) ThrowIllegalArgument(std::string(kNoObjectFound));
  return matches.front();  // names are unique per account
}

std::vector<LoadBalancerMember> LoadBalancerService::ResolveMembers(
    Connection& c, const Caller& caller, const std::vector<RealIpInput>& inputs,
    int64_t datacenter_id, std::pair<int64_t, int> vip) {
  const auto balancers = store::load_balancers::List(c, caller.account_id);
  std::vector<RealIpInput> sorted = inputs;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.index < b.index; });
  std::vector<LoadBalancerMember> members;
  std::set<std::pair<int64_t, int>> seen;
  for (const auto& input : sorted) {
    const std::string prefix = "realiplist." + std::to_string(input.index);
    if (!input.ip || input.ip->empty())
      ThrowIllegalArgument("Missing required parameter: " + prefix + ".ip");
    if (!input.port || input.port->empty()) {
      ThrowIllegalArgument("Missing required parameter: " + prefix + ".port");
    }
    const int port = ParsePort(prefix + ".port", *input.port);
    auto ip = FindAccountIp(c, caller.account_id, *input.ip);
    if (!ip) {
      ThrowIllegalArgument("Parameter '" + prefix + ".ip': IP " + *input.ip +
                           " is not one of this account's addresses");
    }
    if (ip->datacenter_id != datacenter_id) {
      ThrowIllegalArgument("Parameter '" + prefix + ".ip': IP " + ip->address +
                           " is in another datacenter than the virtual IP");
    }
    // A member that is a virtual IP:port (this balancer's or another's) would make HAProxy
    // connect to itself: one client connection then multiplies until it exhausts the engine.
    const bool own_vip = ip->id == vip.first && port == vip.second;
    const bool other_vip = std::any_of(balancers.begin(), balancers.end(), [&](const auto& b) {
      return b.vip_id == ip->id && b.port == port;
    });
    if (own_vip || other_vip) {
      ThrowIllegalArgument("Parameter '" + prefix + "': " + ip->address + ":" +
                           std::to_string(port) + " is a load balancer's virtual IP and port");
    }
    if (!seen.emplace(ip->id, port).second) {
      ThrowIllegalArgument("Parameter '" + prefix + "': " + ip->address + ":" +
                           std::to_string(port) + " is listed twice");
    }
    members.push_back(LoadBalancerMember{ip->id, port});
  }
  return members;
}

Job LoadBalancerService::NewBalancerJob(const Caller& caller, const LoadBalancer& balancer,
                                        const Ip& vip, int64_t command) {
  Job job = NewJob(caller, job_object_type::kLoadBalancer, balancer.id, balancer.name, command,
                   vip.datacenter_id);
  job.detail["type"] = "load_balancer";
  job.detail["name"] = balancer.name;
  job.detail["description"] = balancer.description;
  job.detail["virtualip"] = vip.address + ":" + std::to_string(balancer.port);
  return job;
}

std::vector<LoadBalancerView> LoadBalancerService::List(const Caller& caller,
                                                        const std::vector<int64_t>& datacenters) {
  return db_.Read([&](Connection& c) {
    std::vector<LoadBalancerView> out;
    for (const auto& balancer : store::load_balancers::List(c, caller.account_id)) {
      LoadBalancerView view = View(c, balancer);
      if (!datacenters.empty() && std::find(datacenters.begin(), datacenters.end(),
                                            view.vip.datacenter_id) == datacenters.end()) {
        continue;
      }
      out.push_back(std::move(view));
    }
    return out;
  });
}

std::vector<LoadBalancerView> LoadBalancerService::Get(const Caller& caller,
                                                       const std::vector<Selector>& selectors) {
  if (selectors.empty())
    ThrowIllegalArgument("Missing required parameter: id, name or loadbalancer");
  return db_.Read([&](Connection& c) {
    return SelectEach<LoadBalancerView>(
        selectors, [&](const Selector& selector) { return Select(c, caller, selector); },
        [&](const LoadBalancer& balancer) { return View(c, balancer); });
  });
}

LoadBalancerView LoadBalancerService::Add(const Caller& caller,
                                          const LoadBalancerAddRequest& request) {
  if (!request.name || request.name->empty())
    ThrowIllegalArgument("Missing required parameter: name");
  if (!request.vip || request.vip->empty()) {
    ThrowIllegalArgument("Missing required parameter: virtualip.ip");
  }
  if (!request.vip_port || request.vip_port->empty()) {
    ThrowIllegalArgument("Missing required parameter: virtualip.port");
  }
  CheckLength(*request.name, "name", options_.max_name_length);
  const std::string description = request.description.value_or("");
  CheckLength(description, "description", options_.max_description_length);
  const int port = ParsePort("virtualip.port", *request.vip_port);
  const int64_t type =
      request.type
          ? ResolveOption(*FixedLookup("loadbalancer.type"), "loadbalancer.type", *request.type).id
          : 1;
  const int64_t persistence = request.persistence
                                  ? ResolveOption(*FixedLookup("loadbalancer.persistence"),
                                                  "loadbalancer.persistence", *request.persistence)
                                        .id
                                  : 1;
  if (request.real_ips.empty()) {
    ThrowIllegalArgument("Missing required parameter: realiplist.0.ip (at least one real IP)");
  }
  LoadBalancerView view = db_.Write([&](Connection& c) {
    if (!store::load_balancers::FindByName(c, caller.account_id, *request.name).empty()) {
      ThrowIllegalArgument("A load balancer named '" + *request.name + "' already exists");
    }
    auto vip = FindAccountIp(c, caller.account_id, *request.vip);
    if (!vip) {
      ThrowIllegalArgument("Parameter 'virtualip.ip': IP " + *request.vip +
                           " is not one of this account's addresses");
    }
    if (!vip->is_public) {
      ThrowIllegalArgument("Parameter 'virtualip.ip': IP " + vip->address +
                           " is not a public address");
    }
    if (vip->state != ip_state::kUnassigned) {
      ThrowIllegalArgument("Parameter 'virtualip.ip': IP " + vip->address + " is already assigned");
    }
    const auto& networks = options_.vip_networks;
    if (!networks.empty() && std::none_of(networks.begin(), networks.end(), [&](const auto& n) {
          return InNetwork(vip->address, n);
        })) {
      std::string allowed;
      for (const auto& n : networks) allowed += (allowed.empty() ? "" : ", ") + n;
      ThrowIllegalArgument("Parameter 'virtualip.ip': IP " + vip->address +
                           " is outside the networks this gridd serves load balancers on (" +
                           allowed + ")");
    }
    LoadBalancer balancer;
    balancer.account_id = caller.account_id;
    balancer.name = *request.name;
    balancer.description = description;
    balancer.vip_id = vip->id;
    balancer.port = port;
    balancer.type = type;
    balancer.persistence = persistence;
    balancer.state = 4;  // Unknown until the engine serves it
    balancer.members =
        ResolveMembers(c, caller, request.real_ips, vip->datacenter_id, {vip->id, port});
    balancer.created_ms = balancer.updated_ms = clock_.NowMs();
    if (!store::ips::AssignAsVirtualIp(c, vip->id)) {
      ThrowIllegalArgument("Parameter 'virtualip.ip': IP " + vip->address + " is already assigned");
    }
    balancer.id = store::load_balancers::Insert(c, balancer);
    Job job = NewBalancerJob(caller, balancer, *vip, job_command::kCreateLoadBalancer);
    store::jobs::Insert(c, job, balancer.created_ms);
    return View(c, balancer);
  });
  on_job_queued_();
  return view;
}

LoadBalancerView LoadBalancerService::Edit(const Caller& caller,
                                           const LoadBalancerEditRequest& request) {
  std::optional<int64_t> type;
  if (request.type) {
    type = ResolveOption(*FixedLookup("loadbalancer.type"), "loadbalancer.type", *request.type).id;
  }
  std::optional<int64_t> persistence;
  if (request.persistence) {
    persistence = ResolveOption(*FixedLookup("loadbalancer.persistence"),
                                "loadbalancer.persistence", *request.persistence)
                      .id;
  }
  if (request.description) {
    CheckLength(*request.description, "description", options_.max_description_length);
  }
  LoadBalancerView view = db_.Write([&](Connection& c) {
    LoadBalancer balancer = SelectOne(c, caller, request.selectors);
    if (balancer.deleting ||
        store::jobs::HasPending(c, job_object_type::kLoadBalancer, balancer.id)) {
      ThrowIllegalArgument("Update already pending for LoadBalancer '" + balancer.name +
                           "'; wait for its current job to finish");
    }
    auto vip = store::ips::Get(c, caller.account_id, balancer.vip_id);
    // The job restores the previous pool if the engine refuses the new one.
    nlohmann::json previous = nlohmann::json::array();
    for (const auto& member : balancer.members) previous.push_back({member.ip_id, member.port});
    balancer.members = ResolveMembers(c, caller, request.real_ips, vip->datacenter_id,
                                      {balancer.vip_id, balancer.port});
    if (request.description) balancer.description = *request.description;
    if (type) balancer.type = *type;
    if (persistence) balancer.persistence = *persistence;
    balancer.updated_ms = clock_.NowMs();
    store::load_balancers::Update(c, balancer);
    Job job = NewBalancerJob(caller, balancer, *vip, job_command::kUpdateLoadBalancer);
    job.payload["previous_members"] = previous;
    store::jobs::Insert(c, job, balancer.updated_ms);
    return View(c, balancer);
  });
  on_job_queued_();
  return view;
}

LoadBalancerView LoadBalancerService::Delete(const Caller& caller,
                                             const std::vector<Selector>& selectors) {
  LoadBalancerView view = db_.Write([&](Connection& c) {
    LoadBalancer balancer = SelectOne(c, caller, selectors);
    if (balancer.deleting ||
        store::jobs::HasPending(c, job_object_type::kLoadBalancer, balancer.id)) {
      ThrowIllegalArgument("Update request for LoadBalancer '" + balancer.name +
                           "' refused: another change is still pending");
    }
    LoadBalancerView before = View(c, balancer);
    balancer.deleting = true;
    balancer.updated_ms = clock_.NowMs();
    store::load_balancers::Update(c, balancer);
    Job job = NewBalancerJob(caller, balancer, before.vip, job_command::kDeleteLoadBalancer);
    store::jobs::Insert(c, job, balancer.updated_ms);
    return before;
  });
  on_job_queued_();
  return view;
}

}  // namespace gridd::domain
