#include "gridd/admin/admin_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/buffers_iterator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "admin/protocol.h"

namespace gridd::admin {
namespace {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;
using boost::system::error_code;

// How long Stop() waits for replies still being written before cutting connections.
constexpr auto kStopGrace = std::chrono::seconds(5);
// Pause before accepting again after an accept error (e.g. out of descriptors), so the
// loop does not spin.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

std::string ErrnoMessage(int error) { return std::generic_category().message(error); }

// The socket file is 0600 already; checking the peer as well keeps a loosened mode (or a
// shared data dir) from handing the daemon to other local users.
bool PeerAllowed(int fd) {
  ucred cred{};
  socklen_t length = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return false;
  return cred.uid == 0 || cred.uid == ::geteuid();
}

sockaddr_un SocketAddress(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string& native = path.native();
  if (native.size() >= sizeof(address.sun_path)) {
    throw std::runtime_error("admin socket path is too long (" + std::to_string(native.size()) +
                             " bytes, at most " + std::to_string(sizeof(address.sun_path) - 1) +
                             "): " + native);
  }
  std::memcpy(address.sun_path, native.c_str(), native.size() + 1);
  return address;
}

// Makes the socket path free to bind: refuses if a live daemon answers there, removes the
// file a crashed one left behind.
void ClaimSocketPath(const std::filesystem::path& path) {
  std::error_code ec;
  auto status = std::filesystem::symlink_status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) return;
  if (ec) throw std::runtime_error("cannot inspect " + path.string() + ": " + ec.message());
  if (status.type() != std::filesystem::file_type::socket) {
    // Not ours to delete: someone put something else there.
    throw std::runtime_error(path.string() + " exists and is not a socket");
  }

  sockaddr_un address = SocketAddress(path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw std::runtime_error("socket: " + ErrnoMessage(errno));
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  int error = rc == 0 ? 0 : errno;
  ::close(fd);
  // EAGAIN means a listener exists but its backlog is full: still a live daemon.
  if (rc == 0 || error == EAGAIN || error == EINPROGRESS) {
    throw std::runtime_error("another gridd is already serving " + path.string());
  }
  if (error != ECONNREFUSED && error != ENOENT) {
    throw std::runtime_error("cannot probe " + path.string() + ": " + ErrnoMessage(error));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw std::runtime_error("cannot remove stale " + path.string() + ": " + ErrnoMessage(errno));
  }
  spdlog::info("admin: removed stale socket {}", path.string());
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(std::filesystem::path socket_path, CommandHandler handler)
      : path_(std::move(socket_path)), handler_(std::move(handler)) {}

  ~Impl() { Stop(); }

  void Start();
  void Stop();

 private:
  class Session;

  void Accept();
  void BeginShutdown();
  void Remove(Session* session);
  // Runs one request line through the handler; returns the reply line. Never throws.
  std::string Answer(std::string_view line);
  void RemoveSocketFile();

  const std::filesystem::path path_;
  const CommandHandler handler_;

  asio::io_context io_;
  Local::acceptor acceptor_{io_};
  asio::steady_timer accept_retry_{io_};
  asio::steady_timer stop_grace_{io_};
  std::thread thread_;

  std::mutex lifecycle_mutex_;  // Start/Stop
  bool started_ = false;
  bool stopped_ = false;
  // Identity of the socket file we created, so Stop never removes a successor's socket.
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;

  // Touched only on the I/O thread.
  bool stopping_ = false;
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions_;

  // The daemon's database has one writer; commands never overlap.
  std::mutex command_mutex_;
};

class AdminServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, Local::socket socket)
      : server_(server), socket_(std::move(socket)), buffer_(protocol::kMaxLineBytes + 1) {}

  void Begin() {
    if (!PeerAllowed(socket_.native_handle())) {
      spdlog::warn("admin: refused a connection from a foreign user");
      Send(protocol::ErrorReply("permission denied"), /*then_close=*/true);
      return;
    }
    ReadLine();
  }

  // Called when the server stops: a reply being written may finish, anything else closes now.
  void Shutdown() {
    if (writing_) {
      close_after_write_ = true;
    } else {
      Close();
    }
  }

  void Close() {
    error_code ignored;
    socket_.shutdown(Local::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  void ReadLine() {
    asio::async_read_until(socket_, buffer_, '\n',
                           [self = shared_from_this()](error_code ec, std::size_t length) {
                             self->OnLine(ec, length);
                           });
  }

  void OnLine(error_code ec, std::size_t length) {
    if (ec == asio::error::not_found) {  // the buffer filled up without a newline
      Send(protocol::ErrorReply("request line longer than 1 MiB"), /*then_close=*/true);
      return;
    }
    if (ec) {  // peer went away, or Stop closed us
      Finish();
      return;
    }
    auto begin = asio::buffers_begin(buffer_.data());
    std::string line(begin, begin + static_cast<std::ptrdiff_t>(length - 1));
    buffer_.consume(length);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {  // tolerate blank lines
      ReadLine();
      return;
    }
    Send(server_.Answer(line), /*then_close=*/false);
  }

  void Send(std::string reply, bool then_close) {
    reply_ = std::move(reply);
    writing_ = true;
    close_after_write_ = close_after_write_ || then_close;
    asio::async_write(
        socket_, asio::buffer(reply_),
        [self = shared_from_this()](error_code ec, std::size_t) { self->OnWritten(ec); });
  }

  void OnWritten(error_code ec) {
    writing_ = false;
    if (ec || close_after_write_ || server_.stopping_) {
      Finish();
      return;
    }
    ReadLine();
  }

  void Finish() {
    Close();
    server_.Remove(this);  // the completion handler's reference keeps us alive until it returns
  }

  Impl& server_;
  Local::socket socket_;
  asio::streambuf buffer_;
  std::string reply_;
  bool writing_ = false;
  bool close_after_write_ = false;
};

void AdminServer::Impl::Start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) throw std::logic_error("AdminServer::Start called twice");

  SocketAddress(path_);  // fail early, with a clear message, on an over-long path
  ClaimSocketPath(path_);

  Local::endpoint endpoint(path_.string());
  acceptor_.open(endpoint.protocol());
  // The umask makes the file 0600 from the moment it exists; chmod below makes sure of it
  // whatever the filesystem did.
  error_code ec;
  mode_t old_mask = ::umask(0177);
  acceptor_.bind(endpoint, ec);
  ::umask(old_mask);
  if (ec) {
    throw std::runtime_error("cannot bind admin socket " + path_.string() + ": " + ec.message());
  }
  try {
    if (::chmod(path_.c_str(), 0600) != 0) {
      throw std::runtime_error("chmod " + path_.string() + ": " + ErrnoMessage(errno));
    }
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) {
      throw std::runtime_error("stat " + path_.string() + ": " + ErrnoMessage(errno));
    }
    socket_dev_ = st.st_dev;
    socket_ino_ = st.st_ino;
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw std::runtime_error("cannot listen on " + path_.string() + ": " + ec.message());
    }
  } catch (...) {
    acceptor_.close(ec);
    ::unlink(path_.c_str());
    throw;
  }

  started_ = true;
  Accept();
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      spdlog::error("admin: I/O loop failed: {}", e.what());
    }
  });
  spdlog::info("admin: listening on {}", path_.string());
}

void AdminServer::Impl::Stop() {
  std::lock_guard lock(lifecycle_mutex_);
  if (!started_ || stopped_) return;
  if (std::this_thread::get_id() == thread_.get_id()) {
    // Joining our own thread would deadlock; a command must not stop the server it runs on.
    throw std::logic_error("AdminServer::Stop called from an admin command");
  }
  stopped_ = true;
  asio::post(io_, [this] { BeginShutdown(); });
  thread_.join();
  RemoveSocketFile();
  spdlog::info("admin: stopped");
}

void AdminServer::Impl::Accept() {
  acceptor_.async_accept([this](error_code ec, Local::socket socket) {
    if (stopping_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("admin: accept failed: {}", ec.message());
      accept_retry_.expires_after(kAcceptRetryDelay);
      accept_retry_.async_wait([this](error_code wait_ec) {
        if (!wait_ec && !stopping_) Accept();
      });
      return;
    }
    auto session = std::make_shared<Session>(*this, std::move(socket));
    sessions_.emplace(session.get(), session);
    session->Begin();
    Accept();
  });
}

void AdminServer::Impl::BeginShutdown() {
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  // No command is running here: commands run on this thread, so this waits for the current one.
  for (auto& [raw, session] : sessions_) session->Shutdown();
  if (sessions_.empty()) return;
  // A peer that stops reading must not hold Stop() forever.
  stop_grace_.expires_after(kStopGrace);
  stop_grace_.async_wait([this](error_code ec) {
    if (ec) return;
    for (auto& [raw, session] : sessions_) session->Close();
  });
}

void AdminServer::Impl::Remove(Session* session) {
  sessions_.erase(session);
  if (stopping_ && sessions_.empty()) stop_grace_.cancel();
}

std::string AdminServer::Impl::Answer(std::string_view line) {
  protocol::Request request;
  try {
    request = protocol::ParseRequest(line);
  } catch (const protocol::BadRequest& e) {
    spdlog::warn("admin: bad request: {}", e.what());
    return protocol::ErrorReply(e.what());
  }

  std::lock_guard lock(command_mutex_);
  // Only the command name is logged: arguments and results may carry secrets.
  spdlog::info("admin: {}", request.command);
  try {
    return protocol::OkReply(handler_(request.command, request.args));
  } catch (const std::exception& e) {
    spdlog::warn("admin: {} failed: {}", request.command, e.what());
    return protocol::ErrorReply(e.what());
  } catch (...) {
    spdlog::error("admin: {} failed with an unknown exception", request.command);
    return protocol::ErrorReply("internal error");
  }
}

void AdminServer::Impl::RemoveSocketFile() {
  struct stat st {};
  if (::lstat(path_.c_str(), &st) != 0) return;
  if (st.st_dev != socket_dev_ || st.st_ino != socket_ino_) return;  // replaced since; not ours
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("admin: cannot remove {}: {}", path_.string(), ErrnoMessage(errno));
  }
}

AdminServer::AdminServer(std::filesystem::path socket_path, CommandHandler handler)
    : impl_(std::make_unique<Impl>(std::move(socket_path), std::move(handler))) {}

AdminServer::~AdminServer() = default;

void AdminServer::Start() { impl_->Start(); }

void AdminServer::Stop() { impl_->Stop(); }

}  // namespace gridd::admin
