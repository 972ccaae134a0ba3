// GoGrid's option catalogue (spec §10): the fixed enumerations with the provider's ids, which
// clients switch on, and the names by which every option may also be given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gridd::domain {

struct Option {
  int64_t id = 0;
  std::string name;
  std::optional<std::string> description;  // some options have a null description
};

// Ids of the fixed enumerations used throughout gridd.
namespace server_state {
inline constexpr int64_t kOn = 1, kStarting = 2, kOff = 3, kStopping = 4, kRestarting = 5,
                         kSaving = 6, kRestoring = 7, kUpdating = 8, kOnSaving = 9, kOffSaving = 10;
}
namespace ip_state {
inline constexpr int64_t kUnassigned = 1, kAssigned = 2;
}
namespace ip_type {
inline constexpr int64_t kPublic = 1, kPrivate = 2;
}
namespace image_state {
inline constexpr int64_t kSaving = 1, kAvailable = 2, kDeleted = 3, kTrash = 4, kMigrating = 7;
}
namespace job_state {
inline constexpr int64_t kQueued = 1, kProcessing = 2, kSucceeded = 3, kFailed = 4, kCanceled = 5,
                         kFatal = 6, kCreated = 7;
}
namespace job_command {
inline constexpr int64_t
    kStartVirtualServer = 1,
    kStopVirtualServer = 2, kRestartVirtualServer = 3, kUpdateVirtualServer = 4,
    kSaveServerImage = 5, kCreateVirtualServer = 6, kDeleteVirtualServer = 7,
    kDeleteServerImage = 8, kRestoreServerImage = 9, kCreateLoadBalancer = 10,
    kUpdateLoadBalancer = 11, kDeleteLoadBalancer = 12,
    // gridd's own: a repair found by the reconciler (docs/api.md).
    kReconcileVirtualServer = 13,
    // gridd's own: a server re-created on another host (gridctl host evacuate).
    kEvacuateVirtualServer = 14,
    // gridd's own: a server moved between Up hosts (gridctl server move).
    kMoveVirtualServer = 15;
}
namespace job_object_type {
inline constexpr int64_t kVirtualServer = 1, kLoadBalancer = 2, kCloudStorage = 3, kStorageDns = 4,
                         kServerImage = 5, kDedicatedServer = 6;
}

// A fixed lookup by name ("server.ram", "job.state", …); nullptr when `name` is not one of the
// fixed lookups (datacenters and operating systems live in the database).
const std::vector<Option>* FixedLookup(std::string_view name);

// The catalogue of all 24 lookups (lookup=lookups): option id, lookup name and title.
const std::vector<Option>& LookupCatalogue();

// Finds an option by id ("2") or by name, ignoring case and spaces ("round robin",
// "512mb"). Throws gridd::ApiError (400) naming the parameter and the accepted values.
const Option& ResolveOption(const std::vector<Option>& options, std::string_view parameter,
                            std::string_view value);
// Like ResolveOption but returns nullptr instead of throwing.
const Option* FindOption(const std::vector<Option>& options, std::string_view value);
const Option& OptionById(const std::vector<Option>& options, int64_t id);

// RAM option id → MiB.
uint64_t RamMib(int64_t ram_option_id);

}  // namespace gridd::domain
