#include "services/gateway/serving_certificate.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"

namespace crm::gateway {

struct ServingCertificate::Pair {
  Pair() = default;
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  ~Pair() {
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
  }
  X509* cert = nullptr;
  STACK_OF(X509) * chain = nullptr;  // The file's further certificates.
  EVP_PKEY* key = nullptr;
};

namespace {

// Never ask for a passphrase (OpenSSL's default would read the terminal):
// an encrypted key just does not load.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return 0; }

std::optional<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return bytes;
}

// SHA-256 over both files as read (a missing file differs from an empty one).
std::array<unsigned char, 32> DigestOf(const std::optional<std::string>& cert,
                                       const std::optional<std::string>& key) {
  std::array<unsigned char, 32> out{};
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1;
  for (const std::optional<std::string>* part : {&cert, &key}) {
    const uint64_t size = part->has_value() ? (*part)->size() : UINT64_MAX;
    ok = ok && EVP_DigestUpdate(md, &size, sizeof(size)) == 1;
    if (part->has_value()) ok = ok && EVP_DigestUpdate(md, (*part)->data(), (*part)->size()) == 1;
  }
  unsigned int length = 0;
  ok = ok && EVP_DigestFinal_ex(md, out.data(), &length) == 1 && length == out.size();
  EVP_MD_CTX_free(md);
  if (!ok) out.fill(0);  // Compares unequal to any real digest but itself.
  return out;
}

std::string SerialOf(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = bn == nullptr ? nullptr : BN_bn2hex(bn);
  std::string out = hex == nullptr ? "" : hex;
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServingCertificate>> ServingCertificate::Load(std::string cert_file,
                                                                             std::string key_file) {
  std::unique_ptr<ServingCertificate> c(
      new ServingCertificate(std::move(cert_file), std::move(key_file)));
  Digest digest;
  absl::StatusOr<std::shared_ptr<const Pair>> pair = c->Read(&digest);
  if (!pair.ok()) return pair.status();
  absl::MutexLock lock(&c->mu_);
  c->current_ = *std::move(pair);
  c->last_seen_ = digest;
  return c;
}

ServingCertificate::~ServingCertificate() { StopRefresh(); }

absl::StatusOr<std::shared_ptr<const ServingCertificate::Pair>> ServingCertificate::Read(
    Digest* digest) const {
  const std::optional<std::string> cert_pem = ReadAll(cert_file_);
  const std::optional<std::string> key_pem = ReadAll(key_file_);
  *digest = DigestOf(cert_pem, key_pem);
  if (!cert_pem.has_value()) {
    return absl::FailedPreconditionError("setting tls_cert: cannot read the file");
  }
  if (!key_pem.has_value()) {
    return absl::FailedPreconditionError("setting tls_key: cannot read the file");
  }
  auto pair = std::make_shared<Pair>();
  BIO* bio = BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size()));
  pair->cert = bio == nullptr ? nullptr : PEM_read_bio_X509(bio, nullptr, NoPassphrase, nullptr);
  pair->chain = sk_X509_new_null();
  if (pair->cert != nullptr && pair->chain != nullptr) {
    while (X509* more = PEM_read_bio_X509(bio, nullptr, NoPassphrase, nullptr)) {
      if (sk_X509_push(pair->chain, more) == 0) {
        X509_free(more);
        break;
      }
    }
  }
  BIO_free(bio);
  bio = BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size()));
  pair->key =
      bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr);
  BIO_free(bio);
  absl::Status status;
  if (pair->cert == nullptr || pair->chain == nullptr) {
    status = absl::FailedPreconditionError("setting tls_cert: not a PEM certificate");
  } else if (pair->key == nullptr) {
    status = absl::FailedPreconditionError(
        "setting tls_key: not a PEM private key (or encrypted with a passphrase)");
  } else if (X509_check_private_key(pair->cert, pair->key) != 1) {
    status = absl::FailedPreconditionError(
        "setting tls_key: does not match the certificate of tls_cert");
  }
  ERR_clear_error();  // The end of the chain, or the reason above.
  if (!status.ok()) return status;
  return std::shared_ptr<const Pair>(std::move(pair));
}

std::shared_ptr<const ServingCertificate::Pair> ServingCertificate::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status ServingCertificate::Reload() {
  Digest digest;
  absl::StatusOr<std::shared_ptr<const Pair>> pair = Read(&digest);
  absl::MutexLock lock(&mu_);
  if (digest == last_seen_) return pair.status();  // Nothing new (good or bad): no log.
  last_seen_ = digest;
  if (!pair.ok()) {
    crm::log::Warn("tls.reload_failed", {{"status", pair.status()}});
    return pair.status();
  }
  current_ = *std::move(pair);
  crm::log::Info("tls.reloaded", {{"serial", crm::log::Id(SerialOf(current_->cert))}});
  return absl::OkStatus();
}

void ServingCertificate::Install(SSL_CTX* ctx) { SSL_CTX_set_cert_cb(ctx, OnHandshake, this); }

int ServingCertificate::OnHandshake(SSL* ssl, void* arg) {
  const std::shared_ptr<const Pair> pair = static_cast<ServingCertificate*>(arg)->Current();
  if (pair == nullptr) return 0;
  // The SSL takes its own references; the pair may be replaced meanwhile.
  return SSL_use_cert_and_key(ssl, pair->cert, pair->key, pair->chain, /*override=*/1) == 1 ? 1 : 0;
}

void ServingCertificate::StartRefresh(absl::Duration interval) {
  refresher_ = std::thread([this, interval] {
    while (true) {
      {
        absl::MutexLock lock(&stop_mu_);
        if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
      }
      (void)Reload();  // Logs what it does.
    }
  });
}

void ServingCertificate::StopRefresh() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (refresher_.joinable()) refresher_.join();
}

std::string ServingCertificate::serial() const {
  const std::shared_ptr<const Pair> pair = Current();
  return pair == nullptr ? "" : SerialOf(pair->cert);
}

}  // namespace crm::gateway
