// A small synchronous HTTP/1.1 client for tests that talk to a real gridd over the network. It
// keeps one keep-alive connection and reconnects when the server has closed it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gridd::testing {

// Lower-case hex MD5, computed independently of gridd's own implementation.
std::string Md5Hex(std::string_view data);
// Percent-encodes everything but RFC 3986 unreserved characters (space becomes %20).
std::string UrlEncode(std::string_view text);

class ApiClient {
 public:
  struct Reply {
    unsigned status = 0;
    std::string content_type;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;

    // The body parsed as JSON; throws std::runtime_error quoting the body when it is not.
    nlohmann::json json() const;
    // The first header called `name` (case-insensitive), empty when absent.
    std::string Header(std::string_view name) const;
  };

  ApiClient(std::string host, uint16_t port);
  ~ApiClient();
  ApiClient(ApiClient&&) noexcept;
  ApiClient& operator=(ApiClient&&) noexcept;

  void SetCredentials(std::string api_key, std::string shared_secret);
  // Per-operation timeout (connect, write, read); 60 s by default.
  void SetTimeout(std::chrono::milliseconds timeout);

  // Calls a GoGrid method. `method_path` is "grid/server/list" (prefixed with /api/) or a full
  // path such as "/api/grid/server/list". Adds v=1.8 and format=json unless `params` has them;
  // when `sign` is set, also api_key and sig (unless `params` has them). All parameters go into
  // the query string, whatever `http_method` is. Throws std::runtime_error on transport errors.
  Reply Call(const std::string& method_path,
             std::vector<std::pair<std::string, std::string>> params,
             std::string http_method = "GET", bool sign = true);
  // Sends a request exactly as given (`target` is path and query).
  Reply Raw(const std::string& http_method, const std::string& target, const std::string& body = "",
            const std::string& content_type = "");

  const std::string& api_key() const { return api_key_; }
  const std::string& shared_secret() const { return shared_secret_; }

 private:
  class Connection;

  std::string api_key_;
  std::string shared_secret_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace gridd::testing
