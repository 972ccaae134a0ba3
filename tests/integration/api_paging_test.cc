// Paging, sorting and filtering as spec §6 and §8 say, through the real daemon: every page of
// every list method, its summary (total, start, numpages, returned) on the first, middle,
// last and out-of-range pages, the natural orders, common.lookup.list sorting, and each
// filter of each list method alone, by option id and name, repeated and combined.
#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "integration/api_world.h"

namespace gridd::testing {
namespace {

class ApiPagingTest : public ApiWorldTest<ApiPagingTest> {
 protected:
  static void SetUpTestSuite() {
    ApiWorldTest::SetUpTestSuite();
    // A database server, a stopped server and a deleted one give the filters something to
    // tell apart; the first load balancer's edit gives the job list an UpdateLoadBalancer.
    const std::string ip = world_->FreeServerIp();
    CallOk(world_->super(), "grid/server/add",
           {{"name", "db-1"},
            {"image", "debian-12-amd64"},
            {"server.ram", "1GB"},
            {"server.type", "Database Server"},
            {"ip", ip}},
           "POST");
    WaitForServerState(world_->super(), ip, "On");
    world_->WaitForJobs();
    CallOk(world_->super(), "grid/server/power",
           {{"id", std::to_string(world_->web_id())}, {"power", "stop"}}, "POST");
    world_->WaitForJobs();
    const int64_t doomed = world_->AddServer("doomed");
    CallOk(world_->super(), "grid/server/delete", {{"id", std::to_string(doomed)}}, "POST");
    world_->WaitForJobs();
    world_->AddBalancer("lb-2");
    world_->WaitForJobs();
  }
  static nlohmann::json List(const std::string& method, Params params = {}) {
    return CallOk(world_->super(), method, std::move(params));
  }
  static std::set<std::string> Field(const nlohmann::json& list, const std::string& pointer) {
    std::set<std::string> out;
    for (const auto& item : list) {
      const auto& value = item.at(nlohmann::json::json_pointer(pointer));
      out.insert(value.is_string() ? value.get<std::string>() : value.dump());
    }
    return out;
  }
};

struct ListMethod {
  std::string method;
  Params params;
};

const std::vector<ListMethod> kLists = {
    {"grid/server/list", {}},
    {"grid/ip/list", {{"ip.type", "Public"}, {"datacenter", "US-West-1"}}},
    {"grid/image/list", {}},
    {"grid/loadbalancer/list", {}},
    {"grid/job/list", {}},
    {"support/password/list", {}},
    {"common/lookup/list", {{"lookup", "lookups"}}},
};

TEST_F(ApiPagingTest, EveryPageOfEveryListHasTheRightSliceAndSummary) {
  for (const auto& list : kLists) {
    SCOPED_TRACE(list.method);
    Params all_params = list.params;
    // grid.job.list pages by 100 unless told otherwise (spec §6); ask for everything.
    if (list.method == "grid/job/list") all_params.emplace_back("num_items", "1000");
    const auto all = List(list.method, all_params);
    const auto& everything = all["list"];
    const int64_t total = static_cast<int64_t>(everything.size());
    ASSERT_GE(total, 2) << "too few objects to page through";
    EXPECT_EQ(all["summary"]["total"], total);
    EXPECT_EQ(all["summary"]["returned"], total);
    EXPECT_EQ(all["summary"]["start"], 0);

    for (int64_t size : {int64_t{1}, int64_t{2}, int64_t{3}, total - 1, total, total + 1}) {
      if (size < 1) continue;
      const int64_t pages = (total + size - 1) / size;
      nlohmann::json joined = nlohmann::json::array();
      for (int64_t page = 0; page <= pages + 1; ++page) {
        SCOPED_TRACE("num_items=" + std::to_string(size) + " page=" + std::to_string(page));
        Params params = list.params;
        params.emplace_back("num_items", std::to_string(size));
        params.emplace_back("page", std::to_string(page));
        const auto body = List(list.method, params);
        const auto& summary = body["summary"];
        const int64_t expected_returned = page < pages ? std::min(size, total - page * size) : 0;
        EXPECT_EQ(summary["total"], total);
        EXPECT_EQ(summary["numpages"], pages);
        EXPECT_EQ(summary["returned"], expected_returned);
        EXPECT_EQ(body["list"].size(), static_cast<size_t>(expected_returned));
        // Past the last page nothing is returned and start points past the end.
        EXPECT_EQ(summary["start"], page < pages ? page * size : total);
        for (const auto& item : body["list"]) joined.push_back(item["id"]);
      }
      // By id: a load balancer's health may change between two calls.
      nlohmann::json ids = nlohmann::json::array();
      for (const auto& item : everything) ids.push_back(item["id"]);
      EXPECT_EQ(joined, ids) << "the pages put together are not the whole list";
    }
  }
}

TEST_F(ApiPagingTest, UnpagedListsSayNumpagesZeroAndJobListsPageByAHundred) {
  for (const char* method : {"grid/server/list", "grid/ip/list", "grid/image/list",
                             "grid/loadbalancer/list", "support/password/list"}) {
    SCOPED_TRACE(method);
    const auto body = List(method);
    EXPECT_EQ(body["summary"]["numpages"], 0);
    EXPECT_EQ(body["summary"]["start"], 0);
    EXPECT_EQ(body["summary"]["returned"], body["summary"]["total"]);
  }
  const auto jobs = List("grid/job/list");
  const int64_t total = jobs["summary"]["total"];
  ASSERT_LT(total, 100);
  EXPECT_EQ(jobs["summary"]["numpages"], 1) << "grid.job.list defaults to num_items=100";
  EXPECT_EQ(jobs["summary"]["returned"], total);
  // page without num_items is ignored.
  const auto servers = List("grid/server/list", {{"page", "3"}});
  EXPECT_EQ(servers["summary"]["returned"], servers["summary"]["total"]);
}

TEST_F(ApiPagingTest, ListsComeInIdOrderAndJobsNewestFirst) {
  for (const char* method : {"grid/server/list", "grid/ip/list", "grid/image/list",
                             "grid/loadbalancer/list", "support/password/list"}) {
    SCOPED_TRACE(method);
    std::vector<int64_t> ids;
    for (const nlohmann::json list = List(method); const auto& item : list["list"]) {
      ids.push_back(item["id"]);
    }
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  }
  std::vector<int64_t> job_ids;
  for (const nlohmann::json list = List("grid/job/list"); const auto& job : list["list"]) {
    job_ids.push_back(job["id"]);
  }
  EXPECT_TRUE(std::is_sorted(job_ids.rbegin(), job_ids.rend())) << "jobs are newest first";
}

TEST_F(ApiPagingTest, LookupListSortsByEachKeyBothWays) {
  const auto unsorted = List("common/lookup/list", {{"lookup", "server.ram"}})["list"];
  for (const std::string key : {"id", "name", "description"}) {
    for (const std::string asc : {"", "asc", "true", "1", "desc", "false", "0"}) {
      SCOPED_TRACE("sort=" + key + " asc=" + asc);
      Params params = {{"lookup", "server.ram"}, {"sort", key}};
      if (!asc.empty()) params.emplace_back("asc", asc);
      const auto list = List("common/lookup/list", params)["list"];
      ASSERT_EQ(list.size(), unsorted.size());
      const bool descending = asc == "desc" || asc == "false" || asc == "0";
      for (size_t i = 1; i < list.size(); ++i) {
        const auto& a = list[i - 1][key];
        const auto& b = list[i][key];
        EXPECT_TRUE(descending ? !(a < b) : !(b < a)) << a << " then " << b;
      }
    }
  }
  // A page of a sorted lookup is a slice of the sorted whole.
  const auto sorted = List("common/lookup/list",
                           {{"lookup", "server.ram"}, {"sort", "name"}, {"asc", "desc"}})["list"];
  const auto page = List("common/lookup/list", {{"lookup", "server.ram"},
                                                {"sort", "name"},
                                                {"asc", "desc"},
                                                {"num_items", "2"},
                                                {"page", "1"}})["list"];
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0], sorted[2]);
  EXPECT_EQ(page[1], sorted[3]);
}

TEST_F(ApiPagingTest, ServerListFilters) {
  const auto all = List("grid/server/list")["list"];
  ASSERT_EQ(all.size(), 3u) << all.dump();
  for (const std::string type : {"Database Server", "database server", "2"}) {
    const auto body = List("grid/server/list", {{"server.type", type}});
    EXPECT_EQ(Field(body["list"], "/name"), std::set<std::string>{"db-1"}) << type;
    EXPECT_EQ(body["summary"]["total"], 1);
  }
  EXPECT_EQ(List("grid/server/list", {{"server.type", "Web Server"}})["list"].size(), 2u);
  EXPECT_EQ(List("grid/server/list", {{"isSandbox", "false"}})["list"].size(), 3u);
  EXPECT_TRUE(List("grid/server/list", {{"isSandbox", "true"}})["list"].empty());
  EXPECT_EQ(
      List("grid/server/list", {{"datacenter", "1"}, {"datacenter", "US-West-1"}})["list"].size(),
      3u);
  // Filters and paging: the summary counts what matched.
  const auto page =
      List("grid/server/list", {{"server.type", "1"}, {"num_items", "1"}, {"page", "1"}});
  EXPECT_EQ(page["summary"]["total"], 2);
  EXPECT_EQ(page["summary"]["numpages"], 2);
  EXPECT_EQ(page["summary"]["start"], 1);
  EXPECT_EQ(page["summary"]["returned"], 1);
}

TEST_F(ApiPagingTest, IpListFilters) {
  const auto all = List("grid/ip/list")["list"];
  size_t assigned = 0, publics = 0;
  for (const auto& ip : all) {
    assigned += ip["state"]["name"] == "Assigned";
    publics += ip["public"].get<bool>();
  }
  ASSERT_GT(assigned, 0u);
  ASSERT_LT(publics, all.size()) << "the account should have private addresses too";
  for (const std::string state : {"Assigned", "assigned", "2"}) {
    const auto list = List("grid/ip/list", {{"ip.state", state}})["list"];
    EXPECT_EQ(list.size(), assigned) << state;
    EXPECT_EQ(Field(list, "/state/name"), std::set<std::string>{"Assigned"});
  }
  EXPECT_EQ(List("grid/ip/list", {{"ip.state", "1"}})["list"].size(), all.size() - assigned);
  for (const std::string type : {"Public", "1"}) {
    const auto list = List("grid/ip/list", {{"ip.type", type}})["list"];
    EXPECT_EQ(list.size(), publics) << type;
    EXPECT_EQ(Field(list, "/public"), std::set<std::string>{"true"});
  }
  const auto both = List("grid/ip/list", {{"ip.type", "Public"}, {"ip.state", "Assigned"}})["list"];
  EXPECT_EQ(Field(both, "/state/name"), std::set<std::string>{"Assigned"});
  EXPECT_EQ(Field(both, "/public"), std::set<std::string>{"true"});
  EXPECT_EQ(List("grid/ip/list", {{"datacenter", "US-West-1"}})["list"].size(), all.size());
}

TEST_F(ApiPagingTest, ImageListFilters) {
  const auto all = List("grid/image/list")["list"];
  ASSERT_FALSE(all.empty());
  const auto publics = List("grid/image/list", {{"isPublic", "true"}})["list"];
  EXPECT_EQ(Field(publics, "/isPublic"), std::set<std::string>{"true"});
  const auto privates = List("grid/image/list", {{"isPublic", "false"}})["list"];
  EXPECT_EQ(publics.size() + privates.size(), all.size());
  for (const char* name : {"type", "image.type"}) {
    const auto web = List("grid/image/list", {{name, "Web Server"}})["list"];
    const auto db = List("grid/image/list", {{name, "Database Server"}})["list"];
    EXPECT_EQ(web.size() + db.size(), all.size()) << name;
    if (!web.empty()) {
      EXPECT_EQ(Field(web, "/type/name"), std::set<std::string>{"Web Server"});
    }
  }
  for (const char* name : {"state", "image.state"}) {
    const auto available = List("grid/image/list", {{name, "Available"}})["list"];
    EXPECT_EQ(Field(available, "/state/name"), std::set<std::string>{"Available"}) << name;
    EXPECT_TRUE(List("grid/image/list", {{name, "Trash"}})["list"].empty()) << name;
  }
  EXPECT_EQ(List("grid/image/list", {{"datacenter", "US-West-1"}})["list"].size(), all.size());
}

TEST_F(ApiPagingTest, JobListFiltersByTypeCommandStateOwnerAndObject) {
  const auto all = List("grid/job/list")["list"];
  auto count = [&](const std::string& pointer, const std::string& value) {
    return static_cast<size_t>(std::count_if(all.begin(), all.end(), [&](const auto& job) {
      return job.at(nlohmann::json::json_pointer(pointer)) == value;
    }));
  };
  const size_t servers = count("/objecttype/name", "VirtualServer");
  const size_t balancers = count("/objecttype/name", "LoadBalancer");
  ASSERT_GT(servers, 0u);
  ASSERT_GT(balancers, 0u);
  for (const std::string type : {"VirtualServer", "virtualserver", "1"}) {
    const auto list = List("grid/job/list", {{"job.objecttype", type}})["list"];
    EXPECT_EQ(list.size(), servers) << type;
    EXPECT_EQ(Field(list, "/objecttype/name"), std::set<std::string>{"VirtualServer"});
  }
  EXPECT_EQ(List("grid/job/list", {{"job.objecttype", "LoadBalancer"}})["list"].size(), balancers);
  EXPECT_EQ(
      List("grid/job/list", {{"job.objecttype", "1"}, {"job.objecttype", "LoadBalancer"}})["list"]
          .size(),
      servers + balancers);

  for (const std::string command : {"CreateVirtualServer", "6"}) {
    const auto list = List("grid/job/list", {{"job.command", command}})["list"];
    EXPECT_EQ(list.size(), count("/command/name", "CreateVirtualServer")) << command;
    EXPECT_EQ(Field(list, "/command/name"), std::set<std::string>{"CreateVirtualServer"});
  }
  const auto two_commands = List("grid/job/list", {{"job.command", "StopVirtualServer"},
                                                   {"job.command", "DeleteVirtualServer"}})["list"];
  EXPECT_EQ(Field(two_commands, "/command/name"),
            (std::set<std::string>{"StopVirtualServer", "DeleteVirtualServer"}));

  EXPECT_EQ(List("grid/job/list", {{"job.state", "Succeeded"}})["list"].size(),
            count("/currentstate/name", "Succeeded"));
  EXPECT_EQ(List("grid/job/list", {{"job.state", "3"}, {"job.state", "Failed"}})["list"].size(),
            count("/currentstate/name", "Succeeded") + count("/currentstate/name", "Failed"));
  EXPECT_TRUE(List("grid/job/list", {{"job.state", "Queued"}})["list"].empty());

  // Several filters together are AND-ed.
  const auto stopped = List("grid/job/list", {{"job.objecttype", "VirtualServer"},
                                              {"job.command", "StopVirtualServer"},
                                              {"job.state", "Succeeded"}})["list"];
  EXPECT_EQ(stopped.size(), 1u) << stopped.dump();
  EXPECT_TRUE(List("grid/job/list", {{"job.objecttype", "LoadBalancer"},
                                     {"job.command", "StopVirtualServer"}})["list"]
                  .empty());

  const std::string owner = all[0]["owner"];
  EXPECT_EQ(List("grid/job/list", {{"owner", owner}})["list"].size(), count("/owner", owner));
  EXPECT_TRUE(List("grid/job/list", {{"owner", "nobody"}})["list"].empty());
  const auto db = List("grid/job/list", {{"object", "db-1"}})["list"];
  EXPECT_EQ(db.size(), 1u) << db.dump();
  EXPECT_EQ(List("grid/job/list", {{"datacenter", "US-West-1"}})["list"].size(), all.size());
}

// Formats a time for the date parameters of grid.job.list.
std::string Format(int64_t ms, const char* pattern) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::strftime(text, sizeof(text), pattern, &tm);
  return text;
}

TEST_F(ApiPagingTest, JobListDateRangeInEveryAcceptedFormat) {
  const auto all = List("grid/job/list")["list"];
  ASSERT_GE(all.size(), 3u);
  const int64_t newest = all.front()["createdon"];
  const int64_t oldest = all.back()["createdon"];
  const int64_t day = 24LL * 3600 * 1000;
  const int64_t hour = 3600LL * 1000;

  struct Range {
    std::string label;
    Params params;
    size_t expected;
  };
  const size_t n = all.size();
  const std::vector<Range> ranges = {
      {"date yesterday..", {{"startdate", Format(oldest - day, "%Y-%m-%d")}}, n},
      {"date tomorrow..", {{"startdate", Format(newest + day, "%Y-%m-%d")}}, 0},
      {"..date yesterday", {{"enddate", Format(oldest - day, "%Y-%m-%d")}}, 0},
      {"..date tomorrow", {{"enddate", Format(newest + day, "%Y-%m-%d")}}, n},
      {"MM/DD/YYYY",
       {{"startdate", Format(oldest - day, "%m/%d/%Y")},
        {"enddate", Format(newest + day, "%m/%d/%Y")}},
       n},
      {"MM/DD/YYYY future", {{"startdate", Format(newest + day, "%m/%d/%Y")}}, 0},
      {"MM/DD/YY",
       {{"startdate", Format(oldest - day, "%m/%d/%y")},
        {"enddate", Format(newest + day, "%m/%d/%y")}},
       n},
      {"MM/DD/YY past", {{"enddate", Format(oldest - day, "%m/%d/%y")}}, 0},
      {"datetime UTC", {{"startdate", Format(oldest - hour, "%Y-%m-%d %H:%M:%S.0 +00:00")}}, n},
      {"datetime future", {{"startdate", Format(newest + hour, "%Y-%m-%d %H:%M:%S.0 +00:00")}}, 0},
      // Two hours before the oldest job as wall-clock time at -05:00 is three hours after it.
      {"datetime with offset",
       {{"enddate", Format(oldest - 2 * hour, "%Y-%m-%d %H:%M:%S.5 -05:00")}},
       n},
      {"datetime Z", {{"enddate", Format(oldest - hour, "%Y-%m-%d %H:%M:%S Z")}}, 0},
      {"milliseconds",
       {{"startdate", std::to_string(oldest)}, {"enddate", std::to_string(newest)}},
       n},
      {"milliseconds after the newest", {{"startdate", std::to_string(newest + 1)}}, 0},
      {"..now", {{"enddate", "now"}}, n},
      {"now..", {{"startdate", "now"}}, 0},
  };
  for (const auto& range : ranges) {
    SCOPED_TRACE(range.label);
    const auto body = List("grid/job/list", range.params);
    EXPECT_EQ(body["list"].size(), range.expected) << body["summary"];
    EXPECT_EQ(body["summary"]["total"], range.expected);
  }
  // Milliseconds split the list exactly: the oldest job alone, then the rest.
  const auto first = List("grid/job/list", {{"enddate", std::to_string(oldest)}})["list"];
  const auto rest = List("grid/job/list", {{"startdate", std::to_string(oldest + 1)}})["list"];
  size_t at_oldest = 0;
  for (const auto& job : all) at_oldest += job["createdon"] == oldest;
  EXPECT_EQ(first.size(), at_oldest);
  EXPECT_EQ(rest.size(), n - at_oldest);
}

}  // namespace
}  // namespace gridd::testing
