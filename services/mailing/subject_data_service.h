// crm.subject.v1.SubjectData for mailing: what the erasure orchestrator
// plans, exports and erases (DESIGN.md "The subject-data contract"). Only
// the orchestrator's identity ("erasure") may call it.
//
// Categories: "mailing_subscriptions" (lists the subject is or was on, with
// when and from where) and "mailing_sends" (the send log: which campaign,
// when, what became of it; no opens or clicks are tracked). Erase deletes
// both, so nothing queued is sent afterwards; mailing holds no address and
// no data key (data_key_destroyed stays false: there is none). The answer
// is recorded under the request id (migration 0002). Export and erase are
// audited (ids only).
//
// Thread-safe.
#pragma once

#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"

namespace crm::mailing {

class SubjectDataService final : public crm::subject::v1::SubjectData::Service {
 public:
  SubjectDataService(pg::Pool& db, outbox::Writer& audit, const base::Clock& clock)
      : db_(db), audit_(audit), clock_(clock) {}
  using Ctx = grpc::ServerContext;
  grpc::Status DescribeSubjectData(Ctx*, const crm::subject::v1::DescribeSubjectDataRequest*,
                                   crm::subject::v1::DescribeSubjectDataResponse*) override;
  grpc::Status ExportSubjectData(Ctx*, const crm::subject::v1::ExportSubjectDataRequest*,
                                 crm::subject::v1::ExportSubjectDataResponse*) override;
  grpc::Status EraseSubjectData(Ctx*, const crm::subject::v1::EraseSubjectDataRequest*,
                                crm::subject::v1::EraseSubjectDataResponse*) override;

 private:
  pg::Pool& db_;
  outbox::Writer& audit_;
  const base::Clock& clock_;
};

// SubjectData's methods for the "erasure" identity only.
absl::Status AllowMailingSubjectData(rpc::AccessPolicy& policy);

}  // namespace crm::mailing
