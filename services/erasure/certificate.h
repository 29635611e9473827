// Erasure certificates: what the orchestrator signs when a request completes,
// so the data-protection officer (or an auditor, or the subject) can show,
// offline, that and how an erasure was done.
//
// The certificate is canonical JSON (fixed key order, no insignificant
// whitespace, UTF-8), with no personal data: the request id, the reason,
// the times, and per target service the categories and counts erased and
// those retained with their legal basis and purge date. The subject id is
// not in it. The signature is Ed25519 (RFC 8032) over the exact bytes; the
// key id is the first 16 hex digits of SHA-256 of the raw public key.
//
// Verify offline with OpenSSL 3 and the public key (GetVerificationKey):
//   openssl pkeyutl -verify -pubin -inkey erasure.pub.pem -rawin
//       -in certificate.json -sigfile certificate.sig   (one line)
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "crm/erasure/v1/erasure.pb.h"
#include "libs/crypto/ed25519.h"

namespace crm::erasure {

// The certificate of a completed request (state COMPLETED or
// COMPLETED_WITH_RETENTION, targets verified).
std::string CertificateJson(const v1::ErasureRequest& r, absl::string_view key_id);

// The key id of `key`: 16 lower-case hex digits.
std::string KeyId(const crypto::Ed25519PublicKey& key);

}  // namespace crm::erasure
