#include "daemon/admin_commands.h"

#include <cctype>
#include <ctime>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "daemon/admin_args.h"
#include "gridd/domain/lookups.h"
#include "gridd/jobs/server_jobs.h"
#include "gridd/store/repositories.h"

namespace gridd::daemon {
namespace {

using Json = nlohmann::ordered_json;

// Image names become volume file names: letters, digits, '.', '_' and '-', not leading '.'.
void CheckImageName(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 100 && name.front() != '.' &&
                  name.find_first_not_of(
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") == std::string::npos;
  if (!ok) {
    throw std::invalid_argument(
        "name: image names are 1-100 letters, digits, '.', '_' or '-' "
        "and do not start with '.'");
  }
}

// A grace period: whole seconds, or a number with s, m, h or d ("90s", "15m", "24h", "7d").
int64_t ParseGrace(const std::string& text) {
  constexpr int64_t kMaxSeconds = int64_t{30} * 86400;
  const char* usage = "grace: expected a duration like 0, 90s, 15m, 24h or 7d (at most 30d)";
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 9 || text.size() - digits > 1) throw std::invalid_argument(usage);
  int64_t seconds = std::stoll(text.substr(0, digits));
  const char unit = digits < text.size() ? text[digits] : 's';
  switch (unit) {
    case 's':
      break;
    case 'm':
      seconds *= 60;
      break;
    case 'h':
      seconds *= 3600;
      break;
    case 'd':
      seconds *= 86400;
      break;
    default:
      throw std::invalid_argument(usage);
  }
  if (seconds > kMaxSeconds) throw std::invalid_argument(usage);
  return seconds;
}

// "2026-12-07T18:30:00Z"; how gridctl shows a moment to an operator.
std::string UtcTime(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

GuestTools& RequireGuests(GuestTools* guests, const std::string& command) {
  if (guests == nullptr) throw std::invalid_argument(command + " is not available");
  return *guests;
}

}  // namespace

domain::Server FindServer(store::Database& db, const std::string& id_or_name) {
  return db.Read([&](store::Connection& c) {
    const bool numeric = !id_or_name.empty() &&
                         id_or_name.find_first_not_of("0123456789") == std::string::npos &&
                         id_or_name.size() < 19;
    if (numeric) {
      if (auto server = store::servers::GetAny(c, std::stoll(id_or_name))) return *server;
    }
    std::vector<domain::Server> named;
    for (auto& server : store::servers::ListAll(c)) {
      if (server.name == id_or_name) named.push_back(std::move(server));
    }
    if (named.size() == 1) return named.front();
    if (named.empty()) throw std::invalid_argument("server: no server '" + id_or_name + "'");
    throw std::invalid_argument("server: " + std::to_string(named.size()) + " servers are named '" +
                                id_or_name + "'; give the id");
  });
}

nlohmann::json RunAdminCommand(domain::AccountService& accounts, const std::string& command,
                               const nlohmann::json& args, GuestTools* guests) {
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
      out.push_back(Json{{"id", account.id},
                         {"name", account.name},
                         {"created_ms", account.created_ms},
                         {"api_keys", key_count}});
    }
    return out;
  }
  if (command == "apikey.create") {
    const auto signing = OptionalString(args, "signing");
    // Checked before the key exists, so a bad policy creates nothing.
    if (signing && !domain::ParseSigningPolicy(*signing)) {
      throw std::invalid_argument("signing: use md5+hmac or hmac-only");
    }
    auto key = accounts.CreateApiKey(RequiredString(args, "account"), RequiredString(args, "role"));
    auto policy = domain::SigningPolicy::kAny;
    if (signing) policy = accounts.SetApiKeySigning(key.api_key, *signing).signing;
    return Json{{"api_key", key.api_key},
                {"shared_secret", key.shared_secret},
                {"account", key.account},
                {"role", domain::RoleName(key.role)},
                {"signing", domain::SigningPolicyName(policy)}};
  }
  if (command == "apikey.list") {
    Json out = Json::array();
    for (const auto& key : accounts.ListApiKeys(OptionalString(args, "account"))) {
      out.push_back(Json{{"api_key", key.key},
                         {"account", key.account_name},
                         {"role", domain::RoleName(key.role)},
                         {"signing", domain::SigningPolicyName(key.signing)},
                         {"old_secret_until", key.previous_secret.empty()
                                                  ? Json(nullptr)
                                                  : Json(UtcTime(key.previous_secret_until_ms))},
                         {"revoked", key.revoked},
                         {"created_ms", key.created_ms}});
    }
    return out;
  }
  if (command == "apikey.signing") {
    auto key =
        accounts.SetApiKeySigning(RequiredString(args, "api_key"), RequiredString(args, "policy"));
    return Json{{"api_key", key.key},
                {"account", key.account_name},
                {"signing", domain::SigningPolicyName(key.signing)}};
  }
  if (command == "apikey.rotate") {
    const int64_t grace = ParseGrace(OptionalString(args, "grace").value_or("24h"));
    auto rotated = accounts.RotateApiKey(RequiredString(args, "api_key"), grace);
    return Json{{"api_key", rotated.key.api_key},
                {"shared_secret", rotated.key.shared_secret},
                {"account", rotated.key.account},
                {"role", domain::RoleName(rotated.key.role)},
                {"old_secret_until",
                 grace > 0 ? Json(UtcTime(rotated.previous_secret_until_ms)) : Json(nullptr)}};
  }
  if (command == "apikey.revoke") {
    const std::string key = RequiredString(args, "api_key");
    accounts.RevokeApiKey(key);
    return Json{{"api_key", key}, {"revoked", true}};
  }
  if (command == "apikey.role") {
    auto key =
        accounts.SetApiKeyRole(RequiredString(args, "api_key"), RequiredString(args, "role"));
    return Json{
        {"api_key", key.key}, {"account", key.account_name}, {"role", domain::RoleName(key.role)}};
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
      out.push_back(
          Json{{"id", image.id},
               {"name", image.name},
               {"friendly_name", image.friendly_name},
               {"state", domain::OptionById(*domain::FixedLookup("image.state"), image.state).name},
               {"public", image.is_public},
               {"owner", image.owner_name},
               {"volume", image.storage_pool + "/" + image.volume}});
    }
    return out;
  }
  if (command == "image.import") {
    GuestTools& tools = RequireGuests(guests, command);
    const std::string name = RequiredString(args, "name");
    CheckImageName(name);
    const std::string file = RequiredString(args, "file");
    ImageSeed seed;
    seed.name = name;
    seed.friendly_name = OptionalString(args, "friendly_name").value_or(name);
    seed.description = OptionalString(args, "description").value_or("");
    seed.os = OptionalString(args, "os").value_or(name);
    seed.architecture = OptionalString(args, "architecture").value_or("64-bit");
    seed.volume = name + ".qcow2";
    // Every Up host gets its copy (hosts sharing storage see the first one).
    const auto hosts = tools.hosts.UpHosts();
    if (hosts.empty()) throw std::invalid_argument("no host is Up to take the image");
    for (const auto& host : hosts) {
      try {
        if (host.hypervisor->VolumeExists(tools.storage_pool, seed.volume) &&
            &host != &hosts.front()) {
          continue;
        }
        host.hypervisor->ImportQcow2(tools.storage_pool, seed.volume, file);
      } catch (const virt::HypervisorError& error) {
        throw std::invalid_argument("file: host " + host.host.name + ": " + error.what());
      }
    }
    accounts.AddImage(seed, tools.storage_pool);
    for (const auto& image : accounts.ListImages()) {
      if (image.name != name) continue;
      return Json{{"id", image.id},
                  {"name", image.name},
                  {"friendly_name", image.friendly_name},
                  {"volume", image.storage_pool + "/" + image.volume}};
    }
    throw std::runtime_error("image '" + name + "' vanished after import");
  }
  if (command == "server.console-log") {
    GuestTools& tools = RequireGuests(guests, command);
    const domain::Server server = FindServer(tools.db, RequiredString(args, "server"));
    if (tools.console_dir.empty()) {
      throw std::invalid_argument("server: this hypervisor keeps no console logs");
    }
    std::ifstream in(jobs::ConsoleLogPath(tools.console_dir, server.id), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return Json{{"server", server.id}, {"name", server.name}, {"console", text}};
  }
  throw std::invalid_argument("unknown command '" + command + "'");
}

}  // namespace gridd::daemon
