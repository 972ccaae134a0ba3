#include "virt/libvirt_hypervisor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "virt/libvirt_handles.h"
#include "virt/local_pool.h"
#include "virt/xml_util.h"

namespace gridd::virt {
namespace {

constexpr auto kShutdownPollInterval = std::chrono::milliseconds(100);
constexpr size_t kMaxDnsLabel = 63;

void LogLibvirtError(void* /*user_data*/, virErrorPtr error) {
  // gridd reports failures itself, with context; this only keeps libvirt off stderr.
  if (error == nullptr) return;
  spdlog::debug("libvirt: {} (code {}, domain {})",
                error->message != nullptr ? error->message : "(no message)", error->code,
                error->domain);
}

}  // namespace

void EnsureLibvirtEventLoop() {
  static std::once_flag once;
  std::call_once(once, [] {
    virSetErrorFunc(nullptr, LogLibvirtError);
    if (virEventRegisterDefaultImpl() < 0) {
      spdlog::warn("libvirt event loop unavailable: {}", TakeLastError().message);
      return;
    }
    // Runs for the life of the process; it only dispatches keepalive and connection events.
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) {
          spdlog::debug("libvirt event loop: {}", TakeLastError().message);
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    }).detach();
  });
}

namespace {

std::string Lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

PoolHandle LookupPool(virConnectPtr conn, const std::string& name, const std::string& what) {
  PoolHandle pool(virStoragePoolLookupByName(conn, name.c_str()));
  if (!pool) ThrowLastError(what + ": storage pool " + name);
  return pool;
}

VolumeHandle FindVolume(virStoragePoolPtr pool, const std::string& name, const std::string& what) {
  VolumeHandle volume(virStorageVolLookupByName(pool, name.c_str()));
  if (volume) return volume;
  LastError error = TakeLastError();
  if (error.code != VIR_ERR_NO_STORAGE_VOL) ThrowError(error, what + ": volume " + name);
  return nullptr;
}

// Like FindVolume, but rescans the pool before giving up: files placed in a directory pool
// behind libvirt's back (operators copying images in) are invisible until a refresh.
VolumeHandle FindVolumeRefreshing(virStoragePoolPtr pool, const std::string& name,
                                  const std::string& what) {
  if (VolumeHandle volume = FindVolume(pool, name, what)) return volume;
  if (virStoragePoolRefresh(pool, 0) < 0) {
    // A refresh fails while another volume is being built; the lookup result stands then.
    spdlog::debug("{}: refresh pool: {}", what, TakeLastError().message);
  }
  return FindVolume(pool, name, what);
}

std::string VolumePath(virStorageVolPtr volume, const std::string& what) {
  char* path = virStorageVolGetPath(volume);
  if (path == nullptr) ThrowLastError(what + ": volume path");
  return TakeString(path);
}

// The volume's on-disk format as libvirt knows it ("qcow2", "raw"); qcow2 when unstated.
std::string VolumeFormat(virStorageVolPtr volume, const std::string& what) {
  char* xml = virStorageVolGetXMLDesc(volume, 0);
  if (xml == nullptr) ThrowLastError(what + ": volume XML");
  const std::string desc = TakeString(xml);
  for (std::string_view target : FindSections(desc, "target")) {
    for (const XmlAttributes& format : FindElements(target, "format")) {
      auto type = format.find("type");
      if (type != format.end() && !type->second.empty()) return type->second;
    }
  }
  return "qcow2";
}

// A qcow2 overlay backed by the image: instant, and allocation 0 because it only grows as the
// guest writes. The test driver accepts (and records) the same backingStore XML, so one code
// path serves both; its clone call would instead charge each server the image's full
// allocation against the fake pool and exhaust it after a few servers.
std::string OverlayVolumeXml(const std::string& name, uint64_t capacity_bytes,
                             const std::string& image_path, const std::string& image_format) {
  std::string xml = "<volume>\n";
  xml += "  <name>" + XmlEscape(name) + "</name>\n";
  xml += "  <capacity unit='bytes'>" + std::to_string(capacity_bytes) + "</capacity>\n";
  xml += "  <allocation unit='bytes'>0</allocation>\n";
  xml += "  <target>\n";
  xml += "    <format type='qcow2'/>\n";
  xml += "  </target>\n";
  xml += "  <backingStore>\n";
  xml += "    <path>" + XmlEscape(image_path) + "</path>\n";
  xml += "    <format type='" + XmlEscape(image_format) + "'/>\n";
  xml += "  </backingStore>\n";
  xml += "</volume>\n";
  return xml;
}

// A full copy of a volume: its own format and no backing store, so libvirt flattens the
// source's chain into it. The allocation is the source's capacity, the most the copy can take,
// so a pool that cannot hold it refuses the copy before any byte is written.
std::string CopyVolumeXml(const std::string& name, uint64_t capacity_bytes,
                          const std::string& format) {
  std::string xml = "<volume>\n";
  xml += "  <name>" + XmlEscape(name) + "</name>\n";
  xml += "  <capacity unit='bytes'>" + std::to_string(capacity_bytes) + "</capacity>\n";
  xml += "  <allocation unit='bytes'>" + std::to_string(capacity_bytes) + "</allocation>\n";
  xml += "  <target>\n";
  xml += "    <format type='" + XmlEscape(format) + "'/>\n";
  xml += "  </target>\n";
  xml += "</volume>\n";
  return xml;
}

DomainHandle FindDomain(virConnectPtr conn, const std::string& name, const std::string& what) {
  DomainHandle domain(virDomainLookupByName(conn, name.c_str()));
  if (domain) return domain;
  LastError error = TakeLastError();
  if (error.code != VIR_ERR_NO_DOMAIN) ThrowError(error, what);
  return nullptr;
}

DomainHandle LookupDomain(virConnectPtr conn, const std::string& name, const std::string& what) {
  DomainHandle domain(virDomainLookupByName(conn, name.c_str()));
  if (!domain) ThrowLastError(what);
  return domain;
}

NetworkHandle LookupNetwork(virConnectPtr conn, const std::string& name, const std::string& what) {
  NetworkHandle network(virNetworkLookupByName(conn, name.c_str()));
  if (!network) ThrowLastError(what + ": network " + name);
  return network;
}

struct Ownership {
  int64_t server_id = 0;
  int64_t account_id = 0;
};

int64_t ParseId(const XmlAttributes& attributes, std::string_view key) {
  auto it = attributes.find(key);
  if (it == attributes.end()) return 0;
  int64_t value = 0;
  const std::string& text = it->second;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return (ec == std::errc() && ptr == text.data() + text.size()) ? value : 0;
}

// gridd's metadata on the domain, or nullopt for a domain gridd did not create. A vanished
// domain is reported as LibvirtError VIR_ERR_NO_DOMAIN.
std::optional<Ownership> GriddMetadata(virDomainPtr domain, const std::string& what) {
  char* xml = virDomainGetMetadata(domain, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace,
                                   VIR_DOMAIN_AFFECT_CURRENT);
  if (xml == nullptr) {
    LastError error = TakeLastError();
    if (error.code == VIR_ERR_NO_DOMAIN_METADATA) return std::nullopt;
    ThrowError(error, what + ": read metadata");
  }
  const XmlAttributes attributes = RootAttributes(TakeString(xml));
  return Ownership{ParseId(attributes, "server-id"), ParseId(attributes, "account-id")};
}

void RequireGriddDomain(virDomainPtr domain, const std::string& name, const std::string& what) {
  if (!GriddMetadata(domain, what)) {
    throw HypervisorError(HypervisorErrorKind::kInvalid,
                          what + ": domain " + name +
                              " has no gridd metadata; gridd does not touch domains it did not "
                              "create");
  }
}

bool IsActive(virDomainPtr domain, const std::string& what) {
  const int active = virDomainIsActive(domain);
  if (active < 0) ThrowLastError(what + ": query state");
  return active == 1;
}

PowerState MapState(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:  // running, waiting on a resource
      return PowerState::kRunning;
    case VIR_DOMAIN_PAUSED:
    case VIR_DOMAIN_PMSUSPENDED:
      return PowerState::kPaused;
    case VIR_DOMAIN_SHUTDOWN:
      return PowerState::kShuttingDown;
    case VIR_DOMAIN_SHUTOFF:
      return PowerState::kShutOff;
    case VIR_DOMAIN_CRASHED:
      return PowerState::kCrashed;
    default:
      return PowerState::kOther;
  }
}

PowerState StateOf(virDomainPtr domain, const std::string& what) {
  int state = 0;
  int reason = 0;
  if (virDomainGetState(domain, &state, &reason, 0) < 0) ThrowLastError(what + ": query state");
  return MapState(state);
}

// Forces the domain off. Losing a race with the domain stopping by itself is success.
void DestroyIfActive(virDomainPtr domain, const std::string& what) {
  if (!IsActive(domain, what)) return;
  if (virDomainDestroy(domain) == 0) return;
  LastError error = TakeLastError();
  if (error.code == VIR_ERR_OPERATION_INVALID && !IsActive(domain, what)) return;
  ThrowError(error, what + ": destroy");
}

void CreateIfInactive(virDomainPtr domain, const std::string& what) {
  if (IsActive(domain, what)) return;
  if (virDomainCreate(domain) == 0) return;
  LastError error = TakeLastError();
  if (error.code == VIR_ERR_OPERATION_INVALID && IsActive(domain, what)) return;
  ThrowError(error, what);
}

bool IsUnsupported(int code) {
  return code == VIR_ERR_NO_SUPPORT || code == VIR_ERR_OPERATION_UNSUPPORTED ||
         code == VIR_ERR_ARGUMENT_UNSUPPORTED || code == VIR_ERR_INVALID_ARG;
}

struct DhcpHost {
  std::string mac;  // lowercase
  std::string ip;
  std::string name;
};

std::vector<DhcpHost> DhcpHosts(virNetworkPtr network, const std::string& what) {
  // The persistent definition is what gridd edits; the live state follows via AFFECT_LIVE.
  char* xml = virNetworkGetXMLDesc(network, VIR_NETWORK_XML_INACTIVE);
  if (xml == nullptr) {
    LastError error = TakeLastError();
    if (!IsUnsupported(error.code)) ThrowError(error, what + ": network XML");
    // The test driver knows no inactive view; its live and persistent XML are the same.
    xml = virNetworkGetXMLDesc(network, 0);
    if (xml == nullptr) ThrowLastError(what + ": network XML");
  }
  const std::string desc = TakeString(xml);
  std::vector<DhcpHost> hosts;
  for (std::string_view dhcp : FindSections(desc, "dhcp")) {
    for (XmlAttributes& attributes : FindElements(dhcp, "host")) {
      hosts.push_back(DhcpHost{Lowercase(attributes["mac"]), attributes["ip"], attributes["name"]});
    }
  }
  return hosts;
}

unsigned NetworkUpdateFlags(virNetworkPtr network, const std::string& what) {
  const int active = virNetworkIsActive(network);
  if (active < 0) ThrowLastError(what + ": query network state");
  return VIR_NETWORK_UPDATE_AFFECT_CONFIG | (active == 1 ? VIR_NETWORK_UPDATE_AFFECT_LIVE : 0);
}

void UpdateDhcpHost(virNetworkPtr network, virNetworkUpdateCommand command,
                    const std::string& host_xml, const std::string& what) {
  if (virNetworkUpdate(network, command, VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host_xml.c_str(),
                       NetworkUpdateFlags(network, what)) < 0) {
    ThrowLastError(what);
  }
}

std::string HostXml(const DhcpHost& host) {
  std::string xml = "<host";
  if (!host.mac.empty()) xml += " mac='" + XmlEscape(host.mac) + "'";
  if (!host.name.empty()) xml += " name='" + XmlEscape(host.name) + "'";
  if (!host.ip.empty()) xml += " ip='" + XmlEscape(host.ip) + "'";
  return xml + "/>";
}

// libvirt refuses two DHCP hosts with the same name, yet customers pick names freely: when
// the label is taken, the MAC (unique per network) makes it unique.
std::string ReservationName(const DhcpReservation& reservation, const std::string& mac,
                            const std::set<std::string>& taken) {
  std::string hex;
  for (char c : mac) {
    if (c != ':') hex += c;
  }
  const std::string fallback =
      reservation.server_id > 0 ? "server-" + std::to_string(reservation.server_id) : "host-" + hex;
  std::string label = DnsLabel(reservation.hostname, fallback);
  if (!taken.contains(label)) return label;
  // Room for "-" and the MAC's hex digits.
  if (label.size() > kMaxDnsLabel - hex.size() - 1) label.resize(kMaxDnsLabel - hex.size() - 1);
  while (!label.empty() && label.back() == '-') label.pop_back();
  label = label.empty() ? "host-" + hex : label + "-" + hex;
  return taken.contains(label) ? "" : label;
}

// Sends `size` bytes from `read_chunk` into a new upload stream of `volume`. Returns false
// (with libvirt's error pending) when libvirt refuses.
template <typename ReadChunk>
bool UploadVolume(virConnectPtr conn, virStorageVolPtr volume, uint64_t size,
                  ReadChunk&& read_chunk) {
  virStreamPtr stream = virStreamNew(conn, 0);
  if (stream == nullptr) return false;
  std::unique_ptr<virStream, decltype(&virStreamFree)> owned(stream, &virStreamFree);
  if (virStorageVolUpload(volume, stream, 0, size, 0) < 0) return false;
  std::vector<char> buffer(1 << 20);
  uint64_t sent = 0;
  while (sent < size) {
    const size_t chunk = read_chunk(buffer.data(), std::min<uint64_t>(buffer.size(), size - sent));
    if (chunk == 0) {
      virStreamAbort(stream);
      return false;
    }
    size_t offset = 0;
    while (offset < chunk) {
      const int n = virStreamSend(stream, buffer.data() + offset, chunk - offset);
      if (n < 0) {
        virStreamAbort(stream);
        return false;
      }
      offset += static_cast<size_t>(n);
    }
    sent += chunk;
  }
  return virStreamFinish(stream) == 0;
}

// Deletes a volume that could not be filled, so no half-written copy stays behind.
void DiscardVolume(virStorageVolPtr volume, const std::string& what) {
  if (virStorageVolDelete(volume, 0) < 0) {
    spdlog::warn("{}: cannot remove the unfinished volume: {}", what, TakeLastError().message);
  }
}

}  // namespace

bool IsTestDriverUri(const std::string& uri) {
  return uri.rfind("test:", 0) == 0 || uri.rfind("test+", 0) == 0;
}

std::shared_ptr<virConnect> OpenLibvirtConnection(const std::string& uri,
                                                  const KeepAlive& keepalive) {
  EnsureLibvirtEventLoop();
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (conn == nullptr) ThrowLastError("connect to " + uri);
  std::shared_ptr<virConnect> connection(conn, [](virConnectPtr c) { virConnectClose(c); });
  if (uri.rfind("test:", 0) != 0 &&
      virConnectSetKeepAlive(conn, keepalive.interval_seconds, keepalive.count) < 0) {
    // Drivers without keepalive still work; they just notice a dead peer later.
    spdlog::debug("libvirt keepalive on {}: {}", uri, TakeLastError().message);
  }
  return connection;
}

std::unique_ptr<Hypervisor> ConnectLibvirt(const std::string& uri) {
  return std::make_unique<LibvirtHypervisor>(uri);
}

LibvirtHypervisor::LibvirtHypervisor(std::string uri)
    : uri_(std::move(uri)),
      test_driver_(IsTestDriverUri(uri_)),
      private_test_driver_(uri_.rfind("test:", 0) == 0),
      serialize_calls_(!private_test_driver_ && uri_.rfind("qemu:///embed", 0) != 0),
      connection_(OpenLibvirtConnection(uri_)) {}

LibvirtHypervisor::LibvirtHypervisor(std::string uri, LibvirtConnectionSource& source)
    : uri_(std::move(uri)),
      test_driver_(IsTestDriverUri(uri_)),
      private_test_driver_(uri_.rfind("test:", 0) == 0),
      serialize_calls_(!private_test_driver_ && uri_.rfind("qemu:///embed", 0) != 0),
      source_(&source) {}

std::shared_ptr<virConnect> LibvirtHypervisor::Connection() {
  if (source_ != nullptr) return source_->Acquire();
  std::lock_guard lock(mu_);
  return connection_;
}

std::shared_ptr<virConnect> LibvirtHypervisor::Reconnect(
    const std::shared_ptr<virConnect>& failed) {
  std::lock_guard lock(mu_);
  if (connection_ != failed) return connection_;
  if (private_test_driver_) {
    // A new test:/// connection starts from the node file: reconnecting would silently drop
    // every server's domain.
    throw HypervisorError(HypervisorErrorKind::kTransient,
                          "connection to " + uri_ + " lost; the test driver cannot reconnect");
  }
  try {
    connection_ = OpenLibvirtConnection(uri_);
  } catch (const HypervisorError& error) {
    throw HypervisorError(HypervisorErrorKind::kTransient,
                          std::string("reconnect to libvirt: ") + error.what());
  }
  RegisterLifecycleLocked(connection_.get());
  spdlog::info("reconnected to libvirt at {}", uri_);
  return connection_;
}

template <typename Fn>
std::invoke_result_t<Fn&, virConnectPtr> LibvirtHypervisor::Run(Fn&& fn) {
  std::shared_ptr<virConnect> connection = Connection();
  std::unique_lock gate(call_gate_, std::defer_lock);
  if (serialize_calls_) gate.lock();
  try {
    return fn(connection.get());
  } catch (const LibvirtError& error) {
    if (!IsConnectionLevelCode(error.code())) {
      const int alive = virConnectIsAlive(connection.get());
      if (alive < 0) virResetLastError();
      if (alive != 0) throw;
    }
    if (source_ != nullptr) {
      if (gate.owns_lock()) gate.unlock();
      source_->Lost(connection, error);
    }
    spdlog::warn("libvirt connection to {} failed ({}); reconnecting", uri_, error.what());
    connection = Reconnect(connection);
  }
  return fn(connection.get());
}

const LocalPool* LibvirtHypervisor::Local(const std::string& storage_pool) {
  std::lock_guard lock(local_mu_);
  auto it = local_pools_.find(storage_pool);
  return it == local_pools_.end() ? nullptr : it->second.get();
}

void LibvirtHypervisor::EnsureDisk(const DiskSpec& disk) {
  if (const LocalPool* local = Local(disk.storage_pool)) {
    local->EnsureOverlay(disk.image_volume, disk.disk_volume);
    return;
  }
  Run([&](virConnectPtr conn) {
    const std::string what = "ensure disk " + disk.disk_volume;
    PoolHandle pool = LookupPool(conn, disk.storage_pool, what);
    if (FindVolumeRefreshing(pool.get(), disk.disk_volume, what)) return;

    const std::string image_what = what + ": image " + disk.image_volume;
    VolumeHandle image = FindVolumeRefreshing(pool.get(), disk.image_volume, image_what);
    if (!image) {
      throw HypervisorError(HypervisorErrorKind::kNotFound,
                            image_what + ": no such volume in pool " + disk.storage_pool);
    }
    virStorageVolInfo info{};
    if (virStorageVolGetInfo(image.get(), &info) < 0) ThrowLastError(image_what + ": info");
    const std::string image_path = VolumePath(image.get(), image_what);
    // qemu-img accepts a damaged backing file; when the pool's files are visible here (a local
    // libvirtd), a damaged image fails now, before anything is created.
    std::error_code ec;
    if (!test_driver_ && std::filesystem::exists(image_path, ec))
      CheckQcow2(image_path, image_what);
    // Images are qcow2 by gridd's contract (image import checks it); only the test driver's
    // bookkeeping volumes are taken as they are described.
    const std::string image_format =
        test_driver_ ? VolumeFormat(image.get(), image_what) : std::string("qcow2");

    const std::string xml =
        OverlayVolumeXml(disk.disk_volume, info.capacity, image_path, image_format);
    VolumeHandle created(virStorageVolCreateXML(pool.get(), xml.c_str(), 0));
    if (created) return;
    LastError error = TakeLastError();
    if (error.code == VIR_ERR_STORAGE_VOL_EXIST) return;  // a concurrent attempt won
    ThrowError(error, what + ": create volume in pool " + disk.storage_pool);
  });
}

void LibvirtHypervisor::DeleteDisk(const std::string& storage_pool, const std::string& volume) {
  if (const LocalPool* local = Local(storage_pool)) {
    local->Delete(volume);
    return;
  }
  Run([&](virConnectPtr conn) {
    const std::string what = "delete disk " + volume;
    PoolHandle pool = LookupPool(conn, storage_pool, what);
    VolumeHandle handle = FindVolume(pool.get(), volume, what);
    if (!handle) return;
    if (virStorageVolDelete(handle.get(), 0) == 0) return;
    LastError error = TakeLastError();
    if (error.code == VIR_ERR_NO_STORAGE_VOL) return;
    ThrowError(error, what);
  });
}

bool LibvirtHypervisor::VolumeExists(const std::string& storage_pool, const std::string& volume) {
  if (const LocalPool* local = Local(storage_pool)) return local->Exists(volume);
  return Run([&](virConnectPtr conn) {
    const std::string what = "look up volume " + volume;
    PoolHandle pool = LookupPool(conn, storage_pool, what);
    return FindVolumeRefreshing(pool.get(), volume, what) != nullptr;
  });
}

void LibvirtHypervisor::CopyVolume(const std::string& storage_pool, const std::string& source,
                                   const std::string& target, const std::string& format) {
  Run([&](virConnectPtr conn) {
    const std::string what = "copy volume " + source + " to " + target;
    PoolHandle pool = LookupPool(conn, storage_pool, what);
    VolumeHandle from = FindVolumeRefreshing(pool.get(), source, what);
    if (!from) {
      throw HypervisorError(HypervisorErrorKind::kNotFound,
                            what + ": no volume " + source + " in pool " + storage_pool);
    }
    // A target that exists before the copy starts is an interrupted attempt's leftover.
    if (VolumeHandle stale = FindVolume(pool.get(), target, what)) {
      if (virStorageVolDelete(stale.get(), 0) < 0) ThrowLastError(what + ": remove stale copy");
    }
    virStorageVolInfo info{};
    if (virStorageVolGetInfo(from.get(), &info) < 0) ThrowLastError(what + ": source info");
    const std::string xml = CopyVolumeXml(target, info.capacity, format);
    VolumeHandle created(virStorageVolCreateXMLFrom(pool.get(), xml.c_str(), from.get(), 0));
    if (created) return;
    LastError error = TakeLastError();
    // libvirt removes what it created on most failures; make sure nothing half-made stays.
    if (VolumeHandle partial = FindVolume(pool.get(), target, what)) {
      if (virStorageVolDelete(partial.get(), 0) < 0) {
        spdlog::warn("{}: cannot remove the partial copy: {}", what, TakeLastError().message);
      }
    }
    ThrowError(error, what + " in pool " + storage_pool);
  });
}

void LibvirtHypervisor::DefineDomain(const DomainSpec& spec) {
  Run([&](virConnectPtr conn) {
    const std::string what = "define domain " + spec.name;
    if (spec.name.empty()) {
      throw HypervisorError(HypervisorErrorKind::kInvalid, "define domain: empty name");
    }
    DomainSpec rendered = spec;
    std::string disk_path;
    std::string disk_format = "qcow2";  // gridd creates every server disk as a qcow2 overlay
    if (const LocalPool* local = Local(spec.storage_pool)) {
      if (!local->Exists(spec.disk_volume)) {
        throw HypervisorError(
            HypervisorErrorKind::kNotFound,
            what + ": volume " + spec.disk_volume + " not found in pool " + spec.storage_pool);
      }
      disk_path = local->PathOf(spec.disk_volume).string();
      if (!spec.seed_volume.empty()) rendered.seed_path = local->PathOf(spec.seed_volume).string();
    } else {
      PoolHandle pool = LookupPool(conn, spec.storage_pool, what);
      VolumeHandle volume = FindVolume(pool.get(), spec.disk_volume, what);
      if (!volume) {
        throw HypervisorError(
            HypervisorErrorKind::kNotFound,
            what + ": volume " + spec.disk_volume + " not found in pool " + spec.storage_pool);
      }
      disk_path = VolumePath(volume.get(), what);
      disk_format = VolumeFormat(volume.get(), what);
      if (!spec.seed_volume.empty()) {
        VolumeHandle seed = FindVolume(pool.get(), spec.seed_volume, what);
        if (!seed) {
          throw HypervisorError(
              HypervisorErrorKind::kNotFound,
              what + ": seed " + spec.seed_volume + " not found in pool " + spec.storage_pool);
        }
        rendered.seed_path = VolumePath(seed.get(), what);
      }
    }

    if (test_driver_) rendered.domain_type = "test";
    // Two attempts: a concurrent first define can slip in between lookup and define.
    for (int attempt = 0;; ++attempt) {
      if (DomainHandle existing = FindDomain(conn, spec.name, what)) {
        RequireGriddDomain(existing.get(), spec.name, what);
        char uuid[VIR_UUID_STRING_BUFLEN] = {};
        if (virDomainGetUUIDString(existing.get(), uuid) < 0) ThrowLastError(what + ": uuid");
        rendered.uuid = uuid;
      }
      const std::string xml = RenderDomainXml(rendered, disk_path, disk_format);
      DomainHandle defined(virDomainDefineXML(conn, xml.c_str()));
      if (defined) return;
      LastError error = TakeLastError();
      if (attempt > 0 || !rendered.uuid.empty() || error.code != VIR_ERR_OPERATION_FAILED) {
        ThrowError(error, what);
      }
    }
  });
}

void LibvirtHypervisor::UndefineDomain(const std::string& name) {
  Run([&](virConnectPtr conn) {
    const std::string what = "undefine domain " + name;
    DomainHandle domain = FindDomain(conn, name, what);
    if (!domain) return;
    RequireGriddDomain(domain.get(), name, what);
    DestroyIfActive(domain.get(), what);
    const int persistent = virDomainIsPersistent(domain.get());
    if (persistent < 0) {
      LastError error = TakeLastError();
      if (error.code == VIR_ERR_NO_DOMAIN) return;
      ThrowError(error, what);
    }
    if (persistent == 0) return;  // a transient domain is gone once destroyed
    constexpr unsigned kFlags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM;
    if (virDomainUndefineFlags(domain.get(), kFlags) == 0) return;
    LastError error = TakeLastError();
    if (error.code == VIR_ERR_NO_DOMAIN) return;
    if (!IsUnsupported(error.code)) ThrowError(error, what);
    // Drivers without managed save, snapshots or NVRAM (the test driver) reject the flags;
    // they have nothing for the flags to remove either.
    if (virDomainUndefine(domain.get()) == 0) return;
    error = TakeLastError();
    if (error.code != VIR_ERR_NO_DOMAIN) ThrowError(error, what);
  });
}

void LibvirtHypervisor::Start(const std::string& name) {
  Run([&](virConnectPtr conn) {
    const std::string what = "start domain " + name;
    DomainHandle domain = LookupDomain(conn, name, what);
    RequireGriddDomain(domain.get(), name, what);
    if (StateOf(domain.get(), what) == PowerState::kPaused) {
      if (virDomainResume(domain.get()) < 0) ThrowLastError(what + ": resume");
      return;
    }
    CreateIfInactive(domain.get(), what);
  });
}

void LibvirtHypervisor::Shutdown(const std::string& name, int timeout_seconds) {
  const std::string what = "shut down domain " + name;
  enum class Next { kDone, kWait, kForce };
  const Next next = Run([&](virConnectPtr conn) {
    DomainHandle domain = FindDomain(conn, name, what);
    if (!domain) return Next::kDone;
    RequireGriddDomain(domain.get(), name, what);
    if (!IsActive(domain.get(), what)) return Next::kDone;
    if (virDomainShutdown(domain.get()) == 0) return Next::kWait;
    LastError error = TakeLastError();
    if (error.code == VIR_ERR_OPERATION_INVALID && !IsActive(domain.get(), what)) {
      return Next::kDone;
    }
    if (KindForLibvirtCode(error.code) == HypervisorErrorKind::kTransient) {
      ThrowError(error, what);
    }
    // The guest cannot be asked (no ACPI support, paused): forcing it off is what the
    // timeout would do anyway.
    spdlog::debug("{}: graceful shutdown refused ({}); forcing off", what, error.message);
    return Next::kForce;
  });
  if (next == Next::kDone) return;
  const auto still_running = [&] {
    return Run([&](virConnectPtr conn) {
      DomainHandle domain = FindDomain(conn, name, what);
      return domain && IsActive(domain.get(), what);
    });
  };
  if (next == Next::kWait) {
    // Polled one call at a time: other calls to the host go on while the guest shuts down.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(std::max(timeout_seconds, 0));
    bool running = still_running();
    while (running && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(kShutdownPollInterval);
      running = still_running();
    }
    if (!running) return;
    spdlog::info("{}: guest still running after {} s; forcing off", what, timeout_seconds);
  }
  Run([&](virConnectPtr conn) {
    DomainHandle domain = FindDomain(conn, name, what);
    if (domain) DestroyIfActive(domain.get(), what);
  });
}

void LibvirtHypervisor::PowerOff(const std::string& name) {
  Run([&](virConnectPtr conn) {
    const std::string what = "power off domain " + name;
    DomainHandle domain = FindDomain(conn, name, what);
    if (!domain) return;
    RequireGriddDomain(domain.get(), name, what);
    DestroyIfActive(domain.get(), what);
  });
}

void LibvirtHypervisor::Reboot(const std::string& name) {
  Run([&](virConnectPtr conn) {
    const std::string what = "reboot domain " + name;
    DomainHandle domain = LookupDomain(conn, name, what);
    RequireGriddDomain(domain.get(), name, what);
    if (!IsActive(domain.get(), what)) {
      CreateIfInactive(domain.get(), what);
      return;
    }
    if (virDomainReboot(domain.get(), 0) == 0) return;
    LastError error = TakeLastError();
    if (!IsUnsupported(error.code)) ThrowError(error, what);
    spdlog::debug("{}: reboot unsupported ({}); destroying and starting", what, error.message);
    DestroyIfActive(domain.get(), what);
    CreateIfInactive(domain.get(), what);
  });
}

PowerState LibvirtHypervisor::State(const std::string& name) {
  return Run([&](virConnectPtr conn) {
    const std::string what = "query domain " + name;
    DomainHandle domain = FindDomain(conn, name, what);
    if (!domain) return PowerState::kMissing;
    int state = 0;
    int reason = 0;
    if (virDomainGetState(domain.get(), &state, &reason, 0) == 0) return MapState(state);
    LastError error = TakeLastError();
    if (error.code == VIR_ERR_NO_DOMAIN) return PowerState::kMissing;
    ThrowError(error, what);
  });
}

void LibvirtHypervisor::EnsureDhcpReservation(const DhcpReservation& reservation) {
  Run([&](virConnectPtr conn) {
    const std::string mac = Lowercase(reservation.mac);
    const std::string what =
        "reserve " + reservation.ip + " for " + mac + " on network " + reservation.network;
    NetworkHandle network = LookupNetwork(conn, reservation.network, what);
    // Two attempts: a concurrent reservation for the same MAC can win between read and add.
    for (int attempt = 0;; ++attempt) {
      std::vector<DhcpHost> stale;
      std::set<std::string> taken_names;
      for (DhcpHost& host : DhcpHosts(network.get(), what)) {
        if (host.mac == mac && host.ip == reservation.ip) return;
        // The MAC moved to another address, or the address still names a server that is
        // gone: gridd allocates the addresses of its networks, so the entry is stale.
        if (host.mac == mac || host.ip == reservation.ip) {
          stale.push_back(std::move(host));
        } else if (!host.name.empty()) {
          taken_names.insert(host.name);
        }
      }
      for (const DhcpHost& host : stale) {
        UpdateDhcpHost(network.get(), VIR_NETWORK_UPDATE_COMMAND_DELETE,
                       HostXml(DhcpHost{host.mac, host.ip, ""}), what + ": remove stale entry");
      }
      const DhcpHost wanted{mac, reservation.ip, ReservationName(reservation, mac, taken_names)};
      if (virNetworkUpdate(network.get(), VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                           VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, HostXml(wanted).c_str(),
                           NetworkUpdateFlags(network.get(), what)) == 0) {
        return;
      }
      LastError error = TakeLastError();
      if (attempt > 0 || error.code != VIR_ERR_OPERATION_INVALID) ThrowError(error, what);
    }
  });
}

void LibvirtHypervisor::RemoveDhcpReservation(const DhcpReservation& reservation) {
  Run([&](virConnectPtr conn) {
    const std::string mac = Lowercase(reservation.mac);
    const std::string what =
        "remove DHCP reservation for " + mac + " on network " + reservation.network;
    NetworkHandle network = LookupNetwork(conn, reservation.network, what);
    for (const DhcpHost& host : DhcpHosts(network.get(), what)) {
      if (host.mac != mac) continue;
      if (virNetworkUpdate(network.get(), VIR_NETWORK_UPDATE_COMMAND_DELETE,
                           VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
                           HostXml(DhcpHost{mac, host.ip, ""}).c_str(),
                           NetworkUpdateFlags(network.get(), what)) == 0) {
        continue;
      }
      LastError error = TakeLastError();
      // Removed concurrently: the goal is reached.
      if (error.code != VIR_ERR_OPERATION_INVALID) ThrowError(error, what);
    }
  });
}

void LibvirtHypervisor::EnsureRawVolume(const RawVolume& raw) {
  if (const LocalPool* local = Local(raw.storage_pool)) {
    if (!local->Exists(raw.volume)) local->WriteFile(raw.volume, raw.content);
    return;
  }
  Run([&](virConnectPtr conn) {
    const std::string what = "write volume " + raw.volume;
    PoolHandle pool = LookupPool(conn, raw.storage_pool, what);
    if (FindVolumeRefreshing(pool.get(), raw.volume, what)) return;
    const std::string xml = NewVolumeXml(raw.volume, raw.content.size(), "raw");
    VolumeHandle created(virStorageVolCreateXML(pool.get(), xml.c_str(), 0));
    if (!created) {
      LastError error = TakeLastError();
      if (error.code == VIR_ERR_STORAGE_VOL_EXIST) return;
      ThrowError(error, what + ": create in pool " + raw.storage_pool);
    }
    size_t offset = 0;
    const bool uploaded =
        UploadVolume(conn, created.get(), raw.content.size(), [&](char* out, size_t want) {
          const size_t n = std::min(want, raw.content.size() - offset);
          std::copy_n(raw.content.data() + offset, n, out);
          offset += n;
          return n;
        });
    if (!uploaded) {
      LastError error = TakeLastError();
      DiscardVolume(created.get(), what);
      ThrowError(error, what + ": upload");
    }
  });
}

void LibvirtHypervisor::ImportQcow2(const std::string& storage_pool, const std::string& volume,
                                    const std::string& source) {
  const std::string what = "import image " + volume;
  if (const LocalPool* local = Local(storage_pool)) {
    local->Import(volume, source);
    return;
  }
  const uint64_t virtual_size = CheckQcow2(source, what);
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(source, ec);
  if (ec) throw HypervisorError(HypervisorErrorKind::kInvalid, what + ": " + ec.message());
  Run([&](virConnectPtr conn) {
    PoolHandle pool = LookupPool(conn, storage_pool, what);
    // Servers' overlays read the image: replacing it under them would corrupt their disks.
    if (FindVolumeRefreshing(pool.get(), volume, what)) {
      throw HypervisorError(HypervisorErrorKind::kInvalid,
                            what + ": pool " + storage_pool + " already has " + volume);
    }
    const std::string xml = NewVolumeXml(volume, virtual_size, "qcow2");
    VolumeHandle created(virStorageVolCreateXML(pool.get(), xml.c_str(), 0));
    if (!created) ThrowLastError(what + ": create in pool " + storage_pool);
    std::ifstream file(source, std::ios::binary);
    const bool uploaded =
        file && UploadVolume(conn, created.get(), file_size, [&](char* out, size_t want) {
          file.read(out, static_cast<std::streamsize>(want));
          return static_cast<size_t>(file.gcount());
        });
    if (!uploaded) {
      LastError error = TakeLastError();
      DiscardVolume(created.get(), what);
      if (error.code == VIR_ERR_OK) error.message = "cannot read " + source;
      ThrowError(error, what + ": upload");
    }
  });
}

void LibvirtHypervisor::EnsureDirectoryPool(const std::string& storage_pool,
                                            const std::string& path) {
  Run([&](virConnectPtr conn) {
    const std::string what = "storage pool " + storage_pool;
    PoolHandle pool(virStoragePoolLookupByName(conn, storage_pool.c_str()));
    if (!pool) {
      LastError error = TakeLastError();
      if (error.code == VIR_ERR_NO_SUPPORT) {
        // QEMU's embedded driver has no storage driver: gridd keeps the pool's files itself.
        auto local = std::make_unique<LocalPool>(storage_pool, path);
        std::lock_guard lock(local_mu_);
        local_pools_[storage_pool] = std::move(local);
        return;
      }
      if (error.code != VIR_ERR_NO_STORAGE_POOL) ThrowError(error, what);
      const std::string xml = "<pool type='dir'>\n  <name>" + XmlEscape(storage_pool) +
                              "</name>\n  <target>\n    <path>" + XmlEscape(path) +
                              "</path>\n  </target>\n</pool>\n";
      pool.reset(virStoragePoolDefineXML(conn, xml.c_str(), 0));
      if (!pool) ThrowLastError(what + ": define at " + path);
      if (virStoragePoolBuild(pool.get(), 0) < 0) ThrowLastError(what + ": create " + path);
      if (virStoragePoolSetAutostart(pool.get(), 1) < 0) ThrowLastError(what + ": autostart");
    }
    const int active = virStoragePoolIsActive(pool.get());
    if (active < 0) ThrowLastError(what);
    if (active == 0 && virStoragePoolCreate(pool.get(), 0) < 0) ThrowLastError(what + ": start");
  });
}

void LibvirtHypervisor::WatchStates(StateListener listener) {
  SetStateListener(std::move(listener));
  if (source_ != nullptr) {
    RegisterLifecycle(source_->Acquire().get());
    return;
  }
  std::lock_guard lock(mu_);
  RegisterLifecycleLocked(connection_.get());
}

void LibvirtHypervisor::SetStateListener(StateListener listener) {
  std::lock_guard lock(listener_mu_);
  listener_ = std::move(listener);
}

void LibvirtHypervisor::RegisterLifecycle(virConnectPtr conn) { RegisterLifecycleLocked(conn); }

void LibvirtHypervisor::RegisterLifecycleLocked(virConnectPtr conn) {
  {
    std::lock_guard lock(listener_mu_);
    if (!listener_) return;
  }
  // The callback lives as long as the connection; a new connection registers again.
  if (virConnectDomainEventRegisterAny(conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                       VIR_DOMAIN_EVENT_CALLBACK(&LibvirtHypervisor::OnLifecycle),
                                       this, nullptr) < 0) {
    spdlog::warn("libvirt {}: no lifecycle events: {}", uri_, TakeLastError().message);
  }
}

int LibvirtHypervisor::OnLifecycle(virConnectPtr /*conn*/, virDomainPtr domain, int event,
                                   int /*detail*/, void* opaque) {
  auto* self = static_cast<LibvirtHypervisor*>(opaque);
  PowerState state;
  switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
    case VIR_DOMAIN_EVENT_RESUMED:
      state = PowerState::kRunning;
      break;
    case VIR_DOMAIN_EVENT_SUSPENDED:
      state = PowerState::kPaused;
      break;
    case VIR_DOMAIN_EVENT_STOPPED:
    case VIR_DOMAIN_EVENT_CRASHED:
      state = PowerState::kShutOff;
      break;
    case VIR_DOMAIN_EVENT_UNDEFINED:
      state = PowerState::kMissing;
      break;
    default:
      return 0;
  }
  const char* name = virDomainGetName(domain);
  if (name == nullptr) return 0;
  std::lock_guard lock(self->listener_mu_);
  if (self->listener_) self->listener_(name, state);
  return 0;
}

std::vector<GriddDomain> LibvirtHypervisor::ListGriddDomains() {
  return Run([&](virConnectPtr conn) {
    const std::string what = "list domains";
    virDomainPtr* raw = nullptr;
    const int count = virConnectListAllDomains(conn, &raw, 0);
    if (count < 0) ThrowLastError(what);
    // Own every handle before anything can throw.
    std::vector<DomainHandle> domains;
    domains.reserve(count);
    for (int i = 0; i < count; ++i) domains.emplace_back(raw[i]);
    free(raw);

    std::vector<GriddDomain> result;
    for (const DomainHandle& domain : domains) {
      const char* raw_name = virDomainGetName(domain.get());
      if (raw_name == nullptr) ThrowLastError(what);
      const std::string name = raw_name;
      const std::string context = fmt::format("{}: {}", what, name);
      try {
        std::optional<Ownership> owner = GriddMetadata(domain.get(), context);
        if (!owner) continue;
        result.push_back(
            GriddDomain{name, owner->server_id, owner->account_id, StateOf(domain.get(), context)});
      } catch (const LibvirtError& error) {
        if (error.code() != VIR_ERR_NO_DOMAIN) throw;  // undefined while listing: skip
      }
    }
    return result;
  });
}

HostCapacity LibvirtHypervisor::Capacity() {
  return Run([&](virConnectPtr conn) {
    virNodeInfo info{};
    if (virNodeGetInfo(conn, &info) < 0) ThrowLastError("query host capacity");
    return HostCapacity{static_cast<uint64_t>(info.memory) / 1024, info.cpus};
  });
}

std::string LibvirtHypervisor::NetworkXmlForTest(const std::string& network) {
  return Run([&](virConnectPtr conn) {
    NetworkHandle handle = LookupNetwork(conn, network, "network XML");
    char* xml = virNetworkGetXMLDesc(handle.get(), 0);
    if (xml == nullptr) ThrowLastError("network XML " + network);
    return TakeString(xml);
  });
}

}  // namespace gridd::virt
