#include "gridd/domain/grid_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "grid_fixture.h"

namespace gridd::domain {
namespace {

using testing::Addresses;
using testing::GridFixture;

std::vector<int64_t> JobIds(const std::vector<Job>& jobs) {
  std::vector<int64_t> out;
  for (const auto& job : jobs) out.push_back(job.id);
  return out;
}

std::string Utf8Repeat(const std::string& character, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += character;
  return out;
}

using GridServiceTest = GridFixture;

// ---------------------------------------------------------------------------------- server.add
TEST_F(GridServiceTest, AddServerReservesTheIpAndQueuesACreateJob) {
  ServerAddRequest request = AddRequest("web1", "192.0.2.3");
  request.description = "front end";
  const ServerView added = grid_.AddServer(alice_, request);

  // GoGrid's add answers without the id (asynchronous add).
  EXPECT_FALSE(added.include_id);
  EXPECT_EQ(added.server.name, "web1");
  EXPECT_EQ(added.server.description, "front end");
  EXPECT_EQ(added.server.state, server_state::kStarting);
  EXPECT_EQ(added.server.ram, 1);
  EXPECT_EQ(added.server.type, 1);  // the image's type
  EXPECT_EQ(added.image->name, "debian-12-amd64");
  EXPECT_EQ(added.ip.address, "192.0.2.3");
  EXPECT_EQ(added.ip.state, ip_state::kAssigned);
  EXPECT_EQ(queued_callbacks_, 1);

  // The server is listed, with its id and MAC.
  const auto listed = grid_.ListServers(alice_, {});
  ASSERT_EQ(listed.size(), 1u);
  const Server& server = listed[0].server;
  EXPECT_GT(server.id, 0);
  EXPECT_EQ(server.id, added.server.id);
  EXPECT_TRUE(listed[0].include_id);
  EXPECT_EQ(server.mac, MacForServer(server.id));
  EXPECT_EQ(server.created_ms, kStartMs);
  EXPECT_EQ(listed[0].ip.datacenter_id, 1);

  // The address is Assigned to the server.
  IpFilter assigned;
  assigned.state = ip_state::kAssigned;
  const auto ips = grid_.ListIps(alice_, assigned);
  ASSERT_EQ(ips.size(), 1u);
  EXPECT_EQ(ips[0].address, "192.0.2.3");
  EXPECT_EQ(ips[0].server_id, server.id);

  // A root password exists for it.
  const auto passwords = grid_.ListPasswords(alice_, {});
  ASSERT_EQ(passwords.size(), 1u);
  EXPECT_EQ(passwords[0].password.username, "root");
  EXPECT_EQ(passwords[0].password.application_type, "os");
  EXPECT_EQ(passwords[0].password.password.size(), 12u);
  ASSERT_TRUE(passwords[0].server.has_value());
  EXPECT_EQ(passwords[0].server->server.id, server.id);

  // Exactly one CreateVirtualServer job, queued, describing the new server.
  const auto jobs = grid_.ListJobs(alice_, {});
  ASSERT_EQ(jobs.size(), 1u);
  const Job& job = jobs[0];
  EXPECT_EQ(job.command, job_command::kCreateVirtualServer);
  EXPECT_EQ(job.object_type, job_object_type::kVirtualServer);
  EXPECT_EQ(job.object_id, server.id);
  EXPECT_EQ(job.object_name, "web1");
  EXPECT_EQ(job.state, job_state::kQueued);
  EXPECT_EQ(job.owner, alice_.JobOwner());
  EXPECT_EQ(job.owner, alice_.api_key + "-" + std::to_string(alice_.account_id) + "@api");
  EXPECT_EQ(job.datacenter_id, 1);
  EXPECT_EQ(job.detail["type"], "virtual_server");
  EXPECT_EQ(job.detail["name"], "web1");
  EXPECT_EQ(job.detail["description"], "front end");
  EXPECT_EQ(job.detail["image"], "debian-12-amd64");
  EXPECT_EQ(job.detail["ip"], "192.0.2.3");
  ASSERT_EQ(job.history.size(), 2u);
  EXPECT_EQ(job.history[0].state, job_state::kCreated);
  EXPECT_EQ(job.history[1].state, job_state::kQueued);
}

TEST_F(GridServiceTest, AddServerResolvesImagesAndOptionsByIdOrName) {
  const auto images = grid_.ListImages(alice_, {});
  ASSERT_EQ(images.size(), 2u);
  const int64_t centos_id = images[1].id;
  ASSERT_EQ(images[1].name, "centos-7-x86_64");

  ServerAddRequest by_id = AddRequest("db1", "192.0.2.2");
  by_id.image = std::to_string(centos_id);
  by_id.ram = "2";
  const ServerView db1 = grid_.AddServer(alice_, by_id);
  EXPECT_EQ(db1.image->id, centos_id);
  EXPECT_EQ(db1.server.ram, 2);
  EXPECT_EQ(db1.server.type, 2);  // the CentOS image is a Database Server image

  ServerAddRequest by_friendly = AddRequest("web2", "192.0.2.4");
  by_friendly.image = "Debian 12 (64-bit)";
  by_friendly.ram = "4gb";
  by_friendly.type = "database server";
  const ServerView web2 = grid_.AddServer(alice_, by_friendly);
  EXPECT_EQ(web2.image->name, "debian-12-amd64");
  EXPECT_EQ(web2.server.ram, 4);
  EXPECT_EQ(web2.server.type, 2);
}

TEST_F(GridServiceTest, AddServerRequiresEveryParameter) {
  struct Case {
    std::optional<std::string> ServerAddRequest::*field;
    const char* parameter;
  };
  for (const Case& c :
       {Case{&ServerAddRequest::name, "name"}, Case{&ServerAddRequest::image, "image"},
        Case{&ServerAddRequest::ram, "server.ram"}, Case{&ServerAddRequest::ip, "ip"}}) {
    for (const std::optional<std::string>& missing :
         {std::optional<std::string>(), std::optional<std::string>("")}) {
      ServerAddRequest request = AddRequest("web1", "192.0.2.2");
      request.*c.field = missing;
      EXPECT_EQ(Rejected([&] { grid_.AddServer(alice_, request); }),
                std::string("Missing required parameter: ") + c.parameter);
    }
  }
}

TEST_F(GridServiceTest, AddServerLimitsTheNameToTwentyCharacters) {
  EXPECT_EQ(Rejected([&] { Add(alice_, std::string(21, 'a'), "192.0.2.2"); }),
            "Parameter 'name' must be at most 20 characters (got 21)");
  // GoGrid counts characters, not bytes: 20 two-byte characters fit.
  const std::string accented = Utf8Repeat("\xC3\xA9", 20);
  EXPECT_EQ(Add(alice_, accented, "192.0.2.2").server.name, accented);
  EXPECT_EQ(Add(alice_, std::string(20, 'b'), "192.0.2.3").server.name, std::string(20, 'b'));
  EXPECT_EQ(Rejected([&] { Add(alice_, Utf8Repeat("\xE2\x82\xAC", 21), "192.0.2.4"); }),
            "Parameter 'name' must be at most 20 characters (got 21)");
}

TEST_F(GridServiceTest, AddServerLimitsTheDescriptionTo500Characters) {
  ServerAddRequest request = AddRequest("web1", "192.0.2.2");
  request.description = std::string(501, 'd');
  EXPECT_EQ(Rejected([&] { grid_.AddServer(alice_, request); }),
            "Parameter 'description' must be at most 500 characters (got 501)");
  request.description = std::string(500, 'd');
  EXPECT_EQ(grid_.AddServer(alice_, request).server.description.size(), 500u);
}

TEST_F(GridServiceTest, AddServerRejectsControlCharacters) {
  EXPECT_EQ(Rejected([&] { Add(alice_, std::string("web\x01", 4), "192.0.2.2"); }),
            "Parameter 'name' contains control characters");
  ServerAddRequest request = AddRequest("web1", "192.0.2.2");
  request.description = std::string("line\0two", 8);
  EXPECT_EQ(Rejected([&] { grid_.AddServer(alice_, request); }),
            "Parameter 'description' contains control characters");
}

TEST_F(GridServiceTest, AddServerRejectsUnknownImagesAndOptions) {
  ServerAddRequest request = AddRequest("web1", "192.0.2.2");
  request.image = "windows-2008";
  EXPECT_EQ(Rejected([&] { grid_.AddServer(alice_, request); }), "No image matches 'windows-2008'");
  request.image = "999";
  EXPECT_EQ(Rejected([&] { grid_.AddServer(alice_, request); }), "No image matches '999'");

  request = AddRequest("web1", "192.0.2.2");
  request.ram = "3GB";
  EXPECT_EQ(Rejected([&] { grid_.AddServer(alice_, request); }),
            "Invalid value '3GB' for server.ram; expected one of: 512MB (1), 1GB (2), 2GB (3), "
            "4GB (4), 8GB (5), 16GB (8), 24GB (9)");
  request.ram = "6";
  EXPECT_NE(Rejected([&] { grid_.AddServer(alice_, request); }).find("for server.ram"),
            std::string::npos);

  request = AddRequest("web1", "192.0.2.2");
  request.type = "Mail Server";
  const std::string type_error = Rejected([&] { grid_.AddServer(alice_, request); });
  EXPECT_NE(type_error.find("server.type"), std::string::npos) << type_error;
  EXPECT_NE(type_error.find("Web Server (1), Database Server (2)"), std::string::npos)
      << type_error;
}

TEST_F(GridServiceTest, AnotherAccountsIpLooksExactlyLikeAnUnknownOne) {
  const std::string bobs = Rejected([&] { Add(alice_, "web1", "192.0.2.6"); });
  const std::string unknown = Rejected([&] { Add(alice_, "web1", "192.0.2.200"); });
  const std::string unowned = Rejected([&] { Add(alice_, "web1", "192.0.2.14"); });
  EXPECT_EQ(bobs, "Parameter 'ip': IP 192.0.2.6 is not one of this account's addresses");
  EXPECT_EQ(unknown, "Parameter 'ip': IP 192.0.2.200 is not one of this account's addresses");
  EXPECT_EQ(unowned, "Parameter 'ip': IP 192.0.2.14 is not one of this account's addresses");
  // Bob's address is still free for him.
  EXPECT_EQ(Add(bob_, "web1", "192.0.2.6").ip.address, "192.0.2.6");
}

TEST_F(GridServiceTest, AddServerNeedsAPublicAddress) {
  EXPECT_EQ(Rejected([&] { Add(alice_, "web1", "198.51.100.2"); }),
            "Parameter 'ip': IP 198.51.100.2 is not a public address");
}

TEST_F(GridServiceTest, AnAssignedIpCannotBeUsedTwice) {
  Add(alice_, "web1", "192.0.2.2");
  EXPECT_EQ(Rejected([&] { Add(alice_, "web2", "192.0.2.2"); }),
            "Parameter 'ip': IP 192.0.2.2 is already assigned");
  FinishPendingJobs();
  EXPECT_EQ(Rejected([&] { Add(alice_, "web2", "192.0.2.2"); }),
            "Parameter 'ip': IP 192.0.2.2 is already assigned");
}

TEST_F(GridServiceTest, ServersMayShareANameButChangesByThatNameAreRefused) {
  Add(alice_, "dup", "192.0.2.2");
  Add(alice_, "dup", "192.0.2.3");
  FinishPendingJobs();
  EXPECT_EQ(Rejected([&] { grid_.DeleteServer(alice_, {ByName("dup")}); }),
            "More than one server matches name 'dup'; select it by id");
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ByEither("dup")}, "stop"); }),
            "More than one server matches 'dup'; select it by id");
  EXPECT_EQ(grid_.GetServers(alice_, {ByName("dup")}).size(), 2u);

  // By id the delete goes through; the answer is the server as it was.
  const auto listed = grid_.ListServers(alice_, {});
  ASSERT_EQ(listed.size(), 2u);
  const int64_t id = listed[1].server.id;
  SetServerState(id, server_state::kOn);
  const ServerView deleted = grid_.DeleteServer(alice_, {ById(id)});
  EXPECT_EQ(deleted.server.id, id);
  EXPECT_EQ(deleted.server.state, server_state::kOn);
  EXPECT_FALSE(deleted.server.deleting);
  EXPECT_EQ(deleted.ip.address, "192.0.2.3");
  const auto jobs = grid_.ListJobs(alice_, {});
  EXPECT_EQ(jobs[0].command, job_command::kDeleteVirtualServer);
  EXPECT_EQ(jobs[0].object_id, id);
  EXPECT_TRUE(GetServer(alice_, id).deleting);
  EXPECT_FALSE(GetServer(alice_, listed[0].server.id).deleting);

  // Once the delete job finished, the server is still being deleted for other changes.
  FinishPendingJobs();
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ById(id)}, "start"); }),
            "Server 'dup' is being deleted");
}

TEST_F(GridServiceTest, ChangesWaitForTheServersPendingJob) {
  Add(alice_, "web1", "192.0.2.2");
  const auto id = grid_.ListServers(alice_, {})[0].server.id;
  const std::string pending =
      "Update already pending for server 'web1'; wait for its current job "
      "to finish";
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ById(id)}, "stop"); }), pending);
  ServerEditRequest edit;
  edit.selectors = {ById(id)};
  edit.ram = "1GB";
  EXPECT_EQ(Rejected([&] { grid_.EditServer(alice_, edit); }), pending);
  EXPECT_EQ(Rejected([&] { grid_.DeleteServer(alice_, {ByName("web1")}); }), pending);

  FinishPendingJobs();
  SetServerState(id, server_state::kOn);
  grid_.PowerServer(alice_, {ById(id)}, "stop");
  // The stop job is pending now: the second change is refused.
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ById(id)}, "start"); }), pending);
  FinishPendingJobs();
  EXPECT_NO_THROW(grid_.PowerServer(alice_, {ById(id)}, "start"));
}

// ------------------------------------------------------------------------------------ selectors
TEST_F(GridServiceTest, ServersAreSelectedByIdNameOrEither) {
  Add(alice_, "web1", "192.0.2.2");
  Add(alice_, "web2", "192.0.2.3");
  const auto listed = grid_.ListServers(alice_, {});
  ASSERT_EQ(listed.size(), 2u);
  const int64_t web1 = listed[0].server.id;
  const int64_t web2 = listed[1].server.id;

  auto ids = [](const std::vector<ServerView>& views) {
    std::vector<int64_t> out;
    for (const auto& view : views) out.push_back(view.server.id);
    return out;
  };
  EXPECT_EQ(ids(grid_.GetServers(alice_, {ById(web2)})), std::vector<int64_t>{web2});
  EXPECT_EQ(ids(grid_.GetServers(alice_, {ByName("web1")})), std::vector<int64_t>{web1});
  EXPECT_EQ(ids(grid_.GetServers(alice_, {ByEither("web2")})), std::vector<int64_t>{web2});
  EXPECT_EQ(ids(grid_.GetServers(alice_, {ByEither(std::to_string(web1))})),
            std::vector<int64_t>{web1});
  // Several selectors: every match once, in order.
  EXPECT_EQ(ids(grid_.GetServers(alice_, {ById(web2), ByName("web1"), ByEither("web2")})),
            (std::vector<int64_t>{web2, web1}));
  // Only some selectors match: the matches.
  EXPECT_EQ(ids(grid_.GetServers(alice_, {ByName("web9"), ById(web1)})),
            std::vector<int64_t>{web1});
  // "name" never means an id.
  EXPECT_EQ(IllegalArgument([&] { grid_.GetServers(alice_, {ByName(std::to_string(web1))}); }),
            kNoObjectFound);
  EXPECT_EQ(IllegalArgument([&] {
              grid_.GetServers(alice_, {Selector{Selector::Kind::kId, "web1"}});
            }),
            "Parameter 'id' must be a positive integer, got 'web1'");
  EXPECT_EQ(IllegalArgument([&] { grid_.GetServers(alice_, {}); }),
            "Missing required parameter: id, name or server");
}

TEST_F(GridServiceTest, AServerNamedLikeANumberIsFoundByTheServerSelector) {
  Add(alice_, "4242", "192.0.2.2");
  const auto found = grid_.GetServers(alice_, {ByEither("4242")});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].server.name, "4242");
  EXPECT_EQ(IllegalArgument([&] { grid_.GetServers(alice_, {ById(4242)}); }), kNoObjectFound);
}

TEST_F(GridServiceTest, GetServersOfNothingSaysNoObjectFound) {
  EXPECT_EQ(IllegalArgument([&] { grid_.GetServers(alice_, {ByName("ghost")}); }),
            "No object found that matches your input criteria.");
  EXPECT_EQ(IllegalArgument([&] { grid_.GetServers(alice_, {ById(1)}); }),
            "No object found that matches your input criteria.");
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ByName("ghost")}, "start"); }),
            "No object found that matches your input criteria.");
}

TEST_F(GridServiceTest, AChangeTakesExactlyOneSelector) {
  Add(alice_, "web1", "192.0.2.2");
  FinishPendingJobs();
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {}, "start"); }),
            "Missing required parameter: id, name or server");
  EXPECT_EQ(Rejected([&] {
              grid_.PowerServer(alice_, {ByName("web1"), ByEither("web1")}, "start");
            }),
            "Give exactly one of id, name or server to select the server");
}

// ---------------------------------------------------------------------------- account isolation
TEST_F(GridServiceTest, AnotherAccountCannotSeeOrChangeTheServer) {
  Add(alice_, "web1", "192.0.2.2");
  const int64_t id = grid_.ListServers(alice_, {})[0].server.id;
  const int64_t password_id = grid_.ListPasswords(alice_, {})[0].password.id;
  const int64_t job_id = grid_.ListJobs(alice_, {})[0].id;
  const int64_t ip_id = grid_.ListIps(alice_, {})[0].id;
  FinishPendingJobs();
  SetServerState(id, server_state::kOn);

  EXPECT_TRUE(grid_.ListServers(bob_, {}).empty());
  EXPECT_TRUE(grid_.ListJobs(bob_, {}).empty());
  EXPECT_TRUE(grid_.ListPasswords(bob_, {}).empty());
  for (const auto& ip : grid_.ListIps(bob_, {})) EXPECT_NE(ip.address, "192.0.2.2");

  EXPECT_EQ(IllegalArgument([&] { grid_.GetServers(bob_, {ById(id)}); }), kNoObjectFound);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetServers(bob_, {ByEither("web1")}); }), kNoObjectFound);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetIps(bob_, {}, {"192.0.2.2"}); }), kNoObjectFound);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetIps(bob_, {std::to_string(ip_id)}, {}); }),
            kNoObjectFound);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetPasswords(bob_, {std::to_string(password_id)}); }),
            kNoObjectFound);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetJobs(bob_, {std::to_string(job_id)}); }),
            kNoObjectFound);

  EXPECT_EQ(Rejected([&] { grid_.PowerServer(bob_, {ById(id)}, "stop"); }), kNoObjectFound);
  EXPECT_EQ(Rejected([&] { grid_.DeleteServer(bob_, {ByEither("web1")}); }), kNoObjectFound);
  ServerEditRequest edit;
  edit.selectors = {ById(id)};
  edit.ram = "8GB";
  EXPECT_EQ(Rejected([&] { grid_.EditServer(bob_, edit); }), kNoObjectFound);

  // Alice still sees all of it.
  EXPECT_EQ(grid_.GetIps(alice_, {}, {"192.0.2.2"}).size(), 1u);
  EXPECT_EQ(grid_.GetPasswords(alice_, {std::to_string(password_id)}).size(), 1u);
  EXPECT_EQ(grid_.GetJobs(alice_, {std::to_string(job_id)}).size(), 1u);
  EXPECT_EQ(GetServer(alice_, id).state, server_state::kOn);
}

// ------------------------------------------------------------------------------------ job.list
TEST_F(GridServiceTest, ListJobsIsNewestFirstAndFilters) {
  Add(alice_, "web1", "192.0.2.2");  // job 1, t0
  FinishPendingJobs();
  const int64_t web1 = grid_.ListServers(alice_, {})[0].server.id;
  SetServerState(web1, server_state::kOn);
  clock_.AdvanceMs(3'600'000);
  const int64_t t1 = clock_.NowMs();
  grid_.PowerServer(alice_, {ById(web1)}, "stop");  // job 2, t1
  clock_.AdvanceMs(3'600'000);
  Add(alice_, "web2", "192.0.2.3");  // job 3, t2
  const int64_t web2 = grid_.GetServers(alice_, {ByName("web2")})[0].server.id;
  Add(bob_, "bobs", "192.0.2.6");

  const auto all = grid_.ListJobs(alice_, {});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const Job& a, const Job& b) { return a.id > b.id; }));
  EXPECT_EQ(all[0].object_name, "web2");
  EXPECT_EQ(all[1].command, job_command::kStopVirtualServer);
  EXPECT_EQ(all[2].command, job_command::kCreateVirtualServer);
  const int64_t job1 = all[2].id, job2 = all[1].id, job3 = all[0].id;

  JobFilter queued;
  queued.states = {job_state::kQueued};
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, queued)), (std::vector<int64_t>{job3, job2}));
  JobFilter done;
  done.states = {job_state::kSucceeded, job_state::kFailed};
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, done)), std::vector<int64_t>{job1});

  JobFilter servers;
  servers.object_types = {job_object_type::kVirtualServer};
  EXPECT_EQ(grid_.ListJobs(alice_, servers).size(), 3u);
  JobFilter balancers;
  balancers.object_types = {job_object_type::kLoadBalancer};
  EXPECT_TRUE(grid_.ListJobs(alice_, balancers).empty());

  JobFilter by_name;
  by_name.object = "web1";
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, by_name)), (std::vector<int64_t>{job2, job1}));
  JobFilter by_id;
  by_id.object = std::to_string(web2);
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, by_id)), std::vector<int64_t>{job3});

  JobFilter owner;
  owner.owner = alice_.JobOwner();
  EXPECT_EQ(grid_.ListJobs(alice_, owner).size(), 3u);
  owner.owner = bob_.JobOwner();
  EXPECT_TRUE(grid_.ListJobs(alice_, owner).empty());

  JobFilter window;
  window.start_ms = t1;
  window.end_ms = t1;
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, window)), std::vector<int64_t>{job2});
  JobFilter since;
  since.start_ms = t1 + 1;
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, since)), std::vector<int64_t>{job3});
  JobFilter until;
  until.end_ms = t1 - 1;
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, until)), std::vector<int64_t>{job1});

  JobFilter datacenter;
  datacenter.datacenters = {1};
  EXPECT_EQ(grid_.ListJobs(alice_, datacenter).size(), 3u);
  datacenter.datacenters = {2};
  EXPECT_TRUE(grid_.ListJobs(alice_, datacenter).empty());

  // Combined filters all apply.
  JobFilter combined;
  combined.object = "web1";
  combined.states = {job_state::kQueued};
  EXPECT_EQ(JobIds(grid_.ListJobs(alice_, combined)), std::vector<int64_t>{job2});
}

TEST_F(GridServiceTest, ListJobsDefaultsToTheLastFourWeeks) {
  Add(alice_, "web1", "192.0.2.2");
  clock_.AdvanceMs(27LL * 24 * 3600 * 1000);
  EXPECT_EQ(grid_.ListJobs(alice_, {}).size(), 1u);
  clock_.AdvanceMs(2LL * 24 * 3600 * 1000);
  EXPECT_TRUE(grid_.ListJobs(alice_, {}).empty());
  JobFilter everything;
  everything.start_ms = 0;
  EXPECT_EQ(grid_.ListJobs(alice_, everything).size(), 1u);
}

TEST_F(GridServiceTest, GetJobsByIdWithHistory) {
  Add(alice_, "web1", "192.0.2.2");
  const int64_t id = grid_.ListJobs(alice_, {})[0].id;
  FinishPendingJobs();
  const auto jobs = grid_.GetJobs(alice_, {std::to_string(id), "99999"});
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].state, job_state::kSucceeded);
  EXPECT_EQ(jobs[0].history.back().state, job_state::kSucceeded);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetJobs(alice_, {"abc"}); }),
            "Parameter 'id' must be a positive integer, got 'abc'");
  EXPECT_EQ(IllegalArgument([&] { grid_.GetJobs(alice_, {"99999"}); }), kNoObjectFound);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetJobs(alice_, {}); }),
            "Missing required parameter: id or job");
}

// ------------------------------------------------------------------------------------- ip.list
TEST_F(GridServiceTest, ListIpsFiltersByStateTypeAndDatacenter) {
  EXPECT_EQ(
      Addresses(grid_.ListIps(alice_, {})),
      (std::vector<std::string>{"192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "198.51.100.2",
                                "198.51.100.3", "198.51.100.4", "198.51.100.5"}));
  Add(alice_, "web1", "192.0.2.4");

  IpFilter assigned;
  assigned.state = ip_state::kAssigned;
  EXPECT_EQ(Addresses(grid_.ListIps(alice_, assigned)), std::vector<std::string>{"192.0.2.4"});
  IpFilter unassigned;
  unassigned.state = ip_state::kUnassigned;
  EXPECT_EQ(grid_.ListIps(alice_, unassigned).size(), 7u);

  IpFilter public_only;
  public_only.type = ip_type::kPublic;
  EXPECT_EQ(Addresses(grid_.ListIps(alice_, public_only)),
            (std::vector<std::string>{"192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"}));
  IpFilter private_only;
  private_only.type = ip_type::kPrivate;
  const auto privates = grid_.ListIps(alice_, private_only);
  ASSERT_EQ(privates.size(), 4u);
  for (const auto& ip : privates) {
    EXPECT_FALSE(ip.is_public);
    EXPECT_EQ(ip.subnet, "198.51.100.0/255.255.255.240");
  }

  IpFilter public_free;
  public_free.type = ip_type::kPublic;
  public_free.state = ip_state::kUnassigned;
  EXPECT_EQ(Addresses(grid_.ListIps(alice_, public_free)),
            (std::vector<std::string>{"192.0.2.2", "192.0.2.3", "192.0.2.5"}));

  IpFilter here;
  here.datacenters = {1};
  EXPECT_EQ(grid_.ListIps(alice_, here).size(), 8u);
  IpFilter elsewhere;
  elsewhere.datacenters = {2};
  EXPECT_TRUE(grid_.ListIps(alice_, elsewhere).empty());
}

TEST_F(GridServiceTest, GetIpsByIdOrAddress) {
  const auto all = grid_.ListIps(alice_, {});
  const auto by_id = grid_.GetIps(alice_, {std::to_string(all[1].id)}, {});
  ASSERT_EQ(by_id.size(), 1u);
  EXPECT_EQ(by_id[0].address, "192.0.2.3");
  EXPECT_EQ(Addresses(grid_.GetIps(alice_, {}, {"198.51.100.5", "10.9.9.9"})),
            std::vector<std::string>{"198.51.100.5"});
  EXPECT_EQ(IllegalArgument([&] { grid_.GetIps(alice_, {"1"}, {"192.0.2.2"}); }),
            "Give either id or ip, not both");
  EXPECT_EQ(IllegalArgument([&] { grid_.GetIps(alice_, {}, {}); }),
            "Missing required parameter: id or ip");
  EXPECT_EQ(IllegalArgument([&] { grid_.GetIps(alice_, {"x"}, {}); }),
            "Parameter 'id' must be a positive integer, got 'x'");
}

// -------------------------------------------------------------------------------------- power
TEST_F(GridServiceTest, PowerSetsTheTransientStateAndQueuesTheCommand) {
  Add(alice_, "web1", "192.0.2.2");
  FinishPendingJobs();
  const int64_t id = grid_.ListServers(alice_, {})[0].server.id;
  SetServerState(id, server_state::kOn);

  struct Step {
    const char* power;
    int64_t before;
    int64_t state;
    int64_t command;
  };
  const Step steps[] = {
      {"stop", server_state::kOn, server_state::kStopping, job_command::kStopVirtualServer},
      {"start", server_state::kOff, server_state::kStarting, job_command::kStartVirtualServer},
      {"restart", server_state::kOn, server_state::kRestarting, job_command::kRestartVirtualServer},
      {"OFF", server_state::kOn, server_state::kStopping, job_command::kStopVirtualServer},
      {"on", server_state::kOff, server_state::kStarting, job_command::kStartVirtualServer},
      {"cycle", server_state::kOn, server_state::kRestarting, job_command::kRestartVirtualServer},
  };
  for (const Step& step : steps) {
    SetServerState(id, step.before);
    const int callbacks = queued_callbacks_;
    const ServerView view = grid_.PowerServer(alice_, {ById(id)}, std::string(step.power));
    EXPECT_EQ(view.server.state, step.state) << step.power;
    EXPECT_EQ(GetServer(alice_, id).state, step.state) << step.power;
    const Job newest = grid_.ListJobs(alice_, {})[0];
    EXPECT_EQ(newest.command, step.command) << step.power;
    EXPECT_EQ(newest.state, job_state::kQueued);
    EXPECT_EQ(newest.object_id, id);
    EXPECT_EQ(queued_callbacks_, callbacks + 1);
    FinishPendingJobs();
  }
}

TEST_F(GridServiceTest, StartingARunningServerKeepsItOn) {
  Add(alice_, "web1", "192.0.2.2");
  FinishPendingJobs();
  const int64_t id = grid_.ListServers(alice_, {})[0].server.id;
  SetServerState(id, server_state::kOn);
  EXPECT_EQ(grid_.PowerServer(alice_, {ById(id)}, "start").server.state, server_state::kOn);
  FinishPendingJobs();
  SetServerState(id, server_state::kOff);
  EXPECT_EQ(grid_.PowerServer(alice_, {ById(id)}, "stop").server.state, server_state::kOff);
}

TEST_F(GridServiceTest, PowerRejectsUnknownActions) {
  Add(alice_, "web1", "192.0.2.2");
  FinishPendingJobs();
  const int64_t id = grid_.ListServers(alice_, {})[0].server.id;
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ById(id)}, "bogus"); }),
            "Invalid value 'bogus' for power; expected start, stop or restart");
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ById(id)}, std::nullopt); }),
            "Missing required parameter: power");
  EXPECT_EQ(Rejected([&] { grid_.PowerServer(alice_, {ById(id)}, ""); }),
            "Missing required parameter: power");
}

// --------------------------------------------------------------------------------------- edit
TEST_F(GridServiceTest, EditingTheRamPutsTheServerInUpdating) {
  Add(alice_, "web1", "192.0.2.2");
  FinishPendingJobs();
  const int64_t id = grid_.ListServers(alice_, {})[0].server.id;
  SetServerState(id, server_state::kOn);
  clock_.AdvanceMs(1000);

  ServerEditRequest edit;
  edit.selectors = {ById(id)};
  edit.ram = "2GB";
  const ServerView view = grid_.EditServer(alice_, edit);
  EXPECT_EQ(view.server.state, server_state::kUpdating);
  EXPECT_EQ(view.server.ram, 3);
  const Server stored = GetServer(alice_, id);
  EXPECT_EQ(stored.state, server_state::kUpdating);
  EXPECT_EQ(stored.ram, 3);
  EXPECT_EQ(stored.updated_ms, clock_.NowMs());
  const Job job = grid_.ListJobs(alice_, {})[0];
  EXPECT_EQ(job.command, job_command::kUpdateVirtualServer);
  EXPECT_EQ(job.payload["ram_changed"], true);
  EXPECT_EQ(queued_callbacks_, 2);
}

TEST_F(GridServiceTest, EditingOnlyTheDescriptionKeepsTheState) {
  Add(alice_, "web1", "192.0.2.2");
  FinishPendingJobs();
  const int64_t id = grid_.ListServers(alice_, {})[0].server.id;
  SetServerState(id, server_state::kOn);
  ServerEditRequest edit;
  edit.selectors = {ByName("web1")};
  edit.description = "new words";
  edit.ram = "512MB";  // unchanged
  edit.type = "Database Server";
  const ServerView view = grid_.EditServer(alice_, edit);
  EXPECT_EQ(view.server.state, server_state::kOn);
  const Server stored = GetServer(alice_, id);
  EXPECT_EQ(stored.description, "new words");
  EXPECT_EQ(stored.type, 2);
  EXPECT_EQ(stored.state, server_state::kOn);
  EXPECT_EQ(grid_.ListJobs(alice_, {})[0].payload["ram_changed"], false);
}

TEST_F(GridServiceTest, EditRejectsBadInputWithoutChanges) {
  Add(alice_, "web1", "192.0.2.2");
  FinishPendingJobs();
  const int64_t id = grid_.ListServers(alice_, {})[0].server.id;
  ServerEditRequest edit;
  edit.selectors = {ById(id)};
  EXPECT_EQ(Rejected([&] { grid_.EditServer(alice_, edit); }),
            "Nothing to edit: give server.ram, description or server.type");
  edit.ram = "lots";
  EXPECT_NE(Rejected([&] { grid_.EditServer(alice_, edit); }).find("for server.ram"),
            std::string::npos);
  edit.ram.reset();
  edit.description = std::string(501, 'x');
  EXPECT_EQ(Rejected([&] { grid_.EditServer(alice_, edit); }),
            "Parameter 'description' must be at most 500 characters (got 501)");
}

// ------------------------------------------------------------------------------------- others
TEST_F(GridServiceTest, ListServersFilters) {
  Add(alice_, "web1", "192.0.2.2");
  ServerAddRequest db = AddRequest("db1", "192.0.2.3");
  db.type = "Database Server";
  grid_.AddServer(alice_, db);

  ServerFilter web;
  web.type = 1;
  const auto webs = grid_.ListServers(alice_, web);
  ASSERT_EQ(webs.size(), 1u);
  EXPECT_EQ(webs[0].server.name, "web1");
  ServerFilter here;
  here.datacenters = {1};
  EXPECT_EQ(grid_.ListServers(alice_, here).size(), 2u);
  ServerFilter elsewhere;
  elsewhere.datacenters = {2};
  EXPECT_TRUE(grid_.ListServers(alice_, elsewhere).empty());
  ServerFilter sandbox;
  sandbox.sandbox = true;
  EXPECT_TRUE(grid_.ListServers(alice_, sandbox).empty());
  sandbox.sandbox = false;
  EXPECT_EQ(grid_.ListServers(alice_, sandbox).size(), 2u);
}

// A page's totals (all servers, and of one type) follow adds, refused adds, type changes and
// deletes, and a page holds the account's own servers with their IPs.
TEST_F(GridServiceTest, ServerPageTotalsFollowEveryChange) {
  auto page = [&](const Caller& caller, std::optional<int64_t> type, int64_t offset = 0,
                  int64_t limit = 10) {
    ServerFilter filter;
    filter.type = type;
    return grid_.ListServerPage(caller, filter, [&](int64_t total) {
      return ListWindow{std::min(offset, total), std::min(limit, total - std::min(offset, total))};
    });
  };
  auto totals = [&](const Caller& caller) {
    return std::vector<int64_t>{page(caller, std::nullopt).total, page(caller, 1).total,
                                page(caller, 2).total};
  };
  using Totals = std::vector<int64_t>;
  Add(alice_, "web1", "192.0.2.2");
  Add(alice_, "web2", "192.0.2.3");
  Add(bob_, "bob1", "192.0.2.6");
  EXPECT_EQ(totals(alice_), (Totals{2, 2, 0}));
  EXPECT_EQ(totals(bob_), (Totals{1, 1, 0}));

  // A refused add (the address is taken) counts nothing.
  Rejected([&] { Add(alice_, "web3", "192.0.2.2"); });
  EXPECT_EQ(totals(alice_), (Totals{2, 2, 0}));

  FinishPendingJobs();
  const auto second = page(alice_, std::nullopt, 1, 1);
  ASSERT_EQ(second.items.size(), 1u);
  EXPECT_EQ(second.items[0].server.name, "web2");
  EXPECT_EQ(second.items[0].ip.address, "192.0.2.3");
  EXPECT_EQ(second.items[0].image->name, "debian-12-amd64");
  ServerEditRequest edit;
  edit.selectors = {ByName("web2")};
  edit.type = "Database Server";
  grid_.EditServer(alice_, edit);
  EXPECT_EQ(totals(alice_), (Totals{2, 1, 1}));
  const auto databases = page(alice_, 2);
  ASSERT_EQ(databases.items.size(), 1u);
  EXPECT_EQ(databases.items[0].server.name, "web2");

  // A deleted server counts until its delete job has removed it.
  FinishPendingJobs();
  const int64_t web1 = page(alice_, 1).items.at(0).server.id;
  grid_.DeleteServer(alice_, {ById(web1)});
  EXPECT_EQ(totals(alice_), (Totals{2, 1, 1}));
  db_.Write([&](store::Connection& c) { store::servers::Delete(c, web1, clock_.NowMs()); });
  EXPECT_EQ(totals(alice_), (Totals{1, 0, 1}));
  EXPECT_EQ(totals(bob_), (Totals{1, 1, 0}));
}

TEST_F(GridServiceTest, PasswordsCanBeFilteredByDatacenterAndFetchedById) {
  Add(alice_, "web1", "192.0.2.2");
  const auto list = grid_.ListPasswords(alice_, {});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(grid_.ListPasswords(alice_, {1}).size(), 1u);
  EXPECT_TRUE(grid_.ListPasswords(alice_, {2}).empty());
  const auto got = grid_.GetPasswords(alice_, {std::to_string(list[0].password.id)});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].password.password, list[0].password.password);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetPasswords(alice_, {"0"}); }),
            "Parameter 'id' must be a positive integer, got '0'");
}

TEST_F(GridServiceTest, EveryServerGetsItsOwnPassword) {
  Add(alice_, "web1", "192.0.2.2");
  Add(alice_, "web2", "192.0.2.3");
  const auto list = grid_.ListPasswords(alice_, {});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_NE(list[0].password.password, list[1].password.password);
}

TEST_F(GridServiceTest, LookupsByNameOrCatalogueId) {
  EXPECT_EQ(grid_.Lookup("lookups").size(), 24u);
  EXPECT_EQ(grid_.Lookup("SERVER.RAM").size(), 7u);
  EXPECT_EQ(grid_.Lookup("6").size(), 7u);  // 6 = server.ram in the catalogue
  for (const char* name : {"datacenter", "ip.datacenter", "server.datacenter",
                           "loadbalancer.datacenter", "job.datacenter", "18"}) {
    const auto datacenters = grid_.Lookup(name);
    ASSERT_EQ(datacenters.size(), 1u) << name;
    EXPECT_EQ(datacenters[0].id, 1);
    EXPECT_EQ(datacenters[0].name, "US-West-1");
    EXPECT_EQ(datacenters[0].description, "US West 1 Datacenter");
  }
  const auto os = grid_.Lookup("server.os");
  EXPECT_TRUE(std::any_of(os.begin(), os.end(),
                          [](const Option& o) { return o.name == "Debian 12 (64-bit)"; }));
  EXPECT_EQ(grid_.Lookup("image.os").size(), os.size());
  EXPECT_EQ(IllegalArgument([&] { grid_.Lookup("server.colour"); }),
            "Unknown lookup 'server.colour'; lookup=lookups lists them");
  EXPECT_EQ(IllegalArgument([&] { grid_.Lookup("25"); }),
            "Unknown lookup '25'; lookup=lookups lists them");
}

TEST_F(GridServiceTest, ResolveDatacenterNamesTheParameter) {
  EXPECT_EQ(grid_.ResolveDatacenter("datacenter", "us-west-1"), 1);
  EXPECT_EQ(grid_.ResolveDatacenter("datacenter", "1"), 1);
  EXPECT_EQ(IllegalArgument([&] { grid_.ResolveDatacenter("datacenter", "Mars-1"); }),
            "Invalid value 'Mars-1' for datacenter; expected one of: US-West-1 (1)");
}

TEST_F(GridServiceTest, ImagesByIdOrName) {
  const auto images = grid_.ListImages(alice_, {});
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].owner_name, "GoGrid");
  EXPECT_TRUE(images[0].is_public);
  EXPECT_EQ(grid_.GetImages(alice_, {ByEither("CentOS 7 (64-bit)")})[0].id, images[1].id);
  EXPECT_EQ(grid_.GetImages(alice_, {ById(images[0].id)})[0].name, "debian-12-amd64");
  ImageFilter databases;
  databases.type = 2;
  ASSERT_EQ(grid_.ListImages(alice_, databases).size(), 1u);
  EXPECT_EQ(IllegalArgument([&] { grid_.GetImages(alice_, {ByName("nope")}); }), kNoObjectFound);
}

}  // namespace
}  // namespace gridd::domain
