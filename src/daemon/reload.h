// Configuration reload (SIGHUP, systemctl reload gridd): the keys that can change while gridd
// runs are applied at once; every other changed key is named in the log as needing a restart.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gridd/common/config.h"

namespace gridd::daemon {

// Every key of the configuration with its value as text, in file order; seed tables
// ([[datacenter]], [[ippool]], [[image]]) count as one key each.
std::vector<std::pair<std::string, std::string>> ConfigValues(const Config& config);

// A key that a reload applies without a restart. To make another key live (rate limits), add
// a LiveSetting for it where the daemon builds its list.
struct LiveSetting {
  std::string key;  // as in ConfigValues, e.g. "jobs.workers"
  // Puts the new configuration's value into effect and into `running`.
  std::function<void(const Config& fresh, Config& running)> apply;
};

struct ReloadReport {
  std::vector<std::string> applied;         // "jobs.workers: 4 -> 8"
  std::vector<std::string> restart_needed;  // "server.listen: 127.0.0.1:8080 -> …"
};

// Compares `running` with `fresh`, applies the live keys that changed (in `live` order) and
// lists the others, which keep their running values (so the next reload names them again).
// Throws what an apply function throws; keys applied before stay applied.
ReloadReport ApplyReload(Config& running, const Config& fresh,
                         const std::vector<LiveSetting>& live);

}  // namespace gridd::daemon
