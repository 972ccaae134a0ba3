#include "support/test_paths.h"

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace gridd::testing {

std::filesystem::path SourceDir() { return GRIDD_SOURCE_DIR; }
std::filesystem::path BinaryDir() { return GRIDD_BINARY_DIR; }

std::filesystem::path MakeTempDir(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + pattern);
  return pattern;
}

std::filesystem::path ScratchDir(const std::string& prefix) {
  static struct Cleanup {
    std::vector<std::filesystem::path> dirs;
    ~Cleanup() {
      for (const auto& dir : dirs) {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      }
    }
  } cleanup;
  cleanup.dirs.push_back(MakeTempDir(prefix));
  return cleanup.dirs.back();
}

std::string TestNodeXml(int64_t ram_mib) {
  std::ifstream in(SourceDir() / "config" / "test-node.xml");
  std::ostringstream read;
  read << in.rdbuf();
  return std::regex_replace(read.str(), std::regex("<memory>[0-9]+</memory>"),
                            "<memory>" + std::to_string(ram_mib * 1024) + "</memory>");
}

std::string ReadFile(const std::filesystem::path& path, std::streamoff offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace gridd::testing
