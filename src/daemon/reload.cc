#include "daemon/reload.h"

#include <algorithm>
#include <map>
#include <sstream>

namespace gridd::daemon {

std::vector<std::pair<std::string, std::string>> ConfigValues(const Config& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const ConfigKey& key : ConfigKeys()) {
    if (key.value) out.emplace_back(key.path(), key.value(c));
  }
  std::ostringstream datacenters, pools, images;
  for (const auto& d : c.datacenters)
    datacenters << d.id << ':' << d.name << ':' << d.description << ';';
  for (const auto& p : c.ip_pools) {
    pools << p.datacenter << ':' << (p.is_public ? "public" : "private") << ':' << p.cidr << ':'
          << p.network << ';';
  }
  for (const auto& i : c.images) {
    images << i.name << ':' << i.friendly_name << ':' << i.description << ':' << i.os << ':'
           << i.architecture << ':' << i.type << ':' << i.volume << ':' << i.price << ';';
  }
  out.emplace_back("datacenter", datacenters.str());
  out.emplace_back("ippool", pools.str());
  out.emplace_back("image", images.str());
  return out;
}

ReloadReport ApplyReload(Config& running, const Config& fresh,
                         const std::vector<LiveSetting>& live) {
  const auto before = ConfigValues(running);
  const auto after = ConfigValues(fresh);
  std::map<std::string, std::string> old_values(before.begin(), before.end());
  ReloadReport report;
  std::vector<std::string> changed;
  for (const auto& [key, value] : after) {
    if (old_values[key] != value) changed.push_back(key);
  }
  auto describe = [&](const std::string& key) {
    const auto value = std::find_if(after.begin(), after.end(),
                                    [&](const auto& entry) { return entry.first == key; });
    if (key == "datacenter" || key == "ippool" || key == "image") return "[[" + key + "]] entries";
    return key + ": " + old_values[key] + " -> " + value->second;
  };
  for (const auto& setting : live) {
    if (std::find(changed.begin(), changed.end(), setting.key) == changed.end()) continue;
    setting.apply(fresh, running);
    report.applied.push_back(describe(setting.key));
  }
  for (const auto& key : changed) {
    const bool is_live = std::any_of(
        live.begin(), live.end(), [&](const LiveSetting& setting) { return setting.key == key; });
    if (!is_live) report.restart_needed.push_back(describe(key));
  }
  return report;
}

}  // namespace gridd::daemon
