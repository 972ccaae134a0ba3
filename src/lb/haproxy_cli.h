// HAProxy's command sockets: the master CLI (-S, process management) and the worker stats
// socket (show stat). Used by the engine and by tests that need to find haproxy's pids.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gridd/lb/engine.h"

namespace gridd::lb {

// Sends one command and returns the whole reply. The write side is shut down after the command:
// haproxy 2.6's master CLI keeps the connection open until then. Throws EngineError on connect
// failure or when no complete reply arrives within `timeout` (the master drops or stalls its
// socket while it re-executes itself during a reload).
std::string CliCommand(const std::filesystem::path& socket_path, std::string_view command,
                       std::chrono::milliseconds timeout);

// The master CLI's `show proc`.
struct ProcessTable {
  pid_t master_pid = 0;
  int reloads = 0;                 // reloads of the master since it started
  int failed_reloads = 0;          // reloads that failed since the last successful one
  std::vector<pid_t> workers;      // the current worker (one in 2.6)
  std::vector<pid_t> old_workers;  // workers from before a reload, finishing their connections
};

// Throws EngineError when the text is not a `show proc` reply.
ProcessTable ParseShowProc(std::string_view text);

// One row of `show stat`, with the columns the engine reads.
struct StatRow {
  std::string proxy;              // pxname: lb_<id>, be_<id>
  std::string server;             // svname: FRONTEND, BACKEND or a server name
  std::string status;             // UP, DOWN, "UP 1/3", "no check", MAINT, OPEN, ...
  uint64_t current_sessions = 0;  // scur: what leastconn balances on
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// Parses the CSV reply of `show stat`, locating columns by the header line.
std::vector<StatRow> ParseShowStat(std::string_view text);

// Folds the rows into a status for each of `ids` (the installed balancers); an id the rows do
// not mention is kUnknown.
std::map<int64_t, BalancerStatus> SummarizeStats(const std::vector<StatRow>& rows,
                                                 const std::set<int64_t>& ids);

}  // namespace gridd::lb
