// format=xml and format=csv for every routed method and for every kind of error, parsed with
// real parsers (Python's xml.etree and csv modules) and compared with the JSON answer: the
// same objects, keys and values, whatever text is stored (markup, quotes, commas, newlines,
// non-ASCII), with the right Content-Type.
#include <gtest/gtest.h>

#include <set>

#include "integration/api_world.h"

namespace gridd::testing {
namespace {

using nlohmann::json;

class ApiFormatsTest : public ApiWorldTest<ApiFormatsTest> {};

std::string Text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();
}

bool SameScalar(const json& expected, const std::string& text) {
  if (expected.is_number()) {
    try {
      size_t used = 0;
      const double parsed = std::stod(text, &used);
      return used == text.size() && parsed == expected.get<double>();
    } catch (const std::exception&) {
      return false;
    }
  }
  return Text(expected) == text;
}

// What XML (spec §5.1) read back must be for the JSON value `expected`; `with_values` false
// compares only the structure (for two different calls of a method that changes something).
void ExpectXmlMatches(const json& expected, const json& xml, const std::string& path,
                      bool with_values) {
  if (expected.is_object() && !expected.contains("object") && !path.ends_with("]")) {
    // An untyped map (a job's detail) is one text in Java's Map.toString() form.
    ASSERT_TRUE(xml.is_string()) << path;
    EXPECT_TRUE(xml.get<std::string>().starts_with("{")) << path << ": " << xml;
    return;
  }
  if (expected.is_object()) {
    ASSERT_TRUE(xml.is_object()) << path << ": " << xml;
    std::set<std::string> keys, xml_keys;
    for (const auto& [key, value] : expected.items()) {
      if (key != "object") keys.insert(key);
    }
    for (const auto& [key, value] : xml.items()) {
      if (key != "object") xml_keys.insert(key);
    }
    EXPECT_EQ(xml_keys, keys) << path;
    if (expected.contains("object")) {
      EXPECT_EQ(xml["object"], expected["object"]) << path;
    }
    for (const auto& key : keys) {
      if (xml.contains(key))
        ExpectXmlMatches(expected[key], xml[key], path + "." + key, with_values);
    }
    return;
  }
  if (expected.is_array()) {
    ASSERT_TRUE(xml.is_array()) << path << ": " << xml;
    if (with_values) {
      ASSERT_EQ(xml.size(), expected.size()) << path;
    }
    for (size_t i = 0; i < std::min(xml.size(), expected.size()); ++i) {
      ExpectXmlMatches(expected[i], xml[i], path + "[" + std::to_string(i) + "]", with_values);
    }
    return;
  }
  ASSERT_TRUE(xml.is_string()) << path << ": " << xml;
  if (with_values) {
    EXPECT_TRUE(SameScalar(expected, xml)) << path << ": " << xml << " vs " << expected;
  }
}

// One CSV field for a JSON value, as spec §5.2 recommends: an option by its name, an ip by
// its address, an ip/port pair as ip:port, other typed objects by id, lists ';'-joined.
std::string CsvValue(const json& value) {
  if (value.is_array()) {
    std::string out;
    for (size_t i = 0; i < value.size(); ++i) out += (i ? ";" : "") + CsvValue(value[i]);
    return out;
  }
  if (!value.is_object()) return Text(value);
  const std::string type = value.value("object", "");
  if (type == "option") return Text(value["name"]);
  if (type == "ip") return Text(value["ip"]);
  if (type == "ipportpair") return CsvValue(value["ip"]) + ":" + Text(value["port"]);
  if (type.empty()) {
    // An untyped map (job detail, history entry) as Java's Map.toString(), in gridd's key order.
    std::string out = "{";
    for (const auto& [key, item] : value.items()) {
      out += (out.size() > 1 ? ", " : "") + key + "=" + CsvValue(item);
    }
    return out + "}";
  }
  return value.contains("id") ? Text(value["id"]) : Text(value["name"]);
}

void ExpectCsvMatches(const json& expected, const json& csv, bool with_values) {
  EXPECT_EQ(csv["status"], expected["status"]);
  EXPECT_EQ(csv["method"], expected["method"]);
  for (const char* key : {"total", "start", "returned"}) {
    EXPECT_EQ(csv["summary"][key], expected["summary"][key]) << key;
  }
  const auto& list = expected["list"];
  ASSERT_EQ(csv["rows"].size(), list.size());
  std::set<std::string> keys;
  if (!list.empty()) {
    for (const auto& [key, value] : list[0].items()) {
      if (key != "object") keys.insert(key);
    }
  }
  const auto header = csv["header"].get<std::vector<std::string>>();
  EXPECT_EQ(std::set<std::string>(header.begin(), header.end()), keys);
  EXPECT_EQ(header.size(), keys.size()) << "a column named twice";
  for (size_t row = 0; row < list.size(); ++row) {
    const auto fields = csv["rows"][row].get<std::vector<std::string>>();
    ASSERT_EQ(fields.size(), header.size()) << "row " << row;
    if (!with_values) continue;
    for (size_t column = 0; column < header.size(); ++column) {
      const std::string& key = header[column];
      SCOPED_TRACE("row " + std::to_string(row) + " column " + key);
      const json& value = list[row].contains(key) ? list[row][key] : json();
      const std::string want = CsvValue(value);
      if (want.starts_with("{")) {
        // Map.toString() keeps gridd's key order; the parsed JSON sorts keys: compare parts.
        for (const auto& [key, item] : value.is_array() ? value[0].items() : value.items()) {
          EXPECT_NE(fields[column].find(key + "=" + CsvValue(item)), std::string::npos)
              << fields[column];
        }
      } else if (value.is_number()) {
        EXPECT_TRUE(SameScalar(value, fields[column])) << fields[column] << " vs " << value;
      } else {
        EXPECT_EQ(fields[column], want);
      }
    }
  }
}

// Calls `method` in `format`, checks status, Content-Type and that the real parser takes it.
json CallParsed(ApiClient& client, const std::string& method, Params params,
                const std::string& format, unsigned status) {
  params.emplace_back("format", format);
  auto reply = client.Call(method, params, "POST");
  EXPECT_EQ(reply.status, status) << reply.body;
  EXPECT_EQ(reply.content_type,
            (format == "xml" ? "text/xml" : "text/csv") + std::string("; charset=UTF-8"));
  std::string problem;
  auto parsed = ParseWithPython(format, reply.body, problem);
  EXPECT_EQ(problem, "") << reply.body;
  return parsed;
}

TEST_F(ApiFormatsTest, EveryMethodInXmlAndCsvSaysWhatItsJsonSays) {
  ApiWorld& world = *world_;
  for (const auto& method : EveryMethod()) {
    SCOPED_TRACE(method.method);
    // Reads compare with the JSON answer value by value: nothing may move in between.
    if (!method.mutates) world.WaitForJobs();
    const Params first_params = method.params(world);
    const auto json_body = CallOk(world.super(), method.method, first_params, "POST");
    ASSERT_FALSE(json_body["list"].empty());
    // A method that changes something is called afresh for each format; the answers can then
    // only agree in shape, not in ids and names.
    const bool same_call = !method.mutates;
    for (const std::string format : {"xml", "csv"}) {
      SCOPED_TRACE(format);
      const Params params = method.mutates ? method.params(world) : first_params;
      const auto parsed = CallParsed(world.super(), method.method, params, format, 200);
      if (parsed.is_null()) continue;
      if (format == "xml") {
        EXPECT_EQ(parsed["method"], json_body["method"]);
        EXPECT_EQ(parsed["status"], "success");
        for (const char* key : {"total", "start", "returned", "numpages"}) {
          if (same_call) {
            EXPECT_EQ(parsed["summary"][key], json_body["summary"][key]) << key;
          }
        }
        ExpectXmlMatches(json_body["list"], parsed["list"], "list", same_call);
      } else {
        if (same_call) {
          ExpectCsvMatches(json_body, parsed, true);
        } else {
          EXPECT_EQ(parsed["status"], "success");
          EXPECT_EQ(parsed["method"], json_body["method"]);
        }
      }
    }
  }
}

TEST_F(ApiFormatsTest, HostileTextSurvivesBothFormatsExactly) {
  ApiWorld& world = *world_;
  const Params get = {{"id", std::to_string(world.hostile_id())}};
  const auto xml = CallParsed(world.super(), "grid/server/get", get, "xml", 200);
  ASSERT_FALSE(xml.is_null());
  EXPECT_EQ(xml["list"][0]["name"], kHostileName);
  EXPECT_EQ(xml["list"][0]["description"], kHostileDescription);
  const auto csv = CallParsed(world.super(), "grid/server/get", get, "csv", 200);
  ASSERT_FALSE(csv.is_null());
  const auto header = csv["header"].get<std::vector<std::string>>();
  const auto row = csv["rows"][0].get<std::vector<std::string>>();
  const auto column = [&](const std::string& key) {
    return static_cast<size_t>(std::find(header.begin(), header.end(), key) - header.begin());
  };
  ASSERT_LT(column("name"), row.size());
  ASSERT_LT(column("description"), row.size());
  EXPECT_EQ(row[column("name")], kHostileName);
  EXPECT_EQ(row[column("description")], kHostileDescription);
  // The password list nests the server: its name travels inside another object.
  const auto passwords = CallParsed(world.super(), "support/password/list", {}, "xml", 200);
  bool found = false;
  for (const auto& password : passwords["list"])
    found |= password["server"]["name"] == kHostileName;
  EXPECT_TRUE(found);
}

TEST_F(ApiFormatsTest, EveryKindOfErrorInXmlAndCsv) {
  ApiWorld& world = *world_;
  ApiClient forged(world.daemon().host(), world.daemon().port());
  forged.SetCredentials(world.super().api_key(), "not-the-secret");
  struct ErrorCase {
    std::string label;
    ApiClient* client;
    std::string method;
    Params params;
    unsigned status;
    std::string errorcode;
  };
  std::vector<ErrorCase> cases;
  for (const auto& method : EveryMethod()) {
    // Every method refuses an unknown version before anything else it checks.
    cases.push_back({"bad version",
                     &world.super(),
                     method.method,
                     {{"v", "0.9"}},
                     400,
                     "IllegalArgumentException"});
    cases.push_back({"bad signature", &forged, method.method, {}, 403, "AuthenticationFailed"});
    if (method.mutates) {
      cases.push_back({"role", &world.As("Read Only User"), method.method, method.params(world),
                       401, "Unauthorized"});
    }
  }
  cases.push_back({"bad parameter",
                   &world.super(),
                   "grid/server/get",
                   {{"id", "x<&>\","}},
                   400,
                   "IllegalArgumentException"});
  cases.push_back({"unknown method",
                   &world.super(),
                   "grid/server/explode",
                   {},
                   400,
                   "IllegalArgumentException"});
  for (const auto& error : cases) {
    SCOPED_TRACE(error.label + " " + error.method);
    const auto expected = error.client->Call(error.method, error.params, "POST").json();
    ASSERT_EQ(expected["status"], "failure");
    const std::string message = expected["list"][0]["message"];
    const std::string errorcode = expected["list"][0]["errorcode"];
    const auto xml = CallParsed(*error.client, error.method, error.params, "xml", error.status);
    if (!xml.is_null()) {
      EXPECT_EQ(xml["status"], "failure");
      EXPECT_EQ(xml["method"], "/" + error.method);
      ASSERT_EQ(xml["list"].size(), 1u);
      EXPECT_EQ(xml["list"][0]["object"], "error");
      EXPECT_EQ(xml["list"][0]["message"], message);
      EXPECT_EQ(xml["list"][0]["errorcode"], errorcode);
    }
    const auto csv = CallParsed(*error.client, error.method, error.params, "csv", error.status);
    if (!csv.is_null()) {
      EXPECT_EQ(csv["status"], "failure");
      EXPECT_EQ(csv["method"], "/" + error.method);
      EXPECT_EQ(csv["header"], json({"message", "errorcode"}));
      ASSERT_EQ(csv["rows"].size(), 1u);
      EXPECT_EQ(csv["rows"][0], json({message, errorcode}));
    }
  }
}

}  // namespace
}  // namespace gridd::testing
