// GoGrid objects and envelopes (spec §3, §9). Objects are built as ordered JSON trees whose
// "object" key names their type, so every output format (JSON, XML and CSV all walk the same
// tree) shows the same attributes in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gridd/common/error.h"
#include "gridd/domain/entities.h"
#include "gridd/domain/grid_service.h"
#include "gridd/domain/load_balancer_service.h"
#include "gridd/domain/lookups.h"

namespace gridd::api {

using Json = nlohmann::ordered_json;

// The lookups an object refers to by id (datacenters and operating systems live in the DB).
using RenderContext = domain::CatalogLookups;

Json OptionJson(const domain::Option& option);
Json IpJson(const domain::Ip& ip, const RenderContext& context);
Json ImageJson(const domain::Image& image, const RenderContext& context);
Json ServerJson(const domain::ServerView& view, const RenderContext& context);
Json JobJson(const domain::Job& job, const RenderContext& context);
Json LoadBalancerJson(const domain::LoadBalancerView& view, const RenderContext& context);
Json PasswordJson(const domain::PasswordView& view, const RenderContext& context);
// The billingsummary of spec §9.12 with the attributes API version `version` knows:
// startTimestamp/endTimestamp from 1.1, the projections from 1.3. startDate and endDate are
// Java Date strings in UTC ("Sat Jul 12 00:00:00 UTC 2008"), as GoGrid's XML and CSV showed.
Json BillingSummaryJson(const domain::BillingSummary& summary, double version);

// Writes server objects as JSON text, the same bytes as ServerJson(view).dump(), without a
// tree per server: a page of servers was thousands of allocated nodes, most of them the same
// image and lookup objects again. Each distinct image, operating system and datacenter is
// written once per writer (one answer) and its text reused.
class ServerJsonWriter {
 public:
  explicit ServerJsonWriter(std::shared_ptr<const RenderContext> context)
      : context_(std::move(context)) {}
  explicit ServerJsonWriter(RenderContext context)
      : context_(std::make_shared<const RenderContext>(std::move(context))) {}
  // Appends the server's JSON text to `out`.
  void Append(std::string& out, const domain::ServerView& view);
  std::string Write(const domain::ServerView& view) {
    std::string out;
    Append(out, view);
    return out;
  }

 private:
  const std::string& ImageText(const domain::Image& image);
  const std::string& OsText(int64_t os_id);
  const std::string& DatacenterText(int64_t datacenter_id);

  std::shared_ptr<const RenderContext> context_;
  std::unordered_map<int64_t, std::string> images_;
  std::unordered_map<int64_t, std::string> operating_systems_;
  std::unordered_map<int64_t, std::string> datacenters_;
};

struct Summary {
  int64_t total = 0;
  int64_t start = 0;
  int64_t returned = 0;
  int64_t numpages = 0;
};

struct Result {
  std::vector<Json> list;
  // Items already written as JSON text (NextJsonItem); a JSON answer uses them instead of
  // `list` when there are any. Only filled when the answer is JSON. The text begins with the
  // envelope's opening, so the whole answer is written into this one buffer and moved into
  // the response instead of copied (a page of 100 servers is 165 KB).
  std::string json_text;
  size_t json_items = 0;
  Summary summary;
};

// Starts the next text item of `result`: the envelope's opening before the first, a comma
// between items. The caller appends the item's JSON text to the string returned.
std::string& NextJsonItem(Result& result);

// The success envelope: {"list": […], "method": …, "status": "success", "summary": {…}}.
// Takes the result so that items already written as text become the answer without a copy.
std::string RenderSuccessJson(const std::string& method, Result result);
// The failure envelope with one error object.
std::string RenderFailureJson(const std::string& method, ErrorClass error_class,
                              const std::string& message);

// The same envelopes as XML (spec §5.1): <gogrid><response method status><summary/><list>
// <object name="TYPE"><attribute name="KEY">…</attribute>…</object>…</list></response></gogrid>.
// Always well-formed: invalid UTF-8 and characters XML cannot carry become U+FFFD.
std::string RenderSuccessXml(const std::string& method, const Result& result);
std::string RenderFailureXml(const std::string& method, ErrorClass error_class,
                             const std::string& message);

// The same envelopes as CSV (spec §5.2): two "# " comment lines (status and summary, then the
// attribute names) and one RFC 4180 line per object; nested objects are flattened to one field.
std::string RenderSuccessCsv(const std::string& method, const Result& result);
std::string RenderFailureCsv(const std::string& method, ErrorClass error_class,
                             const std::string& message);

}  // namespace gridd::api
