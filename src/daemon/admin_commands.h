// The commands gridctl sends over the admin socket, carried out by the daemon's services.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "gridd/domain/account_service.h"

namespace gridd::daemon {

nlohmann::json RunAdminCommand(domain::AccountService& accounts, const std::string& command,
                               const nlohmann::json& args);

}  // namespace gridd::daemon
