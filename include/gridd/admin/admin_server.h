// The operator's channel into a running daemon: a Unix socket in the data dir (mode 0600) that
// gridctl talks to, so the daemon stays the only writer of its database.
//
// Protocol: one JSON object per line each way. Request {"command": "...", "args": {...}};
// reply {"ok": true, "result": ...} or {"ok": false, "error": "message"}.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace gridd::admin {

// Runs a command. Throws std::exception (its what() becomes the error reply) on failure.
using CommandHandler = std::function<nlohmann::json(const std::string& command,
                                                    const nlohmann::json& args)>;

class AdminServer {
 public:
  AdminServer(std::filesystem::path socket_path, CommandHandler handler);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Removes a stale socket file, binds, chmods 0600 and starts serving on its own thread.
  void Start();
  // Stops accepting, finishes the command in progress, removes the socket file. Idempotent.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gridd::admin
