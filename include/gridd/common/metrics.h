// gridd's metrics: counters, gauges and histograms with labels, rendered in the Prometheus
// text exposition format (version 0.0.4) by the daemon's /metrics listener.
//
// Every layer records into the process-wide registry (Default()); the metrics several layers
// share are declared once below, so their names, help texts and labels cannot drift apart.
// All methods are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace gridd::metrics {

// Label values in the order of the family's label names.
using LabelValues = std::vector<std::string>;

class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names);
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  const std::string& name() const { return name_; }
  // Appends "# HELP", "# TYPE" and every sample to `out`.
  virtual void Render(std::string& out) const = 0;

 protected:
  // Throws std::invalid_argument when the number of values does not match the label names.
  void CheckArity(const LabelValues& values) const;
  // `{a="x",b="y"}` with escaped values, plus `extra` (e.g. le="0.5") when given.
  std::string LabelText(const LabelValues& values, std::string_view extra = {}) const;
  void RenderHeader(std::string& out, std::string_view type) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
};

class CounterFamily : public Family {
 public:
  using Family::Family;
  void Increment(const LabelValues& values, double by = 1);
  double Value(const LabelValues& values) const;  // 0 when never incremented
  void Render(std::string& out) const override;

 private:
  std::map<LabelValues, double> values_;
};

class GaugeFamily : public Family {
 public:
  using Family::Family;
  void Set(const LabelValues& values, double value);
  // Replaces every sample at once, so label sets that disappeared (a deleted pool) go away.
  void Replace(std::map<LabelValues, double> samples);
  double Value(const LabelValues& values) const;
  void Render(std::string& out) const override;

 private:
  std::map<LabelValues, double> values_;
};

class HistogramFamily : public Family {
 public:
  // `bounds` are the upper bounds of the buckets, increasing; +Inf is implied.
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);
  void Observe(const LabelValues& values, double value);
  uint64_t Count(const LabelValues& values) const;
  void Render(std::string& out) const override;

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // not cumulative; one per bound, plus +Inf
    uint64_t count = 0;
    double sum = 0;
  };
  std::vector<double> bounds_;
  std::map<LabelValues, Series> series_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Each returns the family of that name, creating it on first use; asking again with another
  // type throws std::logic_error. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*.
  CounterFamily& Counter(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& Gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> label_names = {});
  HistogramFamily& Histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names, std::vector<double> bounds);

  // Every family in the text exposition format, ordered by name.
  std::string Render() const;

 private:
  template <typename T, typename... Args>
  T& GetOrCreate(const std::string& name, Args&&... args);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>> families_;
};

// The process-wide registry /metrics serves.
Registry& Default();

// The content type of Registry::Render's output.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Bucket bounds (seconds) for API requests and for jobs.
const std::vector<double>& RequestSecondsBounds();
const std::vector<double>& JobSecondsBounds();

// ---- Metrics recorded by more than one place, or by code on other branches. Each returns a
// family of Default().

// gridd_api_requests_total{method,status}: API requests answered, by GoGrid method and HTTP
// status.
CounterFamily& ApiRequests();
// gridd_api_request_duration_seconds{method}: from the first byte of a request to its answer.
HistogramFamily& ApiRequestSeconds();
// gridd_jobs_finished_total{command,state}: jobs that reached a final state.
CounterFamily& JobsFinished();
// gridd_job_duration_seconds{command}: from a job's creation to its final state.
HistogramFamily& JobSeconds();
// gridd_job_retries_total{command}: attempts that failed transiently and were queued again.
CounterFamily& JobRetries();
// gridd_lb_engine_reloads_total{result}: configurations applied to the load-balancing engine
// (result "success" or "failure").
CounterFamily& LbEngineReloads();
// gridd_lb_engine_restarts_total: times the supervisor restarted a dead engine.
CounterFamily& LbEngineRestarts();
// gridd_reconciler_repairs_total{kind}: drift between the database and a hypervisor that the
// reconciler repaired, by kind of repair (e.g. "domain_recreated", "state_corrected").
CounterFamily& ReconcilerRepairs();

// Creates the families above, so that /metrics announces them before their first sample.
void CreateSharedFamilies();

}  // namespace gridd::metrics
