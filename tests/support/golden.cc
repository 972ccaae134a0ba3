#include "support/golden.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "support/test_paths.h"

namespace gridd::testing {

std::string ReadGolden(const std::string& name) {
  const auto path = SourceDir() / "tests" / "golden" / name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read golden file " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void ExpectGolden(const std::string& name, const std::string& actual) {
  if (std::getenv("GRIDD_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(SourceDir() / "tests" / "golden" / name, std::ios::binary) << actual;
  }
  EXPECT_EQ(ReadGolden(name), actual) << "golden file tests/golden/" << name;
}

}  // namespace gridd::testing
