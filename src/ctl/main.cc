// gridctl: the operator's command line for a running gridd. Every subcommand becomes one
// admin command sent over DIR/admin.sock, so the daemon stays the only writer of its database.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "ctl/admin_client.h"
#include "ctl/output.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitCommandFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

constexpr std::chrono::seconds kTimeout{30};

// What the parsed command line asks the daemon to do.
struct Request {
  std::string command;
  nlohmann::ordered_json args = nlohmann::ordered_json::object();
};

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// Declares one leaf subcommand and the admin command it sends. Each argument is named after
// its JSON key (positional KEY or --key) and lands in args only when given, so the daemon
// sees exactly what the operator typed.
class CommandBuilder {
 public:
  CommandBuilder(CLI::App& parent, const std::string& name, const std::string& description,
                 const std::string& admin_command, Request& request)
      : app_(parent.add_subcommand(name, description)),
        fields_(std::make_shared<std::vector<Field>>()) {
    app_->callback([fields = fields_, admin_command, &request] {
      request.command = admin_command;
      for (const auto& field : *fields) {
        if (field.option->count() > 0) request.args[field.key] = field.option->as<std::string>();
      }
    });
  }

  CommandBuilder& Positional(const std::string& key, const std::string& description) {
    fields_->push_back(
        {key, app_->add_option(key, description)->required()->type_name(Upper(key))});
    return *this;
  }

  CommandBuilder& Required(const std::string& key, const std::string& description) {
    fields_->push_back({key, Flag(key, description)->required()});
    return *this;
  }

  CommandBuilder& Optional(const std::string& key, const std::string& description) {
    fields_->push_back({key, Flag(key, description)});
    return *this;
  }

  CommandBuilder& RequiredChoice(const std::string& key, const std::string& description,
                                 std::vector<std::string> choices) {
    fields_->push_back(
        {key, Flag(key, description)->required()->check(CLI::IsMember(std::move(choices)))});
    return *this;
  }

 private:
  struct Field {
    std::string key;
    CLI::Option* option;
  };

  // --ram_overcommit is also accepted as --ram-overcommit.
  CLI::Option* Flag(const std::string& key, const std::string& description) {
    std::string names = "--" + key;
    if (key.find('_') != std::string::npos) {
      std::string dashed = key;
      std::replace(dashed.begin(), dashed.end(), '_', '-');
      names += ",--" + dashed;
    }
    return app_->add_option(names, description)->type_name(Upper(key));
  }

  CLI::App* app_;
  std::shared_ptr<std::vector<Field>> fields_;  // shared with the callback, which outlives us
};

// A function rather than the constructor, so that a command without arguments is a plain call
// and not a temporary that reads like a mistake.
CommandBuilder Command(CLI::App& parent, const std::string& name, const std::string& description,
                       const std::string& admin_command, Request& request) {
  return CommandBuilder(parent, name, description, admin_command, request);
}

CLI::App* Group(CLI::App& app, const std::string& name, const std::string& description) {
  CLI::App* group = app.add_subcommand(name, description);
  group->require_subcommand(1);
  return group;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Operate a running gridd through the admin socket in its data directory."};
  app.name("gridctl");
  // Inherited by the subcommands created below: lets --json and --data-dir follow them.
  app.fallthrough();
  app.require_subcommand(1);

  std::string data_dir = "gridd-data";
  app.add_option("--data-dir", data_dir, "gridd's data directory; the socket is DIR/admin.sock")
      ->envname("GRIDD_DATA_DIR")
      ->type_name("DIR")
      ->capture_default_str();
  bool json = false;
  app.add_flag("--json", json, "Print the raw JSON result instead of a table");

  Request request;

  CLI::App* account = Group(app, "account", "Customer accounts");
  Command(*account, "create", "Create an account", "account.create", request)
      .Positional("name", "Account name");
  Command(*account, "list", "List accounts", "account.list", request);

  CLI::App* apikey = Group(app, "apikey", "API keys");
  Command(*apikey, "create", "Issue an API key and its shared secret", "apikey.create", request)
      .Required("account", "Account name or id")
      .Required("role",
                "super, system, billing, readonly (or Super User, System User, Billing User, "
                "Read Only User)")
      .Optional("signing", "Signatures the key may use: md5+hmac (default) or hmac-only");
  Command(*apikey, "list", "List API keys", "apikey.list", request)
      .Optional("account", "Only this account's keys (name or id)");
  Command(*apikey, "signing",
          "Choose the signatures a key may use; it applies to the key's next request",
          "apikey.signing", request)
      .Positional("api_key", "The key to change")
      .Positional("policy", "md5+hmac (GoGrid's MD5 or HMAC-SHA256) or hmac-only");
  Command(*apikey, "rotate",
          "Give a key a new shared secret (printed once); the old one works for a grace period",
          "apikey.rotate", request)
      .Positional("api_key", "The key to rotate")
      .Optional("grace",
                "How long the old secret keeps working: 0 (not at all), 90s, 15m, 24h "
                "(default) or 7d; at most 30d");
  Command(*apikey, "revoke", "Revoke an API key", "apikey.revoke", request)
      .Positional("api_key", "The key to revoke");
  Command(*apikey, "role", "Give an API key another role; it applies to the next request",
          "apikey.role", request)
      .Positional("api_key", "The key to change")
      .Required("role", "super, system, billing, readonly (or the full role names)");

  CLI::App* datacenter =
      Group(app, "datacenter", "Datacenters (declared in gridd.toml or added here)");
  Command(*datacenter, "list", "List datacenters", "datacenter.list", request);
  Command(*datacenter, "add", "Add a datacenter (it appears in the datacenter lookups)",
          "datacenter.add", request)
      .Positional("name", "Datacenter name, e.g. US-East-1")
      .Optional("description", "Description shown to customers (default: NAME Datacenter)");

  CLI::App* host = Group(app, "host", "Hypervisor hosts that run the servers");
  Command(*host, "add", "Connect to a libvirt host and let the scheduler place servers on it",
          "host.add", request)
      .Positional("name", "Host name")
      .Positional("uri", "libvirt URI, e.g. qemu+ssh://root@kvm1.example.net/system")
      .Required("datacenter", "Datacenter name or id the host serves")
      .Optional("ram_overcommit", "RAM the scheduler may book, as a multiple of the host's (1.0)")
      .Optional("shared_storage",
                "on: the storage pool is shared with the other hosts, so evacuation keeps disks");
  Command(*host, "list", "List hosts with their state, capacity and use", "host.list", request);
  Command(*host, "maintenance", "Stop (on) or resume (off) placing new servers on a host",
          "host.maintenance", request)
      .Positional("name", "Host name")
      .Positional("mode", "on or off");
  Command(*host, "remove", "Forget a host; refused while it has servers", "host.remove", request)
      .Positional("name", "Host name");
  Command(*host, "down", "Mark a host Down (fenced, or known dead) so it can be evacuated",
          "host.down", request)
      .Positional("name", "Host name");
  Command(*host, "up", "Connect to a Down host again and reconcile its domains", "host.up", request)
      .Positional("name", "Host name");
  Command(*host, "evacuate",
          "Re-create the servers of a Down host on other hosts of its datacenter (jobs)",
          "host.evacuate", request)
      .Positional("name", "Host name");

  CLI::App* ippool = Group(app, "ippool", "IP address pools");
  Command(*ippool, "add", "Add a CIDR block of addresses", "ippool.add", request)
      .Required("datacenter", "Datacenter name or id")
      .RequiredChoice("type", "public or private", {"public", "private"})
      .Optional("account", "Reserve the pool for this account (name or id)")
      .Optional("network", "Network the addresses belong to")
      .Positional("cidr", "Address block, e.g. 203.0.113.0/24");
  Command(*ippool, "list", "List IP pools", "ippool.list", request);
  Command(*ippool, "remove", "Remove a pool and its addresses; refused while any is assigned",
          "ippool.remove", request)
      .Positional("pool", "Pool id or CIDR, as ippool list shows them");

  CLI::App* image = Group(app, "image", "Server images");
  Command(*image, "list", "List images", "image.list", request);
  Command(*image, "import", "Copy a qcow2 image into gridd's storage pool and list it",
          "image.import", request)
      .Positional("name", "Image name (also its volume: NAME.qcow2)")
      .Positional("file", "The qcow2 file to copy")
      .Optional("os", "Operating system shown to customers (default: the name)")
      .Optional("description", "Description shown to customers")
      .Optional("friendly_name", "Name shown to customers (default: the name)")
      .Optional("architecture", "32-bit or 64-bit (default 64-bit)");
  Command(*image, "public", "Make an Available image visible to every account", "image.public",
          request)
      .Positional("id", "Image id");
  Command(*image, "private", "Make an account's image visible to its account only", "image.private",
          request)
      .Positional("id", "Image id");
  Command(*image, "delete", "Move an image to the Trash (its volume stays, for restore)",
          "image.delete", request)
      .Positional("id", "Image id");

  CLI::App* server = Group(app, "server", "Servers of every account");
  Command(*server, "list", "List servers across accounts", "server.list", request)
      .Optional("account", "Only this account's servers (name or id)")
      .Optional("state", "Only servers in this state (On, Off, Starting, ...)")
      .Optional("datacenter", "Only servers in this datacenter (name or id)");
  Command(*server, "move",
          "Move a server to another Up host of its datacenter, live where libvirt can (a job)",
          "server.move", request)
      .Positional("server", "Server id or name")
      .Positional("host", "Target host name");
  Command(*server, "console-log", "Print a server's serial console log", "server.console-log",
          request)
      .Positional("server", "Server id or name");

  CLI::App* job = Group(app, "job", "The job queue");
  Command(*job, "list", "List jobs across accounts, newest first", "job.list", request)
      .Optional("account", "Only this account's jobs (name or id)")
      .Optional("state", "Only jobs in this state (Queued, Processing, Succeeded, Failed, ...)")
      .Optional("command", "Only jobs of this command (e.g. CreateVirtualServer)");
  Command(*job, "show", "Show a job with its history", "job.show", request)
      .Positional("id", "Job id");
  Command(*job, "retry", "Queue a Failed job again as a fresh run; its history is kept",
          "job.retry", request)
      .Positional("id", "Job id");

  CLI::App* domain = Group(app, "domain", "What gridd sees on its hypervisor");
  Command(*domain, "list",
          "List the domains carrying gridd's metadata and whether a server row matches",
          "domain.list", request);
  Command(app, "reconcile",
          "Compare the hypervisor and load balancers with the database now; print the findings",
          "reconcile", request);
  Command(app, "backup", "Write an online, consistent copy of the database to FILE (mode 0600)",
          "backup", request)
      .Positional("file", "Backup file to create (must not exist)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;  // --help exits 0
  }

  // The daemon writes the backup; a relative FILE means the operator's working directory.
  if (request.command == "backup" && request.args.contains("file")) {
    request.args["file"] = std::filesystem::absolute(request.args["file"].get<std::string>())
                               .lexically_normal()
                               .string();
  }
  // The daemon runs elsewhere in the file system: it needs the file's absolute path.
  if (request.command == "image.import") {
    request.args["file"] =
        std::filesystem::absolute(request.args["file"].get<std::string>()).string();
  }

  gridd::ctl::AdminClient client(std::filesystem::path(data_dir) / "admin.sock", kTimeout);
  try {
    nlohmann::ordered_json result = client.Call(request.command, request.args);
    if (!json && request.command == "server.console-log") {
      std::cout << result.value("console", "");
    } else if (json) {
      std::cout << result.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                << '\n';
    } else {
      gridd::ctl::PrintResult(result, std::cout);
    }
    return kExitOk;
  } catch (const gridd::ctl::Unreachable& e) {
    std::cerr << "gridctl: " << e.what() << '\n';
    return kExitUnreachable;
  } catch (const gridd::ctl::CommandFailed& e) {
    std::cerr << "gridctl: " << e.what() << '\n';
    return kExitCommandFailed;
  }
}
