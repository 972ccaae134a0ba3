#include "gridd/common/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "support/test_paths.h"
#include "unit/common/config_test_util.h"

namespace gridd {
namespace {

namespace fs = std::filesystem;

// Writes `text` to <fresh temp dir>/gridd.toml and returns the file's path.
// The message LoadConfig throws for `text`; fails the test when it loads fine.
std::string LoadError(const std::string& text) {
  const fs::path path = WriteConfig(text);
  try {
    LoadConfig(path);
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(path.string(), 0), 0u)
        << "message does not start with the file: " << message;
    return message;
  }
  ADD_FAILURE() << "LoadConfig accepted:\n" << text;
  return "";
}

TEST(LoadConfigTest, ParsesEveryKeyOfTheShippedConfiguration) {
  const fs::path file = testing::SourceDir() / "config" / "gridd.toml";
  const Config config = LoadConfig(file);
  const fs::path config_dir = fs::absolute(file).parent_path();

  EXPECT_EQ(config.listen_host, "127.0.0.1");
  EXPECT_EQ(config.listen_port, 8080);
  EXPECT_EQ(config.http_threads, 4);
  EXPECT_EQ(config.max_header_bytes, 8192u);
  EXPECT_EQ(config.max_body_bytes, 1048576u);
  EXPECT_EQ(config.idle_timeout_seconds, 30);

  // "../gridd-data" is relative to config/, not to the working directory.
  EXPECT_EQ(config.data_dir, (config_dir / "../gridd-data").lexically_normal());
  EXPECT_TRUE(config.data_dir.is_absolute());

  EXPECT_EQ(config.signature_window_past_seconds, 600);
  EXPECT_EQ(config.signature_window_future_seconds, 300);

  // "test://./test-node.xml" names the node file next to the configuration.
  const fs::path node_file = (config_dir / "test-node.xml").lexically_normal();
  EXPECT_EQ(config.libvirt_uri, "test://" + node_file.string());
  EXPECT_TRUE(fs::exists(node_file));
  EXPECT_EQ(config.storage_pool, "gridd");
  EXPECT_EQ(config.shutdown_timeout_seconds, 60);

  EXPECT_EQ(config.job_workers, 4);
  EXPECT_EQ(config.job_lease_seconds, 300);
  EXPECT_EQ(config.job_max_attempts, 5);
  EXPECT_EQ(config.job_retry_base_ms, 1000);
  EXPECT_EQ(config.job_retry_max_ms, 60000);
  EXPECT_EQ(config.job_deadline_seconds, 600);
  ASSERT_EQ(config.job_deadlines_by_command.size(), 5u);
  EXPECT_NE(
      std::find(config.job_deadlines_by_command.begin(), config.job_deadlines_by_command.end(),
                std::pair<std::string, int>{"StopVirtualServer", 300}),
      config.job_deadlines_by_command.end());
  EXPECT_EQ(config.reconcile_interval_seconds, 60);
  EXPECT_FALSE(config.reconcile_remove_orphans);
  EXPECT_EQ(config.image_trash_retention_hours, 72);

  EXPECT_TRUE(config.lb_enabled);
  EXPECT_EQ(config.haproxy_binary, "/usr/sbin/haproxy");
  EXPECT_EQ(config.lb_health_check_interval_ms, 1000);
  EXPECT_EQ(config.lb_status_interval_ms, 1000);

  EXPECT_EQ(config.ip_block_size, 64);
  EXPECT_EQ(config.initial_account, "default");
  EXPECT_EQ(config.log_level, "info");
  EXPECT_TRUE(config.access_log);
  EXPECT_EQ(config.log_format, "text");
  EXPECT_EQ(config.log_output, "auto");
  EXPECT_TRUE(config.metrics_enabled);
  EXPECT_EQ(config.metrics_host, "127.0.0.1");
  EXPECT_EQ(config.metrics_port, 9464);

  ASSERT_EQ(config.datacenters.size(), 1u);
  EXPECT_EQ(config.datacenters[0].id, 1);
  EXPECT_EQ(config.datacenters[0].name, "US-West-1");
  EXPECT_EQ(config.datacenters[0].description, "US West 1 Datacenter");

  ASSERT_EQ(config.ip_pools.size(), 2u);
  EXPECT_EQ(config.ip_pools[0].datacenter, "US-West-1");
  EXPECT_TRUE(config.ip_pools[0].is_public);
  EXPECT_EQ(config.ip_pools[0].cidr, "192.0.2.0/24");
  EXPECT_EQ(config.ip_pools[0].network, "gridd-public-1");
  EXPECT_FALSE(config.ip_pools[1].is_public);
  EXPECT_EQ(config.ip_pools[1].cidr, "198.51.100.0/24");
  EXPECT_EQ(config.ip_pools[1].network, "gridd-private-1");

  ASSERT_EQ(config.images.size(), 4u);
  const ImageSeed& debian = config.images[0];
  EXPECT_EQ(debian.name, "debian-12-amd64");
  EXPECT_EQ(debian.friendly_name, "Debian 12 (64-bit)");
  EXPECT_EQ(debian.description, "Debian 12 bookworm, minimal");
  EXPECT_EQ(debian.os, "Debian 12 (64-bit)");
  EXPECT_EQ(debian.architecture, "64-bit");
  EXPECT_EQ(debian.type, "Web Server");
  EXPECT_EQ(debian.volume, "debian-12-amd64.qcow2");
  EXPECT_EQ(debian.price, 0.0);
  EXPECT_EQ(config.images[1].name, "ubuntu-22.04-amd64");
  EXPECT_EQ(config.images[2].name, "centos-7-x86_64");
  EXPECT_EQ(config.images[3].name, "alpine-3.18-x86_64");
  EXPECT_EQ(config.images[3].volume, "alpine-3.18-x86_64.qcow2");
}

TEST(LoadConfigTest, RelativePathsAreResolvedAgainstTheFilesDirectory) {
  const fs::path path = WriteConfig(R"(
[storage]
data_dir = "state/db"
[libvirt]
uri = "test://./nodes/node.xml"
)");
  const fs::path dir = path.parent_path();
  const Config config = LoadConfig(path);
  EXPECT_EQ(config.data_dir, dir / "state" / "db");
  EXPECT_EQ(config.libvirt_uri, "test://" + (dir / "nodes" / "node.xml").string());
}

TEST(LoadConfigTest, GuestKeysAreReadAndChecked) {
  const fs::path path = WriteConfig(R"(
[libvirt]
uri = "qemu:///embed"
pool_path = "pool"
domain_type = "qemu"
console_log_max_bytes = 65536
[[ippool]]
datacenter = "US-West-1"
type = "public"
cidr = "203.0.113.0/24"
)");
  const Config config = LoadConfig(path);
  EXPECT_EQ(config.pool_path, path.parent_path() / "pool");
  EXPECT_EQ(config.domain_type, "qemu");
  EXPECT_EQ(config.console_log_max_bytes, 65536);
  // A pool without a network gives its servers no NIC.
  ASSERT_EQ(config.ip_pools.size(), 1u);
  EXPECT_EQ(config.ip_pools[0].network, "");
  EXPECT_EQ(LoadConfig(WriteConfig("")).domain_type, "auto");

  std::string message = LoadError("[libvirt]\ndomain_type = \"xen\"\n");
  EXPECT_NE(message.find("libvirt.domain_type"), std::string::npos) << message;
  message = LoadError("[libvirt]\nconsole_log_max_bytes = 100\n");
  EXPECT_NE(message.find("libvirt.console_log_max_bytes: must be at least 4096"), std::string::npos)
      << message;
}

TEST(LoadConfigTest, AbsolutePathsAndOtherUrisAreKept) {
  const Config config = LoadConfig(WriteConfig(R"(
[storage]
data_dir = "/var/lib/gridd"
[libvirt]
uri = "qemu+ssh://root@host/system"
)"));
  EXPECT_EQ(config.data_dir, fs::path("/var/lib/gridd"));
  EXPECT_EQ(config.libvirt_uri, "qemu+ssh://root@host/system");

  const Config absolute_test = LoadConfig(WriteConfig("[libvirt]\nuri = \"test:///default\"\n"));
  EXPECT_EQ(absolute_test.libvirt_uri, "test:///default");
}

TEST(LoadConfigTest, MissingKeysKeepTheirDefaults) {
  const Config defaults;
  const Config config = LoadConfig(WriteConfig("[server]\nthreads = 2\n"));
  EXPECT_EQ(config.http_threads, 2);
  EXPECT_EQ(config.listen_host, defaults.listen_host);
  EXPECT_EQ(config.listen_port, defaults.listen_port);
  EXPECT_EQ(config.job_workers, defaults.job_workers);
  EXPECT_EQ(config.ip_block_size, defaults.ip_block_size);
  EXPECT_EQ(config.libvirt_uri, "");
  EXPECT_TRUE(config.datacenters.empty());
  EXPECT_TRUE(config.ip_pools.empty());
  EXPECT_TRUE(config.images.empty());
}

TEST(LoadConfigTest, ListenAcceptsIpv6AndPortZero) {
  const Config config = LoadConfig(WriteConfig("[server]\nlisten = \"[::1]:0\"\n"));
  EXPECT_EQ(config.listen_host, "::1");
  EXPECT_EQ(config.listen_port, 0);
}

TEST(LoadConfigTest, OptionalSeedFieldsGetDefaults) {
  const Config config = LoadConfig(WriteConfig(R"(
[[datacenter]]
id = 7
name = "EU-1"

[[image]]
name = "tiny"
os = "Tiny Linux"
volume = "tiny.qcow2"
price = 0.25
)"));
  ASSERT_EQ(config.datacenters.size(), 1u);
  EXPECT_EQ(config.datacenters[0].description, "EU-1 Datacenter");
  ASSERT_EQ(config.images.size(), 1u);
  EXPECT_EQ(config.images[0].friendly_name, "tiny");
  EXPECT_EQ(config.images[0].description, "");
  EXPECT_EQ(config.images[0].architecture, "64-bit");
  EXPECT_EQ(config.images[0].type, "Web Server");
  EXPECT_EQ(config.images[0].price, 0.25);
}

TEST(LoadConfigTest, BadListenNamesTheKey) {
  std::string message = LoadError("[server]\nlisten = \"localhost\"\n");
  EXPECT_NE(message.find("server.listen"), std::string::npos) << message;
  message = LoadError("[server]\nlisten = \"127.0.0.1:70000\"\n");
  EXPECT_NE(message.find("server.listen"), std::string::npos) << message;
  EXPECT_NE(message.find("70000"), std::string::npos) << message;
  message = LoadError("[server]\nlisten = 8080\n");
  EXPECT_NE(message.find("server.listen: expected a string"), std::string::npos) << message;
}

TEST(LoadConfigTest, BadNumbersNameTheKeyAndTheProblem) {
  struct Case {
    const char* toml;
    const char* expected;
  };
  const Case cases[] = {
      {"[server]\nthreads = 0\n", "server.threads: must be at least 1"},
      {"[server]\nthreads = \"four\"\n", "server.threads: expected an integer"},
      {"[server]\nmax_body_bytes = -1\n", "server.max_body_bytes: out of range"},
      {"[server]\nmax_header_bytes = 5000000000\n", "server.max_header_bytes: out of range"},
      {"[auth]\nsignature_window_past_seconds = 1.5\n",
       "auth.signature_window_past_seconds: expected an integer"},
      {"[jobs]\nworkers = 0\n", "jobs.workers: must be at least 1"},
      {"[jobs]\nmax_attempts = 0\n", "jobs.max_attempts: must be at least 1"},
      {"[jobs]\nlease_seconds = -5\n", "jobs.lease_seconds: out of range"},
      {"[accounts]\nip_block_size = 0\n", "accounts.ip_block_size: must be at least 1"},
      {"[loadbalancer]\nhealth_check_interval_ms = 99\n",
       "loadbalancer.health_check_interval_ms: must be at least 100"},
      {"[loadbalancer]\nstatus_interval_ms = 0\n",
       "loadbalancer.status_interval_ms: must be at least 100"},
      {"[loadbalancer]\nenabled = 1\n", "loadbalancer.enabled: expected true or false"},
      {"[billing]\nperiod_start_day = 0\n", "billing.period_start_day: must be 1-28"},
      {"[billing]\nperiod_start_day = 29\n", "billing.period_start_day: must be 1-28"},
      {"[billing]\nmemory_gb_hour_price = -0.1\n", "billing.memory_gb_hour_price: must be a price"},
      {"[billing]\ntransfer_gb_price = \"free\"\n", "billing.transfer_gb_price: expected a number"},
      {"[billing]\nmemory_allotment_gb_hours = -1\n",
       "billing.memory_allotment_gb_hours: out of range"},
      {"[billing]\nbill_powered_off_servers = \"no\"\n",
       "billing.bill_powered_off_servers: expected true or false"},
      {"[jobs]\ndeadline_seconds = 0\n", "jobs.deadline_seconds: must be at least 1"},
      {"[jobs.deadlines]\nStopVirtualServer = 0\n",
       "jobs.deadlines.StopVirtualServer: must be a whole number of seconds between 1 and 86400"},
      {"[jobs.deadlines]\nStopVirtualServer = 2.5\n",
       "jobs.deadlines.StopVirtualServer: must be a whole number of seconds"},
      {"[jobs]\ndeadlines = 5\n", "jobs.deadlines: expected a table of command = seconds"},
      {"[reconciler]\ninterval_seconds = -1\n", "reconciler.interval_seconds: out of range"},
      {"[reconciler]\nremove_orphans = \"yes\"\n",
       "reconciler.remove_orphans: expected true or false"},
      {"[images]\ntrash_retention_hours = -1\n", "images.trash_retention_hours: out of range"},
      {"[images]\ntrash_retention_hours = 87601\n",
       "images.trash_retention_hours: must be 0 (never purge) to 87600"},
      {"[images]\ntrash_retention_hours = \"3d\"\n", "images.trash_retention_hours: expected"},
  };
  for (const Case& c : cases) {
    const std::string message = LoadError(c.toml);
    EXPECT_NE(message.find(c.expected), std::string::npos) << "for:\n"
                                                           << c.toml << "got: " << message;
  }
}

TEST(LoadConfigTest, BadLogAndMetricsSettingsNameTheKey) {
  EXPECT_NE(LoadError("[log]\nlevel = \"loud\"\n").find("log.level: must be trace"),
            std::string::npos);
  EXPECT_NE(LoadError("[log]\nformat = \"xml\"\n").find("log.format: must be"), std::string::npos);
  EXPECT_NE(LoadError("[log]\noutput = \"syslog\"\n").find("log.output: must be"),
            std::string::npos);
  EXPECT_NE(LoadError("[metrics]\nlisten = \"9464\"\n").find("metrics.listen: "),
            std::string::npos);
  const Config config = LoadConfig(
      WriteConfig("[log]\nformat = \"json\"\n[metrics]\nenabled = false\nlisten = \"[::1]:0\"\n"));
  EXPECT_EQ(config.log_format, "json");
  EXPECT_FALSE(config.metrics_enabled);
  EXPECT_EQ(config.metrics_host, "::1");
  EXPECT_EQ(config.metrics_port, 0);
}

TEST(LoadConfigTest, BillingKeysAreReadAndDefaultToGoGridsRamPrice) {
  const Config defaults = LoadConfig(WriteConfig(""));
  EXPECT_EQ(defaults.billing_period_start_day, 1);
  EXPECT_DOUBLE_EQ(defaults.billing_memory_gb_hour_price, 0.19);
  EXPECT_TRUE(defaults.billing_powered_off_servers);
  const Config config =
      LoadConfig(WriteConfig("[billing]\nperiod_start_day = 15\nmemory_allotment_gb_hours = 720\n"
                             "memory_allotment_price = 49.5\nmemory_gb_hour_price = 0.08\n"
                             "transfer_allotment_gb = 100\ntransfer_gb_price = 0.29\n"
                             "bill_powered_off_servers = false\n"));
  EXPECT_EQ(config.billing_period_start_day, 15);
  EXPECT_EQ(config.billing_memory_allotment_gb_hours, 720);
  EXPECT_DOUBLE_EQ(config.billing_memory_allotment_price, 49.5);
  EXPECT_DOUBLE_EQ(config.billing_memory_gb_hour_price, 0.08);
  EXPECT_EQ(config.billing_transfer_allotment_gb, 100);
  EXPECT_DOUBLE_EQ(config.billing_transfer_gb_price, 0.29);
  EXPECT_FALSE(config.billing_powered_off_servers);
}

TEST(LoadConfigTest, WrongTypesNameTheKey) {
  std::string message = LoadError("[log]\naccess_log = \"yes\"\n");
  EXPECT_NE(message.find("log.access_log: expected true or false"), std::string::npos) << message;
  message = LoadError("[storage]\ndata_dir = 5\n");
  EXPECT_NE(message.find("storage.data_dir: expected a string"), std::string::npos) << message;
  message = LoadError("[libvirt]\nuri = true\n");
  EXPECT_NE(message.find("libvirt.uri: expected a string"), std::string::npos) << message;
}

TEST(LoadConfigTest, BadSeedsNameTheEntryAndField) {
  std::string message = LoadError("[[datacenter]]\nname = \"X\"\n");
  EXPECT_NE(message.find("datacenter[0].id: required positive integer"), std::string::npos)
      << message;
  message = LoadError("[[datacenter]]\nid = 0\nname = \"X\"\n");
  EXPECT_NE(message.find("datacenter[0].id"), std::string::npos) << message;
  message = LoadError("[[datacenter]]\nid = 1\nname = \"A\"\n[[datacenter]]\nid = 2\n");
  EXPECT_NE(message.find("datacenter[1].name: required string missing"), std::string::npos)
      << message;
  message = LoadError(
      "[[ippool]]\ndatacenter = \"A\"\ntype = \"shared\"\ncidr = \"10.0.0.0/24\"\n"
      "network = \"n\"\n");
  EXPECT_NE(message.find("ippool[0].type: public or private"), std::string::npos) << message;
  message = LoadError("[[ippool]]\ndatacenter = \"A\"\ntype = \"public\"\nnetwork = \"n\"\n");
  EXPECT_NE(message.find("ippool[0].cidr: required string missing"), std::string::npos) << message;
  message = LoadError("[[image]]\nname = \"a\"\nos = \"Linux\"\n");
  EXPECT_NE(message.find("image[0].volume: required string missing"), std::string::npos) << message;
  message = LoadError("[[image]]\nname = \"a\"\nos = \"\"\nvolume = \"v\"\n");
  EXPECT_NE(message.find("image[0].os: required string missing"), std::string::npos) << message;
}

// config.h promises that loading validates every value and names the offending key: an
// optional seed field of the wrong type must not silently fall back to its default (a quoted
// price would make a paid image free).
TEST(LoadConfigTest, OptionalSeedFieldsOfTheWrongTypeNameTheField) {
  std::string message =
      LoadError("[[image]]\nname = \"a\"\nos = \"Linux\"\nvolume = \"v\"\nprice = \"0.10\"\n");
  EXPECT_NE(message.find("image[0].price"), std::string::npos) << message;
  message =
      LoadError("[[image]]\nname = \"a\"\nos = \"Linux\"\nvolume = \"v\"\nfriendly_name = 5\n");
  EXPECT_NE(message.find("image[0].friendly_name"), std::string::npos) << message;
  message = LoadError("[[datacenter]]\nid = 1\nname = \"A\"\ndescription = true\n");
  EXPECT_NE(message.find("datacenter[0].description"), std::string::npos) << message;
}

TEST(LoadConfigTest, SyntaxErrorsNameTheFileAndLine) {
  const std::string message = LoadError("[server]\nthreads = 4\n[jobs\nworkers = 2\n");
  EXPECT_NE(message.find("line 3"), std::string::npos) << message;
}

TEST(LoadConfigTest, MissingFileIsAnError) {
  const fs::path path = gridd::testing::ScratchDir("gridd-config-test") / "absent.toml";
  try {
    LoadConfig(path);
    FAIL() << "LoadConfig accepted a missing file";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos) << error.what();
  }
}

// --------------------------------------------------------------------------------- ParseListen
TEST(ParseListenTest, AcceptsHostAndPort) {
  std::string host;
  uint16_t port = 1;
  ParseListen("127.0.0.1:8080", host, port);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8080);
  ParseListen("example.org:65535", host, port);
  EXPECT_EQ(host, "example.org");
  EXPECT_EQ(port, 65535);
  ParseListen("0.0.0.0:0", host, port);
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 0);
}

TEST(ParseListenTest, AcceptsBracketedIpv6) {
  std::string host;
  uint16_t port = 0;
  ParseListen("[::1]:8080", host, port);
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  ParseListen("[2001:db8::7]:443", host, port);
  EXPECT_EQ(host, "2001:db8::7");
  EXPECT_EQ(port, 443);
}

TEST(ParseListenTest, RejectsBadPortsAndLeavesOutputsAlone) {
  for (const char* text : {"127.0.0.1:65536", "127.0.0.1:99999999999", "127.0.0.1:-1",
                           "127.0.0.1:http", "127.0.0.1:80x", "127.0.0.1: 80",
                           "127.0.0.1:", "127.0.0.1", ":8080", "8080", "", "[::1]"}) {
    std::string host = "unchanged";
    uint16_t port = 4242;
    EXPECT_THROW(ParseListen(text, host, port), std::runtime_error) << "accepted '" << text << "'";
    EXPECT_EQ(host, "unchanged") << text;
    EXPECT_EQ(port, 4242) << text;
  }
}

TEST(ParseListenTest, ErrorQuotesTheBadPort) {
  std::string host;
  uint16_t port = 0;
  try {
    ParseListen("127.0.0.1:65536", host, port);
    FAIL() << "accepted port 65536";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("65536"), std::string::npos) << error.what();
  }
}

// An IPv6 address must be written in brackets: "::1" (a forgotten port) must not be read as
// host ":" and port 1, nor "[::1:80" as host "[::1".
TEST(ParseListenTest, RejectsMalformedIpv6) {
  for (const char* text : {"::1", "[::1:80"}) {
    std::string host = "unchanged";
    uint16_t port = 4242;
    EXPECT_THROW(ParseListen(text, host, port), std::runtime_error)
        << "'" << text << "' parsed as host '" << host << "' port " << port;
  }
}

TEST(LoadConfigTest, SecurityKeysHaveTheirDefaultsAndAreRead) {
  const Config shipped = LoadConfig(testing::SourceDir() / "config" / "gridd.toml");
  EXPECT_TRUE(shipped.plain_http);
  EXPECT_TRUE(shipped.tls_listen_host.empty());
  EXPECT_EQ(shipped.max_connections_per_address, 256);
  EXPECT_EQ(shipped.read_timeout_seconds, 10);
  EXPECT_TRUE(shipped.rate_limit_enabled);
  EXPECT_EQ(shipped.per_key_rate, 500);
  EXPECT_EQ(shipped.failed_auth_burst, 200);
  EXPECT_TRUE(shipped.hmac_only_keys.empty());

  const Config config = LoadConfig(
      WriteConfig("[tls]\nlisten = \"[::1]:8443\"\ncert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n"
                  "[ratelimit]\nper_key_rate = 0.5\nper_key_burst = 3\n"
                  "[auth]\nhmac_only_keys = [\"abc\"]\n"));
  EXPECT_EQ(config.tls_listen_host, "::1");
  EXPECT_EQ(config.tls_listen_port, 8443);
  EXPECT_TRUE(config.tls_cert_file.is_absolute());
  EXPECT_EQ(config.tls_key_file, "/k.pem");
  EXPECT_EQ(config.per_key_rate, 0.5);
  EXPECT_EQ(config.per_key_burst, 3);
  EXPECT_EQ(config.hmac_only_keys, std::vector<std::string>{"abc"});
}

TEST(LoadConfigTest, BadSecurityValuesNameTheirKey) {
  EXPECT_NE(LoadError("[ratelimit]\nper_key_rate = 0\n").find("ratelimit.per_key_rate"),
            std::string::npos);
  EXPECT_NE(LoadError("[ratelimit]\nfailed_auth_burst = 0.5\n").find("ratelimit.failed_auth_burst"),
            std::string::npos);
  EXPECT_NE(LoadError("[tls]\nlisten = \"nope\"\n").find("tls.listen"), std::string::npos);
  EXPECT_NE(LoadError("[tls]\ncert_file = \"c.pem\"\n").find("tls.cert_file"), std::string::npos);
  EXPECT_NE(LoadError("[server]\nmax_header_count = 0\n").find("server.max_header_count"),
            std::string::npos);
  EXPECT_NE(LoadError("[auth]\nhmac_only_keys = \"abc\"\n").find("auth.hmac_only_keys"),
            std::string::npos);
}

}  // namespace
}  // namespace gridd
