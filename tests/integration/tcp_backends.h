// Small TCP servers and clients for load-balancer tests and benchmarks, on plain sockets.
//
// EchoBackend listens on ADDRESS:0 (an ephemeral port) and serves every connection the same
// way: it writes "<name>\n" at once, then echoes every byte it receives until the peer closes.
// A client therefore learns from the first line which backend a load balancer picked.
// LineConnection is a blocking client with timeouts for that protocol.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

namespace gridd::testing {

namespace tcp_detail {

inline sockaddr_in MakeAddress(const std::string& ip, uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &address.sin_addr) != 1) {
    throw std::invalid_argument("not an IPv4 address: " + ip);
  }
  return address;
}

inline int RemainingMs(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace tcp_detail

// True when ADDRESS:PORT can be bound right now (nobody listens there).
inline bool PortIsFree(const std::string& ip, uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const sockaddr_in address = tcp_detail::MakeAddress(ip, port);
  const bool free = bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return free;
}

class EchoBackend {
 public:
  EchoBackend(std::string name, std::string ip) : name_(std::move(name)), ip_(std::move(ip)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address = tcp_detail::MakeAddress(ip_, 0);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(listen_fd_, 1024) != 0) {
      const std::string error = std::strerror(errno);
      close(listen_fd_);
      throw std::runtime_error("cannot listen on " + ip_ + ":0: " + error);
    }
    socklen_t length = sizeof(address);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (wake_fd_ < 0 || epoll_fd_ < 0) {
      close(listen_fd_);
      if (wake_fd_ >= 0) close(wake_fd_);
      if (epoll_fd_ >= 0) close(epoll_fd_);
      throw std::runtime_error("eventfd/epoll_create1 failed");
    }
    Watch(listen_fd_, EPOLLIN);
    Watch(wake_fd_, EPOLLIN);
    thread_ = std::thread([this] { Loop(); });
  }

  ~EchoBackend() { Stop(); }
  EchoBackend(const EchoBackend&) = delete;
  EchoBackend& operator=(const EchoBackend&) = delete;

  // Closes the listener and every connection; idempotent.
  void Stop() {
    if (!thread_.joinable()) return;
    const uint64_t one = 1;
    [[maybe_unused]] auto written = write(wake_fd_, &one, sizeof(one));
    thread_.join();
    for (auto& [fd, connection] : connections_) close(fd);
    connections_.clear();
    close(listen_fd_);
    close(wake_fd_);
    close(epoll_fd_);
  }

  const std::string& name() const { return name_; }
  const std::string& ip() const { return ip_; }
  uint16_t port() const { return port_; }
  // Connections accepted so far. (A health check that resets its connection before it is
  // accepted is not counted.)
  uint64_t accepted() const { return accepted_.load(); }
  // Connections currently open.
  int open_connections() const { return open_.load(); }

 private:
  struct Connection {
    std::string pending;  // bytes still to be written
  };

  void Watch(int fd, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
  }

  void Drop(int fd) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    connections_.erase(fd);
    --open_;
  }

  // Writes what is pending; false when the connection is dead.
  bool Flush(int fd, Connection& connection) {
    while (!connection.pending.empty()) {
      const ssize_t sent = send(fd, connection.pending.data(), connection.pending.size(),
                                MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      connection.pending.erase(0, static_cast<size_t>(sent));
    }
    epoll_event event{};
    event.events = EPOLLIN | (connection.pending.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
    event.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event);
    return true;
  }

  void Accept() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of descriptors: try again at the next event
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      ++accepted_;
      ++open_;
      Connection& connection = connections_[fd];
      connection.pending = name_ + "\n";
      Watch(fd, EPOLLIN);
      if (!Flush(fd, connection)) Drop(fd);
    }
  }

  void Serve(int fd, uint32_t events) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    Connection& connection = it->second;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      char buffer[16384];
      while (true) {
        const ssize_t got = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
        if (got > 0) {
          connection.pending.append(buffer, static_cast<size_t>(got));
          if (connection.pending.size() > (1u << 20)) break;  // let the writer catch up
          continue;
        }
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        // End of stream or error: send what was echoed so far, then close.
        Flush(fd, connection);
        Drop(fd);
        return;
      }
    }
    if (!Flush(fd, connection)) Drop(fd);
  }

  void Loop() {
    epoll_event events[64];
    while (true) {
      const int ready = epoll_wait(epoll_fd_, events, 64, 1000);
      if (ready < 0 && errno != EINTR) return;
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd_) return;
        if (fd == listen_fd_) {
          Accept();
        } else {
          Serve(fd, events[i].events);
        }
      }
    }
  }

  std::string name_;
  std::string ip_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int epoll_fd_ = -1;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<int> open_{0};
  std::unordered_map<int, Connection> connections_;  // owned by the loop thread until Stop()
  std::thread thread_;
};

// A blocking client connection for the EchoBackend protocol; every operation has a timeout.
class LineConnection {
 public:
  LineConnection() = default;
  ~LineConnection() { Close(); }
  LineConnection(LineConnection&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)) {}
  LineConnection& operator=(LineConnection&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
      buffer_ = std::move(other.buffer_);
    }
    return *this;
  }

  // Connects to IP:PORT, from `source` (an address of this machine) when it is not empty;
  // nullopt (and `error` set) when refused or timed out.
  static std::optional<LineConnection> Open(const std::string& ip, uint16_t port,
                                            std::chrono::milliseconds timeout,
                                            std::string* error = nullptr,
                                            const std::string& source = "") {
    auto fail = [&](const std::string& why) -> std::optional<LineConnection> {
      if (error != nullptr) *error = "connect " + ip + ":" + std::to_string(port) + ": " + why;
      return std::nullopt;
    };
    LineConnection connection;
    connection.fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (connection.fd_ < 0) return fail(std::strerror(errno));
    const int one = 1;
    setsockopt(connection.fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!source.empty()) {
      const sockaddr_in local = tcp_detail::MakeAddress(source, 0);
      if (bind(connection.fd_, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
        return fail("bind " + source + ": " + std::strerror(errno));
      }
    }
    const sockaddr_in address = tcp_detail::MakeAddress(ip, port);
    if (connect(connection.fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) ==
        0) {
      return connection;
    }
    if (errno != EINPROGRESS) return fail(std::strerror(errno));
    pollfd waiting{connection.fd_, POLLOUT, 0};
    const int ready = poll(&waiting, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) return fail(ready == 0 ? "timed out" : std::strerror(errno));
    int socket_error = 0;
    socklen_t length = sizeof(socket_error);
    getsockopt(connection.fd_, SOL_SOCKET, SO_ERROR, &socket_error, &length);
    if (socket_error != 0) return fail(std::strerror(socket_error));
    return connection;
  }

  bool is_open() const { return fd_ >= 0; }

  // The next line without its "\n"; nullopt on timeout, error or end of stream.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fd_ >= 0) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = poll(&waiting, 1, tcp_detail::RemainingMs(deadline));
      if (ready == 0) return std::nullopt;
      if (ready < 0) {
        if (errno == EINTR) continue;
        return std::nullopt;
      }
      char chunk[4096];
      const ssize_t got = recv(fd_, chunk, sizeof(chunk), MSG_DONTWAIT);
      if (got > 0) {
        buffer_.append(chunk, static_cast<size_t>(got));
      } else if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
        continue;
      } else {
        return std::nullopt;  // closed or reset
      }
    }
    return std::nullopt;
  }

  bool Write(const std::string& data, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t done = 0;
    while (fd_ >= 0 && done < data.size()) {
      const ssize_t sent =
          send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent >= 0) {
        done += static_cast<size_t>(sent);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      pollfd waiting{fd_, POLLOUT, 0};
      if (poll(&waiting, 1, tcp_detail::RemainingMs(deadline)) <= 0) return false;
    }
    return fd_ >= 0;
  }

  // Sends "<text>\n" and expects the same line back.
  bool Echo(const std::string& text, std::chrono::milliseconds timeout) {
    if (!Write(text + "\n", timeout)) return false;
    auto line = ReadLine(timeout);
    return line && *line == text;
  }

  // Half-closes, waits (bounded) for the other side to close too, then closes. After this the
  // load balancer has seen the whole connection end, which matters for least-connections.
  void Finish(std::chrono::milliseconds timeout) {
    if (fd_ < 0) return;
    shutdown(fd_, SHUT_WR);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char chunk[4096];
    while (true) {
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = poll(&waiting, 1, tcp_detail::RemainingMs(deadline));
      if (ready <= 0) break;
      const ssize_t got = recv(fd_, chunk, sizeof(chunk), MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) break;
    }
    Close();
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    buffer_.clear();
  }

 private:
  int fd_ = -1;
  std::string buffer_;  // received, not yet returned as lines
};

// One short exchange: connect, read the greeting, echo one line, close. Returns the greeting
// (the backend's name), or nullopt when any step fails; `error` then says which. `source` as
// for LineConnection::Open.
inline std::optional<std::string> AskBackend(
    const std::string& ip, uint16_t port,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000),
    std::string* error = nullptr, const std::string& source = "") {
  auto connection = LineConnection::Open(ip, port, timeout, error, source);
  if (!connection) return std::nullopt;
  auto name = connection->ReadLine(timeout);
  if (!name) {
    if (error != nullptr) *error = "no greeting from " + ip + ":" + std::to_string(port);
    return std::nullopt;
  }
  if (!connection->Echo("ping", timeout)) {
    if (error != nullptr) *error = "no echo from " + ip + ":" + std::to_string(port);
    return std::nullopt;
  }
  return name;
}

}  // namespace gridd::testing
