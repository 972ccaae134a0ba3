#include "gridd/api/render.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <iterator>
#include <string_view>
#include <unordered_map>

#include "gridd/common/error.h"

namespace gridd::api {

using namespace std::string_view_literals;
namespace {

using namespace domain;

Json LookupOption(const std::vector<Option>& options, int64_t id) {
  if (const Option* option = FindOption(options, std::to_string(id))) return OptionJson(*option);
  // An id the catalogue no longer has (an operator removed it): show it rather than fail.
  return OptionJson(Option{id, std::to_string(id), std::nullopt});
}

Json Fixed(const char* lookup, int64_t id) { return LookupOption(*FixedLookup(lookup), id); }

Json ErrorJson(ErrorClass error_class, const std::string& message) {
  Json error = Json::object();
  error["object"] = "error";
  error["message"] = message;
  error["errorcode"] = std::string(ErrorCodeFor(error_class));
  return error;
}

Result FailureResult(ErrorClass error_class, const std::string& message) {
  Result result;
  result.list.push_back(ErrorJson(error_class, message));
  result.summary.total = 1;
  result.summary.returned = 1;
  return result;
}

void AppendUtf8(std::string& out, char32_t code) {
  if (code < 0x80) {
    out.push_back(static_cast<char>(code));
  } else if (code < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code >> 6)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else if (code < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
}

constexpr char32_t kReplacement = 0xFFFD;

// Decodes `text` as UTF-8 and calls `emit` with each code point; every byte that does not start
// a well-formed sequence (overlong forms, surrogates, values past U+10FFFF) becomes U+FFFD.
template <typename Emit>
void DecodeUtf8(std::string_view text, Emit emit) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    char32_t code = 0;
    char32_t min = 0;
    if (lead < 0x80) {
      emit(static_cast<char32_t>(lead));
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2, code = lead & 0x1F, min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, code = lead & 0x0F, min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, code = lead & 0x07, min = 0x10000;
    }
    bool valid = length != 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) valid = false;
      code = (code << 6) | (next & 0x3F);
    }
    if (valid && (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))) {
      valid = false;
    }
    if (valid) {
      emit(code);
      i += length;
    } else {
      emit(kReplacement);
      ++i;
    }
  }
}

std::string SanitizeUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  DecodeUtf8(text, [&](char32_t code) { AppendUtf8(out, code); });
  return out;
}

// Text for XML content and attribute values: escaped, valid UTF-8, only XML 1.0 characters.
std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  DecodeUtf8(text, [&](char32_t code) {
    switch (code) {
      case '&':
        out += "&amp;";
        return;
      case '<':
        out += "&lt;";
        return;
      case '>':
        out += "&gt;";
        return;
      case '"':
        out += "&quot;";
        return;
      case '\'':
        out += "&apos;";
        return;
      default:
        break;
    }
    const bool allowed = code == 0x9 || code == 0xA || code == 0xD ||
                         (code >= 0x20 && code <= 0xD7FF) || (code >= 0xE000 && code <= 0xFFFD) ||
                         code >= 0x10000;
    AppendUtf8(out, allowed ? code : kReplacement);
  });
  return out;
}

// A scalar as text: strings as they are, true/false, numbers as JSON writes them, null empty.
std::string ScalarText(const Json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  return value.dump();
}

// Java's Map.toString() / List.toString(): {key=value, …} and [a, b].
std::string JavaText(const Json& value) {
  std::string out;
  if (value.is_object()) {
    out = "{";
    bool first = true;
    for (const auto& [key, item] : value.items()) {
      if (!first) out += ", ";
      first = false;
      out += key + "=" + JavaText(item);
    }
    return out + "}";
  }
  if (value.is_array()) {
    out = "[";
    bool first = true;
    for (const auto& item : value) {
      if (!first) out += ", ";
      first = false;
      out += JavaText(item);
    }
    return out + "]";
  }
  return ScalarText(value);
}

// ------------------------------------------------------------------------------------- XML

class XmlWriter {
 public:
  std::string& out() { return out_; }

  void Line(int depth, std::string_view text) {
    out_.append(static_cast<size_t>(depth) * 2, ' ');
    out_ += text;
    out_ += '\n';
  }

  // `<object name="TYPE">` with one <attribute> per key except "object".
  void Object(int depth, const std::string& type, const Json& object) {
    Line(depth, "<object name=\"" + XmlEscape(type) + "\">");
    for (const auto& [key, value] : object.items()) {
      if (key == "object") continue;
      Attribute(depth + 1, key, value);
    }
    Line(depth, "</object>");
  }

  // A list of objects; untyped entries are named after the attribute holding the list.
  void List(int depth, const std::string& key, const Json& items) {
    if (items.empty()) {
      Line(depth, "<list/>");
      return;
    }
    Line(depth, "<list>");
    const std::string fallback = key == "history" ? "job_history" : key;
    for (const auto& item : items) {
      Object(depth + 1, item.is_object() ? item.value("object", fallback) : fallback,
             item.is_object() ? item : Json::object());
    }
    Line(depth, "</list>");
  }

 private:
  void Attribute(int depth, const std::string& key, const Json& value) {
    const std::string open = "<attribute name=\"" + XmlEscape(key) + "\">";
    const bool typed_object = value.is_object() && value.contains("object");
    const bool object_list =
        value.is_array() &&
        std::all_of(value.begin(), value.end(), [](const Json& item) { return item.is_object(); });
    if (typed_object) {
      Line(depth, open);
      Object(depth + 1, value["object"].get<std::string>(), value);
      Line(depth, "</attribute>");
    } else if (object_list) {
      Line(depth, open);
      List(depth + 1, key, value);
      Line(depth, "</attribute>");
    } else {
      // Scalars, and maps without a type (job detail) as Java's Map.toString().
      Line(depth, open + XmlEscape(JavaText(value)) + "</attribute>");
    }
  }

  std::string out_;
};

std::string RenderXml(const std::string& method, const char* status, const Result& result) {
  XmlWriter writer;
  writer.out() = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  writer.Line(0, "<gogrid>");
  writer.Line(1, "<response method=\"" + XmlEscape(method) + "\" status=\"" + status + "\">");
  const Summary& summary = result.summary;
  writer.Line(2, "<summary total=\"" + std::to_string(summary.total) + "\" start=\"" +
                     std::to_string(summary.start) + "\" numpages=\"" +
                     std::to_string(summary.numpages) + "\" returned=\"" +
                     std::to_string(summary.returned) + "\"/>");
  Json list = Json::array();
  for (const auto& item : result.list) list.push_back(item);
  writer.List(2, "list", list);
  writer.Line(1, "</response>");
  writer.Line(0, "</gogrid>");
  return std::move(writer.out());
}

// ------------------------------------------------------------------------------------- CSV

// One field for a value: nested objects by what identifies them, lists ';'-joined.
std::string CsvText(const Json& value) {
  if (value.is_array()) {
    std::string out;
    for (size_t i = 0; i < value.size(); ++i) {
      if (i > 0) out += ';';
      out += CsvText(value[i]);
    }
    return out;
  }
  if (!value.is_object()) return ScalarText(value);
  const std::string type = value.value("object", "");
  auto field = [&](const char* key) { return value.contains(key) ? CsvText(value[key]) : ""; };
  if (type == "option") return field("name");
  if (type == "ip") return field("ip");
  if (type == "ipportpair") return field("ip") + ":" + field("port");
  if (type.empty()) {
    Json copy = Json::object();
    for (const auto& [key, item] : value.items()) copy[key] = CsvText(item);
    return JavaText(copy);
  }
  // server, serverimage, loadbalancer, customer and every other typed object: its id.
  return value.contains("id") ? field("id") : field("name");
}

std::string CsvField(std::string_view raw) {
  std::string text = SanitizeUtf8(raw);
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string RenderCsv(const std::string& method, const char* status, const Result& result) {
  const Summary& summary = result.summary;
  std::string out = std::string("# ") + status + ", " + SanitizeUtf8(method) + ", TOTAL, " +
                    std::to_string(summary.total) + ", START, " + std::to_string(summary.start) +
                    ", RETURNED, " + std::to_string(summary.returned) + "\n";
  std::vector<std::string> keys;
  if (!result.list.empty() && result.list.front().is_object()) {
    for (const auto& [key, value] : result.list.front().items()) {
      if (key != "object") keys.push_back(key);
    }
  }
  out += "# ";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += ',';
    out += CsvField(keys[i]);
  }
  out += '\n';
  for (const auto& item : result.list) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i > 0) out += ',';
      if (item.is_object() && item.contains(keys[i])) out += CsvField(CsvText(item[keys[i]]));
    }
    out += '\n';
  }
  return out;
}

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
  out["image"] = ImageJson(*view.image, context);
  out["ram"] = Fixed("server.ram", server.ram);
  if (view.host_unreachable) {
    // Not a server.state option: libcloud and jclouds map an unfamiliar state to unknown,
    // which is what it is while the host does not answer.
    out["state"] = OptionJson(
        Option{11, "Unknown", "The server's host does not answer; its real state is unknown."});
  } else {
    out["state"] = Fixed("server.state", server.state);
  }
  out["type"] = Fixed("server.type", server.type);
  out["os"] = LookupOption(context.operating_systems, view.image->os_id);
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

// ------------------------------------------------------------------- servers as JSON text
namespace {

// A JSON string as Json::dump writes it (no ASCII escaping, invalid UTF-8 replaced). Plain
// printable ASCII, nearly every stored name, is copied as it is; anything else goes through
// the library so the bytes stay exactly its own.
void AppendJsonString(std::string& out, std::string_view text) {
  // One table look-up per byte rather than four comparisons.
  static constexpr auto kPlain = [] {
    std::array<bool, 256> plain{};
    for (int c = 0x20; c < 0x7F; ++c) plain[static_cast<size_t>(c)] = c != '"' && c != '\\';
    return plain;
  }();
  const bool plain = std::all_of(text.begin(), text.end(),
                                 [](char c) { return kPlain[static_cast<unsigned char>(c)]; });
  if (plain) {
    out.push_back('"');
    out.append(text);
    out.push_back('"');
  } else {
    out.append(Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace));
  }
}

void AppendJsonNumber(std::string& out, double value) { out.append(Json(value).dump()); }

// An integer as decimal text, without a temporary string.
void AppendInteger(std::string& out, int64_t value) {
  char text[24];
  const auto end = std::to_chars(std::begin(text), std::end(text), value).ptr;
  out.append(text, static_cast<size_t>(end - text));
}

void AppendOptionText(std::string& out, const Option& option) {
  out.append("{\"object\":\"option\",\"id\":"sv).append(std::to_string(option.id));
  out.append(",\"name\":"sv);
  AppendJsonString(out, option.name);
  out.append(",\"description\":"sv);
  if (option.description) {
    AppendJsonString(out, *option.description);
  } else {
    out.append("null"sv);
  }
  out.push_back('}');
}

// LookupOption and Fixed, as text.
const Option& OptionOrId(const std::vector<Option>& options, int64_t id, Option& fallback) {
  for (const auto& option : options) {
    if (option.id == id) return option;
  }
  fallback = Option{id, std::to_string(id), std::nullopt};
  return fallback;
}
void AppendLookupText(std::string& out, const std::vector<Option>& options, int64_t id) {
  Option fallback;
  AppendOptionText(out, OptionOrId(options, id, fallback));
}
// A fixed lookup never changes, so each of its options is written as text once for the
// process and copied from then on. One per lookup, held where it is used: finding the lookup
// by name for every attribute of every server showed in the profile of a page.
class FixedTexts {
 public:
  explicit FixedTexts(const char* lookup) : lookup_(lookup) {
    for (const auto& option : *FixedLookup(lookup)) AppendOptionText(texts_[option.id], option);
  }
  void Append(std::string& out, int64_t id) const {
    if (auto text = texts_.find(id); text != texts_.end()) {
      out.append(text->second);
    } else {
      AppendLookupText(out, *FixedLookup(lookup_), id);
    }
  }

 private:
  const char* lookup_;
  std::unordered_map<int64_t, std::string> texts_;
};

}  // namespace

const std::string& ServerJsonWriter::OsText(int64_t os_id) {
  auto [it, added] = operating_systems_.try_emplace(os_id);
  if (added) AppendLookupText(it->second, context_->operating_systems, os_id);
  return it->second;
}

const std::string& ServerJsonWriter::DatacenterText(int64_t datacenter_id) {
  auto [it, added] = datacenters_.try_emplace(datacenter_id);
  if (added) AppendLookupText(it->second, context_->datacenters, datacenter_id);
  return it->second;
}

// ImageJson's attributes in its order.
const std::string& ServerJsonWriter::ImageText(const Image& image) {
  auto [it, added] = images_.try_emplace(image.id);
  if (!added) return it->second;
  std::string& out = it->second;
  out.append("{\"object\":\"serverimage\",\"id\":"sv).append(std::to_string(image.id));
  out.append(",\"name\":"sv);
  AppendJsonString(out, image.name);
  out.append(",\"friendlyName\":"sv);
  AppendJsonString(out, image.friendly_name);
  out.append(",\"description\":"sv);
  AppendJsonString(out, image.description);
  out.append(",\"os\":"sv).append(OsText(image.os_id));
  out.append(",\"architecture\":"sv);
  static const FixedTexts architectures("image.architecture");
  architectures.Append(out, image.architecture);
  out.append(",\"type\":"sv);
  static const FixedTexts image_types("image.type");
  image_types.Append(out, image.type);
  out.append(",\"state\":"sv);
  static const FixedTexts image_states("image.state");
  image_states.Append(out, image.state);
  out.append(",\"price\":"sv);
  AppendJsonNumber(out, image.price);
  out.append(",\"location\":"sv);
  AppendJsonString(out, image.location);
  out.append(",\"isActive\":"sv).append(image.is_active ? "true" : "false");
  out.append(",\"isPublic\":"sv).append(image.is_public ? "true" : "false");
  out.append(",\"createdTime\":"sv).append(std::to_string(image.created_ms));
  out.append(",\"updatedTime\":"sv).append(std::to_string(image.updated_ms));
  out.append(",\"billingtokens\":[{\"object\":\"billingtoken\",\"id\":"sv)
      .append(std::to_string(image.os_id));
  out.append(",\"name\":"sv);
  Option fallback;
  AppendJsonString(out, OptionOrId(context_->operating_systems, image.os_id, fallback).name);
  out.append(",\"price\":"sv);
  AppendJsonNumber(out, image.price);
  out.append("}],\"owner\":{\"object\":\"customer\",\"id\":"sv)
      .append(std::to_string(image.owner_account_id.value_or(-1)));
  out.append(",\"name\":"sv);
  AppendJsonString(out, image.owner_name);
  out.append("}}"sv);
  return out;
}

// ServerJson's attributes in its order.
void ServerJsonWriter::Append(std::string& out, const ServerView& view) {
  const Server& server = view.server;
  const Ip& ip = view.ip;
  out.append("{\"object\":\"server\""sv);
  if (view.include_id) AppendInteger(out.append(",\"id\":"sv), server.id);
  out.append(",\"name\":"sv);
  AppendJsonString(out, server.name);
  out.append(",\"description\":"sv);
  AppendJsonString(out, server.description);
  AppendInteger(out.append(",\"ip\":{\"object\":\"ip\",\"id\":"sv), ip.id);
  out.append(",\"ip\":"sv);
  AppendJsonString(out, ip.address);
  out.append(",\"subnet\":"sv);
  AppendJsonString(out, ip.subnet);
  out.append(ip.is_public ? ",\"public\":true,\"state\":" : ",\"public\":false,\"state\":");
  static const FixedTexts ip_states("ip.state");
  ip_states.Append(out, ip.state);
  out.append(",\"datacenter\":"sv).append(DatacenterText(ip.datacenter_id));
  out.append("},\"image\":"sv).append(ImageText(*view.image));
  out.append(",\"ram\":"sv);
  static const FixedTexts rams("server.ram");
  rams.Append(out, server.ram);
  out.append(",\"state\":"sv);
  if (view.host_unreachable) {
    AppendOptionText(out, Option{11, "Unknown",
                                 "The server's host does not answer; its real state is unknown."});
  } else {
    static const FixedTexts server_states("server.state");
    server_states.Append(out, server.state);
  }
  out.append(",\"type\":"sv);
  static const FixedTexts server_types("server.type");
  server_types.Append(out, server.type);
  out.append(",\"os\":"sv).append(OsText(view.image->os_id));
  out.append(",\"isSandbox\":false,\"datacenter\":"sv).append(DatacenterText(ip.datacenter_id));
  out.push_back('}');
}

namespace {
constexpr std::string_view kListOpening = "{\"list\":[";
}  // namespace

std::string& NextJsonItem(Result& result) {
  std::string& out = result.json_text;
  if (result.json_items == 0) {
    out.append(kListOpening);
  } else {
    out.push_back(',');
  }
  ++result.json_items;
  return out;
}

std::string RenderSuccessJson(const std::string& method, Result result) {
  // The envelope is written around each item's own dump, the same bytes as dumping one tree
  // holding them all, without copying every item into that tree first (a page of servers is
  // thousands of nodes). Invalid UTF-8 is replaced rather than failing: stored text came from
  // clients.
  auto dump = [](const Json& value) {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
  };
  std::string out;
  if (result.json_items > 0) {
    out = std::move(result.json_text);
  } else {
    out.append(kListOpening);
  }
  for (size_t i = 0; i < result.list.size(); ++i) {
    if (i > 0 || result.json_items > 0) out.push_back(',');
    out.append(dump(result.list[i]));
  }
  out.append("],\"method\":"sv).append(dump(Json(method)));
  out.append(",\"status\":\"success\",\"summary\":{\"numpages\":"sv);
  AppendInteger(out, result.summary.numpages);
  AppendInteger(out.append(",\"returned\":"sv), result.summary.returned);
  AppendInteger(out.append(",\"start\":"sv), result.summary.start);
  AppendInteger(out.append(",\"total\":"sv), result.summary.total);
  out.append("}}"sv);
  return out;
}

std::string RenderFailureJson(const std::string& method, ErrorClass error_class,
                              const std::string& message) {
  Json out = Json::object();
  out["list"] = Json::array({ErrorJson(error_class, message)});
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

namespace {
std::string JavaDate(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  std::strftime(text, sizeof(text), "%a %b %d %H:%M:%S UTC %Y", &utc);
  return text;
}
}  // namespace

Json BillingSummaryJson(const domain::BillingSummary& summary, double version) {
  Json out = Json::object();
  out["object"] = "billingsummary";
  out["startDate"] = JavaDate(summary.start_ms);
  out["endDate"] = JavaDate(summary.end_ms);
  out["memoryAllotment"] = summary.memory_allotment;
  out["memoryInUse"] = summary.memory_in_use;
  out["memoryAccrued"] = summary.memory_accrued;
  out["memoryOverage"] = summary.memory_overage;
  out["memoryOverageCharge"] = summary.memory_overage_charge;
  out["transferAllotment"] = summary.transfer_allotment;
  out["transferAccrued"] = summary.transfer_accrued;
  out["transferOverage"] = summary.transfer_overage;
  out["transferOverageCharge"] = summary.transfer_overage_charge;
  if (version + 1e-9 >= 1.1) {
    out["startTimestamp"] = summary.start_ms;
    out["endTimestamp"] = summary.end_ms;
  }
  if (version + 1e-9 >= 1.3) {
    out["memoryProjectedUsage"] = summary.memory_projected_usage;
    out["memoryProjectedOverageCharge"] = summary.memory_projected_overage_charge;
    out["memoryProjectedTotalCharge"] = summary.memory_projected_total_charge;
    out["transferProjectedUsage"] = summary.transfer_projected_usage;
    out["transferProjectedOverageCharge"] = summary.transfer_projected_overage_charge;
    out["transferProjectedTotalCharge"] = summary.transfer_projected_total_charge;
  }
  return out;
}

std::string RenderSuccessXml(const std::string& method, const Result& result) {
  return RenderXml(method, "success", result);
}

std::string RenderFailureXml(const std::string& method, ErrorClass error_class,
                             const std::string& message) {
  return RenderXml(method, "failure", FailureResult(error_class, message));
}

std::string RenderSuccessCsv(const std::string& method, const Result& result) {
  return RenderCsv(method, "SUCCESS", result);
}

std::string RenderFailureCsv(const std::string& method, ErrorClass error_class,
                             const std::string& message) {
  return RenderCsv(method, "FAILURE", FailureResult(error_class, message));
}

}  // namespace gridd::api
