#include "support/libvirtd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libvirt/libvirt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/test_paths.h"

extern char** environ;

namespace gridd::testing {
namespace {

constexpr const char* kLibvirtd = "/usr/sbin/libvirtd";
constexpr const char* kDriverDir = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver";
constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;
constexpr auto kLibvirtdStartTimeout = std::chrono::seconds(20);
constexpr auto kLibvirtdStopTimeout = std::chrono::seconds(10);
constexpr auto kLibvirtdPollInterval = std::chrono::milliseconds(20);

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

uint16_t FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address = Loopback(0);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) {
    const int error = errno;
    close(fd);
    throw std::runtime_error(std::string("free port: ") + std::strerror(error));
  }
  close(fd);
  return ntohs(address.sin_port);
}

bool Accepts(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address = Loopback(port);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

}  // namespace

LibvirtdProcess::LibvirtdProcess(LibvirtdKind kind)
    : kind_(kind),
      dir_(MakeTempDir("gridd-libvirtd")),
      uid_(kind == LibvirtdKind::kQemuSession && geteuid() == 0 ? kNobody : geteuid()),
      port_(FreeLoopbackPort()) {
  for (const char* sub :
       {"run", "drivers", "home", "cache", "runtime", "config/libvirt", "pools"}) {
    std::filesystem::create_directories(dir_ / sub);
  }
  if (kind_ == LibvirtdKind::kQemuSession) {
    for (const char* driver : {"libvirt_driver_qemu.so", "libvirt_driver_storage.so"}) {
      std::filesystem::create_symlink(std::filesystem::path(kDriverDir) / driver,
                                      dir_ / "drivers" / driver);
    }
    // No virtlogd to spawn. libvirt refuses a loopback migration address, and any other would
    // listen beyond loopback: tests never live-migrate between these daemons.
    std::ofstream qemu(dir_ / "config" / "libvirt" / "qemu.conf");
    qemu << "stdio_handler = \"file\"\n";
  }
  std::ofstream config(dir_ / "libvirtd.conf");
  char host_uuid[40];
  // Each daemon its own host UUID, as separate hosts have.
  snprintf(host_uuid, sizeof(host_uuid), "%08x-0000-4000-8000-%012x", port_, port_);
  config << "host_uuid = \"" << host_uuid << "\"\n"
         << "listen_tls = 0\n"
         << "listen_tcp = 1\n"
         << "listen_addr = \"127.0.0.1\"\n"
         << "tcp_port = \"" << port_ << "\"\n"
         << "auth_tcp = \"none\"\n"
         << "unix_sock_dir = \"" << (dir_ / "run").string() << "\"\n"
         << "log_outputs = \"3:file:" << (dir_ / "libvirtd.log").string() << "\"\n";
  config.close();
  if (uid_ != geteuid()) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
      lchown(entry.path().c_str(), uid_, kNogroup);
    }
    chown(dir_.c_str(), uid_, kNogroup);
  }
  try {
    Start();
  } catch (...) {
    // No destructor runs for an object whose constructor threw.
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

LibvirtdProcess::~LibvirtdProcess() {
  try {
    Kill();
  } catch (...) {
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string LibvirtdProcess::QemuUri() const {
  return "qemu+tcp://127.0.0.1:" + std::to_string(port_) + "/session";
}

std::filesystem::path LibvirtdProcess::PoolDir(const std::string& name) const {
  return dir_ / "pools" / name;
}

std::string LibvirtdProcess::TestUri(const std::filesystem::path& node_file) const {
  return "test+tcp://127.0.0.1:" + std::to_string(port_) + node_file.string();
}

void LibvirtdProcess::Start() {
  if (running()) throw std::logic_error("libvirtd is already running");
  if (access(kLibvirtd, X_OK) != 0) throw std::runtime_error("libvirtd not installed");
  std::vector<std::string> args = {kLibvirtd, "--listen",
                                   "-f",      (dir_ / "libvirtd.conf").string(),
                                   "-p",      (dir_ / "run" / "libvirtd.pid").string()};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // An empty module directory: libvirtd then runs none of the machine's stateful drivers
  // (no QEMU domains, no networks it could autostart); the test driver is built in.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "LIBVIRT_", 8) != 0) env_strings.emplace_back(*entry);
  }
  env_strings.push_back("LIBVIRT_DRIVER_DIR=" + (dir_ / "drivers").string());
  if (kind_ == LibvirtdKind::kQemuSession) {
    // A session daemon keeps everything under these.
    std::erase_if(env_strings, [](const std::string& entry) {
      return entry.rfind("HOME=", 0) == 0 || entry.rfind("XDG_", 0) == 0;
    });
    env_strings.push_back("HOME=" + (dir_ / "home").string());
    env_strings.push_back("XDG_CONFIG_HOME=" + (dir_ / "config").string());
    env_strings.push_back("XDG_CACHE_HOME=" + (dir_ / "cache").string());
    env_strings.push_back("XDG_RUNTIME_DIR=" + (dir_ / "runtime").string());
  }
  const uid_t uid = uid_;
  const bool drop_root = uid_ != geteuid();
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const std::string output = (dir_ / "output.txt").string();
  const int out_fd = open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    if (out_fd >= 0) close(out_fd);
    if (null_fd >= 0) close(null_fd);
    throw std::runtime_error(std::string("fork: ") + std::strerror(error));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until execve.
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    if (out_fd >= 0) {
      dup2(out_fd, STDOUT_FILENO);
      dup2(out_fd, STDERR_FILENO);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Never outlive a test binary that crashed or timed out, even while stopped.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    if (drop_root && (setgroups(0, nullptr) != 0 || setgid(kNogroup) != 0 || setuid(uid) != 0)) {
      _exit(125);
    }
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (out_fd >= 0) close(out_fd);
  if (null_fd >= 0) close(null_fd);
  pid_ = pid;
  paused_ = false;

  const auto deadline = std::chrono::steady_clock::now() + kLibvirtdStartTimeout;
  while (!Accepts(port_)) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("libvirtd exited at start (status " + std::to_string(status) +
                               "):\n" + ReadFile(output) + ReadFile(dir_ / "libvirtd.log"));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Kill();
      throw std::runtime_error("libvirtd did not listen on 127.0.0.1:" + std::to_string(port_) +
                               "\n" + ReadFile(output));
    }
    std::this_thread::sleep_for(kLibvirtdPollInterval);
  }
}

void LibvirtdProcess::DestroyGuests() {
  virConnectPtr conn = virConnectOpen(QemuUri().c_str());
  if (conn == nullptr) return;
  virDomainPtr* domains = nullptr;
  const int count = virConnectListAllDomains(conn, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  for (int i = 0; i < count; ++i) {
    virDomainDestroy(domains[i]);
    virDomainFree(domains[i]);
  }
  free(domains);
  virConnectClose(conn);
}

void LibvirtdProcess::Kill() {
  if (!running()) return;
  if (paused_) Resume();
  if (kind_ == LibvirtdKind::kQemuSession) DestroyGuests();
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kLibvirtdStopTimeout;
  for (;;) {
    int status = 0;
    const pid_t reaped = waitpid(pid_, &status, WNOHANG);
    if (reaped == pid_ || (reaped < 0 && errno == ECHILD)) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(kLibvirtdPollInterval);
  }
  pid_ = -1;
  // Guests outlive their libvirtd: kill any that were left by the PIDs libvirt recorded.
  const auto qemu_run = dir_ / "runtime" / "libvirt" / "qemu" / "run";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(qemu_run, ec)) {
    if (entry.path().extension() != ".pid") continue;
    const pid_t guest = static_cast<pid_t>(std::atoi(ReadFile(entry.path()).c_str()));
    if (guest <= 1) continue;
    const std::string command = ReadFile("/proc/" + std::to_string(guest) + "/cmdline");
    if (command.find("qemu") != std::string::npos) kill(guest, SIGKILL);
  }
}

void LibvirtdProcess::Pause() {
  if (!running()) throw std::logic_error("libvirtd is not running");
  kill(pid_, SIGSTOP);
  paused_ = true;
}

void LibvirtdProcess::Resume() {
  if (!running()) return;
  kill(pid_, SIGCONT);
  paused_ = false;
}

}  // namespace gridd::testing
