// Small rules every domain service applies the same way: ids, text lengths, and "get by
// selectors" (every match once, in selector order; nothing matched is GoGrid's not-found).
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gridd/common/error.h"
#include "gridd/domain/grid_service.h"

namespace gridd::domain {

inline std::optional<int64_t> ParsePositiveId(std::string_view text) {
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 1) return std::nullopt;
  return value;
}

// GoGrid counts characters: count UTF-8 code points, not bytes.
inline size_t CountCharacters(const std::string& value) {
  size_t characters = 0;
  for (unsigned char c : value) characters += (c & 0xC0) != 0x80;
  return characters;
}

inline void CheckLength(const std::string& value, const std::string& parameter, size_t limit) {
  const size_t characters = CountCharacters(value);
  if (characters > limit) {
    ThrowIllegalArgument("Parameter '" + parameter + "' must be at most " + std::to_string(limit) +
                         " characters (got " + std::to_string(characters) + ")");
  }
}

// A job on one object, owned by the caller; the caller fills in `detail` and `payload`.
inline Job NewJob(const Caller& caller, int64_t object_type, int64_t object_id,
                  const std::string& object_name, int64_t command,
                  std::optional<int64_t> datacenter_id) {
  Job job;
  job.account_id = caller.account_id;
  job.object_type = object_type;
  job.object_id = object_id;
  job.object_name = object_name;
  job.command = command;
  job.owner = caller.JobOwner();
  job.datacenter_id = datacenter_id;
  return job;
}

// Runs `select(selector)` for every selector and `view(object)` for each object not seen yet.
// An object is an entity, or a server read with its IP (store::servers::WithIp).
template <typename View, typename SelectFn, typename ViewFn>
std::vector<View> SelectEach(const std::vector<Selector>& selectors, SelectFn&& select,
                             ViewFn&& view) {
  std::vector<View> out;
  std::set<int64_t> seen;
  for (const auto& selector : selectors) {
    for (const auto& object : select(selector)) {
      int64_t id = 0;
      if constexpr (requires { object.server.id; }) {
        id = object.server.id;
      } else {
        id = object.id;
      }
      if (seen.insert(id).second) out.push_back(view(object));
    }
  }
  if (out.empty()) ThrowIllegalArgument(std::string(kNoObjectFound));
  return out;
}

}  // namespace gridd::domain
