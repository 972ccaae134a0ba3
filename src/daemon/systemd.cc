#include "daemon/systemd.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace gridd::daemon {

void Notify(const std::string& state) { sd_notify(0, state.c_str()); }

Watchdog::Watchdog(std::function<bool()> healthy) : healthy_(std::move(healthy)) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    interval_ = std::chrono::microseconds(usec);
    thread_ = std::thread([this] { Run(); });
    spdlog::info("systemd watchdog every {} ms", usec / 2000);
  }
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::Run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    bool healthy = false;
    try {
      healthy = healthy_();
    } catch (const std::exception& error) {
      spdlog::error("watchdog: health check failed: {}", error.what());
    }
    if (healthy) Notify("WATCHDOG=1");
    lock.lock();
    wake_.wait_for(lock, interval_ / 2, [this] { return stopping_; });
  }
}

}  // namespace gridd::daemon
