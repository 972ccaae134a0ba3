#include "gridd/common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace gridd {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string ErrnoText(int error) { return std::strerror(error); }

// Owns the posix_spawn attribute and file-action objects for one spawn.
class SpawnSetup {
 public:
  explicit SpawnSetup(bool own_process_group) {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
    // A clean signal state: gridd may block or ignore signals haproxy relies on (SIGCHLD in
    // the master, SIGUSR1/SIGTERM for stops); neither survives exec on its own.
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr_, &none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attr_, &all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (own_process_group) {
      flags |= POSIX_SPAWN_SETPGROUP;
      posix_spawnattr_setpgroup(&attr_, 0);
    }
    posix_spawnattr_setflags(&attr_, flags);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  posix_spawn_file_actions_t* actions() { return &actions_; }

  pid_t Spawn(const std::vector<std::string>& argv) {
    // Descriptors gridd holds (sockets, the database) must not leak into haproxy.
    posix_spawn_file_actions_addclosefrom_np(&actions_, 3);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, args[0], &actions_, &attr_, args.data(), environ);
    if (rc != 0) throw ProcessError("cannot start " + argv[0] + ": " + ErrnoText(rc));
    return pid;
  }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

}  // namespace

pid_t SpawnDetached(const std::vector<std::string>& argv, const std::filesystem::path& log_path) {
  SpawnSetup setup(/*own_process_group=*/true);
  const std::string log = log_path.string();
  posix_spawn_file_actions_addopen(setup.actions(), 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(setup.actions(), 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0640);
  posix_spawn_file_actions_adddup2(setup.actions(), 1, 2);
  return setup.Spawn(argv);
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw ProcessError("pipe: " + ErrnoText(errno));
  pid_t pid = -1;
  try {
    SpawnSetup setup(/*own_process_group=*/false);
    posix_spawn_file_actions_addopen(setup.actions(), 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(setup.actions(), fds[1], 1);
    posix_spawn_file_actions_adddup2(setup.actions(), fds[1], 2);
    pid = setup.Spawn(argv);
  } catch (...) {
    close(fds[0]);
    close(fds[1]);
    throw;
  }
  close(fds[1]);

  CommandResult result;
  const auto deadline = SteadyClock::now() + timeout;
  bool timed_out = false;
  char buffer[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now())
            .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // timeout is caught at the top
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child (and anything it spawned) closed the pipe
    result.output.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (timed_out) result.output += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
  return result;
}

bool ChildExited(pid_t pid, std::string* description) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r < 0) {
    // ECHILD: already reaped (or SIGCHLD is ignored and the kernel reaped it): gone either way.
    if (description) *description = "gone (" + ErrnoText(errno) + ")";
    return true;
  }
  if (description) {
    if (WIFEXITED(status)) {
      *description = "exited with code " + std::to_string(WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
      *description = std::string("killed by signal ") + strsignal(WTERMSIG(status));
    } else {
      *description = "ended";
    }
  }
  return true;
}

void TerminateChild(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  if (ChildExited(pid, nullptr)) return;
  kill(pid, SIGTERM);
  const auto deadline = SteadyClock::now() + grace;
  while (SteadyClock::now() < deadline) {
    if (ChildExited(pid, nullptr)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace gridd
