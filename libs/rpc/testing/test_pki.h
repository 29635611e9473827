// Throwaway PKIs for tests and benchmarks: a CA and leaves in a fresh temp
// dir, plus what negative tests need (a foreign CA's leaf, an expired leaf).
// Not thread-safe; use from one thread (test set-up).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/pki/pki.h"
#include "libs/rpc/tls_files.h"

namespace crm::rpc::testing {

class TestPki {
 public:
  // A new temp dir with ca.crt/ca.key and <name>.crt/<name>.key for `names`,
  // valid from an hour ago for a day. INTERNAL if the dir or files cannot be
  // made.
  static absl::StatusOr<TestPki> Create(
      const std::vector<std::string>& names,
      pki::KeyAlgorithm algorithm = pki::KeyAlgorithm::kEcdsaP256);

  TestPki(TestPki&&) = default;
  TestPki& operator=(TestPki&&) = default;
  // Removes the temp dir.
  ~TestPki();

  const std::string& dir() const { return dir_; }
  std::string ca_file() const { return dir_ + "/ca.crt"; }
  // The files of `name`, trusting our CA.
  TlsFiles Files(const std::string& name) const;

  // Issues `name` under a second, foreign CA (made on first use); the files
  // trust OUR CA (so the client can verify our server) but present a foreign
  // certificate.
  absl::StatusOr<TlsFiles> IssueForeign(const std::string& name);
  // Issues `name` under our CA, expired an hour ago.
  absl::StatusOr<TlsFiles> IssueExpired(const std::string& name);
  // Issues a leaf under our CA as `options` say, without writing it (tests of
  // rotation write it where they need it, with pki::WriteCertAndKey).
  absl::StatusOr<pki::CertAndKey> Issue(const pki::LeafOptions& options) const {
    return ca_.Issue(options);
  }

 private:
  TestPki(std::string dir, pki::CertificateAuthority ca)
      : dir_(std::move(dir)), ca_(std::move(ca)) {}
  std::string dir_;
  pki::CertificateAuthority ca_;
  std::unique_ptr<pki::CertificateAuthority> foreign_;
};

}  // namespace crm::rpc::testing
