#include "gridd/virt/host_connection.h"

#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "virt/host_connection_core.h"
#include "virt/libvirt_handles.h"

namespace gridd::virt {
namespace {

// How long the constructor waits for the first connection attempt: a host that hangs must
// not hold up gridd's start for longer than it takes to call it Down.
constexpr auto kFirstAttemptWaitMax = std::chrono::seconds(10);
// How long Stop waits for a probe to return before leaving it to finish by itself.
constexpr auto kStopWait = std::chrono::seconds(2);

// The close callback's opaque data: which Core, and which of its connections.
struct CloseContext {
  std::weak_ptr<HostConnection::Core> core;
  uint64_t generation = 0;
};

// Guards every CloseContext. libvirt hands the context to its event loop thread under its own
// locks; this makes the hand-over visible to gridd's code (and to ThreadSanitizer) as well.
std::mutex& CloseContextMutex() {
  static std::mutex mutex;
  return mutex;
}

std::string Seconds(std::chrono::milliseconds duration) {
  const auto tenths = duration.count() / 100;
  return std::to_string(tenths / 10) + (tenths % 10 != 0 ? "." + std::to_string(tenths % 10) : "");
}

}  // namespace

const char* HostStateName(HostState state) { return state == HostState::kUp ? "Up" : "Down"; }

HostConnectionOptions HostConnectionOptionsFromConfig(const Config& config, std::string host_name,
                                                      std::string uri) {
  HostConnectionOptions options;
  options.host_name = std::move(host_name);
  options.uri = std::move(uri);
  options.down_after = std::chrono::seconds(config.host_down_after_seconds);
  options.keepalive_interval_seconds = config.host_keepalive_interval_seconds;
  options.keepalive_count = static_cast<unsigned>(config.host_keepalive_count);
  options.probe_interval = std::min<std::chrono::milliseconds>(
      std::chrono::seconds(config.host_keepalive_interval_seconds), options.down_after / 4);
  options.reconnect_initial = std::chrono::milliseconds(config.host_reconnect_initial_ms);
  options.reconnect_max = std::chrono::seconds(config.host_reconnect_max_seconds);
  return options;
}

HostConnection::Core::Core(HostConnectionOptions options)
    : options_(std::move(options)),
      hypervisor_(options_.uri, *this),
      random_(std::random_device{}()) {
  if (options_.host_name.empty()) {
    throw HypervisorError(HypervisorErrorKind::kInvalid, "host connection: empty host name");
  }
  if (options_.down_after <= std::chrono::milliseconds(0) ||
      options_.probe_interval <= std::chrono::milliseconds(0) ||
      options_.reconnect_initial <= std::chrono::milliseconds(0) ||
      options_.reconnect_max < options_.reconnect_initial ||
      options_.keepalive_interval_seconds < 1 || options_.keepalive_count < 1) {
    throw HypervisorError(HypervisorErrorKind::kInvalid,
                          Describe() +
                              ": timings must be positive, reconnect_max at least "
                              "reconnect_initial");
  }
  backoff_ = options_.reconnect_initial;
}

std::string HostConnection::Core::Describe() const {
  return "host " + options_.host_name + " (" + options_.uri + ")";
}

void HostConnection::Core::Start() {
  EnsureLibvirtEventLoop();
  const auto deadline =
      Clock::now() + std::min<Clock::duration>(options_.down_after, kFirstAttemptWaitMax);
  {
    std::lock_guard lock(mu_);
    prober_running_ = 1;
  }
  prober_ = std::thread([self = shared_from_this()] { self->ProbeLoop(); });
  watcher_ = std::thread([self = shared_from_this()] { self->WatchLoop(); });
  HostState first;
  {
    std::unique_lock lock(mu_);
    wake_.wait_until(lock, deadline, [&] { return first_attempt_done_; });
    first = UpLocked(Clock::now()) ? HostState::kUp : HostState::kDown;
  }
  // A listener registered right after construction hears the outcome of the first attempt,
  // not the Down every connection starts from.
  std::lock_guard listener_lock(listener_mu_);
  reported_ = first;
}

void HostConnection::Core::Stop() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  wake_.notify_all();
  const bool prober_done = wake_.wait_for(lock, kStopWait, [&] { return prober_running_ == 0; });
  std::shared_ptr<virConnect> connection = std::move(connection_);
  lock.unlock();
  if (prober_done) {
    prober_.join();
  } else {
    spdlog::warn("{}: a call to the host is still waiting; leaving it to time out", Describe());
    prober_.detach();
  }
  watcher_.join();  // never blocks on libvirt
  ForgetCloseCallback(connection.get());
  // Waits for a listener call in progress; none starts after this.
  std::lock_guard listener_lock(listener_mu_);
  listener_ = nullptr;
}

bool HostConnection::Core::UpLocked(Clock::time_point now) const {
  // A connection lost a moment ago is not yet a Down host: libvirtd restarts, brief network
  // trouble.
  return generation_ > 0 && now - last_answer_ < options_.down_after;
}

std::shared_ptr<virConnect> HostConnection::Core::Acquire() {
  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  const bool up = UpLocked(now);
  if (up && connection_ != nullptr) return connection_;
  const std::string cause = last_error_.empty() ? "" : " (" + last_error_ + ")";
  if (up) {
    throw HostUnavailableError(Describe() + " is not connected; reconnecting" + cause);
  }
  const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_answer_);
  const std::string since =
      generation_ == 0 ? "has never answered" : "has not answered for " + Seconds(silent) + " s";
  throw HostUnavailableError(Describe() + " is Down: it " + since + cause);
}

void HostConnection::Core::Lost(const std::shared_ptr<virConnect>& connection,
                                const HypervisorError& error) {
  {
    std::lock_guard lock(mu_);
    DropLocked(connection, error.what());
  }
  ForgetCloseCallback(connection.get());
  throw HostUnavailableError(Describe() + ": connection lost; reconnecting: " + error.what());
}

void HostConnection::Core::DropLocked(const std::shared_ptr<virConnect>& connection,
                                      const std::string& why) {
  last_error_ = why;
  if (connection_ == nullptr || connection_ != connection) return;
  spdlog::warn("{}: connection lost ({}); reconnecting", Describe(), why);
  // Closed outside the lock by whoever holds the last reference; never inside libvirt's
  // close callback.
  connection_.reset();
  closed_by_peer_ = false;
  backoff_ = options_.reconnect_initial;
  next_attempt_ = Clock::now();
  wake_.notify_all();
}

void HostConnection::Core::ForgetCloseCallback(virConnect* conn) {
  if (conn != nullptr && virConnectUnregisterCloseCallback(conn, &Core::OnClose) < 0) {
    virResetLastError();  // never registered (the driver has none) or already unregistered
  }
}

HostConnection::Core::Clock::duration HostConnection::Core::NextBackoffLocked() {
  const Clock::duration ceiling = backoff_;
  backoff_ = std::min<Clock::duration>(backoff_ * 2, options_.reconnect_max);
  std::uniform_int_distribution<int64_t> draw(ceiling.count() / 2, ceiling.count());
  return Clock::duration(draw(random_));
}

void HostConnection::Core::OnClose(virConnectPtr /*conn*/, int reason, void* opaque) {
  std::shared_ptr<Core> core;
  uint64_t generation = 0;
  {
    std::lock_guard context_lock(CloseContextMutex());
    const auto* context = static_cast<const CloseContext*>(opaque);
    core = context->core.lock();
    generation = context->generation;
  }
  if (!core) return;
  std::lock_guard lock(core->mu_);
  if (core->generation_ != generation || core->connection_ == nullptr) return;
  // Only noted here: the connection must not be closed from inside its own callback.
  core->closed_by_peer_ = true;
  switch (reason) {
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
      core->last_error_ = "connection closed: keepalive got no answer";
      break;
    case VIR_CONNECT_CLOSE_REASON_EOF:
      core->last_error_ = "connection closed by the host";
      break;
    default:
      core->last_error_ = "connection closed: I/O error";
      break;
  }
  core->wake_.notify_all();
}

void HostConnection::Core::TryConnect() {
  std::shared_ptr<virConnect> opened;
  std::string error;
  try {
    opened = OpenLibvirtConnection(
        options_.uri, KeepAlive{options_.keepalive_interval_seconds, options_.keepalive_count});
  } catch (const HypervisorError& failure) {
    error = failure.what();
  }
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    // A successful first attempt is done only once its connection is in place below: the
    // constructor, woken by any notification, must not find the host neither failed nor Up.
    if (stopping_) {
      first_attempt_done_ = true;
      wake_.notify_all();
      return;  // `opened` closes as it goes out of scope
    }
    if (!opened) {
      first_attempt_done_ = true;
      last_error_ = error;
      next_attempt_ = Clock::now() + NextBackoffLocked();
      wake_.notify_all();
      return;
    }
    generation = generation_ + 1;
  }
  // Only libvirt's RPC client has close callbacks. The in-process drivers (test:///,
  // qemu:///embed) accept a registration and drop it without calling its free function, which
  // would leak the context; their connections are never closed by a peer anyway.
  const bool in_process =
      options_.uri.rfind("test:", 0) == 0 || options_.uri.rfind("qemu:///embed", 0) == 0;
  CloseContext* context = nullptr;
  if (!in_process) {
    std::lock_guard context_lock(CloseContextMutex());
    context = new CloseContext{weak_from_this(), generation};
  }
  if (context != nullptr &&
      virConnectRegisterCloseCallback(opened.get(), &Core::OnClose, context, [](void* data) {
        std::lock_guard context_lock(CloseContextMutex());
        delete static_cast<CloseContext*>(data);
      }) < 0) {
    std::lock_guard context_lock(CloseContextMutex());
    delete context;
    // The probes still notice a dead connection, only later.
    spdlog::debug("{}: no close callback: {}", Describe(), TakeLastError().message);
  }
  std::lock_guard registration(registration_mu_);
  {
    std::lock_guard gate(hypervisor_.call_gate());
    hypervisor_.RegisterLifecycle(opened.get());
  }
  std::lock_guard lock(mu_);
  connection_ = std::move(opened);
  generation_ = generation;
  closed_by_peer_ = false;
  last_answer_ = Clock::now();
  last_error_.clear();
  backoff_ = options_.reconnect_initial;
  first_attempt_done_ = true;
  spdlog::info("{}: connected", Describe());
  wake_.notify_all();
}

void HostConnection::Core::ProbeLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (closed_by_peer_ && connection_ != nullptr) {
      std::shared_ptr<virConnect> closed = connection_;
      DropLocked(closed, last_error_);
      lock.unlock();
      ForgetCloseCallback(closed.get());
      closed.reset();  // may close the connection: outside the lock
      lock.lock();
      continue;
    }
    if (connection_ == nullptr) {
      if (generation_ > 0 || first_attempt_done_) {
        if (wake_.wait_until(lock, next_attempt_, [&] { return stopping_; })) break;
      }
      lock.unlock();
      TryConnect();
      lock.lock();
      continue;
    }
    std::shared_ptr<virConnect> connection = connection_;
    lock.unlock();
    // A call the host must answer: keepalive alone proves only that the peer's event loop
    // runs. Blocks while a host hangs, until keepalive closes the connection.
    bool alive = false;
    LastError error;
    std::unique_lock gate(hypervisor_.call_gate(), std::defer_lock);
    // Bounded so that Stop does not wait on a long call.
    if (gate.try_lock_for(std::min<std::chrono::milliseconds>(options_.probe_interval,
                                                              std::chrono::seconds(1)))) {
      unsigned long version = 0;
      const bool answered = virConnectGetLibVersion(connection.get(), &version) == 0;
      if (!answered) error = TakeLastError();
      alive = answered;
      if (!answered && !IsConnectionLevelCode(error.code)) {
        alive = virConnectIsAlive(connection.get()) == 1;
        if (!alive) virResetLastError();
      }
      gate.unlock();
    } else {
      // A long call holds the connection. Keepalive closes it if the host stops answering,
      // so an open connection means the host is there.
      alive = virConnectIsAlive(connection.get()) == 1;
      if (!alive) error = TakeLastError();
    }
    lock.lock();
    if (alive) {
      // An error answer is still an answer: the host is there.
      // Not on a connection libvirt has already closed (keepalive gave up while the answer
      // was on its way): the host would be Up with no connection to call it on.
      if (connection_ == connection && !closed_by_peer_) last_answer_ = Clock::now();
    } else {
      DropLocked(connection, "probe: " + error.message);
      lock.unlock();
      ForgetCloseCallback(connection.get());
      connection.reset();
      lock.lock();
      continue;
    }
    lock.unlock();
    connection.reset();
    lock.lock();
    wake_.wait_for(lock, options_.probe_interval,
                   [&] { return stopping_ || closed_by_peer_ || connection_ == nullptr; });
  }
  prober_running_ = 0;
  wake_.notify_all();
}

void HostConnection::Core::WatchLoop() {
  const auto tick = std::clamp<std::chrono::milliseconds>(
      options_.down_after / 10, std::chrono::milliseconds(20), std::chrono::seconds(1));
  for (;;) {
    HostState now_state;
    std::string cause;
    {
      std::unique_lock lock(mu_);
      if (stopping_) return;
      now_state = UpLocked(Clock::now()) ? HostState::kUp : HostState::kDown;
      cause = last_error_;
    }
    {
      std::lock_guard listener_lock(listener_mu_);
      if (now_state != reported_) {
        reported_ = now_state;
        if (now_state == HostState::kUp) {
          spdlog::info("{} is Up", Describe());
        } else {
          spdlog::warn("{} is Down: no answer for {} s{}", Describe(), Seconds(options_.down_after),
                       cause.empty() ? "" : " (" + cause + ")");
        }
        if (listener_) {
          try {
            listener_(now_state);
          } catch (const std::exception& error) {
            spdlog::error("{}: host state listener: {}", Describe(), error.what());
          }
        }
      }
    }
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, tick, [&] { return stopping_; })) return;
  }
}

HostState HostConnection::Core::state() {
  std::lock_guard lock(mu_);
  return UpLocked(Clock::now()) ? HostState::kUp : HostState::kDown;
}

void HostConnection::Core::SetHostStateListener(HostStateListener listener) {
  std::lock_guard listener_lock(listener_mu_);
  listener_ = std::move(listener);
  if (listener_) listener_(reported_);
}

void HostConnection::Core::WatchStates(StateListener listener) {
  std::lock_guard registration(registration_mu_);
  hypervisor_.SetStateListener(std::move(listener));
  std::shared_ptr<virConnect> connection;
  {
    std::lock_guard lock(mu_);
    connection = connection_;
  }
  // Without a connection the listener is registered when one is made.
  if (connection) {
    std::lock_guard gate(hypervisor_.call_gate());
    hypervisor_.RegisterLifecycle(connection.get());
  }
}

HostConnection::HostConnection(HostConnectionOptions options)
    : core_(std::make_shared<Core>(std::move(options))) {
  core_->Start();
}

HostConnection::~HostConnection() { core_->Stop(); }

const std::string& HostConnection::host_name() const { return core_->options().host_name; }
HostState HostConnection::state() const { return core_->state(); }
void HostConnection::OnHostStateChange(HostStateListener listener) {
  core_->SetHostStateListener(std::move(listener));
}

std::string HostConnection::uri() const { return core_->options().uri; }
bool HostConnection::volatile_state() const { return core_->hypervisor().volatile_state(); }

void HostConnection::EnsureDisk(const DiskSpec& disk) { core_->hypervisor().EnsureDisk(disk); }
void HostConnection::DeleteDisk(const std::string& storage_pool, const std::string& volume) {
  core_->hypervisor().DeleteDisk(storage_pool, volume);
}
bool HostConnection::VolumeExists(const std::string& storage_pool, const std::string& volume) {
  return core_->hypervisor().VolumeExists(storage_pool, volume);
}
void HostConnection::CopyVolume(const std::string& storage_pool, const std::string& source,
                                const std::string& target, const std::string& format) {
  core_->hypervisor().CopyVolume(storage_pool, source, target, format);
}
void HostConnection::EnsureRawVolume(const RawVolume& volume) {
  core_->hypervisor().EnsureRawVolume(volume);
}
void HostConnection::ImportQcow2(const std::string& storage_pool, const std::string& volume,
                                 const std::string& source) {
  core_->hypervisor().ImportQcow2(storage_pool, volume, source);
}
void HostConnection::EnsureDirectoryPool(const std::string& storage_pool, const std::string& path) {
  core_->hypervisor().EnsureDirectoryPool(storage_pool, path);
}
void HostConnection::DefineDomain(const DomainSpec& spec) {
  core_->hypervisor().DefineDomain(spec);
}
void HostConnection::UndefineDomain(const std::string& name) {
  core_->hypervisor().UndefineDomain(name);
}
void HostConnection::Start(const std::string& name) { core_->hypervisor().Start(name); }
void HostConnection::Shutdown(const std::string& name, int timeout_seconds) {
  core_->hypervisor().Shutdown(name, timeout_seconds);
}
void HostConnection::PowerOff(const std::string& name) { core_->hypervisor().PowerOff(name); }
void HostConnection::Reboot(const std::string& name) { core_->hypervisor().Reboot(name); }
PowerState HostConnection::State(const std::string& name) {
  return core_->hypervisor().State(name);
}
void HostConnection::EnsureDhcpReservation(const DhcpReservation& reservation) {
  core_->hypervisor().EnsureDhcpReservation(reservation);
}
void HostConnection::RemoveDhcpReservation(const DhcpReservation& reservation) {
  core_->hypervisor().RemoveDhcpReservation(reservation);
}
void HostConnection::WatchStates(StateListener listener) {
  core_->WatchStates(std::move(listener));
}
std::vector<GriddDomain> HostConnection::ListGriddDomains() {
  return core_->hypervisor().ListGriddDomains();
}
HostCapacity HostConnection::Capacity() { return core_->hypervisor().Capacity(); }

}  // namespace gridd::virt
