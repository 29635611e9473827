// Test helpers for DKIM: an RSA key to sign with, and the independent
// verifier, dkimpy (Debian's python3-dkim) run through
// libs/dkim/testdata/verify.py. For libs/dkim's tests and the mailing
// service's (mail that goes out must verify).
//
// The first python3 on PATH that imports dkim is used (a pyenv or virtualenv
// python3 earlier on PATH does not see Debian's python3-dkim); without one,
// FAILED_PRECONDITION saying to run tools/dev deps. Needs
// $CRMTEST_SOURCE_DIR (ctest sets it).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace crm::dkim::testing {

// A fresh RSA key of `bits` as PKCS#8 PEM (or PKCS#1, "BEGIN RSA PRIVATE
// KEY", when `traditional`).
std::string NewRsaKeyPem(int bits, bool traditional = false);

// Verifies every message (name -> message) against `txt_record` published
// at `record_name` only. Returns name -> "valid" or "invalid: <reason>".
absl::StatusOr<std::map<std::string, std::string>> VerifyWithDkimpy(
    const std::string& record_name, const std::string& txt_record,
    const std::map<std::string, std::string>& messages);

}  // namespace crm::dkim::testing
