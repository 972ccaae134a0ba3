// The table of configuration keys: LoadConfig parses through it, the reference in
// docs/operations.md is printed from it, and the shipped configuration files use only its keys.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gridd/common/config.h"
#include "support/test_paths.h"
#include "unit/common/config_test_util.h"

namespace gridd {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBegin = "<!-- BEGIN CONFIG REFERENCE";
constexpr const char* kEnd = "<!-- END CONFIG REFERENCE -->";

TEST(ConfigReferenceTest, TheOperationsGuideCarriesTheGeneratedReference) {
  std::ifstream in(testing::SourceDir() / "docs" / "operations.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t begin = doc.find(kBegin);
  ASSERT_NE(begin, std::string::npos) << "docs/operations.md has no " << kBegin;
  const size_t body = doc.find("-->\n", begin);
  const size_t end = doc.find(kEnd, begin);
  ASSERT_NE(end, std::string::npos);
  ASSERT_LT(body, end);
  EXPECT_EQ(doc.substr(body + 4, end - body - 4), "\n" + ConfigReferenceMarkdown() + "\n")
      << "docs/operations.md is out of date: run scripts/update-config-reference";
}

TEST(ConfigReferenceTest, EveryKeyIsDescribedOnce) {
  std::set<std::string> seen;
  for (const ConfigKey& key : ConfigKeys()) {
    const std::string id =
        (key.repeated ? "[[" + key.section + "]]." : key.section + ".") + key.name;
    EXPECT_TRUE(seen.insert(id).second) << id << " is in the table twice";
    EXPECT_FALSE(key.type.empty()) << id;
    EXPECT_FALSE(key.default_text.empty()) << id;
    EXPECT_FALSE(key.description.empty()) << id;
    EXPECT_TRUE(key.parse) << id;
    EXPECT_EQ(static_cast<bool>(key.value), !key.repeated) << id;
  }
  const std::string reference = ConfigReferenceMarkdown();
  for (const char* expected :
       {"### `[server]`", "| `listen` | HOST:PORT | `\"127.0.0.1:8080\"` |",
        "| `threads` | integer | `4` | at least 1 |", "### `[[image]]` (repeated)",
        "| `level` | string | `\"info\"` | `\"trace\"`, `\"debug\"`"}) {
    EXPECT_NE(reference.find(expected), std::string::npos) << expected << "\n" << reference;
  }
}

// The documented default of a key is what gridd uses without it: writing the default into
// the file changes nothing.
TEST(ConfigReferenceTest, DocumentedDefaultsAreTheDefaults) {
  const Config defaults = LoadConfig(WriteConfig(""));
  int checked = 0;
  for (const ConfigKey& key : ConfigKeys()) {
    const std::string& given = key.default_text;
    if (key.repeated || key.type == "path" || given == "none" ||
        given.find(' ') != std::string::npos) {
      continue;  // words, not a value
    }
    const Config written =
        LoadConfig(WriteConfig("[" + key.section + "]\n" + key.name + " = " + given + "\n"));
    EXPECT_EQ(key.value(written), key.value(defaults)) << key.path() << " = " << given;
    ++checked;
  }
  EXPECT_GT(checked, 50);
}

TEST(ConfigReferenceTest, TheShippedConfigurationsUseOnlyKnownKeys) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(testing::SourceDir() / "config")) {
    if (entry.path().extension() != ".toml") continue;
    ++files;
    EXPECT_EQ(UnknownConfigKeys(entry.path()), std::vector<std::string>{}) << entry.path();
    EXPECT_NO_THROW(LoadConfig(entry.path())) << entry.path();
  }
  EXPECT_GE(files, 2);
}

TEST(ConfigReferenceTest, UnknownKeysAreNamedWithTheirPlace) {
  const fs::path path = WriteConfig(
      "top = 1\n[server]\nthreads = 2\nlisten_port = 80\n[jobs.deadlines]\nAnything = 5\n"
      "[[image]]\nname = \"a\"\nflavor = \"x\"\n[[image]]\nprice = 1\n[[nothing]]\nx = 1\n");
  EXPECT_EQ(UnknownConfigKeys(path), (std::vector<std::string>{"image[0].flavor", "nothing[0].x",
                                                               "server.listen_port", "top"}));
}

}  // namespace
}  // namespace gridd
