// The JSON, XML and CSV renderers fed hostile strings as method names, object types,
// attribute names and values (nested too) and as error messages: each renders without
// crashing, the JSON parses back to the same strings, and the XML is valid UTF-8 with no
// raw markup or control characters taken from the input.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_input.h"
#include "gridd/api/render.h"

namespace {

// XML 1.0 allows tab, newline and carriage return below U+0020, nothing else.
bool HasXmlControlCharacter(const std::string& text) {
  for (unsigned char c : text) {
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using gridd::api::Json;
  const auto f = gridd::fuzz::SplitFields(data, size, 6);
  const std::string& method = f[0];
  Json object;
  object["object"] = f[1];
  object["id"] = static_cast<int64_t>(size);
  object[f[2]] = f[3];
  object["nested"] = Json{{"object", "option"}, {"name", f[4]}, {"description", f[3]}};
  object["list"] = Json::array({f[4], 1.5, nullptr, true});

  gridd::api::Result result;
  result.list.push_back(object);
  result.list.push_back(Json{{"object", f[1]}, {"name", f[5]}});
  result.summary = {2, 0, 2, 1};

  // JSON: always parses (invalid UTF-8 becomes U+FFFD) and carries valid strings unchanged.
  bool utf8 = true;
  for (const auto& field : f) utf8 = utf8 && gridd::fuzz::IsValidUtf8(field);
  const auto parsed = nlohmann::json::parse(gridd::api::RenderSuccessJson(method, result));
  if (utf8 && parsed.at("list").at(1).at("name") != f[5]) std::abort();
  const auto failure = nlohmann::json::parse(
      gridd::api::RenderFailureJson(method, gridd::ErrorClass::kIllegalArgument, f[5]));
  if (utf8 && failure.at("list").at(0).at("message") != f[5]) std::abort();

  const std::string xml = gridd::api::RenderSuccessXml(method, result);
  const std::string xml_failure =
      gridd::api::RenderFailureXml(method, gridd::ErrorClass::kIllegalArgument, f[5]);
  for (const auto* text : {&xml, &xml_failure}) {
    if (!gridd::fuzz::IsValidUtf8(*text) || HasXmlControlCharacter(*text)) std::abort();
  }
  // Markup in a message is escaped: the document has as many '<' as with the message's '<'
  // replaced by a harmless character (the envelope's own tags, and the method's, are the same).
  std::string tame = f[5];
  std::replace(tame.begin(), tame.end(), '<', '_');
  const std::string xml_tame =
      gridd::api::RenderFailureXml(method, gridd::ErrorClass::kIllegalArgument, tame);
  if (std::count(xml_failure.begin(), xml_failure.end(), '<') !=
      std::count(xml_tame.begin(), xml_tame.end(), '<')) {
    std::abort();
  }

  (void)gridd::api::RenderSuccessCsv(method, result);
  (void)gridd::api::RenderFailureCsv(method, gridd::ErrorClass::kIllegalArgument, f[5]);
  return 0;
}
