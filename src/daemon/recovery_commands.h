// Admin commands for recovery: what gridd sees on its hosts (`gridctl domain list`), a
// reconciliation pass on demand (`gridctl reconcile`) and online backups (`gridctl backup`).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "gridd/jobs/hosts.h"
#include "gridd/jobs/reconciler.h"
#include "gridd/store/database.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::daemon {

struct RecoveryContext {
  store::Database& db;
  jobs::HostRegistry& hosts;
  jobs::Reconciler& reconciler;
};

// Runs `command` when it is one of the recovery commands; nothing otherwise.
std::optional<nlohmann::json> RunRecoveryCommand(RecoveryContext& context,
                                                 const std::string& command,
                                                 const nlohmann::json& args);

}  // namespace gridd::daemon
