#include "virt/local_pool.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <system_error>

#include "gridd/common/crypto.h"
#include "gridd/common/process.h"
#include "gridd/virt/hypervisor.h"

namespace gridd::virt {
namespace {

namespace fs = std::filesystem;

constexpr auto kQemuImgTimeout = std::chrono::seconds(60);

uint64_t BigEndian(const unsigned char* bytes, size_t count) {
  uint64_t value = 0;
  for (size_t i = 0; i < count; ++i) value = (value << 8) | bytes[i];
  return value;
}

[[noreturn]] void Invalid(const std::string& message) {
  throw HypervisorError(HypervisorErrorKind::kInvalid, message);
}

// A name next to the target that no other writer uses; renamed over the target when complete.
fs::path TemporaryPath(const fs::path& target) {
  return target.parent_path() / ("." + target.filename().string() + "." + RandomHex(6) + ".part");
}

void RenameInto(const fs::path& from, const fs::path& to, const std::string& what) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) {
    const std::string reason = ec.message();
    fs::remove(from, ec);
    throw HypervisorError(HypervisorErrorKind::kInternal, what + ": " + reason);
  }
}

}  // namespace

uint64_t CheckQcow2(const fs::path& path, const std::string& what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    const int error = errno;
    throw HypervisorError(error == ENOENT ? HypervisorErrorKind::kNotFound
                                          : HypervisorErrorKind::kInvalid,
                          what + ": cannot open " + path.string() + ": " + std::strerror(error));
  }
  unsigned char header[80] = {};
  file.read(reinterpret_cast<char*>(header), sizeof(header));
  const auto got = static_cast<size_t>(file.gcount());
  if (got < 72 || std::memcmp(header, "QFI\xfb", 4) != 0) {
    Invalid(what + ": " + path.string() + " is not a qcow2 image");
  }
  const uint64_t version = BigEndian(header + 4, 4);
  if (version != 2 && version != 3) {
    Invalid(what + ": " + path.string() + " has unsupported qcow2 version " +
            std::to_string(version));
  }
  if (BigEndian(header + 8, 8) != 0) {
    Invalid(what + ": " + path.string() + " has a backing file; import a standalone image");
  }
  constexpr uint64_t kExternalDataFile = 1u << 2;
  if (version == 3 && got >= 80 && (BigEndian(header + 72, 8) & kExternalDataFile) != 0) {
    Invalid(what + ": " + path.string() + " uses an external data file");
  }
  const uint64_t virtual_size = BigEndian(header + 24, 8);
  if (virtual_size == 0) Invalid(what + ": " + path.string() + " has a virtual size of 0");
  return virtual_size;
}

LocalPool::LocalPool(std::string name, fs::path dir) : name_(std::move(name)), dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) {
    throw HypervisorError(HypervisorErrorKind::kInvalid,
                          "storage pool " + name_ + ": cannot create " + dir_.string() + ": " +
                              ec.message());
  }
}

void LocalPool::CheckName(const std::string& volume) const {
  if (volume.empty() || volume.front() == '.' || volume.find('/') != std::string::npos) {
    Invalid("storage pool " + name_ + ": bad volume name '" + volume + "'");
  }
}

fs::path LocalPool::PathOf(const std::string& volume) const {
  CheckName(volume);
  return dir_ / volume;
}

bool LocalPool::Exists(const std::string& volume) const {
  std::error_code ec;
  return fs::exists(PathOf(volume), ec);
}

void LocalPool::EnsureOverlay(const std::string& image, const std::string& disk) const {
  const std::string what = "ensure disk " + disk + ": image " + image;
  if (Exists(disk)) return;
  const fs::path image_path = PathOf(image);
  if (!Exists(image)) {
    throw HypervisorError(HypervisorErrorKind::kNotFound,
                          what + ": no such volume in pool " + name_);
  }
  // qemu-img would accept a damaged image as a backing file; checking the header first turns
  // a corrupt image into a clear failure before anything is created.
  CheckQcow2(image_path, what);
  const fs::path target = PathOf(disk);
  const fs::path temporary = TemporaryPath(target);
  const CommandResult result =
      RunCommand({"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                  image_path.string(), temporary.string()},
                 kQemuImgTimeout);
  if (result.exit_code != 0) {
    std::error_code ec;
    fs::remove(temporary, ec);
    Invalid(what + ": qemu-img create failed: " + result.output);
  }
  RenameInto(temporary, target, what);
}

void LocalPool::WriteFile(const std::string& volume, const std::string& content) const {
  const std::string what = "write volume " + volume;
  const fs::path target = PathOf(volume);
  const fs::path temporary = TemporaryPath(target);
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(temporary, ec);
      throw HypervisorError(HypervisorErrorKind::kInternal,
                            what + ": cannot write " + temporary.string());
    }
  }
  RenameInto(temporary, target, what);
}

void LocalPool::Import(const std::string& volume, const fs::path& source) const {
  const std::string what = "import image " + volume;
  CheckQcow2(source, what);
  const fs::path target = PathOf(volume);
  // Servers' overlays read the image: replacing it under them would corrupt their disks.
  if (Exists(volume)) Invalid(what + ": pool " + name_ + " already has " + volume);
  const fs::path temporary = TemporaryPath(target);
  std::error_code ec;
  fs::copy_file(source, temporary, ec);
  if (ec) {
    const std::string reason = ec.message();
    fs::remove(temporary, ec);
    Invalid(what + ": cannot copy " + source.string() + ": " + reason);
  }
  RenameInto(temporary, target, what);
}

void LocalPool::Delete(const std::string& volume) const {
  std::error_code ec;
  fs::remove(PathOf(volume), ec);
  if (ec) {
    throw HypervisorError(HypervisorErrorKind::kInternal,
                          "delete volume " + volume + ": " + ec.message());
  }
}

}  // namespace gridd::virt
