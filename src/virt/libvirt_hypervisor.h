// Hypervisor over libvirt: one shared connection (libvirt connections are thread-safe),
// replaced under a mutex when it turns out to be dead.
#pragma once

#include <libvirt/libvirt.h>

#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "gridd/virt/hypervisor.h"

namespace gridd::virt {

// Opens a connection to `uri`, starting libvirt's event loop thread first (keepalive needs
// it). Throws HypervisorError naming the URI when libvirt refuses.
std::shared_ptr<virConnect> OpenLibvirtConnection(const std::string& uri);

class LibvirtHypervisor : public Hypervisor {
 public:
  explicit LibvirtHypervisor(std::string uri);

  std::string uri() const override { return uri_; }
  bool volatile_state() const override { return test_driver_; }

  void EnsureDisk(const DiskSpec& disk) override;
  void DeleteDisk(const std::string& storage_pool, const std::string& volume) override;
  bool VolumeExists(const std::string& storage_pool, const std::string& volume) override;
  void CopyVolume(const std::string& storage_pool, const std::string& source,
                  const std::string& target, const std::string& format) override;

  void DefineDomain(const DomainSpec& spec) override;
  void UndefineDomain(const std::string& name) override;

  void Start(const std::string& name) override;
  void Shutdown(const std::string& name, int timeout_seconds) override;
  void PowerOff(const std::string& name) override;
  void Reboot(const std::string& name) override;
  PowerState State(const std::string& name) override;

  void EnsureDhcpReservation(const DhcpReservation& reservation) override;
  void RemoveDhcpReservation(const DhcpReservation& reservation) override;

  std::vector<GriddDomain> ListGriddDomains() override;
  HostCapacity Capacity() override;

  // For tests: the network's live XML, and the raw connection (each test:/// connection has
  // its own state, so tests must reach libvirt through this one).
  std::string NetworkXmlForTest(const std::string& network);
  std::shared_ptr<virConnect> ConnectionForTest() { return Connection(); }

 private:
  std::shared_ptr<virConnect> Connection();
  // Replaces `failed` with a fresh connection unless another thread already did.
  std::shared_ptr<virConnect> Reconnect(const std::shared_ptr<virConnect>& failed);
  // Runs fn(conn); when it fails because the connection died, reconnects and runs it once
  // more (every operation is idempotent, so repeating it is safe).
  template <typename Fn>
  std::invoke_result_t<Fn&, virConnectPtr> Run(Fn&& fn);

  const std::string uri_;
  const bool test_driver_;
  std::mutex mu_;
  std::shared_ptr<virConnect> connection_;  // guarded by mu_
};

}  // namespace gridd::virt
