// The inside of a HostConnection: the current libvirt connection, the thread that probes the
// host and reconnects, and the thread that decides Up/Down and tells the listener. The two
// threads own the Core too, so a probe stuck on a hung host can outlive the HostConnection
// without touching freed memory.
#pragma once

#include <libvirt/libvirt.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "gridd/virt/host_connection.h"
#include "virt/libvirt_hypervisor.h"

namespace gridd::virt {

class HostConnection::Core : public LibvirtConnectionSource,
                             public std::enable_shared_from_this<Core> {
 public:
  explicit Core(HostConnectionOptions options);

  // Starts both threads and waits (bounded) for the first connection attempt.
  void Start();
  // Stops both threads; a probe stuck on a hung host is left to finish by itself.
  void Stop();

  std::shared_ptr<virConnect> Acquire() override;
  [[noreturn]] void Lost(const std::shared_ptr<virConnect>& connection,
                         const HypervisorError& error) override;

  HostState state();
  void SetHostStateListener(HostStateListener listener);
  void WatchStates(StateListener listener);
  LibvirtHypervisor& hypervisor() { return hypervisor_; }
  const HostConnectionOptions& options() const { return options_; }
  // "host <name> (<uri>)", the prefix of every error about this host.
  std::string Describe() const;

 private:
  using Clock = std::chrono::steady_clock;

  void ProbeLoop();
  void WatchLoop();
  void TryConnect();
  // Forgets `connection` if it is still the current one and schedules a reconnect.
  void DropLocked(const std::shared_ptr<virConnect>& connection, const std::string& why);
  bool UpLocked(Clock::time_point now) const;
  Clock::duration NextBackoffLocked();
  static void OnClose(virConnectPtr conn, int reason, void* opaque);
  // Unregisters OnClose from `conn`, which makes libvirt free its context now rather than when
  // the last user of the connection closes it. Never under mu_: libvirt holds its own lock
  // while it calls OnClose, which takes mu_.
  static void ForgetCloseCallback(virConnect* conn);

  const HostConnectionOptions options_;
  LibvirtHypervisor hypervisor_;  // declared before connection_: callbacks point into it

  std::mutex mu_;
  std::condition_variable wake_;
  std::shared_ptr<virConnect> connection_;  // guarded by mu_; null while disconnected
  uint64_t generation_ = 0;                 // guarded by mu_; bumped per new connection
  bool closed_by_peer_ = false;             // guarded by mu_; the close callback fired
  bool stopping_ = false;                   // guarded by mu_
  bool first_attempt_done_ = false;         // guarded by mu_
  Clock::time_point last_answer_;           // guarded by mu_
  Clock::time_point next_attempt_;          // guarded by mu_
  Clock::duration backoff_{};               // guarded by mu_
  std::string last_error_;                  // guarded by mu_
  std::mt19937_64 random_;                  // guarded by mu_
  int prober_running_ = 0;                  // guarded by mu_

  // Serialises lifecycle registration: a listener set while a new connection is installed
  // is registered on it exactly once.
  std::mutex registration_mu_;

  std::mutex listener_mu_;                 // held while the listener runs, so calls never overlap
  HostStateListener listener_;             // guarded by listener_mu_
  HostState reported_ = HostState::kDown;  // guarded by listener_mu_

  std::thread prober_;
  std::thread watcher_;
};

}  // namespace gridd::virt
