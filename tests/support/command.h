// Running programs from tests: a shell command with its output, and gridctl against a daemon.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

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

// Debian's Python, run with -I: PYTHON* variables and the user's site-packages are ignored, so
// only Debian's packages (python3-libcloud) count.
inline constexpr char kDebianPython[] = "/usr/bin/python3";
// Whether Debian's Python can run `statement` (an import of what a test needs).
bool DebianPythonCan(const std::string& statement);
// Runs `script` with Debian's Python and `args`, each quoted.
CommandResult RunDebianPython(const std::filesystem::path& script,
                              const std::vector<std::string>& args);

}  // namespace gridd::testing
