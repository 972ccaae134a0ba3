#include "lb/haproxy_cli.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "gridd/common/csv.h"

namespace gridd::lb {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on fd until the deadline; false on timeout.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int ready = poll(&p, 1, static_cast<int>(left));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::vector<std::string_view> SplitWords(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

// "lb_12" → 12 for the given prefix.
bool IdFromName(std::string_view name, std::string_view prefix, int64_t* id) {
  if (name.substr(0, prefix.size()) != prefix) return false;
  return ParseNumber(name.substr(prefix.size()), id);
}

}  // namespace

std::string CliCommand(const std::filesystem::path& socket_path, std::string_view command,
                       std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string path = socket_path.string();
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    throw EngineError("socket path too long for a Unix socket: " + path);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);

  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) throw EngineError("socket: " + std::string(std::strerror(errno)));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      throw EngineError("cannot connect to " + path + ": " + std::strerror(errno));
    }
    if (!WaitFor(fd.get(), POLLOUT, deadline)) {
      throw EngineError("timed out connecting to " + path);
    }
    int error = 0;
    socklen_t length = sizeof(error);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) throw EngineError("cannot connect to " + path + ": " + std::strerror(error));
  }

  std::string request(command);
  request += '\n';
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd.get(), POLLOUT, deadline)) throw EngineError("timed out writing to " + path);
    } else {
      throw EngineError("cannot write to " + path + ": " + std::strerror(errno));
    }
  }
  shutdown(fd.get(), SHUT_WR);

  std::string reply;
  char buffer[16384];
  for (;;) {
    const ssize_t n = recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      reply.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      return reply;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!WaitFor(fd.get(), POLLIN, deadline)) {
        throw EngineError("timed out waiting for the reply of " + path);
      }
    } else {
      throw EngineError("cannot read from " + path + ": " + std::strerror(errno));
    }
  }
}

ProcessTable ParseShowProc(std::string_view text) {
  enum class Section { kMaster, kWorkers, kOldWorkers, kOther } section = Section::kMaster;
  ProcessTable table;
  bool seen_master = false;
  for (std::string_view line : SplitLines(text)) {
    if (line.empty()) continue;
    if (line.front() == '#') {
      if (line == "# workers") {
        section = Section::kWorkers;
      } else if (line == "# old workers") {
        section = Section::kOldWorkers;
      } else if (line.substr(0, 2) == "# ") {
        section = Section::kOther;  // "# programs" and whatever later versions add
      }
      continue;
    }
    const auto words = SplitWords(line);
    pid_t pid = 0;
    if (words.size() < 3 || !ParseNumber(words[0], &pid)) continue;
    if (section == Section::kMaster && words[1] == "master") {
      seen_master = true;
      table.master_pid = pid;
      ParseNumber(words[2], &table.reloads);
      // "<reloads> [failed: <n>]"
      if (words.size() >= 5 && words[3] == "[failed:") {
        std::string_view failed = words[4];
        if (!failed.empty() && failed.back() == ']') failed.remove_suffix(1);
        ParseNumber(failed, &table.failed_reloads);
      }
    } else if (section == Section::kWorkers && words[1] == "worker") {
      table.workers.push_back(pid);
    } else if (section == Section::kOldWorkers && words[1] == "worker") {
      table.old_workers.push_back(pid);
    }
  }
  if (!seen_master) {
    throw EngineError("unexpected reply to show proc: " + std::string(text.substr(0, 200)));
  }
  return table;
}

std::vector<StatRow> ParseShowStat(std::string_view text) {
  std::vector<StatRow> rows;
  int proxy_col = -1, server_col = -1, status_col = -1, sessions_col = -1, in_col = -1,
      out_col = -1;
  for (std::string_view line : SplitLines(text)) {
    if (line.empty()) continue;
    if (line.substr(0, 2) == "# ") {
      const auto names = SplitCsvRecord(line.substr(2));
      for (size_t i = 0; i < names.size(); ++i) {
        const int col = static_cast<int>(i);
        if (names[i] == "pxname") proxy_col = col;
        if (names[i] == "svname") server_col = col;
        if (names[i] == "status") status_col = col;
        if (names[i] == "scur") sessions_col = col;
        if (names[i] == "bin") in_col = col;
        if (names[i] == "bout") out_col = col;
      }
      continue;
    }
    if (proxy_col < 0 || server_col < 0) continue;  // no header (yet): nothing to map
    const auto fields = SplitCsvRecord(line);
    auto field = [&](int col) -> std::string {
      return col >= 0 && static_cast<size_t>(col) < fields.size() ? fields[col] : std::string();
    };
    StatRow row;
    row.proxy = field(proxy_col);
    row.server = field(server_col);
    row.status = field(status_col);
    ParseNumber(field(sessions_col), &row.current_sessions);
    ParseNumber(field(in_col), &row.bytes_in);
    ParseNumber(field(out_col), &row.bytes_out);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::map<int64_t, BalancerStatus> SummarizeStats(const std::vector<StatRow>& rows,
                                                 const std::set<int64_t>& ids) {
  std::map<int64_t, BalancerStatus> out;
  std::set<int64_t> frontends;
  for (const auto& row : rows) {
    int64_t id = 0;
    if (row.server == "FRONTEND" && IdFromName(row.proxy, "lb_", &id) && ids.count(id)) {
      frontends.insert(id);
      out[id].bytes_in = row.bytes_in;
      out[id].bytes_out = row.bytes_out;
    } else if (row.server != "FRONTEND" && row.server != "BACKEND" &&
               IdFromName(row.proxy, "be_", &id) && ids.count(id)) {
      auto& status = out[id];
      ++status.backends_total;
      // "UP 1/3" is up and going down: it still takes traffic.
      if (row.status.rfind("UP", 0) == 0 || row.status == "no check") ++status.backends_up;
    }
  }
  for (int64_t id : ids) {
    auto& status = out[id];
    if (!frontends.count(id)) {
      status = BalancerStatus{};  // kUnknown: the worker does not run it
    } else {
      status.health = status.backends_up > 0 ? BalancerHealth::kUp : BalancerHealth::kNoBackends;
    }
  }
  return out;
}

}  // namespace gridd::lb
