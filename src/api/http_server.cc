// Structure follows Boost.Beast's advanced_server example: an acceptor on its own strand, one
// Session per connection on another strand, one request_parser per message.
#include "gridd/api/http_server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "gridd/api/params.h"
#include "gridd/common/log.h"
#include "gridd/common/metrics.h"

namespace gridd::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = size_t{8} * 1024;
// After an error answer the client may still be sending the request we refused; reading (and
// discarding) it for a moment keeps the kernel from resetting the connection before the client
// has read our answer.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kMaxLingerBytes = size_t{4} * 1024 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// What the server's stop needs of a session, whatever its stream.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void Shutdown() = 0;
};

// What the listener and every session share. Held by shared_ptr so that sessions destroyed
// late (with the io_context) never outlive it.
struct ServerState {
  HttpServerOptions options;
  RequestHandler handler;
  ProtocolErrorRenderer on_error;
  std::shared_ptr<spdlog::logger> access_log;  // null when disabled
  std::shared_ptr<net::ssl::context> tls;      // null for plain HTTP
  std::atomic<bool> stopping{false};

  std::mutex sessions_mutex;
  std::unordered_map<const SessionBase*, std::weak_ptr<SessionBase>> sessions;

  // Open connections, in total and per client address (for the connection limits).
  std::mutex connections_mutex;
  int connections = 0;
  std::unordered_map<std::string, int> connections_by_address;
};

// One counted connection; the count drops when the session owning it ends.
class ConnectionSlot {
 public:
  // Null when a limit would be exceeded.
  static std::unique_ptr<ConnectionSlot> Take(const std::shared_ptr<ServerState>& state,
                                              const std::string& address) {
    std::lock_guard lock(state->connections_mutex);
    int& from_address = state->connections_by_address[address];
    if (state->connections >= state->options.max_connections ||
        from_address >= state->options.max_connections_per_address) {
      if (from_address == 0) state->connections_by_address.erase(address);
      return nullptr;
    }
    ++state->connections;
    ++from_address;
    return std::unique_ptr<ConnectionSlot>(new ConnectionSlot(state, address));
  }
  ~ConnectionSlot() {
    std::lock_guard lock(state_->connections_mutex);
    --state_->connections;
    auto it = state_->connections_by_address.find(address_);
    if (it != state_->connections_by_address.end() && --it->second <= 0) {
      state_->connections_by_address.erase(it);
    }
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;

 private:
  ConnectionSlot(std::shared_ptr<ServerState> state, std::string address)
      : state_(std::move(state)), address_(std::move(address)) {}
  std::shared_ptr<ServerState> state_;
  std::string address_;
};

std::shared_ptr<spdlog::logger> AccessLogger() {
  if (auto logger = spdlog::get("access")) return logger;
  std::shared_ptr<spdlog::logger> logger;
  if (auto base = spdlog::default_logger()) {
    logger = std::make_shared<spdlog::logger>("access", base->sinks().begin(), base->sinks().end());
    logger->set_level(base->level());
    logger->flush_on(base->flush_level());
  } else {
    logger = std::make_shared<spdlog::logger>("access");
  }
  try {
    spdlog::register_logger(logger);
  } catch (const spdlog::spdlog_ex&) {
    // Another thread registered it first; use theirs.
    if (auto existing = spdlog::get("access")) return existing;
  }
  return logger;
}

std::string PeerAddress(const tcp::socket& socket) {
  beast::error_code ec;
  tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return "-";
  net::ip::address address = peer.address();
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; log them as a.b.c.d.
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

// A client's X-Request-Id is kept when it is short and plain (it ends up in log lines); any
// other request gets 16 random hex digits.
std::string RequestIdFor(std::string_view from_client) {
  const bool usable =
      !from_client.empty() && from_client.size() <= 64 &&
      std::all_of(from_client.begin(), from_client.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
  if (usable) return std::string(from_client);
  thread_local std::mt19937_64 random{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(random()));
  return text;
}

// The answer to send when the handler or the renderer fails: never empty, never throws.
HttpResponse RenderError(const ServerState& state, unsigned status, const std::string& message) {
  HttpResponse response;
  try {
    response = state.on_error(status, message);
  } catch (const std::exception& e) {
    spdlog::error("HTTP error renderer failed: {}", e.what());
    response = HttpResponse{};
  } catch (...) {
    response = HttpResponse{};
  }
  if (response.body.empty()) {
    response.status = status;
    response.content_type = "text/plain; charset=UTF-8";
    response.body = message;
    response.headers.clear();
  }
  return response;
}

http::response<http::string_body> BuildResponse(HttpResponse&& response, unsigned version,
                                                bool keep_alive, const std::string& request_id) {
  http::response<http::string_body> res;
  res.version(version);
  res.result(response.status);  // throws std::invalid_argument above 999
  res.set(http::field::server, "gridd");
  if (!response.content_type.empty()) res.set(http::field::content_type, response.content_type);
  for (auto& [name, value] : response.headers) res.insert(name, value);
  if (!request_id.empty() && res.find("X-Request-Id") == res.end()) {
    res.set("X-Request-Id", request_id);
  }
  res.body() = std::move(response.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

// The response's head as Beast's serializer writes it: "HTTP/X.Y ### reason", the fields in
// their order, a blank line. Written here and sent with the body as two buffers, because the
// serializer's buffer sequences cost more than the rest of a small answer (a body always has
// its Content-Length; gridd never sends chunks).
std::string HeadText(const http::response<http::string_body>& res) {
  std::string out;
  out.reserve(256);
  const unsigned version = res.version();
  const unsigned code = res.result_int();
  out.append("HTTP/");
  out.push_back(static_cast<char>('0' + version / 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + version % 10));
  out.push_back(' ');
  out.push_back(static_cast<char>('0' + code / 100));
  out.push_back(static_cast<char>('0' + (code / 10) % 10));
  out.push_back(static_cast<char>('0' + code % 10));
  out.push_back(' ');
  const beast::string_view reason = res.reason();
  out.append(reason.data(), reason.size());
  out.append("\r\n");
  for (const auto& field : res.base()) {
    const beast::string_view name = field.name_string();
    const beast::string_view value = field.value();
    out.append(name.data(), name.size()).append(": ").append(value.data(), value.size());
    out.append("\r\n");
  }
  out.append("\r\n");
  return out;
}

// Stream is beast::tcp_stream (HTTP) or beast::ssl_stream<beast::tcp_stream> (HTTPS).
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  using std::enable_shared_from_this<Session<Stream>>::weak_from_this;

 public:
  Session(tcp::socket&& socket, std::shared_ptr<ServerState> state, std::string remote_address,
          std::unique_ptr<ConnectionSlot> slot)
      : stream_(MakeStream(std::move(socket), *state)),
        state_(std::move(state)),
        slot_(std::move(slot)),
        remote_address_(std::move(remote_address)) {}

  ~Session() override {
    std::lock_guard lock(state_->sessions_mutex);
    state_->sessions.erase(this);
  }

  void Run() {
    {
      std::lock_guard lock(state_->sessions_mutex);
      state_->sessions.emplace(this, weak_from_this());
    }
    if constexpr (kTls) {
      net::dispatch(stream_.get_executor(),
                    beast::bind_front_handler(&Session::Handshake, shared_from_this()));
    } else {
      net::dispatch(stream_.get_executor(),
                    beast::bind_front_handler(&Session::WaitForRequest, shared_from_this()));
    }
  }

  // Thread-safe. Part of a graceful stop: an idle connection is closed now, a busy one after
  // its current answer has been written.
  void Shutdown() override {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->phase_ == Phase::kIdle || self->phase_ == Phase::kLingering) self->Close();
    });
  }

 private:
  enum class Phase {
    kIdle,       // waiting for the first byte of a request
    kReading,    // a request has begun to arrive
    kWriting,    // the answer is being written
    kLingering,  // draining after an error answer
    kClosed,
  };

  static Stream MakeStream(tcp::socket&& socket, ServerState& state) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *state.tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  // Every read and write gets the idle timeout; zero means no timeout.
  void ArmTimer() {
    if (state_->options.idle_timeout.count() > 0) {
      Tcp().expires_after(state_->options.idle_timeout);
    } else {
      Tcp().expires_never();
    }
  }

  // The whole request must arrive within the read timeout: one deadline, not one per read.
  void ArmReadDeadline() {
    if (state_->options.read_timeout.count() > 0) {
      Tcp().expires_after(state_->options.read_timeout);
    } else {
      ArmTimer();
    }
  }

  void Handshake() {
    if constexpr (kTls) {
      ArmReadDeadline();
      stream_.async_handshake(net::ssl::stream_base::server,
                              beast::bind_front_handler(&Session::OnHandshake, shared_from_this()));
    }
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) return Close();  // not TLS, an old protocol, no shared cipher, or too slow
    WaitForRequest();
  }

  void WaitForRequest() {
    if (state_->stopping) return Close();
    phase_ = Phase::kIdle;
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
    // Wait for a byte before creating the parser, so that an idle connection is recognisable
    // as such when the server stops.
    ArmTimer();
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            beast::bind_front_handler(&Session::OnFirstBytes, shared_from_this()));
  }

  void OnFirstBytes(beast::error_code ec, size_t bytes) {
    if (ec) return Close();  // idle timeout, client gone or server stopping
    buffer_.commit(bytes);
    ReadHeader();
  }

  void ReadHeader() {
    phase_ = Phase::kReading;
    started_ = Clock::now();
    parser_.emplace();
    parser_->header_limit(state_->options.max_header_bytes);
    parser_->body_limit(std::uint64_t{state_->options.max_body_bytes});
    ArmReadDeadline();
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    const auto& req = parser_->get();
    if (req.method_string().size() + req.target().size() > state_->options.max_request_line_bytes) {
      return SendProtocolError(414, "Request line too long (limit " +
                                        std::to_string(state_->options.max_request_line_bytes) +
                                        " bytes)");
    }
    if (std::distance(req.begin(), req.end()) > state_->options.max_header_count) {
      return SendProtocolError(431, "Too many request header fields (limit " +
                                        std::to_string(state_->options.max_header_count) + ")");
    }
    if (parser_->is_done()) return Handle();
    if (req.version() >= 11 && beast::iequals(req[http::field::expect], "100-continue")) {
      // curl and others wait for this before sending a larger body.
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       beast::bind_front_handler(&Session::OnContinueWritten, shared_from_this()));
      return;
    }
    ReadBody();
  }

  void OnContinueWritten(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return Close();
    ReadBody();
  }

  void ReadBody() {
    // The deadline armed for the header still runs: it covers the body too.
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    Handle();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return SendProtocolError(431, "Request header fields too large (limit " +
                                        std::to_string(state_->options.max_header_bytes) +
                                        " bytes)");
    }
    if (ec == http::error::body_limit) {
      return SendProtocolError(413, "Request body too large (limit " +
                                        std::to_string(state_->options.max_body_bytes) + " bytes)");
    }
    // Anything outside the parser's own category is a transport problem (timeout, reset, stop);
    // a client that went away mid-request gets no answer either.
    if (ec.category() != http::make_error_code(http::error::bad_target).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message) {
      return Close();
    }
    SendProtocolError(400, "Malformed HTTP request: " + ec.message());
  }

  void Handle() {
    phase_ = Phase::kWriting;  // the handler runs on this strand, so Shutdown waits for it
    auto& req = parser_->get();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.content_type = std::string(req[http::field::content_type]);
    request.body = std::move(req.body());
    request.remote_address = remote_address_;
    request.request_id = RequestIdFor(req["X-Request-Id"]);
    request_id_ = request.request_id;
    log_method_ = request.method;
    log_path_ = std::string(PathOf(request.target));
    // Every line logged while the request is handled names it.
    log::ScopedFields request_fields(log::Fields{{"request_id", request_id_}});

    HttpResponse response;
    try {
      response = state_->handler(request);
    } catch (const std::exception& e) {
      std::string message = e.what();
      if (message.empty()) message = "Internal server error";
      spdlog::error("HTTP handler failed for {} {}: {}", log_method_, log_path_, message);
      response = RenderError(*state_, 500, message);
    } catch (...) {
      spdlog::error("HTTP handler failed for {} {}: unknown exception", log_method_, log_path_);
      response = RenderError(*state_, 500, "Internal server error");
    }

    operation_ = response.operation.empty() ? "none" : response.operation;
    api_key_id_ = response.api_key_id;
    bool keep_alive = req.keep_alive() && !state_->stopping;
    unsigned version = req.version();
    parser_.reset();
    std::optional<http::response<http::string_body>> res;
    try {
      res.emplace(BuildResponse(std::move(response), version, keep_alive, request_id_));
    } catch (const std::exception& e) {
      spdlog::error("HTTP handler for {} {} gave an invalid response: {}", log_method_, log_path_,
                    e.what());
      res.emplace(BuildResponse(RenderError(*state_, 500, "Internal server error"), version,
                                keep_alive, request_id_));
    }
    Write(std::move(*res), /*linger=*/false);
  }

  void SendProtocolError(unsigned status, const std::string& message) {
    phase_ = Phase::kWriting;
    if (parser_ && parser_->is_header_done()) {
      log_method_ = std::string(parser_->get().method_string());
      log_path_ = std::string(PathOf(parser_->get().target()));
    } else {
      log_method_ = "-";
      log_path_ = "-";
    }
    request_id_ = RequestIdFor(parser_ && parser_->is_header_done()
                                   ? std::string_view(parser_->get()["X-Request-Id"])
                                   : std::string_view());
    operation_ = "none";
    api_key_id_.clear();
    parser_.reset();
    http::response<http::string_body> res;
    try {
      res = BuildResponse(RenderError(*state_, status, message), 11, /*keep_alive=*/false,
                          request_id_);
    } catch (const std::exception&) {
      HttpResponse plain{status, "text/plain; charset=UTF-8", message, {}};
      res = BuildResponse(std::move(plain), 11, false, request_id_);
    }
    Write(std::move(res), /*linger=*/true);
  }

  void Write(http::response<http::string_body>&& res, bool linger) {
    response_.emplace(std::move(res));
    head_ = HeadText(*response_);
    ArmTimer();
    const std::array<net::const_buffer, 2> buffers = {net::buffer(head_),
                                                      net::buffer(response_->body())};
    net::async_write(stream_, buffers,
                     beast::bind_front_handler(&Session::OnWrite, shared_from_this(), linger));
  }

  void OnWrite(bool linger, beast::error_code ec, size_t /*bytes*/) {
    unsigned status = response_->result_int();
    size_t body_bytes = response_->body().size();
    bool keep_alive = response_->keep_alive();
    response_.reset();
    LogAccess(status, body_bytes, ec);
    if (ec) return Close();
    if (linger) return Linger();
    if (!keep_alive || state_->stopping) return Close();
    WaitForRequest();
  }

  void LogAccess(unsigned status, size_t body_bytes, beast::error_code ec) {
    const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    if (state_->options.record_metrics) {
      metrics::ApiRequests().Increment({operation_, std::to_string(status)});
      metrics::ApiRequestSeconds().Observe({operation_}, seconds);
    }
    if (!state_->access_log) return;
    char duration[32];
    std::snprintf(duration, sizeof(duration), "%.3f", seconds * 1000);
    log::Fields fields = {{"client", remote_address_},
                          {"api_key_id", api_key_id_.empty() ? "-" : api_key_id_},
                          {"method", operation_},
                          {"http_method", log_method_},
                          {"path", log_path_},
                          {"status", std::to_string(status)},
                          {"bytes", std::to_string(body_bytes)},
                          {"duration_ms", duration},
                          {"request_id", request_id_}};
    if (ec) fields.emplace_back("write_error", ec.message());
    log::Event(*state_->access_log, spdlog::level::info, "request", fields);
  }

  void Linger() {
    if (state_->stopping) return Close();
    phase_ = Phase::kLingering;
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    buffer_.clear();
    lingered_bytes_ = 0;
    Tcp().expires_after(kLingerTime);
    DrainSome();
  }

  void DrainSome() {
    stream_.async_read_some(buffer_.prepare(kReadChunk), [self = shared_from_this()](
                                                             beast::error_code ec, size_t bytes) {
      self->buffer_.clear();
      self->lingered_bytes_ += bytes;
      if (ec || self->phase_ != Phase::kLingering || self->lingered_bytes_ > kMaxLingerBytes) {
        return self->Close();
      }
      self->DrainSome();
    });
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    Tcp().close();
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<ServerState> state_;
  std::unique_ptr<ConnectionSlot> slot_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;  // alive until written
  std::string head_;                                           // response_'s, as sent
  std::string remote_address_;
  Phase phase_ = Phase::kIdle;
  Clock::time_point started_ = Clock::now();
  std::string log_method_;
  std::string log_path_;
  std::string request_id_;
  std::string operation_;  // GoGrid method for metrics and the access log
  std::string api_key_id_;
  size_t lingered_bytes_ = 0;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, tcp::acceptor&& acceptor, std::shared_ptr<ServerState> state)
      : ioc_(ioc),
        acceptor_(std::move(acceptor)),
        retry_timer_(acceptor_.get_executor()),
        state_(std::move(state)) {}

  void Run() {
    net::dispatch(acceptor_.get_executor(),
                  beast::bind_front_handler(&Listener::Accept, shared_from_this()));
  }

  // Thread-safe.
  void Close() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->retry_timer_.cancel();
    });
  }

 private:
  void Accept() {
    if (!acceptor_.is_open()) return;
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open() || state_->stopping) return;  // the socket closes on its way out
    if (ec) {
      // Typically EMFILE: pause instead of spinning, the condition may pass.
      spdlog::warn("HTTP accept failed: {}", ec.message());
      retry_timer_.expires_after(std::chrono::milliseconds(100));
      retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec) self->Accept();
      });
      return;
    }
    std::string address = PeerAddress(socket);
    // An answer's last segment must not wait for the ACK of the one before (Nagle), which the
    // client may delay by up to 40 ms: every response is written whole, in one call.
    beast::error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);
    if (auto slot = ConnectionSlot::Take(state_, address)) {
      if (state_->tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            std::move(socket), state_, std::move(address), std::move(slot))
            ->Run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(std::move(socket), state_, std::move(address),
                                                     std::move(slot))
            ->Run();
      }
    } else {
      // Over a connection limit: close at once, before reading a byte.
      beast::error_code close_ec;
      socket.close(close_ec);
    }
    Accept();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  std::shared_ptr<ServerState> state_;
};

// TLS 1.2 and 1.3 only; for 1.2 only ECDHE key exchange with AEAD ciphers (forward secrecy,
// no CBC), the server's preference first, no compression and no renegotiation.
std::shared_ptr<net::ssl::context> MakeTlsContext(const HttpServerOptions& options) {
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                       net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use |
                       net::ssl::context::no_compression);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_cipher_list(native,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  try {
    context->use_certificate_chain_file(options.tls_cert_file);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot load TLS certificate " + options.tls_cert_file + ": " +
                             e.what());
  }
  try {
    context->use_private_key_file(options.tls_key_file, net::ssl::context::pem);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot load TLS key " + options.tls_key_file + ": " + e.what());
  }
  return context;
}

std::string EndpointText(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, RequestHandler handler, ProtocolErrorRenderer on_error)
      : state_(std::make_shared<ServerState>()), ioc_(options.threads > 0 ? options.threads : 1) {
    state_->options = std::move(options);
    if (state_->options.threads < 1) state_->options.threads = 1;
    state_->handler = std::move(handler);
    state_->on_error = std::move(on_error);
  }

  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard lock(mutex_);
    if (started_) throw std::logic_error("HttpServer::Start called twice");
    if (stopped_) throw std::logic_error("HttpServer::Start called after Stop");
    const HttpServerOptions& options = state_->options;
    if (options.access_log) state_->access_log = AccessLogger();
    if (!options.tls_cert_file.empty()) state_->tls = MakeTlsContext(options);

    std::string host = options.host;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    std::string where = EndpointText(host, options.port);
    tcp::acceptor acceptor(net::make_strand(ioc_));
    try {
      tcp::endpoint endpoint;
      beast::error_code ec;
      net::ip::address address = net::ip::make_address(host, ec);
      if (!ec) {
        endpoint = tcp::endpoint(address, options.port);
      } else {
        tcp::resolver resolver(ioc_);
        auto results = resolver.resolve(host, std::to_string(options.port),
                                        tcp::resolver::passive | tcp::resolver::numeric_service);
        if (results.empty()) throw std::runtime_error("host not found");
        endpoint = results.begin()->endpoint();
      }
      acceptor.open(endpoint.protocol());
      acceptor.set_option(net::socket_base::reuse_address(true));
      acceptor.bind(endpoint);
      acceptor.listen(net::socket_base::max_listen_connections);
      port_ = acceptor.local_endpoint().port();
    } catch (const std::exception& e) {
      std::string message = e.what();
      // system_error's what() reads "bind: Address already in use"; keep only the reason.
      if (auto* se = dynamic_cast<const boost::system::system_error*>(&e)) {
        message = se->code().message();
      }
      throw std::runtime_error("cannot listen on " + where + ": " + message);
    }

    started_ = true;
    listener_ = std::make_shared<Listener>(ioc_, std::move(acceptor), state_);
    listener_->Run();
    threads_.reserve(static_cast<size_t>(options.threads));
    for (int i = 0; i < options.threads; ++i) {
      threads_.emplace_back([this] { RunLoop(); });
    }
  }

  uint16_t port() const { return port_; }

  void Stop() {
    std::lock_guard lock(mutex_);
    if (!started_ || stopped_) {
      stopped_ = true;
      return;
    }
    for (const auto& thread : threads_) {
      if (thread.get_id() == std::this_thread::get_id()) {
        throw std::logic_error("HttpServer::Stop called from one of its own I/O threads");
      }
    }
    stopped_ = true;
    // Order matters: a session checks `stopping` before going idle, so every session either
    // sees the flag or is in the snapshot below and gets told to close.
    state_->stopping = true;
    listener_->Close();
    std::vector<std::shared_ptr<SessionBase>> sessions;
    {
      std::lock_guard sessions_lock(state_->sessions_mutex);
      for (auto& [key, weak] : state_->sessions) {
        if (auto session = weak.lock()) sessions.push_back(std::move(session));
      }
    }
    for (auto& session : sessions) session->Shutdown();
    sessions.clear();
    // run() returns once the acceptor is closed and every session has finished.
    for (auto& thread : threads_) thread.join();
    threads_.clear();
    listener_.reset();
  }

 private:
  void RunLoop() {
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("HTTP I/O thread: {}", e.what());
      }
    }
  }

  std::shared_ptr<ServerState> state_;
  net::io_context ioc_;
  std::shared_ptr<Listener> listener_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;  // serialises Start and Stop
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<uint16_t> port_{0};
};

HttpServer::HttpServer(HttpServerOptions options, RequestHandler handler,
                       ProtocolErrorRenderer on_error)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(on_error))) {}

HttpServer::~HttpServer() = default;

void HttpServer::Start() { impl_->Start(); }

uint16_t HttpServer::port() const { return impl_->port(); }

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace gridd::api
