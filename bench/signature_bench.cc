// Cost of checking a GoGrid MD5 signature, as gridd's API does for every request: a repeated
// signature (the common path: every request a client signs within one second carries the same
// one), a fresh signature made in the current second, and fresh ones at the edges of the
// window, where every second between now and the signature's is tried. One MD5 of the same
// input is the reference. Prints one line of JSON per case.
//
//   gridd_signature_bench [--iterations N]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
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
  app.add_option("--iterations", iterations, "calls per case for the cheap cases");
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

  {
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    const std::string signature = SignatureAt(now);
    const double ns = NanosecondsPerCall(
        iterations, [&](int) { sink = verifier.Verify(kKey, kSecret, signature, now); });
    Print("repeated signature, current second (cached)", ns, md5);
  }

  // Fresh signatures: each second is new to the verifier, as for a client's first request in
  // that second. `now` moves with the signature so each one is the current second.
  auto fresh = [&](const std::string& name, int offset, int count) {
    std::vector<std::string> signatures;
    for (int i = 0; i < count; ++i) signatures.push_back(SignatureAt(now + i + offset));
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    bool all_valid = true;
    const double ns = NanosecondsPerCall(count, [&](int i) {
      all_valid =
          verifier.Verify(kKey, kSecret, signatures[static_cast<size_t>(i)], now + i) && all_valid;
    });
    if (!all_valid) {
      std::cerr << "gridd_signature_bench: a valid signature was refused (" << name << ")\n";
      std::exit(1);
    }
    Print(name, ns, md5);
  };
  fresh("new signature, current second", 0, 20000);
  fresh("new signature, 1 s in the future", 1, 20000);
  fresh("new signature, past edge of the window (-600 s)", -kPast, 500);
  fresh("new signature, future edge of the window (+300 s)", kFuture, 1000);
  {
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    const std::string signature = SignatureAt(now - kPast);
    sink = verifier.Verify(kKey, kSecret, signature, now);
    const double ns = NanosecondsPerCall(
        iterations, [&](int) { sink = verifier.Verify(kKey, kSecret, signature, now); });
    Print("repeated signature, past edge of the window (cached)", ns, md5);
  }
  {
    // A wrong signature is never cached: every second of the window is tried.
    std::vector<std::string> wrong;
    for (int i = 0; i < 200; ++i) wrong.push_back(gridd::Md5Hex("wrong" + std::to_string(i)));
    gridd::api::SignatureVerifier verifier(kPast, kFuture);
    const double ns = NanosecondsPerCall(200, [&](int i) {
      sink = verifier.Verify(kKey, kSecret, wrong[static_cast<size_t>(i)], now);
    });
    Print("wrong signature (whole window tried)", ns, md5);
  }
  (void)sink;
  return 0;
}
