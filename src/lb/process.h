// Child processes for the HAProxy engine: the supervised master and short-lived checks. Both use
// posix_spawn, which is safe in gridd's multi-threaded process (no code runs between fork and
// exec) and closes every descriptor gridd holds, so haproxy never inherits a listening socket
// or a database file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace gridd::lb {

// Starts argv[0] with stdin on /dev/null and stdout/stderr appended to log_path, in a process
// group of its own (a Ctrl-C meant for gridd must not stop haproxy behind the supervisor's
// back). Returns the child's pid; the caller reaps it. Throws EngineError.
pid_t SpawnDetached(const std::vector<std::string>& argv, const std::filesystem::path& log_path);

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or after the timeout
  std::string output;  // stdout and stderr, interleaved as written
};

// Runs argv to completion and captures its output; kills it after `timeout`. Throws EngineError
// when it cannot be started.
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// Non-blocking reap of one child. True if `pid` has exited (and was reaped now or earlier);
// fills `description` with how it ended.
bool ChildExited(pid_t pid, std::string* description);

// SIGTERM, wait up to `grace`, then SIGKILL, and reap. Only for children of this process.
void TerminateChild(pid_t pid, std::chrono::milliseconds grace);

}  // namespace gridd::lb
