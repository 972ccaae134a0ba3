// One libvirt host as gridd sees it: a Hypervisor whose connection survives the host's
// failures. It keeps the connection alive with libvirt keepalive, probes the host, notices a
// dead connection (libvirt's close callback, keepalive failure, a failed call), reopens it in
// the background with bounded, jittered exponential backoff, and reports the host Up or Down.
//
// Down means the host has not answered for `down_after`. While the host is Down, or while
// there is no connection, every call fails at once with HypervisorError kTransient naming the
// host, so jobs retry until their deadline and then fail with a message naming it. A call
// already waiting on a host that hangs returns when keepalive gives up on the connection.
//
// Thread-safe: several job workers call one HostConnection at once. The process must ignore
// SIGPIPE (gridd does): libvirt may write to a socket whose host has just gone.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "gridd/common/config.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::virt {

enum class HostState { kUp, kDown };

const char* HostStateName(HostState state);  // "Up", "Down"

struct HostConnectionOptions {
  std::string host_name;  // the operator's name for the host; every error names it
  std::string uri;        // qemu+ssh://…, qemu+tls://…, qemu:///system, test+tcp://…
  // The host is Down once it has not answered for this long.
  std::chrono::milliseconds down_after = std::chrono::seconds(20);
  // How often the host is asked whether it is alive (a libvirt call that needs an answer).
  std::chrono::milliseconds probe_interval = std::chrono::seconds(5);
  // libvirt keepalive on the connection: it is closed after `count` unanswered messages
  // sent every `interval_seconds`, which is what ends calls stuck on a hung host.
  int keepalive_interval_seconds = 5;
  unsigned keepalive_count = 3;
  // Reconnection backoff: the first retry after `reconnect_initial`, doubling up to
  // `reconnect_max`; each wait is drawn at random from its upper half so that many hosts
  // coming back together are not all retried at the same instant.
  std::chrono::milliseconds reconnect_initial = std::chrono::milliseconds(500);
  std::chrono::milliseconds reconnect_max = std::chrono::seconds(30);
};

// The options the [hosts] section of gridd's configuration gives a host's connection. The
// probe runs as often as keepalive, and never less than four times per down_after.
HostConnectionOptions HostConnectionOptionsFromConfig(const Config& config, std::string host_name,
                                                      std::string uri);

class HostConnection : public Hypervisor {
 public:
  // Called when the host goes Up or Down, from a HostConnection thread; the first call, from
  // OnHostStateChange itself, reports the state at registration. Never called concurrently
  // with itself, and never after the HostConnection is destroyed.
  using HostStateListener = std::function<void(HostState)>;

  // Waits for a first connection attempt (at most down_after, and at most 10 s), so a
  // reachable host starts Up; an unreachable or hung one starts Down and is retried in the
  // background. Throws HypervisorError kInvalid for bad options, never for the host.
  explicit HostConnection(HostConnectionOptions options);
  ~HostConnection() override;
  HostConnection(const HostConnection&) = delete;
  HostConnection& operator=(const HostConnection&) = delete;

  const std::string& host_name() const;
  HostState state() const;
  // Replaces any earlier listener; the listener is told the current state at once.
  void OnHostStateChange(HostStateListener listener);

  std::string uri() const override;
  bool volatile_state() const override;

  void EnsureDisk(const DiskSpec& disk) override;
  void DeleteDisk(const std::string& storage_pool, const std::string& volume) override;
  bool VolumeExists(const std::string& storage_pool, const std::string& volume) override;
  void CopyVolume(const std::string& storage_pool, const std::string& source,
                  const std::string& target, const std::string& format) override;
  void EnsureRawVolume(const RawVolume& volume) override;
  void ImportQcow2(const std::string& storage_pool, const std::string& volume,
                   const std::string& source) override;
  void EnsureDirectoryPool(const std::string& storage_pool, const std::string& path) override;
  void DefineDomain(const DomainSpec& spec) override;
  void UndefineDomain(const std::string& name) override;
  void Start(const std::string& name) override;
  void Shutdown(const std::string& name, int timeout_seconds) override;
  void PowerOff(const std::string& name) override;
  void Reboot(const std::string& name) override;
  PowerState State(const std::string& name) override;
  void EnsureDhcpReservation(const DhcpReservation& reservation) override;
  void RemoveDhcpReservation(const DhcpReservation& reservation) override;
  // The listener is registered again on every new connection, so it keeps working after the
  // host comes back. Events that happened while the host was unreachable are not replayed:
  // reconcile with ListGriddDomains when the host goes Up.
  void WatchStates(StateListener listener) override;
  std::vector<GriddDomain> ListGriddDomains() override;
  HostCapacity Capacity() override;

  // The connection, its threads and the host state (src/virt/host_connection_core.h).
  class Core;
  Core& core() { return *core_; }

 private:
  std::shared_ptr<Core> core_;
};

// Moving a server's domain from one host to another.
struct DomainMove {
  // The domain as it must be defined on the target: name, metadata, the target's storage
  // pool and volume names (the same volume names are used on both hosts).
  DomainSpec spec;
  std::string source_storage_pool;
  // The disks are on storage both hosts see: nothing is copied or deleted.
  bool shared_storage = false;
  // Whether the server must run on the target afterwards (its wanted state, not the state
  // found on the source, so that a re-run after a crash mid-move still starts it).
  bool start = true;
  bool allow_live = true;
  // Peer-to-peer live migration: the source's libvirtd connects to the target itself, at the
  // target's URI, which must then work from the source host (its SSH keys or TLS
  // certificates). Otherwise gridd drives both ends (managed migration).
  bool peer_to_peer = false;
  int shutdown_timeout_seconds = 60;
};

enum class MoveMethod {
  kLive,
  kCold,
  // An earlier attempt had already got the domain onto the target; this one only finished
  // the remaining steps (start, deleting the source's volumes).
  kCompletedEarlier,
};

struct MoveResult {
  MoveMethod method = MoveMethod::kCold;
  // Why live migration was not used (unsupported by libvirt for this pair, domain not
  // running, not requested, already defined on the target); empty otherwise.
  std::string live_refusal;
};

// Live-migrates the running domain (virDomainMigrate3 between gridd's two connections, or
// peer to peer with virDomainMigrateToURI3; disks copied along unless storage is shared). Returns
// false with the reason in `refusal` when libvirt does not support migration between these hosts;
// any other failure throws. Target already running the domain and source without it: done.
bool LiveMigrate(HostConnection& source, HostConnection& target, const DomainMove& move,
                 std::string& refusal);

// Moves the domain: live when allowed and supported, otherwise cold (shut off on the source,
// copy the disk volumes into the target's pool over libvirt volume streams, define on the
// target with the same UUID and metadata, start there if wanted, then undefine it and delete
// its volumes on the source). Every step is idempotent: a move re-run after a crash
// converges. The server's disk is flattened on the way (the copy needs no backing image).
MoveResult MoveDomain(HostConnection& source, HostConnection& target, const DomainMove& move);

}  // namespace gridd::virt
