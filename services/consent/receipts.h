// Consent receipts: for every recorded grant, a receipt in the shape of the
// Kantara Initiative Consent Receipt Specification v1.1, signed by the
// service as a compact JWS (RFC 7515) with EdDSA (Ed25519, RFC 8037):
//
//   header  {"alg":"EdDSA","typ":"JWT","kid":"<key id>"}
//   payload {"version":"KI-CR-v1.1.0","jurisdiction":..,"consentTimestamp":<unix s>,
//            "collectionMethod":..,"consentReceiptID":<entry hash>,"language":..,
//            "piiPrincipalId":<subject id>,"piiControllers":[{"piiController":..,
//            "contact":..,"email":..}],"policyUrl":..,"services":[{"service":<purpose id>,
//            "purposes":[{"purpose":<description>,"purposeCategory":[<purpose id>],
//            "consentType":"EXPLICIT","piiCategory":[..],"primaryPurpose":true,
//            "termination":<until when>,"thirdPartyDisclosure":false}]}],
//            "sensitive":false,"spiCat":[],
//            "noticeVersion":..,"ledgerSequence":..}        (the last two: ours)
//
// The signing key is created at first start and kept in receipt_keys, its
// seed wrapped by the KEK ring with the key id as associated data;
// GetReceiptKeys publishes the public keys (JWK) for verifiers. A receipt
// names the subject by its pseudonymous id only.
//
// Thread-safe after LoadOrCreate.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "crm/consent/v1/consent.pb.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/pg/pool.h"

namespace crm::consent {

// Who issues receipts (settings receipt_controller, receipt_contact,
// receipt_policy_url, receipt_jurisdiction).
struct ReceiptIssuer {
  std::string controller = "The data controller";
  std::string contact;     // an e-mail address of the controller's privacy office
  std::string policy_url;  // the privacy notice
  std::string jurisdiction = "EU";
};

class ReceiptSigner {
 public:
  static absl::StatusOr<std::unique_ptr<ReceiptSigner>> LoadOrCreate(pg::Pool& db,
                                                                     const crypto::KeyRing& ring,
                                                                     ReceiptIssuer issuer);

  // The receipt of `grant` (linked, with its hash) for `purpose`.
  absl::StatusOr<std::string> Sign(const v1::LedgerEntry& grant, const v1::Purpose& purpose) const;

  const std::string& kid() const { return kid_; }
  const crypto::Ed25519PublicKey public_key() const { return key_.PublicKey(); }

 private:
  ReceiptSigner(crypto::Ed25519PrivateKey key, std::string kid, ReceiptIssuer issuer)
      : key_(std::move(key)), kid_(std::move(kid)), issuer_(std::move(issuer)) {}
  crypto::Ed25519PrivateKey key_;
  std::string kid_;
  ReceiptIssuer issuer_;
};

// The receipt's payload as JSON (exposed for tests).
std::string ReceiptPayload(const v1::LedgerEntry& grant, const v1::Purpose& purpose,
                           const ReceiptIssuer& issuer);

}  // namespace crm::consent
