// Shared by the configuration tests: a configuration file written from the test's text.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_paths.h"

namespace gridd {

// Writes `text` to gridd.toml in a fresh scratch directory and returns that file's path.
inline std::filesystem::path WriteConfig(const std::string& text) {
  const std::filesystem::path path = testing::ScratchDir("gridd-config-test") / "gridd.toml";
  std::ofstream(path) << text;
  return path;
}

}  // namespace gridd
