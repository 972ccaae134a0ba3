// Admin commands over the whole grid, across accounts: datacenters, servers, jobs (list, show,
// retry) and image visibility (`gridctl datacenter|server|job|image ...`).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "gridd/common/clock.h"
#include "gridd/store/database.h"

namespace gridd::daemon {

struct OperatorContext {
  store::Database& db;
  const Clock& clock;
  std::function<void()> wake_jobs;  // a retried job runs at once
};

// Runs `command` when it is one of these commands; nothing otherwise.
std::optional<nlohmann::json> RunOperatorCommand(OperatorContext& context,
                                                 const std::string& command,
                                                 const nlohmann::json& args);

}  // namespace gridd::daemon
