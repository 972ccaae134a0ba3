#include "gridd/api/http_server.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "gridd/api/params.h"
#include "gridd/common/log.h"
#include "support/api_client.h"

namespace gridd::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Response = http::response<http::string_body>;
using namespace std::chrono_literals;

// A client connection that sends raw bytes, with a deadline on every operation so a broken
// server fails the test instead of hanging it.
class TestConnection {
 public:
  explicit TestConnection(uint16_t port, const std::string& host = "127.0.0.1") : stream_(ioc_) {
    tcp::endpoint endpoint(net::ip::make_address(host), port);
    beast::error_code ec = Run([&](auto done) { stream_.async_connect(endpoint, done); });
    if (ec) throw std::runtime_error("connect: " + ec.message());
  }

  void Send(std::string_view bytes) {
    beast::error_code ec =
        Run([&](auto done) { net::async_write(stream_, net::buffer(bytes), done); });
    if (ec) throw std::runtime_error("write: " + ec.message());
  }

  Response Read() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(10 * 1024 * 1024);
    beast::error_code ec =
        Run([&](auto done) { http::async_read(stream_, buffer_, parser, done); });
    if (ec) throw std::runtime_error("read: " + ec.message());
    return parser.release();
  }

  Response Request(const std::string& method, const std::string& target,
                   const std::string& extra = "", const std::string& body = "") {
    std::string request = method + " " + target + " HTTP/1.1\r\nHost: test\r\n" + extra;
    if (!body.empty() || method == "POST") {
      request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    Send(request + "\r\n" + body);
    return Read();
  }

  // Reads up to the end of the next header block, without parsing it.
  std::string ReadHeaderBlock() {
    std::string data = beast::buffers_to_string(buffer_.data());
    while (data.find("\r\n\r\n") == std::string::npos) {
      size_t received = 0;
      beast::error_code ec = Run([&](auto done) {
        stream_.async_read_some(buffer_.prepare(1024),
                                [&received, done](beast::error_code ec, size_t bytes) mutable {
                                  received = bytes;
                                  done(ec);
                                });
      });
      if (ec) throw std::runtime_error("read: " + ec.message());
      buffer_.commit(received);
      data = beast::buffers_to_string(buffer_.data());
    }
    size_t end = data.find("\r\n\r\n") + 4;
    buffer_.consume(end);
    return data.substr(0, end);
  }

  // True when the server closes the connection (EOF or reset) without sending anything more.
  bool ClosedByServer(std::chrono::milliseconds timeout = 3000ms) {
    if (buffer_.size() > 0) return false;
    char byte;
    beast::error_code ec =
        Run([&](auto done) { stream_.async_read_some(net::buffer(&byte, 1), done); }, timeout);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

 private:
  template <typename Initiate>
  beast::error_code Run(Initiate&& initiate, std::chrono::milliseconds timeout = 5000ms) {
    beast::error_code result = net::error::would_block;
    stream_.expires_after(timeout);
    initiate([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

HttpResponse RenderProtocolError(unsigned status, const std::string& message) {
  nlohmann::json body = {{"status", "failure"}, {"code", status}, {"message", message}};
  return HttpResponse{status, "application/json; charset=UTF-8", body.dump(), {}};
}

HttpResponse Echo(const HttpRequest& request) {
  nlohmann::json body = {{"method", request.method},
                         {"target", request.target},
                         {"content_type", request.content_type},
                         {"body", request.body},
                         {"remote", request.remote_address}};
  return HttpResponse{200, "application/json; charset=UTF-8", body.dump(), {}};
}

HttpServerOptions TestOptions() {
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 2;
  options.access_log = false;
  return options;
}

TEST(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  ASSERT_NE(server.port(), 0);
  TestConnection connection(server.port());

  Response first = connection.Request("GET", "/api/first?x=1");
  EXPECT_EQ(first.result_int(), 200u);
  EXPECT_TRUE(first.keep_alive());
  EXPECT_EQ(first[http::field::server], "gridd");
  EXPECT_EQ(first[http::field::content_type], "application/json; charset=UTF-8");
  EXPECT_EQ(first[http::field::content_length], std::to_string(first.body().size()));
  auto json = nlohmann::json::parse(first.body());
  EXPECT_EQ(json["method"], "GET");
  EXPECT_EQ(json["target"], "/api/first?x=1");
  EXPECT_EQ(json["remote"], "127.0.0.1");

  Response second = connection.Request("GET", "/api/second");
  EXPECT_EQ(second.result_int(), 200u);
  EXPECT_EQ(nlohmann::json::parse(second.body())["target"], "/api/second");
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  connection.Send(
      "GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
      "GET /three HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(nlohmann::json::parse(connection.Read().body())["target"], "/one");
  auto two = nlohmann::json::parse(connection.Read().body());
  EXPECT_EQ(two["target"], "/two");
  EXPECT_EQ(two["body"], "abc");
  EXPECT_EQ(nlohmann::json::parse(connection.Read().body())["target"], "/three");
}

TEST(HttpServerTest, PostBodyAndContentTypeArePassedThrough) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  Response response =
      connection.Request("POST", "/api/grid/server/add?format=json",
                         "Content-Type: application/x-www-form-urlencoded\r\n", "name=a+b&x=%20");
  ASSERT_EQ(response.result_int(), 200u);
  auto json = nlohmann::json::parse(response.body());
  EXPECT_EQ(json["method"], "POST");
  EXPECT_EQ(json["target"], "/api/grid/server/add?format=json");
  EXPECT_EQ(json["content_type"], "application/x-www-form-urlencoded");
  EXPECT_EQ(json["body"], "name=a+b&x=%20");
}

TEST(HttpServerTest, ChunkedBodyIsAssembled) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  connection.Send(
      "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
  Response response = connection.Read();
  EXPECT_EQ(nlohmann::json::parse(response.body())["body"], "abcdefg");
}

TEST(HttpServerTest, ExpectContinueGetsInterimResponse) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  connection.Send(
      "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  std::string interim = connection.ReadHeaderBlock();
  EXPECT_EQ(interim.rfind("HTTP/1.1 100", 0), 0u) << interim;
  connection.Send("hello");
  EXPECT_EQ(nlohmann::json::parse(connection.Read().body())["body"], "hello");
}

TEST(HttpServerTest, ExtraHeadersAndStatusAreSent) {
  auto handler = [](const HttpRequest&) {
    return HttpResponse{404, "text/plain", "nope", {{"X-Request-Id", "42"}, {"X-Other", "a"}}};
  };
  HttpServer server(TestOptions(), handler, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  Response response = connection.Request("GET", "/");
  EXPECT_EQ(response.result_int(), 404u);
  EXPECT_EQ(response[http::field::content_type], "text/plain");
  EXPECT_EQ(response["X-Request-Id"], "42");
  EXPECT_EQ(response["X-Other"], "a");
  EXPECT_EQ(response.body(), "nope");
}

TEST(HttpServerTest, OversizedHeaderGets431AndClose) {
  HttpServerOptions options = TestOptions();
  options.max_header_bytes = 1024;
  HttpServer server(options, Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  Response response = connection.Request("GET", "/", "X-Big: " + std::string(4000, 'a') + "\r\n");
  EXPECT_EQ(response.result_int(), 431u);
  EXPECT_FALSE(response.keep_alive());
  auto json = nlohmann::json::parse(response.body());
  EXPECT_EQ(json["code"], 431);
  EXPECT_NE(json["message"].get<std::string>().find("header"), std::string::npos);
  EXPECT_TRUE(connection.ClosedByServer());
}

TEST(HttpServerTest, OversizedBodyGets413AndClose) {
  HttpServerOptions options = TestOptions();
  options.max_body_bytes = 64;
  HttpServer server(options, Echo, RenderProtocolError);
  server.Start();

  TestConnection connection(server.port());
  Response response = connection.Request("POST", "/", "", std::string(1000, 'b'));
  EXPECT_EQ(response.result_int(), 413u);
  EXPECT_EQ(nlohmann::json::parse(response.body())["code"], 413);
  EXPECT_TRUE(connection.ClosedByServer());

  // The same through chunked encoding, where the size is only known while reading.
  TestConnection chunked(server.port());
  chunked.Send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" +
               std::string(64, 'c') + "\r\n40\r\n" + std::string(64, 'c') + "\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.Read().result_int(), 413u);

  // At the limit is fine.
  TestConnection exact(server.port());
  EXPECT_EQ(exact.Request("POST", "/", "", std::string(64, 'd')).result_int(), 200u);
}

TEST(HttpServerTest, MalformedRequestGets400AndClose) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  connection.Send("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n");
  Response response = connection.Read();
  EXPECT_EQ(response.result_int(), 400u);
  EXPECT_EQ(nlohmann::json::parse(response.body())["code"], 400);
  EXPECT_TRUE(connection.ClosedByServer());
}

TEST(HttpServerTest, ThrowingHandlerGets500WithRenderedMessage) {
  auto handler = [](const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("database is on fire");
  };
  HttpServer server(TestOptions(), handler, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  Response response = connection.Request("GET", "/api/x");
  EXPECT_EQ(response.result_int(), 500u);
  auto json = nlohmann::json::parse(response.body());
  EXPECT_EQ(json["code"], 500);
  EXPECT_EQ(json["message"], "database is on fire");
  // The connection survives a handler failure.
  EXPECT_EQ(connection.Request("GET", "/api/y").result_int(), 500u);
}

TEST(HttpServerTest, ThrowingRendererFallsBackToPlainText) {
  auto handler = [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); };
  auto renderer = [](unsigned, const std::string&) -> HttpResponse {
    throw std::runtime_error("renderer broken");
  };
  HttpServer server(TestOptions(), handler, renderer);
  server.Start();
  TestConnection connection(server.port());
  Response response = connection.Request("GET", "/");
  EXPECT_EQ(response.result_int(), 500u);
  EXPECT_EQ(response.body(), "boom");
}

TEST(HttpServerTest, InvalidStatusFromHandlerBecomes500) {
  auto handler = [](const HttpRequest&) { return HttpResponse{1234, "text/plain", "x", {}}; };
  HttpServer server(TestOptions(), handler, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  EXPECT_EQ(connection.Request("GET", "/").result_int(), 500u);
}

TEST(HttpServerTest, Http10WithoutKeepAliveCloses) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  connection.Send("GET /old HTTP/1.0\r\n\r\n");
  Response response = connection.Read();
  EXPECT_EQ(response.result_int(), 200u);
  EXPECT_EQ(response.version(), 10u);
  EXPECT_TRUE(connection.ClosedByServer());

  TestConnection kept(server.port());
  kept.Send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_TRUE(kept.Read().keep_alive());
  kept.Send("GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(nlohmann::json::parse(kept.Read().body())["target"], "/again");
}

TEST(HttpServerTest, ConnectionCloseIsHonoured) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  Response response = connection.Request("GET", "/", "Connection: close\r\n");
  EXPECT_EQ(response.result_int(), 200u);
  EXPECT_FALSE(response.keep_alive());
  EXPECT_TRUE(connection.ClosedByServer());
}

TEST(HttpServerTest, IdleConnectionTimesOut) {
  HttpServerOptions options = TestOptions();
  options.idle_timeout = 1s;
  HttpServer server(options, Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  EXPECT_EQ(connection.Request("GET", "/").result_int(), 200u);
  EXPECT_TRUE(connection.ClosedByServer(3000ms));
}

TEST(HttpServerTest, StopLetsARunningRequestFinish) {
  std::promise<void> entered;
  auto handler = [&entered](const HttpRequest& request) {
    entered.set_value();
    std::this_thread::sleep_for(500ms);
    return HttpResponse{200, "text/plain", "done " + request.target, {}};
  };
  HttpServer server(TestOptions(), handler, RenderProtocolError);
  server.Start();
  uint16_t port = server.port();

  auto reply = std::async(std::launch::async, [port] {
    TestConnection connection(port);
    Response response = connection.Request("GET", "/slow");
    return std::make_tuple(response.result_int(), response.body(), response.keep_alive(),
                           connection.ClosedByServer());
  });
  ASSERT_EQ(entered.get_future().wait_for(5s), std::future_status::ready);
  server.Stop();

  auto [status, body, keep_alive, closed] = reply.get();
  EXPECT_EQ(status, 200u);
  EXPECT_EQ(body, "done /slow");
  EXPECT_FALSE(keep_alive);  // the server is going away, and says so
  EXPECT_TRUE(closed);
  EXPECT_THROW(TestConnection{port}, std::runtime_error);  // no longer listening
}

TEST(HttpServerTest, StopClosesIdleKeepAliveConnectionsPromptly) {
  HttpServerOptions options = TestOptions();
  options.idle_timeout = 60s;
  HttpServer server(options, Echo, RenderProtocolError);
  server.Start();
  std::vector<std::unique_ptr<TestConnection>> connections;
  for (int i = 0; i < 3; ++i) {
    connections.push_back(std::make_unique<TestConnection>(server.port()));
    EXPECT_EQ(connections.back()->Request("GET", "/").result_int(), 200u);
  }
  // One that never sent anything.
  connections.push_back(std::make_unique<TestConnection>(server.port()));
  std::this_thread::sleep_for(100ms);  // let the server accept it

  auto started = std::chrono::steady_clock::now();
  server.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  for (auto& connection : connections) EXPECT_TRUE(connection->ClosedByServer(1000ms));
}

TEST(HttpServerTest, StopIsIdempotentAndSafeConcurrently) {
  HttpServer never_started(TestOptions(), Echo, RenderProtocolError);
  never_started.Stop();
  never_started.Stop();

  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  std::thread other([&server] { server.Stop(); });
  server.Stop();
  other.join();
  server.Stop();
  EXPECT_THROW(server.Start(), std::logic_error);
}

TEST(HttpServerTest, DestructorStops) {
  uint16_t port;
  {
    HttpServer server(TestOptions(), Echo, RenderProtocolError);
    server.Start();
    port = server.port();
    TestConnection idle(port);
    EXPECT_EQ(idle.Request("GET", "/").result_int(), 200u);
  }
  EXPECT_THROW(TestConnection{port}, std::runtime_error);
}

TEST(HttpServerTest, BindFailureIsReported) {
  HttpServer first(TestOptions(), Echo, RenderProtocolError);
  first.Start();
  HttpServerOptions options = TestOptions();
  options.port = first.port();
  HttpServer second(options, Echo, RenderProtocolError);
  try {
    second.Start();
    FAIL() << "second bind succeeded";
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("cannot listen on 127.0.0.1:" + std::to_string(first.port()) + ": "),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("in use"), std::string::npos) << message;
  }
}

TEST(HttpServerTest, ServesIpv6) {
  HttpServerOptions options = TestOptions();
  options.host = "::1";
  HttpServer server(options, Echo, RenderProtocolError);
  try {
    server.Start();
  } catch (const std::runtime_error& e) {
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  TestConnection connection(server.port(), "::1");
  Response response = connection.Request("GET", "/v6");
  EXPECT_EQ(nlohmann::json::parse(response.body())["remote"], "::1");
}

TEST(HttpServerTest, AccessLogNamesTheRequestAndOmitsQueryString) {
  std::ostringstream log;
  auto logger = std::make_shared<spdlog::logger>(
      "access", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  logger->set_formatter(gridd::log::MakeFormatter(gridd::log::Format::kText));
  logger->set_level(spdlog::level::info);
  spdlog::drop("access");
  spdlog::register_logger(logger);

  HttpServerOptions options = TestOptions();
  options.access_log = true;
  auto handler = [](const HttpRequest&) {
    HttpResponse response{200, "text/plain", "ok", {}};
    response.operation = "/grid/server/list";
    response.api_key_id = "7";
    return response;
  };
  std::string request_id;
  {
    HttpServer server(options, handler, RenderProtocolError);
    server.Start();
    TestConnection connection(server.port());
    Response response = connection.Request("GET", "/api/grid/server/list?api_key=k&sig=secret");
    request_id = std::string(response["X-Request-Id"]);
    server.Stop();
  }
  spdlog::drop("access");

  std::string line = log.str();
  ASSERT_EQ(request_id.size(), 16u) << "a fresh request id is 16 hex digits";
  for (const std::string& field :
       std::vector<std::string>{"client=127.0.0.1", "api_key_id=7", "method=/grid/server/list",
                                "http_method=GET", "path=/api/grid/server/list", "status=200",
                                "bytes=2", "duration_ms=", "request_id=" + request_id}) {
    EXPECT_NE(line.find(" " + field), std::string::npos) << field << " missing in: " << line;
  }
  EXPECT_EQ(line.find("sig"), std::string::npos) << line;
}

TEST(HttpServerTest, KeepsAPlainClientRequestIdAndReplacesOthers) {
  HttpServer server(TestOptions(), Echo, RenderProtocolError);
  server.Start();
  TestConnection connection(server.port());
  Response kept = connection.Request("GET", "/a", "X-Request-Id: trace-42.a_b\r\n");
  EXPECT_EQ(kept["X-Request-Id"], "trace-42.a_b");
  Response replaced = connection.Request("GET", "/b", "X-Request-Id: bad id\"\r\n");
  EXPECT_EQ(replaced["X-Request-Id"].size(), 16u) << replaced["X-Request-Id"];
  Response fresh1 = connection.Request("GET", "/c");
  Response fresh2 = connection.Request("GET", "/c");
  EXPECT_NE(fresh1["X-Request-Id"], fresh2["X-Request-Id"]);
}

// The test client used by the integration tests, checked against the server it will talk to.
TEST(HttpServerTest, ApiClientSignsAndReconnects) {
  auto handler = [](const HttpRequest& request) {
    Params params = Params::FromRequest(request.target, request.content_type, request.body);
    nlohmann::json body = {{"path", std::string(PathOf(request.target))},
                           {"method", request.method}};
    for (const auto& [name, value] : params.pairs()) body["params"][name] = value;
    return HttpResponse{200, "application/json", body.dump(), {}};
  };
  HttpServerOptions options = TestOptions();
  options.idle_timeout = 1s;
  HttpServer server(options, handler, RenderProtocolError);
  server.Start();

  gridd::testing::ApiClient client("127.0.0.1", server.port());
  client.SetCredentials("key1", "secret1");
  auto before = std::time(nullptr);
  auto reply = client.Call("grid/server/list", {{"name", "a b&c"}, {"format", "xml"}});
  auto after = std::time(nullptr);
  ASSERT_EQ(reply.status, 200u);
  EXPECT_EQ(reply.content_type, "application/json");
  EXPECT_EQ(reply.Header("server"), "gridd");
  auto json = reply.json();
  EXPECT_EQ(json["path"], "/api/grid/server/list");
  EXPECT_EQ(json["params"]["name"], "a b&c");
  EXPECT_EQ(json["params"]["format"], "xml");
  EXPECT_EQ(json["params"]["v"], "1.8");
  EXPECT_EQ(json["params"]["api_key"], "key1");
  std::string sig = json["params"]["sig"];
  EXPECT_TRUE(sig == gridd::testing::Md5Hex("key1secret1" + std::to_string(before)) ||
              sig == gridd::testing::Md5Hex("key1secret1" + std::to_string(after)))
      << sig;
  EXPECT_EQ(gridd::testing::Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");

  auto unsigned_reply = client.Call("/api/common/lookup/list", {}, "POST", /*sign=*/false);
  EXPECT_EQ(unsigned_reply.json()["method"], "POST");
  EXPECT_FALSE(unsigned_reply.json()["params"].contains("sig"));
  EXPECT_FALSE(unsigned_reply.json()["params"].contains("api_key"));

  // The server drops the idle connection; the client notices and reconnects.
  std::this_thread::sleep_for(1500ms);
  auto raw = client.Raw("POST", "/raw?q=1", "x=2", "application/x-www-form-urlencoded");
  EXPECT_EQ(raw.json()["params"]["x"], "2");
  EXPECT_EQ(raw.json()["params"]["q"], "1");
}

}  // namespace
}  // namespace gridd::api
