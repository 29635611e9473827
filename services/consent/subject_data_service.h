// crm.subject.v1.SubjectData for consent: what the erasure orchestrator
// plans, exports and erases (DESIGN.md "The subject-data contract"). Only the
// orchestrator's identity ("erasure") may call it (AllowConsentSubjectData).
//
// Categories: "consent_records" (the ledger: grants, withdrawals, objections
// with their evidence), "consent_standing" (where the subject stands per
// purpose) and "restriction". Erase deletes them and the subject's wrapped
// data key (the evidence in backups becomes unreadable); the answer is
// recorded under the request id so a retry gets the same one. Export and
// erase are audited (ids only in the events).
//
// Not yet: the suppression entry that would keep an erased objector from
// being mailed after a re-import needs a keyed hash of the e-mail address,
// which consent is never given today (docs/consent.md).
//
// Thread-safe.
#pragma once

#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"

namespace crm::consent {

class SubjectDataService final : public crm::subject::v1::SubjectData::Service {
 public:
  SubjectDataService(pg::Pool& db, const crypto::KeyRing& ring, outbox::Writer& audit,
                     const base::Clock& clock)
      : db_(db), ring_(ring), audit_(audit), clock_(clock) {}
  using Ctx = grpc::ServerContext;
  grpc::Status DescribeSubjectData(Ctx*, const crm::subject::v1::DescribeSubjectDataRequest*,
                                   crm::subject::v1::DescribeSubjectDataResponse*) override;
  grpc::Status ExportSubjectData(Ctx*, const crm::subject::v1::ExportSubjectDataRequest*,
                                 crm::subject::v1::ExportSubjectDataResponse*) override;
  grpc::Status EraseSubjectData(Ctx*, const crm::subject::v1::EraseSubjectDataRequest*,
                                crm::subject::v1::EraseSubjectDataResponse*) override;

 private:
  pg::Pool& db_;
  const crypto::KeyRing& ring_;
  outbox::Writer& audit_;
  const base::Clock& clock_;
};

// SubjectData's methods for the "erasure" identity only.
absl::Status AllowConsentSubjectData(rpc::AccessPolicy& policy);

}  // namespace crm::consent
