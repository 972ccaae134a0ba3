// Talking to systemd when gridd runs as a Type=notify service: readiness, stopping, reloading
// and the watchdog. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace gridd::daemon {

// sd_notify(0, state), e.g. "READY=1\nSTATUS=serving".
void Notify(const std::string& state);

// Sends WATCHDOG=1 at half the interval systemd asks for (WatchdogSec=), as long as `healthy`
// returns true; a gridd that cannot read its database any more is then restarted by systemd.
class Watchdog {
 public:
  explicit Watchdog(std::function<bool()> healthy);
  ~Watchdog();  // stops the thread
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  bool enabled() const { return interval_.count() > 0; }
  std::chrono::microseconds interval() const { return interval_; }

 private:
  void Run();

  std::function<bool()> healthy_;
  std::chrono::microseconds interval_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gridd::daemon
