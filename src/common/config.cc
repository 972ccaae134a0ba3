#include "gridd/common/config.h"

#include <toml++/toml.h>

#include <charconv>
#include <cstdio>
#include <stdexcept>

namespace gridd {
namespace {

[[noreturn]] void Fail(const std::filesystem::path& path, const std::string& key,
                       const std::string& what) {
  throw std::runtime_error(path.string() + ": " + key + ": " + what);
}

template <typename T>
void Read(const toml::table& table, const std::filesystem::path& path, const std::string& section,
          const std::string& key, T& out) {
  const toml::node* node = table.at_path(section + "." + key).node();
  if (node == nullptr) return;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!node->is_string()) Fail(path, section + "." + key, "expected a string");
    out = node->as_string()->get();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!node->is_boolean()) Fail(path, section + "." + key, "expected true or false");
    out = node->as_boolean()->get();
  } else if constexpr (std::is_same_v<T, double>) {
    auto value = node->value<double>();
    if (!value) Fail(path, section + "." + key, "expected a number");
    out = *value;
  } else {
    if (!node->is_integer()) Fail(path, section + "." + key, "expected an integer");
    int64_t value = node->as_integer()->get();
    if (value < 0 || value > static_cast<int64_t>(std::numeric_limits<T>::max())) {
      Fail(path, section + "." + key, "out of range");
    }
    out = static_cast<T>(value);
  }
}

std::string RequiredString(const toml::table& entry, const std::filesystem::path& path,
                           const std::string& where, const std::string& key) {
  auto value = entry[key].value<std::string>();
  if (!value || value->empty()) Fail(path, where + "." + key, "required string missing");
  return *value;
}

std::string OptionalString(const toml::table& entry, const std::filesystem::path& path,
                           const std::string& where, const std::string& key,
                           const std::string& fallback = "") {
  const toml::node* node = entry.get(key);
  if (node == nullptr) return fallback;
  if (!node->is_string()) Fail(path, where + "." + key, "expected a string");
  return node->as_string()->get();
}

double OptionalNumber(const toml::table& entry, const std::filesystem::path& path,
                      const std::string& where, const std::string& key) {
  const toml::node* node = entry.get(key);
  if (node == nullptr) return 0.0;
  auto value = node->value<double>();
  if (!value || node->is_string()) Fail(path, where + "." + key, "expected a number");
  return *value;
}

// test:///relative/… is awkward to write; "test://./node.xml" means "next to this file".
std::string ResolveLibvirtUri(const std::string& uri, const std::filesystem::path& base) {
  const std::string prefix = "test://./";
  if (uri.rfind(prefix, 0) != 0) return uri;
  std::filesystem::path node = base / uri.substr(prefix.size());
  return "test://" + std::filesystem::absolute(node).lexically_normal().string();
}

bool LogLevelValid(const std::string& level) {
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  for (const char* known : kLevels) {
    if (level == known) return true;
  }
  return false;
}

}  // namespace

void ParseListen(const std::string& text, std::string& host, uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw std::runtime_error("listen address must be HOST:PORT, got '" + text + "'");
  }
  std::string h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  } else if (h.find_first_of("[]:") != std::string::npos) {
    // An IPv6 host must be bracketed: "::1" alone would read as host ":" port 1.
    throw std::runtime_error("listen address must be HOST:PORT (IPv6 as [ADDRESS]:PORT), got '" +
                             text + "'");
  }
  if (h.empty()) throw std::runtime_error("listen address has an empty host: '" + text + "'");
  unsigned value = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last || value > 65535) {
    throw std::runtime_error("listen port must be 0-65535, got '" + text.substr(colon + 1) + "'");
  }
  host = h;
  port = static_cast<uint16_t>(value);
}

Config LoadConfig(const std::filesystem::path& path) {
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error& error) {
    throw std::runtime_error(path.string() + ": " + std::string(error.description()) + " at line " +
                             std::to_string(error.source().begin.line));
  }
  const std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  Config config;

  std::string listen;
  Read(root, path, "server", "listen", listen);
  if (!listen.empty()) {
    try {
      ParseListen(listen, config.listen_host, config.listen_port);
    } catch (const std::exception& error) {
      Fail(path, "server.listen", error.what());
    }
  }
  Read(root, path, "server", "threads", config.http_threads);
  Read(root, path, "server", "max_header_bytes", config.max_header_bytes);
  Read(root, path, "server", "max_body_bytes", config.max_body_bytes);
  Read(root, path, "server", "idle_timeout_seconds", config.idle_timeout_seconds);
  if (config.http_threads < 1) Fail(path, "server.threads", "must be at least 1");
  Read(root, path, "server", "plain_http", config.plain_http);
  Read(root, path, "server", "max_connections", config.max_connections);
  Read(root, path, "server", "max_connections_per_address", config.max_connections_per_address);
  Read(root, path, "server", "max_header_count", config.max_header_count);
  Read(root, path, "server", "max_request_line_bytes", config.max_request_line_bytes);
  Read(root, path, "server", "read_timeout_seconds", config.read_timeout_seconds);
  if (config.max_connections < 1) Fail(path, "server.max_connections", "must be at least 1");
  if (config.max_connections_per_address < 1) {
    Fail(path, "server.max_connections_per_address", "must be at least 1");
  }
  if (config.max_header_count < 1) Fail(path, "server.max_header_count", "must be at least 1");
  if (config.max_request_line_bytes < 64) {
    Fail(path, "server.max_request_line_bytes", "must be at least 64");
  }
  if (config.read_timeout_seconds < 1)
    Fail(path, "server.read_timeout_seconds", "must be at least 1");

  std::string tls_listen;
  Read(root, path, "tls", "listen", tls_listen);
  if (!tls_listen.empty()) {
    try {
      ParseListen(tls_listen, config.tls_listen_host, config.tls_listen_port);
    } catch (const std::exception& error) {
      Fail(path, "tls.listen", error.what());
    }
  }
  for (auto [key, out] : {std::pair{"cert_file", &config.tls_cert_file},
                          std::pair{"key_file", &config.tls_key_file}}) {
    std::string file;
    Read(root, path, "tls", key, file);
    if (!file.empty()) {
      std::filesystem::path p(file);
      *out = p.is_absolute() ? p : (base / p).lexically_normal();
    }
  }
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    Fail(path, "tls.cert_file", "tls.cert_file and tls.key_file go together");
  }

  Read(root, path, "ratelimit", "enabled", config.rate_limit_enabled);
  for (auto [key, out] : {std::pair{"per_key_rate", &config.per_key_rate},
                          std::pair{"per_key_burst", &config.per_key_burst},
                          std::pair{"per_address_rate", &config.per_address_rate},
                          std::pair{"per_address_burst", &config.per_address_burst},
                          std::pair{"failed_auth_rate", &config.failed_auth_rate},
                          std::pair{"failed_auth_burst", &config.failed_auth_burst}}) {
    Read(root, path, "ratelimit", key, *out);
    if (!(*out > 0)) Fail(path, std::string("ratelimit.") + key, "must be a number above 0");
  }
  for (auto [key, burst] : {std::pair{"per_key_burst", config.per_key_burst},
                            std::pair{"per_address_burst", config.per_address_burst},
                            std::pair{"failed_auth_burst", config.failed_auth_burst}}) {
    if (burst < 1) Fail(path, std::string("ratelimit.") + key, "must be at least 1");
  }

  std::string data_dir;
  Read(root, path, "storage", "data_dir", data_dir);
  if (!data_dir.empty()) {
    std::filesystem::path dir(data_dir);
    config.data_dir = dir.is_absolute() ? dir : (base / dir).lexically_normal();
  }

  Read(root, path, "auth", "signature_window_past_seconds", config.signature_window_past_seconds);
  Read(root, path, "auth", "signature_window_future_seconds",
       config.signature_window_future_seconds);
  if (const toml::node* node = root.at_path("auth.hmac_only_keys").node()) {
    const toml::array* keys = node->as_array();
    if (keys == nullptr) Fail(path, "auth.hmac_only_keys", "expected a list of API keys");
    for (const auto& entry : *keys) {
      auto key = entry.value<std::string>();
      if (!key || key->empty()) Fail(path, "auth.hmac_only_keys", "expected API keys as strings");
      config.hmac_only_keys.push_back(*key);
    }
  }

  Read(root, path, "libvirt", "uri", config.libvirt_uri);
  config.libvirt_uri = ResolveLibvirtUri(config.libvirt_uri, base);
  Read(root, path, "libvirt", "storage_pool", config.storage_pool);
  Read(root, path, "libvirt", "shutdown_timeout_seconds", config.shutdown_timeout_seconds);
  if (config.shutdown_timeout_seconds < 0) {
    Fail(path, "libvirt.shutdown_timeout_seconds", "must be 0 or more");
  }
  std::string pool_path;
  Read(root, path, "libvirt", "pool_path", pool_path);
  if (!pool_path.empty()) {
    std::filesystem::path dir(pool_path);
    config.pool_path = dir.is_absolute() ? dir : (base / dir).lexically_normal();
  }
  Read(root, path, "libvirt", "domain_type", config.domain_type);
  if (config.domain_type != "auto" && config.domain_type != "kvm" && config.domain_type != "qemu") {
    Fail(path, "libvirt.domain_type", "must be \"auto\", \"kvm\" or \"qemu\"");
  }
  Read(root, path, "libvirt", "console_log_max_bytes", config.console_log_max_bytes);
  if (config.console_log_max_bytes < 4096) {
    Fail(path, "libvirt.console_log_max_bytes", "must be at least 4096");
  }

  // --- [hosts]: host connections (keepalive, Down detection, reconnection) ---
  Read(root, path, "hosts", "down_after_seconds", config.host_down_after_seconds);
  if (config.host_down_after_seconds < 1 || config.host_down_after_seconds > 3600) {
    Fail(path, "hosts.down_after_seconds", "must be between 1 and 3600");
  }
  Read(root, path, "hosts", "keepalive_interval_seconds", config.host_keepalive_interval_seconds);
  if (config.host_keepalive_interval_seconds < 1 || config.host_keepalive_interval_seconds > 600) {
    Fail(path, "hosts.keepalive_interval_seconds", "must be between 1 and 600");
  }
  Read(root, path, "hosts", "keepalive_count", config.host_keepalive_count);
  if (config.host_keepalive_count < 1 || config.host_keepalive_count > 100) {
    Fail(path, "hosts.keepalive_count", "must be between 1 and 100");
  }
  Read(root, path, "hosts", "reconnect_initial_ms", config.host_reconnect_initial_ms);
  Read(root, path, "hosts", "reconnect_max_seconds", config.host_reconnect_max_seconds);
  if (config.host_reconnect_initial_ms < 10) {
    Fail(path, "hosts.reconnect_initial_ms", "must be at least 10");
  }
  if (config.host_reconnect_max_seconds < 1 ||
      int64_t{config.host_reconnect_max_seconds} * 1000 < config.host_reconnect_initial_ms) {
    Fail(path, "hosts.reconnect_max_seconds",
         "must be at least 1 and not below hosts.reconnect_initial_ms");
  }
  // --- end of [hosts] ---

  Read(root, path, "jobs", "workers", config.job_workers);
  Read(root, path, "jobs", "lease_seconds", config.job_lease_seconds);
  Read(root, path, "jobs", "max_attempts", config.job_max_attempts);
  Read(root, path, "jobs", "retry_base_ms", config.job_retry_base_ms);
  Read(root, path, "jobs", "retry_max_ms", config.job_retry_max_ms);
  if (config.job_workers < 1) Fail(path, "jobs.workers", "must be at least 1");
  if (config.job_max_attempts < 1) Fail(path, "jobs.max_attempts", "must be at least 1");
  Read(root, path, "jobs", "deadline_seconds", config.job_deadline_seconds);
  if (config.job_deadline_seconds < 1) Fail(path, "jobs.deadline_seconds", "must be at least 1");
  if (const toml::node* node = root.at_path("jobs.deadlines").node()) {
    const toml::table* deadlines = node->as_table();
    if (deadlines == nullptr) Fail(path, "jobs.deadlines", "expected a table of command = seconds");
    for (const auto& [command, value] : *deadlines) {
      const std::string key = "jobs.deadlines." + std::string(command.str());
      auto seconds = value.value<int64_t>();
      if (!seconds || value.is_floating_point() || *seconds < 1 || *seconds > 86400) {
        Fail(path, key, "must be a whole number of seconds between 1 and 86400");
      }
      config.job_deadlines_by_command.emplace_back(std::string(command.str()),
                                                   static_cast<int>(*seconds));
    }
  }

  Read(root, path, "reconciler", "interval_seconds", config.reconcile_interval_seconds);
  Read(root, path, "reconciler", "remove_orphans", config.reconcile_remove_orphans);
  if (config.reconcile_interval_seconds < 0) {
    Fail(path, "reconciler.interval_seconds", "must be 0 (only at start) or more");
  }

  Read(root, path, "images", "trash_retention_hours", config.image_trash_retention_hours);
  if (config.image_trash_retention_hours < 0 || config.image_trash_retention_hours > 87600) {
    Fail(path, "images.trash_retention_hours", "must be 0 (never purge) to 87600 (ten years)");
  }

  Read(root, path, "loadbalancer", "enabled", config.lb_enabled);
  Read(root, path, "loadbalancer", "haproxy", config.haproxy_binary);
  Read(root, path, "loadbalancer", "health_check_interval_ms", config.lb_health_check_interval_ms);
  Read(root, path, "loadbalancer", "status_interval_ms", config.lb_status_interval_ms);
  if (config.lb_health_check_interval_ms < 100) {
    Fail(path, "loadbalancer.health_check_interval_ms", "must be at least 100");
  }
  if (config.lb_status_interval_ms < 100)
    Fail(path, "loadbalancer.status_interval_ms", "must be at least 100");
  if (const toml::node* node = root.at_path("loadbalancer.vip_networks").node()) {
    const toml::array* networks = node->as_array();
    if (networks == nullptr) Fail(path, "loadbalancer.vip_networks", "expected a list of CIDRs");
    for (const auto& entry : *networks) {
      auto cidr = entry.value<std::string>();
      unsigned a = 0, b = 0, c = 0, d = 0, bits = 0;
      char tail = 0;
      if (!cidr ||
          std::sscanf(cidr->c_str(), "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &bits, &tail) != 5 ||
          a > 255 || b > 255 || c > 255 || d > 255 || bits > 32) {
        Fail(path, "loadbalancer.vip_networks", "expected IPv4 CIDRs like \"127.0.0.0/8\"");
      }
      config.lb_vip_networks.push_back(*cidr);
    }
  }

  Read(root, path, "billing", "period_start_day", config.billing_period_start_day);
  if (config.billing_period_start_day < 1 || config.billing_period_start_day > 28) {
    Fail(path, "billing.period_start_day", "must be 1-28 (every month has that day)");
  }
  Read(root, path, "billing", "memory_allotment_gb_hours",
       config.billing_memory_allotment_gb_hours);
  Read(root, path, "billing", "memory_allotment_price", config.billing_memory_allotment_price);
  Read(root, path, "billing", "memory_gb_hour_price", config.billing_memory_gb_hour_price);
  Read(root, path, "billing", "transfer_allotment_gb", config.billing_transfer_allotment_gb);
  Read(root, path, "billing", "transfer_gb_price", config.billing_transfer_gb_price);
  Read(root, path, "billing", "bill_powered_off_servers", config.billing_powered_off_servers);
  for (const auto& [key, price] :
       {std::pair{"memory_allotment_price", config.billing_memory_allotment_price},
        std::pair{"memory_gb_hour_price", config.billing_memory_gb_hour_price},
        std::pair{"transfer_gb_price", config.billing_transfer_gb_price}}) {
    if (!(price >= 0) || price > 1e9)
      Fail(path, std::string("billing.") + key, "must be a price >= 0");
  }

  Read(root, path, "accounts", "ip_block_size", config.ip_block_size);
  Read(root, path, "accounts", "initial_account", config.initial_account);
  if (config.ip_block_size < 1) Fail(path, "accounts.ip_block_size", "must be at least 1");

  Read(root, path, "log", "level", config.log_level);
  Read(root, path, "log", "access_log", config.access_log);
  if (!LogLevelValid(config.log_level)) {
    Fail(path, "log.level", "must be trace, debug, info, warn, error, critical or off");
  }
  Read(root, path, "log", "format", config.log_format);
  if (config.log_format != "text" && config.log_format != "json") {
    Fail(path, "log.format", "must be \"text\" or \"json\"");
  }
  Read(root, path, "log", "output", config.log_output);
  if (config.log_output != "auto" && config.log_output != "console" &&
      config.log_output != "journald") {
    Fail(path, "log.output", "must be \"auto\", \"console\" or \"journald\"");
  }

  Read(root, path, "metrics", "enabled", config.metrics_enabled);
  std::string metrics_listen;
  Read(root, path, "metrics", "listen", metrics_listen);
  if (!metrics_listen.empty()) {
    try {
      ParseListen(metrics_listen, config.metrics_host, config.metrics_port);
    } catch (const std::exception& error) {
      Fail(path, "metrics.listen", error.what());
    }
  }

  // ---- [scheduler]: hosts and placement (docs/operations.md, "Hosts and datacenters").
  Read(root, path, "scheduler", "policy", config.scheduler_policy);
  if (config.scheduler_policy != "spread" && config.scheduler_policy != "pack") {
    Fail(path, "scheduler.policy", "must be \"spread\" or \"pack\"");
  }
  // ---- end of [scheduler]

  if (auto* list = root["datacenter"].as_array()) {
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string where = "datacenter[" + std::to_string(i) + "]";
      auto* entry = list->get(i)->as_table();
      if (entry == nullptr) Fail(path, where, "expected a table");
      DatacenterSeed seed;
      auto id = (*entry)["id"].value<int64_t>();
      if (!id || *id < 1) Fail(path, where + ".id", "required positive integer");
      seed.id = *id;
      seed.name = RequiredString(*entry, path, where, "name");
      seed.description =
          OptionalString(*entry, path, where, "description", seed.name + " Datacenter");
      config.datacenters.push_back(seed);
    }
  }
  if (auto* list = root["ippool"].as_array()) {
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string where = "ippool[" + std::to_string(i) + "]";
      auto* entry = list->get(i)->as_table();
      if (entry == nullptr) Fail(path, where, "expected a table");
      IpPoolSeed seed;
      seed.datacenter = RequiredString(*entry, path, where, "datacenter");
      std::string type = RequiredString(*entry, path, where, "type");
      if (type != "public" && type != "private") Fail(path, where + ".type", "public or private");
      seed.is_public = type == "public";
      seed.cidr = RequiredString(*entry, path, where, "cidr");
      // Empty or absent: no libvirt network; the servers get no NIC.
      seed.network = OptionalString(*entry, path, where, "network");
      config.ip_pools.push_back(seed);
    }
  }
  if (auto* list = root["image"].as_array()) {
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string where = "image[" + std::to_string(i) + "]";
      auto* entry = list->get(i)->as_table();
      if (entry == nullptr) Fail(path, where, "expected a table");
      ImageSeed seed;
      seed.name = RequiredString(*entry, path, where, "name");
      seed.friendly_name = OptionalString(*entry, path, where, "friendly_name", seed.name);
      seed.description = OptionalString(*entry, path, where, "description");
      seed.os = RequiredString(*entry, path, where, "os");
      seed.architecture = OptionalString(*entry, path, where, "architecture", "64-bit");
      seed.type = OptionalString(*entry, path, where, "type", "Web Server");
      seed.volume = RequiredString(*entry, path, where, "volume");
      seed.price = OptionalNumber(*entry, path, where, "price");
      config.images.push_back(seed);
    }
  }
  return config;
}

}  // namespace gridd
