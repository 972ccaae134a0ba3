// Loopback TCP backends and clients for the load-balancer tests. Every address is in
// 127.78.<n>.0/24 with <n> random per process, and every port comes from the kernel, so test
// processes running in parallel do not meet.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

namespace gridd::lb::testing {

// "127.78.<n>.<host>" with <n> fixed for the process.
inline std::string LoopbackAddress(int host) {
  static const int subnet = [] {
    std::random_device device;
    return static_cast<int>(std::uniform_int_distribution<int>(1, 254)(device));
  }();
  return "127.78." + std::to_string(subnet) + "." + std::to_string(host);
}

inline sockaddr_in SocketAddress(const std::string& ip, uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &address.sin_addr) != 1) {
    throw std::runtime_error("bad address " + ip);
  }
  return address;
}

// A port the kernel considers free on `ip` right now (for haproxy to bind next).
inline uint16_t FreePort(const std::string& ip) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = SocketAddress(ip, 0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    throw std::runtime_error("cannot bind " + ip);
  }
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// Polls `done` every 20 ms until it holds or `timeout` passes.
inline bool WaitUntil(const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// A TCP server that greets every connection with "<name>\n" and then echoes what it receives
// until the client closes.
class TcpBackend {
 public:
  TcpBackend(std::string name, const std::string& ip)
      : name_(std::move(name)),
        acceptor_(io_, {boost::asio::ip::make_address(ip), 0}),
        endpoint_(acceptor_.local_endpoint()) {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TcpBackend() {
    io_.stop();
    thread_.join();
  }
  TcpBackend(const TcpBackend&) = delete;
  TcpBackend& operator=(const TcpBackend&) = delete;

  const std::string& name() const { return name_; }
  std::string ip() const { return endpoint_.address().to_string(); }
  uint16_t port() const { return endpoint_.port(); }

 private:
  using Socket = boost::asio::ip::tcp::socket;

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code error, Socket socket) {
      if (error) return;
      auto connection = std::make_shared<Socket>(std::move(socket));
      auto greeting = std::make_shared<std::string>(name_ + "\n");
      boost::asio::async_write(*connection, boost::asio::buffer(*greeting),
                               [connection, greeting](boost::system::error_code e, size_t) {
                                 if (!e) Echo(connection);
                               });
      Accept();
    });
  }

  static void Echo(std::shared_ptr<Socket> connection) {
    auto buffer = std::make_shared<std::array<char, 1024>>();
    connection->async_read_some(boost::asio::buffer(*buffer),
                                [connection, buffer](boost::system::error_code error, size_t n) {
                                  if (error) return;
                                  boost::asio::async_write(
                                      *connection, boost::asio::buffer(buffer->data(), n),
                                      [connection, buffer](boost::system::error_code e, size_t) {
                                        if (!e) Echo(connection);
                                      });
                                });
  }

  std::string name_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::thread thread_;
};

// A blocking client connection with a receive timeout.
class Client {
 public:
  // Connects (from `source_ip` if given); check connected().
  Client(const std::string& ip, uint16_t port, const std::string& source_ip = "") {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval timeout{2, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    if (!source_ip.empty()) {
      sockaddr_in source = SocketAddress(source_ip, 0);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&source), sizeof(source)) != 0) return;
    }
    sockaddr_in address = SocketAddress(ip, port);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~Client() { close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // Reads one line (without the newline); nullopt on EOF, error or timeout.
  std::optional<std::string> ReadLine() {
    std::string line;
    char c;
    for (;;) {
      const ssize_t n = recv(fd_, &c, 1, 0);
      if (n <= 0) return std::nullopt;
      if (c == '\n') return line;
      line += c;
    }
  }

  // Sends `text` + "\n" and reads the echoed line.
  std::optional<std::string> Echo(const std::string& text) {
    const std::string request = text + "\n";
    if (send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      return std::nullopt;
    }
    return ReadLine();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// The name of the backend that answers one connection; nullopt when the balancer does not
// deliver one (refused, reset, no backend).
inline std::optional<std::string> FetchName(const std::string& ip, uint16_t port,
                                            const std::string& source_ip = "") {
  Client client(ip, port, source_ip);
  if (!client.connected()) return std::nullopt;
  return client.ReadLine();
}

// True when nothing listens on ip:port.
inline bool Refused(const std::string& ip, uint16_t port) { return !Client(ip, port).connected(); }

}  // namespace gridd::lb::testing
