#include "daemon/recovery_commands.h"

#include <filesystem>
#include <set>
#include <stdexcept>

#include "gridd/store/repositories.h"

namespace gridd::daemon {

std::optional<nlohmann::json> RunRecoveryCommand(RecoveryContext& context,
                                                 const std::string& command,
                                                 const nlohmann::json& args) {
  using Json = nlohmann::ordered_json;
  if (command == "domain.list") {
    Json out = Json::array();
    for (const auto& host : context.hosts.UpHosts()) {
      const auto domains = host.hypervisor->ListGriddDomains();
      // The rows of the domains listed only: the cost follows the hosts, not the database.
      const auto with_row = context.db.Read([&](store::Connection& c) {
        std::set<int64_t> ids;
        for (const auto& domain : domains) {
          if (store::servers::GetAny(c, domain.server_id)) ids.insert(domain.server_id);
        }
        return ids;
      });
      for (const auto& domain : domains) {
        out.push_back(Json{{"name", domain.name},
                           {"server_id", domain.server_id},
                           {"account_id", domain.account_id},
                           {"state", virt::PowerStateName(domain.state)},
                           {"server_row", with_row.count(domain.server_id) != 0},
                           {"host", host.host.name}});
      }
    }
    return out;
  }
  // The operator asks after fixing a cause: repairs that failed before are tried again.
  if (command == "reconcile") return context.reconciler.RunOnce(true).ToJson();
  if (command == "backup") {
    auto it = args.find("file");
    if (it == args.end() || !it->is_string() || it->get<std::string>().empty()) {
      throw std::invalid_argument("missing argument: file");
    }
    const std::filesystem::path file = it->get<std::string>();
    if (!file.is_absolute()) throw std::invalid_argument("backup file must be an absolute path");
    if (std::filesystem::exists(file)) {
      throw std::invalid_argument("backup file " + file.string() + " already exists");
    }
    context.db.BackupTo(file);
    return Json{{"file", file.string()}, {"bytes", std::filesystem::file_size(file)}};
  }
  return std::nullopt;
}

}  // namespace gridd::daemon
