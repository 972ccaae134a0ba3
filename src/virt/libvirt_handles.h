// Owning handles for libvirt objects, and the translation of libvirt's per-thread last error
// into HypervisorError.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>
#include <string>

#include "gridd/virt/hypervisor.h"

namespace gridd::virt {

struct DomainDeleter {
  void operator()(virDomainPtr domain) const { virDomainFree(domain); }
};
struct NetworkDeleter {
  void operator()(virNetworkPtr network) const { virNetworkFree(network); }
};
struct PoolDeleter {
  void operator()(virStoragePoolPtr pool) const { virStoragePoolFree(pool); }
};
struct VolumeDeleter {
  void operator()(virStorageVolPtr volume) const { virStorageVolFree(volume); }
};

using DomainHandle = std::unique_ptr<virDomain, DomainDeleter>;
using NetworkHandle = std::unique_ptr<virNetwork, NetworkDeleter>;
using PoolHandle = std::unique_ptr<virStoragePool, PoolDeleter>;
using VolumeHandle = std::unique_ptr<virStorageVol, VolumeDeleter>;

// Takes ownership of a malloc'ed string returned by libvirt; null becomes "".
std::string TakeString(char* text);

// The job-level meaning of a virErrorNumber.
HypervisorErrorKind KindForLibvirtCode(int code);

// Errors that mean the connection itself is gone, so a reconnect may help.
bool IsConnectionLevelCode(int code);

// A HypervisorError that remembers libvirt's error code, so callers can react to specific
// conditions (missing object, lost connection) without parsing messages.
class LibvirtError : public HypervisorError {
 public:
  LibvirtError(int code, const std::string& message)
      : HypervisorError(KindForLibvirtCode(code), message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// libvirt's last error on this thread, copied out and cleared. Must be read right after the
// failing call: any other libvirt call on the thread resets it.
struct LastError {
  int code = VIR_ERR_OK;
  std::string message;
};
LastError TakeLastError();

// Throws LibvirtError "<what>: <libvirt message>" for this thread's last error.
[[noreturn]] void ThrowLastError(const std::string& what);
[[noreturn]] void ThrowError(const LastError& error, const std::string& what);

}  // namespace gridd::virt
