// gridd facing hostile clients, against the real daemon: TLS (protocols, ciphers, the
// self-signed certificate), rate limits, HTTP limits and slow clients, and private data dirs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

namespace fs = std::filesystem;

// A TCP connection to 127.0.0.1:port from `source` (another loopback address stands for
// another client), or -1.
int ConnectFrom(const std::string& source, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends until it closes the connection (or 10 s pass).
std::string ReadUntilClosed(int fd) {
  std::string out;
  char chunk[4096];
  for (int rounds = 0; rounds < 1000; ++rounds) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) break;
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    out.append(chunk, static_cast<size_t>(n));
  }
  return out;
}

// Sends `request` as is and returns the whole answer; `closed` tells whether the server
// closed the connection afterwards.
std::string SendRaw(uint16_t port, const std::string& request) {
  int fd = ConnectFrom("127.0.0.1", port);
  EXPECT_GE(fd, 0);
  if (fd < 0) return "";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer = ReadUntilClosed(fd);
  ::close(fd);
  return answer;
}

CommandResult OpenSsl(uint16_t port, const std::string& options) {
  return RunCommand("echo | timeout 20 openssl s_client -connect 127.0.0.1:" +
                    std::to_string(port) + " -servername localhost " + options + " 2>&1");
}

unsigned ModeOf(const fs::path& path) {
  struct stat info {};
  ::stat(path.c_str(), &info);
  return info.st_mode & 07777;
}

TEST(Tls, ServesTls12And13WithModernCiphersOnlyAndLogsTheFingerprint) {
  DaemonProcess daemon({"--tls-listen", "127.0.0.1:0"});
  ASSERT_NO_THROW(daemon.Start());
  ASSERT_NE(daemon.tls_port(), 0) << daemon.LogText();
  const fs::path cert = daemon.data_dir() / "tls-cert.pem";
  const fs::path key = daemon.data_dir() / "tls-key.pem";
  ASSERT_TRUE(fs::exists(cert));
  EXPECT_EQ(ModeOf(key), 0600u);

  auto fingerprint =
      RunCommand("openssl x509 -noout -fingerprint -sha256 -in " + ShellQuote(cert.string()));
  ASSERT_EQ(fingerprint.exit_code, 0) << fingerprint.output;
  const std::string value = fingerprint.output.substr(fingerprint.output.find('=') + 1, 95);
  EXPECT_NE(daemon.LogText().find("SHA-256 fingerprint " + value), std::string::npos)
      << value << "\n"
      << daemon.LogText();

  auto tls12 = OpenSsl(daemon.tls_port(), "-tls1_2 -CAfile " + ShellQuote(cert.string()));
  EXPECT_NE(tls12.output.find("Protocol  : TLSv1.2"), std::string::npos) << tls12.output;
  EXPECT_NE(tls12.output.find("Verify return code: 0 (ok)"), std::string::npos) << tls12.output;
  EXPECT_NE(tls12.output.find("Cipher    : ECDHE-ECDSA-AES128-GCM-SHA256"), std::string::npos)
      << tls12.output;
  auto tls13 = OpenSsl(daemon.tls_port(), "-tls1_3");
  EXPECT_NE(tls13.output.find("TLSv1.3"), std::string::npos) << tls13.output;

  // The client is told to offer the old protocol at any security level; gridd must refuse.
  auto tls11 = OpenSsl(daemon.tls_port(), "-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'");
  EXPECT_NE(tls11.exit_code, 0) << tls11.output;
  EXPECT_NE(tls11.output.find("alert protocol version"), std::string::npos) << tls11.output;
  EXPECT_NE(tls11.output.find("Cipher is (NONE)"), std::string::npos) << tls11.output;
  // CBC without AEAD, and no forward secrecy, are refused on TLS 1.2.
  for (const char* cipher : {"ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256"}) {
    auto weak = OpenSsl(daemon.tls_port(), std::string("-tls1_2 -cipher ") + cipher);
    EXPECT_NE(weak.exit_code, 0) << cipher << ":\n" << weak.output;
    EXPECT_NE(weak.output.find("Cipher is (NONE)"), std::string::npos) << weak.output;
  }

  // A GoGrid call over TLS, with curl trusting the self-signed certificate.
  auto list = RunCommand(
      "curl -sS --cacert " + ShellQuote(cert.string()) +
      " 'https://localhost:" + std::to_string(daemon.tls_port()) +
      "/api/grid/image/list?v=1.9&api_key=" + daemon.api_key() + "&sig=" +
      Md5Hex(daemon.api_key() + daemon.shared_secret() + std::to_string(::time(nullptr))) + "'");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("\"status\":\"success\""), std::string::npos) << list.output;

  // A second start keeps the certificate (clients pinned it).
  EXPECT_EQ(daemon.Stop(), 0);
  ASSERT_NO_THROW(daemon.Start());
  auto again =
      RunCommand("openssl x509 -noout -fingerprint -sha256 -in " + ShellQuote(cert.string()));
  EXPECT_EQ(again.output, fingerprint.output);
}

TEST(Tls, PlainHttpCanBeSwitchedOff) {
  DaemonProcess daemon({"--tls-listen", "127.0.0.1:0"});
  daemon.set_config(WriteConfig({{"plain_http = true", "plain_http = false"}}));
  ASSERT_NO_THROW(daemon.Start());
  EXPECT_EQ(daemon.port(), 0);
  ASSERT_NE(daemon.tls_port(), 0);
  const std::string log = daemon.LogText();
  EXPECT_EQ(log.find("listening on http://"), std::string::npos) << log;
  auto tls = OpenSsl(daemon.tls_port(), "-brief");
  EXPECT_NE(tls.output.find("Protocol version: TLSv1.3"), std::string::npos) << tls.output;

  // Without an HTTPS listener, switching plain HTTP off is refused with a clear message.
  daemon.set_extra_args({});
  EXPECT_EQ(daemon.Stop(), 0);
  EXPECT_THROW(daemon.Start(), std::runtime_error);
  EXPECT_NE(daemon.LogText().find("nothing would serve the API"), std::string::npos);
}

TEST(RateLimits, AFloodFromOneKeyDoesNotStopAnotherKey) {
  DaemonProcess daemon;
  daemon.set_config(WriteConfig({{"per_key_rate = 500", "per_key_rate = 0.2"},
                                 {"per_key_burst = 5000", "per_key_burst = 5"}}));
  ASSERT_NO_THROW(daemon.Start());
  auto created =
      RunGridctl(daemon.data_dir(), "apikey create --account default --role super --json");
  ASSERT_EQ(created.exit_code, 0) << created.output;
  auto other_key = nlohmann::json::parse(created.output);
  ApiClient flooder = daemon.Client();
  ApiClient other(daemon.host(), daemon.port());
  other.SetCredentials(other_key["api_key"], other_key["shared_secret"]);

  int throttled = 0;
  int other_served = 0;
  ApiClient::Reply last_throttled;
  for (int i = 0; i < 40; ++i) {
    auto reply = flooder.Call("grid/image/list", {});
    if (reply.status == 429) {
      ++throttled;
      last_throttled = reply;
    }
    if (i % 10 == 9 && other.Call("grid/image/list", {}).status == 200) ++other_served;
  }
  EXPECT_GE(throttled, 30);
  EXPECT_EQ(other_served, 4);
  ASSERT_EQ(last_throttled.status, 429u);
  EXPECT_GE(std::stoi(last_throttled.Header("Retry-After")), 1);
  auto body = last_throttled.json();
  EXPECT_EQ(body["status"], "failure");
  EXPECT_EQ(body["list"][0]["errorcode"], "TooManyRequests");

  auto xml = flooder.Call("grid/image/list", {{"format", "xml"}});
  EXPECT_EQ(xml.status, 429u);
  EXPECT_NE(xml.body.find("TooManyRequests"), std::string::npos) << xml.body;
  EXPECT_EQ(xml.content_type.rfind("text/xml", 0), 0u);
  auto csv = flooder.Call("grid/image/list", {{"format", "csv"}});
  EXPECT_EQ(csv.status, 429u);
  EXPECT_NE(csv.body.find("TooManyRequests"), std::string::npos) << csv.body;
}

TEST(RateLimits, FailedSignaturesAreThrottledHarder) {
  DaemonProcess daemon;
  daemon.set_config(WriteConfig({{"failed_auth_rate = 2", "failed_auth_rate = 0.1"},
                                 {"failed_auth_burst = 200", "failed_auth_burst = 3"}}));
  ASSERT_NO_THROW(daemon.Start());
  ApiClient client = daemon.Client();
  for (int i = 0; i < 3; ++i) {
    auto bad = client.Call("grid/image/list", {{"sig", std::string(32, '0')}});
    EXPECT_EQ(bad.status, 403u) << bad.body;
  }
  // The address has spent its failures: even a good signature waits now.
  auto refused = client.Call("grid/image/list", {});
  EXPECT_EQ(refused.status, 429u) << refused.body;
  EXPECT_GE(std::stoi(refused.Header("Retry-After")), 1);
}

TEST(HttpHardening, OversizedOrMalformedRequestsGetAnErrorAndAreClosed) {
  DaemonProcess daemon;
  ASSERT_NO_THROW(daemon.Start());

  std::string many_headers = "GET /api/grid/image/list HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 100; ++i) many_headers += "X-H" + std::to_string(i) + ": 1\r\n";
  auto answer = SendRaw(daemon.port(), many_headers + "\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 431", 0), 0u) << answer;

  auto long_line = SendRaw(daemon.port(), "GET /api/grid/image/list?x=" + std::string(5000, 'a') +
                                              " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(long_line.rfind("HTTP/1.1 414", 0), 0u) << long_line.substr(0, 200);

  // ReadUntilClosed returns only once the server has closed the connection.
  auto garbage = SendRaw(daemon.port(), "GARBAGE \x01\x02 nonsense\r\n\r\n");
  EXPECT_EQ(garbage.rfind("HTTP/1.1 400", 0), 0u) << garbage;
  EXPECT_NE(garbage.find("Connection: close"), std::string::npos) << garbage;

  // Input never comes back unescaped: a hostile path in an XML error.
  ApiClient client = daemon.Client();
  auto xml = client.Raw("GET", "/api/%3Cscript%3Ealert(1)%3C%2Fscript%3E?format=xml");
  EXPECT_EQ(xml.status, 400u);
  EXPECT_EQ(xml.body.find("<script>"), std::string::npos) << xml.body;
}

TEST(HttpHardening, ConnectionsBeyondThePerAddressLimitAreClosed) {
  DaemonProcess daemon;
  daemon.set_config(
      WriteConfig({{"max_connections_per_address = 256", "max_connections_per_address = 5"}}));
  ASSERT_NO_THROW(daemon.Start());
  std::vector<int> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(ConnectFrom("127.0.0.3", daemon.port()));
    ASSERT_GE(held.back(), 0);
  }
  // The five are open and waiting; give the server a request round trip to count them.
  ApiClient client = daemon.Client();
  EXPECT_EQ(client.Call("grid/image/list", {}).status, 200u);
  int sixth = ConnectFrom("127.0.0.3", daemon.port());
  ASSERT_GE(sixth, 0);
  const std::string request = "GET /api/grid/image/list HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(sixth, request.data(), request.size(), MSG_NOSIGNAL);
  EXPECT_EQ(ReadUntilClosed(sixth), "") << "the sixth connection from one address was served";
  ::close(sixth);
  // Another address is still served.
  EXPECT_EQ(client.Call("grid/image/list", {}).status, 200u);
  for (int fd : held) ::close(fd);
}

TEST(HttpHardening, AThousandSlowClientsDoNotStopANormalClient) {
  struct rlimit limit {};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  ASSERT_GE(limit.rlim_cur, 1200u) << "raise the open-files limit to run this test";

  DaemonProcess daemon;
  ASSERT_NO_THROW(daemon.Start());
  ApiClient client = daemon.Client();
  ASSERT_EQ(client.Call("grid/image/list", {}).status, 200u);

  // 1,000 clients from four addresses (within the per-address limit), each sending a request
  // header one byte at a time and never finishing it.
  std::vector<int> slow;
  for (int i = 0; i < 1000; ++i) {
    int fd = ConnectFrom("127.0.0." + std::to_string(10 + i / 250), daemon.port());
    ASSERT_GE(fd, 0) << "connection " << i;
    slow.push_back(fd);
  }
  const std::string header = "GET /api/grid/image/list HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
  std::vector<double> latencies_ms;
  int served = 0;
  for (size_t round = 0; round < 20; ++round) {
    for (int fd : slow) {
      const char byte = round < header.size() ? header[round] : 'a';
      ::send(fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    const auto start = std::chrono::steady_clock::now();
    auto reply = client.Call("grid/image/list", {});
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
    if (reply.status == 200) ++served;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int fd : slow) ::close(fd);
  EXPECT_EQ(served, 20);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::printf("normal client beside 1000 slow clients: %zu requests, median %.2f ms, max %.2f ms\n",
              latencies_ms.size(), latencies_ms[latencies_ms.size() / 2], latencies_ms.back());
}

// scripts/examples/hmac-request.sh against `daemon`, with `env` (NAME=VALUE …) set.
CommandResult HmacExample(const DaemonProcess& daemon, const std::string& env,
                          const std::string& args) {
  return RunCommand(
      "GRIDD_URL=http://127.0.0.1:" + std::to_string(daemon.port()) + " GRIDD_API_KEY=" +
      ShellQuote(daemon.api_key()) + " GRIDD_SECRET=" + ShellQuote(daemon.shared_secret()) + " " +
      env + " " + ShellQuote((SourceDir() / "scripts" / "examples" / "hmac-request.sh").string()) +
      " " + args + " 2>&1");
}

TEST(HmacSigning, TheExampleSignsAndReplayedOrAlteredRequestsAreRefused) {
  DaemonProcess daemon;
  ASSERT_NO_THROW(daemon.Start());
  const std::string args = "grid/image/list v=1.9 format=json 'description=a b&c/é'";
  auto first = HmacExample(daemon, "", args);
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("\"status\":\"success\""), std::string::npos) << first.output;

  const std::string fixed =
      "GRIDD_NONCE=0123456789abcdef0123 GRIDD_TIMESTAMP=" + std::to_string(::time(nullptr));
  auto once = HmacExample(daemon, fixed, args);
  EXPECT_EQ(once.exit_code, 0) << once.output;
  auto replayed = HmacExample(daemon, fixed, args);
  EXPECT_NE(replayed.exit_code, 0) << replayed.output;
  EXPECT_NE(replayed.output.find("replayed request"), std::string::npos) << replayed.output;

  // A signed URL with one parameter changed is refused, and so is a stale one.
  auto url = HmacExample(daemon, "GRIDD_PRINT_URL=1", args);
  ASSERT_EQ(url.exit_code, 0) << url.output;
  std::string target = url.output.substr(0, url.output.find('\n'));
  const size_t at = target.find("format=json");
  ASSERT_NE(at, std::string::npos) << target;
  std::string altered = target;
  altered.replace(at, 11, "format=JSON");
  ApiClient client(daemon.host(), daemon.port());
  auto refused = client.Raw("GET", altered);
  EXPECT_EQ(refused.status, 403u) << refused.body;
  EXPECT_NE(refused.body.find("invalid signature"), std::string::npos) << refused.body;
  EXPECT_EQ(client.Raw("GET", target).status, 200u);

  auto stale =
      HmacExample(daemon, "GRIDD_TIMESTAMP=" + std::to_string(::time(nullptr) - 5000), args);
  EXPECT_NE(stale.exit_code, 0);
  EXPECT_NE(stale.output.find("timestamp outside the signature window"), std::string::npos)
      << stale.output;

  // A key listed in the deprecated auth.hmac_only_keys can no longer use GoGrid's MD5
  // signature: the list is written to the key's signing policy at start, with a warning.
  EXPECT_EQ(daemon.Stop(), 0);
  daemon.set_config(
      WriteConfig({{"hmac_only_keys = []", "hmac_only_keys = [\"" + daemon.api_key() + "\"]"}}));
  ASSERT_NO_THROW(daemon.Start());
  auto md5 = daemon.Client().Call("grid/image/list", {});
  EXPECT_EQ(md5.status, 403u) << md5.body;
  EXPECT_NE(md5.body.find("must sign with sig_method=HMAC-SHA256"), std::string::npos) << md5.body;
  auto hmac = HmacExample(daemon, "", args);
  EXPECT_EQ(hmac.exit_code, 0) << hmac.output;
  EXPECT_NE(daemon.LogText().find("auth.hmac_only_keys is deprecated"), std::string::npos);
  auto listed = RunGridctl(daemon.data_dir(), "apikey list --json");
  EXPECT_NE(listed.output.find("\"hmac-only\""), std::string::npos) << listed.output;
}

TEST(Secrets, DataDirAndDatabaseArePrivateAndOpenOnesAreRefused) {
  DaemonProcess daemon;
  ASSERT_NO_THROW(daemon.Start());
  EXPECT_EQ(ModeOf(daemon.data_dir()) & 0077, 0u);
  EXPECT_EQ(ModeOf(daemon.data_dir() / "gridd.db"), 0600u);
  EXPECT_EQ(ModeOf(daemon.data_dir() / "master.key"), 0600u);
  // The shared secret is in no log line.
  EXPECT_EQ(daemon.LogText().find(daemon.shared_secret()), std::string::npos);
  EXPECT_EQ(daemon.Stop(), 0);

  ::chmod(daemon.data_dir().c_str(), 0755);
  EXPECT_THROW(daemon.Start(), std::runtime_error);
  EXPECT_NE(daemon.LogText().find("is accessible by other users (mode 0755)"), std::string::npos)
      << daemon.LogText();
  ::chmod(daemon.data_dir().c_str(), 0700);
  ::chmod((daemon.data_dir() / "gridd.db").c_str(), 0644);
  EXPECT_THROW(daemon.Start(), std::runtime_error);
  EXPECT_NE(daemon.LogText().find("database"), std::string::npos);
  ::chmod((daemon.data_dir() / "gridd.db").c_str(), 0600);
  EXPECT_NO_THROW(daemon.Start());
}

}  // namespace
}  // namespace gridd::testing
