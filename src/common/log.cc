#include "gridd/common/log.h"

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace gridd::log {
namespace {

// Marks a payload written by Event: the marker, then a JSON array [message, k1, v1, k2, v2…].
// The record separator never starts a message anyone writes by hand.
constexpr char kEventMarker = '\x1e';

thread_local Fields context_fields;

void Append(spdlog::memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

// Control characters become escapes, so one event is always one line.
void AppendEscapedText(spdlog::memory_buf_t& dest, std::string_view text) {
  for (unsigned char c : text) {
    if (c == '\n') {
      Append(dest, std::string_view("\\n"));
    } else if (c == '\r') {
      Append(dest, std::string_view("\\r"));
    } else if (c == '\t') {
      Append(dest, std::string_view("\\t"));
    } else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      Append(dest, std::string_view(hex));
    } else {
      dest.push_back(static_cast<char>(c));
    }
  }
}

void AppendTime(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  const size_t size = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  Append(dest, std::string_view(text, size));
  std::snprintf(text, sizeof(text), ".%03dZ", static_cast<int>(millis));
  Append(dest, std::string_view(text));
}

class Formatter : public spdlog::formatter {
 public:
  Formatter(Format format, bool with_time) : format_(format), with_time_(with_time) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const Record record = Decode(std::string_view(msg.payload.data(), msg.payload.size()));
    const auto level_view = spdlog::level::to_string_view(msg.level);
    const std::string_view level(level_view.data(), level_view.size());
    const std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
    if (format_ == Format::kJson) {
      nlohmann::ordered_json line;
      if (with_time_) {
        spdlog::memory_buf_t time;
        AppendTime(time, msg.time);
        line["time"] = std::string(time.data(), time.size());
      }
      line["level"] = std::string(level.data(), level.size());
      line["logger"] = std::string(logger);
      line["msg"] = record.message;
      for (const auto& [key, value] : record.fields) {
        if (!line.contains(key)) line[key] = value;
      }
      const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      Append(dest, std::string_view(text));
    } else {
      if (with_time_) {
        AppendTime(dest, msg.time);
        dest.push_back(' ');
      }
      Append(dest, level);
      dest.push_back(' ');
      Append(dest, logger);
      Append(dest, std::string_view(": "));
      AppendEscapedText(dest, record.message);
      for (const auto& [key, value] : record.fields) {
        dest.push_back(' ');
        AppendEscapedText(dest, key);
        dest.push_back('=');
        if (NeedsQuotes(value)) {
          Append(dest, nlohmann::json(value).dump(-1, ' ', false,
                                                  nlohmann::json::error_handler_t::replace));
        } else {
          Append(dest, std::string_view(value));
        }
      }
    }
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<Formatter>(format_, with_time_);
  }

 private:
  Format format_;
  bool with_time_;
};

}  // namespace

std::optional<Format> ParseFormat(std::string_view text) {
  if (text == "text") return Format::kText;
  if (text == "json") return Format::kJson;
  return std::nullopt;
}

void Event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
           const Fields& fields) {
  if (!logger.should_log(level)) return;
  nlohmann::json parts = nlohmann::json::array();
  parts.push_back(message);
  for (const auto& [key, value] : fields) {
    parts.push_back(key);
    parts.push_back(value);
  }
  std::string payload(1, kEventMarker);
  payload += parts.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  logger.log(level, "{}", payload);
}

ScopedFields::ScopedFields(Fields fields) : previous_size_(context_fields.size()) {
  for (auto& field : fields) context_fields.push_back(std::move(field));
}

ScopedFields::~ScopedFields() { context_fields.resize(previous_size_); }

Record Decode(std::string_view payload) {
  Record record;
  bool decoded = false;
  if (!payload.empty() && payload.front() == kEventMarker) {
    auto parts = nlohmann::json::parse(payload.substr(1), nullptr, /*allow_exceptions=*/false);
    if (parts.is_array() && !parts.empty() && parts.size() % 2 == 1) {
      decoded = true;
      record.message = parts[0].is_string() ? parts[0].get<std::string>() : parts[0].dump();
      for (size_t i = 1; i + 1 < parts.size(); i += 2) {
        auto text = [](const nlohmann::json& part) {
          return part.is_string() ? part.get<std::string>() : part.dump();
        };
        record.fields.emplace_back(text(parts[i]), text(parts[i + 1]));
      }
    }
  }
  if (!decoded) record.message = std::string(payload);
  for (const auto& field : context_fields) record.fields.push_back(field);
  return record;
}

std::unique_ptr<spdlog::formatter> MakeFormatter(Format format, bool with_time) {
  return std::make_unique<Formatter>(format, with_time);
}

}  // namespace gridd::log
