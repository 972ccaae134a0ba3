// Moving a server's domain between two hosts: libvirt's live migration where the pair
// supports it, otherwise the cold path over the storage API's volume streams.
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "gridd/virt/host_connection.h"
#include "virt/host_connection_core.h"
#include "virt/libvirt_handles.h"
#include "virt/xml_util.h"

namespace gridd::virt {
namespace {

constexpr size_t kStreamChunk = 1 << 20;

using StreamHandle = std::unique_ptr<virStream, decltype(&virStreamFree)>;

// One side of a move: the host and the connection the step uses.
struct Side {
  HostConnection& host;
  std::shared_ptr<virConnect> connection;

  explicit Side(HostConnection& on) : host(on), connection(on.core().Acquire()) {}
  virConnectPtr get() const { return connection.get(); }

  // Throws the pending libvirt error; a dead connection is reported to its host, whose error
  // then names the host.
  [[noreturn]] void Fail(const std::string& what) const { Fail(TakeLastError(), what); }
  [[noreturn]] void Fail(const LastError& error, const std::string& what) const {
    const LibvirtError failure(error.code, host.host_name() + ": " + what + ": " + error.message);
    if (IsConnectionLevelCode(error.code) || virConnectIsAlive(connection.get()) == 0) {
      virResetLastError();
      host.core().Lost(connection, failure);
    }
    throw failure;
  }
};

bool IsUnsupportedCode(int code) {
  return code == VIR_ERR_NO_SUPPORT || code == VIR_ERR_OPERATION_UNSUPPORTED ||
         code == VIR_ERR_ARGUMENT_UNSUPPORTED;
}

PoolHandle Pool(const Side& side, const std::string& name, const std::string& what) {
  PoolHandle pool(virStoragePoolLookupByName(side.get(), name.c_str()));
  if (!pool) side.Fail(what + ": storage pool " + name);
  return pool;
}

VolumeHandle FindVolume(const Side& side, virStoragePoolPtr pool, const std::string& name,
                        const std::string& what) {
  VolumeHandle volume(virStorageVolLookupByName(pool, name.c_str()));
  if (volume) return volume;
  const LastError error = TakeLastError();
  if (error.code != VIR_ERR_NO_STORAGE_VOL) side.Fail(error, what + ": volume " + name);
  return nullptr;
}

void DeleteVolume(const Side& side, virStorageVolPtr volume, const std::string& what) {
  if (virStorageVolDelete(volume, 0) == 0) return;
  const LastError error = TakeLastError();
  if (error.code != VIR_ERR_NO_STORAGE_VOL) side.Fail(error, what);
}

// Sends everything the download stream yields into the upload stream. Returns false with the
// failing side's error in `error`.
bool Pump(virStreamPtr download, virStreamPtr upload, LastError& error, bool& download_failed) {
  std::vector<char> buffer(kStreamChunk);
  for (;;) {  // ends at the end of the volume, or at the first error
    const int received = virStreamRecv(download, buffer.data(), buffer.size());
    if (received < 0) {
      error = TakeLastError();
      download_failed = true;
      return false;
    }
    if (received == 0) return true;
    size_t offset = 0;
    while (offset < static_cast<size_t>(received)) {
      const int sent = virStreamSend(upload, buffer.data() + offset, received - offset);
      if (sent < 0) {
        error = TakeLastError();
        download_failed = false;
        return false;
      }
      offset += static_cast<size_t>(sent);
    }
  }
}

// Streams `sent` from the source's pool into a new volume `volume` in the target's pool. A
// volume already on the target is the leftover of an interrupted copy and replaced; a copy
// that fails is removed.
void StreamVolume(HostConnection& source, HostConnection& target, const std::string& source_pool,
                  const std::string& sent, const std::string& target_pool,
                  const std::string& volume, const std::string& format) {
  const std::string what = "move volume " + volume + " from host " + source.host_name() +
                           " to host " + target.host_name();
  Side from(source);
  Side to(target);
  PoolHandle from_pool = Pool(from, source_pool, what);
  VolumeHandle from_volume = FindVolume(from, from_pool.get(), sent, what);
  if (!from_volume) {
    throw HypervisorError(HypervisorErrorKind::kNotFound, what + ": no volume " + sent +
                                                              " in pool " + source_pool +
                                                              " on host " + source.host_name());
  }
  virStorageVolInfo info{};
  if (virStorageVolGetInfo(from_volume.get(), &info) < 0) from.Fail(what + ": volume info");

  PoolHandle to_pool = Pool(to, target_pool, what);
  if (VolumeHandle stale = FindVolume(to, to_pool.get(), volume, what)) {
    DeleteVolume(to, stale.get(), what + ": remove the unfinished copy");
  }
  // Nothing allocated up front: the stream below fills the volume, so a sparse one stays sparse.
  const std::string xml = NewVolumeXml(volume, info.capacity, format, 0);
  VolumeHandle created(virStorageVolCreateXML(to_pool.get(), xml.c_str(), 0));
  if (!created) to.Fail(what + ": create in pool " + target_pool);

  StreamHandle download(virStreamNew(from.get(), 0), &virStreamFree);
  if (!download) from.Fail(what + ": stream");
  if (virStorageVolDownload(from_volume.get(), download.get(), 0, 0, 0) < 0) {
    const LastError error = TakeLastError();
    if (IsUnsupportedCode(error.code) && source.volatile_state() && target.volatile_state()) {
      // libvirt's test driver keeps no bytes behind its volumes: the new volume of the same
      // size and format is the whole copy.
      spdlog::debug("{}: test driver volumes hold no data; created it empty", what);
    } else {
      DeleteVolume(to, created.get(), what + ": remove the unfinished copy");
      from.Fail(error, what + ": download");
    }
  } else {
    StreamHandle upload(virStreamNew(to.get(), 0), &virStreamFree);
    if (!upload || virStorageVolUpload(created.get(), upload.get(), 0, 0, 0) < 0) {
      const LastError error = TakeLastError();
      virStreamAbort(download.get());
      DeleteVolume(to, created.get(), what + ": remove the unfinished copy");
      to.Fail(error, what + ": upload");
    }
    LastError error;
    bool download_failed = false;
    bool copied = Pump(download.get(), upload.get(), error, download_failed);
    if (copied && virStreamFinish(download.get()) < 0) {
      error = TakeLastError();
      download_failed = true;
      copied = false;
    }
    if (copied && virStreamFinish(upload.get()) < 0) {
      error = TakeLastError();
      download_failed = false;
      copied = false;
    }
    if (!copied) {
      virStreamAbort(download.get());
      virStreamAbort(upload.get());
      virResetLastError();
      DeleteVolume(to, created.get(), what + ": remove the unfinished copy");
      (download_failed ? from : to).Fail(error, what);
    }
  }
}

// Copies `volume` into the target's pool under the same name. With `flatten`, a standalone
// copy is made on the source first (`<volume>.moving`), so that a qcow2 overlay arrives
// without needing its backing image; it is removed afterwards, also when the copy fails.
void CopyVolumeToHost(HostConnection& source, HostConnection& target,
                      const std::string& source_pool, const std::string& target_pool,
                      const std::string& volume, const std::string& format, bool flatten) {
  if (!flatten) {
    StreamVolume(source, target, source_pool, volume, target_pool, volume, format);
    return;
  }
  const std::string flattened = volume + ".moving";
  source.CopyVolume(source_pool, volume, flattened, format);
  try {
    StreamVolume(source, target, source_pool, flattened, target_pool, volume, format);
  } catch (const HypervisorError&) {
    try {
      source.DeleteDisk(source_pool, flattened);
    } catch (const HypervisorError& cleanup) {
      spdlog::warn("cannot remove {} on host {}: {}", flattened, source.host_name(),
                   cleanup.what());
    }
    throw;
  }
  source.DeleteDisk(source_pool, flattened);
}

std::string DomainUuid(HostConnection& host, const std::string& name, const std::string& what) {
  Side side(host);
  DomainHandle domain(virDomainLookupByName(side.get(), name.c_str()));
  if (!domain) side.Fail(what + ": domain " + name);
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(domain.get(), uuid) < 0) side.Fail(what + ": uuid");
  return uuid;
}

void DeleteSourceVolumes(HostConnection& source, const DomainMove& move) {
  source.DeleteDisk(move.source_storage_pool, move.spec.disk_volume);
  if (!move.spec.seed_volume.empty()) {
    source.DeleteDisk(move.source_storage_pool, move.spec.seed_volume);
  }
}

}  // namespace

bool LiveMigrate(HostConnection& source, HostConnection& target, const DomainMove& move,
                 std::string& refusal) {
  const std::string& name = move.spec.name;
  const std::string what = "live-migrate domain " + name + " from host " + source.host_name() +
                           " to host " + target.host_name();
  const PowerState on_source = source.State(name);
  if (on_source == PowerState::kMissing && target.State(name) != PowerState::kMissing) {
    // An earlier attempt finished the migration; only the clean-up may be missing.
    if (!move.shared_storage) DeleteSourceVolumes(source, move);
    return true;
  }
  if (on_source != PowerState::kRunning) {
    refusal = std::string("domain is ") + PowerStateName(on_source) + ", not running";
    return false;
  }
  Side from(source);
  Side to(target);
  DomainHandle domain(virDomainLookupByName(from.get(), name.c_str()));
  if (!domain) from.Fail(what);
  // Managed migration (the default): gridd drives both hosts, so they need not reach each
  // other's libvirtd; the guest's memory (and its disks, unless shared) still go host to host.
  // libvirt creates the disk volumes on the target in the pool holding the same path.
  unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
  if (!move.shared_storage) flags |= VIR_MIGRATE_NON_SHARED_DISK;
  bool migrated = false;
  if (move.peer_to_peer) {
    migrated = virDomainMigrateToURI3(domain.get(), target.uri().c_str(), nullptr, 0,
                                      flags | VIR_MIGRATE_PEER2PEER) == 0;
  } else {
    DomainHandle on_target(virDomainMigrate3(domain.get(), to.get(), nullptr, 0, flags));
    migrated = on_target != nullptr;
  }
  if (!migrated) {
    const LastError error = TakeLastError();
    if (IsUnsupportedCode(error.code)) {
      refusal = "libvirt cannot live-migrate from host " + source.host_name() + " to host " +
                target.host_name() + ": " + error.message;
      return false;
    }
    from.Fail(error, what);
  }
  if (!move.shared_storage) DeleteSourceVolumes(source, move);
  return true;
}

MoveResult MoveDomain(HostConnection& source, HostConnection& target, const DomainMove& move) {
  const std::string& name = move.spec.name;
  const std::string what =
      "move domain " + name + " from host " + source.host_name() + " to host " + target.host_name();
  if (&source == &target || source.uri() == target.uri()) {
    throw HypervisorError(HypervisorErrorKind::kInvalid,
                          what + ": source and target are the same host");
  }
  MoveResult result;
  const PowerState on_target = target.State(name);
  if (source.State(name) == PowerState::kMissing) {
    if (on_target == PowerState::kMissing) {
      throw HypervisorError(HypervisorErrorKind::kNotFound,
                            what + ": the domain is on neither host");
    }
    // An earlier attempt got the domain across; only its last steps may be missing.
    result.method = MoveMethod::kCompletedEarlier;
    if (move.start) target.Start(name);
    if (!move.shared_storage) DeleteSourceVolumes(source, move);
    return result;
  }
  // The target's definition is written only after its volumes are complete, so a defined
  // domain on the target means the copy is done; anything short of it is redone.
  if (on_target == PowerState::kMissing) {
    if (!move.allow_live) {
      result.live_refusal = "live migration not requested";
    } else if (LiveMigrate(source, target, move, result.live_refusal)) {
      result.method = MoveMethod::kLive;
      result.live_refusal.clear();
      if (!move.start) target.Shutdown(name, move.shutdown_timeout_seconds);
      return result;
    } else {
      spdlog::info("{}: moving cold: {}", what, result.live_refusal);
    }
    DomainSpec defined = move.spec;
    defined.uuid = DomainUuid(source, name, what);
    source.Shutdown(name, move.shutdown_timeout_seconds);
    if (!move.shared_storage) {
      CopyVolumeToHost(source, target, move.source_storage_pool, move.spec.storage_pool,
                       move.spec.disk_volume, "qcow2", true);
      if (!move.spec.seed_volume.empty()) {
        CopyVolumeToHost(source, target, move.source_storage_pool, move.spec.storage_pool,
                         move.spec.seed_volume, "raw", false);
      }
    }
    target.DefineDomain(defined);
  } else {
    result.live_refusal = "the domain is already defined on the target";
  }
  // The source's copy goes before the target starts: never two running guests of one server.
  source.UndefineDomain(name);
  if (move.start) target.Start(name);
  if (!move.shared_storage) DeleteSourceVolumes(source, move);
  return result;
}

}  // namespace gridd::virt
