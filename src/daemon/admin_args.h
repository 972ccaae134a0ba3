// Reading the arguments of an admin-socket command (a JSON object sent by gridctl). Every
// problem is a std::invalid_argument naming the argument; gridctl prints it as its one line.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace gridd::daemon {

// A string argument that must be present and non-empty.
inline std::string RequiredString(const nlohmann::json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end() || !it->is_string() || it->get<std::string>().empty()) {
    throw std::invalid_argument(std::string("missing argument: ") + key);
  }
  return it->get<std::string>();
}

// A string argument that may be absent or null.
inline std::optional<std::string> OptionalString(const nlohmann::json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    throw std::invalid_argument(std::string("argument must be a string: ") + key);
  }
  return it->get<std::string>();
}

}  // namespace gridd::daemon
