#include "gridd/jobs/reconciler.h"

#include <spdlog/spdlog.h>

#include <map>
#include <optional>
#include <set>

#include "gridd/common/metrics.h"
#include "gridd/domain/lookups.h"
#include "gridd/jobs/load_balancer_jobs.h"
#include "gridd/jobs/server_jobs.h"
#include "gridd/store/repositories.h"

namespace gridd::jobs {
namespace {

namespace server_state = domain::server_state;
namespace job_command = domain::job_command;
namespace job_object_type = domain::job_object_type;

bool Running(virt::PowerState state) {
  return state == virt::PowerState::kRunning || state == virt::PowerState::kPaused;
}

domain::Job RepairJob(const domain::Server& server, int64_t object_type, int64_t command,
                      const std::string& finding) {
  domain::Job job;
  job.account_id = server.account_id;
  job.object_type = object_type;
  job.object_id = server.id;
  job.object_name = server.name;
  job.command = command;
  job.owner = "gridd reconciler";
  job.detail["type"] = "virtual_server";
  job.detail["name"] = server.name;
  job.detail["finding"] = finding;
  job.payload["finding"] = finding;
  return job;
}

}  // namespace

nlohmann::ordered_json ReconcileReport::ToJson() const {
  nlohmann::ordered_json out{
      {"finished_ms", finished_ms}, {"domains", domains}, {"servers", servers}};
  out["findings"] = nlohmann::ordered_json::array();
  for (const auto& finding : findings) {
    out["findings"].push_back(nlohmann::ordered_json{{"kind", finding.kind},
                                                     {"object", finding.object},
                                                     {"detail", finding.detail},
                                                     {"action", finding.action}});
  }
  return out;
}

Reconciler::Reconciler(store::Database& db, HostRegistry& hosts, lb::LoadBalancerEngine* engine,
                       const Clock& clock, std::function<void()> on_job_queued,
                       ReconcilerOptions options)
    : db_(db),
      hosts_(hosts),
      engine_(engine),
      clock_(clock),
      on_job_queued_(std::move(on_job_queued)),
      options_(options) {}

Reconciler::~Reconciler() { Stop(); }

bool Reconciler::ReconcileHost(const domain::Host& host, virt::Hypervisor& hypervisor,
                               bool retry_failed_repairs, ReconcileReport& report) {
  const auto domains = hypervisor.ListGriddDomains();
  report.domains += static_cast<int>(domains.size());
  std::map<std::string, virt::GriddDomain> by_name;
  for (const auto& domain : domains) by_name[domain.name] = domain;

  // The servers to compare: those placed on the host, and those its domains name (a copy left
  // from before an evacuation, or an orphan). A volatile host (libvirt's test driver) builds a
  // server's domain when something first acts on it (HostRegistry::ForServer), so only the
  // servers it has materialised are compared: one it has not built yet is no drift, and the
  // pass costs what the host holds, not what the database holds.
  const bool placed_here_too = !hosts_.MaterialisesOnDemand(hypervisor);
  const bool default_host = hosts_.DefaultHostId() == host.id;
  const auto servers = db_.Read([&](store::Connection& c) {
    std::map<int64_t, domain::Server> out;
    if (placed_here_too) {
      for (auto& server : store::servers::ListOnHost(c, host.id)) out.emplace(server.id, server);
      // Rows written before placement run on the default host.
      if (default_host) {
        for (auto& server : store::servers::ListUnplaced(c)) out.emplace(server.id, server);
      }
    }
    for (const auto& domain : domains) {
      if (out.count(domain.server_id) != 0) continue;
      if (auto server = store::servers::GetAny(c, domain.server_id)) {
        out.emplace(server->id, *server);
      }
    }
    return out;
  });
  report.servers += static_cast<int>(servers.size());

  bool queued = false;
  for (const auto& entry : servers) {
    // A plain reference, not a structured binding: the repair's lambda below captures it.
    const domain::Server& observed = entry.second;
    if (hosts_.HostOf(observed) != host.id) continue;  // another host's
    const std::string name = DomainName(observed.id);
    auto it = by_name.find(name);
    std::string finding;
    std::string kind;
    if (it == by_name.end()) {
      kind = "missing-domain";
      finding = "domain " + name + " missing on host " + host.name + " (" + hypervisor.uri() + ")";
    } else if (observed.state == server_state::kOn && !Running(it->second.state)) {
      kind = "power-drift";
      finding = std::string("hypervisor shows ") + virt::PowerStateName(it->second.state) +
                "; gridd had On";
    } else if (observed.state == server_state::kOff && Running(it->second.state)) {
      kind = "power-drift";
      finding = std::string("hypervisor shows ") + virt::PowerStateName(it->second.state) +
                "; gridd had Off";
    } else {
      continue;
    }
    // Decided again inside the write: a request or job may have changed the server since.
    std::optional<int64_t> failed_repair;
    auto job_id = db_.Write([&](store::Connection& c) -> std::optional<int64_t> {
      auto server = store::servers::GetAny(c, observed.id);
      if (!server || server->deleting || server->state != observed.state ||
          store::jobs::HasPending(c, job_object_type::kVirtualServer, server->id)) {
        return std::nullopt;
      }
      // A repair that failed is not queued again every pass: the operator reads its message,
      // fixes the cause and runs gridctl reconcile (or the customer's next request repairs it).
      auto newest = store::jobs::Newest(c, job_object_type::kVirtualServer, server->id);
      if (!retry_failed_repairs && newest &&
          newest->command == job_command::kReconcileVirtualServer &&
          newest->state == domain::job_state::kFailed) {
        failed_repair = newest->id;
        return std::nullopt;
      }
      auto ip = store::ips::Get(c, server->account_id, server->ip_id);
      domain::Job job = RepairJob(*server, job_object_type::kVirtualServer,
                                  job_command::kReconcileVirtualServer, finding);
      if (ip) job.datacenter_id = ip->datacenter_id;
      job.payload["start"] = kind == "missing-domain" && server->state == server_state::kOn;
      return store::jobs::Insert(c, job, clock_.NowMs());
    });
    if (failed_repair) {
      report.findings.push_back(
          {kind, "server " + std::to_string(observed.id), finding,
           "left alone: repair job " + std::to_string(*failed_repair) + " failed"});
    }
    if (!job_id) continue;
    queued = true;
    report.findings.push_back({kind, "server " + std::to_string(observed.id), finding,
                               "job " + std::to_string(*job_id) + " queued"});
    spdlog::warn("reconcile: server {} ({}): {}; job {} repairs it", observed.id, observed.name,
                 finding, *job_id);
  }

  // Orphans: listed twice around the database read, so a domain that a delete job removed
  // meanwhile (its row goes in the same commit as the job) is not mistaken for one.
  std::set<std::string> still_there;
  for (const auto& domain : hypervisor.ListGriddDomains()) still_there.insert(domain.name);
  for (const auto& domain : domains) {
    auto placed = servers.find(domain.server_id);
    if (placed != servers.end() && hosts_.HostOf(placed->second) != host.id &&
        still_there.count(domain.name) != 0) {
      // Decided again on fresh rows: the server may have moved here since the snapshot, and a
      // job under way (an evacuation building this very domain) owns it.
      const bool elsewhere_now = db_.Read([&](store::Connection& c) {
        auto server = store::servers::GetAny(c, domain.server_id);
        return server && hosts_.HostOf(*server) != host.id &&
               !store::jobs::HasPending(c, job_object_type::kVirtualServer, server->id);
      });
      if (!elsewhere_now) continue;
      // The server lives on another host now (evacuated while this one was Down): this copy
      // must not run beside it with the same address. Its disk goes too, unless it is the very
      // disk the other host uses (shared storage).
      ReconcileFinding finding{"stale-domain", "domain " + domain.name,
                               "server " + std::to_string(domain.server_id) +
                                   " runs on another host; this copy on host " + host.name +
                                   " is left from before an evacuation",
                               "removed"};
      try {
        hypervisor.UndefineDomain(domain.name);
        if (!host.shared_storage) {
          const auto facts = db_.Read([&](store::Connection& c) {
            return store::images::GetAny(c, placed->second.image_id);
          });
          if (facts) hypervisor.DeleteDisk(facts->storage_pool, DiskVolume(domain.server_id));
        }
      } catch (const std::exception& error) {
        finding.action = std::string("removal failed: ") + error.what();
      }
      spdlog::warn("reconcile: {} {}: {}", finding.object, finding.action, finding.detail);
      report.findings.push_back(std::move(finding));
      continue;
    }
    if (placed != servers.end() || still_there.count(domain.name) == 0) continue;
    const bool exists_now = db_.Read([&](store::Connection& c) {
      return store::servers::GetAny(c, domain.server_id).has_value();
    });
    if (exists_now) continue;
    ReconcileFinding finding{
        "orphan-domain", "domain " + domain.name,
        "carries gridd metadata for server " + std::to_string(domain.server_id) + " (account " +
            std::to_string(domain.account_id) + ") but gridd has no such server",
        "reported"};
    if (options_.remove_orphans) {
      try {
        hypervisor.UndefineDomain(domain.name);
        finding.action = "removed";
      } catch (const std::exception& error) {
        finding.action = std::string("removal failed: ") + error.what();
      }
    }
    spdlog::warn("reconcile: {} {}: {}", finding.object, finding.action, finding.detail);
    report.findings.push_back(std::move(finding));
  }
  return queued;
}

ReconcileReport Reconciler::RunOnce(bool retry_failed_repairs) {
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  ReconcileReport report;
  // Hosts that did not answer when gridd connected are tried again; the booked capacity is
  // counted again from the servers table, correcting any drift.
  hosts_.RetryUnreachable();
  if (hosts_.scheduler() != nullptr) hosts_.RecountUse();
  bool queued = false;
  for (const auto& host : hosts_.AllHosts()) {
    if (host.hypervisor == nullptr || host.host.state != domain::host_state::kUp) continue;
    try {
      queued |= ReconcileHost(host.host, *host.hypervisor, retry_failed_repairs, report);
    } catch (const std::exception& error) {
      report.findings.push_back(
          {"host-unreachable", "host " + host.host.name, error.what(), "reported"});
      spdlog::error("reconcile: host {}: {}", host.host.name, error.what());
    }
  }

  // Load balancers: the engine must carry every balancer the database has (not being deleted).
  if (engine_ != nullptr) {
    std::set<int64_t> installed;
    for (const auto& [id, status] : engine_->Status()) installed.insert(id);
    const auto desired = db_.Read([](store::Connection& c) { return DesiredBalancers(c); });
    for (const auto& spec : desired) {
      if (installed.count(spec.id) != 0) continue;
      auto job_id = db_.Write([&](store::Connection& c) -> std::optional<int64_t> {
        auto balancer = store::load_balancers::GetAny(c, spec.id);
        if (!balancer || balancer->deleting ||
            store::jobs::HasPending(c, job_object_type::kLoadBalancer, spec.id)) {
          return std::nullopt;
        }
        // A balancer whose last change failed (e.g. HAProxy refused it) is not carried on
        // purpose; that job's message says why.
        auto newest = store::jobs::Newest(c, job_object_type::kLoadBalancer, spec.id);
        if (!retry_failed_repairs && newest && newest->state == domain::job_state::kFailed) {
          return std::nullopt;
        }
        domain::Job job;
        job.account_id = balancer->account_id;
        job.object_type = job_object_type::kLoadBalancer;
        job.object_id = balancer->id;
        job.object_name = balancer->name;
        job.command = job_command::kUpdateLoadBalancer;
        job.owner = "gridd reconciler";
        job.detail["type"] = "load_balancer";
        job.detail["name"] = balancer->name;
        job.detail["finding"] = "not carried by the load-balancing engine";
        return store::jobs::Insert(c, job, clock_.NowMs());
      });
      if (!job_id) continue;
      queued = true;
      report.findings.push_back({"balancer-missing", "load balancer " + std::to_string(spec.id),
                                 "not carried by the load-balancing engine",
                                 "job " + std::to_string(*job_id) + " queued"});
      spdlog::warn("reconcile: load balancer {} not carried by the engine; job {} applies it",
                   spec.id, *job_id);
    }
  }

  // Trashed images past their retention: not drift, but the same periodic pass queues it.
  if (options_.image_trash_retention_ms > 0 &&
      QueueTrashPurges(db_, clock_, options_.image_trash_retention_ms) > 0) {
    queued = true;
  }

  if (queued && on_job_queued_) on_job_queued_();
  for (const auto& finding : report.findings) {
    // Label values from gridd's own vocabulary only (docs/architecture.md, metrics).
    if (finding.kind == "host-unreachable") continue;  // nothing repaired
    const char* kind = finding.kind == "missing-domain" ? "domain_recreated"
                       : finding.kind == "power-drift"  ? "state_corrected"
                       : finding.kind == "stale-domain" ? "stale_copy_removed"
                       : finding.kind == "orphan-domain"
                           ? (finding.action == "removed" ? "orphan_removed" : "orphan_reported")
                           : "balancer_reapplied";
    if (finding.action.rfind("left alone", 0) == 0) continue;  // counted when it was queued
    metrics::ReconcilerRepairs().Increment({kind});
  }
  report.finished_ms = clock_.NowMs();
  std::lock_guard<std::mutex> lock(mutex_);
  last_ = report;
  return report;
}

ReconcileReport Reconciler::LastReport() {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_;
}

void Reconciler::Start(std::chrono::seconds interval) {
  if (interval.count() <= 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = false;
  thread_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, interval, [&] { return stopping_; })) {
      lock.unlock();
      try {
        RunOnce();
      } catch (const std::exception& error) {
        spdlog::error("reconcile: {}", error.what());
      }
      lock.lock();
    }
  });
}

void Reconciler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace gridd::jobs
