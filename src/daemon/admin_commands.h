// The commands gridctl sends over the admin socket, carried out by the daemon's services.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "gridd/domain/account_service.h"
#include "gridd/jobs/hosts.h"
#include "gridd/store/database.h"

namespace gridd::daemon {

// What the image and console commands reach besides the account service.
struct GuestTools {
  store::Database& db;
  jobs::HostRegistry& hosts;
  std::string storage_pool;
  std::filesystem::path console_dir;  // empty: consoles are not logged (test driver)
};

// A server by id, or by name when exactly one server (of any account) has it; a 400 otherwise.
domain::Server FindServer(store::Database& db, const std::string& id_or_name);

nlohmann::json RunAdminCommand(domain::AccountService& accounts, const std::string& command,
                               const nlohmann::json& args, GuestTools* guests = nullptr);

}  // namespace gridd::daemon
