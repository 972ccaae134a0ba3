// The Debian package on this machine: build it with cpack, install it with dpkg, run gridd
// with the packaged configuration as the gridd user, call the API, purge, and find the machine
// as it was. Needs root (it installs a package); skipped otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

namespace fs = std::filesystem;

// What the package may touch on the machine; compared before installation and after purge.
std::string MachineState() {
  const CommandResult state = RunCommand(
      "getent passwd gridd; getent group gridd; "
      "ls -d /usr/bin/gridd /usr/bin/gridctl /etc/gridd /var/lib/gridd /usr/share/gridd "
      "/usr/share/doc/gridd /lib/systemd/system/gridd.service /usr/share/man/man8/gridd.8.gz "
      "/usr/share/man/man8/gridctl.8.gz /usr/share/bash-completion/completions/gridctl "
      "2>/dev/null; "
      "find /etc/systemd /var/lib/systemd -name '*gridd*' 2>/dev/null | sort; "
      "dpkg-query -W -f='${Status}' gridd 2>/dev/null; true");
  return state.output;
}

// Holds dpkg's frontend lock the way apt does, so this test never runs dpkg while apt, dpkg or
// another run of it does; dpkg is then told (DPKG_FRONTEND_LOCKED) that its frontend holds it.
class DpkgFrontendLock {
 public:
  DpkgFrontendLock() {
    fd_ = open("/var/lib/dpkg/lock-frontend", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) return;
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (fcntl(fd_, F_SETLK, &lock) != 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        close(fd_);
        fd_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    locked_ = true;
  }
  ~DpkgFrontendLock() {
    if (fd_ >= 0) close(fd_);
  }
  bool locked() const { return locked_; }

 private:
  int fd_ = -1;
  bool locked_ = false;
};

CommandResult Dpkg(const std::string& args) {
  return RunCommand("DPKG_FRONTEND_LOCKED=1 DEBIAN_FRONTEND=noninteractive dpkg " + args);
}

TEST(PackageTest, InstallsRunsAnswersAndPurgesWithoutATrace) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: installs the gridd package with dpkg -i";
  DpkgFrontendLock lock;
  ASSERT_TRUE(lock.locked()) << "dpkg is busy (lock-frontend held for 5 minutes)";
  const std::string before = MachineState();
  if (before.find("gridd") != std::string::npos) {
    GTEST_SKIP() << "this machine already has gridd installed or its files; not touching them:\n"
                 << before;
  }

  // Build the package from this build tree.
  const fs::path build_dir = BinaryDir().parent_path();
  const fs::path out = ScratchDir("gridd-deb");
  const CommandResult cpack = RunCommand("cd " + ShellQuote(build_dir.string()) +
                                         " && cpack -G DEB -B " + ShellQuote(out.string()));
  ASSERT_EQ(cpack.exit_code, 0) << cpack.output;
  fs::path deb;
  for (const auto& entry : fs::directory_iterator(out)) {
    if (std::regex_match(entry.path().filename().string(),
                         std::regex(R"(gridd_[0-9]+\.[0-9]+\.[0-9]+_amd64\.deb)"))) {
      deb = entry.path();
    }
  }
  ASSERT_FALSE(deb.empty()) << "no gridd_<version>_amd64.deb in " << out << ":\n" << cpack.output;

  const CommandResult control = RunCommand("dpkg-deb -f " + ShellQuote(deb.string()) + " Depends");
  for (const char* dependency :
       {"libvirt0", "libsqlite3-0", "libssl3", "libsystemd0", "haproxy", "adduser"}) {
    EXPECT_NE(control.output.find(dependency), std::string::npos) << control.output;
  }
  const CommandResult conffiles =
      RunCommand("dpkg-deb --ctrl-tarfile " + ShellQuote(deb.string()) + " | tar -xO ./conffiles");
  EXPECT_EQ(conffiles.output, "/etc/gridd/gridd.toml\n");

  struct Purge {
    ~Purge() {
      if (installed) Dpkg("--purge gridd");
    }
    bool installed = false;
  } purge_on_failure;
  const CommandResult install = Dpkg("-i " + ShellQuote(deb.string()));
  purge_on_failure.installed = true;
  ASSERT_EQ(install.exit_code, 0) << install.output;

  // Installed as the issue asks: binaries, user, private data dir, enabled unit, docs.
  EXPECT_TRUE(fs::exists("/usr/bin/gridd"));
  EXPECT_TRUE(fs::exists("/usr/bin/gridctl"));
  EXPECT_TRUE(fs::exists("/usr/share/man/man8/gridd.8.gz"));
  EXPECT_TRUE(fs::exists("/usr/share/man/man8/gridctl.8.gz"));
  EXPECT_TRUE(fs::exists("/usr/share/bash-completion/completions/gridctl"));
  EXPECT_EQ(RunCommand("getent passwd gridd").exit_code, 0);
  struct stat data {};
  ASSERT_EQ(stat("/var/lib/gridd", &data), 0);
  EXPECT_EQ(data.st_mode & 07777, 0700u);
  EXPECT_EQ(RunCommand("stat -c %U:%G /var/lib/gridd").output, "gridd:gridd\n");
  EXPECT_TRUE(fs::is_symlink("/etc/systemd/system/multi-user.target.wants/gridd.service"))
      << "the service is enabled";
  const CommandResult verify =
      RunCommand("systemd-analyze verify /lib/systemd/system/gridd.service");
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_EQ(verify.output.find("gridd"), std::string::npos) << verify.output;

  {
    // The packaged configuration as the packaged user, on free ports instead of 8080/9464 so
    // nothing else on the machine is disturbed.
    DaemonProcess daemon({}, "/var/lib/gridd");
    daemon.set_config("/etc/gridd/gridd.toml");
    daemon.set_program("/usr/bin/gridd", {"/usr/bin/setpriv", "--reuid=gridd", "--regid=gridd",
                                          "--init-groups", "--"});
    daemon.Start();
    ApiClient client = daemon.Client();
    auto images = CallOk(client, "grid/image/list");
    EXPECT_EQ(images["list"].size(), 4u);
    ApiClient metrics(daemon.host(), daemon.metrics_port());
    EXPECT_EQ(metrics.Raw("GET", "/metrics").status, 200u);
    const CommandResult accounts =
        RunCommand("/usr/bin/gridctl --data-dir /var/lib/gridd account list");
    EXPECT_EQ(accounts.exit_code, 0) << accounts.output;
    EXPECT_NE(accounts.output.find("default"), std::string::npos) << accounts.output;
    EXPECT_EQ(RunCommand("stat -c %U /var/lib/gridd/gridd.db").output, "gridd\n");
    EXPECT_EQ(daemon.Stop(), 0);
  }

  const CommandResult purged = Dpkg("--purge gridd");
  purge_on_failure.installed = false;
  EXPECT_EQ(purged.exit_code, 0) << purged.output;
  EXPECT_EQ(MachineState(), before);
}

TEST(PackageTest, BashCompletionOffersGridctlsCommandsAndOptions) {
  const fs::path completion = SourceDir() / "packaging" / "gridctl.bash-completion";
  const std::string gridctl = (BinaryDir() / "gridctl").string();
  auto complete = [&](const std::string& words, int index) {
    return RunCommand("bash -c " + ShellQuote("source " + ShellQuote(completion.string()) +
                                              "; COMP_WORDS=(" + ShellQuote(gridctl) + " " + words +
                                              "); COMP_CWORD=" + std::to_string(index) +
                                              "; _gridctl; echo \"${COMPREPLY[*]}\""))
        .output;
  };
  EXPECT_EQ(complete("ap", 1), "apikey\n");
  EXPECT_EQ(complete("apikey ''", 2), "create list signing rotate revoke role\n");
  EXPECT_EQ(complete("apikey signing k1 h", 4), "hmac-only\n");
  EXPECT_EQ(complete("apikey create --signing m", 4), "md5+hmac\n");
  EXPECT_EQ(complete("job ''", 2), "list show retry\n");
  EXPECT_EQ(complete("apikey role k1 --role s", 5), "super system\n");
  EXPECT_EQ(complete("--data-dir /tmp apikey create --ro", 5), "--role\n");
}

}  // namespace
}  // namespace gridd::testing
