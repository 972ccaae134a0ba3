#include <fcntl.h>
#include <linux/kvm.h>
#include <pwd.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fstream>
#include <system_error>

#include "gridd/virt/hypervisor.h"

namespace gridd::virt {
namespace {

constexpr std::string_view kEmbedUri = "qemu:///embed";

std::string NameOfUser(uid_t uid) {
  const passwd* entry = getpwuid(uid);
  return entry != nullptr ? entry->pw_name : std::to_string(uid);
}

std::string NameOfGroup(gid_t gid) {
  const group* entry = getgrgid(gid);
  return entry != nullptr ? entry->gr_name : std::to_string(gid);
}

}  // namespace

std::string PrepareLibvirtUri(const std::string& uri, const std::filesystem::path& data_dir) {
  if (uri.rfind(kEmbedUri, 0) != 0) return uri;
  std::string result = uri;
  std::filesystem::path root;
  const auto at = uri.find("root=");
  if (uri == kEmbedUri) {
    root = data_dir / "qemu";
    result = std::string(kEmbedUri) + "?root=" + root.string();
  } else if (at != std::string::npos) {
    root = uri.substr(at + 5, uri.find('&', at) - (at + 5));
  } else {
    return uri;
  }
  const std::filesystem::path conf = root / "etc" / "qemu.conf";
  std::error_code ec;
  if (std::filesystem::exists(conf, ec)) return result;
  std::filesystem::create_directories(conf.parent_path(), ec);
  if (ec) {
    throw HypervisorError(HypervisorErrorKind::kInvalid,
                          "cannot create " + conf.parent_path().string() + ": " + ec.message());
  }
  std::ofstream out(conf);
  out << "# Written by gridd for its embedded QEMU driver; edit freely, gridd keeps this file.\n"
      << "user = \"" << NameOfUser(geteuid()) << "\"\n"
      << "group = \"" << NameOfGroup(getegid()) << "\"\n"
      << "stdio_handler = \"file\"\n";
  if (!out) throw HypervisorError(HypervisorErrorKind::kInvalid, "cannot write " + conf.string());
  return result;
}

bool KvmUsable() {
  const int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return false;
  bool usable = ::ioctl(kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
  if (usable) {
    const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
    usable = vm >= 0;
    if (vm >= 0) ::close(vm);
  }
  ::close(kvm);
  return usable;
}

}  // namespace gridd::virt
