// End-to-end: Debian's python3-libcloud GoGrid load-balancer driver against the real gridd.
// The steps live in libcloud_loadbalancer.py (next to this file); this test starts the daemon on
// a free loopback port, prepares an account, starts three echo servers as members, runs the
// script with the account's credentials and checks that it passed. scripts/test installs
// python3-libcloud, so the test is skipped only on machines set up by hand without it.
//
// libcloud takes the account's first free public IP as the virtual IP, and the balancer really
// listens there. Every account receives a block of the configured shared pool (192.0.2.0/24),
// which need not be a loopback address on the test machine. So the script's account is one
// created after the shared pools have been handed out to filler accounts: it has no shared
// addresses, only 127.77.0.0/28 (virtual IPs) and 127.77.1.0/28 (real IPs), given with gridctl.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "integration/tcp_backends.h"
#include "support/api_client.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

TEST(LibcloudLoadBalancer, GoGridDriverManagesABalancerLifecycle) {
  if (!DebianPythonCan("from libcloud.loadbalancer.drivers.gogrid import GoGridLBDriver")) {
    GTEST_SKIP() << kDebianPython
                 << " cannot import libcloud's GoGrid load-balancer driver; install "
                    "python3-libcloud (scripts/test does)";
  }
  const std::filesystem::path script = SourceDir() / "tests" / "e2e" / "libcloud_loadbalancer.py";
  ASSERT_TRUE(std::filesystem::exists(script)) << script;

  DaemonProcess daemon;
  ASSERT_NO_THROW(daemon.Start());

  // An account without addresses from the shared pools: create accounts until one gets none
  // (each takes a block of accounts.ip_block_size addresses while the pools last).
  std::string account, api_key, shared_secret;
  for (int i = 1; i <= 10 && account.empty(); ++i) {
    const std::string name = "libcloud-lb-" + std::to_string(i);
    auto created = RunGridctl(daemon.data_dir(), "account create " + name);
    ASSERT_EQ(created.exit_code, 0) << created.output;
    auto key_out =
        RunGridctl(daemon.data_dir(), "--json apikey create --account " + name + " --role super");
    ASSERT_EQ(key_out.exit_code, 0) << key_out.output;
    const auto key = nlohmann::json::parse(key_out.output);
    ApiClient client(daemon.host(), daemon.port());
    client.SetCredentials(key["api_key"], key["shared_secret"]);
    auto ips = client.Call("grid/ip/list", {{"ip.type", "Public"}});
    ASSERT_EQ(ips.status, 200u) << ips.body;
    if (ips.json()["list"].empty()) {
      account = name;
      api_key = key["api_key"];
      shared_secret = key["shared_secret"];
    }
  }
  ASSERT_FALSE(account.empty()) << "every new account still receives shared public addresses";
  for (const char* pool : {"127.77.0.0/28", "127.77.1.0/28"}) {
    auto added =
        RunGridctl(daemon.data_dir(), "ippool add --datacenter US-West-1 --type public --account " +
                                          account + " " + pool);
    ASSERT_EQ(added.exit_code, 0) << added.output;
  }

  // The members: 127.77.1.2, .3 and .4 greet with m1, m2 and m3.
  EchoBackend m1("m1", "127.77.1.2"), m2("m2", "127.77.1.3"), m3("m3", "127.77.1.4");
  // The virtual port (on 127.77.0.2, the first free public IP) per process, so that tests
  // running in parallel do not collide.
  const int base = 20000 + static_cast<int>(getpid() % 2000) * 20;
  int vip_port = base + 10;
  for (int i = 0; i < 20 && !PortIsFree("127.77.0.2", static_cast<uint16_t>(vip_port)); ++i) {
    vip_port = base + (10 + i + 1) % 20;
  }
  CommandResult result = RunDebianPython(
      script, {"--host", daemon.host(), "--port", std::to_string(daemon.port()), "--key", api_key,
               "--secret", shared_secret, "--vip-port", std::to_string(vip_port), "--member-ports",
               std::to_string(m1.port()) + "," + std::to_string(m2.port()) + "," +
                   std::to_string(m3.port())});
  EXPECT_EQ(result.exit_code, 0) << "libcloud_loadbalancer.py failed (exit " << result.exit_code
                                 << "); its output:\n"
                                 << result.output;
  if (result.exit_code == 0) std::cout << result.output;

  EXPECT_EQ(daemon.Stop(), 0) << "gridd did not exit cleanly on SIGTERM; log:\n"
                              << daemon.LogText();
}

}  // namespace
}  // namespace gridd::testing
