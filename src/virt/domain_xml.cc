#include <string>

#include "gridd/virt/hypervisor.h"
#include "virt/xml_util.h"

namespace gridd::virt {

const char* PowerStateName(PowerState state) {
  switch (state) {
    case PowerState::kMissing:
      return "missing";
    case PowerState::kRunning:
      return "running";
    case PowerState::kShutOff:
      return "shutoff";
    case PowerState::kPaused:
      return "paused";
    case PowerState::kShuttingDown:
      return "shutting-down";
    case PowerState::kCrashed:
      return "crashed";
    case PowerState::kOther:
      return "other";
  }
  return "other";
}

std::string RenderDomainXml(const DomainSpec& spec, const std::string& disk_path,
                            const std::string& disk_format) {
  const auto e = [](const std::string& text) { return XmlEscape(text); };
  std::string xml;
  xml += "<domain type='" + e(spec.domain_type) + "'>\n";
  xml += "  <name>" + e(spec.name) + "</name>\n";
  if (!spec.uuid.empty()) xml += "  <uuid>" + e(spec.uuid) + "</uuid>\n";
  xml += "  <metadata>\n";
  xml += "    <gridd:server xmlns:gridd='" + e(kMetadataNamespace) + "' server-id='" +
         std::to_string(spec.server_id) + "' account-id='" + std::to_string(spec.account_id) +
         "'>\n";
  xml += "      <gridd:hostname>" + e(spec.hostname) + "</gridd:hostname>\n";
  xml += "      <gridd:description>" + e(spec.description) + "</gridd:description>\n";
  xml += "    </gridd:server>\n";
  xml += "  </metadata>\n";
  const std::string memory = std::to_string(spec.memory_mib);
  xml += "  <memory unit='MiB'>" + memory + "</memory>\n";
  xml += "  <currentMemory unit='MiB'>" + memory + "</currentMemory>\n";
  xml += "  <vcpu>" + std::to_string(spec.vcpus) + "</vcpu>\n";
  // No arch or machine: libvirt picks the host's defaults, so one template fits kvm and qemu.
  xml += "  <os>\n";
  xml += "    <type>hvm</type>\n";
  xml += "    <boot dev='hd'/>\n";
  xml += "  </os>\n";
  xml += "  <features>\n";
  xml += "    <acpi/>\n";
  xml += "  </features>\n";
  xml += "  <on_poweroff>destroy</on_poweroff>\n";
  xml += "  <on_reboot>restart</on_reboot>\n";
  xml += "  <on_crash>destroy</on_crash>\n";
  xml += "  <devices>\n";
  xml += "    <disk type='file' device='disk'>\n";
  // The format is always explicit: letting qemu probe it is a known guest-escape vector.
  xml += "      <driver name='qemu' type='" + e(disk_format) + "'/>\n";
  xml += "      <source file='" + e(disk_path) + "'/>\n";
  xml += "      <target dev='vda' bus='virtio'/>\n";
  xml += "    </disk>\n";
  if (!spec.seed_path.empty()) {
    // The NoCloud seed: an ISO image, read-only, its format stated like every disk's.
    xml += "    <disk type='file' device='disk'>\n";
    xml += "      <driver name='qemu' type='raw'/>\n";
    xml += "      <source file='" + e(spec.seed_path) + "'/>\n";
    xml += "      <target dev='vdb' bus='virtio'/>\n";
    xml += "      <readonly/>\n";
    xml += "    </disk>\n";
  }
  if (!spec.network.empty()) {
    xml += "    <interface type='network'>\n";
    xml += "      <mac address='" + e(spec.mac) + "'/>\n";
    xml += "      <source network='" + e(spec.network) + "'/>\n";
    xml += "      <model type='virtio'/>\n";
    xml += "    </interface>\n";
  }
  if (spec.console_log.empty()) {
    xml += "    <serial type='pty'>\n";
  } else {
    // QEMU appends every byte the guest writes; gridd caps the file's size.
    xml += "    <serial type='file'>\n";
    xml += "      <source path='" + e(spec.console_log) + "' append='on'/>\n";
  }
  xml += "      <target port='0'/>\n";
  xml += "    </serial>\n";
  if (spec.console_log.empty()) {
    // With a file, libvirt derives the console from the serial port itself.
    xml += "    <console type='pty'>\n";
    xml += "      <target type='serial' port='0'/>\n";
    xml += "    </console>\n";
  }
  xml += "  </devices>\n";
  xml += "</domain>\n";
  return xml;
}

}  // namespace gridd::virt
