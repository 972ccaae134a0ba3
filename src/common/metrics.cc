#include "gridd/common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace gridd::metrics {
namespace {

bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

void AppendNumber(std::string& out, double value, bool fixed = false) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buffer[32];
    // Bucket bounds read better as 0.0005 than as 5e-04.
    auto [end, ec] =
        fixed ? std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed)
              : std::to_chars(buffer, buffer + sizeof(buffer), value);
    out.append(buffer, ec == std::errc() ? end : buffer);
  }
}

// Label values escape backslash, double quote and newline; help texts backslash and newline.
void AppendEscaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

}  // namespace

Family::Family(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  if (!ValidName(name_, true)) throw std::invalid_argument("invalid metric name '" + name_ + "'");
  for (const auto& label : label_names_) {
    if (!ValidName(label, false) || label.rfind("__", 0) == 0 || label == "le") {
      throw std::invalid_argument("invalid label name '" + label + "' on " + name_);
    }
  }
}

void Family::CheckArity(const LabelValues& values) const {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument(name_ + " takes " + std::to_string(label_names_.size()) +
                                " label value(s), got " + std::to_string(values.size()));
  }
}

std::string Family::LabelText(const LabelValues& values, std::string_view extra) const {
  if (values.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += label_names_[i];
    out += "=\"";
    AppendEscaped(out, values[i], true);
    out += '"';
  }
  if (!extra.empty()) {
    if (!values.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void Family::RenderHeader(std::string& out, std::string_view type) const {
  out += "# HELP " + name_ + " ";
  AppendEscaped(out, help_, false);
  out += "\n# TYPE " + name_ + " ";
  out += type;
  out += '\n';
}

void CounterFamily::Increment(const LabelValues& values, double by) {
  CheckArity(values);
  if (by < 0) throw std::invalid_argument(name_ + ": a counter cannot decrease");
  std::lock_guard lock(mutex_);
  values_[values] += by;
}

double CounterFamily::Value(const LabelValues& values) const {
  std::lock_guard lock(mutex_);
  auto it = values_.find(values);
  return it == values_.end() ? 0 : it->second;
}

void CounterFamily::Render(std::string& out) const {
  std::lock_guard lock(mutex_);
  // Every family is announced; an unlabelled counter starts at 0, a labelled one has samples
  // once a label set was seen.
  RenderHeader(out, "counter");
  if (values_.empty() && label_names_.empty()) {
    out += name_ + " 0\n";
    return;
  }
  for (const auto& [labels, value] : values_) {
    out += name_ + LabelText(labels) + ' ';
    AppendNumber(out, value);
    out += '\n';
  }
}

void GaugeFamily::Set(const LabelValues& values, double value) {
  CheckArity(values);
  std::lock_guard lock(mutex_);
  values_[values] = value;
}

void GaugeFamily::Replace(std::map<LabelValues, double> samples) {
  for (const auto& [labels, value] : samples) CheckArity(labels);
  std::lock_guard lock(mutex_);
  values_ = std::move(samples);
}

double GaugeFamily::Value(const LabelValues& values) const {
  std::lock_guard lock(mutex_);
  auto it = values_.find(values);
  return it == values_.end() ? 0 : it->second;
}

void GaugeFamily::Render(std::string& out) const {
  std::lock_guard lock(mutex_);
  RenderHeader(out, "gauge");
  for (const auto& [labels, value] : values_) {
    out += name_ + LabelText(labels) + ' ';
    AppendNumber(out, value);
    out += '\n';
  }
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names, std::vector<double> bounds)
    : Family(std::move(name), std::move(help), std::move(label_names)), bounds_(std::move(bounds)) {
  if (bounds_.empty() || !std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end()) {
    throw std::invalid_argument(name_ + ": bucket bounds must be strictly increasing");
  }
}

void HistogramFamily::Observe(const LabelValues& values, double value) {
  CheckArity(values);
  std::lock_guard lock(mutex_);
  Series& series = series_[values];
  if (series.buckets.empty()) series.buckets.assign(bounds_.size() + 1, 0);
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++series.buckets[bucket];
  ++series.count;
  series.sum += value;
}

uint64_t HistogramFamily::Count(const LabelValues& values) const {
  std::lock_guard lock(mutex_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second.count;
}

void HistogramFamily::Render(std::string& out) const {
  std::lock_guard lock(mutex_);
  RenderHeader(out, "histogram");
  for (const auto& [labels, series] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += series.buckets[i];
      std::string le = "le=\"";
      if (i < bounds_.size()) {
        AppendNumber(le, bounds_[i], /*fixed=*/true);
      } else {
        le += "+Inf";
      }
      le += '"';
      out += name_ + "_bucket" + LabelText(labels, le) + ' ' + std::to_string(cumulative) + '\n';
    }
    out += name_ + "_sum" + LabelText(labels) + ' ';
    AppendNumber(out, series.sum);
    out += '\n';
    out += name_ + "_count" + LabelText(labels) + ' ' + std::to_string(series.count) + '\n';
  }
}

template <typename T, typename... Args>
T& Registry::GetOrCreate(const std::string& name, Args&&... args) {
  std::lock_guard lock(mutex_);
  const auto found = families_.find(name);
  const auto it = found != families_.end()
                      ? found
                      : families_.emplace(name, std::make_unique<T>(name, std::forward<Args>(args)...)).first;
  auto* family = dynamic_cast<T*>(it->second.get());
  if (family == nullptr) throw std::logic_error("metric " + name + " exists with another type");
  return *family;
}

CounterFamily& Registry::Counter(const std::string& name, const std::string& help,
                                 std::vector<std::string> label_names) {
  return GetOrCreate<CounterFamily>(name, help, std::move(label_names));
}

GaugeFamily& Registry::Gauge(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names) {
  return GetOrCreate<GaugeFamily>(name, help, std::move(label_names));
}

HistogramFamily& Registry::Histogram(const std::string& name, const std::string& help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> bounds) {
  return GetOrCreate<HistogramFamily>(name, help, std::move(label_names), std::move(bounds));
}

std::string Registry::Render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, family] : families_) family->Render(out);
  return out;
}

Registry& Default() {
  static Registry* registry = new Registry();  // never destroyed: threads may record at exit
  return *registry;
}

const std::vector<double>& RequestSecondsBounds() {
  static const std::vector<double> bounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return bounds;
}

const std::vector<double>& JobSecondsBounds() {
  static const std::vector<double> bounds = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
                                             10,   30,  60,   120, 300, 600, 1800};
  return bounds;
}

CounterFamily& ApiRequests() {
  static CounterFamily& family = Default().Counter(
      "gridd_api_requests_total", "API requests answered, by GoGrid method and HTTP status.",
      {"method", "status"});
  return family;
}

HistogramFamily& ApiRequestSeconds() {
  static HistogramFamily& family =
      Default().Histogram("gridd_api_request_duration_seconds",
                          "Time from the start of an API request to its answer, by GoGrid method.",
                          {"method"}, RequestSecondsBounds());
  return family;
}

CounterFamily& JobsFinished() {
  static CounterFamily& family = Default().Counter(
      "gridd_jobs_finished_total", "Jobs that reached a final state, by command and state.",
      {"command", "state"});
  return family;
}

HistogramFamily& JobSeconds() {
  static HistogramFamily& family = Default().Histogram(
      "gridd_job_duration_seconds", "Time from a job's creation to its final state, by command.",
      {"command"}, JobSecondsBounds());
  return family;
}

CounterFamily& JobRetries() {
  static CounterFamily& family =
      Default().Counter("gridd_job_retries_total",
                        "Job attempts that failed transiently and were queued again.", {"command"});
  return family;
}

CounterFamily& LbEngineReloads() {
  static CounterFamily& family = Default().Counter(
      "gridd_lb_engine_reloads_total",
      "New configurations applied to the load-balancing engine, by result.", {"result"});
  return family;
}

CounterFamily& LbEngineRestarts() {
  static CounterFamily& family =
      Default().Counter("gridd_lb_engine_restarts_total",
                        "Times the supervisor restarted a dead load-balancing engine.");
  return family;
}

CounterFamily& ReconcilerRepairs() {
  static CounterFamily& family = Default().Counter(
      "gridd_reconciler_repairs_total",
      "Differences between the database and a hypervisor that the reconciler repaired, by kind.",
      {"kind"});
  return family;
}

void CreateSharedFamilies() {
  ApiRequests();
  ApiRequestSeconds();
  JobsFinished();
  JobSeconds();
  JobRetries();
  LbEngineReloads();
  LbEngineRestarts();
  ReconcilerRepairs();
}

}  // namespace gridd::metrics
