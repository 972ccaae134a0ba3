// Hypervisor over libvirt: one shared connection (libvirt connections are thread-safe),
// replaced under a mutex when it turns out to be dead.
#pragma once

#include <libvirt/libvirt.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "gridd/virt/hypervisor.h"
#include "virt/local_pool.h"

namespace gridd::virt {

// libvirt keepalive: the peer is declared dead after `count` unanswered probes sent every
// `interval_seconds` (libvirt closes the connection then).
struct KeepAlive {
  int interval_seconds = 5;
  unsigned count = 3;
};

// Starts libvirt's event loop thread once per process (keepalive and events need it).
void EnsureLibvirtEventLoop();

// Opens a connection to `uri`, starting libvirt's event loop thread first (keepalive needs
// it). Throws HypervisorError naming the URI when libvirt refuses.
std::shared_ptr<virConnect> OpenLibvirtConnection(const std::string& uri,
                                                  const KeepAlive& keepalive = {});

// True for libvirt's test driver, local (test:///) or through a daemon (test+tcp://).
bool IsTestDriverUri(const std::string& uri);

// Supplies the connection of a LibvirtHypervisor that does not manage one itself (a
// HostConnection, which reconnects in the background and knows whether the host is Up).
class LibvirtConnectionSource {
 public:
  virtual ~LibvirtConnectionSource() = default;
  // The connection to use now. Throws HypervisorError kTransient when there is none.
  virtual std::shared_ptr<virConnect> Acquire() = 0;
  // A call on `connection` failed because the connection is gone: throws the error the
  // caller should see.
  [[noreturn]] virtual void Lost(const std::shared_ptr<virConnect>& connection,
                                 const HypervisorError& error) = 0;
};

class LibvirtHypervisor : public Hypervisor {
 public:
  // Connects at once and reconnects by itself (once per failed call).
  explicit LibvirtHypervisor(std::string uri);
  // Takes every connection from `source`, which must outlive this object. Does not connect.
  LibvirtHypervisor(std::string uri, LibvirtConnectionSource& source);

  std::string uri() const override { return uri_; }
  bool volatile_state() const override { return test_driver_; }

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

  void WatchStates(StateListener listener) override;
  // For a connection source: stores the listener without registering it anywhere, and
  // registers the stored listener's lifecycle callback on a (new) connection.
  void SetStateListener(StateListener listener);
  void RegisterLifecycle(virConnectPtr conn);

  std::vector<GriddDomain> ListGriddDomains() override;
  HostCapacity Capacity() override;

  // For tests: the network's live XML, and the raw connection (each test:/// connection has
  // its own state, so tests must reach libvirt through this one).
  std::string NetworkXmlForTest(const std::string& network);
  std::shared_ptr<virConnect> ConnectionForTest() { return Connection(); }

  // One libvirt call at a time on this hypervisor's connection. libvirt's RPC client
  // (Debian 12's 9.0) hands the socket between threads calling at once and leaves their
  // stack data registered with its event context; when the connection dies mid-call a
  // waiting thread's I/O callback writes into a stack frame that has moved on (SIGSEGV in
  // g_main_loop_quit, or a call that never returns). Everything that talks to the host over
  // the connection holds this gate.
  std::timed_mutex& call_gate() { return call_gate_; }

 private:
  std::shared_ptr<virConnect> Connection();
  // Replaces `failed` with a fresh connection unless another thread already did.
  std::shared_ptr<virConnect> Reconnect(const std::shared_ptr<virConnect>& failed);
  // Runs fn(conn); when it fails because the connection died, reconnects and runs it once
  // more (every operation is idempotent, so repeating it is safe).
  template <typename Fn>
  std::invoke_result_t<Fn&, virConnectPtr> Run(Fn&& fn);
  // The pool gridd keeps itself under this name (drivers without storage), or null.
  const LocalPool* Local(const std::string& storage_pool);
  // Registers the lifecycle callback on `conn` when a listener is set (mu_ held).
  void RegisterLifecycleLocked(virConnectPtr conn);
  static int OnLifecycle(virConnectPtr conn, virDomainPtr domain, int event, int detail,
                         void* opaque);

  const std::string uri_;
  // libvirt's test driver (domains of type "test", no real files behind the volumes).
  const bool test_driver_;
  // A local test:/// connection: its state dies with it, so it can never be reopened.
  const bool private_test_driver_;
  // Calls pass call_gate_ only over libvirt's RPC client (libvirtd, remote hosts): the
  // in-process drivers (test:///, qemu:///embed) have no shared socket to race on, and
  // serialising them would make every job on the host wait for the slowest call.
  const bool serialize_calls_;
  LibvirtConnectionSource* const source_ = nullptr;
  std::timed_mutex call_gate_;  // taken before mu_, never the other way round
  std::mutex mu_;
  std::shared_ptr<virConnect> connection_;  // guarded by mu_
  std::mutex local_mu_;
  std::map<std::string, std::unique_ptr<LocalPool>> local_pools_;  // guarded by local_mu_
  std::mutex listener_mu_;
  StateListener listener_;  // guarded by listener_mu_
};

}  // namespace gridd::virt
