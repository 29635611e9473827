#include "services/audit/audit_service.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/log/log.h"
#include "libs/rpc/call_auth.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"
#include "services/audit/merkle.h"

namespace crm::audit {

namespace {

using crm::audit::v1::Event;
using crm::audit::v1::LogEntry;
using rpc::Handle;
using rpc::SetTime;

constexpr int kDefaultPage = 100;
constexpr int kMaxPage = 1000;
// Reports read at most this many entries (a subject, a login summary).
constexpr int kReportCap = 100'000;

absl::StatusOr<std::shared_ptr<const auth::Principal>> Reader(grpc::ServerContext* ctx,
                                                              auth::TokenVerifier& verifier) {
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<const auth::Principal> p,
                       rpc::AuthenticateCall(*ctx, verifier));
  if (!p->Has("audit.read")) return absl::PermissionDeniedError("requires permission audit.read");
  return p;
}

absl::StatusOr<int> PageSize(int requested) {
  if (requested < 0) return absl::InvalidArgumentError("page.page_size: must not be negative");
  if (requested == 0) return kDefaultPage;
  return std::min(requested, kMaxPage);
}

absl::Status OptionalUuid(absl::string_view field, absl::string_view value) {
  if (value.empty() || base::IsUuid(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be a UUID"));
}

absl::Status ApplyRange(const crm::common::v1::TimeRange& range, EntryFilter& f) {
  if (range.has_start()) {
    CRM_ASSIGN_OR_RETURN(f.start, rpc::GetTime("range.start", range.start()));
  }
  if (range.has_end()) {
    CRM_ASSIGN_OR_RETURN(f.end, rpc::GetTime("range.end", range.end()));
  }
  if (f.start.has_value() && f.end.has_value() && *f.end < *f.start) {
    return absl::InvalidArgumentError("range.end: before range.start");
  }
  return absl::OkStatus();
}

// A fingerprint of a filter for page tokens.
std::string FilterKey(const EntryFilter& f) {
  return absl::StrCat(f.actor_user_id, "/", f.actor_service, "/", f.subject_id, "/", f.action, "/",
                      f.action_prefix, "/", absl::StrJoin(f.actions, ","), "/", f.resource, "/",
                      f.start ? absl::ToUnixMicros(*f.start) : 0, "/",
                      f.end ? absl::ToUnixMicros(*f.end) : 0, "/", f.only_changes, "/", f.service);
}

// One page of opened entries matching `f`, after the token's position.
absl::Status Page(AuditLog& log, const EntryFilter& f, const crm::common::v1::PageRequest& page,
                  std::vector<LogEntry>* out, std::string* next_token) {
  CRM_ASSIGN_OR_RETURN(int size, PageSize(page.page_size()));
  const std::string key = FilterKey(f);
  CRM_ASSIGN_OR_RETURN(int64_t after, rpc::DecodePageToken(page.page_token(), key, -1));
  CRM_ASSIGN_OR_RETURN(std::vector<StoredEntry> entries, log.store().Query(f, after, size));
  for (const StoredEntry& e : entries) {
    CRM_ASSIGN_OR_RETURN(LogEntry opened, log.Open(e));
    out->push_back(std::move(opened));
  }
  if (entries.size() == static_cast<size_t>(size)) {
    *next_token = rpc::EncodePageToken(entries.back().index, key);
  }
  return absl::OkStatus();
}

// Every opened entry matching `f`, at most kReportCap.
absl::StatusOr<std::vector<LogEntry>> All(AuditLog& log, const EntryFilter& f) {
  std::vector<LogEntry> out;
  int64_t after = -1;
  while (out.size() < static_cast<size_t>(kReportCap)) {
    CRM_ASSIGN_OR_RETURN(std::vector<StoredEntry> entries, log.store().Query(f, after, kMaxPage));
    for (const StoredEntry& e : entries) {
      CRM_ASSIGN_OR_RETURN(LogEntry opened, log.Open(e));
      out.push_back(std::move(opened));
    }
    if (entries.size() < static_cast<size_t>(kMaxPage)) break;
    after = entries.back().index;
  }
  return out;
}

constexpr char kUserResourcePrefix[] = "user/";

// The user a login event of identity is about: the acting user, else the
// one its resource names; empty for unknown usernames.
std::string LoginUserOf(const Event& e) {
  if (!e.actor().user_id().empty()) return e.actor().user_id();
  if (!absl::StartsWith(e.resource(), kUserResourcePrefix)) return "";
  const std::string user = e.resource().substr(std::strlen(kUserResourcePrefix));
  return base::IsUuid(user) ? user : "";
}

std::string DetailValue(const Event& e, absl::string_view key) {
  for (const auto& d : e.details()) {
    if (d.key() == key) return d.value();
  }
  return "";
}

// Reads of the log are logged too: who (`reader`, or only the calling
// service when null) read what about whom.
void LogRead(AuditLog& log, grpc::ServerContext* ctx, const auth::Principal* reader,
             absl::string_view action, absl::string_view subject_id, const base::Clock& clock) {
  Event e;
  e.set_event_id(base::NewUuid());
  SetTime(clock.Now(), e.mutable_time());
  e.set_service("audit");
  if (reader != nullptr) {
    e.mutable_actor()->set_user_id(reader->user_id);
    e.mutable_actor()->set_session_id(reader->session_id);
  }
  e.mutable_actor()->set_service_identity(rpc::PeerIdentity(*ctx));
  e.set_action(std::string(action));
  e.set_subject_id(std::string(subject_id));
  e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
  e.set_request_id(rpc::RequestId(*ctx));
  const Event* one[] = {&e};
  absl::StatusOr<AppendResult> r = log.Ingest(one);
  if (!r.ok()) log::Error("audit.self_log_failed", {{"status", r.status()}});
}

// A CSV field. Values that a spreadsheet would take for a formula (a user
// agent "=HYPERLINK(...)") get a leading apostrophe (OWASP CSV injection).
std::string CsvField(absl::string_view value) {
  std::string guarded;
  if (!value.empty() && absl::string_view("=+-@\t\r").find(value[0]) != absl::string_view::npos) {
    guarded = absl::StrCat("'", value);
    value = guarded;
  }
  if (value.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

// ---- Ingest -----------------------------------------------------------------------

grpc::Status IngestService::AppendEvents(grpc::ServerContext* ctx,
                                         const crm::audit::v1::AppendEventsRequest* req,
                                         crm::audit::v1::AppendEventsResponse* resp) {
  return Handle([&]() -> absl::Status {
    if (req->events_size() > kMaxBatch) {
      return absl::InvalidArgumentError(absl::StrCat("events: at most ", kMaxBatch));
    }
    // A service may only speak for itself.
    const std::string caller = rpc::PeerName(*ctx);
    for (int i = 0; i < req->events_size(); ++i) {
      if (req->events(i).service() != caller) {
        return absl::PermissionDeniedError(
            absl::StrCat("events[", i, "].service: must be the calling service"));
      }
    }
    std::vector<const Event*> events(req->events().pointer_begin(), req->events().pointer_end());
    CRM_ASSIGN_OR_RETURN(AppendResult r, d_.log.Ingest(events));
    resp->set_appended(r.appended);
    resp->set_duplicates(r.duplicates);
    if (absl::StatusOr<std::optional<Checkpoint>> c = d_.checkpointer.MaybeCheckpoint(); !c.ok()) {
      log::Warn("audit.checkpoint_failed", {{"status", c.status()}});
    }
    return absl::OkStatus();
  });
}

// ---- Queries and reports ------------------------------------------------------------

grpc::Status QueryService::QueryEvents(Ctx* ctx, const v1::QueryEventsRequest* req,
                                       v1::QueryEventsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto reader, Reader(ctx, d_.verifier));
    CRM_RETURN_IF_ERROR(OptionalUuid("subject_id", req->subject_id()));
    EntryFilter f;
    f.actor_user_id = req->actor_user_id();
    f.actor_service = req->actor_service();
    if (!f.actor_service.empty() && !absl::StartsWith(f.actor_service, "spiffe://")) {
      f.actor_service = absl::StrCat("spiffe://crm.local/", f.actor_service);
    }
    f.subject_id = absl::AsciiStrToLower(req->subject_id());
    if (absl::EndsWith(req->action(), "*")) {
      f.action_prefix = req->action().substr(0, req->action().size() - 1);
    } else if (absl::EndsWith(req->action(), ".")) {
      f.action_prefix = req->action();
    } else {
      f.action = req->action();
    }
    f.resource = req->resource();
    CRM_RETURN_IF_ERROR(ApplyRange(req->range(), f));
    std::vector<LogEntry> entries;
    std::string next;
    CRM_RETURN_IF_ERROR(Page(d_.log, f, req->page(), &entries, &next));
    for (LogEntry& e : entries) *resp->add_entries() = std::move(e);
    resp->mutable_page()->set_next_page_token(next);
    LogRead(d_.log, ctx, reader.get(), "audit.read.query", f.subject_id, d_.clock);
    return absl::OkStatus();
  });
}

grpc::Status QueryService::LoginReport(Ctx* ctx, const v1::LoginReportRequest* req,
                                       v1::LoginReportResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto reader, Reader(ctx, d_.verifier));
    CRM_RETURN_IF_ERROR(OptionalUuid("user_id", req->user_id()));
    // Identity's events name the user in the resource ("user/<id>"; a
    // lockout has no acting user, an unknown username "user/unknown"), and
    // only identity's own events count.
    EntryFilter f;
    f.service = "identity";
    if (!req->user_id().empty()) {
      f.resource = absl::StrCat(kUserResourcePrefix, absl::AsciiStrToLower(req->user_id()));
    }
    f.actions = {"identity.login.success", "identity.login.failure", "identity.user.locked"};
    CRM_RETURN_IF_ERROR(ApplyRange(req->range(), f));
    auto row_of = [](const LogEntry& entry, v1::LoginReportRow* row) {
      const Event& e = entry.event();
      *row->mutable_time() = e.time();
      row->set_user_id(LoginUserOf(e));
      row->set_result(e.action() == "identity.user.locked" ? "lockout" : DetailValue(e, "result"));
      row->set_source_address(e.source_address());
      row->set_user_agent(e.user_agent());
      row->set_index(entry.index());
    };
    std::vector<LogEntry> entries;
    std::string next;
    CRM_RETURN_IF_ERROR(Page(d_.log, f, req->page(), &entries, &next));
    for (const LogEntry& e : entries) row_of(e, resp->add_rows());
    resp->mutable_page()->set_next_page_token(next);
    if (req->page().page_token().empty()) {
      CRM_ASSIGN_OR_RETURN(std::vector<LogEntry> all, All(d_.log, f));
      std::map<std::string, v1::LoginUserSummary> by_user;
      for (const LogEntry& entry : all) {
        const Event& e = entry.event();
        const std::string user = LoginUserOf(e);
        v1::LoginUserSummary& s = by_user[user];
        s.set_user_id(user);
        if (e.action() == "identity.user.locked") {
          s.set_lockouts(s.lockouts() + 1);
        } else if (e.action() == "identity.login.success") {
          s.set_successes(s.successes() + 1);
          *s.mutable_last_success() = e.time();
        } else {
          s.set_failures(s.failures() + 1);
        }
      }
      for (auto& [user, s] : by_user) *resp->add_summary() = std::move(s);
    }
    LogRead(d_.log, ctx, reader.get(), "audit.read.login_report", "", d_.clock);
    return absl::OkStatus();
  });
}

grpc::Status QueryService::EditReport(Ctx* ctx, const v1::EditReportRequest* req,
                                      v1::EditReportResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto reader, Reader(ctx, d_.verifier));
    if (req->actor_user_id().empty()) return absl::InvalidArgumentError("actor_user_id: required");
    CRM_RETURN_IF_ERROR(OptionalUuid("actor_user_id", req->actor_user_id()));
    EntryFilter f;
    f.actor_user_id = absl::AsciiStrToLower(req->actor_user_id());
    f.only_changes = true;
    CRM_RETURN_IF_ERROR(ApplyRange(req->range(), f));
    std::vector<LogEntry> entries;
    std::string next;
    CRM_RETURN_IF_ERROR(Page(d_.log, f, req->page(), &entries, &next));
    for (const LogEntry& entry : entries) {
      const Event& e = entry.event();
      v1::EditReportRow* row = resp->add_rows();
      *row->mutable_time() = e.time();
      row->set_action(e.action());
      row->set_resource(e.resource());
      row->set_subject_id(e.subject_id());
      *row->mutable_changes() = e.changes();
      row->set_request_id(e.request_id());
      row->set_index(entry.index());
      row->set_redacted(entry.redacted());
    }
    resp->mutable_page()->set_next_page_token(next);
    LogRead(d_.log, ctx, reader.get(), "audit.read.edit_report", "", d_.clock);
    return absl::OkStatus();
  });
}

grpc::Status QueryService::SubjectReport(Ctx* ctx, const v1::SubjectReportRequest* req,
                                         v1::SubjectReportResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto reader, Reader(ctx, d_.verifier));
    if (req->subject_id().empty()) return absl::InvalidArgumentError("subject_id: required");
    CRM_RETURN_IF_ERROR(OptionalUuid("subject_id", req->subject_id()));
    if (!v1::ReportFormat_IsValid(req->format())) {
      return absl::InvalidArgumentError("format: unknown value");
    }
    EntryFilter f;
    f.subject_id = absl::AsciiStrToLower(req->subject_id());
    CRM_RETURN_IF_ERROR(ApplyRange(req->range(), f));
    CRM_ASSIGN_OR_RETURN(std::vector<LogEntry> all, All(d_.log, f));
    resp->set_subject_id(f.subject_id);
    SetTime(d_.clock.Now(), resp->mutable_generated_at());
    if (req->format() == v1::REPORT_FORMAT_CSV) resp->set_csv(EntriesToCsv(all));
    for (LogEntry& e : all) *resp->add_entries() = std::move(e);
    LogRead(d_.log, ctx, reader.get(), "audit.read.subject_report", f.subject_id, d_.clock);
    return absl::OkStatus();
  });
}

// ---- Checkpoints and proofs --------------------------------------------------------

namespace {

void CheckpointToProto(const Checkpoint& c, v1::SignedCheckpoint* out) {
  out->set_tree_size(static_cast<int64_t>(c.tree_size));
  out->set_root_hash(c.root_hash);
  SetTime(c.signed_at, out->mutable_time());
  out->set_key_id(c.key_id);
  out->set_signature(c.signature);
}

absl::Status CheckpointedSize(LogStore& store, absl::string_view field, int64_t size) {
  if (size <= 0) return absl::InvalidArgumentError(absl::StrCat(field, ": must be positive"));
  absl::StatusOr<Checkpoint> c = store.CheckpointAt(static_cast<uint64_t>(size));
  if (absl::IsNotFound(c.status())) {
    return absl::NotFoundError(absl::StrCat(field, ": no checkpoint of that size"));
  }
  return c.status();
}

}  // namespace

grpc::Status QueryService::GetCheckpoint(Ctx*, const v1::GetCheckpointRequest* req,
                                         v1::GetCheckpointResponse* resp) {
  return Handle([&]() -> absl::Status {
    if (req->tree_size() < 0) return absl::InvalidArgumentError("tree_size: must not be negative");
    if (req->tree_size() == 0) {
      CRM_ASSIGN_OR_RETURN(std::optional<Checkpoint> c, d_.log.store().LatestCheckpoint());
      if (!c.has_value()) return absl::NotFoundError("no checkpoint yet");
      CheckpointToProto(*c, resp->mutable_checkpoint());
      return absl::OkStatus();
    }
    absl::StatusOr<Checkpoint> c =
        d_.log.store().CheckpointAt(static_cast<uint64_t>(req->tree_size()));
    if (absl::IsNotFound(c.status())) {
      return absl::NotFoundError("tree_size: no checkpoint of that size");
    }
    CRM_RETURN_IF_ERROR(c.status());
    CheckpointToProto(*c, resp->mutable_checkpoint());
    return absl::OkStatus();
  });
}

grpc::Status QueryService::GetInclusionProof(Ctx*, const v1::GetInclusionProofRequest* req,
                                             v1::GetInclusionProofResponse* resp) {
  return Handle([&]() -> absl::Status {
    if (req->index() < 0) return absl::InvalidArgumentError("index: must not be negative");
    CRM_RETURN_IF_ERROR(CheckpointedSize(d_.log.store(), "tree_size", req->tree_size()));
    if (req->index() >= req->tree_size()) {
      return absl::InvalidArgumentError("index: must be below tree_size");
    }
    const auto index = static_cast<uint64_t>(req->index());
    const auto size = static_cast<uint64_t>(req->tree_size());
    CRM_ASSIGN_OR_RETURN(std::vector<merkle::NodeId> ids, merkle::InclusionProofNodes(index, size));
    ids.push_back({0, index});
    CRM_ASSIGN_OR_RETURN(merkle::NodeMap nodes, d_.log.store().FetchNodes(ids));
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> path, merkle::InclusionProof(index, size, nodes));
    resp->set_leaf_hash(nodes[{0, index}]);
    for (std::string& h : path) resp->add_audit_path(std::move(h));
    return absl::OkStatus();
  });
}

grpc::Status QueryService::GetConsistencyProof(Ctx*, const v1::GetConsistencyProofRequest* req,
                                               v1::GetConsistencyProofResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(
        CheckpointedSize(d_.log.store(), "first_tree_size", req->first_tree_size()));
    CRM_RETURN_IF_ERROR(
        CheckpointedSize(d_.log.store(), "second_tree_size", req->second_tree_size()));
    if (req->first_tree_size() > req->second_tree_size()) {
      return absl::InvalidArgumentError("first_tree_size: must not exceed second_tree_size");
    }
    const auto m = static_cast<uint64_t>(req->first_tree_size());
    const auto n = static_cast<uint64_t>(req->second_tree_size());
    CRM_ASSIGN_OR_RETURN(std::vector<merkle::NodeId> ids, merkle::ConsistencyProofNodes(m, n));
    CRM_ASSIGN_OR_RETURN(merkle::NodeMap nodes, d_.log.store().FetchNodes(ids));
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> proof, merkle::ConsistencyProof(m, n, nodes));
    for (std::string& h : proof) resp->add_proof(std::move(h));
    return absl::OkStatus();
  });
}

grpc::Status QueryService::GetCheckpointKeys(Ctx*, const v1::GetCheckpointKeysRequest*,
                                             v1::GetCheckpointKeysResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::vector<CheckpointKeyRow> keys, d_.log.store().CheckpointKeys());
    for (const CheckpointKeyRow& k : keys) {
      v1::CheckpointKey* out = resp->add_keys();
      out->set_key_id(k.key_id);
      out->set_public_key(k.public_key);
      SetTime(k.created_at, out->mutable_created_at());
    }
    return absl::OkStatus();
  });
}

grpc::Status QueryService::VerifyLog(Ctx* ctx, const v1::VerifyLogRequest*,
                                     v1::VerifyLogResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto reader, Reader(ctx, d_.verifier));
    CRM_ASSIGN_OR_RETURN(VerifyReport r, crm::audit::VerifyLog(d_.log.store()));
    resp->set_ok(r.ok);
    resp->set_entries_checked(r.entries_checked);
    resp->set_checkpoints_checked(r.checkpoints_checked);
    resp->set_first_bad_index(r.first_bad_index);
    resp->set_problem(r.problem);
    return absl::OkStatus();
  });
}

// ---- Subject data ------------------------------------------------------------------

namespace {

constexpr char kCategory[] = "audit_events";

absl::StatusOr<std::string> SubjectOf(const std::string& subject_id) {
  if (!base::IsUuid(subject_id)) return absl::InvalidArgumentError("subject_id: must be a UUID");
  return absl::AsciiStrToLower(subject_id);
}

}  // namespace

grpc::Status SubjectDataService::DescribeSubjectData(
    Ctx*, const crm::subject::v1::DescribeSubjectDataRequest* req,
    crm::subject::v1::DescribeSubjectDataResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::string subject, SubjectOf(req->subject_id()));
    resp->set_service("audit");
    CRM_ASSIGN_OR_RETURN(int64_t count, d_.log.store().Count({.subject_id = subject}));
    if (count > 0) {
      crm::subject::v1::DataCategory* c = resp->add_categories();
      c->set_category(kCategory);
      c->set_record_count(count);
      c->set_legally_retained(true);
      c->set_retention_basis(
          "accountability (GDPR Art. 5(2)): kept as pseudonymous records; erasure destroys the "
          "subject's key, so personal details become unreadable");
    }
    return absl::OkStatus();
  });
}

grpc::Status SubjectDataService::ExportSubjectData(
    Ctx* ctx, const crm::subject::v1::ExportSubjectDataRequest* req,
    crm::subject::v1::ExportSubjectDataResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::string subject, SubjectOf(req->subject_id()));
    resp->set_service("audit");
    CRM_ASSIGN_OR_RETURN(std::vector<LogEntry> all, All(d_.log, {.subject_id = subject}));
    LogRead(d_.log, ctx, nullptr, "audit.read.export", subject, d_.clock);
    for (const LogEntry& e : all) {
      crm::subject::v1::ExportedRecord* r = resp->add_records();
      r->set_category(kCategory);
      CRM_RETURN_IF_ERROR(rpc::ToStruct(e, r->mutable_data()));
    }
    return absl::OkStatus();
  });
}

grpc::Status SubjectDataService::EraseSubjectData(
    Ctx*, const crm::subject::v1::EraseSubjectDataRequest* req,
    crm::subject::v1::EraseSubjectDataResponse* resp) {
  return Handle([&]() -> absl::Status {
    if (!base::IsUuid(req->request_id())) {
      return absl::InvalidArgumentError("request_id: must be a UUID");
    }
    CRM_ASSIGN_OR_RETURN(std::string subject, SubjectOf(req->subject_id()));
    const std::string request_id = absl::AsciiStrToLower(req->request_id());
    resp->set_service("audit");
    // A repeated request gets the recorded answer.
    CRM_ASSIGN_OR_RETURN(std::optional<LogStore::ErasureRecord> done,
                         d_.log.store().ErasureRecorded(request_id));
    if (!done.has_value()) {
      CRM_ASSIGN_OR_RETURN(int64_t count, d_.log.store().Count({.subject_id = subject}));
      // Destroys the key, or marks a scope that never had one so it cannot
      // get one: either way the subject's key is gone afterwards.
      CRM_RETURN_IF_ERROR(d_.log.keys().Destroy(absl::StrCat("subject:", subject)).status());
      CRM_RETURN_IF_ERROR(d_.log.store().RecordErasure(request_id, subject, count, d_.clock.Now()));
      // A concurrent duplicate may have recorded its answer first.
      CRM_ASSIGN_OR_RETURN(done, d_.log.store().ErasureRecorded(request_id));
      if (!done.has_value()) return absl::InternalError("erasure answer missing after recording");
    }
    if (done->subject_id != subject) {
      return absl::InvalidArgumentError("request_id: already used for another subject");
    }
    resp->set_data_key_destroyed(true);
    crm::subject::v1::DataCategory* kept = resp->add_retained();
    kept->set_category(kCategory);
    kept->set_record_count(done->events);
    kept->set_legally_retained(true);
    kept->set_retention_basis(
        "accountability (GDPR Art. 5(2)): the log keeps the events as pseudonymous records whose "
        "personal details can no longer be decrypted");
    SetTime(done->completed_at, resp->mutable_completed_at());
    return absl::OkStatus();
  });
}

void AllowAuditMethods(rpc::AccessPolicy& policy) {
  std::vector<std::string> sources(std::begin(kEventSources), std::end(kEventSources));
  policy.Allow("/crm.audit.v1.AuditIngest/AppendEvents", sources);
  for (const char* m :
       {"QueryEvents", "LoginReport", "EditReport", "SubjectReport", "GetCheckpoint",
        "GetInclusionProof", "GetConsistencyProof", "GetCheckpointKeys", "VerifyLog"}) {
    policy.AllowAnyPeer(absl::StrCat("/crm.audit.v1.Audit/", m));
  }
  for (const char* m : {"DescribeSubjectData", "ExportSubjectData", "EraseSubjectData"}) {
    policy.Allow(absl::StrCat("/crm.subject.v1.SubjectData/", m), {"erasure"});
  }
}

std::string EntriesToCsv(absl::Span<const LogEntry> entries) {
  std::string out =
      "index,time,service,action,resource,subject_id,outcome,actor_user_id,actor_service,"
      "request_id,changes,details,source_address,user_agent,redacted\r\n";
  for (const LogEntry& entry : entries) {
    const Event& e = entry.event();
    std::vector<std::string> changes;
    for (const auto& c : e.changes()) {
      changes.push_back(absl::StrCat(c.field(), ": ", c.old_value(), " -> ", c.new_value()));
    }
    std::vector<std::string> details;
    for (const auto& d : e.details()) details.push_back(absl::StrCat(d.key(), "=", d.value()));
    const absl::Time t =
        absl::FromUnixSeconds(e.time().seconds()) + absl::Nanoseconds(e.time().nanos());
    const std::vector<std::string> fields = {
        absl::StrCat(entry.index()),
        absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone()),
        e.service(),
        e.action(),
        e.resource(),
        e.subject_id(),
        crm::audit::v1::Outcome_Name(e.outcome()),
        e.actor().user_id(),
        e.actor().service_identity(),
        e.request_id(),
        absl::StrJoin(changes, "; "),
        absl::StrJoin(details, "; "),
        e.source_address(),
        e.user_agent(),
        entry.redacted()};
    std::vector<std::string> quoted;
    for (const std::string& f : fields) quoted.push_back(CsvField(f));
    absl::StrAppend(&out, absl::StrJoin(quoted, ","), "\r\n");
  }
  return out;
}

}  // namespace crm::audit
