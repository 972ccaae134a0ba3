#include "gridd/common/config.h"

#include <toml++/toml.h>

#include <charconv>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace gridd {

struct ConfigSource {
  const toml::table& root;
  const std::filesystem::path& path;
  const std::filesystem::path& base;  // the file's directory: relative paths start here

  [[noreturn]] void Fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error(path.string() + ": " + key + ": " + what);
  }

  const toml::node* Node(const std::string& key) const { return root.at_path(key).node(); }

  // Reads `key` ("section.name") into `out` when present, checking its TOML type.
  template <typename T>
  void Read(const std::string& key, T& out) const {
    const toml::node* node = Node(key);
    if (node == nullptr) return;
    if constexpr (std::is_same_v<T, std::string>) {
      if (!node->is_string()) Fail(key, "expected a string");
      out = node->as_string()->get();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!node->is_boolean()) Fail(key, "expected true or false");
      out = node->as_boolean()->get();
    } else if constexpr (std::is_same_v<T, double>) {
      auto value = node->value<double>();
      if (!value) Fail(key, "expected a number");
      out = *value;
    } else {
      if (!node->is_integer()) Fail(key, "expected an integer");
      int64_t value = node->as_integer()->get();
      if (value < 0 || value > static_cast<int64_t>(std::numeric_limits<T>::max())) {
        Fail(key, "out of range");
      }
      out = static_cast<T>(value);
    }
  }

  // A path relative to the file's directory, or empty when the key is absent or empty.
  std::filesystem::path ReadPath(const std::string& key) const {
    std::string text;
    Read(key, text);
    if (text.empty()) return {};
    std::filesystem::path p(text);
    return p.is_absolute() ? p : (base / p).lexically_normal();
  }
};

namespace {

std::string RequiredString(const toml::table& entry, const ConfigSource& source,
                           const std::string& where, const std::string& key) {
  auto value = entry[key].value<std::string>();
  if (!value || value->empty()) source.Fail(where + "." + key, "required string missing");
  return *value;
}

std::string OptionalString(const toml::table& entry, const ConfigSource& source,
                           const std::string& where, const std::string& key,
                           const std::string& fallback = "") {
  const toml::node* node = entry.get(key);
  if (node == nullptr) return fallback;
  if (!node->is_string()) source.Fail(where + "." + key, "expected a string");
  return node->as_string()->get();
}

double OptionalNumber(const toml::table& entry, const ConfigSource& source,
                      const std::string& where, const std::string& key) {
  const toml::node* node = entry.get(key);
  if (node == nullptr) return 0.0;
  auto value = node->value<double>();
  if (!value || node->is_string()) source.Fail(where + "." + key, "expected a number");
  return *value;
}

// test:///relative/… is awkward to write; "test://./node.xml" means "next to this file".
std::string ResolveLibvirtUri(const std::string& uri, const std::filesystem::path& base) {
  const std::string prefix = "test://./";
  if (uri.rfind(prefix, 0) != 0) return uri;
  std::filesystem::path node = base / uri.substr(prefix.size());
  return "test://" + std::filesystem::absolute(node).lexically_normal().string();
}

std::string ListenText(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// ------------------------------------------------------------------------- building entries

template <typename T>
std::string Text(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, double>) {
    std::ostringstream out;
    out << value;
    return out.str();
  } else {
    return std::to_string(value);
  }
}

// A value as TOML writes it, for the reference's default column.
template <typename T>
std::string Toml(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return "\"" + value + "\"";
  } else {
    return Text(value);
  }
}

template <typename T>
std::string TypeName() {
  if constexpr (std::is_same_v<T, std::string>) {
    return "string";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "boolean";
  } else if constexpr (std::is_same_v<T, double>) {
    return "number";
  } else {
    return "integer";
  }
}

// What a scalar key accepts beyond its type: `allowed` for the reference, `problem` for
// LoadConfig (the message after "key: ", or nullopt when the value is fine).
template <typename T>
struct Rule {
  std::string allowed;
  std::function<std::optional<std::string>(const T&)> problem;
};

template <typename T>
Rule<T> AtLeast(T least) {
  return {"at least " + Text(least), [least](const T& value) -> std::optional<std::string> {
            if (value < least) return "must be at least " + Text(least);
            return std::nullopt;
          }};
}

Rule<std::string> OneOf(std::vector<std::string> choices, std::string message) {
  std::string allowed;
  for (size_t i = 0; i < choices.size(); ++i) {
    allowed += std::string(i == 0                    ? ""
                           : i + 1 == choices.size() ? " or "
                                                     : ", ") +
               "`" + Toml(choices[i]) + "`";
  }
  return {allowed,
          [choices = std::move(choices),
           message = std::move(message)](const std::string& value) -> std::optional<std::string> {
            for (const auto& choice : choices) {
              if (value == choice) return std::nullopt;
            }
            return message;
          }};
}

// Rates and bursts of the token buckets: above 0, and a burst holds at least one request.
Rule<double> Rate() {
  return {"above 0", [](const double& value) -> std::optional<std::string> {
            if (!(value > 0)) return "must be a number above 0";
            return std::nullopt;
          }};
}
Rule<double> Burst() {
  return {"at least 1", [](const double& value) -> std::optional<std::string> {
            if (!(value > 0)) return "must be a number above 0";
            if (value < 1) return "must be at least 1";
            return std::nullopt;
          }};
}
Rule<double> Price() {
  return {"0 to 1e9", [](const double& value) -> std::optional<std::string> {
            if (!(value >= 0) || value > 1e9) return "must be a price >= 0";
            return std::nullopt;
          }};
}

template <typename T>
Rule<T> Between(T low, T high, std::string allowed, std::string message) {
  return {std::move(allowed),
          [low, high, message = std::move(message)](const T& value) -> std::optional<std::string> {
            if (value < low || value > high) return message;
            return std::nullopt;
          }};
}

// A key holding one value of Config: its default is the member's initial value.
template <typename T>
ConfigKey Scalar(std::string section, std::string name, T Config::*member, std::string description,
                 std::optional<Rule<std::type_identity_t<T>>> rule = std::nullopt) {
  ConfigKey key;
  key.section = std::move(section);
  key.name = std::move(name);
  key.type = TypeName<T>();
  key.default_text = Toml(Config{}.*member);
  if (rule) {
    key.allowed = rule->allowed;
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    key.allowed = "0 or more";
  }
  key.description = std::move(description);
  const std::string path = key.path();
  key.parse = [path, member, rule](const ConfigSource& source, Config& config) {
    source.Read(path, config.*member);
    if (rule) {
      if (auto problem = rule->problem(config.*member)) source.Fail(path, *problem);
    }
  };
  key.value = [member](const Config& config) { return Text(config.*member); };
  return key;
}

// A HOST:PORT key ("[::1]:8080" for IPv6) filling a host and a port member.
ConfigKey Listen(std::string section, std::string default_text, std::string description,
                 std::string Config::*host, uint16_t Config::*port) {
  ConfigKey key;
  key.section = std::move(section);
  key.name = "listen";
  key.type = "HOST:PORT";
  key.default_text = std::move(default_text);
  key.allowed = "port 0-65535; 0 picks a free port";
  key.description = std::move(description);
  const std::string path = key.path();
  key.parse = [path, host, port](const ConfigSource& source, Config& config) {
    std::string text;
    source.Read(path, text);
    if (text.empty()) return;
    try {
      ParseListen(text, config.*host, config.*port);
    } catch (const std::exception& error) {
      source.Fail(path, error.what());
    }
  };
  key.value = [host, port](const Config& config) {
    return (config.*host).empty() ? std::string() : ListenText(config.*host, config.*port);
  };
  return key;
}

// A file or directory path; relative ones are resolved against the file's directory.
ConfigKey Path(std::string section, std::string name, std::filesystem::path Config::*member,
               std::string default_text, std::string description) {
  ConfigKey key;
  key.section = std::move(section);
  key.name = std::move(name);
  key.type = "path";
  key.default_text = std::move(default_text);
  key.description = std::move(description);
  const std::string path = key.path();
  key.parse = [path, member](const ConfigSource& source, Config& config) {
    auto resolved = source.ReadPath(path);
    if (!resolved.empty()) config.*member = resolved;
  };
  key.value = [member](const Config& config) { return (config.*member).string(); };
  return key;
}

// A key whose parsing is its own (lists, tables, keys checked together with another).
ConfigKey Custom(std::string section, std::string name, std::string type, std::string default_text,
                 std::string allowed, std::string description,
                 std::function<void(const ConfigSource&, Config&)> parse,
                 std::function<std::string(const Config&)> value) {
  ConfigKey key;
  key.section = std::move(section);
  key.name = std::move(name);
  key.type = std::move(type);
  key.default_text = std::move(default_text);
  key.allowed = std::move(allowed);
  key.description = std::move(description);
  key.parse = std::move(parse);
  key.value = std::move(value);
  return key;
}

std::string JoinList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return "[" + out + "]";
}

// A field of every [[section]] entry: `read` fills it from the entry ("section[i]" is `where`).
template <typename Seed>
ConfigKey SeedField(const std::string& section, std::vector<Seed> Config::*list, std::string name,
                    std::string type, std::string default_text, std::string description,
                    std::function<void(const ConfigSource&, const toml::table& entry,
                                       const std::string& where, Seed& seed)>
                        read) {
  ConfigKey key;
  key.section = section;
  key.repeated = true;
  key.name = std::move(name);
  key.type = std::move(type);
  key.default_text = std::move(default_text);
  key.description = std::move(description);
  key.parse = [section, list, read](const ConfigSource& source, Config& config) {
    auto* entries = source.root[section].as_array();
    if (entries == nullptr) return;
    auto& seeds = config.*list;
    seeds.resize(entries->size());
    for (size_t i = 0; i < entries->size(); ++i) {
      const std::string where = section + "[" + std::to_string(i) + "]";
      auto* entry = entries->get(i)->as_table();
      if (entry == nullptr) source.Fail(where, "expected a table");
      read(source, *entry, where, seeds[i]);
    }
  };
  return key;
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

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey> keys = [] {
    using P = std::optional<std::string>;
    std::vector<ConfigKey> k;
    // [server]
    k.push_back(Listen("server", "\"127.0.0.1:8080\"",
                       "Address and port of the GoGrid API over plain HTTP. `--listen` overrides.",
                       &Config::listen_host, &Config::listen_port));
    k.push_back(Scalar("server", "threads", &Config::http_threads,
                       "I/O threads serving HTTP requests.", AtLeast(1)));
    k.push_back(Scalar("server", "max_header_bytes", &Config::max_header_bytes,
                       "Largest request header accepted (bytes); larger requests get 431."));
    k.push_back(Scalar("server", "max_body_bytes", &Config::max_body_bytes,
                       "Largest request body accepted (bytes); larger requests get 413."));
    k.push_back(Scalar("server", "idle_timeout_seconds", &Config::idle_timeout_seconds,
                       "A keep-alive connection idle this long is closed."));
    k.push_back(Scalar("server", "read_timeout_seconds", &Config::read_timeout_seconds,
                       "A whole request (header and body) must arrive within this many seconds "
                       "of its first byte, so a slow client holds a connection at most this long.",
                       AtLeast(1)));
    k.push_back(Scalar("server", "max_connections", &Config::max_connections,
                       "Open connections in total; more are closed on accept.", AtLeast(1)));
    k.push_back(
        Scalar("server", "max_connections_per_address", &Config::max_connections_per_address,
               "Open connections from one client address; more are closed on accept.", AtLeast(1)));
    k.push_back(Scalar("server", "max_header_count", &Config::max_header_count,
                       "More header fields get 431.", AtLeast(1)));
    k.push_back(Scalar("server", "max_request_line_bytes", &Config::max_request_line_bytes,
                       "A longer request line (method and target) gets 414.", AtLeast(64u)));
    k.push_back(Scalar("server", "plain_http", &Config::plain_http,
                       "`false` switches the plain HTTP listener off (then `tls.listen` must be "
                       "set)."));
    // [tls]
    k.push_back(Listen("tls", "none",
                       "Address and port of the GoGrid API over HTTPS (TLS 1.2 and 1.3). Absent "
                       "or empty: no HTTPS listener. `--tls-listen` overrides.",
                       &Config::tls_listen_host, &Config::tls_listen_port));
    k.push_back(Path("tls", "cert_file", &Config::tls_cert_file, "`<data_dir>/tls-cert.pem`",
                     "PEM certificate (chain). Absent: gridd creates a self-signed certificate on "
                     "first start and logs its SHA-256 fingerprint."));
    k.push_back(Custom(
        "tls", "key_file", "path", "`<data_dir>/tls-key.pem`", "set together with `cert_file`",
        "PEM private key of the certificate.",
        [](const ConfigSource& source, Config& config) {
          auto resolved = source.ReadPath("tls.key_file");
          if (!resolved.empty()) config.tls_key_file = resolved;
          if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
            source.Fail("tls.cert_file", "tls.cert_file and tls.key_file go together");
          }
        },
        [](const Config& config) { return config.tls_key_file.string(); }));
    // [ratelimit]
    k.push_back(Scalar("ratelimit", "enabled", &Config::rate_limit_enabled,
                       "Token buckets holding `burst` requests and refilling at `rate` requests "
                       "per second; over a limit the answer is 429 with Retry-After."));
    k.push_back(Scalar("ratelimit", "per_key_rate", &Config::per_key_rate,
                       "Requests per second per API key, counted once its signature checks out.",
                       Rate()));
    k.push_back(Scalar("ratelimit", "per_key_burst", &Config::per_key_burst, "Burst per API key.",
                       Burst()));
    k.push_back(Scalar("ratelimit", "per_address_rate", &Config::per_address_rate,
                       "Requests per second per client address, every request.", Rate()));
    k.push_back(Scalar("ratelimit", "per_address_burst", &Config::per_address_burst,
                       "Burst per client address.", Burst()));
    k.push_back(Scalar("ratelimit", "failed_auth_rate", &Config::failed_auth_rate,
                       "Failed authentications per second per client address; when spent, the "
                       "address gets 429 before its signatures are checked.",
                       Rate()));
    k.push_back(Scalar("ratelimit", "failed_auth_burst", &Config::failed_auth_burst,
                       "Burst of failed authentications per client address.", Burst()));
    // [storage]
    k.push_back(Path("storage", "data_dir", &Config::data_dir, "\"gridd-data\"",
                     "Database, master key, admin socket and initial credentials. `--data-dir` "
                     "overrides."));
    // [auth]
    k.push_back(Scalar("auth", "signature_window_past_seconds",
                       &Config::signature_window_past_seconds,
                       "A signature is accepted for a timestamp this many seconds in the past."));
    k.push_back(Scalar("auth", "signature_window_future_seconds",
                       &Config::signature_window_future_seconds,
                       "… and this many seconds in the future."));
    k.push_back(Custom(
        "auth", "hmac_only_keys", "list of strings", "[]", "API keys",
        "Deprecated: these keys are set to `hmac-only` in the database at every start (with a "
        "warning). Use `gridctl apikey signing KEY hmac-only` and remove the list.",
        [](const ConfigSource& source, Config& config) {
          const toml::node* node = source.Node("auth.hmac_only_keys");
          if (node == nullptr) return;
          const toml::array* keys = node->as_array();
          if (keys == nullptr) source.Fail("auth.hmac_only_keys", "expected a list of API keys");
          for (const auto& entry : *keys) {
            auto key = entry.value<std::string>();
            if (!key || key->empty()) {
              source.Fail("auth.hmac_only_keys", "expected API keys as strings");
            }
            config.hmac_only_keys.push_back(*key);
          }
        },
        [](const Config& config) { return JoinList(config.hmac_only_keys); }));
    // [libvirt]
    k.push_back(Custom(
        "libvirt", "uri", "string", "\"\"", "",
        "Any libvirt URI (`qemu:///system`, `qemu+ssh://host/system`, `qemu:///embed`); "
        "`test://./FILE` is the test driver with FILE next to the configuration. "
        "`--libvirt-uri` overrides.",
        [](const ConfigSource& source, Config& config) {
          source.Read("libvirt.uri", config.libvirt_uri);
          config.libvirt_uri = ResolveLibvirtUri(config.libvirt_uri, source.base);
        },
        [](const Config& config) { return config.libvirt_uri; }));
    k.push_back(Scalar("libvirt", "storage_pool", &Config::storage_pool,
                       "Storage pool holding the images and the servers' disks."));
    k.push_back(Scalar("libvirt", "shutdown_timeout_seconds", &Config::shutdown_timeout_seconds,
                       "How long a stop waits for the guest to power off after the ACPI request "
                       "before forcing it.",
                       Rule<int>{"0 or more", [](const int& value) -> P {
                                   if (value < 0) return "must be 0 or more";
                                   return std::nullopt;
                                 }}));
    k.push_back(Path("libvirt", "pool_path", &Config::pool_path,
                     "none (`<data_dir>/pool` on `qemu:///embed`)",
                     "Directory of the storage pool; gridd defines the pool there when it does "
                     "not exist."));
    k.push_back(Scalar("libvirt", "domain_type", &Config::domain_type,
                       "Domain type of real guests; `auto` is kvm when /dev/kvm is usable.",
                       OneOf({"auto", "kvm", "qemu"}, "must be \"auto\", \"kvm\" or \"qemu\"")));
    k.push_back(Scalar("libvirt", "console_log_max_bytes", &Config::console_log_max_bytes,
                       "A guest's serial console log larger than this is cut back to its last "
                       "half.",
                       AtLeast<int64_t>(4096)));
    // [hosts]: the connection to each libvirt host (keepalive, Down detection, reconnection)
    k.push_back(Scalar("hosts", "down_after_seconds", &Config::host_down_after_seconds,
                       "A host that has not answered for this long is Down: its servers show "
                       "state Unknown and jobs on it wait for it until their deadline.",
                       Between(1, 3600, "1 to 3600", "must be between 1 and 3600")));
    k.push_back(Scalar("hosts", "keepalive_interval_seconds",
                       &Config::host_keepalive_interval_seconds,
                       "libvirt keepalive interval; the host is also asked whether it is alive "
                       "this often.",
                       Between(1, 600, "1 to 600", "must be between 1 and 600")));
    k.push_back(Scalar("hosts", "keepalive_count", &Config::host_keepalive_count,
                       "Unanswered keepalive messages after which the connection is given up.",
                       Between(1, 100, "1 to 100", "must be between 1 and 100")));
    k.push_back(Scalar("hosts", "reconnect_initial_ms", &Config::host_reconnect_initial_ms,
                       "First wait before reconnecting to a lost host; it doubles (jittered) "
                       "with each failed attempt.",
                       AtLeast(10)));
    k.push_back(Custom(
        "hosts", "reconnect_max_seconds", "integer", "30",
        "at least 1, and not below `reconnect_initial_ms`",
        "Longest wait between reconnection attempts.",
        [](const ConfigSource& source, Config& config) {
          source.Read("hosts.reconnect_max_seconds", config.host_reconnect_max_seconds);
          if (config.host_reconnect_max_seconds < 1 ||
              int64_t{config.host_reconnect_max_seconds} * 1000 <
                  config.host_reconnect_initial_ms) {
            source.Fail("hosts.reconnect_max_seconds",
                        "must be at least 1 and not below hosts.reconnect_initial_ms");
          }
        },
        [](const Config& config) { return std::to_string(config.host_reconnect_max_seconds); }));
    // [scheduler]: placement of new servers on hosts
    k.push_back(Scalar("scheduler", "policy", &Config::scheduler_policy,
                       "`spread` puts a new server on the host with the most free RAM in its "
                       "datacenter; `pack` on the fullest host that still has room.",
                       OneOf({"spread", "pack"}, "must be \"spread\" or \"pack\"")));
    // [jobs]
    k.push_back(Scalar("jobs", "workers", &Config::job_workers,
                       "Worker threads carrying out jobs. Changes on reload.", AtLeast(1)));
    k.push_back(Scalar("jobs", "lease_seconds", &Config::job_lease_seconds,
                       "A job whose worker has not finished within the lease is taken up again."));
    k.push_back(Scalar("jobs", "max_attempts", &Config::job_max_attempts,
                       "Attempts for jobs that hit transient hypervisor errors (a host that cannot "
                       "be reached does not count: see [hosts]).",
                       AtLeast(1)));
    k.push_back(Scalar("jobs", "retry_base_ms", &Config::job_retry_base_ms,
                       "First retry delay; it doubles with each attempt."));
    k.push_back(Scalar("jobs", "retry_max_ms", &Config::job_retry_max_ms, "Longest retry delay."));
    k.push_back(Scalar("jobs", "deadline_seconds", &Config::job_deadline_seconds,
                       "Longest a job may run before it is failed, saying what it waited for.",
                       AtLeast(1)));
    k.push_back(Custom(
        "jobs", "deadlines", "table of command = seconds", "{}", "1 to 86400 seconds each",
        "Deadlines by job command name (`StartVirtualServer = 300`), overriding "
        "`deadline_seconds`.",
        [](const ConfigSource& source, Config& config) {
          const toml::node* node = source.Node("jobs.deadlines");
          if (node == nullptr) return;
          const toml::table* deadlines = node->as_table();
          if (deadlines == nullptr) {
            source.Fail("jobs.deadlines", "expected a table of command = seconds");
          }
          for (const auto& [command, value] : *deadlines) {
            const std::string key = "jobs.deadlines." + std::string(command.str());
            auto seconds = value.value<int64_t>();
            if (!seconds || value.is_floating_point() || *seconds < 1 || *seconds > 86400) {
              source.Fail(key, "must be a whole number of seconds between 1 and 86400");
            }
            config.job_deadlines_by_command.emplace_back(std::string(command.str()),
                                                         static_cast<int>(*seconds));
          }
        },
        [](const Config& config) {
          std::string out;
          for (const auto& [command, seconds] : config.job_deadlines_by_command) {
            out += command + "=" + std::to_string(seconds) + ";";
          }
          return out;
        }));
    // [reconciler]
    k.push_back(Scalar("reconciler", "interval_seconds", &Config::reconcile_interval_seconds,
                       "Seconds between comparisons of the hypervisors and load balancers with "
                       "the database (it also runs at every start); 0 runs it only at start.",
                       Rule<int>{"0 or more", [](const int& value) -> P {
                                   if (value < 0) return "must be 0 (only at start) or more";
                                   return std::nullopt;
                                 }}));
    k.push_back(Scalar("reconciler", "remove_orphans", &Config::reconcile_remove_orphans,
                       "`true` also removes domains carrying gridd's metadata that have no "
                       "server row (undefine, disk kept); otherwise they are only reported."));
    // [images]
    k.push_back(
        Scalar("images", "trash_retention_hours", &Config::image_trash_retention_hours,
               "Hours a trashed image stays restorable before its volume is purged; 0 "
               "keeps trashed volumes forever.",
               Between(0, 87600, "0 to 87600", "must be 0 (never purge) to 87600 (ten years)")));
    // [loadbalancer]
    k.push_back(Scalar("loadbalancer", "enabled", &Config::lb_enabled,
                       "Load balancers, carried out by an HAProxy that gridd supervises."));
    k.push_back(Scalar("loadbalancer", "haproxy", &Config::haproxy_binary, "The haproxy binary."));
    k.push_back(Scalar(
        "loadbalancer", "health_check_interval_ms", &Config::lb_health_check_interval_ms,
        "How often HAProxy checks that each real IP accepts TCP connections.", AtLeast(100)));
    k.push_back(Scalar("loadbalancer", "status_interval_ms", &Config::lb_status_interval_ms,
                       "How often gridd records each load balancer's health in its state.",
                       AtLeast(100)));
    k.push_back(Custom(
        "loadbalancer", "vip_networks", "list of strings", "[]", "IPv4 CIDRs",
        "Networks virtual IPs must lie in; empty: any address of the account.",
        [](const ConfigSource& source, Config& config) {
          const toml::node* node = source.Node("loadbalancer.vip_networks");
          if (node == nullptr) return;
          const toml::array* networks = node->as_array();
          if (networks == nullptr) {
            source.Fail("loadbalancer.vip_networks", "expected a list of CIDRs");
          }
          for (const auto& entry : *networks) {
            auto cidr = entry.value<std::string>();
            unsigned a = 0, b = 0, c = 0, d = 0, bits = 0;
            char tail = 0;
            if (!cidr ||
                std::sscanf(cidr->c_str(), "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &bits, &tail) != 5 ||
                a > 255 || b > 255 || c > 255 || d > 255 || bits > 32) {
              source.Fail("loadbalancer.vip_networks", "expected IPv4 CIDRs like \"127.0.0.0/8\"");
            }
            config.lb_vip_networks.push_back(*cidr);
          }
        },
        [](const Config& config) { return JoinList(config.lb_vip_networks); }));
    // [billing]
    k.push_back(Scalar("billing", "period_start_day", &Config::billing_period_start_day,
                       "Billing periods run from this day of the month (00:00 UTC) to the same "
                       "day of the next month.",
                       Between(1, 28, "1 to 28", "must be 1-28 (every month has that day)")));
    k.push_back(Scalar("billing", "memory_allotment_gb_hours",
                       &Config::billing_memory_allotment_gb_hours,
                       "RAM GB-hours included each period."));
    k.push_back(Scalar("billing", "memory_allotment_price", &Config::billing_memory_allotment_price,
                       "What the allotment costs (US$ per period).", Price()));
    k.push_back(Scalar("billing", "memory_gb_hour_price", &Config::billing_memory_gb_hour_price,
                       "US$ per RAM GB-hour beyond the allotment.", Price()));
    k.push_back(Scalar("billing", "transfer_allotment_gb", &Config::billing_transfer_allotment_gb,
                       "Outbound GB included each period."));
    k.push_back(Scalar("billing", "transfer_gb_price", &Config::billing_transfer_gb_price,
                       "US$ per outbound GB beyond the allotment.", Price()));
    k.push_back(Scalar("billing", "bill_powered_off_servers", &Config::billing_powered_off_servers,
                       "Bill deployed RAM whether the server is on or off, as GoGrid did; "
                       "`false` bills only powered-on time."));
    // [accounts]
    k.push_back(Scalar("accounts", "ip_block_size", &Config::ip_block_size,
                       "Addresses every account receives from each shared IP pool.", AtLeast(1)));
    k.push_back(Scalar("accounts", "initial_account", &Config::initial_account,
                       "Account created, with a Super User key, on the first start."));
    // [log]
    k.push_back(Scalar("log", "level", &Config::log_level, "Log level. Changes on reload.",
                       OneOf({"trace", "debug", "info", "warn", "error", "critical", "off"},
                             "must be trace, debug, info, warn, error, critical or off")));
    k.push_back(Scalar("log", "access_log", &Config::access_log,
                       "One line per API request (logger `access`)."));
    k.push_back(Scalar("log", "format", &Config::log_format,
                       "`text`: readable lines with key=value fields; `json`: one JSON object "
                       "per line.",
                       OneOf({"text", "json"}, "must be \"text\" or \"json\"")));
    k.push_back(Scalar(
        "log", "output", &Config::log_output,
        "Where lines go; `auto` is journald when standard output is connected to "
        "the journal, the console otherwise.",
        OneOf({"auto", "console", "journald"}, "must be \"auto\", \"console\" or \"journald\"")));
    // [metrics]
    k.push_back(Scalar("metrics", "enabled", &Config::metrics_enabled,
                       "Prometheus metrics at http://LISTEN/metrics, plain HTTP without "
                       "authentication."));
    k.push_back(Listen("metrics", "\"127.0.0.1:9464\"",
                       "Address and port of the metrics listener. `--metrics-listen` overrides.",
                       &Config::metrics_host, &Config::metrics_port));
    // [[datacenter]]
    k.push_back(SeedField<DatacenterSeed>(
        "datacenter", &Config::datacenters, "id", "integer", "required", "Stable id clients send.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           DatacenterSeed& seed) {
          auto id = entry["id"].value<int64_t>();
          if (!id || *id < 1) source.Fail(where + ".id", "required positive integer");
          seed.id = *id;
        }));
    k.push_back(SeedField<DatacenterSeed>(
        "datacenter", &Config::datacenters, "name", "string", "required", "Datacenter name.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           DatacenterSeed& seed) { seed.name = RequiredString(entry, source, where, "name"); }));
    k.push_back(SeedField<DatacenterSeed>(
        "datacenter", &Config::datacenters, "description", "string", "`\"<name> Datacenter\"`",
        "What the datacenter lookups show.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           DatacenterSeed& seed) {
          seed.description =
              OptionalString(entry, source, where, "description", seed.name + " Datacenter");
        }));
    // [[ippool]]
    k.push_back(SeedField<IpPoolSeed>("ippool", &Config::ip_pools, "datacenter", "string",
                                      "required", "Datacenter name the addresses belong to.",
                                      [](const ConfigSource& source, const toml::table& entry,
                                         const std::string& where, IpPoolSeed& seed) {
                                        seed.datacenter =
                                            RequiredString(entry, source, where, "datacenter");
                                      }));
    k.push_back(SeedField<IpPoolSeed>("ippool", &Config::ip_pools, "type", "string", "required",
                                      "Kind of addresses: `public` or `private`.",
                                      [](const ConfigSource& source, const toml::table& entry,
                                         const std::string& where, IpPoolSeed& seed) {
                                        std::string type =
                                            RequiredString(entry, source, where, "type");
                                        if (type != "public" && type != "private")
                                          source.Fail(where + ".type", "public or private");
                                        seed.is_public = type == "public";
                                      }));
    k.push_back(SeedField<IpPoolSeed>(
        "ippool", &Config::ip_pools, "cidr", "string", "required",
        "IPv4 block, added on first start (later starts keep what is there).",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           IpPoolSeed& seed) { seed.cidr = RequiredString(entry, source, where, "cidr"); }));
    k.push_back(SeedField<IpPoolSeed>(
        "ippool", &Config::ip_pools, "network", "string", "none",
        "libvirt network carrying the addresses; without one the servers get no NIC.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           IpPoolSeed& seed) { seed.network = OptionalString(entry, source, where, "network"); }));
    // [[image]]
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "name", "string", "required", "Unique image name.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) { seed.name = RequiredString(entry, source, where, "name"); }));
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "friendly_name", "string", "the name", "What customers see.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) {
          seed.friendly_name = OptionalString(entry, source, where, "friendly_name", seed.name);
        }));
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "description", "string", "\"\"", "Description customers see.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) {
          seed.description = OptionalString(entry, source, where, "description");
        }));
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "os", "string", "required", "Operating system option name.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) { seed.os = RequiredString(entry, source, where, "os"); }));
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "architecture", "string", "\"64-bit\"", "`32-bit` or `64-bit`.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) {
          seed.architecture = OptionalString(entry, source, where, "architecture", "64-bit");
        }));
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "type", "string", "\"Web Server\"", "Image type option name.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) {
          seed.type = OptionalString(entry, source, where, "type", "Web Server");
        }));
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "volume", "string", "required", "Volume in the storage pool.",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) { seed.volume = RequiredString(entry, source, where, "volume"); }));
    k.push_back(SeedField<ImageSeed>(
        "image", &Config::images, "price", "number", "0", "Price shown to customers (US$).",
        [](const ConfigSource& source, const toml::table& entry, const std::string& where,
           ImageSeed& seed) { seed.price = OptionalNumber(entry, source, where, "price"); }));
    return k;
  }();
  return keys;
}

std::string ConfigReferenceMarkdown() {
  std::ostringstream out;
  std::string section;
  for (const ConfigKey& key : ConfigKeys()) {
    if (key.section != section) {
      section = key.section;
      out << (out.tellp() > 0 ? "\n" : "") << "### "
          << (key.repeated ? "`[[" + section + "]]` (repeated)" : "`[" + section + "]`") << "\n\n"
          << "| Key | Type | Default | Allowed | Description |\n"
          << "|---|---|---|---|---|\n";
    }
    auto cell = [](const std::string& text) {
      std::string escaped;
      for (char c : text) escaped += c == '|' ? std::string("\\|") : std::string(1, c);
      return escaped;
    };
    // Values are code; words ("required", "`\"<name> Datacenter\"`") and prepared text are not.
    const std::string& given = key.default_text;
    const bool code_default = !given.empty() && given.front() != '`' &&
                              (given.front() == '"' || (given.find(' ') == std::string::npos &&
                                                        given != "required" && given != "none"));
    out << "| `" << key.name << "` | " << cell(key.type) << " | "
        << (code_default ? "`" + key.default_text + "`" : cell(key.default_text)) << " | "
        << cell(key.allowed) << " | " << cell(key.description) << " |\n";
  }
  return out.str();
}

std::vector<std::string> UnknownConfigKeys(const std::filesystem::path& path) {
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error&) {
    return {};  // LoadConfig reports syntax errors
  }
  auto known = [](const std::string& section, const std::string& name, bool repeated) {
    for (const ConfigKey& key : ConfigKeys()) {
      if (key.section == section && key.name == name && key.repeated == repeated) return true;
    }
    return false;
  };
  std::vector<std::string> unknown;
  for (const auto& [section_name, section_node] : root) {
    const std::string section(section_name.str());
    if (const toml::table* table = section_node.as_table()) {
      for (const auto& [name, node] : *table) {
        if (!known(section, std::string(name.str()), false)) {
          unknown.push_back(section + "." + std::string(name.str()));
        }
      }
    } else if (const toml::array* entries = section_node.as_array()) {
      for (size_t i = 0; i < entries->size(); ++i) {
        const toml::table* entry = entries->get(i)->as_table();
        if (entry == nullptr) continue;  // LoadConfig reports it when the section is known
        for (const auto& [name, node] : *entry) {
          if (!known(section, std::string(name.str()), true)) {
            unknown.push_back(section + "[" + std::to_string(i) + "]." + std::string(name.str()));
          }
        }
      }
    } else {
      unknown.push_back(section);
    }
  }
  return unknown;
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
  const ConfigSource source{root, path, base};
  Config config;
  for (const ConfigKey& key : ConfigKeys()) key.parse(source, config);
  return config;
}

}  // namespace gridd
