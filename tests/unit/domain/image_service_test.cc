// The image rules of GridService: saving from a server, who may edit, delete and restore an
// image, who sees it, and that every refusal changes nothing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "grid_fixture.h"

namespace gridd::domain {
namespace {

using testing::GridFixture;

class ImageServiceTest : public GridFixture {
 protected:
  // A server of alice's that is On, its create job done.
  ServerView RunningServer(const std::string& name = "web1") {
    ServerView view = Add(alice_, name, "192.0.2.3");
    FinishPendingJobs();
    SetServerState(view.server.id, server_state::kOn);
    return view;
  }

  ImageSaveRequest SaveRequest(int64_t server_id, const std::string& friendly_name = "golden") {
    ImageSaveRequest request;
    request.server = std::to_string(server_id);
    request.friendly_name = friendly_name;
    return request;
  }

  // Saves and marks the save done, as the job's final write would.
  Image SavedImage(const Caller& caller, int64_t server_id) {
    Image image = grid_.SaveImage(caller, SaveRequest(server_id));
    db_.Write([&](store::Connection& c) {
      image.state = image_state::kAvailable;
      store::images::Update(c, image);
      store::servers::SetState(c, server_id, server_state::kOn, clock_.NowMs());
    });
    FinishPendingJobs();
    return image;
  }

  Image Stored(int64_t id) {
    return db_.Read([&](store::Connection& c) { return store::images::GetAny(c, id); }).value();
  }

  int64_t Images() { return Count("SELECT count(*) FROM images"); }
};

TEST_F(ImageServiceTest, SaveMarksImageAndServerSavingAndQueuesTheCopy) {
  const ServerView server = RunningServer();
  ImageSaveRequest request = SaveRequest(server.server.id, "golden");
  request.description = "tuned nginx";
  const Image image = grid_.SaveImage(alice_, request);

  EXPECT_EQ(image.state, image_state::kSaving);
  EXPECT_FALSE(image.is_public);
  EXPECT_TRUE(image.is_active);
  EXPECT_EQ(image.owner_account_id, alice_.account_id);
  EXPECT_EQ(image.owner_name, "alice");
  EXPECT_EQ(image.friendly_name, "golden");
  EXPECT_EQ(image.description, "tuned nginx");
  EXPECT_EQ(image.os_id, server.image->os_id);
  EXPECT_EQ(image.type, server.image->type);
  ASSERT_EQ(image.name.size(), 40u) << image.name;  // GSI- and a 36-character uuid
  EXPECT_EQ(image.name.rfind("GSI-", 0), 0u);
  EXPECT_EQ(image.location, std::to_string(alice_.account_id) + "/" + image.name + ".img");
  EXPECT_NE(image.volume, server.image->volume);
  EXPECT_EQ(GetServer(alice_, server.server.id).state, server_state::kSaving);

  auto jobs = grid_.ListJobs(alice_, {});
  ASSERT_FALSE(jobs.empty());
  EXPECT_EQ(jobs.front().command, job_command::kSaveServerImage);
  EXPECT_EQ(jobs.front().object_type, job_object_type::kServerImage);
  EXPECT_EQ(jobs.front().object_id, image.id);
  EXPECT_EQ(jobs.front().payload["server_id"], server.server.id);
  EXPECT_EQ(jobs.front().payload["previous_state"], server_state::kOn);

  // Alice's list shows it at once; bob's does not.
  auto mine = grid_.ListImages(alice_, ImageFilter{false, std::nullopt, std::nullopt, {}});
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine.front().id, image.id);
  EXPECT_TRUE(grid_.ListImages(bob_, ImageFilter{false, std::nullopt, std::nullopt, {}}).empty());
  IllegalArgument([&] { grid_.GetImages(bob_, {ById(image.id)}); });
}

TEST_F(ImageServiceTest, SaveFromAServerThatIsOffShowsOffSaving) {
  const ServerView server = RunningServer();
  SetServerState(server.server.id, server_state::kOff);
  grid_.SaveImage(alice_, SaveRequest(server.server.id));
  EXPECT_EQ(GetServer(alice_, server.server.id).state, server_state::kOffSaving);
}

TEST_F(ImageServiceTest, ServerChangesWaitWhileAnImageIsSaved) {
  const ServerView server = RunningServer();
  grid_.SaveImage(alice_, SaveRequest(server.server.id));
  FinishPendingJobs();  // the job row is done, but the server still says it is saving
  EXPECT_NE(Rejected([&] {
              grid_.PowerServer(alice_, {ById(server.server.id)}, "stop");
            }).find("an image is being saved"),
            std::string::npos);
  Rejected([&] { grid_.DeleteServer(alice_, {ById(server.server.id)}); });
  Rejected([&] { grid_.SaveImage(alice_, SaveRequest(server.server.id, "second")); });
}

TEST_F(ImageServiceTest, SaveRefusesBadInputAndChangesNothing) {
  const ServerView server = RunningServer();
  const int64_t images = Images();
  ImageSaveRequest no_name = SaveRequest(server.server.id);
  no_name.friendly_name.reset();
  EXPECT_NE(Rejected([&] { grid_.SaveImage(alice_, no_name); }).find("friendlyName"),
            std::string::npos);
  ImageSaveRequest no_server = SaveRequest(server.server.id);
  no_server.server.reset();
  EXPECT_NE(Rejected([&] { grid_.SaveImage(alice_, no_server); }).find("server"),
            std::string::npos);
  EXPECT_NE(Rejected([&] {
              grid_.SaveImage(alice_, SaveRequest(server.server.id, std::string(101, 'x')));
            }).find("friendlyName"),
            std::string::npos);
  EXPECT_NE(Rejected([&] {
              grid_.SaveImage(alice_, SaveRequest(server.server.id, "a\x01"));
            }).find("friendlyName"),
            std::string::npos);
  ImageSaveRequest long_description = SaveRequest(server.server.id);
  long_description.description = std::string(501, 'd');
  EXPECT_NE(Rejected([&] { grid_.SaveImage(alice_, long_description); }).find("description"),
            std::string::npos);
  // Bob cannot save alice's server; a server being created cannot be saved yet.
  Rejected([&] { grid_.SaveImage(bob_, SaveRequest(server.server.id)); });
  SetServerState(server.server.id, server_state::kStarting);
  EXPECT_NE(
      Rejected([&] { grid_.SaveImage(alice_, SaveRequest(server.server.id)); }).find("On or Off"),
      std::string::npos);
  EXPECT_EQ(Images(), images);
}

TEST_F(ImageServiceTest, EditChangesOnlyWhatIsGivenAndOnlyForTheOwner) {
  const ServerView server = RunningServer();
  const Image image = SavedImage(alice_, server.server.id);
  clock_.AdvanceMs(5000);

  ImageEditRequest publish;
  publish.selectors = {ByEither(image.name)};
  publish.is_public = true;
  const Image published = grid_.EditImage(alice_, publish);
  EXPECT_TRUE(published.is_public);
  EXPECT_EQ(published.friendly_name, "golden");
  EXPECT_EQ(published.updated_ms, clock_.NowMs());
  // Published: bob sees it and may build from it, but may not change it.
  EXPECT_EQ(grid_.GetImages(bob_, {ById(image.id)}).size(), 1u);
  ImageEditRequest hijack;
  hijack.selectors = {ById(image.id)};
  hijack.description = "bob's now";
  const Image before = Stored(image.id);
  EXPECT_NE(IllegalArgument([&] { grid_.EditImage(bob_, hijack); }).find("only its owner"),
            std::string::npos);
  EXPECT_EQ(Stored(image.id).description, before.description);
  IllegalArgument([&] { grid_.DeleteImage(bob_, {ById(image.id)}); });
  EXPECT_EQ(Stored(image.id).state, image_state::kAvailable);

  ImageEditRequest rename;
  rename.selectors = {ById(image.id)};
  rename.friendly_name = "golden 2";
  rename.description = "second take";
  const Image renamed = grid_.EditImage(alice_, rename);
  EXPECT_EQ(renamed.friendly_name, "golden 2");
  EXPECT_EQ(renamed.description, "second take");
  EXPECT_TRUE(renamed.is_public) << "isPublic was not given";
}

TEST_F(ImageServiceTest, EditRefusesBadInput) {
  const ServerView server = RunningServer();
  const Image image = SavedImage(alice_, server.server.id);
  const Image before = Stored(image.id);
  ImageEditRequest nothing;
  nothing.selectors = {ById(image.id)};
  EXPECT_NE(IllegalArgument([&] { grid_.EditImage(alice_, nothing); }).find("Nothing to edit"),
            std::string::npos);
  ImageEditRequest empty_name = nothing;
  empty_name.friendly_name = "";
  EXPECT_NE(IllegalArgument([&] { grid_.EditImage(alice_, empty_name); }).find("friendlyName"),
            std::string::npos);
  ImageEditRequest long_description = nothing;
  long_description.description = std::string(501, 'x');
  EXPECT_NE(IllegalArgument([&] { grid_.EditImage(alice_, long_description); }).find("description"),
            std::string::npos);
  ImageEditRequest no_selector;
  no_selector.description = "x";
  IllegalArgument([&] { grid_.EditImage(alice_, no_selector); });
  ImageEditRequest bad_id = nothing;
  bad_id.selectors = {Selector{Selector::Kind::kId, "abc"}};
  bad_id.description = "x";
  EXPECT_NE(IllegalArgument([&] { grid_.EditImage(alice_, bad_id); }).find("'id'"),
            std::string::npos);
  const Image after = Stored(image.id);
  EXPECT_EQ(after.friendly_name, before.friendly_name);
  EXPECT_EQ(after.description, before.description);
  EXPECT_EQ(after.updated_ms, before.updated_ms);
}

TEST_F(ImageServiceTest, BaseImagesAndImagesBeingSavedCannotBeChanged) {
  ImageEditRequest edit;
  edit.selectors = {ByName("debian-12-amd64")};
  edit.description = "mine";
  EXPECT_NE(IllegalArgument([&] { grid_.EditImage(alice_, edit); }).find("public base image"),
            std::string::npos);
  IllegalArgument([&] { grid_.DeleteImage(alice_, {ByName("debian-12-amd64")}); });

  const ServerView server = RunningServer();
  const Image saving = grid_.SaveImage(alice_, SaveRequest(server.server.id));
  EXPECT_NE(IllegalArgument([&] {
              grid_.DeleteImage(alice_, {ById(saving.id)});
            }).find("still being saved"),
            std::string::npos);
  EXPECT_EQ(Stored(saving.id).state, image_state::kSaving);
}

TEST_F(ImageServiceTest, TrashKeepsTheImageFromNewServersUntilRestored) {
  const ServerView server = RunningServer();
  const Image image = SavedImage(alice_, server.server.id);

  const Image trashed = grid_.DeleteImage(alice_, {ById(image.id)});
  EXPECT_EQ(trashed.state, image_state::kTrash);
  EXPECT_FALSE(trashed.is_active);
  ServerAddRequest from_trash = AddRequest("web2", "192.0.2.4");
  from_trash.image = image.name;
  EXPECT_NE(Rejected([&] { grid_.AddServer(alice_, from_trash); }).find("not available"),
            std::string::npos);
  EXPECT_NE(IllegalArgument([&] {
              grid_.DeleteImage(alice_, {ById(image.id)});
            }).find("already in the Trash"),
            std::string::npos);
  ImageEditRequest edit;
  edit.selectors = {ById(image.id)};
  edit.is_public = true;
  IllegalArgument([&] { grid_.EditImage(alice_, edit); });
  auto trash =
      grid_.ListImages(alice_, ImageFilter{std::nullopt, std::nullopt, image_state::kTrash, {}});
  ASSERT_EQ(trash.size(), 1u);

  const Image restored = grid_.RestoreImage(alice_, {ByEither(std::to_string(image.id))});
  EXPECT_EQ(restored.state, image_state::kAvailable);
  EXPECT_TRUE(restored.is_active);
  EXPECT_NE(IllegalArgument([&] {
              grid_.RestoreImage(alice_, {ById(image.id)});
            }).find("not in the Trash"),
            std::string::npos);
  const ServerView built = grid_.AddServer(alice_, from_trash);
  EXPECT_EQ(built.image->id, image.id);
}

TEST_F(ImageServiceTest, APublishedImageInTheTrashIsHiddenFromOtherAccounts) {
  const ServerView server = RunningServer();
  const Image image = SavedImage(alice_, server.server.id);
  ImageEditRequest publish;
  publish.selectors = {ById(image.id)};
  publish.is_public = true;
  grid_.EditImage(alice_, publish);
  ASSERT_EQ(grid_.GetImages(bob_, {ById(image.id)}).size(), 1u);
  grid_.DeleteImage(alice_, {ById(image.id)});
  IllegalArgument([&] { grid_.GetImages(bob_, {ById(image.id)}); });
  EXPECT_EQ(grid_.GetImages(alice_, {ById(image.id)}).size(), 1u);
}

}  // namespace
}  // namespace gridd::domain
