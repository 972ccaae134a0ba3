#include "gridd/api/render.h"

#include "gridd/common/error.h"

namespace gridd::api {
namespace {

using namespace domain;

Json LookupOption(const std::vector<Option>& options, int64_t id) {
  if (const Option* option = FindOption(options, std::to_string(id))) return OptionJson(*option);
  // An id the catalogue no longer has (an operator removed it): show it rather than fail.
  return OptionJson(Option{id, std::to_string(id), std::nullopt});
}

Json Fixed(const char* lookup, int64_t id) { return LookupOption(*FixedLookup(lookup), id); }

}  // namespace

Json OptionJson(const Option& option) {
  Json out = Json::object();
  out["object"] = "option";
  out["id"] = option.id;
  out["name"] = option.name;
  out["description"] = option.description ? Json(*option.description) : Json(nullptr);
  return out;
}

Json IpJson(const Ip& ip, const RenderContext& context) {
  Json out = Json::object();
  out["object"] = "ip";
  out["id"] = ip.id;
  out["ip"] = ip.address;
  out["subnet"] = ip.subnet;
  out["public"] = ip.is_public;
  out["state"] = Fixed("ip.state", ip.state);
  out["datacenter"] = LookupOption(context.datacenters, ip.datacenter_id);
  return out;
}

Json ImageJson(const Image& image, const RenderContext& context) {
  Json out = Json::object();
  out["object"] = "serverimage";
  out["id"] = image.id;
  out["name"] = image.name;
  out["friendlyName"] = image.friendly_name;
  out["description"] = image.description;
  out["os"] = LookupOption(context.operating_systems, image.os_id);
  out["architecture"] = Fixed("image.architecture", image.architecture);
  out["type"] = Fixed("image.type", image.type);
  out["state"] = Fixed("image.state", image.state);
  out["price"] = image.price;
  out["location"] = image.location;
  out["isActive"] = image.is_active;
  out["isPublic"] = image.is_public;
  out["createdTime"] = image.created_ms;
  out["updatedTime"] = image.updated_ms;
  Json token = Json::object();
  token["object"] = "billingtoken";
  token["id"] = image.os_id;
  token["name"] = out["os"]["name"];
  token["price"] = image.price;
  out["billingtokens"] = Json::array({token});
  Json owner = Json::object();
  owner["object"] = "customer";
  owner["id"] = image.owner_account_id.value_or(-1);
  owner["name"] = image.owner_name;
  out["owner"] = owner;
  return out;
}

Json ServerJson(const ServerView& view, const RenderContext& context) {
  const Server& server = view.server;
  Json out = Json::object();
  out["object"] = "server";
  if (view.include_id) out["id"] = server.id;
  out["name"] = server.name;
  out["description"] = server.description;
  out["ip"] = IpJson(view.ip, context);
  out["image"] = ImageJson(view.image, context);
  out["ram"] = Fixed("server.ram", server.ram);
  out["state"] = Fixed("server.state", server.state);
  out["type"] = Fixed("server.type", server.type);
  out["os"] = LookupOption(context.operating_systems, view.image.os_id);
  out["isSandbox"] = false;
  out["datacenter"] = LookupOption(context.datacenters, view.ip.datacenter_id);
  return out;
}

Json JobJson(const Job& job, const RenderContext& context) {
  Json out = Json::object();
  out["object"] = "job";
  out["id"] = job.id;
  out["command"] = Fixed("job.command", job.command);
  out["objecttype"] = Fixed("job.objecttype", job.object_type);
  out["createdon"] = job.created_ms;
  out["lastupdatedon"] = job.updated_ms;
  out["currentstate"] = Fixed("job.state", job.state);
  out["attempts"] = job.attempts;
  out["owner"] = job.owner;
  Json history = Json::array();
  for (const auto& entry : job.history) {
    Json item = Json::object();
    item["id"] = entry.id;
    item["state"] = Fixed("job.state", entry.state);
    item["updatedon"] = entry.at_ms;
    if (entry.note) item["note"] = *entry.note;
    history.push_back(std::move(item));
  }
  out["history"] = std::move(history);
  out["detail"] = job.detail;
  if (job.datacenter_id) out["datacenter"] = LookupOption(context.datacenters, *job.datacenter_id);
  return out;
}

Json LoadBalancerJson(const LoadBalancerView& view, const RenderContext& context) {
  auto pair = [&](const Ip& ip, int port) {
    Json out = Json::object();
    out["object"] = "ipportpair";
    out["ip"] = IpJson(ip, context);
    out["port"] = port;
    return out;
  };
  const LoadBalancer& balancer = view.balancer;
  Json out = Json::object();
  out["object"] = "loadbalancer";
  out["id"] = balancer.id;
  out["name"] = balancer.name;
  out["description"] = balancer.description;
  out["virtualip"] = pair(view.vip, balancer.port);
  Json members = Json::array();
  for (const auto& [ip, port] : view.members) members.push_back(pair(ip, port));
  out["realiplist"] = std::move(members);
  out["type"] = Fixed("loadbalancer.type", balancer.type);
  out["persistence"] = Fixed("loadbalancer.persistence", balancer.persistence);
  out["os"] = Fixed("loadbalancer.os", 2);
  out["state"] = Fixed("loadbalancer.state", balancer.state);
  out["datacenter"] = LookupOption(context.datacenters, view.vip.datacenter_id);
  return out;
}

Json PasswordJson(const PasswordView& view, const RenderContext& context) {
  Json out = Json::object();
  out["object"] = "password";
  out["id"] = view.password.id;
  out["applicationtype"] = view.password.application_type;
  out["username"] = view.password.username;
  out["password"] = view.password.password;
  if (view.server) out["server"] = ServerJson(*view.server, context);
  return out;
}

std::string RenderSuccessJson(const std::string& method, const Result& result) {
  Json out = Json::object();
  out["list"] = Json::array();
  for (const auto& item : result.list) out["list"].push_back(item);
  out["method"] = method;
  out["status"] = "success";
  Json summary = Json::object();
  summary["numpages"] = result.summary.numpages;
  summary["returned"] = result.summary.returned;
  summary["start"] = result.summary.start;
  summary["total"] = result.summary.total;
  out["summary"] = std::move(summary);
  // Replace invalid UTF-8 rather than fail: stored text came from clients.
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string RenderFailureJson(const std::string& method, ErrorClass error_class,
                              const std::string& message) {
  Json error = Json::object();
  error["object"] = "error";
  error["message"] = message;
  error["errorcode"] = std::string(ErrorCodeFor(error_class));
  Json out = Json::object();
  out["list"] = Json::array({error});
  out["method"] = method;
  out["status"] = "failure";
  Json summary = Json::object();
  summary["numpages"] = 0;
  summary["returned"] = 1;
  summary["start"] = 0;
  summary["total"] = 1;
  out["summary"] = std::move(summary);
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace gridd::api
