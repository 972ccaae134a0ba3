// Structured logging on top of spdlog. A log line has a time, a level, the logger's name, a
// message and fields (key=value): those given with the line (Event) and those of the thread's
// current context (ScopedFields, e.g. the request id while a request is handled). The
// formatter writes them as readable text or as one JSON object per line; the journald sink of
// the daemon sends them as journal fields.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gridd::log {

using Fields = std::vector<std::pair<std::string, std::string>>;

enum class Format { kText, kJson };
// "text" or "json"; nullopt otherwise.
std::optional<Format> ParseFormat(std::string_view text);

// Logs `message` with `fields` through `logger`.
void Event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
           const Fields& fields);

// Adds fields to every line this thread logs until the object is destroyed. Nests.
class ScopedFields {
 public:
  explicit ScopedFields(Fields fields);
  ~ScopedFields();
  ScopedFields(const ScopedFields&) = delete;
  ScopedFields& operator=(const ScopedFields&) = delete;

 private:
  size_t previous_size_;
};

// A line taken apart: the message and every field (the line's own, then the context's).
struct Record {
  std::string message;
  Fields fields;
};
// Splits an spdlog payload written by Event (or plain text) and adds the calling thread's
// context fields. Sinks that format in the logging thread (all of gridd's) see the context.
Record Decode(std::string_view payload);

// Text: "2026-01-02T03:04:05.678+0000 info gridd: message key=value key=\"two words\"".
// JSON: {"time":"…","level":"info","logger":"gridd","msg":"message","key":"value"}.
// `with_time` false leaves out the time (journald stamps lines itself).
std::unique_ptr<spdlog::formatter> MakeFormatter(Format format, bool with_time = true);

}  // namespace gridd::log
