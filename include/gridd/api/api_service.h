// The GoGrid API over HTTP: maps a request path to its method, checks the signature and the
// key's role, parses parameters, calls the domain services and renders the envelope. Nothing
// here waits for a hypervisor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "gridd/api/http_server.h"
#include "gridd/api/params.h"
#include "gridd/api/rate_limiter.h"
#include "gridd/api/render.h"
#include "gridd/api/signature.h"
#include "gridd/common/clock.h"
#include "gridd/domain/account_service.h"
#include "gridd/domain/grid_service.h"
#include "gridd/domain/idempotent_requests.h"
#include "gridd/domain/load_balancer_service.h"

namespace gridd::api {

// Role sets as bit masks.
enum RoleMask : unsigned {
  kSuper = 1u << 0,
  kSystem = 1u << 1,
  kBilling = 1u << 2,
  kReadOnly = 1u << 3,
  kAllRoles = kSuper | kSystem | kBilling | kReadOnly,
};

struct ApiServiceOptions {
  int signature_window_past_seconds = 600;
  int signature_window_future_seconds = 300;
  // Token buckets (docs/operations.md, "TLS and rate limits"); a rate of 0 turns one off.
  // Every request takes a token from its client address's bucket, every authenticated one
  // from its key's, and every failed authentication from the address's (much smaller)
  // failure bucket, which once empty refuses the address before its signature is checked.
  TokenBucketLimits per_key_limits{500, 5000};
  TokenBucketLimits per_address_limits{1000, 10000};
  TokenBucketLimits failed_auth_limits{2, 200};
};

class ApiService {
 public:
  // `balancers` may be null when gridd runs without a load-balancing engine; `idempotent`
  // may be null when the idempotency_key extension is off (the parameter is then refused).
  ApiService(domain::GridService& grid, domain::AccountService& accounts,
             domain::LoadBalancerService* balancers, const Clock& clock,
             const ApiServiceOptions& options, domain::IdempotentRequests* idempotent = nullptr);

  HttpResponse Handle(const HttpRequest& request);
  // What the HTTP server answers for malformed HTTP (oversized headers, bad framing).
  static HttpResponse ProtocolError(unsigned status, const std::string& message);

  struct Call {
    const domain::Caller& caller;
    const Params& params;
    double version;
    // The answer is JSON: a handler may write its items as text (Result::json_text).
    bool json = false;
  };
  using Handler = std::function<Result(const Call&)>;
  struct Route {
    std::string method;  // "/grid/server/list", echoed in every answer
    unsigned roles;
    double min_version;
    Handler handler;
    bool mutating = false;  // changes state: accepts idempotency_key
  };
  // The route table, by request path ("/api/grid/server/list"); for tests of the role matrix.
  const std::map<std::string, Route, std::less<>>& routes() const { return routes_; }

 private:
  void AddRoute(const std::string& path, unsigned roles, double min_version, Handler handler);
  void AddRoutes();
  std::shared_ptr<const RenderContext> Context();

  domain::GridService& grid_;
  domain::AccountService& accounts_;
  domain::LoadBalancerService* balancers_;
  domain::IdempotentRequests* idempotent_;
  const Clock& clock_;
  SignatureVerifier verifier_;
  HmacVerifier hmac_verifier_;
  RateLimiter per_key_;
  RateLimiter per_address_;
  RateLimiter failed_auth_;
  std::map<std::string, Route, std::less<>> routes_;
};

}  // namespace gridd::api
