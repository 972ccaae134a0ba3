// The boundary between gridd and the machines that run its servers. Job handlers call these
// operations; every one of them is idempotent (doing it twice leaves the same result as doing
// it once), because a job re-run after a crash must converge instead of duplicating.
//
// Implementations are thread-safe: several job workers call one Hypervisor at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace gridd::virt {

// How a hypervisor failure should be treated by the job that hit it.
enum class HypervisorErrorKind {
  kTransient,  // connection lost, host busy, timeout: retry with backoff
  kNotFound,   // the named domain, volume or network does not exist
  kInvalid,    // the request itself is wrong (bad XML, unknown pool): retrying cannot help
  kInternal,   // anything else the hypervisor reported
};

class HypervisorError : public std::runtime_error {
 public:
  HypervisorError(HypervisorErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  HypervisorErrorKind kind() const { return kind_; }
  bool retryable() const { return kind_ == HypervisorErrorKind::kTransient; }

 private:
  HypervisorErrorKind kind_;
};

// A transient error meaning the host itself cannot be reached right now (its connection is lost
// and being re-opened, or it is Down). A job that hits it waits for the host up to its deadline
// instead of spending its limited retries: losing a host is not a fault of the job.
class HostUnavailableError : public HypervisorError {
 public:
  explicit HostUnavailableError(const std::string& message)
      : HypervisorError(HypervisorErrorKind::kTransient, message) {}
};

enum class PowerState { kMissing, kRunning, kShutOff, kPaused, kShuttingDown, kCrashed, kOther };

const char* PowerStateName(PowerState state);

// Everything needed to build a server's domain.
struct DomainSpec {
  int64_t server_id = 0;
  int64_t account_id = 0;
  std::string name;          // "gridd-<server id>"
  std::string hostname;      // the customer's server name
  std::string description;
  uint64_t memory_mib = 512;
  unsigned vcpus = 1;
  std::string mac;           // "52:54:00:xx:xx:xx", assigned by gridd
  std::string network;       // libvirt network of the server's public IP; empty: no NIC
  std::string storage_pool;  // pool holding the disk volume
  std::string disk_volume;   // the server's own volume, e.g. "gridd-7.qcow2"
  // Raw ISO volume in the same pool attached read-only (the NoCloud seed); empty: none.
  std::string seed_volume;
  std::string seed_path;  // set by the hypervisor from seed_volume
  // File the serial console is written to; empty: a pty.
  std::string console_log;
  // libvirt domain type; the hypervisor overrides it ("test" for libvirt's test driver).
  std::string domain_type = "qemu";
  // Set by the hypervisor when redefining: libvirt refuses a same-name define with a new UUID.
  std::string uuid;
};

struct DiskSpec {
  std::string storage_pool;
  std::string image_volume;  // the image's volume in the same pool
  std::string disk_volume;   // volume to create as a copy-on-write clone of the image
};

// A volume gridd writes in full from memory (the NoCloud seed ISO).
struct RawVolume {
  std::string storage_pool;
  std::string volume;
  std::string content;
};

struct DhcpReservation {
  std::string network;
  std::string mac;
  std::string ip;
  std::string hostname;   // customer's name; reduced to a DNS label, made unique per network
  int64_t server_id = 0;  // names the entry ("server-<id>") when hostname has no usable chars
};

// A domain carrying gridd's metadata, as found on the hypervisor.
struct GriddDomain {
  std::string name;
  int64_t server_id = 0;
  int64_t account_id = 0;
  PowerState state = PowerState::kOther;
};

struct HostCapacity {
  uint64_t memory_mib = 0;
  unsigned cpus = 0;
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  // The libvirt URI (or other identity) this hypervisor talks to, for logs.
  virtual std::string uri() const = 0;
  // True when the hypervisor forgets everything when it restarts (libvirt's test driver, in
  // gridd or in a libvirtd reached as test+tcp://…); gridd then rebuilds its servers' domains.
  virtual bool volatile_state() const = 0;

  // Creates disk.disk_volume as a clone of disk.image_volume. Existing volume: no-op.
  virtual void EnsureDisk(const DiskSpec& disk) = 0;
  // Deletes the volume. Missing volume: no-op.
  virtual void DeleteDisk(const std::string& storage_pool, const std::string& volume) = 0;
  // Checks that a volume exists in the pool (images the operator lists must be real).
  virtual bool VolumeExists(const std::string& storage_pool, const std::string& volume) = 0;
  // Creates `target` in the pool as a standalone copy of `source` (a server's overlay is
  // flattened, so the copy needs no backing file) written in `format`, which is stated, never
  // probed. An existing `target` is replaced first: it can only be the half-made copy of an
  // interrupted attempt. When the copy fails, no `target` is left behind.
  virtual void CopyVolume(const std::string& storage_pool, const std::string& source,
                          const std::string& target, const std::string& format) = 0;
  // Creates a raw volume with exactly this content. Existing volume: no-op.
  virtual void EnsureRawVolume(const RawVolume& volume) = 0;
  // Copies the qcow2 file at `source` into the pool as `volume`, stating the format. Throws
  // kInvalid when the file is not a standalone qcow2 image or the volume exists already.
  virtual void ImportQcow2(const std::string& storage_pool, const std::string& volume,
                           const std::string& source) = 0;
  // Creates a directory pool at `path` unless a pool of that name exists, and starts it.
  virtual void EnsureDirectoryPool(const std::string& storage_pool, const std::string& path) = 0;

  // Defines (or redefines, for edits) the persistent domain. Does not start it.
  virtual void DefineDomain(const DomainSpec& spec) = 0;
  // Stops the domain if needed and removes its definition. Missing domain: no-op.
  virtual void UndefineDomain(const std::string& name) = 0;

  // Starts a defined domain. Already running: no-op.
  virtual void Start(const std::string& name) = 0;
  // Asks the guest to shut down (ACPI), waits up to timeout_seconds, then forces it off.
  // Already off or missing: no-op.
  virtual void Shutdown(const std::string& name, int timeout_seconds) = 0;
  // Forces the domain off at once. Already off or missing: no-op.
  virtual void PowerOff(const std::string& name) = 0;
  // Reboots a running domain; starts it if it is off.
  virtual void Reboot(const std::string& name) = 0;
  virtual PowerState State(const std::string& name) = 0;

  // Adds a DHCP host entry (mac → ip) to the network. Same entry present: no-op.
  virtual void EnsureDhcpReservation(const DhcpReservation& reservation) = 0;
  // Removes the entry for this MAC. Absent: no-op.
  virtual void RemoveDhcpReservation(const DhcpReservation& reservation) = 0;

  // Calls `listener(domain name, new state)` from libvirt's event thread whenever a domain
  // starts or stops (lifecycle events, not polling). One listener; replaces an earlier one.
  using StateListener = std::function<void(const std::string&, PowerState)>;
  virtual void WatchStates(StateListener listener) = 0;

  // Every domain that carries gridd's metadata; domains without it are never touched.
  virtual std::vector<GriddDomain> ListGriddDomains() = 0;
  virtual HostCapacity Capacity() = 0;
};

// QEMU's embedded driver (qemu:///embed) runs inside gridd. Gives a bare "qemu:///embed" the
// root <data_dir>/qemu, and writes the driver's qemu.conf there when it has none: QEMU runs as
// gridd's own user (the files live in gridd's private data dir) and logs to files (there is
// no virtlogd without libvirtd). Other URIs are returned unchanged.
std::string PrepareLibvirtUri(const std::string& uri, const std::filesystem::path& data_dir);

// True when /dev/kvm can be opened and creates a VM: domain type "kvm", else "qemu".
bool KvmUsable();

// Connects to any libvirt URI (test:///…, qemu:///system, qemu+ssh://…). Starts libvirt's
// event loop thread on first use. Throws HypervisorError when the connection fails.
std::unique_ptr<Hypervisor> ConnectLibvirt(const std::string& uri);

// Renders the domain XML for a spec (exposed for golden-file tests).
std::string RenderDomainXml(const DomainSpec& spec, const std::string& disk_path,
                            const std::string& disk_format);

// The XML namespace of gridd's <metadata> element on every domain it creates.
inline constexpr const char* kMetadataNamespace = "urn:gridd:domain:1";

}  // namespace gridd::virt
