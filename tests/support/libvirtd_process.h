// A private libvirtd for tests: listens on 127.0.0.1 only (plain TCP, no auth), keeps its
// sockets, pid file and log in its own temp dir, and is stopped by PID when the object goes,
// also when a test fails. It never loads the network driver, so no libvirt network can start.
//
// kTestDriver loads no driver modules: it serves only libvirt's built-in test driver.
// kQemuSession loads the QEMU and storage drivers only and runs as an unprivileged session
// daemon (user nobody when the tests run as root) whose home, configuration and runtime
// files all live in the temp dir: real QEMU guests and real volumes, none of the machine's
// own libvirt state. Its guests are destroyed (and their QEMU processes killed by the PIDs
// libvirt recorded) when it is stopped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace gridd::testing {

enum class LibvirtdKind { kTestDriver, kQemuSession };

class LibvirtdProcess {
 public:
  // Picks a free loopback port and starts libvirtd on it.
  explicit LibvirtdProcess(LibvirtdKind kind = LibvirtdKind::kTestDriver);
  ~LibvirtdProcess();
  LibvirtdProcess(const LibvirtdProcess&) = delete;
  LibvirtdProcess& operator=(const LibvirtdProcess&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // "test+tcp://127.0.0.1:<port><absolute node file>": a test-driver host with that node.
  std::string TestUri(const std::filesystem::path& node_file) const;
  // "qemu+tcp://127.0.0.1:<port>/session" (kQemuSession).
  std::string QemuUri() const;
  // A directory the daemon may write, for its storage pools.
  std::filesystem::path PoolDir(const std::string& name) const;

  // Starts libvirtd again on the same port (after Kill). Throws when it does not listen.
  void Start();
  // SIGTERM, then SIGKILL if it has not exited within a few seconds; waits for it.
  void Kill();
  // SIGSTOP / SIGCONT: a host that hangs without closing its connections.
  void Pause();
  void Resume();
  bool running() const { return pid_ > 0; }

 private:
  void DestroyGuests();

  const LibvirtdKind kind_;
  std::filesystem::path dir_;
  uid_t uid_;  // the daemon's user
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace gridd::testing
