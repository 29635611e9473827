#include "libs/pki/pki.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/base/status_macros.h"

namespace crm::pki {
namespace {

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

// The OpenSSL error queue as text (no secrets in it), cleared.
std::string OpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::Status SslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
}

absl::StatusOr<PkeyPtr> NewKey(KeyAlgorithm algorithm) {
  EVP_PKEY* key = algorithm == KeyAlgorithm::kEd25519
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (key == nullptr) return SslError("key generation");
  return PkeyPtr(key);
}

absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslError("writing key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  std::string out(data, static_cast<size_t>(n));
  OPENSSL_cleanse(data, static_cast<size_t>(n));
  return out;
}

absl::StatusOr<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return SslError("writing certificate");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<X509Ptr> ParseCert(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509* cert = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate does not parse as PEM X.509");
  }
  return X509Ptr(cert);
}

absl::StatusOr<PkeyPtr> ParseKey(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("private key does not parse as PEM");
  }
  return PkeyPtr(key);
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return SslError(absl::StrCat("extension ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

absl::Status SetTime(ASN1_TIME* field, absl::Time t) {
  if (ASN1_TIME_set(field, absl::ToTimeT(t)) == nullptr) return SslError("setting validity");
  return absl::OkStatus();
}

absl::Time AsnToTime(const ASN1_TIME* t) {
  struct tm tm;
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

absl::Status Sign(X509* cert, EVP_PKEY* key) {
  // Ed25519 signs the message itself: no separate digest.
  const EVP_MD* md = EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  if (X509_sign(cert, key, md) <= 0) return SslError("signing");
  return absl::OkStatus();
}

// A certificate with the common fields set: v3, random serial, CN, validity,
// public key.
absl::StatusOr<X509Ptr> NewCert(absl::string_view common_name, absl::Time not_before,
                                absl::Time not_after, EVP_PKEY* key) {
  if (common_name.empty()) return absl::InvalidArgumentError("empty common name");
  if (!(not_before < not_after)) {
    return absl::InvalidArgumentError("validity window: not_before must precede not_after");
  }
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return SslError("X509_new");
  std::unique_ptr<BIGNUM, BnFree> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return SslError("serial number");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn(common_name);
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("crm"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return SslError("subject name");
  }
  CRM_RETURN_IF_ERROR(SetTime(X509_getm_notBefore(cert.get()), not_before));
  CRM_RETURN_IF_ERROR(SetTime(X509_getm_notAfter(cert.get()), not_after));
  if (X509_set_pubkey(cert.get(), key) != 1) return SslError("public key");
  return cert;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view data, mode_t mode) {
  std::error_code ec;
  const std::filesystem::path p(path);
  if (p.has_parent_path()) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec)
      return absl::InternalError(absl::StrCat("creating directory for ", path, ": ", ec.message()));
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", tmp, ": ", strerror(errno)));
  // The umask may have narrowed the mode; a key must be exactly 0600 anyway.
  bool ok = fchmod(fd, mode) == 0;
  size_t off = 0;
  while (ok && off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  const int saved = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = ok ? errno : saved;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("writing ", path, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

std::vector<std::string> UriSansOf(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace

std::string SpiffeId(absl::string_view name) {
  return absl::StrCat("spiffe://", kTrustDomain, "/", name);
}

std::string NameFromSpiffeId(absl::string_view spiffe_id) {
  const std::string prefix = absl::StrCat("spiffe://", kTrustDomain, "/");
  if (!absl::StartsWith(spiffe_id, prefix)) return "";
  absl::string_view name = spiffe_id.substr(prefix.size());
  return IsValidName(name) ? std::string(name) : "";
}

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || name[0] == '-') return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) return false;
  }
  return true;
}

struct CertificateAuthority::Impl {
  X509Ptr cert;
  PkeyPtr key;
};

CertificateAuthority::CertificateAuthority(std::unique_ptr<Impl> impl, std::string cert_pem,
                                           std::string key_pem, absl::Time not_after)
    : impl_(std::move(impl)),
      cert_pem_(std::move(cert_pem)),
      key_pem_(std::move(key_pem)),
      not_after_(not_after) {}
CertificateAuthority::CertificateAuthority(CertificateAuthority&&) noexcept = default;
CertificateAuthority& CertificateAuthority::operator=(CertificateAuthority&&) noexcept = default;
CertificateAuthority::~CertificateAuthority() = default;

absl::StatusOr<CertificateAuthority> CertificateAuthority::Create(absl::string_view common_name,
                                                                  absl::Time not_before,
                                                                  absl::Time not_after,
                                                                  KeyAlgorithm algorithm) {
  CRM_ASSIGN_OR_RETURN(PkeyPtr key, NewKey(algorithm));
  CRM_ASSIGN_OR_RETURN(X509Ptr cert, NewCert(common_name, not_before, not_after, key.get()));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return SslError("issuer name");
  }
  CRM_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  CRM_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  CRM_RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  CRM_RETURN_IF_ERROR(Sign(cert.get(), key.get()));
  CRM_ASSIGN_OR_RETURN(std::string cert_pem, CertToPem(cert.get()));
  CRM_ASSIGN_OR_RETURN(std::string key_pem, KeyToPem(key.get()));
  auto impl = std::make_unique<Impl>(Impl{std::move(cert), std::move(key)});
  return CertificateAuthority(std::move(impl), std::move(cert_pem), std::move(key_pem), not_after);
}

absl::StatusOr<CertificateAuthority> CertificateAuthority::FromPem(absl::string_view cert_pem,
                                                                   absl::string_view key_pem) {
  CRM_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  CRM_ASSIGN_OR_RETURN(PkeyPtr key, ParseKey(key_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CA key does not match the CA certificate");
  }
  if (X509_check_ca(cert.get()) == 0) {
    return absl::InvalidArgumentError("certificate is not a CA");
  }
  const absl::Time not_after = AsnToTime(X509_get0_notAfter(cert.get()));
  auto impl = std::make_unique<Impl>(Impl{std::move(cert), std::move(key)});
  return CertificateAuthority(std::move(impl), std::string(cert_pem), std::string(key_pem),
                              not_after);
}

absl::StatusOr<CertificateAuthority> CertificateAuthority::Load(const std::string& cert_file,
                                                                const std::string& key_file) {
  CRM_ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(cert_file));
  CRM_ASSIGN_OR_RETURN(std::string key_pem, ReadFile(key_file));
  return FromPem(cert_pem, key_pem);
}

absl::StatusOr<CertAndKey> CertificateAuthority::Issue(const LeafOptions& options) const {
  if (!IsValidName(options.name)) {
    return absl::InvalidArgumentError("leaf name must be 1..63 of [a-z0-9-]");
  }
  CRM_ASSIGN_OR_RETURN(PkeyPtr key, NewKey(options.algorithm));
  CRM_ASSIGN_OR_RETURN(X509Ptr cert,
                       NewCert(options.name, options.not_before, options.not_after, key.get()));
  X509* ca = impl_->cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca)) != 1) {
    return SslError("issuer name");
  }
  std::string san = absl::StrCat("URI:", SpiffeId(options.name), ",DNS:localhost");
  for (const std::string& dns : options.extra_dns_names) absl::StrAppend(&san, ",DNS:", dns);
  absl::StrAppend(&san, ",IP:127.0.0.1");
  CRM_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_basic_constraints, "critical,CA:FALSE"));
  CRM_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_key_usage, "critical,digitalSignature"));
  CRM_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_ext_key_usage, "serverAuth,clientAuth"));
  CRM_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_subject_alt_name, san));
  CRM_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_subject_key_identifier, "hash"));
  CRM_RETURN_IF_ERROR(AddExtension(cert.get(), ca, NID_authority_key_identifier, "keyid:always"));
  CRM_RETURN_IF_ERROR(Sign(cert.get(), impl_->key.get()));
  CertAndKey out;
  CRM_ASSIGN_OR_RETURN(out.cert_pem, CertToPem(cert.get()));
  CRM_ASSIGN_OR_RETURN(out.key_pem, KeyToPem(key.get()));
  return out;
}

absl::Status CertificateAuthority::VerifyLeaf(absl::string_view cert_pem, absl::string_view key_pem,
                                              absl::string_view name, absl::Time at) const {
  CRM_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  if (!key_pem.empty()) {
    CRM_ASSIGN_OR_RETURN(PkeyPtr key, ParseKey(key_pem));
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
      ERR_clear_error();
      return absl::FailedPreconditionError("key does not match the certificate");
    }
  }
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), impl_->cert.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return SslError("verification set-up");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(at));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return absl::FailedPreconditionError(
        absl::StrCat("certificate does not verify: ", X509_verify_cert_error_string(err)));
  }
  if (!name.empty()) {
    const std::vector<std::string> uris = UriSansOf(cert.get());
    if (uris.size() != 1 || uris[0] != SpiffeId(name)) {
      return absl::FailedPreconditionError("certificate has another identity");
    }
  }
  return absl::OkStatus();
}

absl::Status WriteCertAndKey(const CertAndKey& pair, const std::string& cert_file,
                             const std::string& key_file) {
  // Key first: a cert without its key is worse than a key without its cert
  // for a file watcher that reloads both.
  CRM_RETURN_IF_ERROR(WriteFileAtomically(key_file, pair.key_pem, 0600));
  return WriteFileAtomically(cert_file, pair.cert_pem, 0644);
}

absl::StatusOr<std::vector<std::string>> UriSans(absl::string_view cert_pem) {
  CRM_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  return UriSansOf(cert.get());
}

absl::StatusOr<absl::Time> NotAfter(absl::string_view cert_pem) {
  CRM_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  return AsnToTime(X509_get0_notAfter(cert.get()));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no such file: ", path));
    return absl::InternalError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat("cannot read ", path));
  return ss.str();
}

absl::StatusOr<InitReport> InitDirectory(const InitOptions& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("dir: required");
  for (const std::string& name : options.names) {
    if (!IsValidName(name) || name == "ca") {
      return absl::InvalidArgumentError(
          absl::StrCat("name '", name, "': must be 1..63 of [a-z0-9-] and not 'ca'"));
    }
  }
  InitReport report;
  const std::string dir = options.dir;
  const auto path = [&dir](absl::string_view stem, absl::string_view ext) {
    return absl::StrCat(dir, "/", stem, ".", ext);
  };
  // Keep the CA only if it loads, is valid now, and outlives the new leaves'
  // window by a margin; otherwise every leaf it signed goes with it.
  bool ca_fresh = options.force;
  absl::StatusOr<CertificateAuthority> ca = absl::NotFoundError("");
  if (!options.force) {
    ca = CertificateAuthority::Load(path("ca", "crt"), path("ca", "key"));
    if (ca.ok() && (ca->not_after() <= options.now ||
                    ca->VerifyLeaf(ca->cert_pem(), "", "", options.now).ok() == false)) {
      ca = absl::FailedPreconditionError("CA expired");
    }
    ca_fresh = !ca.ok();
  }
  if (ca_fresh) {
    ca = CertificateAuthority::Create("crm development CA", options.now - absl::Minutes(5),
                                      options.now + options.validity + absl::Hours(24 * 30),
                                      options.algorithm);
    if (!ca.ok()) return ca.status();
    CRM_RETURN_IF_ERROR(
        WriteCertAndKey({ca->cert_pem(), ca->key_pem()}, path("ca", "crt"), path("ca", "key")));
    report.created.push_back("ca");
  } else {
    report.kept.push_back("ca");
  }
  for (const std::string& name : options.names) {
    if (!ca_fresh) {
      absl::StatusOr<std::string> cert = ReadFile(path(name, "crt"));
      absl::StatusOr<std::string> key = ReadFile(path(name, "key"));
      if (cert.ok() && key.ok() && ca->VerifyLeaf(*cert, *key, name, options.now).ok()) {
        report.kept.push_back(name);
        continue;
      }
    }
    LeafOptions leaf;
    leaf.name = name;
    leaf.not_before = options.now - absl::Minutes(5);
    leaf.not_after = options.now + options.validity;
    leaf.algorithm = options.algorithm;
    CRM_ASSIGN_OR_RETURN(CertAndKey pair, ca->Issue(leaf));
    CRM_RETURN_IF_ERROR(WriteCertAndKey(pair, path(name, "crt"), path(name, "key")));
    report.created.push_back(name);
  }
  return report;
}

}  // namespace crm::pki
