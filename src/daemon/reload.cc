#include "daemon/reload.h"

#include <algorithm>
#include <map>
#include <sstream>

namespace gridd::daemon {
namespace {

std::string Listen(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Bool(bool value) { return value ? "true" : "false"; }

}  // namespace

std::vector<std::pair<std::string, std::string>> ConfigValues(const Config& c) {
  std::vector<std::pair<std::string, std::string>> out = {
      {"server.listen", Listen(c.listen_host, c.listen_port)},
      {"server.threads", std::to_string(c.http_threads)},
      {"server.max_header_bytes", std::to_string(c.max_header_bytes)},
      {"server.max_body_bytes", std::to_string(c.max_body_bytes)},
      {"server.idle_timeout_seconds", std::to_string(c.idle_timeout_seconds)},
      {"storage.data_dir", c.data_dir.string()},
      {"auth.signature_window_past_seconds", std::to_string(c.signature_window_past_seconds)},
      {"auth.signature_window_future_seconds", std::to_string(c.signature_window_future_seconds)},
      {"libvirt.uri", c.libvirt_uri},
      {"libvirt.storage_pool", c.storage_pool},
      {"libvirt.shutdown_timeout_seconds", std::to_string(c.shutdown_timeout_seconds)},
      {"jobs.workers", std::to_string(c.job_workers)},
      {"jobs.lease_seconds", std::to_string(c.job_lease_seconds)},
      {"jobs.max_attempts", std::to_string(c.job_max_attempts)},
      {"jobs.retry_base_ms", std::to_string(c.job_retry_base_ms)},
      {"jobs.retry_max_ms", std::to_string(c.job_retry_max_ms)},
      {"loadbalancer.enabled", Bool(c.lb_enabled)},
      {"loadbalancer.haproxy", c.haproxy_binary},
      {"loadbalancer.health_check_interval_ms", std::to_string(c.lb_health_check_interval_ms)},
      {"loadbalancer.status_interval_ms", std::to_string(c.lb_status_interval_ms)},
  };
  std::string networks;
  for (const auto& network : c.lb_vip_networks) networks += (networks.empty() ? "" : ",") + network;
  out.emplace_back("loadbalancer.vip_networks", "[" + networks + "]");
  out.emplace_back("accounts.ip_block_size", std::to_string(c.ip_block_size));
  out.emplace_back("accounts.initial_account", c.initial_account);
  out.emplace_back("log.level", c.log_level);
  out.emplace_back("log.access_log", Bool(c.access_log));
  out.emplace_back("log.format", c.log_format);
  out.emplace_back("log.output", c.log_output);
  out.emplace_back("metrics.enabled", Bool(c.metrics_enabled));
  out.emplace_back("metrics.listen", Listen(c.metrics_host, c.metrics_port));
  out.emplace_back("server.plain_http", Bool(c.plain_http));
  out.emplace_back("server.max_connections", std::to_string(c.max_connections));
  out.emplace_back("server.max_connections_per_address",
                   std::to_string(c.max_connections_per_address));
  out.emplace_back("server.max_header_count", std::to_string(c.max_header_count));
  out.emplace_back("server.max_request_line_bytes", std::to_string(c.max_request_line_bytes));
  out.emplace_back("server.read_timeout_seconds", std::to_string(c.read_timeout_seconds));
  out.emplace_back("tls.listen",
                   c.tls_listen_host.empty() ? "" : Listen(c.tls_listen_host, c.tls_listen_port));
  out.emplace_back("tls.cert_file", c.tls_cert_file.string());
  out.emplace_back("tls.key_file", c.tls_key_file.string());
  std::ostringstream limits;
  limits << Bool(c.rate_limit_enabled) << ' ' << c.per_key_rate << '/' << c.per_key_burst << ' '
         << c.per_address_rate << '/' << c.per_address_burst << ' ' << c.failed_auth_rate << '/'
         << c.failed_auth_burst;
  out.emplace_back("ratelimit", limits.str());
  std::string hmac_keys;
  for (const auto& key : c.hmac_only_keys) hmac_keys += (hmac_keys.empty() ? "" : ",") + key;
  out.emplace_back("auth.hmac_only_keys", "[" + hmac_keys + "]");

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
