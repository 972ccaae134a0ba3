// End-to-end: Debian's python3-libcloud GoGrid compute driver against the real gridd.
// The steps live in libcloud_compute.py (next to this file); this test starts the daemon on a
// free loopback port, runs the script with the initial account's credentials and checks that
// it passed. scripts/test installs python3-libcloud, so the test is skipped only on machines
// set up by hand without it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

TEST(LibcloudCompute, GoGridDriverManagesAServerLifecycle) {
  if (!DebianPythonCan("import libcloud.compute.drivers.gogrid")) {
    GTEST_SKIP() << kDebianPython
                 << " cannot import libcloud; install python3-libcloud (scripts/test does)";
  }
  const std::filesystem::path script = SourceDir() / "tests" / "e2e" / "libcloud_compute.py";
  ASSERT_TRUE(std::filesystem::exists(script)) << script;

  DaemonProcess daemon;
  ASSERT_NO_THROW(daemon.Start());
  ASSERT_FALSE(daemon.api_key().empty());
  ASSERT_FALSE(daemon.shared_secret().empty());

  CommandResult result =
      RunDebianPython(script, {"--host", daemon.host(), "--port", std::to_string(daemon.port()),
                               "--key", daemon.api_key(), "--secret", daemon.shared_secret()});
  EXPECT_EQ(result.exit_code, 0) << "libcloud_compute.py failed (exit " << result.exit_code
                                 << "); its output:\n"
                                 << result.output;
  if (result.exit_code == 0) std::cout << result.output;

  EXPECT_EQ(daemon.Stop(), 0) << "gridd did not exit cleanly on SIGTERM; log:\n"
                              << daemon.LogText();
}

}  // namespace
}  // namespace gridd::testing
