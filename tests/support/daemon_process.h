// Runs the real gridd binary for integration tests: a private data directory, a free loopback
// port, its output captured in <data dir>/daemon.log, and the credentials of the account it
// creates on first start.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "support/api_client.h"

namespace gridd::testing {

class DaemonProcess {
 public:
  // `data_dir` defaults to a fresh temporary directory. `extra_args` follow the standard
  // --config/--data-dir/--listen arguments, so they may override them.
  explicit DaemonProcess(std::vector<std::string> extra_args = {},
                         std::filesystem::path data_dir = {});
  // Stops the daemon if it still runs. Removes a temporary data dir, unless the current test
  // has failed: then it is kept and the log's tail printed.
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts gridd and waits until it listens and has written its initial credentials. May be
  // called again after Stop() or Kill(), e.g. to test persistence. Throws std::runtime_error
  // (quoting the log) when the daemon exits or does not come up in time.
  void Start();
  // SIGTERM, then waits up to `timeout`. Returns the exit code, 128 + signal number if a signal
  // ended it, or -1 if it had to be killed with SIGKILL after the timeout. Returns the last
  // status again when the daemon is not running.
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGKILL, no chance to clean up.
  void Kill();
  bool running() const { return pid_ > 0; }

  // The arguments used by the next Start().
  void set_extra_args(std::vector<std::string> extra_args) { extra_args_ = std::move(extra_args); }
  // The configuration file the next Start() passes (default: config/gridd.toml of the source
  // tree).
  void set_config(std::filesystem::path config) { config_ = std::move(config); }
  // Runs another gridd binary (default: the built one), optionally through a wrapper such as
  // {"setpriv", "--reuid=gridd", …, "--"} that execs it in the same process.
  void set_program(std::filesystem::path binary, std::vector<std::string> wrapper = {}) {
    binary_ = std::move(binary);
    wrapper_ = std::move(wrapper);
  }

  // The plain HTTP listener; port() is 0 when the configuration switched it off.
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  // The /metrics listener's port (Start passes --metrics-listen 127.0.0.1:0); 0 when disabled.
  uint16_t metrics_port() const { return metrics_port_; }
  // The HTTPS listener's port when started with --tls-listen; 0 otherwise.
  uint16_t tls_port() const { return tls_port_; }
  const std::string& account() const { return account_; }
  const std::string& api_key() const { return api_key_; }
  const std::string& shared_secret() const { return shared_secret_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  std::filesystem::path log_path() const { return data_dir_ / "daemon.log"; }
  pid_t pid() const { return pid_; }
  // Everything the daemon printed so far, over all its starts.
  std::string LogText() const;
  // A client for this daemon with the initial account's credentials set.
  ApiClient Client() const;

 private:
  int Reap(bool block);  // returns -2 while the process still runs

  std::vector<std::string> extra_args_;
  std::filesystem::path config_;
  std::filesystem::path binary_;
  std::vector<std::string> wrapper_;
  std::filesystem::path data_dir_;
  bool owns_data_dir_ = false;  // a temporary directory, removed unless the test failed
  pid_t pid_ = -1;
  int last_status_ = -1;
  std::string host_ = "127.0.0.1";
  uint16_t port_ = 0;
  uint16_t metrics_port_ = 0;
  uint16_t tls_port_ = 0;
  std::string account_;
  std::string api_key_;
  std::string shared_secret_;
};

}  // namespace gridd::testing
