// Real QEMU guests through the HTTP API: the test image from scripts/build-test-image boots
// from a qcow2 overlay, reads its NoCloud seed and reports hostname, address and root password
// hash on its serial console, which the tests read back with `gridctl server console-log`.
// Always on qemu:///embed (QEMU inside gridd); on qemu:///system too when the test command
// started libvirtd and set GRIDD_TEST_LIBVIRTD=1. Guests have no NIC: nothing touches the
// host's network.
#include <crypt.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// A guest boots in seconds under KVM and in tens of seconds under software emulation on a
// busy machine; every wait is bounded by this.
constexpr auto kBootLimit = seconds(300);
constexpr auto kJobLimit = seconds(240);

constexpr const char* kBootLine = "gridd-guest hostname=";
constexpr const char* kShutdownLine = "gridd-guest shutdown";

fs::path TestImage() {
  static const fs::path image = [] {
    const fs::path out = BinaryDir().parent_path() / "test-image" / "gridd-test.qcow2";
    const CommandResult built = RunCommand(ShellQuote((SourceDir() / "scripts" /
                                                       "build-test-image").string()) +
                                           " " + ShellQuote(out.string()) + " 2>&1");
    if (built.exit_code != 0) {
      ADD_FAILURE() << "scripts/build-test-image failed:\n" << built.output;
    }
    return out;
  }();
  return image;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

struct BootReport {
  std::string hostname;
  std::string ip;
  std::string password_hash;
};

// True while a QEMU process uses `disk`. Tests run side by side, each gridd numbering its
// servers from 1, so the disk's path (in the test's own pool) is what tells them apart. The
// first character is bracketed so the pattern does not match the shell running pgrep.
bool QemuRunning(const fs::path& disk) {
  const std::string path = disk.string();
  return RunCommand("pgrep -f " + ShellQuote("[" + path.substr(0, 1) + "]" + path.substr(1)) +
                    " >/dev/null")
             .exit_code == 0;
}

// The facts of the last boot line on the console.
BootReport LastBootReport(const std::string& console) {
  static const std::regex line(
      R"(gridd-guest hostname=(\S*) ip=(\S*) password-sha512=(\S*))");
  BootReport report;
  for (auto it = std::sregex_iterator(console.begin(), console.end(), line);
       it != std::sregex_iterator(); ++it) {
    report = BootReport{(*it)[1], (*it)[2], (*it)[3]};
  }
  return report;
}

class QemuGuestTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string uri = GetParam();
    if (uri == "qemu:///system" && std::getenv("GRIDD_TEST_LIBVIRTD") == nullptr) {
      GTEST_SKIP() << "libvirtd was not started by the test command (GRIDD_TEST_LIBVIRTD unset)";
    }
    ASSERT_TRUE(fs::exists("/usr/bin/qemu-system-x86_64")) << "qemu-system-x86 is not installed";
    image_ = TestImage();
    ASSERT_TRUE(fs::exists(image_));

    // On libvirtd QEMU runs as its own user: the pool must be outside gridd's private data
    // dir and readable by it.
    pool_dir_ = ScratchDir("gridd-qemu-pool") / "pool";
    fs::permissions(pool_dir_.parent_path(), fs::perms::owner_all | fs::perms::group_read |
                                                 fs::perms::group_exec | fs::perms::others_read |
                                                 fs::perms::others_exec);
    // Each run gets its own pool name on the shared libvirtd.
    pool_name_ = "gridd-test-" + pool_dir_.parent_path().filename().string();
    const fs::path config = ScratchDir("gridd-qemu-config") / "gridd.toml";
    std::ofstream(config) << "[libvirt]\n"
                          << "uri = \"" << uri << "\"\n"
                          << "storage_pool = \"" << pool_name_ << "\"\n"
                          << "pool_path = \"" << pool_dir_.string() << "\"\n"
                          // Nested KVM on CI machines starts but fails inside the guest's
                          // bootloader; software emulation works everywhere.
                          << "domain_type = \"qemu\"\n"
                          << "shutdown_timeout_seconds = 5\n"
                          << "[jobs]\nmax_attempts = 1\n"
                          << "[loadbalancer]\nenabled = false\n"
                          << "[[datacenter]]\nid = 1\nname = \"US-West-1\"\n"
                          << "description = \"US West 1\"\n"
                          << "[[ippool]]\ndatacenter = \"US-West-1\"\ntype = \"public\"\n"
                          << "cidr = \"203.0.113.0/24\"\nnetwork = \"\"\n";
    daemon_ = std::make_unique<DaemonProcess>();
    daemon_->set_config(config);
    daemon_->Start();
    client_ = std::make_unique<ApiClient>(daemon_->Client());

    const CommandResult imported =
        Gridctl("image import testimg " + ShellQuote(image_.string()) +
                " --os 'Busybox test guest' --description 'gridd test image'");
    ASSERT_EQ(imported.exit_code, 0) << imported.output;
  }

  void TearDown() override {
    if (!daemon_) return;
    // Leave nothing running on a shared libvirtd: delete what is left, then the pool.
    if (client_) {
      const auto servers = CallOk(*client_, "grid/server/list");
      for (const auto& server : servers["list"]) {
        client_->Call("grid/server/delete", {{"id", std::to_string(server["id"].get<int64_t>())}});
      }
      WaitFor([&] { return CallOk(*client_, "grid/server/list")["list"].empty(); }, kJobLimit);
    }
    daemon_->Stop();
    if (GetParam() == "qemu:///system") {
      RunCommand("virsh -c qemu:///system pool-destroy " + pool_name_ + " >/dev/null 2>&1; " +
                 "virsh -c qemu:///system pool-undefine " + pool_name_ + " >/dev/null 2>&1");
    }
  }

  CommandResult Gridctl(const std::string& args) { return RunGridctl(daemon_->data_dir(), args); }

  std::string Console(int64_t server_id) {
    const CommandResult log = Gridctl("server console-log " + std::to_string(server_id));
    EXPECT_EQ(log.exit_code, 0) << log.output;
    return log.output;
  }

  // Waits until the console shows `needle` at least `count` times; returns the console.
  std::string WaitForConsole(int64_t server_id, const std::string& needle, size_t count) {
    std::string console;
    const bool seen = WaitFor(
        [&] {
          console = Console(server_id);
          return Count(console, needle) >= count;
        },
        kBootLimit);
    EXPECT_TRUE(seen) << "server " << server_id << ": '" << needle << "' x" << count
                      << " never seen on the console:\n"
                      << console;
    return console;
  }

  // Adds a server and waits for its create job; returns its id.
  int64_t AddServer(const std::string& name, const std::string& ip) {
    CallOk(*client_, "grid/server/add",
           {{"name", name}, {"image", "testimg"}, {"server.ram", "512MB"}, {"ip", ip}});
    const auto server = WaitForServerState(*client_, ip, "On", kJobLimit);
    return server.value("id", int64_t{0});
  }

  // The server jobs of the server called `name`.
  nlohmann::json JobsOf(const std::string& name) {
    nlohmann::json out = nlohmann::json::array();
    const auto jobs = CallOk(*client_, "grid/job/list");
    for (const auto& job : jobs["list"]) {
      if (job["objecttype"]["name"] == "VirtualServer" && job["detail"].value("name", "") == name) {
        out.push_back(job);
      }
    }
    return out;
  }

  // What the hypervisor still holds for a server: domain, disk, seed, console log.
  std::vector<std::string> Leftovers(int64_t server_id) {
    const std::string name = "gridd-" + std::to_string(server_id);
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(pool_dir_)) {
      if (entry.path().filename().string().rfind(name + ".", 0) == 0 ||
          entry.path().filename().string().rfind(name + "-", 0) == 0) {
        found.push_back("volume " + entry.path().filename().string());
      }
    }
    if (fs::exists(daemon_->data_dir() / "console" / (name + ".log"))) found.push_back("console log");
    if (GetParam() == "qemu:///system") {
      if (RunCommand("virsh -c qemu:///system dominfo " + name + " >/dev/null 2>&1").exit_code == 0) {
        found.push_back("domain " + name);
      }
    } else if (fs::exists(daemon_->data_dir() / "qemu" / "etc" / "qemu" / (name + ".xml"))) {
      found.push_back("domain " + name);
    }
    if (QemuRunning(pool_dir_ / (name + ".qcow2"))) found.push_back("qemu process of " + name);
    return found;
  }

  fs::path image_;
  fs::path pool_dir_;
  std::string pool_name_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<ApiClient> client_;
};

TEST_P(QemuGuestTest, GuestBootsWithItsSeedAndFollowsPowerOperations) {
  const auto images = CallOk(*client_, "grid/image/list")["list"];
  ASSERT_TRUE(std::any_of(images.begin(), images.end(),
                          [](const auto& image) { return image["name"] == "testimg"; }))
      << images.dump();

  const std::string ip = FreePublicIps(*client_).at(0);
  const int64_t id = AddServer("web-1", ip);
  ASSERT_GT(id, 0);

  std::string console = WaitForConsole(id, kBootLine, 1);
  const BootReport report = LastBootReport(console);
  const auto server = CallOk(*client_, "grid/server/get", {{"id", std::to_string(id)}})["list"][0];
  EXPECT_EQ(report.hostname, server["name"].get<std::string>());
  EXPECT_EQ(report.ip, server["ip"]["ip"].get<std::string>());
  std::string password;
  const auto passwords = CallOk(*client_, "support/password/list");
  for (const auto& entry : passwords["list"]) {
    if (entry["server"]["name"] == "web-1") password = entry["password"];
  }
  ASSERT_FALSE(password.empty());
  ASSERT_EQ(report.password_hash.rfind("$6$", 0), 0u) << report.password_hash;
  crypt_data data{};
  const char* rehashed = crypt_r(password.c_str(), report.password_hash.c_str(), &data);
  ASSERT_NE(rehashed, nullptr);
  EXPECT_EQ(std::string(rehashed), report.password_hash) << "the seed carries another password";

  // Stop: the guest sees the power button and shuts down cleanly.
  CallOk(*client_, "grid/server/power", {{"id", std::to_string(id)}, {"power", "stop"}});
  WaitForServerState(*client_, ip, "Off", kJobLimit);
  EXPECT_EQ(Count(Console(id), kShutdownLine), 1u);

  CallOk(*client_, "grid/server/power", {{"id", std::to_string(id)}, {"power", "start"}});
  WaitForServerState(*client_, ip, "On", kJobLimit);
  WaitForConsole(id, kBootLine, 2);

  // Restart: a clean shutdown and a new boot of the same guest.
  CallOk(*client_, "grid/server/power", {{"id", std::to_string(id)}, {"power", "restart"}});
  console = WaitForConsole(id, kBootLine, 3);
  EXPECT_EQ(Count(console, kShutdownLine), 2u) << console;
  WaitForServerState(*client_, ip, "On", kJobLimit);

  CallOk(*client_, "grid/server/delete", {{"id", std::to_string(id)}});
  ASSERT_TRUE(WaitFor([&] { return !FindServerByIp(*client_, ip); }, kJobLimit));
  EXPECT_EQ(Leftovers(id), std::vector<std::string>{});
}

TEST_P(QemuGuestTest, BadImagesFailCleanly) {
  // Not a qcow2 image: refused at import, nothing listed.
  const fs::path text = ScratchDir("gridd-not-an-image") / "disk.qcow2";
  std::ofstream(text) << "this is not a disk image\n";
  const CommandResult refused = Gridctl("image import junk " + ShellQuote(text.string()));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("not a qcow2 image"), std::string::npos) << refused.output;
  EXPECT_EQ(Gridctl("image list").output.find("junk"), std::string::npos);

  // A pool image damaged (or removed) behind gridd's back: the create job fails with a clear
  // message, and no disk, seed or domain is left behind.
  ASSERT_EQ(Gridctl("image import broken " + ShellQuote(image_.string())).exit_code, 0);
  ASSERT_EQ(Gridctl("image import gone " + ShellQuote(image_.string())).exit_code, 0);
  if (GetParam() == "qemu:///system") {
    // libvirt's pool refresh must not see the change first; gridd reads the files the same way.
    RunCommand("virsh -c qemu:///system pool-refresh " + pool_name_ + " >/dev/null 2>&1");
  }
  std::ofstream(pool_dir_ / "broken.qcow2", std::ios::trunc) << "garbage where a header was";
  fs::remove(pool_dir_ / "gone.qcow2");

  const auto ips = FreePublicIps(*client_);
  struct Case {
    std::string image;
    std::string ip;
    std::string message;
  };
  for (const Case& bad : {Case{"broken", ips.at(0), "not a qcow2 image"},
                          Case{"gone", ips.at(1), "gone.qcow2"}}) {
    SCOPED_TRACE(bad.image);
    CallOk(*client_, "grid/server/add",
           {{"name", "from-" + bad.image}, {"image", bad.image}, {"server.ram", "512MB"},
            {"ip", bad.ip}});
    const auto server = WaitForServerState(*client_, bad.ip, "Off", kJobLimit);
    const int64_t id = server.value("id", int64_t{0});
    ASSERT_GT(id, 0);
    const auto jobs = JobsOf("from-" + bad.image);
    ASSERT_EQ(jobs.size(), 1u) << jobs.dump();
    EXPECT_EQ(jobs[0]["currentstate"]["name"], "Failed");
    EXPECT_NE(jobs[0].dump().find(bad.message), std::string::npos) << jobs.dump();
    EXPECT_EQ(Leftovers(id), std::vector<std::string>{});
  }
}

TEST_P(QemuGuestTest, HungGuestsStopAndDeleteAndSelfStoppedGuestsShowOff) {
  const auto ips = FreePublicIps(*client_);
  // This guest ignores the power button: stop forces it off after the timeout, and delete
  // completes without waiting on it.
  const int64_t hung = AddServer("hang-1", ips.at(0));
  WaitForConsole(hung, "gridd-guest ignoring the power button", 1);
  CallOk(*client_, "grid/server/power", {{"id", std::to_string(hung)}, {"power", "stop"}});
  WaitForServerState(*client_, ips.at(0), "Off", kJobLimit);
  EXPECT_EQ(Count(Console(hung), kShutdownLine), 0u);
  CallOk(*client_, "grid/server/power", {{"id", std::to_string(hung)}, {"power", "start"}});
  WaitForServerState(*client_, ips.at(0), "On", kJobLimit);
  WaitForConsole(hung, "gridd-guest ignoring the power button", 2);
  CallOk(*client_, "grid/server/delete", {{"id", std::to_string(hung)}});
  ASSERT_TRUE(WaitFor([&] { return !FindServerByIp(*client_, ips.at(0)); }, kJobLimit));
  EXPECT_EQ(Leftovers(hung), std::vector<std::string>{});

  // This guest powers itself off after booting: no job asks for it, the lifecycle event alone
  // turns the server Off.
  const int64_t self = AddServer("selfstop-1", ips.at(1));
  WaitForConsole(self, "gridd-guest powering off by itself", 1);
  WaitForServerState(*client_, ips.at(1), "Off", kBootLimit);
  EXPECT_EQ(JobsOf("selfstop-1").size(), 1u) << "only the create job";
}

TEST_P(QemuGuestTest, GuestsKeepRunningAcrossGriddRestarts) {
  const std::string ip = FreePublicIps(*client_).at(0);
  const int64_t id = AddServer("web-2", ip);
  WaitForConsole(id, kBootLine, 1);

  ASSERT_EQ(daemon_->Stop(), 0);
  // gridd is down; the guest is not.
  EXPECT_TRUE(QemuRunning(pool_dir_ / ("gridd-" + std::to_string(id) + ".qcow2")));
  daemon_->Start();
  client_ = std::make_unique<ApiClient>(daemon_->Client());
  WaitForServerState(*client_, ip, "On", kJobLimit);
  // Same guest, not a new boot; and gridd still drives it.
  EXPECT_EQ(Count(Console(id), kBootLine), 1u);
  CallOk(*client_, "grid/server/power", {{"id", std::to_string(id)}, {"power", "stop"}});
  WaitForServerState(*client_, ip, "Off", kJobLimit);
  EXPECT_EQ(Count(Console(id), kShutdownLine), 1u);
}

INSTANTIATE_TEST_SUITE_P(Hypervisors, QemuGuestTest,
                         ::testing::Values("qemu:///embed", "qemu:///system"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "qemu:///embed" ? std::string("Embedded")
                                                                : std::string("Libvirtd");
                         });

}  // namespace
}  // namespace gridd::testing
