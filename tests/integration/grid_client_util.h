// Small helpers the integration tests share: calling methods and waiting (bounded) for the
// asynchronous results of jobs.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/api_client.h"
#include "support/test_paths.h"

namespace gridd::testing {

using Params = std::vector<std::pair<std::string, std::string>>;

// The shipped configuration, made standalone (its node file named absolutely) with
// `replacements` (first occurrence of each) applied, written to a scratch directory.
inline std::filesystem::path WriteConfig(
    const std::vector<std::pair<std::string, std::string>>& replacements) {
  std::ifstream in(SourceDir() / "config" / "gridd.toml");
  std::ostringstream read;
  read << in.rdbuf();
  std::string text = read.str();
  std::vector<std::pair<std::string, std::string>> all = {
      {"\"test://./test-node.xml\"",
       "\"test://" + (SourceDir() / "config" / "test-node.xml").string() + "\""}};
  all.insert(all.end(), replacements.begin(), replacements.end());
  for (const auto& [from, to] : all) {
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "config/gridd.toml has no '" << from << "'";
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  const std::filesystem::path path = ScratchDir("gridd-config") / "gridd.toml";
  std::ofstream(path) << text;
  return path;
}

// Calls a method and expects success; returns the parsed body.
inline nlohmann::json CallOk(ApiClient& client, const std::string& method, Params params = {},
                             const std::string& http_method = "GET") {
  auto reply = client.Call(method, std::move(params), http_method);
  EXPECT_EQ(reply.status, 200u) << method << ": " << reply.body;
  auto body = reply.json();
  EXPECT_EQ(body["status"], "success") << method << ": " << reply.body;
  return body;
}

// Polls `probe` every 50 ms for up to `limit`; true once it returns true.
inline bool WaitFor(const std::function<bool()>& probe,
                    std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (probe()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return probe();
}

inline std::optional<nlohmann::json> FindServerByIp(ApiClient& client, const std::string& ip) {
  auto body = CallOk(client, "grid/server/list");
  for (const auto& server : body["list"]) {
    if (server["ip"]["ip"] == ip) return server;
  }
  return std::nullopt;
}

// Waits (up to `limit`) until the server on `ip` has state `state`; returns it.
inline nlohmann::json WaitForServerState(ApiClient& client, const std::string& ip,
                                         const std::string& state,
                                         std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  std::optional<nlohmann::json> last;
  bool reached = WaitFor(
      [&] {
        last = FindServerByIp(client, ip);
        return last && (*last)["state"]["name"] == state;
      },
      limit);
  EXPECT_TRUE(reached) << "server on " << ip << " never reached " << state << "; last seen: "
                       << (last ? last->dump() : "absent");
  return last.value_or(nlohmann::json());
}

inline std::vector<std::string> FreePublicIps(ApiClient& client) {
  auto body = CallOk(client, "grid/ip/list", {{"ip.type", "Public"}, {"ip.state", "Unassigned"}});
  std::vector<std::string> out;
  for (const auto& ip : body["list"]) out.push_back(ip["ip"]);
  return out;
}

}  // namespace gridd::testing
