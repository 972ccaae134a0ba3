// Images saved from servers through the real daemon over HTTP, on libvirt's test driver:
// save → Available → a new server from it → edit → Trash → restore, who sees what, and a save
// that fails because the storage pool is full.
#include <gtest/gtest.h>

#include <string>

#include "integration/grid_client_util.h"
#include "support/command.h"
#include "support/daemon_process.h"

namespace gridd::testing {
namespace {

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override { daemon_.Start(); }

  // Adds a server on the first free public IP and waits until it is On; returns its id.
  int64_t AddServer(ApiClient& client, const std::string& name, const std::string& image) {
    const std::string ip = FreePublicIps(client).at(0);
    CallOk(client, "grid/server/add",
           {{"name", name}, {"image", image}, {"server.ram", "1GB"}, {"ip", ip}}, "POST");
    auto server = WaitForServerState(client, ip, "On");
    return server.value("id", int64_t{0});
  }

  // The image as its owner sees it, or nullopt once it is gone.
  std::optional<nlohmann::json> GetImage(ApiClient& client, int64_t id) {
    auto reply = client.Call("grid/image/get", {{"id", std::to_string(id)}});
    if (reply.status != 200u) return std::nullopt;
    return reply.json()["list"][0];
  }

  // Waits until the save job of image `name` has finished; returns the job.
  nlohmann::json WaitForSaveJob(ApiClient& client, const std::string& name) {
    nlohmann::json job;
    EXPECT_TRUE(WaitFor([&] {
      auto jobs =
          CallOk(client, "grid/job/list", {{"job.objecttype", "ServerImage"}, {"object", name}});
      if (jobs["list"].empty()) return false;
      job = jobs["list"][0];
      const std::string state = job["currentstate"]["name"];
      return state == "Succeeded" || state == "Failed";
    })) << "the save job of "
        << name << " never finished";
    return job;
  }

  ApiClient OtherAccount() {
    auto created = RunGridctl(daemon_.data_dir(), "account create other");
    EXPECT_EQ(created.exit_code, 0) << created.output;
    auto key = RunGridctl(daemon_.data_dir(), "apikey create --account other --role super --json");
    EXPECT_EQ(key.exit_code, 0) << key.output;
    auto parsed = nlohmann::json::parse(key.output);
    ApiClient client(daemon_.host(), daemon_.port());
    client.SetCredentials(parsed["api_key"], parsed["shared_secret"]);
    return client;
  }

  DaemonProcess daemon_;
};

TEST_F(ImageTest, SavedImageBecomesAvailableServesNewServersAndMovesThroughTheTrash) {
  ApiClient client = daemon_.Client();
  const int64_t source = AddServer(client, "golden-src", "debian-12-amd64");
  ASSERT_GT(source, 0);

  auto saved = CallOk(client, "grid/image/save",
                      {{"server", std::to_string(source)},
                       {"friendlyName", "Golden <web> & co"},
                       {"description", "nginx, tuned"}},
                      "POST");
  ASSERT_EQ(saved["list"].size(), 1u);
  const auto image = saved["list"][0];
  EXPECT_EQ(image["object"], "serverimage");
  EXPECT_EQ(image["state"]["name"], "Saving");
  EXPECT_EQ(image["isPublic"], false);
  EXPECT_EQ(image["friendlyName"], "Golden <web> & co");
  EXPECT_EQ(image["owner"]["name"], daemon_.account());
  EXPECT_EQ(image["os"]["name"], "Debian 12 (64-bit)") << "copied from the source's image";
  const std::string name = image["name"];
  EXPECT_EQ(name.rfind("GSI-", 0), 0u) << name;
  EXPECT_EQ(image["location"],
            std::to_string(image["owner"]["id"].get<int64_t>()) + "/" + name + ".img");
  const int64_t image_id = image["id"];

  auto job = WaitForSaveJob(client, name);
  EXPECT_EQ(job["currentstate"]["name"], "Succeeded") << job.dump();
  EXPECT_EQ(job["command"]["name"], "SaveServerImage");
  EXPECT_EQ(job["detail"]["server"], "golden-src");
  auto available = GetImage(client, image_id);
  ASSERT_TRUE(available.has_value());
  EXPECT_EQ((*available)["state"]["name"], "Available");
  auto source_now = CallOk(client, "grid/server/get", {{"id", std::to_string(source)}});
  EXPECT_EQ(source_now["list"][0]["state"]["name"], "On") << "back to its state before the save";

  // A new server from the saved image, by name.
  const int64_t copy = AddServer(client, "golden-copy", name);
  ASSERT_GT(copy, 0);
  auto copy_server = CallOk(client, "grid/server/get", {{"id", std::to_string(copy)}});
  EXPECT_EQ(copy_server["list"][0]["image"]["id"], image_id);

  // Private: another account does not see it, cannot use it and cannot change it.
  ApiClient other = OtherAccount();
  auto other_list = CallOk(other, "grid/image/list", {{"isPublic", "false"}});
  EXPECT_TRUE(other_list["list"].empty()) << other_list.dump();
  EXPECT_EQ(other.Call("grid/image/get", {{"id", std::to_string(image_id)}}).status, 400u);

  // Edit as libcloud does (GET, isPublic always sent): published, everyone sees it.
  auto edited = CallOk(client, "grid/image/edit",
                       {{"id", std::to_string(image_id)},
                        {"isPublic", "true"},
                        {"friendlyName", "Golden 2"},
                        {"description", "for everyone"}});
  EXPECT_EQ(edited["list"][0]["friendlyName"], "Golden 2");
  EXPECT_EQ(edited["list"][0]["description"], "for everyone");
  EXPECT_EQ(edited["list"][0]["isPublic"], true);
  auto seen_by_other = CallOk(other, "grid/image/get", {{"image", name}});
  EXPECT_EQ(seen_by_other["list"][0]["friendlyName"], "Golden 2");
  auto refused_edit =
      other.Call("grid/image/edit", {{"id", std::to_string(image_id)}, {"isPublic", "false"}});
  EXPECT_EQ(refused_edit.status, 400u);
  EXPECT_NE(refused_edit.body.find("only its owner"), std::string::npos) << refused_edit.body;
  EXPECT_EQ(GetImage(client, image_id).value()["isPublic"], true) << "the refusal changed it";

  // Base images from the configuration belong to the operator.
  auto base_edit =
      client.Call("grid/image/edit", {{"image", "debian-12-amd64"}, {"description", "mine now"}});
  EXPECT_EQ(base_edit.status, 400u);
  EXPECT_NE(base_edit.body.find("public base image"), std::string::npos) << base_edit.body;
  EXPECT_EQ(client.Call("grid/image/delete", {{"name", "debian-12-amd64"}}, "POST").status, 400u);

  // Trash: no new servers from it, hidden from other accounts, listed by state for the owner.
  auto trashed = CallOk(client, "grid/image/delete", {{"id", std::to_string(image_id)}}, "POST");
  EXPECT_EQ(trashed["list"][0]["state"]["name"], "Trash");
  const std::string ip = FreePublicIps(client).at(0);
  auto refused_add = client.Call(
      "grid/server/add",
      {{"name", "from-trash"}, {"image", name}, {"server.ram", "1GB"}, {"ip", ip}}, "POST");
  EXPECT_EQ(refused_add.status, 400u);
  EXPECT_NE(refused_add.body.find("not available"), std::string::npos) << refused_add.body;
  auto in_trash = CallOk(client, "grid/image/list", {{"image.state", "Trash"}});
  ASSERT_EQ(in_trash["list"].size(), 1u);
  EXPECT_EQ(in_trash["list"][0]["id"], image_id);
  EXPECT_EQ(other.Call("grid/image/get", {{"id", std::to_string(image_id)}}).status, 400u);
  EXPECT_EQ(client.Call("grid/image/delete", {{"id", std::to_string(image_id)}}, "POST").status,
            400u)
      << "already in the Trash";
  // The server built from it keeps running.
  auto copy_after = CallOk(client, "grid/server/get", {{"id", std::to_string(copy)}});
  EXPECT_EQ(copy_after["list"][0]["state"]["name"], "On");

  auto restored = CallOk(client, "grid/image/restore", {{"image", name}}, "POST");
  EXPECT_EQ(restored["list"][0]["state"]["name"], "Available");
  EXPECT_EQ(
      CallOk(client, "grid/image/list", {{"state", "Available"}, {"isPublic", "false"}})["list"]
          .size(),
      0u)
      << "still published";
  const int64_t again = AddServer(client, "golden-again", std::to_string(image_id));
  EXPECT_GT(again, 0);
}

TEST_F(ImageTest, SavedImagesStayUsableAcrossARestart) {
  ApiClient client = daemon_.Client();
  const int64_t source = AddServer(client, "origin", "debian-12-amd64");
  ASSERT_GT(source, 0);
  auto saved = CallOk(client, "grid/image/save",
                      {{"server", std::to_string(source)}, {"friendlyName", "kept"}}, "POST");
  const std::string name = saved["list"][0]["name"];
  ASSERT_EQ(WaitForSaveJob(client, name)["currentstate"]["name"], "Succeeded");
  const int64_t copy = AddServer(client, "from-kept", name);
  ASSERT_GT(copy, 0);

  // libvirt's test driver forgets every volume when gridd stops; gridd rebuilds them.
  EXPECT_EQ(daemon_.Stop(), 0);
  daemon_.Start();
  ApiClient again = daemon_.Client();
  auto server = CallOk(again, "grid/server/get", {{"id", std::to_string(copy)}});
  EXPECT_EQ(server["list"][0]["state"]["name"], "On");
  CallOk(again, "grid/server/power", {{"id", std::to_string(copy)}, {"power", "restart"}}, "POST");
  WaitForServerState(again, server["list"][0]["ip"]["ip"], "On");
  EXPECT_GT(AddServer(again, "from-kept-2", name), 0) << "the saved image still builds servers";
  EXPECT_EQ(daemon_.LogText().find("restore: image"), std::string::npos) << daemon_.LogText();
}

TEST_F(ImageTest, ChangesToTheServerWaitWhileItsImageIsSaved) {
  ApiClient client = daemon_.Client();
  const int64_t source = AddServer(client, "busy", "debian-12-amd64");
  ASSERT_GT(source, 0);
  CallOk(client, "grid/image/save", {{"server", "busy"}, {"name", "by-name alias"}}, "POST");
  // Either the save is still running (the change waits) or it finished (the change goes
  // through); never both a save and a power change on one disk at once.
  auto power =
      client.Call("grid/server/power", {{"id", std::to_string(source)}, {"power", "stop"}}, "POST");
  if (power.status == 400u) {
    EXPECT_NE(power.body.find("an image is being saved"), std::string::npos) << power.body;
  } else {
    EXPECT_EQ(power.status, 200u) << power.body;
  }
  auto images = CallOk(client, "grid/image/list", {{"isPublic", "false"}});
  ASSERT_EQ(images["list"].size(), 1u);
  EXPECT_EQ(images["list"][0]["friendlyName"], "by-name alias");
}

TEST_F(ImageTest, ASaveThatFailsLeavesNoImageAndTheServerAsItWas) {
  ApiClient client = daemon_.Client();
  const int64_t source = AddServer(client, "filler", "debian-12-amd64");
  ASSERT_GT(source, 0);
  // The test driver's pool holds 100 GiB and each full copy of a 10 GiB disk reserves 10 GiB,
  // so the pool fills after a few saves; the one that does not fit must fail cleanly.
  std::optional<nlohmann::json> failed;
  std::vector<int64_t> kept;
  for (int attempt = 0; attempt < 12 && !failed; ++attempt) {
    auto saved = CallOk(
        client, "grid/image/save",
        {{"server", std::to_string(source)}, {"friendlyName", "fill-" + std::to_string(attempt)}},
        "POST");
    const std::string name = saved["list"][0]["name"];
    auto job = WaitForSaveJob(client, name);
    if (job["currentstate"]["name"] == "Failed") {
      failed = job;
      EXPECT_EQ(client.Call("grid/image/get", {{"name", name}}).status, 400u)
          << "the failed image must be gone";
    } else {
      kept.push_back(saved["list"][0]["id"]);
    }
  }
  ASSERT_TRUE(failed.has_value()) << "the pool never filled up";
  EXPECT_FALSE(kept.empty());
  const std::string message =
      failed->value("detail", nlohmann::json::object()).dump() + failed->dump();
  EXPECT_NE(message.find("space"), std::string::npos) << "a clear reason: " << message;

  auto server = CallOk(client, "grid/server/get", {{"id", std::to_string(source)}});
  EXPECT_EQ(server["list"][0]["state"]["name"], "On");
  auto images = CallOk(client, "grid/image/list", {{"isPublic", "false"}});
  EXPECT_EQ(images["list"].size(), kept.size());
  for (const auto& image : images["list"]) EXPECT_EQ(image["state"]["name"], "Available");
  // The server can be changed again at once.
  CallOk(client, "grid/server/power", {{"id", std::to_string(source)}, {"power", "stop"}}, "POST");
  WaitForServerState(
      client,
      CallOk(client, "grid/server/get", {{"id", std::to_string(source)}})["list"][0]["ip"]["ip"],
      "Off");
}

}  // namespace
}  // namespace gridd::testing
