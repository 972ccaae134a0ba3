// Fills a stopped gridd's database with servers (and, optionally, more job history) for the
// benchmarks in bench/run. It goes through gridd's own domain and store layers, so the rows are
// exactly those gridd writes: grid.server.add for each server, then each queued job claimed and
// finished the way the job runner does when the hypervisor call succeeds. Thousands of requests
// share one transaction, which is what makes it fast; on the test driver, gridd defines each
// server's domain when a job first acts on it.
//
//   gridd_bench_seed --data-dir DIR --servers N [--history-rows M] [--image NAME]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gridd/common/clock.h"
#include "gridd/common/crypto.h"
#include "gridd/domain/grid_service.h"
#include "gridd/domain/lookups.h"
#include "gridd/store/database.h"
#include "gridd/store/repositories.h"

namespace {

using gridd::domain::Caller;
using gridd::store::Connection;

// Does what the job runner does with every queued job whose hypervisor work succeeded: claim
// it, apply its final state change, finish it. Returns how many jobs it completed.
int CompleteQueuedJobs(Connection& c, int64_t now_ms) {
  namespace lookups = gridd::domain;
  int completed = 0;
  while (auto job = gridd::store::jobs::Claim(c, now_ms, 300'000)) {
    int64_t state = lookups::server_state::kOn;
    if (job->command == lookups::job_command::kStopVirtualServer) {
      state = lookups::server_state::kOff;
    }
    gridd::store::servers::SetState(c, job->object_id, state, now_ms);
    gridd::store::jobs::Finish(c, job->id, lookups::job_state::kSucceeded, std::nullopt, now_ms);
    ++completed;
  }
  return completed;
}

int64_t CountRows(gridd::store::Database& db, const char* table) {
  return db.Read([&](Connection& c) {
    auto statement = c.Prepare(std::string("SELECT COUNT(*) FROM ") + table);
    statement.Step();
    return statement.Int(0);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Seeds a stopped gridd's database with servers for the benchmarks"};
  std::string data_dir;
  int64_t servers = 0;
  int64_t history_rows = 0;
  std::string image = "debian-12-amd64";
  int batch = 2000;
  app.add_option("--data-dir", data_dir, "gridd's data dir (gridd must not be running)")
      ->required();
  app.add_option("--servers", servers, "servers the account should have in total")->required();
  app.add_option("--history-rows", history_rows,
                 "job history rows to reach by stopping and starting servers");
  app.add_option("--image", image, "image of the new servers");
  app.add_option("--batch", batch, "requests per transaction");
  CLI11_PARSE(app, argc, argv);

  try {
    std::ifstream credentials_file(data_dir + "/initial-credentials.json");
    if (!credentials_file) throw std::runtime_error("no initial-credentials.json in " + data_dir);
    const auto credentials = nlohmann::json::parse(credentials_file);

    const auto& clock = gridd::SystemClock::Instance();
    const auto box = gridd::SecretBox::LoadOrCreate(data_dir + "/master.key");
    gridd::store::Database db(data_dir + "/gridd.db");
    gridd::domain::Catalog catalog(db);
    gridd::domain::GridService grid(db, catalog, clock, box, [] {});

    const auto account = db.Read([&](Connection& c) {
      return gridd::store::accounts::FindByName(c, credentials.at("account").get<std::string>());
    });
    if (!account) throw std::runtime_error("the initial account is missing");
    Caller caller;
    caller.account_id = account->id;
    caller.account_name = account->name;
    caller.api_key = credentials.at("api_key").get<std::string>();
    caller.role = gridd::domain::Role::kSuperUser;

    const auto started = std::chrono::steady_clock::now();
    gridd::domain::IpFilter free_ips;
    free_ips.state = gridd::domain::ip_state::kUnassigned;
    free_ips.type = gridd::domain::ip_type::kPublic;
    // Addresses of pools without a libvirt network: their servers get no NIC, so restoring
    // them at start needs no DHCP reservation (the provisioning benchmark measures those).
    std::vector<gridd::domain::Ip> ips;
    for (auto& ip : grid.ListIps(caller, free_ips)) {
      if (ip.network.empty()) ips.push_back(std::move(ip));
    }
    const int64_t existing = db.Read([&](Connection& c) {
      return static_cast<int64_t>(gridd::store::servers::List(c, caller.account_id).size());
    });
    const int64_t wanted = servers - existing;
    if (wanted > static_cast<int64_t>(ips.size())) {
      throw std::runtime_error(
          fmt::format("{} servers to add but only {} free public IPs", wanted, ips.size()));
    }
    for (int64_t done = 0; done < wanted;) {
      const int64_t count = std::min<int64_t>(batch, wanted - done);
      db.Atomic([&](Connection& c) {
        for (int64_t i = 0; i < count; ++i) {
          gridd::domain::ServerAddRequest request;
          request.name = fmt::format("bench-{:06}", existing + done + i + 1);
          request.image = image;
          request.ram = "1GB";
          request.ip = ips[static_cast<size_t>(done + i)].address;
          request.description = "benchmark server";
          grid.AddServer(caller, request);
        }
        CompleteQueuedJobs(c, clock.NowMs());
      });
      done += count;
    }
    const double add_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    // More history: stop and start servers (two jobs, four history rows each) until there is
    // enough of it.
    int64_t history = CountRows(db, "job_history");
    int64_t server_id_cursor = 0;
    const auto all =
        db.Read([&](Connection& c) { return gridd::store::servers::List(c, caller.account_id); });
    while (history < history_rows && !all.empty()) {
      db.Atomic([&](Connection& c) {
        for (int i = 0; i < batch / 2 && history < history_rows; ++i) {
          const auto& server = all[static_cast<size_t>(server_id_cursor++ % all.size())];
          const std::vector<gridd::domain::Selector> selector = {
              {gridd::domain::Selector::Kind::kId, std::to_string(server.id)}};
          grid.PowerServer(caller, selector, std::string("stop"));
          CompleteQueuedJobs(c, clock.NowMs());
          grid.PowerServer(caller, selector, std::string("start"));
          CompleteQueuedJobs(c, clock.NowMs());
          history += 8;
        }
      });
    }
    std::cout << fmt::format(
        "seeded: {} servers, {} jobs, {} job history rows ({} servers added in {:.1f} s)\n",
        CountRows(db, "servers"), CountRows(db, "jobs"), CountRows(db, "job_history"), wanted,
        add_seconds);
  } catch (const std::exception& error) {
    std::cerr << "gridd_bench_seed: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
