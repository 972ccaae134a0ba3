#include "gridd/api/params.h"

#include <algorithm>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/pct_string_view.hpp>
#include <cctype>
#include <string>

#include "gridd/common/error.h"

namespace gridd::api {
namespace {

constexpr std::string_view kFormUrlEncoded = "application/x-www-form-urlencoded";
// Enough of the offending text to find it, not enough to flood a log line.
constexpr size_t kMaxQuotedBytes = 64;

std::string Decode(std::string_view encoded, std::string_view segment) {
  auto pct = boost::urls::make_pct_string_view(encoded);
  if (!pct) {
    std::string quoted(segment.substr(0, kMaxQuotedBytes));
    if (segment.size() > kMaxQuotedBytes) quoted += "...";
    throw ApiError(ErrorClass::kIllegalArgument, "Malformed parameter encoding: " + quoted);
  }
  boost::urls::encoding_opts opts;
  opts.space_as_plus = true;  // HTML forms and most GoGrid clients send spaces as '+'
  return pct->decode(opts);
}

bool IsFormContentType(std::string_view content_type) {
  auto not_space = [](char c) { return c != ' ' && c != '\t'; };
  auto first = std::find_if(content_type.begin(), content_type.end(), not_space);
  content_type.remove_prefix(static_cast<size_t>(first - content_type.begin()));
  while (!content_type.empty() && !not_space(content_type.back())) content_type.remove_suffix(1);
  if (content_type.empty()) return true;  // a form posted without saying so
  if (content_type.size() < kFormUrlEncoded.size()) return false;
  for (size_t i = 0; i < kFormUrlEncoded.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(content_type[i])) != kFormUrlEncoded[i]) {
      return false;
    }
  }
  // "application/x-www-form-urlencoded; charset=UTF-8" yes, "...-urlencodedfoo" no.
  if (content_type.size() == kFormUrlEncoded.size()) return true;
  char next = content_type[kFormUrlEncoded.size()];
  return next == ';' || next == ' ' || next == '\t';
}

}  // namespace

Params Params::ParseUrlEncoded(std::string_view text) {
  // Split by hand rather than with boost::urls::parse_query: that one rejects characters real
  // clients leave unescaped ('|', '"', '{', ...), while only broken escapes are worth refusing.
  // Boost.URL still validates and decodes every escape.
  Params params;
  while (!text.empty()) {
    size_t amp = text.find('&');
    std::string_view segment = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (segment.empty()) continue;  // "a=1&&b=2"
    size_t eq = segment.find('=');
    std::string_view key = segment.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : segment.substr(eq + 1);
    params.Add(Decode(key, segment), Decode(value, segment));
  }
  return params;
}

Params Params::FromRequest(std::string_view target, std::string_view content_type,
                           std::string_view body) {
  Params params;
  size_t question = target.find('?');
  if (question != std::string_view::npos) params = ParseUrlEncoded(target.substr(question + 1));
  if (IsFormContentType(content_type)) {
    // Some clients end the form with a line break; it is not part of the last value.
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
    Params form = ParseUrlEncoded(body);
    for (auto& [name, value] : form.pairs_) params.Add(std::move(name), std::move(value));
  }
  return params;
}

std::optional<std::string> Params::Get(std::string_view name) const {
  for (const auto& [key, value] : pairs_) {
    if (key == name) return value;
  }
  return std::nullopt;
}

std::vector<std::string> Params::GetAll(std::string_view name) const {
  std::vector<std::string> values;
  for (const auto& [key, value] : pairs_) {
    if (key == name) values.push_back(value);
  }
  return values;
}

bool Params::Has(std::string_view name) const {
  return std::any_of(pairs_.begin(), pairs_.end(),
                     [name](const auto& pair) { return pair.first == name; });
}

std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

}  // namespace gridd::api
