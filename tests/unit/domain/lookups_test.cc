#include "gridd/domain/lookups.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "gridd/common/error.h"
#include "gridd/domain/entities.h"

namespace gridd::domain {
namespace {

const std::vector<Option>& Fixed(std::string_view name) {
  const auto* options = FixedLookup(name);
  EXPECT_NE(options, nullptr) << name;
  static const std::vector<Option> kEmpty;
  return options != nullptr ? *options : kEmpty;
}

std::string ResolveError(const std::vector<Option>& options, std::string_view parameter,
                         std::string_view value) {
  try {
    ResolveOption(options, parameter, value);
  } catch (const ApiError& error) {
    EXPECT_EQ(error.error_class(), ErrorClass::kIllegalArgument);
    return error.what();
  }
  ADD_FAILURE() << "accepted '" << value << "' for " << parameter;
  return "";
}

TEST(ResolveOptionTest, FindsByIdOrByNameIgnoringCaseAndSpaces) {
  const auto& ram = Fixed("server.ram");
  EXPECT_EQ(ResolveOption(ram, "server.ram", "2").name, "1GB");
  EXPECT_EQ(ResolveOption(ram, "server.ram", "512mb").id, 1);
  EXPECT_EQ(ResolveOption(ram, "server.ram", "512MB").id, 1);
  EXPECT_EQ(ResolveOption(ram, "server.ram", "16 GB").id, 8);
  const auto& lb = Fixed("loadbalancer.type");
  EXPECT_EQ(ResolveOption(lb, "loadbalancer.type", "round robin").id, 1);
  EXPECT_EQ(ResolveOption(lb, "loadbalancer.type", "ROUNDROBIN").id, 1);
  EXPECT_EQ(ResolveOption(lb, "loadbalancer.type", "Least Connect").id, 2);
  EXPECT_EQ(ResolveOption(Fixed("job.state"), "job.state", "processing").id, 2);
  EXPECT_EQ(ResolveOption(Fixed("server.state"), "server.state", "on/saving").id, 9);
  EXPECT_EQ(FindOption(ram, "3GB"), nullptr);
  EXPECT_EQ(FindOption(ram, "6"), nullptr);  // ids have gaps: 6 and 7 are not RAM sizes
}

TEST(ResolveOptionTest, UnknownValueNamesTheParameterAndTheAcceptedValues) {
  const std::string message = ResolveError(Fixed("server.ram"), "server.ram", "3GB");
  EXPECT_EQ(message,
            "Invalid value '3GB' for server.ram; expected one of: 512MB (1), 1GB (2), 2GB (3), "
            "4GB (4), 8GB (5), 16GB (8), 24GB (9)");
  EXPECT_NE(ResolveError(Fixed("server.ram"), "server.ram", "7").find("'7' for server.ram"),
            std::string::npos);
  const std::string lb = ResolveError(Fixed("loadbalancer.type"), "loadbalancer.type", "random");
  EXPECT_NE(lb.find("loadbalancer.type"), std::string::npos) << lb;
  EXPECT_NE(lb.find("Round Robin (1), Least Connect (2)"), std::string::npos) << lb;
  ResolveError(Fixed("server.ram"), "server.ram", "");
  ResolveError(Fixed("server.ram"), "server.ram", "-1");
}

TEST(LookupsTest, CatalogueHasTheSpecsTwentyFourLookups) {
  const std::vector<std::pair<int64_t, std::string>> expected = {
      {1, "loadbalancer.type"},
      {2, "loadbalancer.persistence"},
      {3, "loadbalancer.state"},
      {4, "loadbalancer.os"},
      {5, "server.type"},
      {6, "server.ram"},
      {7, "server.state"},
      {8, "server.os"},
      {9, "ip.type"},
      {10, "ip.state"},
      {11, "job.state"},
      {12, "job.command"},
      {13, "job.objecttype"},
      {14, "image.state"},
      {15, "image.type"},
      {16, "image.os"},
      {17, "image.architecture"},
      {18, "datacenter"},
      {19, "loadbalancer.datacenter"},
      {20, "server.datacenter"},
      {21, "job.datacenter"},
      {22, "ip.datacenter"},
      {23, "image.minram"},
      {24, "image.gsitype"},
  };
  const auto& catalogue = LookupCatalogue();
  ASSERT_EQ(catalogue.size(), 24u);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(catalogue[i].id, expected[i].first);
    EXPECT_EQ(catalogue[i].name, expected[i].second);
  }
  EXPECT_EQ(catalogue[5].description, "Server Ram");
  EXPECT_EQ(catalogue[17].description, "Datacenters");
  EXPECT_EQ(catalogue[23].description, "GoGrid Server Image Type");
  EXPECT_EQ(FixedLookup("lookups"), &catalogue);
}

TEST(LookupsTest, FixedEnumerationsKeepGoGridsIds) {
  auto ids = [](std::string_view name) {
    std::vector<std::pair<int64_t, std::string>> out;
    for (const auto& option : Fixed(name)) out.emplace_back(option.id, option.name);
    return out;
  };
  using V = std::vector<std::pair<int64_t, std::string>>;
  EXPECT_EQ(
      ids("server.ram"),
      (V{{1, "512MB"}, {2, "1GB"}, {3, "2GB"}, {4, "4GB"}, {5, "8GB"}, {8, "16GB"}, {9, "24GB"}}));
  EXPECT_EQ(ids("image.minram"), ids("server.ram"));
  EXPECT_EQ(ids("ip.state"), (V{{1, "Unassigned"}, {2, "Assigned"}}));
  EXPECT_EQ(ids("ip.type"), (V{{1, "Public"}, {2, "Private"}}));
  EXPECT_EQ(ids("server.type"), (V{{1, "Web Server"}, {2, "Database Server"}}));
  EXPECT_EQ(ids("image.state"),
            (V{{1, "Saving"}, {2, "Available"}, {3, "Deleted"}, {4, "Trash"}, {7, "Migrating"}}));
  EXPECT_EQ(ids("job.state"), (V{{1, "Queued"},
                                 {2, "Processing"},
                                 {3, "Succeeded"},
                                 {4, "Failed"},
                                 {5, "Canceled"},
                                 {6, "Fatal"},
                                 {7, "Created"}}));
  EXPECT_EQ(Fixed("server.state").size(), 10u);
  // GoGrid's twelve, then gridd's own commands (documented in docs/api.md).
  EXPECT_EQ(Fixed("job.command").size(), 15u);
  EXPECT_EQ(Fixed("job.command")[12].name, "ReconcileVirtualServer");
  EXPECT_EQ(Fixed("job.command")[13].name, "EvacuateVirtualServer");
  EXPECT_EQ(Fixed("job.command")[14].name, "MoveVirtualServer");
  EXPECT_EQ(Fixed("job.command")[14].id, 15);
  EXPECT_EQ(Fixed("job.command")[5].name, "CreateVirtualServer");
  EXPECT_EQ(Fixed("job.objecttype")[0].name, "VirtualServer");
  EXPECT_FALSE(Fixed("job.objecttype")[0].description.has_value());
  EXPECT_EQ(FixedLookup("server.os"), nullptr);  // operator-defined, in the database
  EXPECT_EQ(FixedLookup("datacenter"), nullptr);
  EXPECT_EQ(FixedLookup("nonsense"), nullptr);
}

TEST(LookupsTest, RamMibMatchesTheRamOptions) {
  EXPECT_EQ(RamMib(1), 512u);
  EXPECT_EQ(RamMib(2), 1024u);
  EXPECT_EQ(RamMib(3), 2048u);
  EXPECT_EQ(RamMib(4), 4096u);
  EXPECT_EQ(RamMib(5), 8192u);
  EXPECT_EQ(RamMib(8), 16384u);
  EXPECT_EQ(RamMib(9), 24576u);
  for (const auto& option : Fixed("server.ram")) {
    // "512MB" → 512, "16GB" → 16384
    const std::string& name = option.name;
    const uint64_t number = std::stoull(name.substr(0, name.size() - 2));
    EXPECT_EQ(RamMib(option.id), name.ends_with("GB") ? number * 1024 : number) << name;
  }
  for (int64_t bad : {0, 6, 7, 10, -1}) {
    try {
      RamMib(bad);
      ADD_FAILURE() << "RamMib accepted " << bad;
    } catch (const ApiError& error) {
      EXPECT_EQ(error.error_class(), ErrorClass::kUnexpected);
    }
  }
}

TEST(LookupsTest, OptionByIdFindsOrFailsAsUnexpected) {
  EXPECT_EQ(OptionById(Fixed("ip.type"), 2).name, "Private");
  try {
    OptionById(Fixed("ip.type"), 3);
    FAIL() << "OptionById found id 3";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.error_class(), ErrorClass::kUnexpected);
  }
}

// --------------------------------------------------------------------------------------- roles
TEST(RoleTest, ParsesFullNamesShortNamesAndIds) {
  EXPECT_EQ(ParseRole("Super User"), Role::kSuperUser);
  EXPECT_EQ(ParseRole("super"), Role::kSuperUser);
  EXPECT_EQ(ParseRole("1"), Role::kSuperUser);
  EXPECT_EQ(ParseRole("System User"), Role::kSystemUser);
  EXPECT_EQ(ParseRole("SYSTEM"), Role::kSystemUser);
  EXPECT_EQ(ParseRole("billing_user"), Role::kBillingUser);
  EXPECT_EQ(ParseRole("Read Only User"), Role::kReadOnlyUser);
  EXPECT_EQ(ParseRole("read-only"), Role::kReadOnlyUser);
  EXPECT_EQ(ParseRole("readonly"), Role::kReadOnlyUser);
  EXPECT_EQ(ParseRole("4"), Role::kReadOnlyUser);
  EXPECT_EQ(ParseRole("admin"), std::nullopt);
  EXPECT_EQ(ParseRole(""), std::nullopt);
  EXPECT_EQ(ParseRole("5"), std::nullopt);
}

TEST(RoleTest, NamesRoundTrip) {
  for (Role role : {Role::kSuperUser, Role::kSystemUser, Role::kBillingUser, Role::kReadOnlyUser}) {
    EXPECT_EQ(ParseRole(RoleName(role)), role) << RoleName(role);
  }
  EXPECT_STREQ(RoleName(Role::kReadOnlyUser), "Read Only User");
}

}  // namespace
}  // namespace gridd::domain
