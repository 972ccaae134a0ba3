// Golden files: expected outputs kept under tests/golden/. Setting GRIDD_UPDATE_GOLDEN=1 when
// running a test rewrites the files it compares against from the current output.
#pragma once

#include <string>

namespace gridd::testing {

// The bytes of tests/golden/<name> (name may hold a subdirectory, e.g. "api/job.json").
// Records a test failure when the file cannot be read.
std::string ReadGolden(const std::string& name);
// Expects `actual` to equal tests/golden/<name> byte for byte.
void ExpectGolden(const std::string& name, const std::string& actual);

}  // namespace gridd::testing
