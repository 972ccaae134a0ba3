#include "daemon/logging.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "gridd/common/log.h"

namespace gridd::daemon {
namespace {

int SyslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return LOG_DEBUG;
    case spdlog::level::info:
      return LOG_INFO;
    case spdlog::level::warn:
      return LOG_WARNING;
    case spdlog::level::err:
      return LOG_ERR;
    case spdlog::level::critical:
      return LOG_CRIT;
    default:
      return LOG_INFO;
  }
}

// Journal field names are upper-case letters, digits and underscores, not starting with one.
std::string JournalFieldName(const std::string& key) {
  std::string name = "GRIDD_";
  for (char c : key) {
    name += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_';
  }
  return name;
}

// Sends each line to the journal with its fields as journal fields (GRIDD_REQUEST_ID=…), so
// `journalctl -u gridd GRIDD_REQUEST_ID=…` finds a request. MESSAGE is the formatted line
// without the time, which the journal records itself.
class JournaldSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::string text(formatted.data(), formatted.size());
    while (!text.empty() && text.back() == '\n') text.pop_back();

    const log::Record record =
        log::Decode(std::string_view(msg.payload.data(), msg.payload.size()));
    std::vector<std::string> fields = {
        "MESSAGE=" + text,
        "PRIORITY=" + std::to_string(SyslogPriority(msg.level)),
        "SYSLOG_IDENTIFIER=gridd",
        "GRIDD_LOGGER=" + std::string(msg.logger_name.data(), msg.logger_name.size()),
    };
    for (const auto& [key, value] : record.fields)
      fields.push_back(JournalFieldName(key) + "=" + value);
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (auto& field : fields) iov.push_back(iovec{field.data(), field.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
  }
  void flush_() override {}
};

}  // namespace

bool ConnectedToJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && st.st_dev == device && st.st_ino == inode) return true;
  }
  return false;
}

void SetupLogging(const Config& config) {
  const bool journal =
      config.log_output == "journald" || (config.log_output == "auto" && ConnectedToJournal());
  const log::Format format = log::ParseFormat(config.log_format).value_or(log::Format::kText);
  spdlog::sink_ptr sink;
  if (journal) {
    sink = std::make_shared<JournaldSink>();
    sink->set_formatter(log::MakeFormatter(format, /*with_time=*/false));
  } else {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    sink->set_formatter(log::MakeFormatter(format));
  }
  spdlog::drop_all();
  auto main_logger = std::make_shared<spdlog::logger>("gridd", sink);
  auto access_logger = std::make_shared<spdlog::logger>("access", sink);
  spdlog::register_logger(access_logger);
  spdlog::set_default_logger(main_logger);
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace gridd::daemon
