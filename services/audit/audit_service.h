// crm-audit's gRPC handlers:
//  - crm.audit.v1.AuditIngest/AppendEvents: service identities only (the
//    access policy names them); batched, idempotent by event id;
//  - crm.audit.v1.Audit: queries and reports (access token with audit.read),
//    checkpoints, proofs and checkpoint keys (any peer of our CA), and
//    VerifyLog (audit.read);
//  - crm.subject.v1.SubjectData: the erasure orchestrator's describe, export
//    and erase of one subject's events.
// Reads of personal data are themselves logged (actions audit.read.*).
//
// Thread-safe.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "crm/audit/v1/audit.grpc.pb.h"
#include "crm/audit/v1/ingest.grpc.pb.h"
#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/rpc/access_policy.h"
#include "services/audit/audit_log.h"

namespace crm::audit {

// The service identities allowed to append events.
inline constexpr const char* kEventSources[] = {"identity", "contacts", "consent",
                                                "mailing",  "erasure",  "gateway"};
inline constexpr int kMaxBatch = 1000;

struct AuditDeps {
  AuditLog& log;
  Checkpointer& checkpointer;
  auth::TokenVerifier& verifier;
  const base::Clock& clock;
};

class IngestService final : public crm::audit::v1::AuditIngest::Service {
 public:
  explicit IngestService(AuditDeps d) : d_(d) {}
  grpc::Status AppendEvents(grpc::ServerContext* ctx,
                            const crm::audit::v1::AppendEventsRequest* req,
                            crm::audit::v1::AppendEventsResponse* resp) override;

 private:
  AuditDeps d_;
};

class QueryService final : public crm::audit::v1::Audit::Service {
 public:
  explicit QueryService(AuditDeps d) : d_(d) {}
  using Ctx = grpc::ServerContext;
  grpc::Status QueryEvents(Ctx*, const v1::QueryEventsRequest*, v1::QueryEventsResponse*) override;
  grpc::Status LoginReport(Ctx*, const v1::LoginReportRequest*, v1::LoginReportResponse*) override;
  grpc::Status EditReport(Ctx*, const v1::EditReportRequest*, v1::EditReportResponse*) override;
  grpc::Status SubjectReport(Ctx*, const v1::SubjectReportRequest*,
                             v1::SubjectReportResponse*) override;
  grpc::Status GetCheckpoint(Ctx*, const v1::GetCheckpointRequest*,
                             v1::GetCheckpointResponse*) override;
  grpc::Status GetInclusionProof(Ctx*, const v1::GetInclusionProofRequest*,
                                 v1::GetInclusionProofResponse*) override;
  grpc::Status GetConsistencyProof(Ctx*, const v1::GetConsistencyProofRequest*,
                                   v1::GetConsistencyProofResponse*) override;
  grpc::Status GetCheckpointKeys(Ctx*, const v1::GetCheckpointKeysRequest*,
                                 v1::GetCheckpointKeysResponse*) override;
  grpc::Status VerifyLog(Ctx*, const v1::VerifyLogRequest*, v1::VerifyLogResponse*) override;

 private:
  AuditDeps d_;
};

class SubjectDataService final : public crm::subject::v1::SubjectData::Service {
 public:
  explicit SubjectDataService(AuditDeps d) : d_(d) {}
  using Ctx = grpc::ServerContext;
  grpc::Status DescribeSubjectData(Ctx*, const crm::subject::v1::DescribeSubjectDataRequest*,
                                   crm::subject::v1::DescribeSubjectDataResponse*) override;
  grpc::Status ExportSubjectData(Ctx*, const crm::subject::v1::ExportSubjectDataRequest*,
                                 crm::subject::v1::ExportSubjectDataResponse*) override;
  grpc::Status EraseSubjectData(Ctx*, const crm::subject::v1::EraseSubjectDataRequest*,
                                crm::subject::v1::EraseSubjectDataResponse*) override;

 private:
  AuditDeps d_;
};

// crm-audit's access policy, for main.cc and the tests alike:
// AppendEvents for kEventSources; the Audit methods for any peer of our CA
// (the handlers authorize by access token, proofs and checkpoints are
// public); SubjectData for "erasure" only.
void AllowAuditMethods(rpc::AccessPolicy& policy);

// RFC 4180 CSV of entries (header row first). A field starting with = + - @
// or a tab/CR gets a leading apostrophe, so no spreadsheet runs it as a
// formula.
std::string EntriesToCsv(absl::Span<const crm::audit::v1::LogEntry> entries);

}  // namespace crm::audit
