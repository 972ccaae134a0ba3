// The customer rules of load balancers (spec §8.15–8.19): a virtual IP and port in front of a
// list of real IP:port pairs. Every change is written with its job in one transaction; the
// job makes the load-balancing engine match the database.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/domain/entities.h"
#include "gridd/domain/grid_service.h"
#include "gridd/store/database.h"

namespace gridd::domain {

struct LoadBalancerView {
  LoadBalancer balancer;
  Ip vip;
  std::vector<std::pair<Ip, int>> members;  // real IP and port, in order
};

// One realiplist entry as given: realiplist.<index>.ip / .port.
struct RealIpInput {
  int64_t index = 0;
  std::optional<std::string> ip;
  std::optional<std::string> port;
};

struct LoadBalancerAddRequest {
  std::optional<std::string> name;
  std::optional<std::string> description;
  std::optional<std::string> vip;
  std::optional<std::string> vip_port;
  std::vector<RealIpInput> real_ips;
  std::optional<std::string> type;
  std::optional<std::string> persistence;
};

struct LoadBalancerEditRequest {
  std::vector<Selector> selectors;
  std::vector<RealIpInput> real_ips;  // the complete new pool; empty empties it
  std::optional<std::string> description;
  std::optional<std::string> type;
  std::optional<std::string> persistence;
};

class LoadBalancerService {
 public:
  LoadBalancerService(store::Database& db, const Clock& clock, std::function<void()> on_job_queued,
                      GridServiceOptions options = {});

  std::vector<LoadBalancerView> List(const Caller& caller, const std::vector<int64_t>& datacenters);
  std::vector<LoadBalancerView> Get(const Caller& caller, const std::vector<Selector>& selectors);
  LoadBalancerView Add(const Caller& caller, const LoadBalancerAddRequest& request);
  LoadBalancerView Edit(const Caller& caller, const LoadBalancerEditRequest& request);
  LoadBalancerView Delete(const Caller& caller, const std::vector<Selector>& selectors);

 private:
  LoadBalancerView View(store::Connection& c, const LoadBalancer& balancer);
  std::vector<LoadBalancer> Select(store::Connection& c, const Caller& caller,
                                   const Selector& selector);
  LoadBalancer SelectOne(store::Connection& c, const Caller& caller,
                         const std::vector<Selector>& selectors);
  std::vector<LoadBalancerMember> ResolveMembers(store::Connection& c, const Caller& caller,
                                                 const std::vector<RealIpInput>& inputs,
                                                 int64_t datacenter_id,
                                                 std::pair<int64_t, int> vip);
  Job NewBalancerJob(const Caller& caller, const LoadBalancer& balancer, const Ip& vip,
                     int64_t command);

  store::Database& db_;
  const Clock& clock_;
  std::function<void()> on_job_queued_;
  GridServiceOptions options_;
};

// Parses a TCP port parameter (1–65535); 400 naming the parameter otherwise.
int ParsePort(const std::string& parameter, const std::string& value);

}  // namespace gridd::domain
