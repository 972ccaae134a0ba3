// The signature checker fed hostile keys, secrets, signatures and clock values: it answers
// true or false without crashing, accepts the genuine signature for the current second, and
// never accepts a signature that differs from the genuine one in anything but letter case.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_input.h"
#include "gridd/api/signature.h"
#include "gridd/common/crypto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto fields = gridd::fuzz::SplitFields(data, size, 4);
  const std::string& key = fields[0];
  const std::string& secret = fields[1];
  const std::string& signature = fields[2];
  // Any second a server clock can show, from 1970 to far beyond 2100.
  uint64_t mixed = 1'700'000'000;
  for (unsigned char c : fields[3]) mixed = mixed * 31 + c;
  const auto now = static_cast<int64_t>(mixed % (uint64_t{1} << 40));

  // A small window keeps filling the table cheap; verifying twice exercises the table lookup.
  gridd::api::SignatureVerifier verifier(2, 1, 16);
  const std::string genuine = gridd::Md5Hex(key + secret + std::to_string(now));
  if (!verifier.Verify(key, secret, genuine, now)) std::abort();
  if (!verifier.Verify(key, secret, genuine, now)) std::abort();

  const bool accepted = verifier.Verify(key, secret, signature, now);
  const bool accepted_again = verifier.Verify(key, secret, signature, now);
  if (accepted != accepted_again) std::abort();
  if (accepted) {
    // Only a signature of some second in the window may pass, and all of them are 32 hex digits.
    if (signature.size() != 32) std::abort();
    bool in_window = false;
    for (int64_t second = now - 2; second <= now + 1; ++second) {
      const std::string expected = gridd::Md5Hex(key + secret + std::to_string(second));
      bool same = true;
      for (size_t i = 0; i < 32; ++i) {
        if (std::tolower(static_cast<unsigned char>(signature[i])) != expected[i]) same = false;
      }
      in_window = in_window || same;
    }
    if (!in_window) std::abort();
  }
  return 0;
}
