// The router and everything behind it (ApiService::Handle over an in-memory database seeded
// from config/gridd.toml) fed hostile HTTP methods, targets, content types and bodies. Half
// the inputs are signed with a Super User key first, so the fuzzer reaches the method
// handlers and not only the signature check. Every answer is a GoGrid envelope whose status
// agrees with the HTTP status, and hostile input never causes a 500.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string>

#include "fuzz_input.h"
#include "gridd/api/api_service.h"
#include "gridd/common/config.h"
#include "gridd/common/crypto.h"

namespace {

constexpr int64_t kStartMs = 1'700'000'000'000;

std::array<uint8_t, gridd::SecretBox::kKeySize> FixedKey() {
  std::array<uint8_t, gridd::SecretBox::kKeySize> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  return key;
}

struct World {
  gridd::Config config = gridd::LoadConfig(GRIDD_SOURCE_DIR "/config/gridd.toml");
  gridd::ManualClock clock{kStartMs};
  gridd::SecretBox box{FixedKey()};
  gridd::store::Database db{":memory:"};
  gridd::domain::Catalog catalog{db};
  gridd::domain::AccountService accounts{db, catalog, clock, box, config.ip_block_size};
  gridd::domain::GridService grid{db, catalog, clock, box, [] {}};
  gridd::api::ApiService api{grid, accounts, nullptr, clock, gridd::api::ApiServiceOptions{600, 300}};
  gridd::domain::NewApiKey super;

  World() {
    spdlog::set_level(spdlog::level::off);  // a log line per refused request would be most of the time
    accounts.ApplySeeds(config);
    super = accounts.EnsureInitialAccount(config.initial_account).value();
  }
};

World& TheWorld() {
  static auto* world = new World();  // lives for the whole run, like the daemon's services
  return *world;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  World& world = TheWorld();
  const uint8_t flags = data[0];
  const auto f = gridd::fuzz::SplitFields(data + 1, size - 1, 4);
  gridd::api::HttpRequest request;
  request.method = f[0];
  request.target = f[1];
  request.content_type = f[2];
  request.body = f[3];
  request.remote_address = "127.0.0.1";
  if (flags & 1) {
    const std::string sig = gridd::Md5Hex(world.super.api_key + world.super.shared_secret +
                                          std::to_string(world.clock.NowSeconds()));
    request.target += (request.target.find('?') == std::string::npos ? "?" : "&");
    request.target += "api_key=" + world.super.api_key + "&sig=" + sig;
  }

  const gridd::api::HttpResponse response = world.api.Handle(request);
  if (response.body.empty()) std::abort();
  if (response.status >= 500) std::abort();  // hostile input is the client's error, never ours
  if (response.content_type.rfind("application/json", 0) == 0) {
    const auto body = nlohmann::json::parse(response.body);
    const bool failed = body.at("status") == "failure";
    if (failed != (response.status != 200)) std::abort();
    if (failed && body.at("list").empty()) std::abort();
  }
  return 0;
}
