// format=xml and format=csv through the real daemon over HTTP (spec §5): content types, the
// envelope shape, well-formed XML, and errors in the requested format.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "integration/grid_client_util.h"
#include "support/daemon_process.h"

namespace gridd::testing {
namespace {

// Checks that `body` is one well-formed XML document as gridd writes it: the declaration, then
// properly nested elements with quoted attributes, only the predefined entities, valid UTF-8.
// Returns an empty string when it is, else what is wrong.
std::string XmlProblem(std::string_view body) {
  const std::string_view declaration = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
  if (body.substr(0, declaration.size()) != declaration) return "no XML declaration";
  for (size_t i = 0; i < body.size();) {
    const auto lead = static_cast<unsigned char>(body[i]);
    const size_t length = lead < 0x80             ? 1
                          : (lead & 0xE0) == 0xC0 ? 2
                          : (lead & 0xF0) == 0xE0 ? 3
                          : (lead & 0xF8) == 0xF0 ? 4
                                                  : 0;
    if (length == 0 || i + length > body.size()) return "invalid UTF-8";
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(body[i + k]) & 0xC0) != 0x80) return "invalid UTF-8";
    }
    if (length == 1 && lead < 0x20 && lead != '\t' && lead != '\n' && lead != '\r') {
      return "control character";
    }
    i += length;
  }
  std::vector<std::string> open;
  bool seen_root = false;
  size_t pos = declaration.size();
  auto name_at = [&](size_t& p) {
    const size_t start = p;
    while (p < body.size() && (std::isalnum(static_cast<unsigned char>(body[p])) || body[p] == '_'))
      ++p;
    return std::string(body.substr(start, p - start));
  };
  auto entity_ok = [&](size_t p) {
    for (std::string_view entity : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) {
      if (body.substr(p, entity.size()) == entity) return true;
    }
    return false;
  };
  while (pos < body.size()) {
    const char c = body[pos];
    if (c != '<') {
      if (open.empty() && std::string_view(" \t\r\n").find(c) == std::string_view::npos) {
        return "text outside the root element";
      }
      if (c == '>') return "bare '>'";
      if (c == '&' && !entity_ok(pos)) return "bad entity";
      ++pos;
      continue;
    }
    if (body.substr(pos, 2) == "</") {
      pos += 2;
      const std::string name = name_at(pos);
      if (open.empty() || open.back() != name || pos >= body.size() || body[pos] != '>') {
        return "mismatched end tag " + name;
      }
      open.pop_back();
      ++pos;
      continue;
    }
    ++pos;
    if (open.empty() && seen_root) return "second root element";
    const std::string name = name_at(pos);
    if (name.empty()) return "empty element name";
    seen_root = true;
    while (true) {
      while (pos < body.size() && body[pos] == ' ') ++pos;
      if (body.substr(pos, 2) == "/>") {
        pos += 2;
        break;
      }
      if (pos < body.size() && body[pos] == '>') {
        ++pos;
        open.push_back(name);
        break;
      }
      if (name_at(pos).empty() || body.substr(pos, 2) != "=\"") return "bad attribute in " + name;
      pos += 2;
      while (pos < body.size() && body[pos] != '"') {
        if (body[pos] == '<') return "'<' in attribute value";
        if (body[pos] == '&' && !entity_ok(pos)) return "bad entity in attribute value";
        ++pos;
      }
      if (pos >= body.size()) return "unterminated attribute value";
      ++pos;
    }
  }
  if (!open.empty()) return "unclosed element " + open.back();
  if (!seen_root) return "no root element";
  return "";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    out.push_back(text.substr(start, end - start));
  }
  EXPECT_EQ(start, text.size()) << "the last line must end with \\n";
  return out;
}

class FormatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.Start();
    client_ = std::make_unique<ApiClient>(daemon_.Client());
    auto ips = FreePublicIps(*client_);
    ASSERT_FALSE(ips.empty());
    CallOk(*client_, "grid/server/add",
           {{"name", "fmt, \"one\" <&>"},
            {"image", "debian-12-amd64"},
            {"server.ram", "512MB"},
            {"ip", ips[0]},
            {"description", "Z\xC3\xBCrich\nline two"}},
           "POST");
  }

  DaemonProcess daemon_;
  std::unique_ptr<ApiClient> client_;
};

struct Case {
  std::string method;
  Params params;
  std::string method_name;
  unsigned status;
};

const std::vector<Case> kCases = {
    {"grid/server/list", {}, "/grid/server/list", 200},
    {"grid/ip/list", {}, "/grid/ip/list", 200},
    {"common/lookup/list", {{"lookup", "server.ram"}}, "/common/lookup/list", 200},
    {"grid/server/get", {{"id", "999999"}}, "/grid/server/get", 400},
};

TEST_F(FormatsTest, XmlEnvelopesAreWellFormed) {
  for (const auto& call : kCases) {
    SCOPED_TRACE(call.method);
    Params params = call.params;
    params.emplace_back("format", "xml");
    auto reply = client_->Call(call.method, params);
    EXPECT_EQ(reply.status, call.status) << reply.body;
    EXPECT_EQ(reply.content_type, "text/xml; charset=UTF-8");
    EXPECT_EQ(XmlProblem(reply.body), "") << reply.body;
    const std::string status = call.status == 200 ? "success" : "failure";
    EXPECT_NE(
        reply.body.find("<response method=\"" + call.method_name + "\" status=\"" + status + "\">"),
        std::string::npos)
        << reply.body;
    EXPECT_NE(reply.body.find("<summary total="), std::string::npos);
    if (call.status != 200) {
      EXPECT_NE(reply.body.find("<object name=\"error\">"), std::string::npos) << reply.body;
      EXPECT_NE(reply.body.find("No object found"), std::string::npos) << reply.body;
    }
  }
  auto servers = client_->Call("grid/server/list", {{"format", "xml"}});
  EXPECT_NE(servers.body.find("fmt, &quot;one&quot; &lt;&amp;&gt;"), std::string::npos)
      << servers.body;
  EXPECT_NE(servers.body.find("<object name=\"server\">"), std::string::npos);
  auto lookup = client_->Call("common/lookup/list", {{"lookup", "server.ram"}, {"format", "xml"}});
  EXPECT_NE(lookup.body.find("<attribute name=\"name\">512MB</attribute>"), std::string::npos)
      << lookup.body;
}

TEST_F(FormatsTest, CsvEnvelopesStartWithTheSummaryLine) {
  for (const auto& call : kCases) {
    SCOPED_TRACE(call.method);
    Params params = call.params;
    params.emplace_back("format", "csv");
    auto reply = client_->Call(call.method, params);
    EXPECT_EQ(reply.status, call.status) << reply.body;
    EXPECT_EQ(reply.content_type, "text/csv; charset=UTF-8");
    auto lines = Lines(reply.body);
    ASSERT_GE(lines.size(), 2u) << reply.body;
    const std::string status = call.status == 200 ? "SUCCESS" : "FAILURE";
    EXPECT_EQ(lines[0].rfind("# " + status + ", " + call.method_name + ", TOTAL, ", 0), 0u)
        << lines[0];
    EXPECT_NE(lines[0].find(", START, "), std::string::npos);
    EXPECT_NE(lines[0].find(", RETURNED, "), std::string::npos);
    EXPECT_EQ(lines[1].rfind("# ", 0), 0u);
    if (call.status != 200) {
      EXPECT_EQ(lines[1], "# message,errorcode");
      ASSERT_EQ(lines.size(), 3u);
      EXPECT_NE(lines[2].find("IllegalArgumentException"), std::string::npos);
    }
  }
  auto lookup = client_->Call("common/lookup/list", {{"lookup", "server.ram"}, {"format", "csv"}});
  auto lines = Lines(lookup.body);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[1], "# id,name,description");
  auto servers = client_->Call("grid/server/list", {{"format", "CSV"}});
  EXPECT_EQ(servers.content_type, "text/csv; charset=UTF-8");
  EXPECT_NE(servers.body.find("\"fmt, \"\"one\"\" <&>\""), std::string::npos) << servers.body;
  EXPECT_NE(servers.body.find("\"Z\xC3\xBCrich\nline two\""), std::string::npos) << servers.body;
}

TEST_F(FormatsTest, AuthAndRoutingErrorsUseTheRequestedFormat) {
  auto unknown = client_->Call("grid/server/explode", {{"format", "xml"}});
  EXPECT_EQ(unknown.status, 400u);
  EXPECT_EQ(unknown.content_type, "text/xml; charset=UTF-8");
  EXPECT_EQ(XmlProblem(unknown.body), "") << unknown.body;
  auto denied = client_->Call("grid/server/list", {{"format", "csv"}, {"sig", "0"}});
  EXPECT_EQ(denied.status, 403u);
  EXPECT_EQ(denied.content_type, "text/csv; charset=UTF-8");
  EXPECT_EQ(denied.body.rfind("# FAILURE, /grid/server/list, ", 0), 0u) << denied.body;
  auto yaml = client_->Call("grid/server/list", {{"format", "yaml"}});
  EXPECT_EQ(yaml.status, 400u);
  EXPECT_EQ(yaml.content_type, "application/json; charset=UTF-8");
}

}  // namespace
}  // namespace gridd::testing
