// An in-process PKI for mutual TLS between our services: a certificate
// authority (ECDSA P-256 by default, Ed25519 optional) and leaf certificates
// whose identity is the URI SAN `spiffe://crm.local/<name>`, plus DNS SAN
// `localhost` and IP SAN 127.0.0.1 so loopback connections verify, with the
// serverAuth and clientAuth extended key usages (every service is both).
//
// Used by the `crm-pki` tool (the development PKI under .run/pki/) and by tests
// that need throwaway PKIs in temp dirs: a second, foreign CA, or an already
// expired certificate, are one call each.
//
// Thread-safety: CertificateAuthority is immutable after creation; its const
// methods may be called from several threads. The free functions are
// thread-safe but InitDirectory must not run concurrently on the same dir.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::pki {

// The SPIFFE trust domain of every identity we issue.
inline constexpr char kTrustDomain[] = "crm.local";

// "identity" -> "spiffe://crm.local/identity".
std::string SpiffeId(absl::string_view name);

// The short name of a SPIFFE id of our trust domain ("identity"), or an empty
// string if `spiffe_id` is not of the form spiffe://crm.local/<name>.
std::string NameFromSpiffeId(absl::string_view spiffe_id);

// True if `name` can be an identity: 1..63 of [a-z0-9-], not starting with '-'.
bool IsValidName(absl::string_view name);

enum class KeyAlgorithm {
  kEcdsaP256,  // The default: works with every TLS stack we use.
  kEd25519,
};

// A certificate and its private key, both PEM (the key as PKCS#8).
struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

struct LeafOptions {
  // The identity: CN and URI SAN spiffe://crm.local/<name>. Required.
  std::string name;
  // Validity window. An already-expired certificate is made by putting
  // not_after in the past. Required: not_before < not_after.
  absl::Time not_before = absl::InfinitePast();
  absl::Time not_after = absl::InfinitePast();
  // DNS SANs besides "localhost" (e.g. the Kubernetes service name).
  std::vector<std::string> extra_dns_names;
  KeyAlgorithm algorithm = KeyAlgorithm::kEcdsaP256;
};

class CertificateAuthority {
 public:
  // Makes a new self-signed CA with a fresh key. INVALID_ARGUMENT if the
  // window is empty or the name is empty; INTERNAL if OpenSSL fails.
  static absl::StatusOr<CertificateAuthority> Create(
      absl::string_view common_name, absl::Time not_before, absl::Time not_after,
      KeyAlgorithm algorithm = KeyAlgorithm::kEcdsaP256);
  // Loads a CA from PEM. INVALID_ARGUMENT if either does not parse, the key
  // does not match the certificate, or the certificate is not a CA.
  static absl::StatusOr<CertificateAuthority> FromPem(absl::string_view cert_pem,
                                                      absl::string_view key_pem);
  // FromPem on the contents of two files; NOT_FOUND if a file is missing.
  static absl::StatusOr<CertificateAuthority> Load(const std::string& cert_file,
                                                   const std::string& key_file);

  CertificateAuthority(CertificateAuthority&&) noexcept;
  CertificateAuthority& operator=(CertificateAuthority&&) noexcept;
  ~CertificateAuthority();

  // Issues a leaf certificate signed by this CA with a fresh key.
  // INVALID_ARGUMENT for a bad name or an empty window; INTERNAL if OpenSSL
  // fails.
  absl::StatusOr<CertAndKey> Issue(const LeafOptions& options) const;

  // OK if `cert_pem` chains to this CA and is valid at `at`; if `name` is not
  // empty, also that its URI SAN is SpiffeId(name) and, if `key_pem` is not
  // empty, that the key matches. Otherwise FAILED_PRECONDITION saying why
  // (expired, foreign, wrong identity), or INVALID_ARGUMENT if unparsable.
  absl::Status VerifyLeaf(absl::string_view cert_pem, absl::string_view key_pem,
                          absl::string_view name, absl::Time at) const;

  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  absl::Time not_after() const { return not_after_; }

 private:
  struct Impl;
  CertificateAuthority(std::unique_ptr<Impl> impl, std::string cert_pem, std::string key_pem,
                       absl::Time not_after);

  std::unique_ptr<Impl> impl_;
  std::string cert_pem_;
  std::string key_pem_;
  absl::Time not_after_;
};

// Writes the certificate (mode 0644) and the key (mode 0600), each through a
// temp file renamed into place, so a watcher never sees half a file. Creates
// missing parent directories. INTERNAL (naming the file) on I/O errors.
absl::Status WriteCertAndKey(const CertAndKey& pair, const std::string& cert_file,
                             const std::string& key_file);

// The URI SANs of a PEM certificate; INVALID_ARGUMENT if it does not parse.
absl::StatusOr<std::vector<std::string>> UriSans(absl::string_view cert_pem);

// The notAfter of a PEM certificate; INVALID_ARGUMENT if it does not parse.
absl::StatusOr<absl::Time> NotAfter(absl::string_view cert_pem);

// Reads a whole file. NOT_FOUND if it does not exist, INTERNAL on other errors.
absl::StatusOr<std::string> ReadFile(const std::string& path);

struct InitOptions {
  // Where ca.crt, ca.key, <name>.crt and <name>.key go. Created if missing.
  std::string dir;
  // Names to issue leaves for (services and clients are issued alike).
  std::vector<std::string> names;
  // Validity of newly issued certificates (the CA gets this plus 30 days).
  absl::Duration validity = absl::Hours(24 * 365);
  // Regenerate everything, even files that are still valid.
  bool force = false;
  KeyAlgorithm algorithm = KeyAlgorithm::kEcdsaP256;
  // "Now" for validity checks and new certificates.
  absl::Time now = absl::Now();
};

struct InitReport {
  std::vector<std::string> created;  // file stems written ("ca", "identity", ...)
  std::vector<std::string> kept;     // file stems that were valid and left alone
};

// Makes DIR/ca.{crt,key} and DIR/<name>.{crt,key} for each name, keeping the
// existing files that are valid (parse, match, chain to the CA, unexpired, the
// right identity) unless `force`. A CA that is missing, invalid or expired is
// regenerated, and then every leaf is reissued. INVALID_ARGUMENT for a bad
// name or an empty dir; INTERNAL on I/O or OpenSSL errors.
absl::StatusOr<InitReport> InitDirectory(const InitOptions& options);

}  // namespace crm::pki
