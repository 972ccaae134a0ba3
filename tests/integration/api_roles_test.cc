// The role matrix of spec §2.1 through the real daemon: every routed method called with a key
// of each role succeeds exactly when the role may call it, and is otherwise refused with 401
// Unauthorized without changing anything.
#include <gtest/gtest.h>

#include <set>

#include "integration/api_world.h"

namespace gridd::testing {
namespace {

// Spec §2.1, by method path.
const std::map<std::string, std::set<std::string>>& SpecRoles() {
  static const std::set<std::string> all = {"Super User", "System User", "Billing User",
                                            "Read Only User"};
  static const std::set<std::string> writers = {"Super User", "System User"};
  static const std::map<std::string, std::set<std::string>> table = {
      {"grid/server/list", all},
      {"grid/server/get", all},
      {"grid/server/add", writers},
      {"grid/server/delete", writers},
      {"grid/server/power", writers},
      {"grid/server/edit", writers},
      {"grid/ip/list", all},
      {"grid/ip/get", all},
      {"grid/image/list", all},
      {"grid/image/get", all},
      {"grid/image/save", writers},
      {"grid/image/edit", writers},
      {"grid/image/delete", writers},
      {"grid/image/restore", writers},
      {"grid/loadbalancer/list", all},
      {"grid/loadbalancer/get", all},
      {"grid/loadbalancer/add", writers},
      {"grid/loadbalancer/delete", writers},
      {"grid/loadbalancer/edit", writers},
      {"grid/job/list", writers},
      {"grid/job/get", writers},
      {"support/password/list", writers},
      {"support/password/get", writers},
      {"common/lookup/list", all},
      {"myaccount/billing/get", {"Super User", "Billing User"}},
  };
  return table;
}

class ApiRolesTest : public ApiWorldTest<ApiRolesTest> {};

TEST_F(ApiRolesTest, EveryMethodAnswersEachRoleAsTheMatrixSays) {
  ApiWorld& world = *world_;
  for (const auto& method : EveryMethod()) {
    auto allowed = SpecRoles().find(method.method);
    ASSERT_NE(allowed, SpecRoles().end()) << method.method << " is not in spec §2.1";
    for (const auto& role : RoleNames()) {
      SCOPED_TRACE(method.method + " as " + role);
      const Params params = method.params(world);
      const std::string before = world.Snapshot();
      auto reply = world.As(role).Call(method.method, params, "POST");
      ASSERT_FALSE(reply.body.empty());
      auto body = reply.json();
      EXPECT_EQ(body["method"], "/" + method.method);
      if (allowed->second.count(role)) {
        EXPECT_EQ(reply.status, 200u) << reply.body;
        EXPECT_EQ(body["status"], "success") << reply.body;
        ASSERT_FALSE(body["list"].empty()) << reply.body;
        EXPECT_EQ(body["list"][0]["object"], method.object) << reply.body;
      } else {
        EXPECT_EQ(reply.status, 401u) << reply.body;
        EXPECT_EQ(body["status"], "failure");
        EXPECT_EQ(body["list"][0]["errorcode"], "Unauthorized") << reply.body;
        EXPECT_EQ(SnapshotChange(before, world.Snapshot()), "")
            << "a refused call changed the account";
      }
    }
  }
}

TEST_F(ApiRolesTest, TheCatalogueHasEveryMethodOfTheSpec) {
  std::set<std::string> catalogue;
  for (const auto& method : EveryMethod()) catalogue.insert(method.method);
  for (const auto& [method, roles] : SpecRoles()) EXPECT_TRUE(catalogue.count(method)) << method;
  EXPECT_EQ(catalogue.size(), 25u);
}

TEST_F(ApiRolesTest, TheRoleIsCheckedBeforeTheParameters) {
  // A read-only key asking to delete a server that does not exist learns nothing about it.
  auto reply = world_->As("Read Only User").Call("grid/server/delete", {{"id", "abc"}}, "POST");
  EXPECT_EQ(reply.status, 401u) << reply.body;
  // A bad signature is 403 whatever the role.
  auto forged = world_->As("Billing User").Call("grid/job/list", {{"sig", "0"}});
  EXPECT_EQ(forged.status, 403u) << forged.body;
}

}  // namespace
}  // namespace gridd::testing
