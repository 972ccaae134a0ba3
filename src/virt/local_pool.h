// A storage pool gridd keeps itself, as plain files in one directory: QEMU's embedded driver
// (qemu:///embed) has no storage driver, so gridd creates overlays with qemu-img and writes
// seeds and imported images directly. Every write goes to a temporary name first and is
// renamed into place, so a failure or crash never leaves a half-made volume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace gridd::virt {

class LocalPool {
 public:
  LocalPool(std::string name, std::filesystem::path dir);

  const std::string& name() const { return name_; }
  std::filesystem::path PathOf(const std::string& volume) const;
  bool Exists(const std::string& volume) const;

  // qcow2 overlay `disk` backed by `image` (both formats explicit). Existing disk: no-op.
  void EnsureOverlay(const std::string& image, const std::string& disk) const;
  void WriteFile(const std::string& volume, const std::string& content) const;
  // Copies a checked qcow2 file in as `volume`; refuses a volume that exists.
  void Import(const std::string& volume, const std::filesystem::path& source) const;
  void Delete(const std::string& volume) const;

 private:
  // Refuses names that would leave the directory.
  void CheckName(const std::string& volume) const;

  std::string name_;
  std::filesystem::path dir_;
};

// The virtual size of the qcow2 image at `path`. Throws HypervisorError(kInvalid) naming the
// file when it is not a qcow2 image, or would make QEMU open other files (a backing file or an
// external data file).
uint64_t CheckQcow2(const std::filesystem::path& path, const std::string& what);

}  // namespace gridd::virt
