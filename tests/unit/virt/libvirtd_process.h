// A private libvirtd for tests: listens on 127.0.0.1 only (plain TCP, no auth), keeps its
// sockets, pid file and log in its own temp dir, and loads no driver modules, so it serves
// only libvirt's built-in test driver (no QEMU, no networks, nothing of the machine's own
// libvirt configuration). Stopped by PID when the object goes, also when a test fails.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace gridd::testing {

class LibvirtdProcess {
 public:
  // Picks a free loopback port and starts libvirtd on it.
  LibvirtdProcess();
  ~LibvirtdProcess();
  LibvirtdProcess(const LibvirtdProcess&) = delete;
  LibvirtdProcess& operator=(const LibvirtdProcess&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // "test+tcp://127.0.0.1:<port><absolute node file>": a test-driver host with that node.
  std::string TestUri(const std::filesystem::path& node_file) const;

  // Starts libvirtd again on the same port (after Kill). Throws when it does not listen.
  void Start();
  // SIGTERM, then SIGKILL if it has not exited within a few seconds; waits for it.
  void Kill();
  // SIGSTOP / SIGCONT: a host that hangs without closing its connections.
  void Pause();
  void Resume();
  bool running() const { return pid_ > 0; }

 private:
  std::filesystem::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace gridd::testing
