#include "support/test_paths.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace gridd::testing {

std::filesystem::path SourceDir() { return GRIDD_SOURCE_DIR; }
std::filesystem::path BinaryDir() { return GRIDD_BINARY_DIR; }

std::filesystem::path MakeTempDir(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + pattern);
  return pattern;
}

}  // namespace gridd::testing
