// Just enough XML for gridd's needs: escaping what it writes, and reading attributes out of the
// small, machine-formatted documents libvirt returns (network, volume and metadata XML). The
// virt layer links libvirt only, so this avoids pulling in a full XML parser.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gridd::virt {

// Escapes text for use in element content or a quoted attribute (either quote style). Bytes
// that cannot appear in an XML document at all (C0 controls other than tab/newline/CR,
// invalid UTF-8) become U+FFFD, so customer input can never make libvirt reject the XML.
std::string XmlEscape(std::string_view text);

// Resolves the five predefined entities and numeric character references.
std::string XmlUnescape(std::string_view text);

using XmlAttributes = std::map<std::string, std::string, std::less<>>;

// Attributes (unescaped) of every start or empty-element tag named `tag` in `xml`.
std::vector<XmlAttributes> FindElements(std::string_view xml, std::string_view tag);

// Attributes of the document's first element, whatever its name.
XmlAttributes RootAttributes(std::string_view xml);

// The content between <tag ...> and the matching </tag> of every `tag` element (no nesting of
// the same tag is expected in libvirt's formats).
std::vector<std::string_view> FindSections(std::string_view xml, std::string_view tag);

// libvirt's XML for a new storage volume `name` of `capacity` bytes in `format` (raw, qcow2).
// With `allocation`, the volume starts with that many bytes allocated (0: a volume that a
// stream fills, allocated as it is written); without, the pool's default applies.
std::string NewVolumeXml(std::string_view name, uint64_t capacity, std::string_view format,
                         std::optional<uint64_t> allocation = std::nullopt);

// A valid DNS label from a customer's server name: lowercase [a-z0-9-], no leading, trailing
// or doubled hyphens, at most 63 characters; `fallback` when nothing usable remains.
std::string DnsLabel(std::string_view name, std::string_view fallback);

}  // namespace gridd::virt
