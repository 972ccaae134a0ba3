// End-to-end: Debian's python3-libcloud GoGrid driver over gridd's HTTPS listener, verifying
// the self-signed certificate gridd made on its first start (libcloud_tls.py does the steps).
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <string>

#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

TEST(LibcloudTls, GoGridDriverWorksOverHttpsWithTheSelfSignedCertificate) {
  if (!DebianPythonCan("import libcloud.compute.drivers.gogrid")) {
    GTEST_SKIP() << kDebianPython
                 << " cannot import libcloud; install python3-libcloud (scripts/test does)";
  }
  const std::filesystem::path script = SourceDir() / "tests" / "e2e" / "libcloud_tls.py";
  DaemonProcess daemon({"--tls-listen", "127.0.0.1:0"});
  ASSERT_NO_THROW(daemon.Start());
  ASSERT_NE(daemon.tls_port(), 0);
  // The certificate names localhost and 127.0.0.1; libcloud checks the host name.
  CommandResult result =
      RunDebianPython(script, {"--host", "127.0.0.1", "--port", std::to_string(daemon.tls_port()),
                               "--key", daemon.api_key(), "--secret", daemon.shared_secret(),
                               "--ca-file", (daemon.data_dir() / "tls-cert.pem").string()});
  EXPECT_EQ(result.exit_code, 0) << "libcloud_tls.py failed; its output:\n" << result.output;
  if (result.exit_code == 0) std::cout << result.output;
  EXPECT_EQ(daemon.Stop(), 0);
}

}  // namespace
}  // namespace gridd::testing
