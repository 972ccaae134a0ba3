#include "support/crash_harness.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "support/api_client.h"
#include "support/command.h"
#include "support/daemon_process.h"

namespace gridd::testing {
namespace {

using Json = nlohmann::json;
using Params = std::vector<std::pair<std::string, std::string>>;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kServerIpsPerClient = 12;
constexpr int kVipsPerClient = 3;
// Load balancers live on addresses of their own, apart from the other tests' 127.77.x.x.
constexpr const char* kVipPool = "127.78.0.0/26";
constexpr const char* kRealPool = "127.78.1.0/28";

struct ServerModel {
  std::string ip;
  std::string description;
  bool on = true;
};

struct BalancerModel {
  std::string vip;
  int port = 0;
  std::vector<std::pair<std::string, int>> members;
};

// What one client was told: its servers and load balancers, by name.
struct ClientModel {
  std::map<std::string, ServerModel> servers;
  std::map<std::string, BalancerModel> balancers;
  std::vector<std::string> free_ips;
  std::vector<std::string> free_vips;
};

class Harness {
 public:
  explicit Harness(const CrashHarnessOptions& options) : options_(options) {
    report_.seed = options.seed;
  }

  CrashHarnessReport Run() {
    daemon_.Start();
    Setup();
    const auto started = Clock::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < options_.clients; ++i) clients.emplace_back([this, i] { ClientLoop(i); });

    std::mt19937_64 rng(options_.seed);
    for (int kill = 0; kill < options_.kills; ++kill) {
      if (options_.time_limit.count() > 0 && Clock::now() - started > options_.time_limit) break;
      std::uniform_int_distribution<int64_t> gap(options_.min_gap.count(),
                                                 options_.max_gap.count());
      std::this_thread::sleep_for(milliseconds(gap(rng)));
      // Mostly cut the process while a write is in flight; wait (bounded) for one.
      const bool want_write = rng() % 4 != 0;
      const auto wait_until = Clock::now() + seconds(2);
      while (want_write && in_flight_.load() == 0 && Clock::now() < wait_until) {
        std::this_thread::sleep_for(milliseconds(1));
      }
      const bool during_write = in_flight_.load() > 0;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        up_ = false;
      }
      daemon_.Kill();
      ++report_.kills;
      report_.kills_during_writes += during_write;
      try {
        daemon_.Start();
      } catch (const std::exception& error) {
        Violation(std::string("gridd did not come back after kill ") +
                  std::to_string(report_.kills) + ": " + error.what());
        stop_clients_ = true;
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        up_ = true;
        ++generation_;
      }
      changed_.notify_all();
      Log("kill " + std::to_string(report_.kills) + (during_write ? " (during writes)" : "") +
          ", requests so far " + std::to_string(requests_.load()));
    }
    stop_clients_ = true;
    changed_.notify_all();
    for (auto& client : clients) client.join();
    report_.requests = requests_;
    report_.acknowledged = acknowledged_;
    report_.refused = refused_;
    if (daemon_.running()) Verify();
    return report_;
  }

 private:
  void Log(const std::string& line) {
    if (options_.log != nullptr) *options_.log << "crash harness: " << line << std::endl;
  }
  void Violation(const std::string& what) {
    std::lock_guard<std::mutex> lock(violations_mutex_);
    report_.violations.push_back(what);
    Log("VIOLATION: " + what);
  }

  ApiClient Client() {
    ApiClient client(daemon_.host(), daemon_.port());
    client.SetCredentials(daemon_.api_key(), daemon_.shared_secret());
    client.SetTimeout(seconds(20));
    return client;
  }

  Json Get(const std::string& method, Params params = {}) {
    ApiClient client = Client();
    auto reply = client.Call(method, std::move(params));
    if (reply.status != 200) throw std::runtime_error(method + " answered " + reply.body);
    return reply.json();
  }

  void Setup() {
    for (const char* pool : {kVipPool, kRealPool}) {
      auto added = RunGridctl(daemon_.data_dir(),
                              std::string("ippool add --datacenter US-West-1 --type public "
                                          "--account default ") +
                                  pool);
      if (added.exit_code != 0) throw std::runtime_error("ippool add: " + added.output);
    }
    const Json ips = Get("grid/ip/list", {{"ip.type", "Public"}, {"ip.state", "Unassigned"}});
    std::vector<std::string> server_ips, vips;
    for (const auto& ip : ips["list"]) {
      const std::string address = ip["ip"];
      if (address.rfind("192.0.2.", 0) == 0) server_ips.push_back(address);
      if (address.rfind("127.78.0.", 0) == 0) vips.push_back(address);
      if (address.rfind("127.78.1.", 0) == 0) real_ips_.push_back(address);
    }
    models_.resize(static_cast<size_t>(options_.clients));
    for (int i = 0; i < options_.clients; ++i) {
      auto& model = models_[static_cast<size_t>(i)];
      for (int j = 0; j < kServerIpsPerClient; ++j) {
        model.free_ips.push_back(server_ips.at(static_cast<size_t>(i * kServerIpsPerClient + j)));
      }
      for (int j = 0; j < kVipsPerClient; ++j) {
        model.free_vips.push_back(vips.at(static_cast<size_t>(i * kVipsPerClient + j)));
      }
    }
    // Virtual ports: one per client, varied by process so parallel runs do not collide.
    port_base_ = 31000 + static_cast<int>(getpid() % 3000) * 8;
  }

  // Sends a mutating request with its idempotency key; when gridd dies before answering,
  // sends it again to the restarted gridd. Returns the answer, or nothing once the clients
  // are told to stop or the request cannot be delivered.
  std::optional<ApiClient::Reply> Send(std::unique_ptr<ApiClient>& client,
                                       uint64_t& client_generation, const std::string& method,
                                       Params params, const std::string& key) {
    if (options_.idempotency_keys) params.emplace_back("idempotency_key", key);
    for (int attempt = 0; attempt < 100; ++attempt) {
      uint64_t generation = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!changed_.wait_for(lock, seconds(60), [&] { return up_ || stop_clients_; })) {
          Violation(method + " " + key + ": gridd did not come back within 60 s");
          return std::nullopt;
        }
        if (!up_) return std::nullopt;
        generation = generation_;
        if (!client || client_generation != generation) {
          client = std::make_unique<ApiClient>(Client());
          client_generation = generation;
        }
      }
      ++in_flight_;
      ++requests_;
      try {
        auto reply = client->Call(method, params, "POST");
        --in_flight_;
        if (reply.status == 200) {
          ++acknowledged_;
        } else if (reply.status == 400) {
          ++refused_;
          std::string message;
          try {
            message = reply.json()["list"][0]["message"].get<std::string>();
          } catch (const std::exception&) {
            message = reply.body.substr(0, 100);
          }
          // Numbers vary per object; the rest says why.
          for (char& c : message) {
            if (c >= '0' && c <= '9') c = 'N';
          }
          std::lock_guard<std::mutex> lock(violations_mutex_);
          ++report_.refusals[message.substr(0, 120)];
        } else {
          Violation(method + " " + key + " answered " + std::to_string(reply.status) + ": " +
                    reply.body.substr(0, 300));
        }
        return reply;
      } catch (const std::exception&) {
        --in_flight_;
        // Killed under us (or restarting): wait for the next gridd and send it again.
        client.reset();
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait_for(lock, seconds(30),
                          [&] { return stop_clients_ || generation_ != generation; });
        if (stop_clients_ && generation_ == generation) return std::nullopt;
      }
    }
    Violation(method + " " + key + ": no answer after 100 attempts");
    return std::nullopt;
  }

  void ClientLoop(int index) {
    ClientModel& model = models_[static_cast<size_t>(index)];
    std::mt19937_64 rng(options_.seed * 7919 + static_cast<uint64_t>(index) + 1);
    std::unique_ptr<ApiClient> client;
    uint64_t client_generation = 0;
    int serial = 0;
    auto pick = [&rng](auto& container) {
      auto it = container.begin();
      std::advance(it, static_cast<long>(rng() % container.size()));
      return it;
    };
    const std::string prefix = "c" + std::to_string(index);
    while (!stop_clients_) {
      const int roll = static_cast<int>(rng() % 100);
      const std::string key =
          prefix + "-" + std::to_string(options_.seed) + "-" + std::to_string(++serial);
      if (roll < 25 && !model.free_ips.empty()) {
        const std::string name = prefix + "-s" + std::to_string(serial);
        // Appended, not "d" + ...: GCC 12 at -O2 warns (-Wrestrict) on that insert.
        std::string description = "d";
        description += std::to_string(serial);
        const size_t slot = rng() % model.free_ips.size();
        const std::string ip = model.free_ips[slot];
        auto reply = Send(client, client_generation, "grid/server/add",
                          {{"name", name},
                           {"image", "debian-12-amd64"},
                           {"server.ram", "512MB"},
                           {"ip", ip},
                           {"description", description}},
                          key);
        if (reply && reply->status == 200) {
          model.servers[name] = ServerModel{ip, description, true};
          model.free_ips.erase(model.free_ips.begin() + static_cast<long>(slot));
        }
      } else if (roll < 50 && !model.servers.empty()) {
        auto it = pick(model.servers);
        static const char* kActions[] = {"start", "stop", "restart"};
        const std::string action = kActions[rng() % 3];
        auto reply = Send(client, client_generation, "grid/server/power",
                          {{"name", it->first}, {"power", action}}, key);
        if (reply && reply->status == 200) it->second.on = action != "stop";
      } else if (roll < 62 && !model.servers.empty()) {
        auto it = pick(model.servers);
        const std::string description = "e" + std::to_string(serial);
        auto reply = Send(client, client_generation, "grid/server/edit",
                          {{"name", it->first}, {"description", description}}, key);
        if (reply && reply->status == 200) it->second.description = description;
      } else if (roll < 72 && !model.servers.empty()) {
        auto it = pick(model.servers);
        auto reply =
            Send(client, client_generation, "grid/server/delete", {{"name", it->first}}, key);
        if (reply && reply->status == 200) {
          model.free_ips.push_back(it->second.ip);
          model.servers.erase(it);
        }
      } else if (roll < 82 && !model.free_vips.empty()) {
        const std::string name = prefix + "-lb" + std::to_string(serial);
        const size_t slot = rng() % model.free_vips.size();
        BalancerModel balancer{model.free_vips[slot], port_base_ + index, Members(rng)};
        Params params{{"name", name},
                      {"virtualip.ip", balancer.vip},
                      {"virtualip.port", std::to_string(balancer.port)}};
        AddMembers(params, balancer.members);
        auto reply = Send(client, client_generation, "grid/loadbalancer/add", params, key);
        if (reply && reply->status == 200) {
          model.balancers[name] = balancer;
          model.free_vips.erase(model.free_vips.begin() + static_cast<long>(slot));
        }
      } else if (roll < 92 && !model.balancers.empty()) {
        auto it = pick(model.balancers);
        auto members = Members(rng);
        Params params{{"name", it->first}};
        AddMembers(params, members);
        auto reply = Send(client, client_generation, "grid/loadbalancer/edit", params, key);
        if (reply && reply->status == 200) it->second.members = members;
      } else if (!model.balancers.empty()) {
        auto it = pick(model.balancers);
        auto reply =
            Send(client, client_generation, "grid/loadbalancer/delete", {{"name", it->first}}, key);
        if (reply && reply->status == 200) {
          model.free_vips.push_back(it->second.vip);
          model.balancers.erase(it);
        }
      }
      std::this_thread::sleep_for(milliseconds(static_cast<int64_t>(rng() % 40)));
    }
  }

  std::vector<std::pair<std::string, int>> Members(std::mt19937_64& rng) {
    std::vector<std::pair<std::string, int>> members;
    const size_t count = 1 + rng() % 3;
    for (size_t i = 0; i < count; ++i) {
      members.emplace_back(real_ips_.at(rng() % real_ips_.size()), 8000 + static_cast<int>(i));
    }
    return members;
  }
  static void AddMembers(Params& params, const std::vector<std::pair<std::string, int>>& members) {
    for (size_t i = 0; i < members.size(); ++i) {
      params.emplace_back("realiplist." + std::to_string(i) + ".ip", members[i].first);
      params.emplace_back("realiplist." + std::to_string(i) + ".port",
                          std::to_string(members[i].second));
    }
  }

  // ------------------------------------------------------------------------- verification

  void Verify() {
    // Quiet period: every job reaches a final state (bounded).
    Json jobs;
    const auto deadline = Clock::now() + seconds(120);
    while (true) {
      jobs = Get("grid/job/list", {{"num_items", "1000000"}});
      bool unfinished = false;
      for (const auto& job : jobs["list"]) {
        const std::string state = job["currentstate"]["name"];
        unfinished |= state != "Succeeded" && state != "Failed";
      }
      if (!unfinished) break;
      if (Clock::now() > deadline) {
        Violation("jobs still unfinished 120 s after the last restart");
        break;
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
    std::map<std::string, std::string> last_server_job_state;  // by server name, newest job
    std::map<std::string, int64_t> last_server_job_id;
    for (const auto& job : jobs["list"]) {
      const std::string state = job["currentstate"]["name"];
      if (state != "Succeeded" && state != "Failed") {
        Violation("job " + job["id"].dump() + " left " + state);
      }
      if (state == "Failed") {
        ++report_.failed_jobs;
        const auto& history = job["history"];
        if (history.empty() || !history.back().contains("note") ||
            history.back()["note"].get<std::string>().empty()) {
          Violation("job " + job["id"].dump() + " Failed without a message");
        }
      }
      if (job["objecttype"]["name"] == "VirtualServer" && job["detail"].contains("name")) {
        const std::string name = job["detail"]["name"];
        const int64_t id = job["id"];
        if (id > last_server_job_id[name]) {
          last_server_job_id[name] = id;
          last_server_job_state[name] = state;
        }
      }
    }

    // Servers: exactly the acknowledged ones, once each, as acknowledged.
    const Json servers = Get("grid/server/list");
    std::map<std::string, int> seen;
    std::map<int64_t, std::string> server_state_by_id;
    std::map<std::string, std::string> owner_of_ip;
    std::map<std::string, ServerModel> expected;
    for (const auto& model : models_) expected.insert(model.servers.begin(), model.servers.end());
    for (const auto& server : servers["list"]) {
      const std::string name = server["name"];
      const std::string ip = server["ip"]["ip"];
      const std::string state = server["state"]["name"];
      ++seen[name];
      server_state_by_id[server["id"].get<int64_t>()] = state;
      if (!owner_of_ip.emplace(ip, "server " + name).second) {
        Violation("IP " + ip + " assigned twice (" + owner_of_ip[ip] + ", server " + name + ")");
      }
      auto it = expected.find(name);
      if (it == expected.end()) {
        Violation("server " + name + " exists but no acknowledged request left it");
        continue;
      }
      if (ip != it->second.ip)
        Violation("server " + name + " has IP " + ip + ", not " + it->second.ip);
      if (server["description"] != it->second.description) {
        Violation("server " + name + " has description " + server["description"].dump() +
                  ", acknowledged " + it->second.description);
      }
      const std::string want = it->second.on ? "On" : "Off";
      if (last_server_job_state[name] == "Succeeded" && state != want) {
        Violation("server " + name + " is " + state + ", acknowledged " + want);
      }
    }
    for (const auto& [name, count] : seen) {
      if (count > 1) Violation("server " + name + " exists " + std::to_string(count) + " times");
    }
    for (const auto& [name, model] : expected) {
      if (seen.count(name) == 0) Violation("acknowledged server " + name + " is lost");
    }
    report_.servers = static_cast<int>(seen.size());

    // Load balancers: exactly the acknowledged ones with their real-IP pools.
    std::map<std::string, BalancerModel> expected_balancers;
    for (const auto& model : models_) {
      expected_balancers.insert(model.balancers.begin(), model.balancers.end());
    }
    const Json balancers = Get("grid/loadbalancer/list");
    std::set<std::string> seen_balancers;
    for (const auto& balancer : balancers["list"]) {
      const std::string name = balancer["name"];
      const std::string vip = balancer["virtualip"]["ip"]["ip"];
      if (!seen_balancers.insert(name).second) Violation("load balancer " + name + " exists twice");
      if (!owner_of_ip.emplace(vip, "load balancer " + name).second) {
        Violation("IP " + vip + " assigned twice (" + owner_of_ip[vip] + ", load balancer " + name +
                  ")");
      }
      auto it = expected_balancers.find(name);
      if (it == expected_balancers.end()) {
        Violation("load balancer " + name + " exists but no acknowledged request left it");
        continue;
      }
      std::vector<std::pair<std::string, int>> members;
      for (const auto& member : balancer["realiplist"]) {
        members.emplace_back(member["ip"]["ip"].get<std::string>(), member["port"].get<int>());
      }
      if (vip != it->second.vip || balancer["virtualip"]["port"] != it->second.port) {
        Violation("load balancer " + name + " moved to " + vip);
      }
      if (members != it->second.members) {
        Violation("load balancer " + name + " has " + std::to_string(members.size()) +
                  " real IPs, not the acknowledged " + std::to_string(it->second.members.size()));
      }
    }
    for (const auto& [name, model] : expected_balancers) {
      if (seen_balancers.count(name) == 0)
        Violation("acknowledged load balancer " + name + " is lost");
    }
    report_.load_balancers = static_cast<int>(seen_balancers.size());

    // IPs: every assigned address has exactly one owner seen above; none leaked.
    const Json ips = Get("grid/ip/list");
    for (const auto& ip : ips["list"]) {
      const std::string address = ip["ip"];
      const bool assigned = ip["state"]["name"] == "Assigned";
      const bool owned = owner_of_ip.count(address) != 0;
      if (assigned && !owned) Violation("IP " + address + " is assigned to nothing (leaked)");
      if (!assigned && owned)
        Violation("IP " + address + " is in use by " + owner_of_ip[address] + " but unassigned");
    }

    // The hypervisor: at most one gridd domain per server row, running exactly when the server is
    // On. On the test driver, which forgets its domains at each start, a server's domain is
    // built again when a job first acts on it, so a server without one is not yet materialised.
    auto domains = RunGridctl(daemon_.data_dir(), "--json domain list");
    if (domains.exit_code != 0) {
      Violation("gridctl domain list: " + domains.output);
    } else {
      std::set<int64_t> domain_ids;
      for (const auto& domain : Json::parse(domains.output)) {
        const int64_t id = domain["server_id"];
        domain_ids.insert(id);
        auto it = server_state_by_id.find(id);
        if (it == server_state_by_id.end()) {
          Violation("domain " + domain["name"].get<std::string>() + " has no server row");
          continue;
        }
        const bool running = domain["state"] == "running";
        if ((it->second == "On") != running) {
          Violation("domain " + domain["name"].get<std::string>() + " is " +
                    domain["state"].get<std::string>() + " but its server is " + it->second);
        }
      }
    }
    auto reconcile = RunGridctl(daemon_.data_dir(), "--json reconcile");
    if (reconcile.exit_code != 0) {
      Violation("gridctl reconcile: " + reconcile.output);
    } else if (!Json::parse(reconcile.output)["findings"].empty()) {
      Violation("the reconciler still finds drift: " + reconcile.output);
    }

    // Storage: cut once more, then SQLite's own check of the file as gridd left it.
    daemon_.Kill();
    const std::string db_path = (daemon_.data_dir() / "gridd.db").string();
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      Violation("cannot open " + db_path);
    } else {
      sqlite3_stmt* stmt = nullptr;
      std::string result;
      if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK) {
        while (sqlite3_step(stmt) == SQLITE_ROW) {
          result += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        }
      }
      sqlite3_finalize(stmt);
      if (result != "ok") Violation("PRAGMA integrity_check: " + result);
    }
    sqlite3_close(db);
    // A last start takes the HAProxy the killed gridd left behind down with it on stop.
    daemon_.Start();
    daemon_.Stop();
  }

  CrashHarnessOptions options_;
  CrashHarnessReport report_;
  DaemonProcess daemon_;
  std::vector<ClientModel> models_;
  std::vector<std::string> real_ips_;
  int port_base_ = 31000;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool up_ = true;
  uint64_t generation_ = 0;
  std::atomic<bool> stop_clients_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> acknowledged_{0};
  std::atomic<int> refused_{0};
  std::mutex violations_mutex_;
};

}  // namespace

uint64_t CrashSeedFromEnvironment() {
  if (const char* text = std::getenv("GRIDD_CRASH_SEED"); text != nullptr && *text != '\0') {
    return std::strtoull(text, nullptr, 10);
  }
  return static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) %
         1'000'000'007ULL;
}

CrashHarnessReport RunCrashHarness(const CrashHarnessOptions& options) {
  Harness harness(options);
  return harness.Run();
}

}  // namespace gridd::testing
