#include "gridd/common/crypto.h"

#include <crypt.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace gridd {
namespace {

constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

std::string ToHex(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

}  // namespace

std::array<uint8_t, 16> Md5(std::string_view data) {
  std::array<uint8_t, 16> digest{};
  unsigned size = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_md5(), nullptr) != 1 ||
      size != digest.size()) {
    throw std::runtime_error("MD5 failed");
  }
  return digest;
}

std::string Md5Hex(std::string_view data) {
  const auto digest = Md5(data);
  return ToHex(digest.data(), digest.size());
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

void RandomBytes(uint8_t* out, size_t size) {
  if (RAND_bytes(out, static_cast<int>(size)) != 1) throw std::runtime_error("RAND_bytes failed");
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RandomBytes(reinterpret_cast<uint8_t*>(raw.data()), bytes);
  return ToHex(reinterpret_cast<const uint8_t*>(raw.data()), bytes);
}

std::string RandomPassword(size_t length) {
  static constexpr std::string_view kAlphabet =
      "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::string out;
  out.reserve(length);
  while (out.size() < length) {
    uint8_t byte = 0;
    RandomBytes(&byte, 1);
    // Rejection sampling keeps every character equally likely.
    if (byte >= 256 - (256 % kAlphabet.size())) continue;
    out.push_back(kAlphabet[byte % kAlphabet.size()]);
  }
  return out;
}

std::string Sha512Crypt(std::string_view password) {
  // crypt_gensalt_rn draws the salt from the bytes given; 16 random bytes is its maximum.
  uint8_t entropy[16];
  RandomBytes(entropy, sizeof(entropy));
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$6$", 0, reinterpret_cast<const char*>(entropy), sizeof(entropy), salt,
                       sizeof(salt)) == nullptr) {
    throw std::runtime_error("crypt_gensalt: SHA-512 crypt unavailable");
  }
  crypt_data data{};
  const std::string text(password);
  const char* hash = crypt_rn(text.c_str(), salt, &data, sizeof(data));
  if (hash == nullptr || hash[0] != '$') throw std::runtime_error("crypt: SHA-512 hashing failed");
  return hash;
}

SecretBox SecretBox::LoadOrCreate(const std::filesystem::path& key_file) {
  std::array<uint8_t, kKeySize> key{};
  int fd = ::open(key_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    RandomBytes(key.data(), key.size());
    fd = ::open(key_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      throw std::runtime_error("cannot create master key " + key_file.string() + ": " +
                               std::strerror(errno));
    }
    bool ok =
        ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error("cannot write master key " + key_file.string());
    return SecretBox(key);
  }
  if (fd < 0) {
    throw std::runtime_error("cannot open master key " + key_file.string() + ": " +
                             std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || (info.st_mode & 077) != 0) {
    ::close(fd);
    throw std::runtime_error("master key " + key_file.string() +
                             " must not be accessible by group or others (chmod 0600)");
  }
  ssize_t got = ::read(fd, key.data(), key.size());
  char extra = 0;
  ssize_t more = ::read(fd, &extra, 1);
  ::close(fd);
  if (got != static_cast<ssize_t>(key.size()) || more != 0) {
    throw std::runtime_error("master key " + key_file.string() + " must be exactly 32 bytes");
  }
  return SecretBox(key);
}

std::string SecretBox::Seal(std::string_view plaintext) const {
  std::string out(kNonceSize + plaintext.size() + kTagSize, '\0');
  auto* bytes = reinterpret_cast<uint8_t*>(out.data());
  RandomBytes(bytes, kNonceSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), bytes) != 1 ||
      EVP_EncryptUpdate(ctx.get(), bytes + kNonceSize, &len,
                        reinterpret_cast<const uint8_t*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), bytes + kNonceSize + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          bytes + kNonceSize + plaintext.size()) != 1) {
    throw std::runtime_error("AES-256-GCM encryption failed");
  }
  return out;
}

std::string SecretBox::Open(std::string_view sealed) const {
  if (sealed.size() < kNonceSize + kTagSize) throw std::runtime_error("sealed secret too short");
  const auto* bytes = reinterpret_cast<const uint8_t*>(sealed.data());
  const size_t size = sealed.size() - kNonceSize - kTagSize;
  std::string out(size, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  std::array<uint8_t, kTagSize> tag{};
  std::memcpy(tag.data(), bytes + kNonceSize + size, kTagSize);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), bytes) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len, bytes + kNonceSize,
                        static_cast<int>(size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<uint8_t*>(out.data()) + len, &len) != 1) {
    throw std::runtime_error("sealed secret failed authentication (altered or wrong master key)");
  }
  return out;
}

}  // namespace gridd
