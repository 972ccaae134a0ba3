// Cost of checking a GoGrid MD5 signature, as gridd's API does for every request: a repeated
// signature (the common path: every request a client signs within one second carries the same
// one), a new signature every second from clients with good and bad clocks (up to the edges of
// the window), wrong signatures, and what a key's first request costs once. One MD5 of the same
// input is the reference. Prints one line of JSON per case.
//
//   gridd_signature_bench [--iterations N]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "gridd/api/signature.h"
#include "gridd/common/crypto.h"

namespace {

constexpr int kPast = 600;
constexpr int kFuture = 300;
const std::string kKey = "0123456789abcdef";
const std::string kSecret = "bench-shared-secret";

std::string SignatureAt(int64_t second) {
  return gridd::Md5Hex(kKey + kSecret + std::to_string(second));
}

template <typename F>
double NanosecondsPerCall(int iterations, F&& call) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) call(i);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  return std::chrono::duration<double, std::nano>(elapsed).count() / iterations;
}

void Print(const std::string& name, double nanoseconds, double md5_nanoseconds) {
  std::cout << fmt::format(R"({{"case":"{}","ns_per_request":{:.0f},"md5_equivalents":{:.1f}}})"
                           "\n",
                           name, nanoseconds, nanoseconds / md5_nanoseconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Per-request cost of gridd's GoGrid signature check"};
  int iterations = 200000;
  app.add_option("--iterations", iterations, "calls per case");
  CLI11_PARSE(app, argc, argv);

  const int64_t now = 1'800'000'000;
  volatile bool sink = false;

  // Inputs are made beforehand, so only the check itself is timed.
  std::vector<std::string> inputs;
  for (int i = 0; i < 1024; ++i) inputs.push_back(kKey + kSecret + std::to_string(now + i));
  const double md5 = NanosecondsPerCall(iterations, [&](int i) {
    sink = gridd::Md5Hex(inputs[static_cast<size_t>(i) & 1023]).size() == 32;
  });
  Print("md5 of the signed string (reference)", md5, md5);

  auto refused = [](const std::string& name) {
    std::cerr << "gridd_signature_bench: a valid signature was refused (" << name << ")\n";
    std::exit(1);
  };
  {
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    const std::string signature = SignatureAt(now);
    const double ns = NanosecondsPerCall(
        iterations, [&](int) { sink = verifier.Verify(kKey, kSecret, signature, now); });
    Print("repeated signature, current second (cached)", ns, md5);
  }

  // A client whose clock is `offset` seconds off, signing anew every second: each call is the
  // first with its signature, and the clock moves one second per call, so every call pays for
  // whatever the key's table must add for the new second. The table was used before (a key in
  // use), as in a running gridd; what a key's first request costs is printed separately.
  auto each_second = [&](const std::string& name, int offset) {
    const int count = std::min(iterations, 50000);
    std::vector<std::string> signatures;
    for (int i = 0; i < count; ++i) signatures.push_back(SignatureAt(now + i + offset));
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    if (!verifier.Verify(kKey, kSecret, SignatureAt(now - 1 + offset), now - 1)) refused(name);
    bool all_valid = true;
    const double ns = NanosecondsPerCall(count, [&](int i) {
      all_valid =
          verifier.Verify(kKey, kSecret, signatures[static_cast<size_t>(i)], now + i) && all_valid;
    });
    if (!all_valid) refused(name);
    Print(name, ns, md5);
  };
  each_second("new signature every second, current second", 0);
  each_second("new signature every second, 1 s in the past", -1);
  each_second("new signature every second, 1 s in the future", 1);
  each_second("new signature every second, past edge of the window (-600 s)", -kPast);
  each_second("new signature every second, future edge of the window (+300 s)", kFuture);
  {
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    const std::string signature = SignatureAt(now - kPast);
    if (!verifier.Verify(kKey, kSecret, signature, now)) refused("cached past edge");
    const double ns = NanosecondsPerCall(
        iterations, [&](int) { sink = verifier.Verify(kKey, kSecret, signature, now); });
    Print("repeated signature, past edge of the window (cached)", ns, md5);
  }
  std::vector<std::string> wrong;
  for (int i = 0; i < 1024; ++i) wrong.push_back(gridd::Md5Hex("wrong" + std::to_string(i)));
  {
    // The key's table holds the whole window after the first wrong signature.
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    sink = verifier.Verify(kKey, kSecret, wrong[0], now);
    const double ns = NanosecondsPerCall(iterations, [&](int i) {
      sink = verifier.Verify(kKey, kSecret, wrong[static_cast<size_t>(i) & 1023], now);
    });
    Print("wrong signature", ns, md5);
  }
  {
    // As above, with the clock moving one second per call: one MD5 for the second entering.
    const int count = std::min(iterations, 50000);
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    sink = verifier.Verify(kKey, kSecret, wrong[0], now - 1);
    const double ns = NanosecondsPerCall(count, [&](int i) {
      sink = verifier.Verify(kKey, kSecret, wrong[static_cast<size_t>(i) & 1023], now + i);
    });
    Print("wrong signature, a new second every call", ns, md5);
  }

  // A key's first request, once per key table (tables of idle keys are dropped after the
  // window): a good clock costs one MD5; a signature at the window's edge or a wrong one fills
  // the window.
  auto first = [&](const std::string& name, const std::function<std::string(int)>& signature,
                   bool valid) {
    const int count = std::max(1, std::min(iterations / 1000, 200));
    std::vector<std::string> keys;
    std::vector<std::string> signatures;
    for (int i = 0; i < count; ++i) {
      keys.push_back(fmt::format("{:016x}", i));
      signatures.push_back(signature(i));
    }
    gridd::api::SignatureVerifier verifier(kPast, kFuture, static_cast<size_t>(count));
    bool all_right = true;
    const double ns = NanosecondsPerCall(count, [&](int i) {
      const auto index = static_cast<size_t>(i);
      all_right =
          verifier.Verify(keys[index], kSecret, signatures[index], now) == valid && all_right;
    });
    if (!all_right) refused(name);
    Print(name, ns, md5);
  };
  auto signed_by_key = [&](int offset) {
    return [&, offset](int i) {
      return gridd::Md5Hex(fmt::format("{:016x}", i) + kSecret + std::to_string(now + offset));
    };
  };
  first("first request of a key, current second (once per key)", signed_by_key(0), true);
  first("first request of a key, past edge of the window (once per key)", signed_by_key(-kPast),
        true);
  first(
      "first request of a key, wrong signature (once per key)",
      [&](int i) { return wrong[static_cast<size_t>(i) & 1023]; }, false);
  (void)sink;
  return 0;
}
