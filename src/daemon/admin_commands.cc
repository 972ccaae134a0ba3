#include "daemon/admin_commands.h"

#include <stdexcept>

#include "gridd/domain/lookups.h"

namespace gridd::daemon {
namespace {

using Json = nlohmann::ordered_json;

std::string RequiredString(const nlohmann::json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end() || !it->is_string() || it->get<std::string>().empty()) {
    throw std::invalid_argument(std::string("missing argument: ") + key);
  }
  return it->get<std::string>();
}

std::optional<std::string> OptionalString(const nlohmann::json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw std::invalid_argument(std::string("argument must be a string: ") + key);
  return it->get<std::string>();
}

}  // namespace

nlohmann::json RunAdminCommand(domain::AccountService& accounts, const std::string& command,
                               const nlohmann::json& args) {
  if (command == "account.create") {
    auto account = accounts.CreateAccount(RequiredString(args, "name"));
    return Json{{"id", account.id}, {"name", account.name}};
  }
  if (command == "account.list") {
    auto keys = accounts.ListApiKeys(std::nullopt);
    Json out = Json::array();
    for (const auto& account : accounts.ListAccounts()) {
      int64_t key_count = 0;
      for (const auto& key : keys) key_count += key.account_id == account.id && !key.revoked;
      out.push_back(Json{{"id", account.id}, {"name", account.name},
                         {"created_ms", account.created_ms}, {"api_keys", key_count}});
    }
    return out;
  }
  if (command == "apikey.create") {
    auto key = accounts.CreateApiKey(RequiredString(args, "account"), RequiredString(args, "role"));
    return Json{{"api_key", key.api_key},
                {"shared_secret", key.shared_secret},
                {"account", key.account},
                {"role", domain::RoleName(key.role)}};
  }
  if (command == "apikey.list") {
    Json out = Json::array();
    for (const auto& key : accounts.ListApiKeys(OptionalString(args, "account"))) {
      out.push_back(Json{{"api_key", key.key},
                         {"account", key.account_name},
                         {"role", domain::RoleName(key.role)},
                         {"revoked", key.revoked},
                         {"created_ms", key.created_ms}});
    }
    return out;
  }
  if (command == "apikey.revoke") {
    const std::string key = RequiredString(args, "api_key");
    accounts.RevokeApiKey(key);
    return Json{{"api_key", key}, {"revoked", true}};
  }
  if (command == "apikey.role") {
    auto key = accounts.SetApiKeyRole(RequiredString(args, "api_key"), RequiredString(args, "role"));
    return Json{{"api_key", key.key}, {"account", key.account_name}, {"role", domain::RoleName(key.role)}};
  }
  auto pool_json = [](const domain::IpPoolInfo& info) {
    Json out{{"id", info.pool.id},
             {"datacenter", info.datacenter},
             {"type", info.pool.is_public ? "public" : "private"},
             {"cidr", info.pool.cidr},
             {"network", info.pool.network},
             {"account", info.account ? Json(*info.account) : Json(nullptr)},
             {"total", info.total},
             {"assigned", info.assigned}};
    return out;
  };
  if (command == "ippool.add") {
    domain::IpPoolRequest request;
    request.datacenter = RequiredString(args, "datacenter");
    request.type = RequiredString(args, "type");
    request.cidr = RequiredString(args, "cidr");
    request.account = OptionalString(args, "account");
    request.network = OptionalString(args, "network");
    return pool_json(accounts.AddIpPool(request));
  }
  if (command == "ippool.list") {
    Json out = Json::array();
    for (const auto& info : accounts.ListIpPools()) out.push_back(pool_json(info));
    return out;
  }
  if (command == "ippool.remove") {
    return pool_json(accounts.RemoveIpPool(RequiredString(args, "pool")));
  }
  if (command == "image.list") {
    Json out = Json::array();
    for (const auto& image : accounts.ListImages()) {
      out.push_back(Json{
          {"id", image.id},
          {"name", image.name},
          {"friendly_name", image.friendly_name},
          {"state", domain::OptionById(*domain::FixedLookup("image.state"), image.state).name},
          {"public", image.is_public},
          {"owner", image.owner_name},
          {"volume", image.storage_pool + "/" + image.volume}});
    }
    return out;
  }
  throw std::invalid_argument("unknown command '" + command + "'");
}

}  // namespace gridd::daemon
