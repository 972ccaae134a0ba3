// The XML and CSV envelopes (spec §5): shapes, flattening of nested objects, hostile text, and
// exact golden bodies in tests/golden/api/.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gridd/api/render.h"
#include "gridd/common/csv.h"
#include "gridd/domain/lookups.h"
#include "support/golden.h"
#include "support/test_paths.h"
#include "unit/api/render_test_util.h"

namespace gridd::api {
namespace {

// ------------------------------------------------------------------ minimal XML reader

struct Element {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::vector<std::unique_ptr<Element>> children;
  std::string text;

  // The first child <attribute name="key">, or nullptr.
  const Element* Attribute(const std::string& key) const {
    for (const auto& child : children) {
      if (child->name == "attribute" && child->attributes.at("name") == key) return child.get();
    }
    return nullptr;
  }
  const Element* Child(const std::string& tag) const {
    for (const auto& child : children) {
      if (child->name == tag) return child.get();
    }
    return nullptr;
  }
};

bool ValidXmlUtf8(std::string_view text, std::string& error) {
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t length = lead < 0x80             ? 1
                    : (lead & 0xE0) == 0xC0 ? 2
                    : (lead & 0xF0) == 0xE0 ? 3
                    : (lead & 0xF8) == 0xF0 ? 4
                                            : 0;
    if (length == 0 || i + length > text.size()) {
      error = "invalid UTF-8 at " + std::to_string(i);
      return false;
    }
    uint32_t code = length == 1 ? lead : lead & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) {
        error = "invalid UTF-8 continuation at " + std::to_string(i + k);
        return false;
      }
      code = (code << 6) | (next & 0x3F);
    }
    const bool allowed = code == 0x9 || code == 0xA || code == 0xD ||
                         (code >= 0x20 && code <= 0xD7FF) || (code >= 0xE000 && code <= 0xFFFD) ||
                         (code >= 0x10000 && code <= 0x10FFFF);
    if (!allowed) {
      error = "character not allowed in XML at " + std::to_string(i);
      return false;
    }
    i += length;
  }
  return true;
}

// Parses the subset of XML gridd writes (declaration, elements, attributes, text, the five
// predefined entities) and fails on anything not well-formed.
class XmlReader {
 public:
  explicit XmlReader(std::string_view text) : text_(text) {}

  std::unique_ptr<Element> Parse(std::string& error) {
    if (!ValidXmlUtf8(text_, error)) return nullptr;
    const std::string_view declaration = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
    if (text_.substr(0, declaration.size()) != declaration) return Fail(error, "no declaration");
    pos_ = declaration.size();
    SkipSpace();
    auto root = ParseElement(error);
    if (!root) return nullptr;
    SkipSpace();
    if (pos_ != text_.size()) return Fail(error, "content after the root element");
    return root;
  }

 private:
  std::unique_ptr<Element> Fail(std::string& error, const std::string& what) {
    error = what + " at " + std::to_string(pos_);
    return nullptr;
  }
  void SkipSpace() {
    while (pos_ < text_.size() &&
           std::string_view(" \t\r\n").find(text_[pos_]) != std::string_view::npos) {
      ++pos_;
    }
  }
  std::string Name() {
    const size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) ||
                                   text_[pos_] == '_' || text_[pos_] == '-')) {
      ++pos_;
    }
    return std::string(text_.substr(start, pos_ - start));
  }
  // Text up to `stop`, with entities resolved; false on a bare '&' or '<'.
  bool Text(char stop, std::string& out) {
    while (pos_ < text_.size() && text_[pos_] != stop) {
      const char c = text_[pos_];
      if (c == '<' || c == '>') return false;
      if (c == '&') {
        const size_t end = text_.find(';', pos_);
        if (end == std::string_view::npos) return false;
        const std::string_view entity = text_.substr(pos_, end - pos_ + 1);
        static const std::map<std::string_view, char> kEntities = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        auto it = kEntities.find(entity);
        if (it == kEntities.end()) return false;
        out += it->second;
        pos_ = end + 1;
        continue;
      }
      out += c;
      ++pos_;
    }
    return pos_ < text_.size();
  }
  std::unique_ptr<Element> ParseElement(std::string& error) {
    if (pos_ >= text_.size() || text_[pos_] != '<') return Fail(error, "expected '<'");
    ++pos_;
    auto element = std::make_unique<Element>();
    element->name = Name();
    if (element->name.empty()) return Fail(error, "empty element name");
    while (true) {
      SkipSpace();
      if (text_.substr(pos_, 2) == "/>") {
        pos_ += 2;
        return element;
      }
      if (pos_ < text_.size() && text_[pos_] == '>') {
        ++pos_;
        break;
      }
      const std::string key = Name();
      if (key.empty() || text_.substr(pos_, 2) != "=\"") return Fail(error, "bad attribute");
      pos_ += 2;
      std::string value;
      if (!Text('"', value)) return Fail(error, "bad attribute value");
      ++pos_;
      if (!element->attributes.emplace(key, value).second)
        return Fail(error, "duplicate attribute");
    }
    while (true) {
      if (!Text('<', element->text)) return Fail(error, "bad text");
      if (text_.substr(pos_, 2) == "</") {
        pos_ += 2;
        if (Name() != element->name || pos_ >= text_.size() || text_[pos_] != '>') {
          return Fail(error, "mismatched end tag for " + element->name);
        }
        ++pos_;
        return element;
      }
      auto child = ParseElement(error);
      if (!child) return nullptr;
      element->children.push_back(std::move(child));
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

std::unique_ptr<Element> ParseXml(const std::string& body) {
  std::string error;
  auto root = XmlReader(body).Parse(error);
  EXPECT_NE(root, nullptr) << "not well-formed: " << error << "\n" << body;
  return root;
}

// The objects in <gogrid><response><list>.
std::vector<const Element*> Objects(const Element& root) {
  std::vector<const Element*> out;
  const Element* list = root.Child("response")->Child("list");
  for (const auto& child : list->children) out.push_back(child.get());
  return out;
}

// ------------------------------------------------------------------ RFC 4180 reader

// The records of a format=csv body, which must be well formed.
std::vector<std::vector<std::string>> CsvRows(const std::string& text) {
  CsvDocument document = ParseCsv(text);
  EXPECT_EQ(document.error, "") << text;
  return std::move(document.records);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// ------------------------------------------------------------------ fixtures

domain::ServerView RunningWebServer() {
  domain::ServerView view;
  view.server.id = 42;
  view.server.account_id = 7;
  view.server.name = "web01";
  view.server.description = "front end";
  view.server.image_id = 3;
  view.server.ram = 1;
  view.server.type = 1;
  view.server.state = domain::server_state::kOn;
  view.server.ip_id = 17;
  domain::Image image;
  image.id = 3;
  image.owner_name = "GoGrid";
  image.name = "debian-12-amd64";
  image.friendly_name = "Debian 12 (64-bit)";
  image.description = "Debian 12 bookworm, minimal";
  image.os_id = 5;
  image.architecture = 2;
  image.type = 1;
  image.state = domain::image_state::kAvailable;
  image.location = "gridd/debian-12-amd64.qcow2";
  image.created_ms = 1'700'000'000'000;
  image.updated_ms = 1'700'000'001'000;
  view.image = std::make_shared<const domain::Image>(std::move(image));
  domain::Ip& ip = view.ip;
  ip.id = 17;
  ip.address = "192.0.2.18";
  ip.subnet = "192.0.2.0/255.255.255.0";
  ip.is_public = true;
  ip.state = domain::ip_state::kAssigned;
  ip.datacenter_id = 1;
  return view;
}

domain::Job CreateJob() {
  domain::Job job;
  job.id = 250628;
  job.object_type = domain::job_object_type::kVirtualServer;
  job.command = domain::job_command::kCreateVirtualServer;
  job.state = domain::job_state::kSucceeded;
  job.attempts = 1;
  job.owner = "key-7@api";
  job.detail = nlohmann::ordered_json::object();
  job.detail["type"] = "virtual_server";
  job.detail["name"] = "web01";
  job.detail["ip"] = "192.0.2.18";
  job.created_ms = 1'700'000'000'000;
  job.updated_ms = 1'700'000'005'000;
  job.history = {{101, domain::job_state::kQueued, std::nullopt, 1'700'000'000'000},
                 {102, domain::job_state::kSucceeded, "done, at last", 1'700'000'005'000}};
  return job;
}

Result Of(std::vector<Json> items) {
  Result result;
  result.summary.total = result.summary.returned = static_cast<int64_t>(items.size());
  result.list = std::move(items);
  return result;
}

// ------------------------------------------------------------------ XML

TEST(RenderXmlTest, OptionIsAnObjectWithIdNameDescription) {
  const auto& ram = *domain::FixedLookup("server.ram");
  const std::string body = RenderSuccessXml("/common/lookup/list", Of({OptionJson(ram[0])}));
  EXPECT_EQ(body.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gogrid>\n", 0), 0u) << body;
  auto root = ParseXml(body);
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->name, "gogrid");
  const Element* response = root->Child("response");
  EXPECT_EQ(response->attributes.at("method"), "/common/lookup/list");
  EXPECT_EQ(response->attributes.at("status"), "success");
  const Element* summary = response->Child("summary");
  EXPECT_EQ(summary->attributes.at("total"), "1");
  EXPECT_EQ(summary->attributes.at("start"), "0");
  EXPECT_EQ(summary->attributes.at("numpages"), "0");
  EXPECT_EQ(summary->attributes.at("returned"), "1");
  auto objects = Objects(*root);
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects[0]->attributes.at("name"), "option");
  ASSERT_EQ(objects[0]->children.size(), 3u) << "the object key is not repeated";
  EXPECT_EQ(objects[0]->children[0]->attributes.at("name"), "id");
  EXPECT_EQ(objects[0]->children[1]->attributes.at("name"), "name");
  EXPECT_EQ(objects[0]->children[2]->attributes.at("name"), "description");
  EXPECT_EQ(objects[0]->Attribute("name")->text, ram[0].name);
}

TEST(RenderXmlTest, NullIsAnEmptyElement) {
  const auto& types = *domain::FixedLookup("job.objecttype");
  const std::string body = RenderSuccessXml("/common/lookup/list", Of({OptionJson(types[0])}));
  EXPECT_NE(body.find("<attribute name=\"description\"></attribute>"), std::string::npos) << body;
}

TEST(RenderXmlTest, ServerNestsIpImageAndOptions) {
  const std::string body =
      RenderSuccessXml("/grid/server/get", Of({ServerJson(RunningWebServer(), Context())}));
  auto root = ParseXml(body);
  ASSERT_NE(root, nullptr);
  const Element* server = Objects(*root).at(0);
  EXPECT_EQ(server->attributes.at("name"), "server");
  EXPECT_EQ(server->Attribute("id")->text, "42");
  EXPECT_EQ(server->Attribute("isSandbox")->text, "false");
  const Element* ip = server->Attribute("ip")->Child("object");
  ASSERT_NE(ip, nullptr);
  EXPECT_EQ(ip->attributes.at("name"), "ip");
  EXPECT_EQ(ip->Attribute("ip")->text, "192.0.2.18");
  EXPECT_EQ(ip->Attribute("public")->text, "true");
  EXPECT_EQ(ip->Attribute("state")->Child("object")->attributes.at("name"), "option");
  EXPECT_EQ(ip->Attribute("state")->Child("object")->Attribute("name")->text, "Assigned");
  const Element* image = server->Attribute("image")->Child("object");
  EXPECT_EQ(image->attributes.at("name"), "serverimage");
  const Element* tokens = image->Attribute("billingtokens")->Child("list");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(tokens->children.size(), 1u);
  EXPECT_EQ(tokens->children[0]->attributes.at("name"), "billingtoken");
  EXPECT_EQ(image->Attribute("owner")->Child("object")->attributes.at("name"), "customer");
  EXPECT_EQ(server->Attribute("ram")->Child("object")->Attribute("name")->text, "512MB");
}

TEST(RenderXmlTest, ServerBeingAddedHasNoId) {
  domain::ServerView view = RunningWebServer();
  view.include_id = false;
  auto root = ParseXml(RenderSuccessXml("/grid/server/add", Of({ServerJson(view, Context())})));
  ASSERT_NE(root, nullptr);
  const Element* server = Objects(*root).at(0);
  EXPECT_EQ(server->Attribute("id"), nullptr);
  EXPECT_EQ(server->children.front()->attributes.at("name"), "name");
}

TEST(RenderXmlTest, JobHistoryAndDetail) {
  const std::string body = RenderSuccessXml("/grid/job/get", Of({JobJson(CreateJob(), Context())}));
  auto root = ParseXml(body);
  ASSERT_NE(root, nullptr);
  const Element* job = Objects(*root).at(0);
  EXPECT_EQ(job->attributes.at("name"), "job");
  const Element* history = job->Attribute("history")->Child("list");
  ASSERT_NE(history, nullptr);
  ASSERT_EQ(history->children.size(), 2u);
  EXPECT_EQ(history->children[0]->attributes.at("name"), "job_history");
  EXPECT_EQ(history->children[0]->Attribute("id")->text, "101");
  EXPECT_EQ(history->children[0]->Attribute("state")->Child("object")->Attribute("name")->text,
            "Queued");
  EXPECT_EQ(history->children[1]->Attribute("note")->text, "done, at last");
  EXPECT_EQ(job->Attribute("detail")->text, "{type=virtual_server, name=web01, ip=192.0.2.18}");
  EXPECT_TRUE(job->Attribute("detail")->children.empty());
}

TEST(RenderXmlTest, FailureCarriesAnErrorObject) {
  const std::string body =
      RenderFailureXml("/grid/server/get", ErrorClass::kIllegalArgument, "No <object> found");
  auto root = ParseXml(body);
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->Child("response")->attributes.at("status"), "failure");
  const Element* error = Objects(*root).at(0);
  EXPECT_EQ(error->attributes.at("name"), "error");
  EXPECT_EQ(error->Attribute("message")->text, "No <object> found");
  EXPECT_EQ(error->Attribute("errorcode")->text, "IllegalArgumentException");
}

// Text as a client may have stored it: markup, quotes, separators, a newline, non-ASCII, bytes
// that are not UTF-8 and a control character XML 1.0 cannot carry.
const std::string kHostile = "a<b>&c \"q\" 'a', x\ny Z\xC3\xBCrich \xFF\xC3 \x01 end";
// The same after gridd's repair: each invalid byte and the control character become U+FFFD.
const std::string kRepairedForXml =
    "a<b>&c \"q\" 'a', x\ny Z\xC3\xBCrich \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD end";
const std::string kRepairedForCsv =
    "a<b>&c \"q\" 'a', x\ny Z\xC3\xBCrich \xEF\xBF\xBD\xEF\xBF\xBD \x01 end";

domain::ServerView HostileServer() {
  domain::ServerView view = RunningWebServer();
  view.server.name = kHostile;
  view.server.description = kHostile;
  domain::Image image = *view.image;
  image.description = kHostile;
  view.image = std::make_shared<const domain::Image>(std::move(image));
  return view;
}

TEST(RenderXmlTest, HostileTextStaysWellFormed) {
  const std::string body = RenderSuccessXml(
      "/grid/server/list",
      Of({ServerJson(HostileServer(), Context()), OptionJson({1, kHostile, kHostile})}));
  auto root = ParseXml(body);
  ASSERT_NE(root, nullptr);
  auto objects = Objects(*root);
  EXPECT_EQ(objects.at(0)->Attribute("name")->text, kRepairedForXml);
  EXPECT_EQ(objects.at(0)->Attribute("description")->text, kRepairedForXml);
  EXPECT_EQ(objects.at(0)->Attribute("image")->Child("object")->Attribute("description")->text,
            kRepairedForXml);
  EXPECT_EQ(objects.at(1)->Attribute("description")->text, kRepairedForXml);
  // A hostile method name (echoed for unknown paths) is escaped in the attribute too.
  auto failure = ParseXml(RenderFailureXml("/x\"<&'\x02", ErrorClass::kIllegalArgument, kHostile));
  ASSERT_NE(failure, nullptr);
  EXPECT_EQ(failure->Child("response")->attributes.at("method"), "/x\"<&'\xEF\xBF\xBD");
}

// ------------------------------------------------------------------ CSV

TEST(RenderCsvTest, ServerFlattensNestedObjects) {
  const std::string body =
      RenderSuccessCsv("/grid/server/list", Of({ServerJson(RunningWebServer(), Context())}));
  auto lines = Lines(body);
  ASSERT_EQ(lines.size(), 3u) << body;
  EXPECT_EQ(lines[0], "# SUCCESS, /grid/server/list, TOTAL, 1, START, 0, RETURNED, 1");
  EXPECT_EQ(lines[1], "# id,name,description,ip,image,ram,state,type,os,isSandbox,datacenter");
  EXPECT_EQ(lines[2],
            "42,web01,front end,192.0.2.18,3,512MB,On,Web Server,Debian 12 (64-bit),false,"
            "US-West-1");
}

TEST(RenderCsvTest, JobListsAndMaps) {
  const std::string body = RenderSuccessCsv("/grid/job/get", Of({JobJson(CreateJob(), Context())}));
  auto rows = CsvRows(body);
  ASSERT_EQ(rows.size(), 3u) << body;
  const std::vector<std::string> header = {
      "# id",         "command",  "objecttype", "createdon", "lastupdatedon",
      "currentstate", "attempts", "owner",      "history",   "detail"};
  EXPECT_EQ(rows[1], header);
  ASSERT_EQ(rows[2].size(), header.size());
  EXPECT_EQ(rows[2][1], "CreateVirtualServer");
  EXPECT_EQ(rows[2][8],
            "{id=101, state=Queued, updatedon=1700000000000};"
            "{id=102, state=Succeeded, updatedon=1700000005000, note=done, at last}");
  EXPECT_EQ(rows[2][9], "{type=virtual_server, name=web01, ip=192.0.2.18}");
}

TEST(RenderCsvTest, LoadBalancerPairsAreIpColonPort) {
  domain::LoadBalancerView view;
  view.balancer.id = 9;
  view.balancer.name = "lb";
  view.balancer.port = 80;
  view.vip = RunningWebServer().ip;
  domain::Ip member = RunningWebServer().ip;
  member.address = "10.0.0.5";
  view.members = {{member, 8080}, {member, 8081}};
  auto rows =
      CsvRows(RenderSuccessCsv("/grid/loadbalancer/get", Of({LoadBalancerJson(view, Context())})));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1][3], "virtualip");
  EXPECT_EQ(rows[2][3], "192.0.2.18:80");
  EXPECT_EQ(rows[2][4], "10.0.0.5:8080;10.0.0.5:8081");
}

TEST(RenderCsvTest, HostileTextRoundTrips) {
  const std::string body = RenderSuccessCsv(
      "/grid/server/list",
      Of({ServerJson(HostileServer(), Context()), OptionJson({1, kHostile, kHostile})}));
  auto rows = CsvRows(body);
  ASSERT_EQ(rows.size(), 4u) << body;
  EXPECT_EQ(rows[2][1], kRepairedForCsv);
  EXPECT_EQ(rows[2][2], kRepairedForCsv);
  EXPECT_EQ(rows[2].size(), rows[1].size());
  // The option row follows the server's header; its values are id, name, description.
  EXPECT_EQ(rows[3][0], "1");
  EXPECT_EQ(rows[3][1], kRepairedForCsv);
  EXPECT_EQ(rows[3][2], kRepairedForCsv);
}

TEST(RenderCsvTest, FailureIsMessageAndErrorcode) {
  const std::string body =
      RenderFailureCsv("/grid/server/get", ErrorClass::kIllegalArgument, "No, \"nothing\"");
  auto rows = CsvRows(body);
  ASSERT_EQ(rows.size(), 3u) << body;
  EXPECT_EQ(Lines(body)[0], "# FAILURE, /grid/server/get, TOTAL, 1, START, 0, RETURNED, 1");
  EXPECT_EQ(Lines(body)[1], "# message,errorcode");
  EXPECT_EQ(rows[2], (std::vector<std::string>{"No, \"nothing\"", "IllegalArgumentException"}));
}

// ------------------------------------------------------------------ goldens (exact bytes)

Result ServerList() {
  domain::ServerView second = RunningWebServer();
  second.server.id = 43;
  second.server.name = "db01";
  second.server.description = "back end, \"primary\"";
  second.ip.address = "192.0.2.19";
  second.server.ram = 3;
  Result result = Of({ServerJson(RunningWebServer(), Context()), ServerJson(second, Context())});
  result.summary = Summary{2, 0, 2, 0};
  return result;
}

TEST(RenderFormatsGoldenTest, ServerListXml) {
  gridd::testing::ExpectGolden("api/server_list.xml",
                               RenderSuccessXml("/grid/server/list", ServerList()));
}

TEST(RenderFormatsGoldenTest, ServerListCsv) {
  gridd::testing::ExpectGolden("api/server_list.csv",
                               RenderSuccessCsv("/grid/server/list", ServerList()));
}

TEST(RenderFormatsGoldenTest, FailureXml) {
  gridd::testing::ExpectGolden("api/failure_illegal_argument.xml",
                               RenderFailureXml("/grid/server/get", ErrorClass::kIllegalArgument,
                                                std::string(kNoObjectFound)));
}

TEST(RenderFormatsGoldenTest, FailureCsv) {
  gridd::testing::ExpectGolden("api/failure_illegal_argument.csv",
                               RenderFailureCsv("/grid/server/get", ErrorClass::kIllegalArgument,
                                                std::string(kNoObjectFound)));
}

}  // namespace
}  // namespace gridd::api
