#include "gridd/domain/grid_service.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include "domain/rules.h"
#include "gridd/common/error.h"
#include "gridd/store/repositories.h"

namespace gridd::domain {
namespace {

using store::Connection;

const std::string& Required(const std::optional<std::string>& value, const char* parameter) {
  if (!value || value->empty()) {
    ThrowIllegalArgument(std::string("Missing required parameter: ") + parameter);
  }
  return *value;
}

void CheckText(const std::string& value, const char* parameter) {
  for (unsigned char c : value) {
    if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') {
      ThrowIllegalArgument(std::string("Parameter '") + parameter +
                           "' contains control characters");
    }
  }
}

bool Contains(const std::vector<int64_t>& values, int64_t value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

std::string Describe(const Selector& selector) {
  switch (selector.kind) {
    case Selector::Kind::kId:
      return "id " + selector.value;
    case Selector::Kind::kName:
      return "name '" + selector.value + "'";
    case Selector::Kind::kIdOrName:
      return "'" + selector.value + "'";
  }
  return selector.value;
}

}  // namespace

std::string Caller::JobOwner() const { return api_key + "-" + std::to_string(account_id) + "@api"; }

std::string MacForServer(int64_t server_id) {
  char mac[18];
  std::snprintf(
      mac, sizeof(mac), "52:54:00:%02x:%02x:%02x", static_cast<unsigned>((server_id >> 16) & 0xff),
      static_cast<unsigned>((server_id >> 8) & 0xff), static_cast<unsigned>(server_id & 0xff));
  return mac;
}

// ------------------------------------------------------------------------------------ catalog
std::shared_ptr<const CatalogLookups> Catalog::Lookups() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!lookups_) {
    auto loaded = std::make_shared<CatalogLookups>();
    db_.Read([&](Connection& c) {
      for (const auto& dc : store::datacenters::List(c)) {
        loaded->datacenters.push_back(Option{dc.id, dc.name, dc.description});
      }
      loaded->operating_systems = store::operating_systems::List(c);
    });
    lookups_ = std::move(loaded);
  }
  return lookups_;
}

void Catalog::Invalidate() {
  std::lock_guard<std::mutex> lock(mutex_);
  lookups_.reset();
}

// ------------------------------------------------------------------------------ grid service
GridService::GridService(store::Database& db, Catalog& catalog, const Clock& clock,
                         const SecretBox& box, std::function<void()> on_job_queued,
                         GridServiceOptions options)
    : db_(db),
      catalog_(catalog),
      clock_(clock),
      box_(box),
      on_job_queued_(std::move(on_job_queued)),
      options_(std::move(options)) {}

std::vector<Option> GridService::Lookup(std::string_view lookup) {
  std::string name(lookup);
  if (auto id = ParsePositiveId(lookup)) {
    const auto& catalogue = LookupCatalogue();
    auto it = std::find_if(catalogue.begin(), catalogue.end(),
                           [&](const Option& o) { return o.id == *id; });
    if (it == catalogue.end()) {
      ThrowIllegalArgument("Unknown lookup '" + name + "'; lookup=lookups lists them");
    }
    name = it->name;
  }
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (const auto* fixed = FixedLookup(name)) return *fixed;
  if (name == "datacenter" || name == "ip.datacenter" || name == "server.datacenter" ||
      name == "loadbalancer.datacenter" || name == "job.datacenter") {
    return catalog_.Datacenters();
  }
  if (name == "server.os" || name == "image.os") return catalog_.OperatingSystems();
  ThrowIllegalArgument("Unknown lookup '" + std::string(lookup) + "'; lookup=lookups lists them");
}

int64_t GridService::ResolveDatacenter(std::string_view parameter, std::string_view value) {
  return ResolveOption(catalog_.Lookups()->datacenters, parameter, value).id;
}

ServerView GridService::View(Connection& c, const Server& server, ImagesRead* images) {
  return View(c, {server, store::ips::Get(c, server.account_id, server.ip_id)}, images);
}

ServerView GridService::View(Connection& c, store::servers::WithIp row, ImagesRead* images) {
  ServerView view;
  view.server = std::move(row.server);
  const Server& server = view.server;
  std::shared_ptr<const Image> image;
  if (images != nullptr) {
    if (auto it = images->find(server.image_id); it != images->end()) image = it->second;
  }
  if (!image) {
    if (auto read = store::images::GetAny(c, server.image_id)) {
      image = std::make_shared<const Image>(std::move(*read));
      if (images != nullptr) images->emplace(server.image_id, image);
    }
  }
  if (!image || !row.ip) {
    throw ApiError(ErrorClass::kUnexpected,
                   "server " + std::to_string(server.id) + " references a missing image or IP");
  }
  view.image = std::move(image);
  view.ip = std::move(*row.ip);
  if (options_.scheduler != nullptr && server.host_id) {
    view.host_unreachable = !options_.scheduler->Reachable(*server.host_id);
  }
  return view;
}

template <typename Row>
std::vector<Row> GridService::Select(Connection& c, const Caller& caller,
                                     const Selector& selector) {
  constexpr bool kWithIp = std::is_same_v<Row, store::servers::WithIp>;
  std::vector<Row> out;
  auto id = ParsePositiveId(selector.value);
  if (selector.kind != Selector::Kind::kName && id) {
    if constexpr (kWithIp) {
      if (auto row = store::servers::GetWithIp(c, caller.account_id, *id)) {
        out.push_back(std::move(*row));
      }
    } else {
      if (auto server = store::servers::Get(c, caller.account_id, *id)) out.push_back(*server);
    }
    if (!out.empty() || selector.kind == Selector::Kind::kId) return out;
  } else if (selector.kind == Selector::Kind::kId) {
    ThrowIllegalArgument("Parameter 'id' must be a positive integer, got '" + selector.value + "'");
  }
  if constexpr (kWithIp) {
    return store::servers::FindByNameWithIp(c, caller.account_id, selector.value);
  } else {
    return store::servers::FindByName(c, caller.account_id, selector.value);
  }
}

Server GridService::SelectOneForChange(Connection& c, const Caller& caller,
                                       const std::vector<Selector>& selectors) {
  if (selectors.empty()) {
    ThrowIllegalArgument("Missing required parameter: id, name or server");
  }
  if (selectors.size() > 1) {
    ThrowIllegalArgument("Give exactly one of id, name or server to select the server");
  }
  auto matches = Select<Server>(c, caller, selectors.front());
  if (matches.empty()) ThrowIllegalArgument(std::string(kNoObjectFound));
  if (matches.size() > 1) {
    ThrowIllegalArgument("More than one server matches " + Describe(selectors.front()) +
                         "; select it by id");
  }
  const Server& server = matches.front();
  if (server.deleting) {
    ThrowIllegalArgument("Server '" + server.name + "' is being deleted");
  }
  if (server.state == server_state::kSaving || server.state == server_state::kOnSaving ||
      server.state == server_state::kOffSaving) {
    ThrowIllegalArgument("Update already pending for server '" + server.name +
                         "': an image is being saved from it");
  }
  if (store::jobs::HasPending(c, job_object_type::kVirtualServer, server.id)) {
    ThrowIllegalArgument("Update already pending for server '" + server.name +
                         "'; wait for its current job to finish");
  }
  return server;
}

Job GridService::NewServerJob(const Caller& caller, const Server& server, const Ip& ip,
                              const Image& image, int64_t command) {
  Job job = NewJob(caller, job_object_type::kVirtualServer, server.id, server.name, command,
                   ip.datacenter_id);
  job.detail["type"] = "virtual_server";
  job.detail["name"] = server.name;
  job.detail["description"] = server.description;
  job.detail["image"] = image.name;
  job.detail["ip"] = ip.address;
  return job;
}

std::vector<ServerView> GridService::ListServers(const Caller& caller, const ServerFilter& filter) {
  if (filter.sandbox.value_or(false)) return {};  // image sandboxes are gone since API 1.8
  return db_.Read([&](Connection& c) {
    std::vector<ServerView> out;
    ImagesRead images;
    for (auto& row : store::servers::ListWithIp(c, caller.account_id)) {
      if (filter.type && row.server.type != *filter.type) continue;
      ServerView view = View(c, std::move(row), &images);
      if (!filter.datacenters.empty() && !Contains(filter.datacenters, view.ip.datacenter_id)) {
        continue;
      }
      out.push_back(std::move(view));
    }
    return out;
  });
}

ListPage<ServerView> GridService::ListServerPage(const Caller& caller, const ServerFilter& filter,
                                                 const WindowFor& window) {
  ListPage<ServerView> page;
  if (filter.sandbox.value_or(false)) {
    window(0);  // still checks the paging parameters
    return page;
  }
  if (!filter.datacenters.empty()) {
    // A server's datacenter is its IP's: filtered after reading, like the whole list.
    auto all = ListServers(caller, filter);
    page.total = static_cast<int64_t>(all.size());
    const ListWindow part = window(page.total);
    for (int64_t i = part.offset; i < part.offset + part.limit && i < page.total; ++i) {
      page.items.push_back(std::move(all[static_cast<size_t>(i)]));
    }
    return page;
  }
  return db_.Read([&](Connection& c) {
    page.total = store::servers::Count(c, caller.account_id, filter.type);
    const ListWindow part = window(page.total);
    if (part.limit > 0) {
      ImagesRead images;
      auto rows =
          store::servers::ListPage(c, caller.account_id, filter.type, part.offset, part.limit);
      page.items.reserve(rows.size());
      for (auto& row : rows) {
        page.items.push_back(View(c, std::move(row), &images));
      }
    }
    return page;
  });
}

std::vector<ServerView> GridService::GetServers(const Caller& caller,
                                                const std::vector<Selector>& selectors) {
  if (selectors.empty()) ThrowIllegalArgument("Missing required parameter: id, name or server");
  return db_.Read([&](Connection& c) {
    return SelectEach<ServerView>(
        selectors,
        [&](const Selector& selector) {
          return Select<store::servers::WithIp>(c, caller, selector);
        },
        [&](const store::servers::WithIp& row) { return View(c, row); });
  });
}

ServerView GridService::AddServer(const Caller& caller, const ServerAddRequest& request) {
  const std::string& name = Required(request.name, "name");
  const std::string& image_ref = Required(request.image, "image");
  const std::string& ram_ref = Required(request.ram, "server.ram");
  const std::string& ip_ref = Required(request.ip, "ip");
  const std::string description = request.description.value_or("");
  CheckLength(name, "name", options_.max_name_length);
  CheckText(name, "name");
  CheckLength(description, "description", options_.max_description_length);
  CheckText(description, "description");
  const Option& ram = ResolveOption(*FixedLookup("server.ram"), "server.ram", ram_ref);
  std::optional<int64_t> type;
  if (request.type)
    type = ResolveOption(*FixedLookup("server.type"), "server.type", *request.type).id;

  // Read before the write transaction: the catalog reads the database itself.
  const std::vector<Option> datacenters =
      options_.scheduler != nullptr ? catalog_.Datacenters() : std::vector<Option>{};
  const int64_t ram_mib = static_cast<int64_t>(RamMib(ram.id));
  TentativeBooking booking(options_.scheduler);
  ServerView view = db_.Write([&](Connection& c) {
    booking.Undo();  // a transaction run again books again
    Image image;
    auto image_id = ParsePositiveId(image_ref);
    std::optional<Image> by_id;
    if (image_id) by_id = store::images::GetVisible(c, caller.account_id, *image_id);
    if (by_id) {
      image = *by_id;
    } else {
      auto by_name = store::images::FindVisibleByName(c, caller.account_id, image_ref);
      if (by_name.empty()) ThrowIllegalArgument("No image matches '" + image_ref + "'");
      if (by_name.size() > 1) {
        ThrowIllegalArgument("More than one image is named '" + image_ref + "'; use its id");
      }
      image = by_name.front();
    }
    if (image.state != image_state::kAvailable || !image.is_active) {
      ThrowIllegalArgument("Image '" + image.name + "' is not available for new servers");
    }

    auto ip = store::ips::FindByAddress(c, caller.account_id, ip_ref);
    if (!ip) {
      ThrowIllegalArgument("Parameter 'ip': IP " + ip_ref +
                           " is not one of this account's addresses");
    }
    if (!ip->is_public)
      ThrowIllegalArgument("Parameter 'ip': IP " + ip_ref + " is not a public address");
    if (ip->state != ip_state::kUnassigned) {
      ThrowIllegalArgument("Parameter 'ip': IP " + ip_ref + " is already assigned");
    }

    // Placement last among the checks, so a refused request books nothing; the booking is
    // given back unless this transaction commits.
    std::optional<int64_t> host_id;
    if (options_.scheduler != nullptr) {
      host_id = options_.scheduler->Reserve(ip->datacenter_id, ram_mib);
      if (!host_id) {
        const Option* dc = FindOption(datacenters, std::to_string(ip->datacenter_id));
        ThrowIllegalArgument("No host in datacenter '" +
                             (dc != nullptr ? dc->name : std::to_string(ip->datacenter_id)) +
                             "' has room for a server with " + ram.name + " of RAM (" +
                             std::to_string(ram_mib) + " MB)");
      }
      booking.Server(*host_id, ram_mib);
    }

    const int64_t now = clock_.NowMs();
    Server server;
    server.host_id = host_id;
    server.account_id = caller.account_id;
    server.name = name;
    server.description = description;
    server.image_id = image.id;
    server.ram = ram.id;
    server.type = type.value_or(image.type);
    server.state = server_state::kStarting;
    server.ip_id = ip->id;
    server.created_ms = server.updated_ms = now;
    server.id = store::servers::Insert(c, server);
    server.mac = MacForServer(server.id);
    store::servers::Update(c, server);
    // Concurrent adds serialize on the write lock, and Assign only takes an Unassigned IP, so
    // one address can never go to two servers.
    if (!store::ips::Assign(c, ip->id, server.id)) {
      ThrowIllegalArgument("Parameter 'ip': IP " + ip_ref + " is already assigned");
    }
    ip->state = ip_state::kAssigned;
    ip->server_id = server.id;

    Password password;
    password.account_id = caller.account_id;
    password.server_id = server.id;
    password.application_type = "os";
    password.username = "root";
    password.password = RandomPassword(options_.password_length);
    store::passwords::Insert(c, password, box_, now);

    Job job = NewServerJob(caller, server, *ip, image, job_command::kCreateVirtualServer);
    store::jobs::Insert(c, job, now);
    return ServerView{server, std::make_shared<const Image>(image), *ip, false};
  });
  booking.Keep();
  on_job_queued_();
  return view;
}

ServerView GridService::EditServer(const Caller& caller, const ServerEditRequest& request) {
  if (!request.ram && !request.description && !request.type) {
    ThrowIllegalArgument("Nothing to edit: give server.ram, description or server.type");
  }
  std::optional<int64_t> ram;
  if (request.ram) ram = ResolveOption(*FixedLookup("server.ram"), "server.ram", *request.ram).id;
  std::optional<int64_t> type;
  if (request.type)
    type = ResolveOption(*FixedLookup("server.type"), "server.type", *request.type).id;
  if (request.description) {
    CheckLength(*request.description, "description", options_.max_description_length);
    CheckText(*request.description, "description");
  }
  TentativeBooking booking(options_.scheduler);
  ServerView view = db_.Write([&](Connection& c) {
    booking.Undo();  // a transaction run again books again
    Server server = SelectOneForChange(c, caller, request.selectors);
    const int64_t now = clock_.NowMs();
    if (request.description) server.description = *request.description;
    if (type) server.type = *type;
    const bool ram_changed = ram && *ram != server.ram;
    // More RAM must fit on the server's host, under its overcommit ratio.
    if (ram_changed && options_.scheduler != nullptr && server.host_id) {
      const int64_t delta =
          static_cast<int64_t>(RamMib(*ram)) - static_cast<int64_t>(RamMib(server.ram));
      if (delta > 0 && !options_.scheduler->ReserveOn(*server.host_id, delta)) {
        ThrowIllegalArgument("The host of server '" + server.name + "' has no room for " +
                             OptionById(*FixedLookup("server.ram"), *ram).name +
                             " of RAM; delete or shrink other servers first");
      }
      if (delta < 0) options_.scheduler->Release(*server.host_id, -delta, false);
      booking.Ram(*server.host_id, delta);
    }
    if (ram) server.ram = *ram;
    // A domain materialised during the update (a volatile host's) runs only if it ran before.
    const int64_t previous_state = server.state;
    // A RAM change needs the hypervisor (and a restart of a running guest); the state says so
    // until the job is done. Description and type are bookkeeping the job mirrors into the
    // domain's metadata.
    if (ram_changed) server.state = server_state::kUpdating;
    server.updated_ms = now;
    store::servers::Update(c, server);
    ServerView updated = View(c, server);
    Job job =
        NewServerJob(caller, server, updated.ip, *updated.image, job_command::kUpdateVirtualServer);
    job.payload["ram_changed"] = ram_changed;
    job.payload["previous_state"] = previous_state;
    store::jobs::Insert(c, job, now);
    return updated;
  });
  booking.Keep();
  on_job_queued_();
  return view;
}

ServerView GridService::PowerServer(const Caller& caller, const std::vector<Selector>& selectors,
                                    const std::optional<std::string>& power) {
  const std::string& action = Required(power, "power");
  std::string lower;
  for (char ch : action)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  int64_t command = 0;
  if (lower == "start" || lower == "on") {
    command = job_command::kStartVirtualServer;
  } else if (lower == "stop" || lower == "off") {
    command = job_command::kStopVirtualServer;
  } else if (lower == "restart" || lower == "cycle" || lower == "reboot") {
    command = job_command::kRestartVirtualServer;
  } else {
    ThrowIllegalArgument("Invalid value '" + action +
                         "' for power; expected start, stop or restart");
  }
  ServerView view = db_.Write([&](Connection& c) {
    Server server = SelectOneForChange(c, caller, selectors);
    const int64_t now = clock_.NowMs();
    if (command == job_command::kStartVirtualServer) {
      // Starting a running server is accepted and changes nothing (jclouds starts every new
      // server once its add job succeeded).
      if (server.state != server_state::kOn) server.state = server_state::kStarting;
    } else if (command == job_command::kStopVirtualServer) {
      if (server.state != server_state::kOff) server.state = server_state::kStopping;
    } else {
      server.state = server_state::kRestarting;
    }
    server.updated_ms = now;
    store::servers::Update(c, server);
    ServerView updated = View(c, server);
    Job job = NewServerJob(caller, server, updated.ip, *updated.image, command);
    store::jobs::Insert(c, job, now);
    return updated;
  });
  on_job_queued_();
  return view;
}

ServerView GridService::DeleteServer(const Caller& caller, const std::vector<Selector>& selectors) {
  ServerView view = db_.Write([&](Connection& c) {
    Server server = SelectOneForChange(c, caller, selectors);
    ServerView before = View(c, server);  // the answer shows the server as it was
    server.deleting = true;
    server.updated_ms = clock_.NowMs();
    store::servers::Update(c, server);
    Job job =
        NewServerJob(caller, server, before.ip, *before.image, job_command::kDeleteVirtualServer);
    store::jobs::Insert(c, job, server.updated_ms);
    return before;
  });
  on_job_queued_();
  return view;
}

std::vector<Ip> GridService::ListIps(const Caller& caller, const IpFilter& filter) {
  store::ips::Filter query;
  query.state = filter.state;
  if (filter.type) query.is_public = *filter.type == ip_type::kPublic;
  query.datacenters = filter.datacenters;
  return db_.Read([&](Connection& c) { return store::ips::List(c, caller.account_id, query); });
}

std::vector<Ip> GridService::GetIps(const Caller& caller, const std::vector<std::string>& ids,
                                    const std::vector<std::string>& addresses) {
  if (ids.empty() && addresses.empty())
    ThrowIllegalArgument("Missing required parameter: id or ip");
  if (!ids.empty() && !addresses.empty()) {
    ThrowIllegalArgument("Give either id or ip, not both");
  }
  auto found = db_.Read([&](Connection& c) {
    std::vector<Ip> out;
    for (const auto& text : ids) {
      auto id = ParsePositiveId(text);
      if (!id)
        ThrowIllegalArgument("Parameter 'id' must be a positive integer, got '" + text + "'");
      if (auto ip = store::ips::Get(c, caller.account_id, *id)) out.push_back(*ip);
    }
    for (const auto& address : addresses) {
      in_addr parsed{};
      if (inet_pton(AF_INET, address.c_str(), &parsed) != 1) {
        ThrowIllegalArgument("Parameter 'ip' must be an IPv4 address, got '" + address + "'");
      }
      if (auto ip = store::ips::FindByAddress(c, caller.account_id, address)) out.push_back(*ip);
    }
    return out;
  });
  if (found.empty()) ThrowIllegalArgument(std::string(kNoObjectFound));
  return found;
}

std::vector<Image> GridService::ListImages(const Caller& caller, const ImageFilter& filter) {
  return db_.Read([&](Connection& c) {
    std::vector<Image> out;
    for (auto& image : store::images::ListVisible(c, caller.account_id)) {
      if (filter.is_public && image.is_public != *filter.is_public) continue;
      if (filter.type && image.type != *filter.type) continue;
      if (filter.state && image.state != *filter.state) continue;
      // Images are stored once and usable in every datacenter, so a datacenter filter only
      // has to name a real datacenter (checked by the caller).
      out.push_back(std::move(image));
    }
    return out;
  });
}

std::vector<Image> GridService::SelectImages(Connection& c, const Caller& caller,
                                             const Selector& selector) {
  auto id = ParsePositiveId(selector.value);
  if (selector.kind == Selector::Kind::kId && !id) {
    ThrowIllegalArgument("Parameter 'id' must be a positive integer, got '" + selector.value + "'");
  }
  if (selector.kind != Selector::Kind::kName && id) {
    if (auto image = store::images::GetVisible(c, caller.account_id, *id)) return {*image};
    if (selector.kind == Selector::Kind::kId) return {};
  }
  return store::images::FindVisibleByName(c, caller.account_id, selector.value);
}

std::vector<Image> GridService::GetImages(const Caller& caller,
                                          const std::vector<Selector>& selectors) {
  if (selectors.empty()) ThrowIllegalArgument("Missing required parameter: id, name or image");
  return db_.Read([&](Connection& c) {
    return SelectEach<Image>(
        selectors, [&](const Selector& selector) { return SelectImages(c, caller, selector); },
        [](const Image& image) { return image; });
  });
}

Image GridService::SelectOwnImage(Connection& c, const Caller& caller,
                                  const std::vector<Selector>& selectors) {
  if (selectors.empty()) ThrowIllegalArgument("Missing required parameter: id, name or image");
  if (selectors.size() > 1) {
    ThrowIllegalArgument("Give exactly one of id, name or image to select the image");
  }
  auto matches = SelectImages(c, caller, selectors.front());
  if (matches.empty()) ThrowIllegalArgument(std::string(kNoObjectFound));
  if (matches.size() > 1) {
    ThrowIllegalArgument("More than one image matches " + Describe(selectors.front()) +
                         "; select it by id");
  }
  const Image& image = matches.front();
  if (!image.owner_account_id) {
    ThrowIllegalArgument("Image '" + image.name +
                         "' is a public base image; only the operator can change it");
  }
  if (*image.owner_account_id != caller.account_id) {
    ThrowIllegalArgument("Image '" + image.name +
                         "' belongs to another account; only its owner can change it");
  }
  if (image.state == image_state::kSaving) {
    ThrowIllegalArgument("Update already pending for image '" + image.name +
                         "': it is still being saved");
  }
  return image;
}

Image GridService::SaveImage(const Caller& caller, const ImageSaveRequest& request) {
  const std::string& friendly_name = Required(request.friendly_name, "friendlyName");
  const std::string& server_ref = Required(request.server, "server");
  const std::string description = request.description.value_or("");
  CheckLength(friendly_name, "friendlyName", options_.max_image_name_length);
  CheckText(friendly_name, "friendlyName");
  CheckLength(description, "description", options_.max_description_length);
  CheckText(description, "description");

  // GoGrid names saved images GSI-<uuid>; the volume carries the same uuid.
  std::string uuid = RandomHex(16);
  uuid[12] = '4';  // a random (version 4, RFC 4122) uuid
  uuid[16] = "89ab"[std::stoi(uuid.substr(16, 1), nullptr, 16) & 3];
  for (size_t at : {8, 13, 18, 23}) uuid.insert(at, "-");
  const std::string name = "GSI-" + uuid;

  Image saved = db_.Write([&](Connection& c) {
    Server server =
        SelectOneForChange(c, caller, {Selector{Selector::Kind::kIdOrName, server_ref}});
    if (server.state != server_state::kOn && server.state != server_state::kOff) {
      ThrowIllegalArgument("Server '" + server.name + "' is " +
                           OptionById(*FixedLookup("server.state"), server.state).name +
                           "; an image can be saved when it is On or Off");
    }
    ServerView view = View(c, server);
    const int64_t now = clock_.NowMs();
    Image image;
    image.owner_account_id = caller.account_id;
    image.owner_name = caller.account_name;
    image.name = name;
    image.friendly_name = friendly_name;
    image.description = description;
    image.os_id = view.image->os_id;
    image.architecture = view.image->architecture;
    image.type = view.image->type;
    image.state = image_state::kSaving;
    image.price = view.image->price;
    image.location = std::to_string(caller.account_id) + "/" + name + ".img";
    image.is_active = true;
    image.is_public = false;
    image.storage_pool = view.image->storage_pool;
    image.volume = "gridd-image-" + uuid + ".qcow2";
    image.created_ms = image.updated_ms = now;
    image.parent_image_id = view.image->id;
    image.id = store::images::InsertPrivate(c, image);

    // A running server is shut down for the copy and started again (see the job), so it is
    // Saving rather than On/Saving; a server that is off stays off.
    const int64_t previous_state = server.state;
    server.state =
        server.state == server_state::kOn ? server_state::kSaving : server_state::kOffSaving;
    server.updated_ms = now;
    store::servers::Update(c, server);

    Job job = NewJob(caller, job_object_type::kServerImage, image.id, image.name,
                     job_command::kSaveServerImage, view.ip.datacenter_id);
    job.detail["type"] = "server_image";
    job.detail["name"] = image.name;
    job.detail["friendlyName"] = image.friendly_name;
    job.detail["description"] = image.description;
    job.detail["server"] = server.name;
    job.payload["server_id"] = server.id;
    job.payload["previous_state"] = previous_state;
    store::jobs::Insert(c, job, now);
    return image;
  });
  on_job_queued_();
  return saved;
}

Image GridService::EditImage(const Caller& caller, const ImageEditRequest& request) {
  if (!request.friendly_name && !request.description && !request.is_public) {
    ThrowIllegalArgument("Nothing to edit: give friendlyName, description or isPublic");
  }
  if (request.friendly_name) {
    if (request.friendly_name->empty()) {
      ThrowIllegalArgument("Parameter 'friendlyName' must not be empty");
    }
    CheckLength(*request.friendly_name, "friendlyName", options_.max_image_name_length);
    CheckText(*request.friendly_name, "friendlyName");
  }
  if (request.description) {
    CheckLength(*request.description, "description", options_.max_description_length);
    CheckText(*request.description, "description");
  }
  return db_.Write([&](Connection& c) {
    Image image = SelectOwnImage(c, caller, request.selectors);
    if (image.state == image_state::kTrash) {
      ThrowIllegalArgument("Image '" + image.name + "' is in the Trash; restore it first");
    }
    if (request.friendly_name) image.friendly_name = *request.friendly_name;
    if (request.description) image.description = *request.description;
    if (request.is_public) image.is_public = *request.is_public;
    image.updated_ms = clock_.NowMs();
    store::images::Update(c, image);
    return image;
  });
}

Image GridService::DeleteImage(const Caller& caller, const std::vector<Selector>& selectors) {
  return db_.Write([&](Connection& c) {
    Image image = SelectOwnImage(c, caller, selectors);
    if (image.state == image_state::kTrash) {
      ThrowIllegalArgument("Image '" + image.name + "' is already in the Trash");
    }
    // The volume stays: servers built from the image keep running on it, and restore needs it.
    image.state = image_state::kTrash;
    image.is_active = false;
    image.updated_ms = clock_.NowMs();
    store::images::Update(c, image);
    return image;
  });
}

Image GridService::RestoreImage(const Caller& caller, const std::vector<Selector>& selectors) {
  return db_.Write([&](Connection& c) {
    Image image = SelectOwnImage(c, caller, selectors);
    if (image.state != image_state::kTrash) {
      ThrowIllegalArgument("Image '" + image.name + "' is not in the Trash");
    }
    // Its retention has passed and the purge of its volume is under way.
    if (store::jobs::HasPending(c, domain::job_object_type::kServerImage, image.id)) {
      ThrowIllegalArgument("Update already pending for image '" + image.name +
                           "': its volume is being purged from the Trash");
    }
    image.state = image_state::kAvailable;
    image.is_active = true;
    image.updated_ms = clock_.NowMs();
    store::images::Update(c, image);
    return image;
  });
}

namespace {

store::jobs::Query JobQuery(const Caller& caller, const JobFilter& filter, int64_t now_ms) {
  store::jobs::Query query;
  query.account_id = caller.account_id;
  query.created_from_ms = filter.start_ms.value_or(now_ms - 28LL * 24 * 3600 * 1000);
  query.created_to_ms = filter.end_ms.value_or(INT64_MAX);
  query.object_types = filter.object_types;
  query.commands = filter.commands;
  query.states = filter.states;
  query.datacenters = filter.datacenters;
  query.owner = filter.owner;
  query.object = filter.object;
  return query;
}

}  // namespace

std::vector<Job> GridService::ListJobs(const Caller& caller, const JobFilter& filter) {
  const auto query = JobQuery(caller, filter, clock_.NowMs());
  return db_.Read([&](Connection& c) {
    std::vector<Job> out;
    for (int64_t id : store::jobs::FindIds(c, query)) {
      if (auto job = store::jobs::GetAny(c, id)) out.push_back(std::move(*job));
    }
    return out;
  });
}

ListPage<Job> GridService::ListJobPage(const Caller& caller, const JobFilter& filter,
                                       const WindowFor& window) {
  const auto query = JobQuery(caller, filter, clock_.NowMs());
  return db_.Read([&](Connection& c) {
    const auto ids = store::jobs::FindIds(c, query);
    ListPage<Job> page;
    page.total = static_cast<int64_t>(ids.size());
    const ListWindow part = window(page.total);
    for (int64_t i = part.offset; i < part.offset + part.limit && i < page.total; ++i) {
      if (auto job = store::jobs::GetAny(c, ids[static_cast<size_t>(i)])) {
        page.items.push_back(std::move(*job));
      }
    }
    return page;
  });
}

std::vector<Job> GridService::GetJobs(const Caller& caller, const std::vector<std::string>& ids) {
  if (ids.empty()) ThrowIllegalArgument("Missing required parameter: id or job");
  auto found = db_.Read([&](Connection& c) {
    std::vector<Job> out;
    for (const auto& text : ids) {
      auto id = ParsePositiveId(text);
      if (!id)
        ThrowIllegalArgument("Parameter 'id' must be a positive integer, got '" + text + "'");
      if (auto job = store::jobs::Get(c, caller.account_id, *id)) out.push_back(std::move(*job));
    }
    return out;
  });
  if (found.empty()) ThrowIllegalArgument(std::string(kNoObjectFound));
  return found;
}

std::vector<PasswordView> GridService::ListPasswords(const Caller& caller,
                                                     const std::vector<int64_t>& datacenters) {
  return db_.Read([&](Connection& c) {
    std::vector<PasswordView> out;
    for (auto& password : store::passwords::List(c, caller.account_id, box_)) {
      PasswordView view{password, std::nullopt};
      if (password.server_id) {
        if (auto server = store::servers::Get(c, caller.account_id, *password.server_id)) {
          view.server = View(c, *server);
        }
      }
      if (!datacenters.empty() &&
          (!view.server || !Contains(datacenters, view.server->ip.datacenter_id))) {
        continue;
      }
      out.push_back(std::move(view));
    }
    return out;
  });
}

std::vector<PasswordView> GridService::GetPasswords(const Caller& caller,
                                                    const std::vector<std::string>& ids) {
  if (ids.empty()) ThrowIllegalArgument("Missing required parameter: id or password");
  auto found = db_.Read([&](Connection& c) {
    std::vector<PasswordView> out;
    for (const auto& text : ids) {
      auto id = ParsePositiveId(text);
      if (!id)
        ThrowIllegalArgument("Parameter 'id' must be a positive integer, got '" + text + "'");
      auto password = store::passwords::Get(c, caller.account_id, *id, box_);
      if (!password) continue;
      PasswordView view{*password, std::nullopt};
      if (password->server_id) {
        if (auto server = store::servers::Get(c, caller.account_id, *password->server_id)) {
          view.server = View(c, *server);
        }
      }
      out.push_back(std::move(view));
    }
    return out;
  });
  if (found.empty()) ThrowIllegalArgument(std::string(kNoObjectFound));
  return found;
}

// ---------------------------------------------------------------------------------- datetime
namespace {

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  // Howard Hinnant's days_from_civil: proleptic Gregorian calendar, no time zone database.
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct CivilDate {
  int64_t year;
  unsigned month;
  unsigned day;
};

CivilDate CivilFromDays(int64_t z) {
  // Howard Hinnant's civil_from_days, the inverse of DaysFromCivil.
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return CivilDate{static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

bool ValidDate(int y, int m, int d) {
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  if (d > kDays[m - 1]) return false;
  if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return false;
  return true;
}

}  // namespace

int64_t ParseDateTime(std::string_view parameter, std::string_view text, int64_t now_ms) {
  const std::string value(text);
  auto fail = [&]() -> int64_t {
    ThrowIllegalArgument("Invalid date '" + value + "' for " + std::string(parameter) +
                         "; use YYYY-MM-DD [hh:mm:ss[.s] [+hh:mm]], MM/DD/YYYY, MM/DD/YY, "
                         "milliseconds since the epoch, or now");
  };
  if (value == "now") return now_ms;
  if (!value.empty() && std::all_of(value.begin(), value.end(), ::isdigit) && value.size() > 8) {
    int64_t ms = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (ec != std::errc()) return fail();
    return ms;
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, consumed = 0;
  double s = 0;
  int64_t offset_minutes = 0;
  if (std::sscanf(value.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) == 3) {
    std::string rest = value.substr(static_cast<size_t>(consumed));
    if (!rest.empty()) {
      int more = 0;
      if (std::sscanf(rest.c_str(), " %2d:%2d:%lf%n", &h, &mi, &s, &more) != 3) return fail();
      rest = rest.substr(static_cast<size_t>(more));
      while (!rest.empty() && rest.front() == ' ') rest.erase(rest.begin());
      if (!rest.empty() && rest != "Z" && rest != "UTC") {
        int oh = 0, om = 0;
        char sign = 0;
        if (std::sscanf(rest.c_str(), "%c%2d:%2d", &sign, &oh, &om) == 3 ||
            std::sscanf(rest.c_str(), "%c%2d%2d", &sign, &oh, &om) == 3) {
          if (sign != '+' && sign != '-') return fail();
          offset_minutes = (sign == '-' ? -1 : 1) * (int64_t{oh} * 60 + om);
        } else {
          return fail();
        }
      }
      if (h > 23 || mi > 59 || s < 0 || s >= 61) return fail();
    }
  } else if (std::sscanf(value.c_str(), "%2d/%2d/%4d%n", &mo, &d, &y, &consumed) == 3 &&
             static_cast<size_t>(consumed) == value.size()) {
    const size_t year_digits = value.size() - value.rfind('/') - 1;
    if (year_digits == 2) {
      y += 2000;
    } else if (year_digits != 4) {
      return fail();
    }
  } else {
    return fail();
  }
  if (!ValidDate(y, mo, d)) return fail();
  const int64_t seconds =
      DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
      int64_t{h} * 3600 + int64_t{mi} * 60 - offset_minutes * 60;
  return seconds * 1000 + std::llround(s * 1000);
}

std::pair<int64_t, int64_t> BillingPeriod(int64_t now_ms, int start_day) {
  constexpr int64_t kDayMs = 86'400'000;
  const int64_t today = (now_ms >= 0 ? now_ms : now_ms - kDayMs + 1) / kDayMs;
  CivilDate date = CivilFromDays(today);
  int64_t year = date.year;
  int month = static_cast<int>(date.month);
  if (date.day < static_cast<unsigned>(start_day)) {
    if (--month == 0) {
      month = 12;
      --year;
    }
  }
  const int64_t start =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(start_day));
  if (++month == 13) {
    month = 1;
    ++year;
  }
  const int64_t end =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(start_day));
  return {start * kDayMs, end * kDayMs};
}

BillingSummary GridService::Billing(const Caller& caller) {
  constexpr double kHourMs = 3'600'000.0;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  const BillingOptions& prices = options_.billing;
  const int64_t now = clock_.NowMs();
  // Plain variables, not a structured binding: the lambda below uses them, and clang 14 (the
  // fuzz build's compiler) cannot capture structured bindings yet.
  const auto period = BillingPeriod(now, prices.period_start_day);
  const int64_t start = period.first;
  const int64_t end = period.second;
  BillingSummary out;
  out.start_ms = start;
  out.end_ms = end;

  double gb_hours = 0;
  double gb_in_use = 0;
  store::usage::Transfer transfer;
  db_.Read([&](Connection& c) {
    for (const auto& interval : store::usage::ServerIntervals(c, caller.account_id, start, end)) {
      const double gb = static_cast<double>(RamMib(interval.ram)) / 1024.0;
      const bool billed = interval.powered_on || prices.bill_powered_off_servers;
      if (!billed) continue;
      const int64_t from = std::max(interval.start_ms, start);
      const int64_t to = std::min(interval.end_ms.value_or(now), std::min(now, end));
      if (to > from) gb_hours += gb * static_cast<double>(to - from) / kHourMs;
      if (!interval.end_ms && interval.start_ms <= now) gb_in_use += gb;
    }
    transfer = store::usage::TransferBetween(c, caller.account_id, start, std::min(now + 1, end));
  });

  // Whole units are billed: a partial GB-hour or GB is not charged (yet).
  auto whole = [](double value) { return static_cast<int64_t>(std::floor(value + 1e-9)); };
  auto overage = [](int64_t used, int64_t allotment) {
    return std::max<int64_t>(0, used - allotment);
  };
  auto money = [](double value) { return std::round(value * 100.0) / 100.0; };

  out.memory_allotment = prices.memory_allotment_gb_hours;
  out.memory_in_use = gb_in_use;
  out.memory_accrued = whole(gb_hours);
  out.memory_overage = overage(out.memory_accrued, out.memory_allotment);
  out.memory_overage_charge =
      money(static_cast<double>(out.memory_overage) * prices.memory_gb_hour_price);

  const double gb_out = static_cast<double>(transfer.bytes_out) / kGiB;
  out.transfer_allotment = prices.transfer_allotment_gb;
  out.transfer_accrued = whole(gb_out);
  out.transfer_overage = overage(out.transfer_accrued, out.transfer_allotment);
  out.transfer_overage_charge =
      money(static_cast<double>(out.transfer_overage) * prices.transfer_gb_price);

  const double remaining_hours = static_cast<double>(std::max<int64_t>(0, end - now)) / kHourMs;
  out.memory_projected_usage = whole(gb_hours + gb_in_use * remaining_hours);
  out.memory_projected_overage_charge =
      money(static_cast<double>(overage(out.memory_projected_usage, out.memory_allotment)) *
            prices.memory_gb_hour_price);
  out.memory_projected_total_charge =
      money(prices.memory_allotment_price + out.memory_projected_overage_charge);

  const double elapsed = static_cast<double>(std::max<int64_t>(1, now - start));
  out.transfer_projected_usage = whole(gb_out * static_cast<double>(end - start) / elapsed);
  out.transfer_projected_overage_charge =
      money(static_cast<double>(overage(out.transfer_projected_usage, out.transfer_allotment)) *
            prices.transfer_gb_price);
  out.transfer_projected_total_charge = out.transfer_projected_overage_charge;
  return out;
}

}  // namespace gridd::domain
