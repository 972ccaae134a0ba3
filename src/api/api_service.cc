#include "gridd/api/api_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>

#include "gridd/common/error.h"

namespace gridd::api {
namespace {

using domain::Selector;

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string MethodNameOf(std::string_view path) {
  // "/api/grid/server/list" → "/grid/server/list"; anything else is echoed as given.
  if (path.rfind("/api/", 0) == 0) return std::string(path.substr(4));
  return std::string(path);
}

int64_t ParseCount(const Params& params, const char* name, int64_t min) {
  auto text = params.Get(name);
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || ptr != text->data() + text->size() || value < min) {
    ThrowIllegalArgument(std::string("Parameter '") + name + "' must be an integer >= " +
                         std::to_string(min) + ", got '" + *text + "'");
  }
  return value;
}

std::optional<bool> ParseBool(const Params& params, const char* name) {
  auto text = params.Get(name);
  if (!text) return std::nullopt;
  std::string lower;
  for (char c : *text)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "true") return true;
  if (lower == "false") return false;
  ThrowIllegalArgument(std::string("Parameter '") + name + "' must be true or false, got '" +
                       *text + "'");
}

// The first present name among aliases ("server.ram" or "ram").
std::optional<std::string> GetAny(const Params& params, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (auto value = params.Get(name)) return value;
  }
  return std::nullopt;
}

std::optional<int64_t> OptionParam(const Params& params, std::initializer_list<const char*> names,
                                   const char* lookup) {
  for (const char* name : names) {
    if (auto value = params.Get(name)) {
      return domain::ResolveOption(*domain::FixedLookup(lookup), name, *value).id;
    }
  }
  return std::nullopt;
}

std::vector<int64_t> OptionParams(const Params& params, const char* name, const char* lookup) {
  std::vector<int64_t> out;
  for (const auto& value : params.GetAll(name)) {
    out.push_back(domain::ResolveOption(*domain::FixedLookup(lookup), name, value).id);
  }
  return out;
}

// The values of `name`, an alias of `id` (job=, password=), checked here so that the message
// names the parameter the client sent.
std::vector<std::string> IdAliasValues(const Params& params, const char* name) {
  auto values = params.GetAll(name);
  for (const auto& value : values) {
    int64_t id = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || id < 1) {
      ThrowIllegalArgument(std::string("Parameter '") + name +
                           "' must be a positive integer, got '" + value + "'");
    }
  }
  return values;
}

// Selectors: `id`, `name` and the object-named one; only one kind per call.
std::vector<Selector> Selectors(const Params& params, const char* any_name) {
  std::vector<Selector> out;
  int kinds = 0;
  auto collect = [&](const char* name, Selector::Kind kind) {
    auto values = params.GetAll(name);
    if (!values.empty()) ++kinds;
    for (const auto& value : values) {
      if (value.empty())
        ThrowIllegalArgument(std::string("Parameter '") + name + "' must not be empty");
    }
    for (auto& value : values) out.push_back(Selector{kind, std::move(value)});
  };
  collect("id", Selector::Kind::kId);
  collect("name", Selector::Kind::kName);
  collect(any_name, Selector::Kind::kIdOrName);
  if (kinds > 1) {
    ThrowIllegalArgument(std::string("Selectors id, name and ") + any_name +
                         " are exclusive and cannot be mixed");
  }
  return out;
}

// Paging (num_items, page) of a list whose length is known: fills the summary and says which
// items the page holds. Without num_items a method with no default size answers everything.
class Pager {
 public:
  Pager(const Params& params, std::optional<int64_t> default_size)
      : params_(params),
        size_(params.Has("num_items") ? std::optional<int64_t>(ParseCount(params, "num_items", 1))
                                      : default_size) {}

  domain::ListWindow Window(int64_t total, Summary& summary) const {
    summary.total = total;
    if (!size_) {
      summary.returned = total;
      return {0, total};
    }
    const int64_t page = params_.Has("page") ? ParseCount(params_, "page", 0) : 0;
    // Sizes and pages come from clients: no arithmetic here may overflow.
    summary.numpages = total / *size_ + (total % *size_ != 0);
    summary.start = page >= summary.numpages ? total : page * *size_;
    summary.returned = std::min(*size_, total - summary.start);
    return {summary.start, summary.returned};
  }

 private:
  const Params& params_;
  std::optional<int64_t> size_;
};

Result Paged(std::vector<Json> items, const Params& params, std::optional<int64_t> default_size) {
  Result result;
  const auto window =
      Pager(params, default_size).Window(static_cast<int64_t>(items.size()), result.summary);
  if (window.offset == 0 && window.limit == static_cast<int64_t>(items.size())) {
    result.list = std::move(items);
    return result;
  }
  for (int64_t i = window.offset; i < window.offset + window.limit; ++i) {
    result.list.push_back(std::move(items[static_cast<size_t>(i)]));
  }
  return result;
}

Result Single(std::vector<Json> items) {
  Result result;
  result.summary.total = result.summary.returned = static_cast<int64_t>(items.size());
  result.list = std::move(items);
  return result;
}

double ParseVersion(const std::optional<std::string>& text) {
  if (!text || text->empty()) ThrowIllegalArgument("Missing required parameter: v");
  static const char* kVersions[] = {"1.0", "1.1", "1.2", "1.3", "1.4",
                                    "1.5", "1.6", "1.7", "1.8", "1.9"};
  for (size_t i = 0; i < std::size(kVersions); ++i) {
    if (*text == kVersions[i]) return 1.0 + static_cast<double>(i) / 10.0;
  }
  ThrowIllegalArgument("Unsupported API version '" + *text + "'; gridd speaks 1.0 to 1.9");
}

unsigned MaskFor(domain::Role role) {
  switch (role) {
    case domain::Role::kSuperUser:
      return kSuper;
    case domain::Role::kSystemUser:
      return kSystem;
    case domain::Role::kBillingUser:
      return kBilling;
    case domain::Role::kReadOnlyUser:
      return kReadOnly;
  }
  return 0;
}

// realiplist.<N>.ip / realiplist.<N>.port pairs, any integers N, ordered by N.
std::vector<domain::RealIpInput> RealIps(const Params& params) {
  std::map<int64_t, domain::RealIpInput> by_index;
  const std::string prefix = "realiplist.";
  for (const auto& [key, value] : params.pairs()) {
    if (key.rfind(prefix, 0) != 0) continue;
    const auto dot = key.find('.', prefix.size());
    const std::string index_text = key.substr(
        prefix.size(), dot == std::string::npos ? std::string::npos : dot - prefix.size());
    const std::string field = dot == std::string::npos ? "" : key.substr(dot + 1);
    int64_t index = 0;
    auto [ptr, ec] =
        std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
    if (ec != std::errc() || ptr != index_text.data() + index_text.size() || index < 0 ||
        (field != "ip" && field != "port")) {
      ThrowIllegalArgument("Malformed parameter '" + key +
                           "'; use realiplist.N.ip and realiplist.N.port");
    }
    auto& entry = by_index[index];
    entry.index = index;
    auto& slot = field == "ip" ? entry.ip : entry.port;
    if (slot) ThrowIllegalArgument("Parameter '" + key + "' is given twice");
    slot = value;
  }
  std::vector<domain::RealIpInput> out;
  out.reserve(by_index.size());
  for (auto& [index, entry] : by_index) out.push_back(std::move(entry));
  return out;
}

// Parameters and features carry the version that introduced them (spec §7, §8). A parameter
// the caller's version does not know yet is ignored, as unknown parameters are (spec §1.2).
bool Knows(const ApiService::Call& call, double since) { return call.version + 1e-9 >= since; }

std::vector<std::string> SinceVersion(const ApiService::Call& call, const char* name,
                                      double since) {
  return Knows(call, since) ? call.params.GetAll(name) : std::vector<std::string>{};
}

// Server states as the caller's version names them: On/Saving came with 1.8 and Off/Saving
// with 1.9; older clients know both as Saving.
int64_t SeenState(int64_t state, const ApiService::Call& call) {
  namespace server_state = domain::server_state;
  if (state == server_state::kOnSaving && !Knows(call, 1.8)) return server_state::kSaving;
  if (state == server_state::kOffSaving && !Knows(call, 1.9)) return server_state::kSaving;
  return state;
}
domain::ServerView AsSeenBy(domain::ServerView view, const ApiService::Call& call) {
  view.server.state = SeenState(view.server.state, call);
  return view;
}

// The servers of an answer: written straight as JSON text when the answer is JSON (the hot
// path: no tree per server), as trees for XML and CSV, which walk them.
void AddServers(Result& result, const std::vector<domain::ServerView>& views,
                const ApiService::Call& call, const std::shared_ptr<const RenderContext>& lookups) {
  if (call.json) {
    ServerJsonWriter writer(lookups);
    for (const auto& view : views) {
      std::string& out = NextJsonItem(result);
      // Copied only when an older version names the state differently.
      if (SeenState(view.server.state, call) == view.server.state) {
        writer.Append(out, view);
      } else {
        writer.Append(out, AsSeenBy(view, call));
      }
      // Servers are nearly the same size: the first one sizes the buffer for the whole page
      // and the envelope, so it grows once instead of doubling its way up.
      if (result.json_items == 1) out.reserve(out.size() * views.size() + 512);
    }
    return;
  }
  result.list.reserve(views.size());
  for (const auto& view : views) result.list.push_back(ServerJson(AsSeenBy(view, call), *lookups));
}

HttpResponse JsonResponse(unsigned status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.content_type = "application/json; charset=UTF-8";
  response.body = std::move(body);
  return response;
}

enum class Format { kJson, kXml, kCsv };

// format=json|xml|csv, case-insensitive; nullopt for anything else.
std::optional<Format> ParseFormat(std::string_view text) {
  std::string lower;
  for (char c : text) {
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (lower == "json") return Format::kJson;
  if (lower == "xml") return Format::kXml;
  if (lower == "csv") return Format::kCsv;
  return std::nullopt;
}

HttpResponse SuccessResponse(Format format, const std::string& method, Result result) {
  switch (format) {
    case Format::kXml: {
      HttpResponse response;
      response.status = 200;
      response.content_type = "text/xml; charset=UTF-8";
      response.body = RenderSuccessXml(method, result);
      return response;
    }
    case Format::kCsv: {
      HttpResponse response;
      response.status = 200;
      response.content_type = "text/csv; charset=UTF-8";
      response.body = RenderSuccessCsv(method, result);
      return response;
    }
    case Format::kJson:
      break;
  }
  return JsonResponse(200, RenderSuccessJson(method, std::move(result)));
}

HttpResponse FailureResponse(Format format, unsigned status, const std::string& method,
                             ErrorClass error_class, const std::string& message) {
  switch (format) {
    case Format::kXml: {
      HttpResponse response;
      response.status = status;
      response.content_type = "text/xml; charset=UTF-8";
      response.body = RenderFailureXml(method, error_class, message);
      return response;
    }
    case Format::kCsv: {
      HttpResponse response;
      response.status = status;
      response.content_type = "text/csv; charset=UTF-8";
      response.body = RenderFailureCsv(method, error_class, message);
      return response;
    }
    case Format::kJson:
      break;
  }
  return JsonResponse(status, RenderFailureJson(method, error_class, message));
}

}  // namespace

ApiService::ApiService(domain::GridService& grid, domain::AccountService& accounts,
                       domain::LoadBalancerService* balancers, const Clock& clock,
                       const ApiServiceOptions& options, domain::IdempotentRequests* idempotent)
    : grid_(grid),
      accounts_(accounts),
      balancers_(balancers),
      idempotent_(idempotent),
      clock_(clock),
      verifier_(options.signature_window_past_seconds, options.signature_window_future_seconds),
      hmac_verifier_(options.signature_window_past_seconds,
                     options.signature_window_future_seconds),
      per_key_(options.per_key_limits),
      per_address_(options.per_address_limits),
      failed_auth_(options.failed_auth_limits) {
  AddRoutes();
}

HttpResponse ApiService::ProtocolError(unsigned status, const std::string& message) {
  const ErrorClass error_class =
      status >= 500 ? ErrorClass::kUnexpected : ErrorClass::kIllegalArgument;
  return JsonResponse(status, RenderFailureJson("", error_class, message));
}

std::shared_ptr<const RenderContext> ApiService::Context() { return grid_.catalog().Lookups(); }

void ApiService::AddRoute(const std::string& path, unsigned roles, double min_version,
                          Handler handler) {
  routes_.emplace("/api" + path, Route{path, roles, min_version, std::move(handler)});
}

HttpResponse ApiService::Handle(const HttpRequest& request) {
  const std::string_view path = PathOf(request.target);
  auto route_it = routes_.find(path);
  std::string method = route_it != routes_.end() ? route_it->second.method : MethodNameOf(path);
  // Errors use the requested format as soon as it can be read (even an unknown path or a failed
  // authentication); when the parameters cannot be parsed, or the format is unknown, JSON.
  std::optional<Params> early_params;
  try {
    early_params.emplace(Params::FromRequest(request.target, request.content_type, request.body));
  } catch (const std::exception&) {
    // Reported below, in JSON, when the parameters are actually needed.
  }
  Format format = Format::kJson;
  if (early_params) {
    if (auto text = early_params->Get("format")) {
      format = ParseFormat(*text).value_or(Format::kJson);
    }
  }
  // The access log and the request metrics name the method and the key that called it; a path
  // that names no method counts as "unknown", so clients cannot create label values.
  std::string api_key_id;
  auto answer = [&](HttpResponse response) {
    response.operation = route_it != routes_.end() ? method : "unknown";
    response.api_key_id = api_key_id;
    return response;
  };
  // Over a limit: 429 with the envelope in the requested format and Retry-After.
  auto throttled = [&](int retry_after, const std::string& message) {
    spdlog::info("api: {} throttled: {}", method, message);
    HttpResponse response =
        FailureResponse(format, 429, method, ErrorClass::kTooManyRequests,
                        message + "; retry after " + std::to_string(retry_after) + " s");
    response.headers.emplace_back("Retry-After", std::to_string(retry_after));
    return answer(std::move(response));
  };
  const double now_seconds = static_cast<double>(clock_.NowMs()) / 1000.0;
  if (auto wait = per_address_.Acquire(request.remote_address, now_seconds)) {
    return throttled(*wait, "Too many requests from this address");
  }
  if (auto wait = failed_auth_.Exhausted(request.remote_address, now_seconds)) {
    return throttled(*wait, "Too many failed authentications from this address");
  }
  try {
    if (request.method != "GET" && request.method != "POST") {
      ThrowIllegalArgument("HTTP method " + request.method + " is not supported; use GET or POST");
    }
    if (route_it == routes_.end()) {
      ThrowIllegalArgument("Unknown method '" + std::string(path) + "'");
    }
    const Route& route = route_it->second;
    const Params params =
        early_params ? std::move(*early_params)
                     : Params::FromRequest(request.target, request.content_type, request.body);

    // Signature and key first (403), then the role (401), then the parameters (400).
    const auto api_key = params.Get("api_key");
    const auto sig = params.Get("sig");
    if (!api_key || api_key->empty() || !sig || sig->empty()) {
      failed_auth_.Acquire(request.remote_address, now_seconds);
      throw ApiError(ErrorClass::kAuthenticationFailed,
                     "Authentication Failed: api_key and sig are required");
    }
    const auto key = accounts_.FindApiKey(*api_key);
    auto refuse = [&](const std::string& why) {
      failed_auth_.Acquire(request.remote_address, now_seconds);
      throw ApiError(ErrorClass::kAuthenticationFailed, "Authentication Failed: " + why);
    };
    // The key's secrets: the current one, and the one a rotation replaced while its grace
    // period lasts (docs/operations.md, "Rotating a key's secret").
    std::vector<std::string_view> secrets;
    if (key) {
      secrets.push_back(key->shared_secret);
      if (!key->previous_secret.empty() && clock_.NowMs() < key->previous_secret_until_ms) {
        secrets.push_back(key->previous_secret);
      }
    }
    if (const auto sig_method = params.Get("sig_method")) {
      // gridd's replay-proof scheme (docs/api.md, "gridd extensions: HMAC signing").
      if (!EqualsIgnoringCase(*sig_method, "HMAC-SHA256")) refuse("sig_method must be HMAC-SHA256");
      if (!key) refuse("unknown api_key or invalid or expired signature");
      // A nonce is only remembered once a secret matches, so trying the next one is safe.
      auto outcome = HmacVerifier::Outcome::kBadSignature;
      for (size_t i = 0; i < secrets.size() && outcome == HmacVerifier::Outcome::kBadSignature;
           ++i) {
        outcome = hmac_verifier_.Verify(key->key, secrets[i], request.method, path, params.pairs(),
                                        clock_.NowSeconds());
      }
      switch (outcome) {
        case HmacVerifier::Outcome::kValid:
          break;
        case HmacVerifier::Outcome::kMalformed:
          refuse(
              "HMAC-SHA256 requests need one timestamp, one nonce (16-128 letters, digits, - "
              "or _) and sig");
          break;
        case HmacVerifier::Outcome::kBadSignature:
          refuse("invalid signature");
          break;
        case HmacVerifier::Outcome::kStale:
          refuse("timestamp outside the signature window");
          break;
        case HmacVerifier::Outcome::kReplayed:
          refuse("nonce already used (replayed request)");
          break;
      }
    } else if (key && key->signing == domain::SigningPolicy::kHmacOnly) {
      refuse("this API key must sign with sig_method=HMAC-SHA256");
    } else if (!key || std::none_of(secrets.begin(), secrets.end(), [&](std::string_view secret) {
                 return verifier_.Verify(key->key, secret, *sig, clock_.NowSeconds());
               })) {
      refuse("unknown api_key or invalid or expired signature");
    }
    api_key_id = std::to_string(key->id);
    if (auto wait = per_key_.Acquire(api_key_id, now_seconds)) {
      return throttled(*wait, "Too many requests with this API key");
    }
    if ((route.roles & MaskFor(key->role)) == 0) {
      throw ApiError(ErrorClass::kUnauthorized, std::string("Unauthorized: a ") +
                                                    domain::RoleName(key->role) +
                                                    " key may not call " + route.method);
    }
    const double version = ParseVersion(params.Get("v"));
    const std::string format_text = params.Get("format").value_or("json");
    if (!ParseFormat(format_text)) {
      ThrowIllegalArgument("Unknown format '" + format_text + "'; use json, xml or csv");
    }
    if (version + 1e-9 < route.min_version) {
      char needed[8];
      std::snprintf(needed, sizeof(needed), "%.1f", route.min_version);
      ThrowIllegalArgument(route.method + " needs API version " + needed + " or later");
    }
    domain::Caller caller{key->account_id, key->account_name, key->key, key->role};
    const auto idempotency_key = params.Get("idempotency_key");
    if (!idempotency_key || !route.mutating) {
      Result result = route.handler(Call{caller, params, version, format == Format::kJson});
      return answer(SuccessResponse(format, method, std::move(result)));
    }
    if (idempotent_ == nullptr) {
      ThrowIllegalArgument("Parameter 'idempotency_key' is not supported by this gridd");
    }
    domain::IdempotentRequests::ValidateKey(*idempotency_key);
    std::vector<std::pair<std::string, std::string>> request_params;
    for (const auto& [name, value] : params.pairs()) {
      if (name != "api_key" && name != "sig" && name != "idempotency_key") {
        request_params.emplace_back(name, value);
      }
    }
    // The change and its answer commit together: a repeat finds either both or neither.
    auto stored = idempotent_->Run(
        caller.account_id, *idempotency_key, route.method,
        domain::IdempotentRequests::ParamsHash(route.method, std::move(request_params)), [&] {
          HttpResponse response = SuccessResponse(
              format, method,
              route.handler(Call{caller, params, version, format == Format::kJson}));
          return domain::StoredResponse{response.status, response.content_type, response.body};
        });
    HttpResponse response;
    response.status = stored.status;
    response.content_type = stored.content_type;
    response.body = std::move(stored.body);
    return answer(std::move(response));
  } catch (const ApiError& error) {
    // The line carries the request id (the HTTP server's log context), so an operator can find
    // the cause of an error a customer reports with the X-Request-Id of the answer.
    spdlog::info("api: {} refused: {}: {}", method, ErrorCodeFor(error.error_class()),
                 error.what());
    return answer(FailureResponse(format, static_cast<unsigned>(HttpStatusFor(error.error_class())),
                                  method, error.error_class(), error.what()));
  } catch (const std::exception& error) {
    spdlog::error("api: {} failed: {}", method, error.what());
    return answer(FailureResponse(
        format, 500, method, ErrorClass::kUnexpected,
        std::string("An unexpected server error has occurred. Error Message : ") + error.what()));
  }
}

void ApiService::AddRoutes() {
  constexpr unsigned kGridWriters = kSuper | kSystem;

  // ------------------------------------------------------------------------------- servers
  AddRoute("/grid/server/list", kAllRoles, 1.0, [this](const Call& call) {
    domain::ServerFilter filter;
    filter.type = OptionParam(call.params, {"server.type"}, "server.type");
    if (Knows(call, 1.2)) filter.sandbox = ParseBool(call.params, "isSandbox");
    for (const auto& dc : SinceVersion(call, "datacenter", 1.5)) {
      filter.datacenters.push_back(grid_.ResolveDatacenter("datacenter", dc));
    }
    const auto lookups = Context();
    // Only the page is read and rendered, whatever the account's size.
    Result result;
    const Pager pager(call.params, std::nullopt);
    auto page = grid_.ListServerPage(
        call.caller, filter, [&](int64_t total) { return pager.Window(total, result.summary); });
    AddServers(result, page.items, call, lookups);
    return result;
  });
  AddRoute("/grid/server/get", kAllRoles, 1.0, [this](const Call& call) {
    const auto lookups = Context();
    Result result;
    const auto views = grid_.GetServers(call.caller, Selectors(call.params, "server"));
    result.summary.total = result.summary.returned = static_cast<int64_t>(views.size());
    AddServers(result, views, call, lookups);
    return result;
  });
  AddRoute("/grid/server/add", kGridWriters, 1.0, [this](const Call& call) {
    domain::ServerAddRequest request;
    request.name = call.params.Get("name");
    request.image = call.params.Get("image");
    request.ram = GetAny(call.params, {"server.ram", "ram"});
    request.ip = call.params.Get("ip");
    request.description = call.params.Get("description");
    request.type = call.params.Get("server.type");
    if (Knows(call, 1.2)) ParseBool(call.params, "isSandbox");  // accepted; sandboxes are gone
    return Single({ServerJson(grid_.AddServer(call.caller, request), *Context())});
  });
  AddRoute("/grid/server/edit", kGridWriters, 1.6, [this](const Call& call) {
    domain::ServerEditRequest request;
    request.selectors = Selectors(call.params, "server");
    request.ram = GetAny(call.params, {"server.ram", "ram"});
    request.description = call.params.Get("description");
    request.type = call.params.Get("server.type");
    return Single({ServerJson(AsSeenBy(grid_.EditServer(call.caller, request), call), *Context())});
  });
  AddRoute("/grid/server/power", kGridWriters, 1.0, [this](const Call& call) {
    auto view =
        grid_.PowerServer(call.caller, Selectors(call.params, "server"), call.params.Get("power"));
    return Single({ServerJson(AsSeenBy(view, call), *Context())});
  });
  AddRoute("/grid/server/delete", kGridWriters, 1.0, [this](const Call& call) {
    auto view = grid_.DeleteServer(call.caller, Selectors(call.params, "server"));
    return Single({ServerJson(AsSeenBy(view, call), *Context())});
  });

  // ----------------------------------------------------------------------------------- ips
  AddRoute("/grid/ip/list", kAllRoles, 1.0, [this](const Call& call) {
    domain::IpFilter filter;
    if (Knows(call, 1.1)) {
      filter.state = OptionParam(call.params, {"ip.state"}, "ip.state");
      filter.type = OptionParam(call.params, {"ip.type"}, "ip.type");
    }
    for (const auto& dc : SinceVersion(call, "datacenter", 1.5)) {
      filter.datacenters.push_back(grid_.ResolveDatacenter("datacenter", dc));
    }
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (const auto& ip : grid_.ListIps(call.caller, filter)) items.push_back(IpJson(ip, context));
    return Paged(std::move(items), call.params, std::nullopt);
  });
  AddRoute("/grid/ip/get", kAllRoles, 1.0, [this](const Call& call) {
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (const auto& ip :
         grid_.GetIps(call.caller, call.params.GetAll("id"), call.params.GetAll("ip"))) {
      items.push_back(IpJson(ip, context));
    }
    return Single(std::move(items));
  });

  // -------------------------------------------------------------------------------- images
  AddRoute("/grid/image/list", kAllRoles, 1.0, [this](const Call& call) {
    domain::ImageFilter filter;
    if (Knows(call, 1.2)) {
      filter.is_public = ParseBool(call.params, "isPublic");
      filter.type = OptionParam(call.params, {"image.type", "type"}, "image.type");
      filter.state = OptionParam(call.params, {"image.state", "state"}, "image.state");
    }
    for (const auto& dc : SinceVersion(call, "datacenter", 1.5)) {
      filter.datacenters.push_back(grid_.ResolveDatacenter("datacenter", dc));
    }
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (const auto& image : grid_.ListImages(call.caller, filter))
      items.push_back(ImageJson(image, context));
    return Paged(std::move(items), call.params, std::nullopt);
  });
  AddRoute("/grid/image/get", kAllRoles, 1.3, [this](const Call& call) {
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (const auto& image : grid_.GetImages(call.caller, Selectors(call.params, "image"))) {
      items.push_back(ImageJson(image, context));
    }
    return Single(std::move(items));
  });
  AddRoute("/grid/image/save", kGridWriters, 1.2, [this](const Call& call) {
    domain::ImageSaveRequest request;
    // GoGrid's own sample request says name= for friendlyName (spec §14 #16).
    request.friendly_name = GetAny(call.params, {"friendlyName", "name"});
    request.server = call.params.Get("server");
    request.description = call.params.Get("description");
    return Single({ImageJson(grid_.SaveImage(call.caller, request), *Context())});
  });
  AddRoute("/grid/image/edit", kGridWriters, 1.3, [this](const Call& call) {
    domain::ImageEditRequest request;
    request.selectors = Selectors(call.params, "image");
    request.friendly_name = call.params.Get("friendlyName");
    request.description = call.params.Get("description");
    request.is_public = ParseBool(call.params, "isPublic");
    return Single({ImageJson(grid_.EditImage(call.caller, request), *Context())});
  });
  AddRoute("/grid/image/delete", kGridWriters, 1.3, [this](const Call& call) {
    return Single(
        {ImageJson(grid_.DeleteImage(call.caller, Selectors(call.params, "image")), *Context())});
  });
  AddRoute("/grid/image/restore", kGridWriters, 1.3, [this](const Call& call) {
    return Single(
        {ImageJson(grid_.RestoreImage(call.caller, Selectors(call.params, "image")), *Context())});
  });

  // ---------------------------------------------------------------------------------- jobs
  AddRoute("/grid/job/list", kGridWriters, 1.0, [this](const Call& call) {
    domain::JobFilter filter;
    const int64_t now = clock_.NowMs();
    if (auto start = call.params.Get("startdate"))
      filter.start_ms = domain::ParseDateTime("startdate", *start, now);
    if (auto end = call.params.Get("enddate"))
      filter.end_ms = domain::ParseDateTime("enddate", *end, now);
    filter.object_types = OptionParams(call.params, "job.objecttype", "job.objecttype");
    filter.commands = OptionParams(call.params, "job.command", "job.command");
    filter.states = OptionParams(call.params, "job.state", "job.state");
    filter.owner = call.params.Get("owner");
    filter.object = call.params.Get("object");
    for (const auto& dc : SinceVersion(call, "datacenter", 1.5)) {
      filter.datacenters.push_back(grid_.ResolveDatacenter("datacenter", dc));
    }
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    Result result;
    const Pager pager(call.params, 100);
    auto page = grid_.ListJobPage(
        call.caller, filter, [&](int64_t total) { return pager.Window(total, result.summary); });
    result.list.reserve(page.items.size());
    for (const auto& job : page.items) result.list.push_back(JobJson(job, context));
    return result;
  });
  AddRoute("/grid/job/get", kGridWriters, 1.0, [this](const Call& call) {
    auto ids = call.params.GetAll("id");
    for (auto& job : IdAliasValues(call.params, "job")) ids.push_back(std::move(job));
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (const auto& job : grid_.GetJobs(call.caller, ids)) items.push_back(JobJson(job, context));
    return Single(std::move(items));
  });

  // ------------------------------------------------------------------------ load balancers
  auto balancers = [this]() -> domain::LoadBalancerService& {
    if (balancers_ == nullptr) {
      ThrowIllegalArgument(
          "Load balancers are not enabled on this gridd ([loadbalancer] in the configuration)");
    }
    return *balancers_;
  };
  AddRoute("/grid/loadbalancer/list", kAllRoles, 1.0, [this, balancers](const Call& call) {
    std::vector<int64_t> datacenters;
    for (const auto& dc : SinceVersion(call, "datacenter", 1.5)) {
      datacenters.push_back(grid_.ResolveDatacenter("datacenter", dc));
    }
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (const auto& view : balancers().List(call.caller, datacenters)) {
      items.push_back(LoadBalancerJson(view, context));
    }
    return Paged(std::move(items), call.params, std::nullopt);
  });
  AddRoute("/grid/loadbalancer/get", kAllRoles, 1.0, [this, balancers](const Call& call) {
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (const auto& view : balancers().Get(call.caller, Selectors(call.params, "loadbalancer"))) {
      items.push_back(LoadBalancerJson(view, context));
    }
    return Single(std::move(items));
  });
  AddRoute("/grid/loadbalancer/add", kGridWriters, 1.0, [this, balancers](const Call& call) {
    domain::LoadBalancerAddRequest request;
    request.name = call.params.Get("name");
    request.description = call.params.Get("description");
    request.vip = call.params.Get("virtualip.ip");
    request.vip_port = call.params.Get("virtualip.port");
    request.real_ips = RealIps(call.params);
    request.type = GetAny(call.params, {"loadbalancer.type", "type"});
    request.persistence = GetAny(call.params, {"loadbalancer.persistence", "persistence"});
    return Single({LoadBalancerJson(balancers().Add(call.caller, request), *Context())});
  });
  AddRoute("/grid/loadbalancer/edit", kGridWriters, 1.4, [this, balancers](const Call& call) {
    domain::LoadBalancerEditRequest request;
    request.selectors = Selectors(call.params, "loadbalancer");
    request.real_ips = RealIps(call.params);
    request.description = call.params.Get("description");
    request.type = GetAny(call.params, {"loadbalancer.type", "type"});
    request.persistence = GetAny(call.params, {"loadbalancer.persistence", "persistence"});
    return Single({LoadBalancerJson(balancers().Edit(call.caller, request), *Context())});
  });
  AddRoute("/grid/loadbalancer/delete", kGridWriters, 1.0, [this, balancers](const Call& call) {
    auto view = balancers().Delete(call.caller, Selectors(call.params, "loadbalancer"));
    return Single({LoadBalancerJson(view, *Context())});
  });

  // ----------------------------------------------------------------------------- passwords
  auto password_list = [this](const Call& call) {
    std::vector<int64_t> datacenters;
    for (const auto& dc : SinceVersion(call, "datacenter", 1.5)) {
      datacenters.push_back(grid_.ResolveDatacenter("datacenter", dc));
    }
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (auto view : grid_.ListPasswords(call.caller, datacenters)) {
      if (view.server) view.server = AsSeenBy(*view.server, call);
      items.push_back(PasswordJson(view, context));
    }
    return Paged(std::move(items), call.params, std::nullopt);
  };
  auto password_get = [this](const Call& call) {
    auto ids = call.params.GetAll("id");
    for (auto& id : IdAliasValues(call.params, "password")) ids.push_back(std::move(id));
    const auto lookups = Context();
    const RenderContext& context = *lookups;
    std::vector<Json> items;
    for (auto view : grid_.GetPasswords(call.caller, ids)) {
      if (view.server) view.server = AsSeenBy(*view.server, call);
      items.push_back(PasswordJson(view, context));
    }
    return Single(std::move(items));
  };
  AddRoute("/support/password/list", kGridWriters, 1.0, password_list);
  AddRoute("/support/password/get", kGridWriters, 1.0, password_get);
  // Older documentation and jclouds used these paths for the same method.
  AddRoute("/grid/password/get", kGridWriters, 1.0, password_get);
  AddRoute("/support/grid/password/get", kGridWriters, 1.0, password_get);
  routes_.find("/api/grid/password/get")->second.method = "/support/password/get";
  routes_.find("/api/support/grid/password/get")->second.method = "/support/password/get";
  for (const char* path :
       {"/api/grid/server/add", "/api/grid/server/edit", "/api/grid/server/power",
        "/api/grid/server/delete", "/api/grid/loadbalancer/add", "/api/grid/loadbalancer/edit",
        "/api/grid/loadbalancer/delete"}) {
    routes_.find(path)->second.mutating = true;
  }

  // ------------------------------------------------------------------------------- lookups
  AddRoute("/common/lookup/list", kAllRoles, 1.0, [this](const Call& call) {
    auto lookup = call.params.Get("lookup");
    if (!lookup || lookup->empty()) ThrowIllegalArgument("Missing required parameter: lookup");
    // Lookups answer at every version: salt sends v=1.0 and asks for ip.datacenter.
    auto options = grid_.Lookup(*lookup);
    if (auto sort = call.params.Get("sort")) {
      if (*sort != "id" && *sort != "name" && *sort != "description") {
        ThrowIllegalArgument("Parameter 'sort' must be id, name or description");
      }
      bool ascending = true;
      if (auto asc = call.params.Get("asc")) {
        if (*asc == "desc" || *asc == "false" || *asc == "0") {
          ascending = false;
        } else if (*asc != "asc" && *asc != "true" && *asc != "1") {
          ThrowIllegalArgument("Parameter 'asc' must be asc, desc, true, false, 1 or 0");
        }
      }
      std::stable_sort(options.begin(), options.end(), [&](const auto& a, const auto& b) {
        bool less = false;
        if (*sort == "id") {
          less = ascending ? a.id < b.id : a.id > b.id;
        } else {
          const std::string& x = *sort == "name" ? a.name : a.description.value_or("");
          const std::string& y = *sort == "name" ? b.name : b.description.value_or("");
          less = ascending ? x < y : x > y;
        }
        return less;
      });
    }
    std::vector<Json> items;
    items.reserve(options.size());
    for (const auto& option : options) items.push_back(OptionJson(option));
    return Paged(std::move(items), call.params, std::nullopt);
  });

  // ------------------------------------------------------------------------------- billing
  AddRoute("/myaccount/billing/get", kSuper | kBilling, 1.0, [this](const Call& call) {
    return Single({BillingSummaryJson(grid_.Billing(call.caller), call.version)});
  });
}

}  // namespace gridd::api
