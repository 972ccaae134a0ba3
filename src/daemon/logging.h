// The daemon's log sinks: the console (standard output) or the systemd journal, with gridd's
// structured formatter (log.format) on every logger.
#pragma once

#include "gridd/common/config.h"

namespace gridd::daemon {

// True when standard output or standard error is connected to the journal, i.e. gridd runs
// as a systemd service (systemd sets JOURNAL_STREAM to the stream's device and inode).
bool ConnectedToJournal();

// Replaces spdlog's default logger with "gridd" and registers "access", both writing to the
// output config.log_output names ("auto": the journal when ConnectedToJournal()).
void SetupLogging(const Config& config);

}  // namespace gridd::daemon
