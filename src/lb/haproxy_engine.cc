// HAProxy in master-worker mode, run and supervised as a child of gridd.
//
// The master (-W) binds the listeners and forks one worker that carries traffic. A reload makes
// the master re-execute itself with the new haproxy.cfg and fork a new worker; the listening
// sockets pass from old to new, so no connection attempt is refused, and old workers keep the
// connections they hold until those end. haproxy 2.6's master exits when its current worker
// dies (exit-on-failure) and its workers exit when the master dies, so "any haproxy process was
// killed" always ends with the master gone: the supervisor only needs to restart the master.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "gridd/common/metrics.h"
#include "gridd/lb/engine.h"
#include "lb/haproxy_cli.h"
#include "lb/haproxy_config.h"
#include "gridd/common/process.h"

namespace gridd::lb {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A master that lived this long before dying counts as having run fine: its restart is
// immediate and the backoff starts over.
constexpr auto kStableAfter = std::chrono::seconds(10);
constexpr auto kMaxBackoff = std::chrono::seconds(30);
constexpr auto kPollPause = milliseconds(20);
constexpr auto kCliTimeout = milliseconds(1000);
constexpr auto kCheckTimeout = milliseconds(30000);
constexpr auto kStopGrace = milliseconds(5000);
constexpr uintmax_t kMaxLogBytes = 16u << 20;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Writes next to the target and renames, so haproxy never reads a half-written file.
void WriteFileAtomically(const fs::path& path, const std::string& text) {
  const fs::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw EngineError("cannot write " + temp.string());
  }
  std::error_code error;
  fs::rename(temp, path, error);
  if (error) throw EngineError("cannot install " + path.string() + ": " + error.message());
}

uintmax_t FileSize(const fs::path& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  return error ? 0 : size;
}

std::string ReadFrom(const fs::path& path, uintmax_t offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uintmax_t>(std::max<std::streamoff>(in.tellg(), 0));
  if (offset > size) offset = 0;  // rotated or truncated meanwhile
  offset = std::max(offset, size > (64u << 10) ? size - (64u << 10) : 0);
  in.seekg(static_cast<std::streamoff>(offset));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// haproxy's own explanation: its ALERT lines, else whatever it said except notices. With a pid,
// only that process's lines count (the log interleaves the master's and the workers' lines,
// and workers report every backend that goes down).
std::string HaproxyMessage(const std::string& output, pid_t pid = 0) {
  const std::string tag = "(" + std::to_string(pid) + ")";
  std::vector<std::string> alerts, others;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.empty()) continue;
    if (pid > 0 && line.find(tag) == std::string::npos) continue;
    if (line.find("[ALERT]") != std::string::npos) {
      alerts.push_back(line);
    } else if (line.find("[NOTICE]") == std::string::npos) {
      others.push_back(line);
    }
  }
  const auto& chosen = alerts.empty() ? others : alerts;
  std::string message;
  for (const auto& line : chosen) message += (message.empty() ? "" : "\n") + line;
  return message.empty() ? "(no output)" : message;
}

bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
}

class HaproxyEngine final : public LoadBalancerEngine {
 public:
  explicit HaproxyEngine(HaproxyOptions options)
      : options_(std::move(options)),
        config_path_(options_.run_dir / "haproxy.cfg"),
        candidate_path_(options_.run_dir / "haproxy.cfg.new"),
        master_socket_(options_.run_dir / "master.sock"),
        stats_socket_(options_.run_dir / "stats.sock"),
        pid_path_(options_.run_dir / "haproxy.pid"),
        log_path_(options_.run_dir / "haproxy.log") {}

  ~HaproxyEngine() override { Stop(); }

  void Start() override {
    std::lock_guard lock(mu_);
    if (started_) return;
    // Checked first so that a missing binary is not mistaken for a bad stored configuration.
    if (access(options_.binary.c_str(), X_OK) != 0) {
      throw EngineError("cannot run " + options_.binary + ": " + std::strerror(errno));
    }
    PrepareRunDir();
    StopStaleMaster();
    const std::string empty = RenderHaproxyConfig({}, options_);
    if (installed_config_.empty() && fs::exists(config_path_)) {
      // Continue with what the last run installed, so traffic resumes before gridd has
      // re-read its database; the caller's next Apply makes it exact.
      std::string previous = ReadFile(config_path_);
      try {
        Validate(previous);
        installed_config_ = std::move(previous);
      } catch (const EngineError& error) {
        spdlog::warn("haproxy: ignoring the configuration left in {}: {}", config_path_.string(),
                     error.what());
      }
    }
    if (installed_config_.empty()) {
      WriteFileAtomically(config_path_, empty);
      installed_config_ = empty;
    }
    try {
      LaunchLocked();
    } catch (const EngineError& error) {
      if (installed_config_ == empty) throw;
      // A balancer of the stored set cannot run (its VIP is gone, say); serve none rather than
      // keep the engine down. The caller's Apply reports the precise cause.
      spdlog::error("haproxy: cannot start with the installed configuration, starting empty: {}",
                    error.what());
      WriteFileAtomically(config_path_, empty);
      installed_config_ = empty;
      LaunchLocked();
    }
    started_ = true;
    stopping_ = false;
    restart_failures_ = 0;
    supervisor_ = std::thread([this] { Supervise(); });
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      if (!started_ || stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    if (supervisor_.joinable()) supervisor_.join();
    std::lock_guard lock(mu_);
    if (master_pid_ > 0) {
      TerminateChild(master_pid_, kStopGrace);
      spdlog::info("haproxy: master {} stopped", master_pid_);
    }
    master_pid_ = -1;
    started_ = false;
    stopping_ = false;
  }

  void Apply(const std::vector<BalancerSpec>& balancers) override {
    const std::string config = RenderHaproxyConfig(balancers, options_);
    std::lock_guard lock(mu_);
    const bool alive = started_ && MasterAliveLocked();
    if (config == installed_config_ && (alive || !started_)) return;

    if (!started_) PrepareRunDir();
    try {
      Validate(config);
    } catch (const EngineError&) {
      metrics::LbEngineReloads().Increment({"failure"});  // HAProxy rejected the configuration
      throw;
    }
    // Before Start nothing is bound yet and Start has its own fallback for endpoints that
    // cannot be bound; afterwards a new endpoint that cannot be bound is refused here, before
    // a reload that would pause every balancer while HAProxy retries the bind.
    if (started_) {
      CheckVirtualIpsBindable(balancers, alive ? BindEndpointsInConfig(installed_config_)
                                               : std::set<std::string>{});
    }
    const std::string previous = installed_config_;
    WriteFileAtomically(config_path_, config);
    installed_config_ = config;
    if (!started_) return;

    try {
      if (alive) {
        ReloadLocked();
      } else {
        LaunchLocked();
      }
      metrics::LbEngineReloads().Increment({"success"});
      spdlog::info("haproxy: configuration with {} balancer(s) installed", balancers.size());
    } catch (const EngineError& error) {
      metrics::LbEngineReloads().Increment({"failure"});
      // Put the previous configuration back so that it keeps serving, and so that the next
      // Apply of the rejected set tries again instead of believing it is installed.
      spdlog::error("haproxy: new configuration failed, restoring the previous one: {}",
                    error.what());
      RestoreLocked(previous);
      throw;
    }
  }

  std::map<int64_t, BalancerStatus> Status() override {
    std::set<int64_t> ids;
    bool alive = false;
    {
      std::lock_guard lock(mu_);
      ids = BalancerIdsInConfig(installed_config_);
      alive = started_ && MasterAliveLocked();
    }
    std::map<int64_t, BalancerStatus> out;
    if (!alive) {
      for (int64_t id : ids) out[id].health = BalancerHealth::kEngineDown;
      return out;
    }
    try {
      return SummarizeStats(ParseShowStat(CliCommand(stats_socket_, "show stat", kCliTimeout)),
                            ids);
    } catch (const EngineError& error) {
      // Alive but not answering: typically the moment a reload swaps workers.
      spdlog::debug("haproxy: show stat: {}", error.what());
      for (int64_t id : ids) out[id];
      return out;
    }
  }

  bool running() const override {
    std::lock_guard lock(mu_);
    return started_ && MasterAliveLocked();
  }

 private:
  void PrepareRunDir() {
    std::error_code error;
    fs::create_directories(options_.run_dir, error);
    if (error) {
      throw EngineError("cannot create " + options_.run_dir.string() + ": " + error.message());
    }
    // -S takes "<path>[,<option>,...]".
    if (master_socket_.string().find(',') != std::string::npos) {
      throw EngineError("the haproxy run directory must not contain ',': " +
                        options_.run_dir.string());
    }
  }

  // A master recorded in our pid file that still runs was started by an earlier gridd that
  // died without stopping it. It would keep serving its configuration on the same ports (they
  // are bound with SO_REUSEPORT), so it goes.
  void StopStaleMaster() {
    std::ifstream in(pid_path_);
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 1 || ProcessGone(pid)) return;
    const std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    const std::string mark = std::string(1, '\0') + master_socket_.string() + ",mode,600";
    if (cmdline.find(mark) == std::string::npos) return;  // the pid now belongs to someone else
    spdlog::warn("haproxy: stopping master {} left over from an earlier run", pid);
    kill(pid, SIGTERM);
    const auto deadline = Clock::now() + kStopGrace;
    while (!ProcessGone(pid) && Clock::now() < deadline) std::this_thread::sleep_for(kPollPause);
    if (!ProcessGone(pid)) kill(pid, SIGKILL);
  }

  // Runs `haproxy -c` on the text; throws EngineError with haproxy's alerts if it refuses.
  void Validate(const std::string& config) {
    WriteFileAtomically(candidate_path_, config);
    CommandResult result;
    try {
      result = RunCommand({options_.binary, "-c", "-f", candidate_path_.string()}, kCheckTimeout);
    } catch (...) {
      fs::remove(candidate_path_);
      throw;
    }
    fs::remove(candidate_path_);
    if (result.exit_code != 0) {
      throw EngineError("haproxy rejected the configuration: " + HaproxyMessage(result.output));
    }
  }

  // True while the master runs. Reaps it when it has exited and schedules its restart; every
  // liveness check goes through here, so a death is noticed by whichever caller sees it first.
  bool MasterAliveLocked() const {
    if (master_pid_ <= 0) return false;
    std::string how;
    if (!ChildExited(master_pid_, &how)) return true;
    const auto now = Clock::now();
    if (stopping_) {
      master_pid_ = -1;
      return false;
    }
    const bool stable = now - launched_at_ >= kStableAfter;
    restart_failures_ = stable ? 0 : restart_failures_ + 1;
    next_launch_ = now + Backoff();
    spdlog::error("haproxy: master {} {}; restarting it: {}", master_pid_, how,
                  HaproxyMessage(ReadFrom(log_path_, launch_log_offset_), master_pid_));
    master_pid_ = -1;
    return false;
  }

  // A couple of short-lived runs (an operator's kills) restart at once; a crash loop backs off.
  Clock::duration Backoff() const {
    if (restart_failures_ <= 2) return Clock::duration::zero();
    const int shift = std::min(restart_failures_ - 2, 6);
    return std::min<Clock::duration>(options_.supervise_interval * (1 << shift), kMaxBackoff);
  }

  // Starts a master on haproxy.cfg and waits until its worker answers. Throws EngineError with
  // haproxy's alerts when it exits or does not come up in time.
  void LaunchLocked() {
    if (FileSize(log_path_) > kMaxLogBytes) {
      std::error_code ignored;
      fs::rename(log_path_, log_path_.string() + ".1", ignored);
    }
    launch_log_offset_ = FileSize(log_path_);
    const pid_t pid =
        SpawnDetached({options_.binary, "-W", "-S", master_socket_.string() + ",mode,600", "-f",
                       config_path_.string(), "-p", pid_path_.string()},
                      log_path_);
    master_pid_ = pid;
    launched_at_ = Clock::now();
    const auto deadline = launched_at_ + options_.ready_timeout;
    while (Clock::now() < deadline) {
      std::string how;
      if (ChildExited(pid, &how)) {
        master_pid_ = -1;
        throw EngineError("haproxy " + how + " while starting: " +
                          HaproxyMessage(ReadFrom(log_path_, launch_log_offset_), pid));
      }
      try {
        const auto table = ParseShowProc(CliCommand(master_socket_, "show proc", kCliTimeout));
        if (table.master_pid == pid && !table.workers.empty() &&
            WorkerAnswers(table.workers.front())) {
          spdlog::info("haproxy: master {} started, worker {}", pid, table.workers.front());
          return;
        }
      } catch (const EngineError&) {
        // Not listening yet.
      }
      std::this_thread::sleep_for(kPollPause);
    }
    TerminateChild(pid, kStopGrace);
    master_pid_ = -1;
    throw EngineError("haproxy did not start within " +
                      std::to_string(options_.ready_timeout.count()) +
                      " ms: " + HaproxyMessage(ReadFrom(log_path_, launch_log_offset_), pid));
  }

  // Asks the master to reload haproxy.cfg and waits until a new worker answers. The master
  // re-executes itself; if the new configuration fails to load (a VIP that cannot be bound:
  // `haproxy -c` does not bind) it keeps the old workers and counts a failed reload.
  void ReloadLocked() {
    const auto deadline = Clock::now() + options_.ready_timeout;
    const ProcessTable before = ShowProcUntil(deadline);
    const pid_t master = master_pid_;
    const uintmax_t log_offset = FileSize(log_path_);
    try {
      CliCommand(master_socket_, "reload", kCliTimeout);
    } catch (const EngineError&) {
      // 2.6 answers nothing: the master closes the connection as it re-executes.
    }
    while (Clock::now() < deadline) {
      if (!MasterAliveLocked()) {
        throw EngineError("haproxy exited while reloading: " +
                          HaproxyMessage(ReadFrom(log_path_, log_offset), master));
      }
      ProcessTable now;
      try {
        now = ParseShowProc(CliCommand(master_socket_, "show proc", kCliTimeout));
      } catch (const EngineError&) {
        std::this_thread::sleep_for(kPollPause);  // re-executing
        continue;
      }
      if (now.reloads > before.reloads) {
        for (pid_t worker : now.workers) {
          const bool fresh = std::find(before.workers.begin(), before.workers.end(), worker) ==
                                 before.workers.end() &&
                             std::find(before.old_workers.begin(), before.old_workers.end(),
                                       worker) == before.old_workers.end();
          if (fresh && WorkerAnswers(worker)) return;
        }
        if (now.failed_reloads > before.failed_reloads) {
          throw EngineError("haproxy could not load the configuration: " +
                            HaproxyMessage(ReadFrom(log_path_, log_offset), master));
        }
      }
      std::this_thread::sleep_for(kPollPause);
    }
    throw EngineError("haproxy did not finish reloading within " +
                      std::to_string(options_.ready_timeout.count()) + " ms");
  }

  ProcessTable ShowProcUntil(Clock::time_point deadline) {
    for (;;) {
      try {
        return ParseShowProc(CliCommand(master_socket_, "show proc", kCliTimeout));
      } catch (const EngineError& error) {
        if (Clock::now() >= deadline) {
          throw EngineError(std::string("haproxy master does not answer: ") + error.what());
        }
      }
      std::this_thread::sleep_for(kPollPause);
    }
  }

  // A worker answers once it runs its event loop; by then it has told the old workers to stop
  // accepting.
  bool WorkerAnswers(pid_t worker) {
    try {
      const std::string info =
          CliCommand(master_socket_, "@!" + std::to_string(worker) + " show info", kCliTimeout);
      return info.find("Pid: ") != std::string::npos;
    } catch (const EngineError&) {
      return false;
    }
  }

  // After a failed reload or start: reinstall `previous` and bring it back up.
  void RestoreLocked(const std::string& previous) {
    try {
      const std::string config = previous.empty() ? RenderHaproxyConfig({}, options_) : previous;
      WriteFileAtomically(config_path_, config);
      installed_config_ = config;
      if (MasterAliveLocked()) {
        ReloadLocked();
      } else {
        LaunchLocked();
      }
    } catch (const EngineError& error) {
      // The engine's state is unknown now; an empty marker makes the next Apply act.
      installed_config_.clear();
      spdlog::error("haproxy: could not restore the previous configuration: {}", error.what());
    }
  }

  void Supervise() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      wake_.wait_for(lock, options_.supervise_interval, [this] { return stopping_; });
      if (stopping_) break;
      if (MasterAliveLocked()) {
        if (Clock::now() - launched_at_ >= kStableAfter) restart_failures_ = 0;
        continue;
      }
      if (Clock::now() < next_launch_) continue;
      try {
        metrics::LbEngineRestarts().Increment({});
        LaunchLocked();
      } catch (const EngineError& error) {
        ++restart_failures_;
        next_launch_ = Clock::now() + Backoff();
        spdlog::error("haproxy: restart failed (attempt {}), next in {} ms: {}", restart_failures_,
                      std::chrono::duration_cast<milliseconds>(Backoff()).count(), error.what());
      }
    }
  }

  const HaproxyOptions options_;
  const fs::path config_path_;
  const fs::path candidate_path_;
  const fs::path master_socket_;
  const fs::path stats_socket_;
  const fs::path pid_path_;
  const fs::path log_path_;

  // Guards everything below. Held across starts and reloads (bounded by ready_timeout), which
  // serializes all process management.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::thread supervisor_;
  bool started_ = false;
  bool stopping_ = false;
  std::string installed_config_;  // the text of haproxy.cfg; empty = unknown
  // Liveness checks reap the master, so they update these even from const methods.
  mutable pid_t master_pid_ = -1;
  mutable int restart_failures_ = 0;
  mutable Clock::time_point next_launch_{};
  Clock::time_point launched_at_{};
  uintmax_t launch_log_offset_ = 0;
};

}  // namespace

std::unique_ptr<LoadBalancerEngine> MakeHaproxyEngine(HaproxyOptions options) {
  if (options.run_dir.empty()) throw EngineError("HaproxyOptions.run_dir is required");
  return std::make_unique<HaproxyEngine>(std::move(options));
}

}  // namespace gridd::lb
