#include "gridd/api/tls.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace gridd::api {
namespace {

struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<FILE, FileCloser>;
using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Certificate = std::unique_ptr<X509, decltype(&X509_free)>;

[[noreturn]] void Fail(const std::filesystem::path& path, const std::string& what) {
  throw std::runtime_error(path.string() + ": " + what);
}

// Opens a new file with `mode` for writing; an existing one is replaced.
File CreateFile(const std::filesystem::path& path, mode_t mode) {
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) Fail(path, std::error_code(errno, std::generic_category()).message());
  FILE* file = ::fdopen(fd, "w");
  if (file == nullptr) {
    ::close(fd);
    Fail(path, "cannot open for writing");
  }
  return File(file);
}

void AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) throw std::runtime_error("cannot build certificate extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

}  // namespace

bool EnsureSelfSignedCertificate(const std::filesystem::path& cert_path,
                                 const std::filesystem::path& key_path) {
  if (std::filesystem::exists(cert_path) && std::filesystem::exists(key_path)) return false;

  Key key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) Fail(key_path, "cannot generate a P-256 key");
  Certificate cert(X509_new(), X509_free);
  if (!cert) throw std::runtime_error("out of memory");
  X509_set_version(cert.get(), 2);
  // A random 64-bit serial: browsers refuse two certificates with one issuer and serial.
  std::unique_ptr<BIGNUM, decltype(&BN_free)> number(BN_new(), BN_free);
  BN_rand(number.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("gridd"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  AddExtension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
  AddExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
  AddExtension(cert.get(), NID_ext_key_usage, "serverAuth");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) Fail(cert_path, "cannot sign");

  {
    File file = CreateFile(key_path, 0600);
    if (PEM_write_PrivateKey(file.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      Fail(key_path, "cannot write the key");
    }
  }
  File file = CreateFile(cert_path, 0644);
  if (PEM_write_X509(file.get(), cert.get()) != 1) Fail(cert_path, "cannot write the certificate");
  return true;
}

std::string CertificateFingerprint(const std::filesystem::path& cert_path) {
  File file(std::fopen(cert_path.c_str(), "r"));
  if (!file) Fail(cert_path, "cannot read the certificate");
  Certificate cert(PEM_read_X509(file.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) Fail(cert_path, "not a PEM certificate");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  X509_digest(cert.get(), EVP_sha256(), digest, &size);
  std::string text;
  char hex[4];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(hex, sizeof(hex), i + 1 < size ? "%02X:" : "%02X", digest[i]);
    text += hex;
  }
  return text;
}

}  // namespace gridd::api
