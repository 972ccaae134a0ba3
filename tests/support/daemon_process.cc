#include "support/daemon_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/test_paths.h"

namespace gridd::testing {
namespace {

constexpr auto kDaemonStartTimeout = std::chrono::seconds(20);
constexpr auto kDaemonPollInterval = std::chrono::milliseconds(20);
constexpr std::string_view kListening = "listening on http://";
constexpr std::string_view kMetrics = "metrics on http://";
constexpr std::string_view kTlsListening = "listening on https://";

std::string Tail(const std::string& text, size_t max_bytes = 4000) {
  if (text.size() <= max_bytes) return text;
  return "..." + text.substr(text.size() - max_bytes);
}

// Finds "listening on http://HOST:PORT" followed by a non-digit (so a line still being written
// is not misread). Returns false when not (yet) there.
bool ParseListening(const std::string& log, std::string& host, uint16_t& port,
                    std::string_view marker = kListening) {
  size_t at = log.find(marker);
  if (at == std::string::npos) return false;
  std::string_view rest(log);
  rest.remove_prefix(at + marker.size());
  size_t colon;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return false;
    host = std::string(rest.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = rest.find(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(rest.substr(0, colon));
  }
  if (colon >= rest.size() || rest[colon] != ':') return false;
  size_t digits = colon + 1;
  size_t end = digits;
  while (end < rest.size() && rest[end] >= '0' && rest[end] <= '9') ++end;
  if (end == digits || end == rest.size() || end - digits > 5) return false;
  unsigned long value = std::stoul(std::string(rest.substr(digits, end - digits)));
  if (value == 0 || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  // A wildcard listener is reached over loopback.
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  return true;
}

}  // namespace

DaemonProcess::DaemonProcess(std::vector<std::string> extra_args, std::filesystem::path data_dir)
    : extra_args_(std::move(extra_args)), data_dir_(std::move(data_dir)) {
  if (data_dir_.empty()) {
    data_dir_ = MakeTempDir("gridd-test");
    owns_data_dir_ = true;
  }
}

DaemonProcess::~DaemonProcess() {
  try {
    if (running()) Stop(std::chrono::seconds(10));
  } catch (...) {
    // A destructor must not throw; the process has been dealt with as well as possible.
  }
  if (!owns_data_dir_) return;
  if (::testing::Test::HasFailure()) {
    // Keep the evidence of a failed test.
    std::cerr << "gridd data dir kept: " << data_dir_.string() << "\n--- daemon log (tail) ---\n"
              << Tail(LogText()) << "\n---\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(data_dir_, ec);
}

void DaemonProcess::Start() {
  if (running()) throw std::logic_error("DaemonProcess::Start: gridd is already running");
  std::filesystem::path binary = binary_.empty() ? BinaryDir() / "gridd" : binary_;
  if (access(binary.c_str(), X_OK) != 0) {
    throw std::runtime_error("gridd binary not found at " + binary.string());
  }
  const std::filesystem::path config =
      config_.empty() ? SourceDir() / "config" / "gridd.toml" : config_;

  std::vector<std::string> args = wrapper_;
  args.insert(args.end(),
              {binary.string(), "--config", config.string(), "--data-dir", data_dir_.string(),
               "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int log_fd = open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw std::runtime_error("cannot open " + log_path().string() + ": " + std::strerror(errno));
  }
  struct stat log_stat {};
  fstat(log_fd, &log_stat);
  std::streamoff log_offset = log_stat.st_size;  // only this start's output is searched
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int error = errno;
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(error));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until execv.
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    // Do not outlive a test binary that crashed or was killed by a ctest timeout.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    execv(argv[0], argv.data());
    constexpr char kMessage[] = "DaemonProcess: execv failed\n";
    [[maybe_unused]] auto written = write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    _exit(127);
  }
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  pid_ = pid;
  port_ = 0;
  metrics_port_ = 0;
  tls_port_ = 0;

  auto deadline = std::chrono::steady_clock::now() + kDaemonStartTimeout;
  auto fail = [&](const std::string& why) {
    if (running()) Kill();
    throw std::runtime_error("gridd " + why + "; arguments:" + [&] {
      std::string joined;
      for (size_t i = 1; i < args.size(); ++i) joined += " " + args[i];
      return joined;
    }() + "\n--- log ---\n" + Tail(ReadFile(log_path(), log_offset)));
  };

  while (true) {
    int status = Reap(false);
    if (status != -2) fail("exited during startup with status " + std::to_string(status));
    std::string host;
    uint16_t port = 0;
    const std::string log = ReadFile(log_path(), log_offset);
    const bool tls_only = log.find("plain HTTP switched off") != std::string::npos;
    if (tls_only || ParseListening(log, host, port)) {
      host_ = tls_only ? "127.0.0.1" : host;
      port_ = tls_only ? 0 : port;
      // gridd reports the metrics listener first, when it has one.
      std::string metrics_host;
      uint16_t metrics_port = 0;
      if (ParseListening(log, metrics_host, metrics_port, kMetrics)) metrics_port_ = metrics_port;
      // And the HTTPS listener before both.
      std::string tls_host;
      uint16_t tls_port = 0;
      if (ParseListening(log, tls_host, tls_port, kTlsListening)) tls_port_ = tls_port;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) fail("did not report listening in time");
    std::this_thread::sleep_for(kDaemonPollInterval);
  }

  // The file may appear a moment after the listener, and be caught half written.
  std::filesystem::path credentials_path = data_dir_ / "initial-credentials.json";
  std::string last_error = "file does not exist";
  while (true) {
    std::string text = ReadFile(credentials_path);
    if (!text.empty()) {
      try {
        auto json = nlohmann::json::parse(text);
        account_ = json.at("account").get<std::string>();
        api_key_ = json.at("api_key").get<std::string>();
        shared_secret_ = json.at("shared_secret").get<std::string>();
        return;
      } catch (const std::exception& e) {
        last_error = e.what();
      }
    }
    int status = Reap(false);
    if (status != -2) fail("exited during startup with status " + std::to_string(status));
    if (std::chrono::steady_clock::now() > deadline) {
      fail("gave no usable " + credentials_path.string() + " in time (" + last_error + ")");
    }
    std::this_thread::sleep_for(kDaemonPollInterval);
  }
}

int DaemonProcess::Stop(std::chrono::milliseconds timeout) {
  if (!running()) return last_status_;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = Reap(false);
    if (status != -2) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  last_status_ = -1;
  return -1;
}

void DaemonProcess::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  Reap(true);
}

int DaemonProcess::Reap(bool block) {
  if (!running()) return last_status_;
  int status = 0;
  pid_t result;
  do {
    result = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result == 0) return -2;
  pid_ = -1;
  if (result < 0) {
    last_status_ = -1;  // reaped elsewhere (SIGCHLD ignored?); the status is lost
  } else if (WIFEXITED(status)) {
    last_status_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    last_status_ = 128 + WTERMSIG(status);
  } else {
    last_status_ = -1;
  }
  return last_status_;
}

std::string DaemonProcess::LogText() const { return ReadFile(log_path()); }

ApiClient DaemonProcess::Client() const {
  ApiClient client(host_, port_);
  client.SetCredentials(api_key_, shared_secret_);
  return client;
}

}  // namespace gridd::testing
