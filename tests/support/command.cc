#include "support/command.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>

#include "support/test_paths.h"

namespace gridd::testing {

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed for: " + command;
    return result;
  }
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.output.append(buffer.data(), n);
  }
  const int status = pclose(pipe);
  if (status != -1 && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (status != -1 && WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

CommandResult RunGridctl(const std::filesystem::path& data_dir, const std::string& args) {
  return RunCommand(ShellQuote((BinaryDir() / "gridctl").string()) + " --data-dir " +
                    ShellQuote(data_dir.string()) + " " + args);
}

bool DebianPythonCan(const std::string& statement) {
  if (!std::filesystem::exists(kDebianPython)) return false;
  return RunCommand(std::string(kDebianPython) + " -I -c " + ShellQuote(statement)).exit_code == 0;
}

CommandResult RunDebianPython(const std::filesystem::path& script,
                              const std::vector<std::string>& args) {
  std::string command = std::string(kDebianPython) + " -I " + ShellQuote(script.string());
  for (const auto& arg : args) command += " " + ShellQuote(arg);
  return RunCommand(command);
}

}  // namespace gridd::testing
