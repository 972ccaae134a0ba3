// Running programs from tests: a shell command with its output, and gridctl against a daemon.
#pragma once

#include <filesystem>
#include <string>

namespace gridd::testing {

struct CommandResult {
  int exit_code = -1;  // 128 + signal when a signal ended it
  std::string output;  // stdout and stderr, interleaved
};

// Quotes `text` for /bin/sh.
std::string ShellQuote(const std::string& text);
// Runs `command` with /bin/sh, capturing stdout and stderr.
CommandResult RunCommand(const std::string& command);
// Runs the built gridctl with --data-dir `data_dir` and the given (shell-quoted) arguments.
CommandResult RunGridctl(const std::filesystem::path& data_dir, const std::string& args);

}  // namespace gridd::testing
