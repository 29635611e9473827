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
// A subject who stands objected to direct marketing is not forgotten
// entirely: Erase keeps a keyed hash of each e-mail address the orchestrator
// passes (EraseSubjectDataRequest.email_addresses) on the suppression list,
// reported as retained category "marketing_suppression", and Describe says
// so beforehand. The hashes carry no subject id.
//
// Thread-safe.
#pragma once

#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"
#include "services/consent/check_cache.h"

namespace crm::consent {

class SubjectDataService final : public crm::subject::v1::SubjectData::Service {
 public:
  // `cache` (may be null) is told of every erasure, so that no check answers
  // from what was erased.
  // `suppression` keys the suppression list (ConsentDeps::suppression).
  SubjectDataService(pg::Pool& db, const crypto::KeyRing& ring, outbox::Writer& audit,
                     const base::Clock& clock, CheckCache* cache,
                     const crypto::BlindIndexer& suppression)
      : db_(db),
        ring_(ring),
        audit_(audit),
        clock_(clock),
        cache_(cache),
        suppression_(suppression) {}
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
  CheckCache* cache_;
  const crypto::BlindIndexer& suppression_;
};

// SubjectData's methods for the "erasure" identity only.
absl::Status AllowConsentSubjectData(rpc::AccessPolicy& policy);

}  // namespace crm::consent
