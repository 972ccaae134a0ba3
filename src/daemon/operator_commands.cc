#include "daemon/operator_commands.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "daemon/admin_args.h"
#include "gridd/common/error.h"
#include "gridd/domain/lookups.h"
#include "gridd/store/repositories.h"

namespace gridd::daemon {
namespace {

using Json = nlohmann::ordered_json;
using domain::OptionById;

// A positive integer id given as text; the error names the argument.
int64_t RequiredId(const nlohmann::json& args, const char* key) {
  auto text = OptionalString(args, key);
  if (!text || text->empty()) throw std::invalid_argument(std::string("missing argument: ") + key);
  std::size_t used = 0;
  int64_t id = 0;
  try {
    id = std::stoll(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text->size() || id <= 0) {
    ThrowIllegalArgument(std::string(key) + " must be a positive integer id, not '" + *text + "'");
  }
  return id;
}

std::string OptionName(const char* lookup, int64_t id) {
  return OptionById(*domain::FixedLookup(lookup), id).name;
}

// Resolves an optional filter given by name or id ("Failed", "4"); the error names the option.
std::optional<int64_t> OptionFilter(const nlohmann::json& args, const char* key,
                                    const char* lookup) {
  auto text = OptionalString(args, key);
  if (!text) return std::nullopt;
  return domain::ResolveOption(*domain::FixedLookup(lookup), key, *text).id;
}

// Accounts by id, and the one a filter names (by id or name).
struct Accounts {
  std::map<int64_t, std::string> names;

  explicit Accounts(store::Connection& c) {
    for (const auto& account : store::accounts::List(c)) names[account.id] = account.name;
  }
  std::string Name(int64_t id) const {
    auto it = names.find(id);
    return it != names.end() ? it->second : std::to_string(id);
  }
  std::optional<int64_t> Filter(const nlohmann::json& args) const {
    auto text = OptionalString(args, "account");
    if (!text) return std::nullopt;
    for (const auto& [id, name] : names) {
      if (std::to_string(id) == *text || name == *text) return id;
    }
    ThrowIllegalArgument("no account '" + *text + "'");
  }
};

Json JobJson(const domain::Job& job, const Accounts& accounts, bool with_history) {
  Json out{{"id", job.id},
           {"account", accounts.Name(job.account_id)},
           {"command", OptionName("job.command", job.command)},
           {"object", OptionName("job.objecttype", job.object_type)},
           {"object_id", job.object_id},
           {"object_name", job.object_name},
           {"state", OptionName("job.state", job.state)},
           {"attempts", job.attempts},
           {"created_ms", job.created_ms},
           {"updated_ms", job.updated_ms},
           {"error", job.error ? Json(*job.error) : Json(nullptr)}};
  if (with_history) {
    Json history = Json::array();
    for (const auto& entry : job.history) {
      history.push_back(Json{{"state", OptionName("job.state", entry.state)},
                             {"note", entry.note ? Json(*entry.note) : Json(nullptr)},
                             {"at_ms", entry.at_ms}});
    }
    out["history"] = std::move(history);
  }
  return out;
}

Json ImageJson(const domain::Image& image) {
  return Json{{"id", image.id},
              {"name", image.name},
              {"state", OptionName("image.state", image.state)},
              {"public", image.is_public},
              {"owner", image.owner_name}};
}

Json ListServers(store::Connection& c, const nlohmann::json& args) {
  const Accounts accounts(c);
  const auto account = accounts.Filter(args);
  const auto state = OptionFilter(args, "state", "server.state");
  const auto datacenter = OptionalString(args, "datacenter");
  std::map<int64_t, std::string> datacenters;
  for (const auto& dc : store::datacenters::List(c)) datacenters[dc.id] = dc.name;
  if (datacenter) {
    bool known = false;
    for (const auto& [id, name] : datacenters)
      known |= name == *datacenter || std::to_string(id) == *datacenter;
    if (!known) ThrowIllegalArgument("no datacenter '" + *datacenter + "'");
  }
  std::map<int64_t, std::string> hosts;
  for (const auto& host : store::hosts::List(c)) hosts[host.id] = host.name;
  Json out = Json::array();
  for (const auto& server : store::servers::ListAll(c)) {
    if (account && server.account_id != *account) continue;
    if (state && server.state != *state) continue;
    auto ip = store::ips::Get(c, server.account_id, server.ip_id);
    const int64_t dc_id = ip ? ip->datacenter_id : 0;
    const std::string dc_name = datacenters.count(dc_id) ? datacenters[dc_id] : "-";
    if (datacenter && dc_name != *datacenter && std::to_string(dc_id) != *datacenter) continue;
    auto image = store::images::GetAny(c, server.image_id);
    out.push_back(
        Json{{"id", server.id},
             {"name", server.name},
             {"account", accounts.Name(server.account_id)},
             {"state", OptionName("server.state", server.state)},
             {"ip", ip ? Json(ip->address) : Json(nullptr)},
             {"datacenter", dc_name},
             {"image", image ? Json(image->name) : Json(nullptr)},
             {"ram", OptionName("server.ram", server.ram)},
             {"host", server.host_id && hosts.count(*server.host_id) ? Json(hosts[*server.host_id])
                                                                     : Json(nullptr)}});
  }
  return out;
}

Json ListJobs(store::Connection& c, const nlohmann::json& args) {
  const Accounts accounts(c);
  const auto account = accounts.Filter(args);
  const auto state = OptionFilter(args, "state", "job.state");
  const auto command = OptionFilter(args, "command", "job.command");
  std::vector<domain::Job> jobs;
  for (const auto& [id, name] : accounts.names) {
    if (account && id != *account) continue;
    for (auto& job : store::jobs::List(c, id)) jobs.push_back(std::move(job));
  }
  std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
  Json out = Json::array();
  for (const auto& job : jobs) {
    if (state && job.state != *state) continue;
    if (command && job.command != *command) continue;
    out.push_back(JobJson(job, accounts, false));
  }
  return out;
}

}  // namespace

std::optional<nlohmann::json> RunOperatorCommand(OperatorContext& context,
                                                 const std::string& command,
                                                 const nlohmann::json& args) {
  if (command == "datacenter.list") {
    return context.db.Read([](store::Connection& c) {
      Json out = Json::array();
      for (const auto& dc : store::datacenters::List(c)) {
        out.push_back(Json{{"id", dc.id}, {"name", dc.name}, {"description", dc.description}});
      }
      return out;
    });
  }
  if (command == "server.list") {
    return context.db.Read([&](store::Connection& c) { return ListServers(c, args); });
  }
  if (command == "job.list") {
    return context.db.Read([&](store::Connection& c) { return ListJobs(c, args); });
  }
  if (command == "job.show") {
    const int64_t id = RequiredId(args, "id");
    return context.db.Read([&](store::Connection& c) {
      auto job = store::jobs::GetAny(c, id);
      if (!job) ThrowIllegalArgument("no job " + std::to_string(id));
      return JobJson(*job, Accounts(c), true);
    });
  }
  if (command == "job.retry") {
    const int64_t id = RequiredId(args, "id");
    Json result = context.db.Write([&](store::Connection& c) {
      auto job = store::jobs::GetAny(c, id);
      if (!job) ThrowIllegalArgument("no job " + std::to_string(id));
      if (job->state != domain::job_state::kFailed) {
        ThrowIllegalArgument("job " + std::to_string(id) + " is " +
                             OptionName("job.state", job->state) +
                             "; only a Failed job is retried");
      }
      store::jobs::RequeueFailed(c, id, "retried by the operator", context.clock.NowMs());
      return JobJson(*store::jobs::GetAny(c, id), Accounts(c), true);
    });
    context.wake_jobs();
    return result;
  }
  if (command == "image.public" || command == "image.private") {
    const int64_t id = RequiredId(args, "id");
    const bool make_public = command == "image.public";
    return context.db.Write([&](store::Connection& c) {
      auto image = store::images::GetAny(c, id);
      if (!image) ThrowIllegalArgument("no image " + std::to_string(id));
      if (make_public && image->state != domain::image_state::kAvailable) {
        ThrowIllegalArgument("image " + image->name + " is " +
                             OptionName("image.state", image->state) +
                             "; only an Available image is made public");
      }
      if (!make_public && !image->owner_account_id) {
        // Nobody could see it any more: the operator's images have no owning account.
        ThrowIllegalArgument("image " + image->name +
                             " belongs to no account; only an account's image is made private");
      }
      image->is_public = make_public;
      image->updated_ms = context.clock.NowMs();
      store::images::Update(c, *image);
      return ImageJson(*image);
    });
  }
  if (command == "image.delete") {
    const int64_t id = RequiredId(args, "id");
    return context.db.Write([&](store::Connection& c) {
      auto image = store::images::GetAny(c, id);
      if (!image) ThrowIllegalArgument("no image " + std::to_string(id));
      if (image->state == domain::image_state::kSaving) {
        ThrowIllegalArgument("image " + image->name + " is still being saved");
      }
      if (image->state == domain::image_state::kTrash) {
        ThrowIllegalArgument("image " + image->name + " is already in the Trash");
      }
      // As grid.image.delete does: the volume stays, for the servers built from it and for
      // restore.
      image->state = domain::image_state::kTrash;
      image->is_active = false;
      image->updated_ms = context.clock.NowMs();
      store::images::Update(c, *image);
      return ImageJson(*image);
    });
  }
  return std::nullopt;
}

}  // namespace gridd::daemon
