// TLS material for the HTTPS listener: a self-signed certificate made on first start when the
// operator configured none, and the SHA-256 fingerprint clients can pin or compare.
#pragma once

#include <filesystem>
#include <string>

namespace gridd::api {

// Creates `cert_path` and `key_path` (PEM; the key 0600) with a fresh P-256 key and a
// certificate for "localhost", 127.0.0.1 and ::1 valid for ten years, unless both exist.
// Returns true when it made them. Throws std::runtime_error naming the file on failure.
bool EnsureSelfSignedCertificate(const std::filesystem::path& cert_path,
                                 const std::filesystem::path& key_path);

// "AB:CD:…" — the SHA-256 fingerprint of the first certificate in a PEM file, as
// `openssl x509 -fingerprint -sha256` prints it.
std::string CertificateFingerprint(const std::filesystem::path& cert_path);

}  // namespace gridd::api
