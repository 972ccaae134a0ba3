// gridd's configuration: one TOML file (config/gridd.toml documents every key), with command
// line flags applied on top. Loading validates every value and names the offending key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gridd {

struct DatacenterSeed {
  int64_t id = 0;
  std::string name;
  std::string description;
};

struct IpPoolSeed {
  std::string datacenter;
  bool is_public = true;
  std::string cidr;
  std::string network;  // libvirt network that carries the pool's addresses
};

struct ImageSeed {
  std::string name;           // unique image name, e.g. "debian-12-amd64"
  std::string friendly_name;  // what customers see
  std::string description;
  std::string os;            // server.os / image.os option name
  std::string architecture;  // "32-bit" or "64-bit"
  std::string type = "Web Server";
  std::string volume;  // storage volume in the libvirt pool
  double price = 0;
};

struct Config {
  // [server]
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  int http_threads = 4;
  uint32_t max_header_bytes = 8 * 1024;
  uint32_t max_body_bytes = 1024 * 1024;
  int idle_timeout_seconds = 30;
  // Plain HTTP can be switched off when TLS serves the API.
  bool plain_http = true;
  // Hardening against hostile clients (docs/operations.md, "TLS and rate limits").
  int max_connections = 4096;
  int max_connections_per_address = 256;
  int max_header_count = 64;
  uint32_t max_request_line_bytes = 4096;
  int read_timeout_seconds = 10;  // a whole request (header and body) must arrive in this time
  // [tls]: an HTTPS listener when tls_listen_host is set.
  std::string tls_listen_host;
  uint16_t tls_listen_port = 0;
  std::filesystem::path tls_cert_file;  // empty: <data_dir>/tls-cert.pem, self-signed
  std::filesystem::path tls_key_file;   // empty: <data_dir>/tls-key.pem
  // [ratelimit]: token buckets, rates in requests per second.
  bool rate_limit_enabled = true;
  double per_key_rate = 500;
  double per_key_burst = 5000;
  double per_address_rate = 1000;
  double per_address_burst = 10000;
  double failed_auth_rate = 2;
  double failed_auth_burst = 200;
  // [storage]
  std::filesystem::path data_dir = "gridd-data";
  // [auth]
  int signature_window_past_seconds = 600;
  int signature_window_future_seconds = 300;
  // Deprecated: API keys made HMAC-only at start (the policy is `gridctl apikey signing` now).
  std::vector<std::string> hmac_only_keys;
  // [libvirt]
  std::string libvirt_uri;
  std::string storage_pool = "gridd";
  int shutdown_timeout_seconds = 60;
  // Directory of the storage pool; gridd defines it when the pool does not exist (and keeps
  // the files itself on qemu:///embed, which has no storage driver). Empty: the pool must
  // exist, except on qemu:///embed, where it defaults to <data_dir>/pool.
  std::filesystem::path pool_path;
  // "kvm", "qemu" (software emulation) or "auto": kvm when /dev/kvm is usable.
  std::string domain_type = "auto";
  // [hosts]: the connection to each libvirt host (docs/operations.md, "Host connections").
  // A host is Down once it has not answered for this long.
  int host_down_after_seconds = 20;
  // libvirt keepalive: the connection is given up after `count` unanswered messages sent
  // every `interval` seconds; the host is asked whether it is alive as often.
  int host_keepalive_interval_seconds = 5;
  int host_keepalive_count = 3;
  // Reconnection backoff: from the first wait, doubling up to the longest (jittered).
  int host_reconnect_initial_ms = 500;
  int host_reconnect_max_seconds = 30;
  // Each guest's serial console log is cut back to half this size when it grows past it.
  int64_t console_log_max_bytes = int64_t{1024} * 1024;
  // [jobs]
  int job_workers = 4;
  int job_lease_seconds = 300;
  int job_max_attempts = 5;
  int job_retry_base_ms = 1000;
  int job_retry_max_ms = 60000;
  // Longest a job may run, by job command name ("StartVirtualServer"…); others get the default.
  int job_deadline_seconds = 600;
  std::vector<std::pair<std::string, int>> job_deadlines_by_command;
  // [reconciler]
  int reconcile_interval_seconds = 60;  // 0: only at start
  bool reconcile_remove_orphans = false;
  // [images]
  int image_trash_retention_hours = 72;  // then a trashed image's volume is purged; 0: never
  // [loadbalancer]
  bool lb_enabled = false;
  std::string haproxy_binary = "/usr/sbin/haproxy";
  int lb_health_check_interval_ms = 1000;
  int lb_status_interval_ms = 1000;
  // IPv4 networks ("127.0.0.0/8") virtual IPs must lie in; empty allows any.
  std::vector<std::string> lb_vip_networks;
  // [billing] (myaccount.billing.get)
  int billing_period_start_day = 1;  // day of the month a billing period starts, 1-28 (UTC)
  int64_t billing_memory_allotment_gb_hours = 0;
  double billing_memory_allotment_price = 0;   // US$ per period for the allotment
  double billing_memory_gb_hour_price = 0.19;  // US$ per GB-hour over the allotment
  int64_t billing_transfer_allotment_gb = 0;
  double billing_transfer_gb_price = 0;     // US$ per outbound GB over the allotment
  bool billing_powered_off_servers = true;  // deployed RAM is billed whether on or off
  // [accounts]
  int ip_block_size = 16;
  std::string initial_account = "default";
  // [log]
  std::string log_level = "info";
  bool access_log = true;
  std::string log_format = "text";  // "text" or "json"
  std::string log_output = "auto";  // "auto", "console" or "journald"
  // [metrics]
  bool metrics_enabled = true;
  std::string metrics_host = "127.0.0.1";
  uint16_t metrics_port = 9464;
  // [scheduler] -- placement of new servers on hosts.
  // "spread": the host with the most free RAM; "pack": the fullest host that still fits.
  std::string scheduler_policy = "spread";
  // Seeds applied idempotently at every start.
  std::vector<DatacenterSeed> datacenters;
  std::vector<IpPoolSeed> ip_pools;
  std::vector<ImageSeed> images;
};

// The parsed file as LoadConfig hands it to each key's parse function (config.cc).
struct ConfigSource;

// One key of the configuration file. LoadConfig parses and checks the file through the table
// of these (ConfigKeys), and `gridd --print-config-reference` prints the same table for
// docs/operations.md, so the reference cannot drift from what is parsed. Adding a key is adding
// one entry to the table in config.cc (and its field to Config).
struct ConfigKey {
  std::string section;       // "server"; a field of a repeated table ([[image]]): "image"
  bool repeated = false;     // the section is an array of tables
  std::string name;          // "listen"
  std::string type;          // as the reference shows it: "integer", "HOST:PORT", …
  std::string default_text;  // the default, as written in TOML or in words
  std::string allowed;       // what LoadConfig accepts beyond the type, in words; may be empty
  std::string description;
  // Reads the key into `config` when the file has it, then checks the value; throws
  // std::runtime_error naming the file, key and problem.
  std::function<void(const ConfigSource& source, Config& config)> parse;
  // The effective value as text (a reload compares these); empty for repeated-table fields.
  std::function<std::string(const Config& config)> value;

  std::string path() const { return section + "." + name; }
};

// Every key, in the order of the reference (and of config/gridd.toml).
const std::vector<ConfigKey>& ConfigKeys();

// The configuration reference in Markdown, as docs/operations.md carries it.
std::string ConfigReferenceMarkdown();

// Keys in the file at `path` that ConfigKeys does not know ("server.listn", "image[2].flavor"),
// sorted by section; LoadConfig ignores them, so gridd warns about them at start instead of a
// misspelt key going unnoticed.
std::vector<std::string> UnknownConfigKeys(const std::filesystem::path& path);

// Parses the TOML file at `path`. Relative paths in it (data_dir, and the node file of a
// test:/// libvirt URI written as "test://./file.xml") are resolved against the file's
// directory. Throws std::runtime_error naming the file, key and problem.
Config LoadConfig(const std::filesystem::path& path);

// Parses "HOST:PORT" (IPv6 as "[::1]:8080"). Throws std::runtime_error on bad input.
void ParseListen(const std::string& text, std::string& host, uint16_t& port);

}  // namespace gridd
