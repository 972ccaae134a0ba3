// gridd: the daemon. Wires the layers together (config → store → domain → jobs → virt → api),
// serves until SIGTERM or SIGINT, then stops accepting, finishes the requests in flight and
// leaves unfinished jobs to resume at the next start. SIGHUP reloads the configuration.
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "daemon/admin_commands.h"
#include "daemon/host_commands.h"
#include "daemon/logging.h"
#include "daemon/operator_commands.h"
#include "daemon/recovery_commands.h"
#include "daemon/reload.h"
#include "daemon/systemd.h"
#include "gridd/admin/admin_server.h"
#include "gridd/api/api_service.h"
#include "gridd/api/http_server.h"
#include "gridd/api/tls.h"
#include "gridd/common/clock.h"
#include "gridd/common/config.h"
#include "gridd/common/crypto.h"
#include "gridd/common/metrics.h"
#include "gridd/domain/account_service.h"
#include "gridd/domain/grid_service.h"
#include "gridd/domain/idempotent_requests.h"
#include "gridd/domain/load_balancer_service.h"
#include "gridd/domain/lookups.h"
#include "gridd/domain/scheduler.h"
#include "gridd/jobs/hosts.h"
#include "gridd/jobs/job_runner.h"
#include "gridd/jobs/load_balancer_jobs.h"
#include "gridd/jobs/reconciler.h"
#include "gridd/jobs/server_jobs.h"
#include "gridd/jobs/state_metrics.h"
#include "gridd/lb/engine.h"
#include "gridd/store/database.h"
#include "gridd/virt/host_connection.h"
#include "gridd/virt/hypervisor.h"

namespace {

// Holds an exclusive lock on <data-dir>/gridd.lock for the process lifetime, so two daemons can
// never share one database.
int LockDataDir(const std::filesystem::path& data_dir) {
  const auto path = data_dir / "gridd.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    throw std::runtime_error("another gridd is already running with data dir " + data_dir.string());
  }
  return fd;
}

// The data dir holds the master key, the database and the initial credentials: gridd refuses
// to run on one other users can read, rather than quietly changing an operator's choice.
void CheckPrivate(const std::filesystem::path& path, const char* what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return;
  if ((info.st_mode & S_IRWXO) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(info.st_mode & 07777));
    throw std::runtime_error(std::string(what) + " " + path.string() +
                             " is accessible by other users (mode " + mode +
                             "); run `chmod o-rwx " + path.string() + "` (gridd wants " +
                             (S_ISDIR(info.st_mode) ? "0700" : "0600") + ")");
  }
}

// Each connection is a descriptor: allow as many as the hard limit so the connection limits,
// not EMFILE, decide who is served.
void RaiseDescriptorLimit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string UrlHost(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

gridd::api::ApiServiceOptions ApiOptionsFrom(const gridd::Config& config) {
  gridd::api::ApiServiceOptions options;
  options.signature_window_past_seconds = config.signature_window_past_seconds;
  options.signature_window_future_seconds = config.signature_window_future_seconds;
  if (config.rate_limit_enabled) {
    options.per_key_limits = {config.per_key_rate, config.per_key_burst};
    options.per_address_limits = {config.per_address_rate, config.per_address_burst};
    options.failed_auth_limits = {config.failed_auth_rate, config.failed_auth_burst};
  } else {
    options.per_key_limits = options.per_address_limits = options.failed_auth_limits = {};
  }
  return options;
}

int Run(int argc, char** argv) {
  CLI::App app{"gridd: a GoGrid-compatible IaaS control plane"};
  std::string config_path = "/etc/gridd/gridd.toml";
  std::string listen;
  std::string data_dir;
  std::string libvirt_uri;
  std::string metrics_listen;
  std::string tls_listen;
  app.add_option("--config", config_path, "TOML configuration file")->capture_default_str();
  app.add_option("--listen", listen, "HOST:PORT for the API (port 0 picks a free port)");
  app.add_option("--data-dir", data_dir, "directory for the database, keys and admin socket");
  app.add_option("--libvirt-uri", libvirt_uri, "libvirt URI of the hypervisor");
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT for /metrics (port 0 picks a free port)");
  app.add_option("--tls-listen", tls_listen,
                 "HOST:PORT for the API over HTTPS (port 0 picks a free port)");
  bool print_config_reference = false;
  app.add_flag("--print-config-reference", print_config_reference,
               "print every configuration key (Markdown, as in docs/operations.md) and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  if (print_config_reference) {
    std::cout << gridd::ConfigReferenceMarkdown();
    return 0;
  }

  // Flags override the file, at start and again at every reload.
  auto load_config = [&] {
    gridd::Config loaded = gridd::LoadConfig(config_path);
    if (!listen.empty()) gridd::ParseListen(listen, loaded.listen_host, loaded.listen_port);
    if (!data_dir.empty()) loaded.data_dir = std::filesystem::absolute(data_dir);
    if (!libvirt_uri.empty()) loaded.libvirt_uri = libvirt_uri;
    if (!metrics_listen.empty()) {
      gridd::ParseListen(metrics_listen, loaded.metrics_host, loaded.metrics_port);
    }
    if (!tls_listen.empty())
      gridd::ParseListen(tls_listen, loaded.tls_listen_host, loaded.tls_listen_port);
    return loaded;
  };
  gridd::Config config = load_config();
  if (!config.plain_http && config.tls_listen_host.empty()) {
    throw std::runtime_error(
        "server.plain_http is false but no tls.listen (or --tls-listen): nothing would serve the "
        "API");
  }
  if (config.libvirt_uri.empty())
    throw std::runtime_error("no libvirt URI configured ([libvirt] uri)");
  gridd::daemon::SetupLogging(config);
  for (const auto& key : gridd::UnknownConfigKeys(config_path)) {
    spdlog::warn("{}: unknown key {} is ignored", config_path, key);
  }

  // Block the signals before any thread starts, so only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Everything gridd creates (database, keys, certificates, sockets) is its own alone.
  ::umask(077);
  RaiseDescriptorLimit();
  CheckPrivate(config.data_dir, "data dir");
  if (std::filesystem::create_directories(config.data_dir)) ::chmod(config.data_dir.c_str(), 0700);
  CheckPrivate(config.data_dir / "gridd.db", "database");
  CheckPrivate(config.data_dir / "master.key", "master key");
  const int lock_fd = LockDataDir(config.data_dir);
  (void)lock_fd;

  const gridd::Clock& clock = gridd::SystemClock::Instance();
  const gridd::SecretBox box = gridd::SecretBox::LoadOrCreate(config.data_dir / "master.key");
  gridd::store::Database db((config.data_dir / "gridd.db").string());
  spdlog::info("database {} at schema version {}", (config.data_dir / "gridd.db").string(),
               db.schema_version());

  gridd::domain::Catalog catalog(db);
  gridd::domain::AccountService accounts(db, catalog, clock, box, config.ip_block_size);
  accounts.ApplySeeds(config);
  if (auto initial = accounts.EnsureInitialAccount(config.initial_account)) {
    auto path = gridd::domain::WriteInitialCredentials(config.data_dir, *initial);
    spdlog::info("created account '{}' with a Super User API key; credentials in {}",
                 initial->account, path.string());
  }
  // The signing policy lives in the database now; the old list is still honoured.
  for (const auto& key : config.hmac_only_keys) {
    try {
      accounts.SetApiKeySigning(key, "hmac-only");
      spdlog::warn(
          "auth.hmac_only_keys is deprecated: key {} set to hmac-only in the database; "
          "use `gridctl apikey signing` and remove the list",
          key);
    } catch (const std::exception& error) {
      spdlog::warn("auth.hmac_only_keys is deprecated and names {}: {}", key, error.what());
    }
  }

  config.libvirt_uri = gridd::virt::PrepareLibvirtUri(config.libvirt_uri, config.data_dir);
  const bool embedded = config.libvirt_uri.rfind("qemu:///embed", 0) == 0;
  // Not written back into `config`: a reload compares the file's keys with it.
  std::filesystem::path pool_path = config.pool_path;
  if (pool_path.empty() && embedded) pool_path = config.data_dir / "pool";

  // Hosts: the configured [libvirt] uri is the host "default"; `gridctl host add` adds more.
  // Each gets its own connection, and the scheduler places new servers among them. A host
  // connection keeps itself alive, reconnects, and reports the host Down and Up ([hosts]);
  // an embedded driver lives in gridd's own process and cannot fail apart from it.
  gridd::jobs::HypervisorFactory connect_host =
      [&config](const gridd::domain::Host& host,
                const std::string& uri) -> std::unique_ptr<gridd::virt::Hypervisor> {
    if (uri.rfind("qemu:///embed", 0) == 0) return gridd::virt::ConnectLibvirt(uri);
    return std::make_unique<gridd::virt::HostConnection>(
        gridd::virt::HostConnectionOptionsFromConfig(config, host.name, uri));
  };
  gridd::domain::Scheduler scheduler(gridd::domain::ParsePlacementPolicy(config.scheduler_policy)
                                         .value_or(gridd::domain::PlacementPolicy::kSpread));
  gridd::jobs::HostRegistry hosts(db, scheduler, connect_host, config.libvirt_uri);
  hosts.OnConnect([&](const gridd::domain::Host& host, gridd::virt::Hypervisor& hypervisor) {
    // The pool directory is on the management host: it is the default host's alone.
    if (host.uri.empty() && !pool_path.empty()) {
      hypervisor.EnsureDirectoryPool(config.storage_pool, pool_path.string());
    }
    for (const auto& image : accounts.ListImages()) {
      if (!hypervisor.VolumeExists(image.storage_pool, image.volume)) {
        spdlog::warn("host {}: image '{}': volume {}/{} not found; servers from it will fail there",
                     host.name, image.name, image.storage_pool, image.volume);
      }
    }
    if (hypervisor.volatile_state()) {
      // Its servers' domains are materialised when something first acts on them, so the
      // start costs nothing per server.
      gridd::jobs::RestoreVolatileImages(db, hypervisor);
    } else {
      gridd::jobs::FollowServerStates(db, hypervisor, clock, host.id);
    }
  });
  hosts.Load();
  if (hosts.UpHosts().empty()) {
    // One host that does not answer is a configuration error; with several, gridd serves the
    // API and tries them again at every reconciler pass.
    if (hosts.AllHosts().size() <= 1) {
      throw std::runtime_error("the hypervisor does not answer (see the error above)");
    }
    spdlog::error("no host answers; gridd tries them again at every reconciler pass");
  }
  // Real guests (anything but libvirt's test driver) get seeds and console logs.
  bool real_guests = false;
  for (const auto& host : hosts.UpHosts()) real_guests |= !host.hypervisor->volatile_state();

  gridd::jobs::JobRunnerOptions job_options;
  job_options.workers = config.job_workers;
  job_options.lease_ms = int64_t{config.job_lease_seconds} * 1000;
  job_options.max_attempts = config.job_max_attempts;
  job_options.retry_base_ms = config.job_retry_base_ms;
  job_options.retry_max_ms = config.job_retry_max_ms;
  job_options.deadline_ms = int64_t{config.job_deadline_seconds} * 1000;
  int64_t longest_deadline_ms = job_options.deadline_ms;
  for (const auto& [name, seconds] : config.job_deadlines_by_command) {
    const auto* command = gridd::domain::FixedLookup("job.command");
    int64_t id = 0;
    try {
      id = gridd::domain::ResolveOption(*command, "jobs.deadlines", name).id;
    } catch (const std::exception&) {
      throw std::runtime_error(
          fmt::format("{}: jobs.deadlines.{}: not a job command (see the job.command lookup)",
                      config_path, name));
    }
    job_options.deadline_ms_by_command[id] = int64_t{seconds} * 1000;
    longest_deadline_ms = std::max(longest_deadline_ms, int64_t{seconds} * 1000);
  }
  // A lease must outlast the deadline, or a slow but live job would be taken up twice.
  job_options.lease_ms = std::max(job_options.lease_ms, longest_deadline_ms + 60'000);
  gridd::jobs::JobRunner runner(db, clock, job_options);
  gridd::jobs::ServerJobOptions server_options;
  server_options.shutdown_timeout_seconds = config.shutdown_timeout_seconds;
  // The test driver boots nothing: seeds and console logs are for real guests only.
  std::jthread console_trimmer;
  if (real_guests) {
    server_options.box = &box;
    server_options.console_dir = config.data_dir / "console";
    std::filesystem::create_directories(server_options.console_dir);
    server_options.domain_type = config.domain_type == "auto"
                                     ? (gridd::virt::KvmUsable() ? "kvm" : "qemu")
                                     : config.domain_type;
    spdlog::info("guests: domain type {}, console logs in {}", server_options.domain_type,
                 server_options.console_dir.string());
    console_trimmer =
        std::jthread([dir = server_options.console_dir,
                      max = config.console_log_max_bytes](const std::stop_token& stop) {
          while (!stop.stop_requested()) {
            gridd::jobs::TrimConsoleLogs(dir, max);
            for (int i = 0; i < 50 && !stop.stop_requested(); ++i) {
              std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
          }
        });
  }
  gridd::jobs::RegisterServerJobs(runner, db, hosts, clock, server_options);

  // Load balancers: gridd starts its own HAProxy and makes it match the database before it
  // takes requests, so a restart of gridd keeps every load balancer serving.
  std::unique_ptr<gridd::lb::LoadBalancerEngine> engine;
  std::unique_ptr<gridd::domain::LoadBalancerService> balancers;
  std::unique_ptr<gridd::jobs::LoadBalancerMonitor> monitor;
  if (config.lb_enabled) {
    gridd::lb::HaproxyOptions haproxy;
    haproxy.binary = config.haproxy_binary;
    haproxy.run_dir = config.data_dir / "haproxy";
    haproxy.health_check_interval_ms = config.lb_health_check_interval_ms;
    engine = gridd::lb::MakeHaproxyEngine(haproxy);
    engine->Start();
    try {
      engine->Apply(
          db.Read([](gridd::store::Connection& c) { return gridd::jobs::DesiredBalancers(c); }));
    } catch (const std::exception& error) {
      spdlog::error("load balancers: cannot apply the stored configuration: {}", error.what());
    }
    gridd::jobs::RegisterLoadBalancerJobs(runner, db, *engine, clock);
    monitor = std::make_unique<gridd::jobs::LoadBalancerMonitor>(
        db, *engine, clock, std::chrono::milliseconds(config.lb_status_interval_ms));
    spdlog::info("load balancers: HAProxy {} supervised in {}", config.haproxy_binary,
                 haproxy.run_dir.string());
  }

  gridd::domain::GridServiceOptions grid_options;
  grid_options.billing.period_start_day = config.billing_period_start_day;
  grid_options.billing.memory_allotment_gb_hours = config.billing_memory_allotment_gb_hours;
  grid_options.billing.memory_allotment_price = config.billing_memory_allotment_price;
  grid_options.billing.memory_gb_hour_price = config.billing_memory_gb_hour_price;
  grid_options.billing.transfer_allotment_gb = config.billing_transfer_allotment_gb;
  grid_options.billing.transfer_gb_price = config.billing_transfer_gb_price;
  grid_options.billing.bill_powered_off_servers = config.billing_powered_off_servers;
  grid_options.scheduler = &scheduler;
  gridd::domain::GridService grid(
      db, catalog, clock, box, [&runner] { runner.Notify(); }, grid_options);
  if (engine) {
    gridd::domain::GridServiceOptions balancer_options;
    balancer_options.vip_networks = config.lb_vip_networks;
    balancers = std::make_unique<gridd::domain::LoadBalancerService>(
        db, clock, [&runner] { runner.Notify(); }, balancer_options);
  }
  gridd::domain::IdempotentRequests idempotent(db, clock);
  gridd::api::ApiService api(grid, accounts, balancers.get(), clock, ApiOptionsFrom(config),
                             &idempotent);

  runner.Start();
  if (monitor) monitor->Start();

  // Compare the hypervisor and the engine with the database now (a crash may have left
  // either behind) and then periodically; repairs are queued as jobs.
  gridd::jobs::Reconciler reconciler(
      db, hosts, engine.get(), clock, [&runner] { runner.Notify(); },
      {config.reconcile_remove_orphans, int64_t{config.image_trash_retention_hours} * 3600 * 1000});
  try {
    const auto report = reconciler.RunOnce(true);
    spdlog::info("reconcile: {} domain(s), {} server(s), {} finding(s)", report.domains,
                 report.servers, report.findings.size());
  } catch (const std::exception& error) {
    spdlog::error("reconcile: {}", error.what());
  }
  reconciler.Start(std::chrono::seconds(config.reconcile_interval_seconds));
  // A host that answers again is reconciled at once (on its connection's thread, or the
  // admin command's): its servers show their real state, and copies of servers evacuated
  // meanwhile are removed.
  hosts.OnReturn([&reconciler](int64_t) {
    try {
      reconciler.RunOnce(true);
    } catch (const std::exception& error) {
      spdlog::error("reconcile: {}", error.what());
    }
  });
  gridd::daemon::RecoveryContext recovery{db, hosts, reconciler};
  gridd::daemon::OperatorContext operator_context{db, clock, [&runner] { runner.Notify(); }};
  gridd::daemon::HostContext host_context{db, clock, hosts, catalog,
                                          [&runner] { runner.Notify(); }};

  gridd::api::HttpServerOptions http_options;
  http_options.host = config.listen_host;
  http_options.port = config.listen_port;
  http_options.threads = config.http_threads;
  http_options.max_header_bytes = config.max_header_bytes;
  http_options.max_body_bytes = config.max_body_bytes;
  http_options.idle_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  http_options.access_log = config.access_log;
  http_options.read_timeout = std::chrono::seconds(config.read_timeout_seconds);
  http_options.max_connections = config.max_connections;
  http_options.max_connections_per_address = config.max_connections_per_address;
  http_options.max_header_count = config.max_header_count;
  http_options.max_request_line_bytes = config.max_request_line_bytes;
  auto handle = [&api](const gridd::api::HttpRequest& request) { return api.Handle(request); };
  std::unique_ptr<gridd::api::HttpServer> plain_http;
  if (config.plain_http) {
    plain_http = std::make_unique<gridd::api::HttpServer>(http_options, handle,
                                                          &gridd::api::ApiService::ProtocolError);
    plain_http->Start();
  }
  std::unique_ptr<gridd::api::HttpServer> tls_http;
  if (!config.tls_listen_host.empty()) {
    auto tls_options = http_options;
    tls_options.host = config.tls_listen_host;
    tls_options.port = config.tls_listen_port;
    const bool own_certificate = config.tls_cert_file.empty();
    const auto cert = own_certificate ? config.data_dir / "tls-cert.pem" : config.tls_cert_file;
    const auto key = own_certificate ? config.data_dir / "tls-key.pem" : config.tls_key_file;
    if (own_certificate && gridd::api::EnsureSelfSignedCertificate(cert, key)) {
      spdlog::info("created a self-signed TLS certificate {}", cert.string());
    }
    CheckPrivate(key, "TLS key");
    tls_options.tls_cert_file = cert.string();
    tls_options.tls_key_file = key.string();
    tls_http = std::make_unique<gridd::api::HttpServer>(tls_options, handle,
                                                        &gridd::api::ApiService::ProtocolError);
    tls_http->Start();
    spdlog::info("TLS certificate {} SHA-256 fingerprint {}", cert.string(),
                 gridd::api::CertificateFingerprint(cert));
    spdlog::info("listening on https://{}:{}", UrlHost(config.tls_listen_host), tls_http->port());
  }

  gridd::daemon::GuestTools guest_tools{db, hosts, config.storage_pool, server_options.console_dir};
  gridd::admin::AdminServer admin(
      config.data_dir / "admin.sock",
      [&accounts, &recovery, &operator_context, &host_context, &guest_tools](
          const std::string& command, const nlohmann::json& args) {
        if (auto result = gridd::daemon::RunRecoveryCommand(recovery, command, args)) {
          return *result;
        }
        if (auto result = gridd::daemon::RunHostCommand(host_context, command, args)) {
          return *result;
        }
        if (auto result = gridd::daemon::RunOperatorCommand(operator_context, command, args)) {
          return *result;
        }
        return gridd::daemon::RunAdminCommand(accounts, command, args, &guest_tools);
      });
  admin.Start();
  spdlog::info("admin socket {}", (config.data_dir / "admin.sock").string());

  // Prometheus metrics on a listener of their own; the state gauges are read at each scrape.
  gridd::metrics::CreateSharedFamilies();
  gridd::metrics::Default()
      .Gauge("gridd_build_info", "Always 1; the version of the running gridd.", {"version"})
      .Set({GRIDD_VERSION}, 1);
  std::unique_ptr<gridd::api::HttpServer> metrics_http;
  if (config.metrics_enabled) {
    gridd::api::HttpServerOptions metrics_options;
    metrics_options.host = config.metrics_host;
    metrics_options.port = config.metrics_port;
    metrics_options.threads = 1;
    metrics_options.access_log = false;
    metrics_options.record_metrics = false;
    metrics_http = std::make_unique<gridd::api::HttpServer>(
        metrics_options,
        [&db, &hosts, &clock](const gridd::api::HttpRequest& request) {
          gridd::api::HttpResponse response;
          response.content_type = "text/plain; charset=utf-8";
          if (gridd::api::PathOf(request.target) != "/metrics") {
            response.status = 404;
            response.body = "gridd serves its metrics at /metrics\n";
          } else if (request.method != "GET" && request.method != "HEAD") {
            response.status = 405;
            response.body = "use GET\n";
          } else {
            gridd::jobs::RefreshStateMetrics(db, hosts, clock);
            response.content_type = gridd::metrics::kContentType;
            response.body = gridd::metrics::Default().Render();
          }
          return response;
        },
        [](unsigned status, const std::string& message) {
          return gridd::api::HttpResponse{status, "text/plain; charset=utf-8", message + "\n", {}};
        });
    metrics_http->Start();
    spdlog::info("metrics on http://{}:{}/metrics", UrlHost(config.metrics_host),
                 metrics_http->port());
  }
  if (plain_http) {
    spdlog::info("listening on http://{}:{}", UrlHost(config.listen_host), plain_http->port());
  } else {
    spdlog::info("plain HTTP switched off (server.plain_http = false)");
  }

  // What a reload changes without a restart. Rate limits join this list when they come.
  const std::vector<gridd::daemon::LiveSetting> live_settings = {
      {"log.level",
       [](const gridd::Config& fresh, gridd::Config& running) {
         spdlog::set_level(spdlog::level::from_str(fresh.log_level));
         running.log_level = fresh.log_level;
       }},
      {"jobs.workers",
       [&runner](const gridd::Config& fresh, gridd::Config& running) {
         runner.SetWorkers(fresh.job_workers);
         running.job_workers = fresh.job_workers;
       }},
  };
  gridd::daemon::Watchdog watchdog([&db] {
    return db.Read([](gridd::store::Connection& c) {
      auto st = c.Prepare("SELECT 1");
      return st.Step();
    });
  });
  gridd::daemon::Notify("READY=1\nSTATUS=serving the API on port " +
                        std::to_string(plain_http ? plain_http->port() : tls_http->port()));

  int signal_number = 0;
  for (;;) {
    sigwait(&stop_signals, &signal_number);
    if (signal_number != SIGHUP) break;
    gridd::daemon::Notify("RELOADING=1");
    try {
      gridd::Config fresh = load_config();
      const auto report = gridd::daemon::ApplyReload(config, fresh, live_settings);
      for (const auto& change : report.applied) spdlog::info("reload: applied {}", change);
      for (const auto& change : report.restart_needed) {
        spdlog::warn("reload: {} takes effect at the next restart", change);
      }
      if (report.applied.empty() && report.restart_needed.empty()) {
        spdlog::info("reload: {} unchanged", config_path);
      }
    } catch (const std::exception& error) {
      spdlog::error("reload: configuration not changed: {}", error.what());
    }
    gridd::daemon::Notify("READY=1");
  }
  spdlog::info("received {}; stopping", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  gridd::daemon::Notify("STOPPING=1");

  if (metrics_http) metrics_http->Stop();
  if (plain_http) plain_http->Stop();
  if (tls_http) tls_http->Stop();
  admin.Stop();
  if (monitor) monitor->Stop();
  // No host report may reach the reconciler once it is gone.
  hosts.StopFollowing();
  reconciler.Stop();
  const bool jobs_idle = runner.Stop(5000);
  // HAProxy is gridd's child: it stops with gridd and is started again, with the stored
  // configuration, at the next start.
  if (engine) engine->Stop();
  if (!jobs_idle) {
    // A worker is inside a hypervisor call that cannot be interrupted. Its job stays
    // Processing in the database and is taken up again at the next start.
    spdlog::warn("a job is still running; it resumes at the next start");
    spdlog::shutdown();
    std::_Exit(0);
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    spdlog::critical("gridd: {}", error.what());
    std::fprintf(stderr, "gridd: %s\n", error.what());
    return 1;
  }
}
