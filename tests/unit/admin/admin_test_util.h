// Shared by the admin tests: a recording command handler, a raw socket client and a way to
// run gridctl and capture what it printed.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gridd/admin/admin_server.h"

extern char** environ;

namespace gridd::admin::testing {

// A CommandHandler that remembers every call and answers through a replaceable function.
class RecordingHandler {
 public:
  struct Call {
    std::string command;
    nlohmann::json args;
  };

  RecordingHandler() {
    respond_ = [](const std::string& command, const nlohmann::json& args) {
      return nlohmann::json{{"echo", command}, {"args", args}};
    };
  }

  void Respond(CommandHandler respond) {
    std::lock_guard lock(mutex_);
    respond_ = std::move(respond);
  }

  CommandHandler AsHandler() {
    return [this](const std::string& command, const nlohmann::json& args) {
      CommandHandler respond;
      {
        std::lock_guard lock(mutex_);
        calls_.push_back({command, args});
        respond = respond_;
      }
      return respond(command, args);
    };
  }

  std::vector<Call> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::vector<Call> calls_;
  CommandHandler respond_;
};

inline sockaddr_un UnixAddress(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  return address;
}

// A blocking client speaking the line protocol by hand.
class RawClient {
 public:
  explicit RawClient(const std::filesystem::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_un address = UnixAddress(path);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      int error = errno;
      ::close(fd_);
      throw std::runtime_error("connect failed: " + std::string(std::strerror(error)));
    }
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void Send(const std::string& data) {
    for (std::size_t sent = 0; sent < data.size();) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error("send failed: " + std::string(std::strerror(errno)));
      sent += static_cast<std::size_t>(n);
    }
  }

  // The next reply line without its newline; throws on timeout or when the server hangs up.
  std::string ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto newline = pending_.find('\n'); newline != std::string::npos) {
        std::string line = pending_.substr(0, newline);
        pending_.erase(0, newline + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw std::runtime_error("timed out waiting for a reply");
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("connection closed");
      pending_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  nlohmann::json Ask(const nlohmann::json& request) {
    Send(request.dump() + "\n");
    return nlohmann::json::parse(ReadLine());
  }

  // True once the server has closed its end (reads EOF or a reset within the timeout).
  bool ClosedByPeer(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char byte;
    return ::recv(fd_, &byte, 1, 0) <= 0;
  }

 private:
  int fd_ = -1;
  std::string pending_;
};

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs a program to completion with stdout and stderr captured in files under scratch_dir.
// extra_env entries ("NAME=value") are added to, or override, this process's environment.
inline ProcessResult RunProcess(const std::filesystem::path& program,
                                const std::vector<std::string>& args,
                                const std::filesystem::path& scratch_dir,
                                const std::vector<std::string>& extra_env = {}) {
  auto out_path = scratch_dir / "stdout.txt";
  auto err_path = scratch_dir / "stderr.txt";

  std::vector<std::string> argv_storage = {program.string()};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_storage = extra_env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string item = *entry;
    std::string name = item.substr(0, item.find('='));
    bool overridden = false;
    for (const auto& extra : extra_env) overridden |= extra.substr(0, extra.find('=')) == name;
    if (!overridden) env_storage.push_back(item);
  }
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot run " + program.string() + ": " + std::strerror(rc));
  }

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ProcessResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

}  // namespace gridd::admin::testing
