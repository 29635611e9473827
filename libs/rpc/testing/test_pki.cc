#include "libs/rpc/testing/test_pki.h"

#include <stdlib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"

namespace crm::rpc::testing {

absl::StatusOr<TestPki> TestPki::Create(const std::vector<std::string>& names,
                                        pki::KeyAlgorithm algorithm) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "crm_pki.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  const absl::Time now = absl::Now();
  CRM_ASSIGN_OR_RETURN(pki::CertificateAuthority ca,
                       pki::CertificateAuthority::Create("test CA", now - absl::Hours(1),
                                                         now + absl::Hours(48), algorithm));
  CRM_RETURN_IF_ERROR(
      pki::WriteCertAndKey({ca.cert_pem(), ca.key_pem()}, tmpl + "/ca.crt", tmpl + "/ca.key"));
  for (const std::string& name : names) {
    pki::LeafOptions leaf;
    leaf.name = name;
    leaf.not_before = now - absl::Hours(1);
    leaf.not_after = now + absl::Hours(24);
    leaf.algorithm = algorithm;
    CRM_ASSIGN_OR_RETURN(pki::CertAndKey pair, ca.Issue(leaf));
    CRM_RETURN_IF_ERROR(pki::WriteCertAndKey(pair, absl::StrCat(tmpl, "/", name, ".crt"),
                                             absl::StrCat(tmpl, "/", name, ".key")));
  }
  return TestPki(std::move(tmpl), std::move(ca));
}

TestPki::~TestPki() {
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

TlsFiles TestPki::Files(const std::string& name) const {
  TlsFiles f;
  f.cert_file = absl::StrCat(dir_, "/", name, ".crt");
  f.key_file = absl::StrCat(dir_, "/", name, ".key");
  f.ca_file = ca_file();
  return f;
}

absl::StatusOr<TlsFiles> TestPki::IssueForeign(const std::string& name) {
  const absl::Time now = absl::Now();
  if (foreign_ == nullptr) {
    CRM_ASSIGN_OR_RETURN(pki::CertificateAuthority other,
                         pki::CertificateAuthority::Create("foreign CA", now - absl::Hours(1),
                                                           now + absl::Hours(48)));
    foreign_ = std::make_unique<pki::CertificateAuthority>(std::move(other));
  }
  pki::LeafOptions leaf;
  leaf.name = name;
  leaf.not_before = now - absl::Hours(1);
  leaf.not_after = now + absl::Hours(24);
  CRM_ASSIGN_OR_RETURN(pki::CertAndKey pair, foreign_->Issue(leaf));
  TlsFiles f;
  f.cert_file = absl::StrCat(dir_, "/foreign-", name, ".crt");
  f.key_file = absl::StrCat(dir_, "/foreign-", name, ".key");
  f.ca_file = ca_file();
  CRM_RETURN_IF_ERROR(pki::WriteCertAndKey(pair, f.cert_file, f.key_file));
  return f;
}

absl::StatusOr<TlsFiles> TestPki::IssueExpired(const std::string& name) {
  const absl::Time now = absl::Now();
  pki::LeafOptions leaf;
  leaf.name = name;
  leaf.not_before = now - absl::Hours(48);
  leaf.not_after = now - absl::Hours(1);
  CRM_ASSIGN_OR_RETURN(pki::CertAndKey pair, ca_.Issue(leaf));
  TlsFiles f;
  f.cert_file = absl::StrCat(dir_, "/expired-", name, ".crt");
  f.key_file = absl::StrCat(dir_, "/expired-", name, ".key");
  f.ca_file = ca_file();
  CRM_RETURN_IF_ERROR(pki::WriteCertAndKey(pair, f.cert_file, f.key_file));
  return f;
}

}  // namespace crm::rpc::testing
