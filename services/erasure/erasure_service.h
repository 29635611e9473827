// crm.erasure.v1.Erasure: submitting, listing, cancelling and extending
// erasure requests, their certificates, and access requests' exports. The work itself is the
// Orchestrator's (orchestrator.h). Every change is audited.
//
// Thread-safe.
#pragma once

#include <functional>
#include <pqxx/transaction_base>
#include <string>
#include <utility>
#include <vector>

#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "services/erasure/access_export.h"
#include "services/erasure/subject_lookup.h"

namespace crm::erasure {

struct ErasureDeps {
  pg::Pool& db;
  auth::TokenVerifier& verifier;
  outbox::Writer& audit;
  const base::Clock& clock;
  crypto::Ed25519PublicKey certificate_key;
  // The registry's service names: every new request gets a target per name.
  std::vector<std::string> targets;
  // How long a new request may still be cancelled before erasing starts.
  absl::Duration cancel_window = absl::ZeroDuration();
  // Finds subjects by e-mail address (SubmitErasure by address); null: not
  // offered.
  SubjectLookup* lookup = nullptr;
  // Opens access exports' keys (GetAccessExport); null: not served.
  const crypto::KeyRing* ring = nullptr;
  // The export's head (controller, rights); null: none configured.
  std::shared_ptr<const ProcessingRecord> record;
  // Called once a new request is committed (not for a resubmission of an
  // open one), so that a worker can start on it at once instead of at its
  // next round; empty: nothing is called.
  std::function<void()> on_created;
};

// `t` plus `months` calendar months (Art. 12(3) via Regulation 1182/71: the
// same day of the month, or the month's last day when it has no such day).
absl::Time AddMonths(absl::Time t, int months);

class ErasureService final : public v1::Erasure::Service {
 public:
  explicit ErasureService(ErasureDeps deps);
  using Ctx = grpc::ServerContext;
  grpc::Status SubmitErasure(Ctx*, const v1::SubmitErasureRequest*,
                             v1::SubmitErasureResponse*) override;
  grpc::Status GetErasure(Ctx*, const v1::GetErasureRequest*, v1::GetErasureResponse*) override;
  grpc::Status ListErasures(Ctx*, const v1::ListErasuresRequest*,
                            v1::ListErasuresResponse*) override;
  grpc::Status CancelErasure(Ctx*, const v1::CancelErasureRequest*,
                             v1::CancelErasureResponse*) override;
  grpc::Status ExtendErasure(Ctx*, const v1::ExtendErasureRequest*,
                             v1::ExtendErasureResponse*) override;
  grpc::Status GetCertificate(Ctx*, const v1::GetCertificateRequest*,
                              v1::GetCertificateResponse*) override;
  grpc::Status ReapplyErasures(Ctx*, const v1::ReapplyErasuresRequest*,
                               v1::ReapplyErasuresResponse*) override;
  grpc::Status GetVerificationKey(Ctx*, const v1::GetVerificationKeyRequest*,
                                  v1::GetVerificationKeyResponse*) override;
  grpc::Status SubmitAccess(Ctx*, const v1::SubmitAccessRequest*,
                            v1::SubmitErasureResponse*) override;
  grpc::Status GetAccessExport(Ctx*, const v1::GetAccessExportRequest*,
                               grpc::ServerWriter<v1::AccessExportChunk>*) override;

 private:
  // Calls on_created if `resp` holds a new request.
  void Created(const v1::SubmitErasureResponse& resp) const;
  // The subject named by id, or (email non-null) by e-mail address through
  // contacts.
  absl::StatusOr<std::string> Subject(const std::string* subject_id, const std::string* email);
  // A new request for `subject` (received now); the stored one and whether
  // it is new (false: one was open).
  absl::StatusOr<std::pair<v1::ErasureRequest, bool>> Open(pqxx::transaction_base& tx, Ctx& ctx,
                                                           const auth::Principal& caller,
                                                           const std::string& subject,
                                                           v1::RequestKind kind,
                                                           v1::ErasureReason reason);
  ErasureDeps d_;
};

}  // namespace crm::erasure
