// gridctl's side of the admin socket protocol (include/gridd/admin/admin_server.h): one
// request line out, one reply line back, on a fresh connection per command.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace gridd::ctl {

// The daemon could not be talked to at all (exit code 3).
class Unreachable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The daemon answered with an error, or with something that is not a reply (exit code 1).
class CommandFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AdminClient {
 public:
  AdminClient(std::filesystem::path socket_path, std::chrono::milliseconds timeout)
      : path_(std::move(socket_path)), timeout_(timeout) {}

  // Sends one command and returns its result. ordered_json keeps the keys in the order the
  // daemon sent them, which is the order tables show them in.
  nlohmann::ordered_json Call(const std::string& command, const nlohmann::ordered_json& args) {
    nlohmann::ordered_json request = {{"command", command}, {"args", args}};
    std::string reply_line = Exchange(request.dump() + '\n');

    nlohmann::ordered_json reply;
    try {
      reply = nlohmann::ordered_json::parse(reply_line);
    } catch (const nlohmann::json::parse_error&) {
      throw CommandFailed("malformed reply from gridd at " + path_.string());
    }
    if (!reply.is_object() || !reply.contains("ok") || !reply["ok"].is_boolean()) {
      throw CommandFailed("malformed reply from gridd at " + path_.string());
    }
    if (!reply["ok"].get<bool>()) {
      auto error = reply.find("error");
      throw CommandFailed(error != reply.end() && error->is_string() ? error->get<std::string>()
                                                                     : "unknown error");
    }
    auto result = reply.find("result");
    return result != reply.end() ? *result : nlohmann::ordered_json();
  }

 private:
  // Closes the descriptor on every way out.
  struct Fd {
    int fd = -1;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  };

  using Clock = std::chrono::steady_clock;

  std::string Exchange(const std::string& request) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.native().size() >= sizeof(address.sun_path)) {
      throw Unreachable("cannot reach gridd at " + path_.string() +
                        ": socket path too long (use a shorter --data-dir)");
    }
    std::memcpy(address.sun_path, path_.c_str(), path_.native().size() + 1);

    Fd sock{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (sock.fd < 0) throw Unreachable("socket: " + ErrnoMessage(errno));
    // Connecting only blocks when the daemon's backlog is full; bound that wait too.
    timeval tv{static_cast<time_t>(timeout_.count() / 1000),
               static_cast<suseconds_t>(timeout_.count() % 1000 * 1000)};
    ::setsockopt(sock.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(sock.fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      int error = errno;
      std::string hint = error == EACCES ? " (run gridctl as root or as the user gridd runs as)"
                                         : " (is gridd running with this --data-dir?)";
      throw Unreachable("cannot reach gridd at " + path_.string() + ": " + ErrnoMessage(error) +
                        hint);
    }

    const Clock::time_point deadline = Clock::now() + timeout_;
    // A daemon that refuses us may reply and hang up before reading the request, so a failed
    // write still goes on to read whatever reply is there.
    bool write_failed = false;
    for (std::size_t sent = 0; sent < request.size();) {
      WaitFor(sock.fd, POLLOUT, deadline);
      ssize_t n = ::send(sock.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        write_failed = true;
        break;
      }
      sent += static_cast<std::size_t>(n);
    }

    std::string reply;
    char chunk[64 * 1024];
    for (;;) {
      std::size_t newline = reply.find('\n');
      if (newline != std::string::npos) return reply.substr(0, newline);
      WaitFor(sock.fd, POLLIN, deadline);
      ssize_t n = ::recv(sock.fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::string why = n < 0 ? ErrnoMessage(errno) : "connection closed";
        if (write_failed) why += " while sending the request";
        throw Unreachable("gridd at " + path_.string() + " did not answer: " + why);
      }
      reply.append(chunk, static_cast<std::size_t>(n));
    }
  }

  void WaitFor(int fd, short events, Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      pollfd pfd{fd, events, 0};
      int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
      if (rc > 0) return;  // ready, or an error the next call will report
      if (rc < 0 && errno != EINTR) throw Unreachable("poll: " + ErrnoMessage(errno));
    }
    throw Unreachable("gridd at " + path_.string() + " did not answer within " +
                      std::to_string(timeout_.count() / 1000) + " s");
  }

  static std::string ErrnoMessage(int error) { return std::generic_category().message(error); }

  std::filesystem::path path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace gridd::ctl
