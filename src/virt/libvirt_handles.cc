#include "virt/libvirt_handles.h"

#include <cstdlib>

namespace gridd::virt {

std::string TakeString(char* text) {
  if (text == nullptr) return {};
  std::string result(text);
  free(text);
  return result;
}

HypervisorErrorKind KindForLibvirtCode(int code) {
  switch (code) {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_STORAGE_VOL:
    case VIR_ERR_NO_NETWORK:
    case VIR_ERR_NO_STORAGE_POOL:
      return HypervisorErrorKind::kNotFound;
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_RPC:
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_OPERATION_TIMEOUT:
    case VIR_ERR_AGENT_UNRESPONSIVE:
    case VIR_ERR_AUTH_UNAVAILABLE:
      return HypervisorErrorKind::kTransient;
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_CONFIG_UNSUPPORTED:
    case VIR_ERR_XML_DETAIL:
      return HypervisorErrorKind::kInvalid;
    default:
      return HypervisorErrorKind::kInternal;
  }
}

bool IsConnectionLevelCode(int code) {
  return code == VIR_ERR_NO_CONNECT || code == VIR_ERR_INVALID_CONN || code == VIR_ERR_RPC;
}

LastError TakeLastError() {
  LastError result;
  virError error{};
  // virCopyLastError returns the code, or 0 when the thread has no pending error.
  if (virCopyLastError(&error) > 0) {
    result.code = error.code;
    result.message = error.message != nullptr ? error.message : "unknown libvirt error";
  } else {
    result.code = VIR_ERR_INTERNAL_ERROR;
    result.message = "libvirt reported failure without an error";
  }
  virResetError(&error);
  virResetLastError();
  return result;
}

void ThrowError(const LastError& error, const std::string& what) {
  throw LibvirtError(error.code, what + ": " + error.message);
}

void ThrowLastError(const std::string& what) { ThrowError(TakeLastError(), what); }

}  // namespace gridd::virt
