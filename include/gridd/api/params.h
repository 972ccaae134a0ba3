// Request parameters: the query string and an application/x-www-form-urlencoded body merged in
// that order, percent-decoded, with repeated keys kept in the order they came.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gridd::api {

class Params {
 public:
  Params() = default;
  explicit Params(std::vector<std::pair<std::string, std::string>> pairs)
      : pairs_(std::move(pairs)) {}

  // Parses "a=1&b=2&a=3" (no leading '?'). '+' means space. Throws gridd::ApiError
  // (IllegalArgument) on malformed percent-encoding.
  static Params ParseUrlEncoded(std::string_view text);
  // The query string of `target` followed by `body` when content_type is form-urlencoded
  // (or absent, since some clients post a form without saying so).
  static Params FromRequest(std::string_view target, std::string_view content_type,
                            std::string_view body);

  // First value of `name`, if present.
  std::optional<std::string> Get(std::string_view name) const;
  // Every value of `name`, in order.
  std::vector<std::string> GetAll(std::string_view name) const;
  bool Has(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }
  void Add(std::string name, std::string value) {
    pairs_.emplace_back(std::move(name), std::move(value));
  }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

// The path of a request target without its query string, e.g. "/api/grid/server/list".
std::string_view PathOf(std::string_view target);

}  // namespace gridd::api
