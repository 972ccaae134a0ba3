#include "gridd/jobs/load_balancer_jobs.h"

#include <spdlog/spdlog.h>

#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"

namespace gridd::jobs {
namespace {

using domain::Job;
namespace job_command = domain::job_command;

constexpr int64_t kStateOn = 1, kStateUnavailable = 3, kStateUnknown = 4;

int64_t StateFor(const lb::BalancerStatus& status) {
  switch (status.health) {
    case lb::BalancerHealth::kUp:
      return kStateOn;
    case lb::BalancerHealth::kNoBackends:
      return kStateUnavailable;
    case lb::BalancerHealth::kEngineDown:
    case lb::BalancerHealth::kUnknown:
      return kStateUnknown;
  }
  return kStateUnknown;
}

class LoadBalancerJobHandler final : public JobHandler {
 public:
  LoadBalancerJobHandler(int64_t command, store::Database& db, lb::LoadBalancerEngine& engine,
                         const Clock& clock)
      : command_(command), db_(db), engine_(engine), clock_(clock) {}

  FinalWrite Run(const Job& job) override {
    // The whole desired set is applied, so a re-run after a crash converges to the same
    // configuration, and changes to other load balancers committed meanwhile come along.
    auto desired = db_.Read([](store::Connection& c) { return DesiredBalancers(c); });
    engine_.Apply(desired);
    const int64_t id = job.object_id;
    if (command_ == job_command::kDeleteLoadBalancer) {
      return [id](store::Connection& c) {
        auto balancer = store::load_balancers::GetAny(c, id);
        if (!balancer) return;
        store::load_balancers::Delete(c, id);
        store::ips::Release(c, balancer->vip_id);
      };
    }
    auto statuses = engine_.Status();
    auto it = statuses.find(id);
    const int64_t state = it == statuses.end() ? kStateUnknown : StateFor(it->second);
    return [this, id, state](store::Connection& c) {
      store::load_balancers::SetState(c, id, state, clock_.NowMs());
    };
  }

  void OnFailure(const Job& job, store::Connection& c) override {
    auto balancer = store::load_balancers::GetAny(c, job.object_id);
    if (!balancer) return;
    const int64_t now = clock_.NowMs();
    if (command_ == job_command::kCreateLoadBalancer) {
      // The engine never served it: take it back and free its virtual IP, so a failed add
      // leaves nothing behind.
      store::load_balancers::Delete(c, balancer->id);
      store::ips::Release(c, balancer->vip_id);
      return;
    }
    if (command_ == job_command::kUpdateLoadBalancer && job.payload.contains("previous_members")) {
      // The engine still runs the old pool; the database says so again.
      balancer->members.clear();
      for (const auto& member : job.payload["previous_members"]) {
        balancer->members.push_back(
            domain::LoadBalancerMember{member[0].get<int64_t>(), member[1].get<int>()});
      }
    }
    balancer->deleting = false;
    balancer->updated_ms = now;
    store::load_balancers::Update(c, *balancer);
  }

 private:
  int64_t command_;
  store::Database& db_;
  lb::LoadBalancerEngine& engine_;
  const Clock& clock_;
};

}  // namespace

std::vector<lb::BalancerSpec> DesiredBalancers(store::Connection& c) {
  std::vector<lb::BalancerSpec> out;
  for (const auto& balancer : store::load_balancers::ListAll(c)) {
    if (balancer.deleting) continue;
    lb::BalancerSpec spec;
    spec.id = balancer.id;
    auto vip = store::ips::Get(c, balancer.account_id, balancer.vip_id);
    if (!vip) continue;
    spec.vip = vip->address;
    spec.port = static_cast<uint16_t>(balancer.port);
    spec.algorithm = balancer.type == 2 ? lb::Algorithm::kLeastConnections
                                        : lb::Algorithm::kRoundRobin;
    spec.persistence = balancer.persistence == 2   ? lb::Persistence::kSslSticky
                       : balancer.persistence == 3 ? lb::Persistence::kSourceAddress
                                                   : lb::Persistence::kNone;
    for (const auto& member : balancer.members) {
      auto ip = store::ips::Get(c, balancer.account_id, member.ip_id);
      if (ip) spec.backends.push_back(lb::Backend{ip->address, static_cast<uint16_t>(member.port)});
    }
    out.push_back(std::move(spec));
  }
  return out;
}

void RegisterLoadBalancerJobs(JobRunner& runner, store::Database& db,
                              lb::LoadBalancerEngine& engine, const Clock& clock) {
  for (int64_t command : {job_command::kCreateLoadBalancer, job_command::kUpdateLoadBalancer,
                          job_command::kDeleteLoadBalancer}) {
    runner.Register(command,
                    std::make_shared<LoadBalancerJobHandler>(command, db, engine, clock));
  }
}

LoadBalancerMonitor::LoadBalancerMonitor(store::Database& db, lb::LoadBalancerEngine& engine,
                                         const Clock& clock, std::chrono::milliseconds interval)
    : db_(db), engine_(engine), clock_(clock), interval_(interval) {}

LoadBalancerMonitor::~LoadBalancerMonitor() { Stop(); }

void LoadBalancerMonitor::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      try {
        Poll();
      } catch (const std::exception& error) {
        spdlog::warn("load balancers: status poll failed: {}", error.what());
      }
      lock.lock();
      wake_.wait_for(lock, interval_, [this] { return stopping_; });
    }
  });
}

void LoadBalancerMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LoadBalancerMonitor::Poll() {
  auto statuses = engine_.Status();
  const bool engine_running = engine_.running();
  db_.Write([&](store::Connection& c) {
    const int64_t now = clock_.NowMs();
    for (const auto& balancer : store::load_balancers::ListAll(c)) {
      // Traffic is metered for billing whatever the balancer's state: bytes served are billed.
      if (auto it = statuses.find(balancer.id); it != statuses.end()) {
        store::usage::RecordBalancerCounters(c, balancer.account_id, balancer.id,
                                             balancer.created_ms, it->second.bytes_in,
                                             it->second.bytes_out, now);
      }
      if (balancer.deleting ||
          store::jobs::HasPending(c, domain::job_object_type::kLoadBalancer, balancer.id)) {
        continue;
      }
      int64_t state = kStateUnknown;
      if (engine_running) {
        auto it = statuses.find(balancer.id);
        if (it != statuses.end()) state = StateFor(it->second);
      }
      store::load_balancers::SetState(c, balancer.id, state, now);
    }
  });
}

}  // namespace gridd::jobs
