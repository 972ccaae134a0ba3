// gridd's HTTP listener: Boost.Beast, HTTP/1.1 with keep-alive, limits on header size, body
// size and idle time. It knows nothing of GoGrid: every complete request is handed to a
// RequestHandler, whose answer is written back. Handlers run on the server's I/O threads and
// must not block for long (they touch SQLite, never a hypervisor).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gridd::api {

struct HttpRequest {
  std::string method;          // "GET", "POST", …
  std::string target;          // path and query string as sent, e.g. "/api/grid/server/list?x=1"
  std::string content_type;    // Content-Type header, empty when absent
  std::string body;
  std::string remote_address;  // peer IP, for logs and rate limits
  // Names the request in logs and in the X-Request-Id answer header: the client's own
  // X-Request-Id when it sent a short, plain one, a fresh random id otherwise.
  std::string request_id = {};
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json; charset=UTF-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // For the access log and the request metrics: what was called ("/grid/server/list",
  // "unknown" for a path that names no method) and the id of the API key that called it.
  std::string operation = {};
  std::string api_key_id = {};
};

using RequestHandler = std::function<HttpResponse(const HttpRequest&)>;

// Answers the server itself produces without calling the handler (oversized header or body,
// malformed HTTP). The daemon supplies one that renders a GoGrid failure envelope.
using ProtocolErrorRenderer = std::function<HttpResponse(unsigned status, const std::string& message)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 binds a free port; port() tells which
  int threads = 4;
  uint32_t max_header_bytes = 8 * 1024;
  uint32_t max_body_bytes = 1024 * 1024;
  std::chrono::seconds idle_timeout{30};
  // A whole request (header and body) must arrive within this time once it has begun, so a
  // client trickling bytes (slowloris) holds a connection for at most this long.
  std::chrono::seconds read_timeout{10};
  // Connections beyond these are closed as soon as they are accepted.
  int max_connections = 4096;
  int max_connections_per_address = 256;
  int max_header_count = 64;            // more header fields → 431
  uint32_t max_request_line_bytes = 4096;  // a longer method + target → 414
  // HTTPS when both are set: PEM files, TLS 1.2 or later with forward-secret AEAD ciphers.
  std::string tls_cert_file = {};
  std::string tls_key_file = {};
  bool access_log = true;
  // Counts requests in gridd_api_requests_total and gridd_api_request_duration_seconds.
  bool record_metrics = true;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, RequestHandler handler, ProtocolErrorRenderer on_error);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O threads. Throws std::runtime_error if the address cannot be bound.
  void Start();
  // The bound port (useful after binding port 0).
  uint16_t port() const;
  // Graceful stop: closes the listener at once, lets requests being handled finish and be
  // written, closes idle keep-alive connections, then joins the I/O threads. Idempotent.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gridd::api
