// The admin socket's wire format, kept apart from the socket handling so it reads (and tests)
// on its own. One JSON object per line each way; see include/gridd/admin/admin_server.h.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace gridd::admin::protocol {

// Longest request line accepted, newline excluded. Requests are small; the limit only stops a
// confused peer from making the daemon buffer without bound.
inline constexpr std::size_t kMaxLineBytes = std::size_t{1024} * 1024;

struct Request {
  std::string command;
  nlohmann::json args;  // always an object
};

// A request the server cannot act on; what() is sent back as the error.
class BadRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline Request ParseRequest(std::string_view line) {
  nlohmann::json request;
  try {
    request = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error&) {
    throw BadRequest("malformed JSON request");
  }
  if (!request.is_object()) throw BadRequest("request must be a JSON object");
  auto command = request.find("command");
  if (command == request.end() || !command->is_string() ||
      command->get_ref<const std::string&>().empty()) {
    throw BadRequest("request has no \"command\"");
  }
  Request parsed{command->get<std::string>(), nlohmann::json::object()};
  if (auto args = request.find("args"); args != request.end() && !args->is_null()) {
    if (!args->is_object()) throw BadRequest("\"args\" must be a JSON object");
    parsed.args = std::move(*args);
  }
  return parsed;
}

// Replies end with the newline that frames them. Invalid UTF-8 from a handler is replaced
// rather than turning a finished command into a serialization failure.
inline std::string OkReply(const nlohmann::json& result) {
  nlohmann::json reply = {{"ok", true}, {"result", result}};
  return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
}

inline std::string ErrorReply(std::string_view message) {
  nlohmann::json reply = {{"ok", false}, {"error", message}};
  return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
}

}  // namespace gridd::admin::protocol
