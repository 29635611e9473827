// crm.subject.v1.SubjectData for contacts: what the erasure orchestrator
// plans, exports and erases (DESIGN.md "The subject-data contract"). Only the
// orchestrator's identity ("erasure") may call it (AllowSubjectDataMethods).
//
// Categories: "person" (the record), "email_addresses", "phone_numbers",
// "contact_history", and "invoices" (legally retained). Erase deletes the
// person with its owners, look-up keys and history and deletes the subject's
// wrapped data key (crypto-shredding: copies of the ciphertext in backups
// become unreadable); invoice records stay, restricted, under their own key
// until their retention date (reported as retained with the purge date); the
// answer is recorded under the request id so a retry gets the same one. Export and erase are
// audited (no personal data in the events).
//
// Thread-safe.
#pragma once

#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"
#include "services/contacts/person_sealer.h"

namespace crm::contacts {

class SubjectDataService final : public crm::subject::v1::SubjectData::Service {
 public:
  SubjectDataService(pg::Pool& db, const PersonSealer& sealer, outbox::Writer& audit,
                     const base::Clock& clock)
      : db_(db), sealer_(sealer), audit_(audit), clock_(clock) {}
  using Ctx = grpc::ServerContext;
  grpc::Status DescribeSubjectData(Ctx*, const crm::subject::v1::DescribeSubjectDataRequest*,
                                   crm::subject::v1::DescribeSubjectDataResponse*) override;
  grpc::Status ExportSubjectData(Ctx*, const crm::subject::v1::ExportSubjectDataRequest*,
                                 crm::subject::v1::ExportSubjectDataResponse*) override;
  grpc::Status EraseSubjectData(Ctx*, const crm::subject::v1::EraseSubjectDataRequest*,
                                crm::subject::v1::EraseSubjectDataResponse*) override;

 private:
  pg::Pool& db_;
  const PersonSealer& sealer_;
  outbox::Writer& audit_;
  const base::Clock& clock_;
};

// SubjectData's methods for the "erasure" identity only.
void AllowSubjectDataMethods(rpc::AccessPolicy& policy);

}  // namespace crm::contacts
