// `gridctl backup` while gridd serves writes, and a restore of that backup into a fresh data
// directory: the restored gridd has every object that was acknowledged before the backup began.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/test_paths.h"

namespace gridd::testing {
namespace {

namespace fs = std::filesystem;

std::set<std::string> ServerNames(ApiClient& client) {
  std::set<std::string> names;
  const auto listed = CallOk(client, "grid/server/list");
  for (const auto& server : listed["list"]) names.insert(server["name"].get<std::string>());
  return names;
}

TEST(BackupTest, AnOnlineBackupRestoresIntoAFreshDataDirWithEveryObject) {
  DaemonProcess daemon;
  daemon.Start();
  ApiClient client = daemon.Client();
  const auto ips = FreePublicIps(client);
  ASSERT_GE(ips.size(), 40u);

  // Writers keep adding and powering servers while the backup runs.
  std::mutex mutex;
  std::set<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::atomic<int> next_ip{0};
  auto writer = [&](int worker) {
    ApiClient own = daemon.Client();
    for (int i = 0; i < 18 && !stop; ++i) {
      const int slot = next_ip++;
      const std::string name = "w" + std::to_string(worker) + "-" + std::to_string(i);
      auto reply = own.Call("grid/server/add",
                            {{"name", name},
                             {"image", "debian-12-amd64"},
                             {"server.ram", "512MB"},
                             {"ip", ips.at(static_cast<size_t>(slot))}},
                            "POST");
      if (reply.status == 200) {
        std::lock_guard<std::mutex> lock(mutex);
        acknowledged.insert(name);
      }
    }
  };
  std::thread first(writer, 1);
  std::thread second(writer, 2);
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mutex);
    return acknowledged.size() >= 6;
  }));
  std::set<std::string> before_backup;
  {
    std::lock_guard<std::mutex> lock(mutex);
    before_backup = acknowledged;
  }
  const fs::path backup_dir = ScratchDir("gridd-backup");
  const fs::path backup = backup_dir / "gridd-backup.db";
  auto result = RunGridctl(daemon.data_dir(), "backup " + ShellQuote(backup.string()));
  first.join();
  second.join();
  ASSERT_EQ(result.exit_code, 0) << result.output;
  struct stat st {};
  ASSERT_EQ(::stat(backup.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // An existing file is never overwritten.
  auto again = RunGridctl(daemon.data_dir(), "backup " + ShellQuote(backup.string()));
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;
  daemon.Stop();

  // Restore: the backup becomes gridd.db next to the same master key, which seals the shared
  // secrets and root passwords in it.
  const fs::path restored_dir = ScratchDir("gridd-restored");
  fs::copy_file(backup, restored_dir / "gridd.db");
  fs::copy_file(daemon.data_dir() / "master.key", restored_dir / "master.key");
  fs::copy_file(daemon.data_dir() / "initial-credentials.json",
                restored_dir / "initial-credentials.json");
  DaemonProcess restored({}, restored_dir);
  restored.Start();
  ApiClient restored_client = restored.Client();  // the same key and secret work
  const auto names = ServerNames(restored_client);
  for (const auto& name : before_backup) EXPECT_EQ(names.count(name), 1u) << name;
  // Every restored server is carried out (its domain built on the hypervisor when it is first
  // acted on: here a restart) and its password opens.
  const auto restored_servers = CallOk(restored_client, "grid/server/list");
  for (const auto& server : restored_servers["list"]) {
    CallOk(restored_client, "grid/server/power",
           {{"id", std::to_string(server["id"].get<int64_t>())}, {"power", "restart"}}, "POST");
  }
  for (const auto& server : restored_servers["list"]) {
    WaitForServerState(restored_client, server["ip"]["ip"], "On");
  }
  EXPECT_EQ(CallOk(restored_client, "support/password/list")["list"].size(), names.size());
  auto domains = RunGridctl(restored_dir, "--json domain list");
  ASSERT_EQ(domains.exit_code, 0) << domains.output;
  EXPECT_EQ(nlohmann::json::parse(domains.output).size(), names.size());
}

}  // namespace
}  // namespace gridd::testing
