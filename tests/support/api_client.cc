#include "support/api_client.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <ctime>
#include <limits>
#include <optional>
#include <stdexcept>

namespace gridd::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

bool HasParam(const std::vector<std::pair<std::string, std::string>>& params,
              std::string_view name) {
  return std::any_of(params.begin(), params.end(),
                     [name](const auto& pair) { return pair.first == name; });
}

// Errors that mean "the server had already closed this keep-alive connection", after which
// the request was certainly not processed and may be sent again on a fresh connection.
bool IsStaleConnection(beast::error_code ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe;
}

}  // namespace

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &size, EVP_md5(), nullptr) != 1) {
    throw std::runtime_error("EVP_Digest(MD5) failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

nlohmann::json ApiClient::Reply::json() const {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("HTTP " + std::to_string(status) + " body is not JSON (" + e.what() +
                             "): " + body.substr(0, 2000));
  }
}

std::string ApiClient::Reply::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(key, name)) return value;
  }
  return "";
}

// The socket and its io_context; async operations run to completion with a deadline.
class ApiClient::Connection {
 public:
  Connection(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {
    if (host_.size() >= 2 && host_.front() == '[' && host_.back() == ']') {
      host_ = host_.substr(1, host_.size() - 2);
    }
    host_header_ = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
    host_header_ += ":" + std::to_string(port_);
  }

  void SetTimeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  Reply Send(const std::string& method, const std::string& target, const std::string& body,
             const std::string& content_type) {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, host_header_);
    req.set(http::field::user_agent, "gridd-tests");
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    req.keep_alive(true);
    req.prepare_payload();

    for (int attempt = 0;; ++attempt) {
      bool reused = stream_.has_value();
      if (!stream_) Connect();
      std::optional<http::response_parser<http::string_body>> parser;
      parser.emplace();
      parser->header_limit(1024 * 1024);
      parser->body_limit((std::numeric_limits<std::uint64_t>::max)());
      if (beast::iequals(method, "HEAD")) parser->skip(true);

      beast::error_code ec = Run([&](auto done) { http::async_write(*stream_, req, done); });
      if (!ec) {
        ec = Run([&](auto done) { http::async_read(*stream_, buffer_, *parser, done); });
      }
      if (ec) {
        Disconnect();
        if (reused && attempt == 0 && IsStaleConnection(ec)) continue;
        throw std::runtime_error("HTTP " + method + " " + target + " to " + host_header_ +
                                 " failed: " + ec.message());
      }

      auto res = parser->release();
      Reply reply;
      reply.status = res.result_int();
      reply.content_type = std::string(res[http::field::content_type]);
      for (const auto& field : res) {
        reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      reply.body = std::move(res.body());
      if (!res.keep_alive()) Disconnect();
      return reply;
    }
  }

 private:
  // Starts one async operation, runs the io_context until it completes or the deadline passes.
  template <typename Initiate>
  beast::error_code Run(Initiate&& initiate) {
    beast::error_code result = net::error::would_block;
    stream_->expires_after(timeout_);
    initiate([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  void Connect() {
    tcp::resolver resolver(ioc_);
    beast::error_code ec;
    auto results = resolver.resolve(host_, std::to_string(port_), ec);
    if (ec) throw std::runtime_error("cannot resolve " + host_ + ": " + ec.message());
    stream_.emplace(ioc_);
    buffer_.clear();
    ec = Run([&](auto done) { stream_->async_connect(results, done); });
    if (ec) {
      Disconnect();
      throw std::runtime_error("cannot connect to " + host_header_ + ": " + ec.message());
    }
  }

  void Disconnect() {
    if (!stream_) return;
    beast::error_code ec;
    stream_->socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_->close();
    stream_.reset();
    buffer_.clear();
  }

  std::string host_;
  uint16_t port_;
  std::string host_header_;
  std::chrono::milliseconds timeout_{60000};
  net::io_context ioc_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

ApiClient::ApiClient(std::string host, uint16_t port)
    : connection_(std::make_unique<Connection>(std::move(host), port)) {}

ApiClient::~ApiClient() = default;
ApiClient::ApiClient(ApiClient&&) noexcept = default;
ApiClient& ApiClient::operator=(ApiClient&&) noexcept = default;

void ApiClient::SetCredentials(std::string api_key, std::string shared_secret) {
  api_key_ = std::move(api_key);
  shared_secret_ = std::move(shared_secret);
}

void ApiClient::SetTimeout(std::chrono::milliseconds timeout) { connection_->SetTimeout(timeout); }

ApiClient::Reply ApiClient::Call(const std::string& method_path,
                                 std::vector<std::pair<std::string, std::string>> params,
                                 std::string http_method, bool sign) {
  std::string target = method_path.starts_with('/') ? method_path : "/api/" + method_path;
  if (!HasParam(params, "v")) params.emplace_back("v", "1.8");
  if (!HasParam(params, "format")) params.emplace_back("format", "json");
  if (sign) {
    if (!HasParam(params, "api_key")) params.emplace_back("api_key", api_key_);
    if (!HasParam(params, "sig")) {
      params.emplace_back("sig",
                          Md5Hex(api_key_ + shared_secret_ +
                                 std::to_string(static_cast<long long>(std::time(nullptr)))));
    }
  }
  char separator = target.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [name, value] : params) {
    target += separator;
    target += UrlEncode(name);
    target += '=';
    target += UrlEncode(value);
    separator = '&';
  }
  return connection_->Send(http_method, target, "", "");
}

ApiClient::Reply ApiClient::Raw(const std::string& http_method, const std::string& target,
                                const std::string& body, const std::string& content_type) {
  return connection_->Send(http_method, target, body, content_type);
}

}  // namespace gridd::testing
