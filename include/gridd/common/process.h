// Child processes: supervised daemons (HAProxy's master) and short-lived commands (haproxy -c,
// qemu-img, xorrisofs). All use posix_spawn, which is safe in gridd's multi-threaded process
// (no code runs between fork and exec) and closes every descriptor gridd holds, so no child
// inherits a listening socket or a database file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace gridd {

// A child process could not be started (or its output not captured).
class ProcessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Starts argv[0] with stdin on /dev/null and stdout/stderr appended to log_path, in a process
// group of its own (a Ctrl-C meant for gridd must not stop haproxy behind the supervisor's
// back). Returns the child's pid; the caller reaps it. Throws ProcessError.
pid_t SpawnDetached(const std::vector<std::string>& argv, const std::filesystem::path& log_path);

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or after the timeout
  std::string output;  // stdout and stderr, interleaved as written
};

// Runs argv to completion and captures its output; kills it after `timeout`. Throws ProcessError
// when it cannot be started.
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// Non-blocking reap of one child. True if `pid` has exited (and was reaped now or earlier);
// fills `description` with how it ended.
bool ChildExited(pid_t pid, std::string* description);

// SIGTERM, wait up to `grace`, then SIGKILL, and reap. Only for children of this process.
void TerminateChild(pid_t pid, std::chrono::milliseconds grace);

}  // namespace gridd
