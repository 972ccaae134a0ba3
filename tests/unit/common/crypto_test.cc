#include "gridd/common/crypto.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "support/api_client.h"
#include "support/test_paths.h"

namespace gridd {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPasswordAlphabet =
    "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

std::array<uint8_t, SecretBox::kKeySize> KeyOf(uint8_t fill) {
  std::array<uint8_t, SecretBox::kKeySize> key{};
  key.fill(fill);
  return key;
}

void WriteFile(const fs::path& path, const std::string& bytes, fs::perms mode) {
  std::ofstream(path, std::ios::binary) << bytes;
  fs::permissions(path, mode, fs::perm_options::replace);
}

std::string LoadOrCreateError(const fs::path& path) {
  try {
    SecretBox::LoadOrCreate(path);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  ADD_FAILURE() << "LoadOrCreate accepted " << path;
  return "";
}

// ---------------------------------------------------------------------------------------- MD5
TEST(Md5HexTest, KnownVectors) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(Md5Hex("The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6");
}

TEST(Md5HexTest, GoGridSignatureVector) {
  // sig = md5(api_key + shared_secret + unix seconds)
  const std::string api_key = "abc123";
  const std::string secret = "secret";
  const std::string timestamp = "1234567890";
  EXPECT_EQ(Md5Hex(api_key + secret + timestamp), "4fbbdca2889aac3b21efb79570ee174e");
}

TEST(Md5HexTest, HashesEmbeddedNulBytesAndMatchesAnIndependentImplementation) {
  const std::string with_nul("key\0secret\x01\xff", 12);
  EXPECT_EQ(Md5Hex(with_nul), testing::Md5Hex(with_nul));
  EXPECT_NE(Md5Hex(with_nul), Md5Hex("key"));
  const std::string long_input(10000, 'x');
  EXPECT_EQ(Md5Hex(long_input), testing::Md5Hex(long_input));
}

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("4fbbdca2889aac3b", "4fbbdca2889aac3b"));
  EXPECT_FALSE(ConstantTimeEquals("4fbbdca2889aac3b", "4fbbdca2889aac3c"));
  EXPECT_FALSE(ConstantTimeEquals("4fbbdca2889aac3b", "5fbbdca2889aac3b"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
  EXPECT_FALSE(ConstantTimeEquals("A", "a"));
}

// ------------------------------------------------------------------------------------- random
TEST(RandomTest, RandomHexHasTwoLowerCaseDigitsPerByte) {
  const std::string hex = RandomHex(8);
  ASSERT_EQ(hex.size(), 16u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << hex;
  EXPECT_NE(RandomHex(16), RandomHex(16));
  EXPECT_EQ(RandomHex(0), "");
}

TEST(RandomTest, RandomPasswordHasTheRequestedLengthAndNoLookAlikes) {
  EXPECT_EQ(RandomPassword(0), "");
  for (size_t length : {1u, 12u, 64u}) {
    const std::string password = RandomPassword(length);
    EXPECT_EQ(password.size(), length);
    EXPECT_EQ(password.find_first_not_of(kPasswordAlphabet), std::string::npos) << password;
    EXPECT_EQ(password.find_first_of("0O1lIo"), std::string::npos) << password;
  }
  EXPECT_NE(RandomPassword(12), RandomPassword(12));
}

TEST(RandomTest, RandomPasswordUsesTheWholeAlphabet) {
  // 20000 characters from 56: every one shows up unless the sampling is broken.
  std::set<char> seen;
  for (int i = 0; i < 400; ++i) {
    for (char c : RandomPassword(50)) seen.insert(c);
  }
  EXPECT_EQ(seen.size(), kPasswordAlphabet.size());
}

// ---------------------------------------------------------------------------------- SecretBox
TEST(SecretBoxTest, SealThenOpenRoundTrips) {
  const SecretBox box(KeyOf(7));
  for (const std::string& plaintext :
       {std::string(), std::string("s3cr3t"), std::string("\0\x01\xff binary", 10),
        std::string(5000, 'z')}) {
    const std::string sealed = box.Seal(plaintext);
    EXPECT_EQ(sealed.size(), 12 + plaintext.size() + 16);
    EXPECT_EQ(box.Open(sealed), plaintext);
  }
}

TEST(SecretBoxTest, CiphertextHidesThePlaintextAndUsesFreshNonces) {
  const SecretBox box(KeyOf(7));
  const std::string secret = "my-shared-secret-0123456789";
  const std::string a = box.Seal(secret);
  const std::string b = box.Seal(secret);
  EXPECT_EQ(a.find(secret), std::string::npos);
  EXPECT_EQ(a.find("my-shared"), std::string::npos);
  EXPECT_NE(a, b);
  EXPECT_NE(a.substr(0, 12), b.substr(0, 12));
}

TEST(SecretBoxTest, AnyAlteredByteIsDetected) {
  const SecretBox box(KeyOf(7));
  const std::string sealed = box.Seal("root password");
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string altered = sealed;
    altered[i] = static_cast<char>(altered[i] ^ 0x01);
    EXPECT_THROW(box.Open(altered), std::runtime_error) << "flipped byte " << i;
  }
  EXPECT_THROW(box.Open(sealed.substr(0, sealed.size() - 1)), std::runtime_error);
  EXPECT_THROW(box.Open(sealed + "x"), std::runtime_error);
  EXPECT_THROW(box.Open(""), std::runtime_error);
  EXPECT_THROW(box.Open(std::string(27, '\0')), std::runtime_error);
}

TEST(SecretBoxTest, AnotherKeyCannotOpen) {
  const SecretBox box(KeyOf(7));
  auto other_key = KeyOf(7);
  other_key[31] = 8;
  const SecretBox other(other_key);
  EXPECT_THROW(other.Open(box.Seal("secret")), std::runtime_error);
}

TEST(SecretBoxTest, LoadOrCreateWritesAPrivate32ByteKeyAndReusesIt) {
  const fs::path path = gridd::testing::ScratchDir("gridd-key-test") / "master.key";
  const SecretBox first = SecretBox::LoadOrCreate(path);
  ASSERT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::file_size(path), 32u);
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  std::ifstream in(path, std::ios::binary);
  const std::string key_bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(key_bytes, std::string(32, '\0'));

  // A restart reads the same key: secrets sealed before it still open.
  const std::string sealed = first.Seal("survives a restart");
  const SecretBox second = SecretBox::LoadOrCreate(path);
  EXPECT_EQ(second.Open(sealed), "survives a restart");
  std::ifstream again(path, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(again)), {}), key_bytes);
}

TEST(SecretBoxTest, TwoDataDirectoriesGetDifferentKeys) {
  const SecretBox a = SecretBox::LoadOrCreate(gridd::testing::ScratchDir("gridd-key-test") / "k");
  const SecretBox b = SecretBox::LoadOrCreate(gridd::testing::ScratchDir("gridd-key-test") / "k");
  EXPECT_THROW(b.Open(a.Seal("x")), std::runtime_error);
}

TEST(SecretBoxTest, LoadOrCreateRefusesAKeyReadableByOthers) {
  const fs::path dir = gridd::testing::ScratchDir("gridd-key-test");
  const std::string key(32, 'k');
  for (fs::perms mode : {fs::perms(0644), fs::perms(0640), fs::perms(0604), fs::perms(0660)}) {
    const fs::path path = dir / ("key-" + std::to_string(static_cast<int>(mode)));
    WriteFile(path, key, mode);
    const std::string message = LoadOrCreateError(path);
    EXPECT_NE(message.find("chmod 0600"), std::string::npos) << message;
  }
  const fs::path ok = dir / "ok";
  WriteFile(ok, key, fs::perms(0400));
  EXPECT_NO_THROW(SecretBox::LoadOrCreate(ok));
}

TEST(SecretBoxTest, LoadOrCreateRefusesKeysOfTheWrongSize) {
  const fs::path dir = gridd::testing::ScratchDir("gridd-key-test");
  for (size_t size : {0u, 16u, 31u, 33u, 64u}) {
    const fs::path path = dir / ("key-" + std::to_string(size));
    WriteFile(path, std::string(size, 'k'), fs::perms(0600));
    const std::string message = LoadOrCreateError(path);
    EXPECT_NE(message.find("exactly 32 bytes"), std::string::npos) << size << ": " << message;
    EXPECT_EQ(fs::file_size(path), size) << "the bad key file was modified";
  }
}

TEST(SecretBoxTest, LoadOrCreateFailsWhenTheDirectoryIsMissing) {
  const fs::path path = gridd::testing::ScratchDir("gridd-key-test") / "absent" / "master.key";
  const std::string message = LoadOrCreateError(path);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
}

}  // namespace
}  // namespace gridd
