// The few cryptographic primitives gridd needs, all from OpenSSL: MD5 for GoGrid signatures,
// a CSPRNG for keys, secrets, passwords and MACs, and AES-256-GCM for secrets at rest.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace gridd {

std::array<uint8_t, 16> Md5(std::string_view data);
std::string Md5Hex(std::string_view data);  // lower-case hex
// Compares two strings in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

void RandomBytes(uint8_t* out, size_t size);
std::string RandomHex(size_t bytes);
// A password of `length` characters from an alphabet without look-alike characters.
std::string RandomPassword(size_t length);

// The SHA-512 crypt(3) hash ("$6$<salt>$<hash>") of a password with a fresh random salt, as
// /etc/shadow and cloud-init expect.
std::string Sha512Crypt(std::string_view password);

// Encrypts small secrets (shared secrets, root passwords) with AES-256-GCM under the master
// key. Ciphertext layout: 12-byte nonce | ciphertext | 16-byte tag. Thread-safe.
class SecretBox {
 public:
  static constexpr size_t kKeySize = 32;
  explicit SecretBox(const std::array<uint8_t, kKeySize>& key) : key_(key) {}

  // Reads the key file, or creates it (mode 0600, 32 random bytes) when it does not exist.
  // Throws std::runtime_error when the file is unreadable, has the wrong size or is readable by
  // others.
  static SecretBox LoadOrCreate(const std::filesystem::path& key_file);

  std::string Seal(std::string_view plaintext) const;
  // Throws std::runtime_error when the ciphertext was altered or made with another key.
  std::string Open(std::string_view sealed) const;

 private:
  std::array<uint8_t, kKeySize> key_;
};

}  // namespace gridd
