// Service tests of crm-audit through the whole stack: the handlers in an
// in-process ServerRunner over mutual TLS (TestPki certificates) with the
// access policy main.cc uses (AllowAuditMethods), on a database migrated with
// services/audit/migrations. Access tokens are minted by a TokenMinter whose
// public key a fake Identity serves (GetSigningKeys, over mTLS) to a real
// ApiAuth with the shared test Redis, as in production (ApiTestBed).
//
// Every test gets a fresh Harness. Peers: "identity", "contacts" and
// "consent" send events; "operator" reads with a token; "erasure" drives
// SubjectData; "shop" is any other peer of our CA.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "crm/audit/v1/audit.grpc.pb.h"
#include "crm/audit/v1/ingest.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/token_minter.h"
#include "libs/base/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/service/api_auth.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/test_env.h"
#include "services/audit/audit_service.h"
#include "services/audit/merkle.h"

namespace crm::audit {
namespace {

using crm::audit::v1::Event;
using crm::audit::v1::LogEntry;
using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

namespace sv1 = crm::subject::v1;
using IngestStub = v1::AuditIngest::Stub;
using AuditStub = v1::Audit::Stub;
using SubjectStub = sv1::SubjectData::Stub;

constexpr absl::StatusCode kInvalidArgument = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kUnauthenticated = absl::StatusCode::kUnauthenticated;
constexpr absl::StatusCode kPermissionDenied = absl::StatusCode::kPermissionDenied;
constexpr absl::StatusCode kNotFound = absl::StatusCode::kNotFound;

constexpr char kEmail[] = "grace.hopper@example.com";
constexpr char kOldEmail[] = "grace@example.org";
constexpr char kAddress[] = "198.51.100.23";
constexpr char kAgent[] = "Mozilla/5.0 (ServiceTest)";

absl::Time TimeOf(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// crm-audit as main.cc builds it, with ApiTestBed's fake identity and clients.
class Harness {
 public:
  static absl::StatusOr<std::unique_ptr<Harness>> Start() {
    std::unique_ptr<Harness> h(new Harness());
    CRM_RETURN_IF_ERROR(h->Init());
    return h;
  }

  ~Harness() {
    stubs_.clear();
    audit_server_.reset();  // in-flight calls end before what they use goes
  }

  // Calls `rpc` as `peer` (a TestPki name) with `token` as bearer token.
  template <typename Stub, typename Req, typename Resp>
  absl::StatusOr<Resp> Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                            const Req& request, const std::string& peer,
                            absl::string_view token = "") {
    auto it = stubs_.find(peer);
    if (it == stubs_.end()) return absl::InvalidArgumentError("no such peer");
    Stub* stub;
    if constexpr (std::is_same_v<Stub, IngestStub>) {
      stub = it->second.ingest.get();
    } else if constexpr (std::is_same_v<Stub, AuditStub>) {
      stub = it->second.audit.get();
    } else {
      stub = it->second.subject.get();
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    Resp response;
    grpc::Status status = (stub->*rpc)(&context, request, &response);
    if (!status.ok()) return base::FromGrpcStatus(status);
    return response;
  }

  // A token of user `user_id` with `permissions`, valid for 15 minutes.
  std::string Token(const std::string& user_id, std::vector<std::string> permissions) {
    return bed_->Token(user_id, std::move(permissions));
  }

  base::FakeClock& clock() { return bed_->clock(); }
  LogStore& store() { return *store_; }
  AuditLog& log() { return *log_; }
  Checkpointer& checkpointer() { return *checkpointer_; }

 private:
  Harness() = default;

  absl::Status Init() {
    CRM_ASSIGN_OR_RETURN(bed_,
                         crm::testing::ApiTestBed::Create(
                             "audit", {"contacts", "consent", "erasure", "operator", "shop"}));
    CRM_ASSIGN_OR_RETURN(db_, crm::testing::CreateMigratedDatabase("audit", "audit_svc", 8));
    base::FakeClock& clock_ = bed_->clock();

    std::vector<crypto::VersionedKey> keks;
    keks.push_back({.version = 1, .key = crypto::SecretBytes::CopyFrom(crypto::RandomBytes(32))});
    CRM_ASSIGN_OR_RETURN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
    ring_.emplace(std::move(ring));
    store_ = std::make_unique<LogStore>(*db_.pool);
    keys_ = std::make_unique<DataKeys>(*db_.pool, *ring_, clock_);
    log_ = std::make_unique<AuditLog>(*store_, *keys_, clock_);
    // By count only where a test forces it: the first append makes the
    // first checkpoint, later ones come from the tests.
    CRM_ASSIGN_OR_RETURN(checkpointer_,
                         Checkpointer::Create(*store_, *ring_, clock_, 100'000, absl::Hours(1)));
    const AuditDeps deps{*log_, *checkpointer_, bed_->auth().verifier(), clock_};
    ingest_ = std::make_unique<IngestService>(deps);
    query_ = std::make_unique<QueryService>(deps);
    subject_ = std::make_unique<SubjectDataService>(deps);

    rpc::AccessPolicy policy;
    AllowAuditMethods(policy);
    CRM_ASSIGN_OR_RETURN(audit_server_, bed_->Serve("audit", std::move(policy),
                                                    {ingest_.get(), query_.get(), subject_.get()}));

    for (const std::string peer :
         {"identity", "contacts", "consent", "erasure", "operator", "shop"}) {
      CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> ch,
                           bed_->Channel(peer, audit_server_->port(), "audit"));
      stubs_[peer] = Stubs{v1::AuditIngest::NewStub(ch), v1::Audit::NewStub(ch),
                           sv1::SubjectData::NewStub(ch)};
    }
    return absl::OkStatus();
  }

  struct Stubs {
    std::unique_ptr<IngestStub> ingest;
    std::unique_ptr<AuditStub> audit;
    std::unique_ptr<SubjectStub> subject;
  };

  std::unique_ptr<crm::testing::ApiTestBed> bed_;
  crm::testing::MigratedDatabase db_;
  std::optional<crypto::KeyRing> ring_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<DataKeys> keys_;
  std::unique_ptr<AuditLog> log_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<IngestService> ingest_;
  std::unique_ptr<QueryService> query_;
  std::unique_ptr<SubjectDataService> subject_;
  std::unique_ptr<rpc::ServerRunner> audit_server_;
  std::map<std::string, Stubs> stubs_;
};

class AuditServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { log::SetMinLevel(log::Level::kError); }

  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(h_, Harness::Start());
    reader_token_ = h_->Token(kReader, {"audit.read", "contacts.read"});
  }

  template <typename Stub, typename Req, typename Resp>
  absl::StatusOr<Resp> Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                            const Req& request, const std::string& peer,
                            absl::string_view token = "") {
    return h_->Call(rpc, request, peer, token);
  }

  // An event of `service` by `actor` about `subject` (either may be empty),
  // with no details, a second after the previous one.
  Event NewEvent(const std::string& service, const std::string& action, const std::string& subject,
                 const std::string& actor = "") {
    Event e;
    e.set_event_id(base::NewUuid());
    rpc::SetTime(h_->clock().Now() + absl::Seconds(++event_seconds_), e.mutable_time());
    e.set_service(service);
    e.mutable_actor()->set_user_id(actor);
    e.mutable_actor()->set_service_identity(absl::StrCat("spiffe://crm.local/", service));
    e.set_action(action);
    e.set_resource("person/7");
    e.set_subject_id(subject);
    e.set_outcome(v1::OUTCOME_SUCCESS);
    e.set_request_id(absl::StrCat("req-", event_seconds_));
    return e;
  }
  static void AddDetail(Event& e, const std::string& key, const std::string& value, bool personal) {
    v1::Detail* d = e.add_details();
    d->set_key(key);
    d->set_value(value);
    d->set_personal(personal);
  }

  absl::StatusOr<v1::AppendEventsResponse> Append(const std::string& peer,
                                                  const std::vector<Event>& events) {
    v1::AppendEventsRequest req;
    for (const Event& e : events) *req.add_events() = e;
    return Call(&IngestStub::AppendEvents, req, peer);
  }

  absl::StatusOr<v1::QueryEventsResponse> Query(v1::QueryEventsRequest req,
                                                const std::string& token = "") {
    return Call(&AuditStub::QueryEvents, req, "operator", token.empty() ? reader_token_ : token);
  }
  absl::StatusOr<v1::SubjectReportResponse> SubjectReport(const std::string& subject,
                                                          v1::ReportFormat format) {
    v1::SubjectReportRequest req;
    req.set_subject_id(subject);
    req.set_format(format);
    return Call(&AuditStub::SubjectReport, req, "operator", reader_token_);
  }
  absl::StatusOr<v1::VerifyLogResponse> Verify() {
    return Call(&AuditStub::VerifyLog, v1::VerifyLogRequest(), "operator", reader_token_);
  }

  // The event ids of `entries`, in order.
  static std::vector<std::string> Ids(const google::protobuf::RepeatedPtrField<LogEntry>& entries) {
    std::vector<std::string> out;
    for (const LogEntry& e : entries) out.push_back(e.event().event_id());
    return out;
  }

  const std::string kReader = "5a8e1f0c-3b2d-4c6e-9f7a-1d2c3b4a5e6f";
  const std::string kSubject = "c0ffee00-1234-4abc-8def-0123456789ab";
  const std::string kUser = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";
  std::unique_ptr<Harness> h_;
  std::string reader_token_;
  int event_seconds_ = 0;
};

// ---- Ingestion --------------------------------------------------------------------------------

TEST_F(AuditServiceTest, EventSourcesAppend) {
  CRM_ASSERT_OK_AND_ASSIGN(
      v1::AppendEventsResponse r,
      Append("identity", {NewEvent("identity", "identity.user.create", "", kUser),
                          NewEvent("identity", "identity.user.update", "", kUser)}));
  EXPECT_EQ(r.appended(), 2);
  EXPECT_EQ(r.duplicates(), 0);
  CRM_ASSERT_OK_AND_ASSIGN(r,
                           Append("contacts", {NewEvent("contacts", "person.create", kSubject)}));
  EXPECT_EQ(r.appended(), 1);
  EXPECT_THAT(h_->store().Size(), crm::testing::IsOkAndHolds(3u));
}

TEST_F(AuditServiceTest, EmptyBatchAppendsNothing) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::AppendEventsResponse r, Append("contacts", {}));
  EXPECT_EQ(r.appended(), 0);
  EXPECT_EQ(r.duplicates(), 0);
  EXPECT_THAT(h_->store().Size(), crm::testing::IsOkAndHolds(0u));
}

TEST_F(AuditServiceTest, OperatorMayNotAppend) {
  EXPECT_THAT(Append("operator", {NewEvent("operator", "x.y", "")}), StatusIs(kPermissionDenied));
  EXPECT_THAT(Append("shop", {NewEvent("shop", "x.y", "")}), StatusIs(kPermissionDenied));
  EXPECT_THAT(h_->store().Size(), crm::testing::IsOkAndHolds(0u));
}

TEST_F(AuditServiceTest, ServiceMayNotSpeakForAnother) {
  EXPECT_THAT(Append("contacts", {NewEvent("contacts", "person.create", kSubject),
                                  NewEvent("identity", "identity.login.success", "", kUser)}),
              StatusIs(kPermissionDenied, HasSubstr("events[1].service")));
  EXPECT_THAT(h_->store().Size(), crm::testing::IsOkAndHolds(0u));
}

TEST_F(AuditServiceTest, ReplayedBatchReportsDuplicates) {
  const std::vector<Event> batch = {NewEvent("contacts", "person.create", kSubject),
                                    NewEvent("contacts", "person.update", kSubject)};
  CRM_ASSERT_OK_AND_ASSIGN(v1::AppendEventsResponse first, Append("contacts", batch));
  EXPECT_EQ(first.appended(), 2);
  CRM_ASSERT_OK_AND_ASSIGN(v1::AppendEventsResponse again, Append("contacts", batch));
  EXPECT_EQ(again.appended(), 0);
  EXPECT_EQ(again.duplicates(), 2);
  EXPECT_THAT(h_->store().Size(), crm::testing::IsOkAndHolds(2u));
}

TEST_F(AuditServiceTest, OversizeBatchIsRefused) {
  std::vector<Event> batch;
  for (int i = 0; i <= kMaxBatch; ++i) batch.push_back(NewEvent("contacts", "person.read", ""));
  EXPECT_THAT(Append("contacts", batch), StatusIs(kInvalidArgument, HasSubstr("events")));
  batch.pop_back();
  CRM_ASSERT_OK_AND_ASSIGN(v1::AppendEventsResponse r, Append("contacts", batch));
  EXPECT_EQ(r.appended(), kMaxBatch);
}

TEST_F(AuditServiceTest, InvalidEventIsNamed) {
  Event bad = NewEvent("contacts", "person.update", kSubject);
  bad.set_subject_id("grace@example.com");
  absl::StatusOr<v1::AppendEventsResponse> r =
      Append("contacts", {NewEvent("contacts", "person.create", kSubject), bad});
  EXPECT_THAT(r, StatusIs(kInvalidArgument, HasSubstr("events[1].subject_id")));
  EXPECT_THAT(r.status().message(), Not(HasSubstr("grace")));
  EXPECT_THAT(h_->store().Size(), crm::testing::IsOkAndHolds(0u));
}

// ---- Authorization of reads ---------------------------------------------------------------------

TEST_F(AuditServiceTest, ReadsNeedAnAccessTokenWithAuditRead) {
  ASSERT_THAT(Append("contacts", {NewEvent("contacts", "person.create", kSubject)}), IsOk());
  const std::string without = h_->Token(kReader, {"contacts.read"});
  v1::QueryEventsRequest query;
  v1::LoginReportRequest logins;
  v1::EditReportRequest edits;
  edits.set_actor_user_id(kUser);
  v1::SubjectReportRequest report;
  report.set_subject_id(kSubject);
  for (const std::string& token : {std::string(), without, std::string("not-a-token")}) {
    const absl::StatusCode code = token == without ? kPermissionDenied : kUnauthenticated;
    SCOPED_TRACE(absl::StatusCodeToString(code));
    EXPECT_THAT(Call(&AuditStub::QueryEvents, query, "operator", token), StatusIs(code));
    EXPECT_THAT(Call(&AuditStub::LoginReport, logins, "operator", token), StatusIs(code));
    EXPECT_THAT(Call(&AuditStub::EditReport, edits, "operator", token), StatusIs(code));
    EXPECT_THAT(Call(&AuditStub::SubjectReport, report, "operator", token), StatusIs(code));
    EXPECT_THAT(Call(&AuditStub::VerifyLog, v1::VerifyLogRequest(), "operator", token),
                StatusIs(code));
  }
  // Expired tokens are refused too.
  h_->clock().Advance(absl::Minutes(16));
  EXPECT_THAT(Query({}), StatusIs(kUnauthenticated));
}

TEST_F(AuditServiceTest, CheckpointsAndProofsAreOpenToAnyPeer) {
  ASSERT_THAT(Append("contacts", {NewEvent("contacts", "person.create", kSubject)}), IsOk());
  EXPECT_THAT(Call(&AuditStub::GetCheckpoint, v1::GetCheckpointRequest(), "shop"), IsOk());
  EXPECT_THAT(Call(&AuditStub::GetCheckpointKeys, v1::GetCheckpointKeysRequest(), "shop"), IsOk());
  v1::GetInclusionProofRequest inclusion;
  inclusion.set_tree_size(1);
  EXPECT_THAT(Call(&AuditStub::GetInclusionProof, inclusion, "shop"), IsOk());
  v1::GetConsistencyProofRequest consistency;
  consistency.set_first_tree_size(1);
  consistency.set_second_tree_size(1);
  EXPECT_THAT(Call(&AuditStub::GetConsistencyProof, consistency, "shop"), IsOk());
}

// ---- Reports
// -------------------------------------------------------------------------------------

TEST_F(AuditServiceTest, SubjectReportHasEveryServicesEventsInOrderDecrypted) {
  const std::string other = base::NewUuid();
  Event signup = NewEvent("identity", "identity.portal_user.create", kSubject, kUser);
  AddDetail(signup, "email", kEmail, true);
  AddDetail(signup, "channel", "portal", false);
  signup.set_source_address(kAddress);
  signup.set_user_agent(kAgent);
  Event noise = NewEvent("contacts", "person.update", other, kUser);
  Event edit = NewEvent("contacts", "person.update", kSubject, kUser);
  v1::FieldChange* change = edit.add_changes();
  change->set_field("email");
  change->set_old_value(kOldEmail);
  change->set_new_value(kEmail);
  Event consent = NewEvent("consent", "consent.grant", kSubject);
  AddDetail(consent, "purpose", "newsletter", false);
  AddDetail(consent, "wording_shown", "Yes, send me news, Grace", true);
  ASSERT_THAT(Append("identity", {signup}), IsOk());
  ASSERT_THAT(Append("contacts", {noise, edit}), IsOk());
  ASSERT_THAT(Append("consent", {consent}), IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(v1::SubjectReportResponse json,
                           SubjectReport(absl::AsciiStrToUpper(kSubject), v1::REPORT_FORMAT_JSON));
  EXPECT_EQ(json.subject_id(), kSubject);
  EXPECT_EQ(json.csv(), "");
  ASSERT_THAT(Ids(json.entries()),
              ElementsAre(signup.event_id(), edit.event_id(), consent.event_id()));
  EXPECT_LT(json.entries(0).index(), json.entries(1).index());
  EXPECT_LT(json.entries(1).index(), json.entries(2).index());
  const Event& got_signup = json.entries(0).event();
  EXPECT_EQ(got_signup.service(), "identity");
  EXPECT_EQ(got_signup.source_address(), kAddress);
  EXPECT_EQ(got_signup.user_agent(), kAgent);
  ASSERT_THAT(got_signup.details(), SizeIs(2));
  EXPECT_EQ(got_signup.details(1).value(), kEmail);
  EXPECT_TRUE(got_signup.details(1).personal());
  ASSERT_THAT(json.entries(1).event().changes(), SizeIs(1));
  EXPECT_EQ(json.entries(1).event().changes(0).old_value(), kOldEmail);
  EXPECT_EQ(json.entries(2).event().service(), "consent");
  EXPECT_EQ(json.entries(2).event().details(1).value(), "Yes, send me news, Grace");
  std::string as_json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(json, &as_json).ok());
  EXPECT_THAT(as_json, HasSubstr(kEmail));

  CRM_ASSERT_OK_AND_ASSIGN(v1::SubjectReportResponse csv,
                           SubjectReport(kSubject, v1::REPORT_FORMAT_CSV));
  // The first report's read is about the subject too, and comes last.
  ASSERT_THAT(csv.entries(), SizeIs(4));
  EXPECT_EQ(csv.entries(3).event().action(), "audit.read.subject_report");
  std::vector<std::string> lines = absl::StrSplit(csv.csv(), "\r\n", absl::SkipEmpty());
  ASSERT_THAT(lines, SizeIs(5));
  EXPECT_THAT(lines[0], ::testing::StartsWith("index,time,service,action,"));
  EXPECT_THAT(lines[1], HasSubstr(",identity,identity.portal_user.create,"));
  EXPECT_THAT(lines[1], HasSubstr(absl::StrCat("email=", kEmail)));
  EXPECT_THAT(lines[1], HasSubstr(kAddress));
  EXPECT_THAT(lines[2], HasSubstr(",contacts,person.update,"));
  EXPECT_THAT(lines[2], HasSubstr(absl::StrCat("email: ", kOldEmail, " -> ", kEmail)));
  EXPECT_THAT(lines[3], HasSubstr(",consent,consent.grant,"));
  // A value with a comma is quoted (RFC 4180).
  EXPECT_THAT(lines[3],
              HasSubstr("\"purpose=newsletter; wording_shown=Yes, send me news, Grace\""));
  EXPECT_THAT(lines[4], HasSubstr(",audit,audit.read.subject_report,"));
}

TEST(EntriesToCsvTest, FormulasAreNotRunBySpreadsheets) {
  LogEntry entry;
  entry.set_index(3);
  entry.mutable_event()->set_service("identity");
  entry.mutable_event()->set_action("identity.login.failure");
  entry.mutable_event()->set_user_agent("=HYPERLINK(\"http://evil.example\",\"x\")");
  entry.mutable_event()->set_source_address("@SUM(1+1)");
  const std::string csv = EntriesToCsv({entry});
  EXPECT_THAT(csv,
              HasSubstr(",'@SUM(1+1),\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\","));
  EXPECT_THAT(csv, Not(HasSubstr(",=")));
  EXPECT_THAT(csv, Not(HasSubstr(",@")));
}

TEST_F(AuditServiceTest, LoginReportFromIdentitysLoginEvents) {
  const std::string other_user = base::NewUuid();
  auto login = [&](const std::string& action, const std::string& user, const std::string& result) {
    Event e = NewEvent("identity", action, "", user);
    e.set_resource(user.empty() ? "user/unknown" : absl::StrCat("user/", user));
    e.set_outcome(result == "success" ? v1::OUTCOME_SUCCESS : v1::OUTCOME_DENIED);
    AddDetail(e, "result", result, false);
    e.set_source_address(kAddress);
    e.set_user_agent(kAgent);
    return e;
  };
  // As identity records them: a lockout names the user in its resource only.
  Event locked = NewEvent("identity", "identity.user.locked", "");
  locked.mutable_actor()->clear_user_id();
  locked.set_resource(absl::StrCat("user/", kUser));
  AddDetail(locked, "kind", "timed", false);
  const std::vector<Event> events = {
      login("identity.login.success", kUser, "success"),
      login("identity.login.failure", kUser, "bad_password"),
      login("identity.login.failure", "", "unknown_user"),
      login("identity.login.success", other_user, "success"),
      locked,
  };
  ASSERT_THAT(Append("identity", events), IsOk());
  // Another service cannot forge identity's login events into the report.
  Event forged = login("identity.login.success", kUser, "success");
  forged.set_service("contacts");
  ASSERT_THAT(Append("contacts", {forged}), IsOk());
  ASSERT_THAT(Append("identity", {NewEvent("identity", "identity.user.update", "", kUser)}),
              IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(
      v1::LoginReportResponse all,
      Call(&AuditStub::LoginReport, v1::LoginReportRequest(), "operator", reader_token_));
  ASSERT_THAT(all.rows(), SizeIs(5));
  EXPECT_EQ(all.rows(0).user_id(), kUser);
  EXPECT_EQ(all.rows(0).result(), "success");
  EXPECT_EQ(all.rows(0).source_address(), kAddress);
  EXPECT_EQ(all.rows(0).user_agent(), kAgent);
  EXPECT_EQ(all.rows(1).result(), "bad_password");
  EXPECT_EQ(all.rows(2).user_id(), "");
  EXPECT_EQ(all.rows(2).result(), "unknown_user");
  EXPECT_EQ(all.rows(3).user_id(), other_user);
  EXPECT_EQ(all.rows(4).user_id(), kUser);
  EXPECT_EQ(all.rows(4).result(), "lockout");
  EXPECT_EQ(TimeOf(all.rows(0).time()), TimeOf(events[0].time()));
  std::map<std::string, v1::LoginUserSummary> summary;
  for (const v1::LoginUserSummary& s : all.summary()) summary[s.user_id()] = s;
  ASSERT_EQ(summary.size(), 3u);
  EXPECT_EQ(summary[kUser].successes(), 1);
  EXPECT_EQ(summary[kUser].failures(), 1);
  EXPECT_EQ(summary[kUser].lockouts(), 1);
  EXPECT_EQ(TimeOf(summary[kUser].last_success()), TimeOf(events[0].time()));
  EXPECT_EQ(summary[""].failures(), 1);
  EXPECT_EQ(summary[other_user].successes(), 1);

  // One user, two rows a page: the summary comes with the first page only.
  v1::LoginReportRequest one;
  one.set_user_id(absl::AsciiStrToUpper(kUser));
  one.mutable_page()->set_page_size(2);
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginReportResponse first,
                           Call(&AuditStub::LoginReport, one, "operator", reader_token_));
  ASSERT_THAT(first.rows(), SizeIs(2));
  ASSERT_THAT(first.summary(), SizeIs(1));
  EXPECT_EQ(first.summary(0).user_id(), kUser);
  EXPECT_EQ(first.summary(0).lockouts(), 1);
  ASSERT_NE(first.page().next_page_token(), "");
  one.mutable_page()->set_page_token(first.page().next_page_token());
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginReportResponse second,
                           Call(&AuditStub::LoginReport, one, "operator", reader_token_));
  ASSERT_THAT(second.rows(), SizeIs(1));
  EXPECT_EQ(second.rows(0).result(), "lockout");
  EXPECT_THAT(second.summary(), IsEmpty());
  EXPECT_EQ(second.page().next_page_token(), "");
}

TEST_F(AuditServiceTest, EditReportShowsFieldChanges) {
  Event edit = NewEvent("contacts", "person.update", kSubject, kUser);
  v1::FieldChange* change = edit.add_changes();
  change->set_field("email");
  change->set_old_value(kOldEmail);
  change->set_new_value(kEmail);
  const Event read = NewEvent("contacts", "person.read", kSubject, kUser);
  Event by_other = NewEvent("contacts", "person.update", kSubject, base::NewUuid());
  *by_other.add_changes() = *change;
  ASSERT_THAT(Append("contacts", {edit, read, by_other}), IsOk());

  v1::EditReportRequest req;
  req.set_actor_user_id(kUser);
  CRM_ASSERT_OK_AND_ASSIGN(v1::EditReportResponse r,
                           Call(&AuditStub::EditReport, req, "operator", reader_token_));
  ASSERT_THAT(r.rows(), SizeIs(1));
  EXPECT_EQ(r.rows(0).action(), "person.update");
  EXPECT_EQ(r.rows(0).subject_id(), kSubject);
  EXPECT_EQ(r.rows(0).request_id(), edit.request_id());
  EXPECT_EQ(r.rows(0).redacted(), "");
  ASSERT_THAT(r.rows(0).changes(), SizeIs(1));
  EXPECT_EQ(r.rows(0).changes(0).field(), "email");
  EXPECT_EQ(r.rows(0).changes(0).old_value(), kOldEmail);
  EXPECT_EQ(r.rows(0).changes(0).new_value(), kEmail);
}

TEST_F(AuditServiceTest, QueryEventsPagesWithTokensBoundToTheQuery) {
  std::vector<Event> events;
  for (int i = 0; i < 7; ++i) {
    events.push_back(NewEvent(
        "identity", i % 2 == 0 ? "identity.login.success" : "identity.login.failure", "", kUser));
  }
  ASSERT_THAT(Append("identity", events), IsOk());
  ASSERT_THAT(Append("contacts", {NewEvent("contacts", "person.create", kSubject)}), IsOk());

  v1::QueryEventsRequest req;
  req.set_action("identity.login.*");
  req.mutable_page()->set_page_size(3);
  std::vector<std::string> seen;
  std::string first_token;
  for (int page = 0; page < 5; ++page) {
    CRM_ASSERT_OK_AND_ASSIGN(v1::QueryEventsResponse r, Query(req));
    for (const std::string& id : Ids(r.entries())) seen.push_back(id);
    if (page == 0) first_token = r.page().next_page_token();
    if (r.page().next_page_token().empty()) break;
    req.mutable_page()->set_page_token(r.page().next_page_token());
  }
  std::vector<std::string> expected;
  for (const Event& e : events) expected.push_back(e.event_id());
  EXPECT_EQ(seen, expected);

  // A prefix may also end in '.'; exact names and other filters work.
  v1::QueryEventsRequest dotted;
  dotted.set_action("identity.login.");
  CRM_ASSERT_OK_AND_ASSIGN(v1::QueryEventsResponse r, Query(dotted));
  EXPECT_THAT(r.entries(), SizeIs(7));
  v1::QueryEventsRequest exact;
  exact.set_action("identity.login.failure");
  CRM_ASSERT_OK_AND_ASSIGN(r, Query(exact));
  EXPECT_THAT(r.entries(), SizeIs(3));
  v1::QueryEventsRequest by_service;
  by_service.set_actor_service("contacts");
  CRM_ASSERT_OK_AND_ASSIGN(r, Query(by_service));
  EXPECT_THAT(Ids(r.entries()), ElementsAre(::testing::_));

  // A token of one query does not page another.
  v1::QueryEventsRequest other;
  other.set_action("identity.login.failure");
  other.mutable_page()->set_page_token(first_token);
  EXPECT_THAT(Query(other), StatusIs(kInvalidArgument, HasSubstr("page.page_token")));
  v1::QueryEventsRequest garbage;
  garbage.mutable_page()->set_page_token("not-a-token");
  EXPECT_THAT(Query(garbage), StatusIs(kInvalidArgument, HasSubstr("page.page_token")));
}

TEST_F(AuditServiceTest, ReadsAreLogged) {
  ASSERT_THAT(Append("contacts", {NewEvent("contacts", "person.create", kSubject)}), IsOk());
  ASSERT_THAT(SubjectReport(kSubject, v1::REPORT_FORMAT_UNSPECIFIED), IsOk());
  v1::QueryEventsRequest req;
  req.set_action("audit.read.*");
  CRM_ASSERT_OK_AND_ASSIGN(v1::QueryEventsResponse r, Query(req));
  ASSERT_THAT(r.entries(), SizeIs(1));
  const Event& read = r.entries(0).event();
  EXPECT_EQ(read.service(), "audit");
  EXPECT_EQ(read.action(), "audit.read.subject_report");
  EXPECT_EQ(read.subject_id(), kSubject);
  EXPECT_EQ(read.actor().user_id(), kReader);
  EXPECT_EQ(read.actor().service_identity(), "spiffe://crm.local/operator");
  EXPECT_NE(read.request_id(), "");
  // That query was logged in turn.
  CRM_ASSERT_OK_AND_ASSIGN(r, Query(req));
  ASSERT_THAT(r.entries(), SizeIs(2));
  EXPECT_EQ(r.entries(1).event().action(), "audit.read.query");
}

// ---- Checkpoints and proofs --------------------------------------------------------------------

TEST_F(AuditServiceTest, ProofsAndCheckpointsVerify) {
  auto batch = [&](int n) {
    std::vector<Event> events;
    for (int i = 0; i < n; ++i) events.push_back(NewEvent("contacts", "person.read", kSubject));
    return events;
  };
  ASSERT_THAT(Append("contacts", batch(3)), IsOk());  // the first append checkpoints
  ASSERT_THAT(Append("contacts", batch(4)), IsOk());
  ASSERT_THAT(h_->checkpointer().MaybeCheckpoint(true), IsOk());
  ASSERT_THAT(Append("contacts", batch(6)), IsOk());
  ASSERT_THAT(h_->checkpointer().MaybeCheckpoint(true), IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(
      v1::GetCheckpointKeysResponse keys,
      Call(&AuditStub::GetCheckpointKeys, v1::GetCheckpointKeysRequest(), "shop"));
  ASSERT_THAT(keys.keys(), SizeIs(1));
  CRM_ASSERT_OK_AND_ASSIGN(crypto::Ed25519PublicKey key,
                           crypto::Ed25519PublicKey::FromRaw(keys.keys(0).public_key()));

  CRM_ASSERT_OK_AND_ASSIGN(v1::GetCheckpointResponse latest,
                           Call(&AuditStub::GetCheckpoint, v1::GetCheckpointRequest(), "shop"));
  EXPECT_EQ(latest.checkpoint().tree_size(), 13);
  std::map<int64_t, v1::SignedCheckpoint> checkpoints;
  for (int64_t size : {3, 7, 13}) {
    v1::GetCheckpointRequest req;
    req.set_tree_size(size);
    CRM_ASSERT_OK_AND_ASSIGN(v1::GetCheckpointResponse c,
                             Call(&AuditStub::GetCheckpoint, req, "shop"));
    const v1::SignedCheckpoint& cp = c.checkpoint();
    EXPECT_EQ(cp.tree_size(), size);
    EXPECT_EQ(cp.key_id(), keys.keys(0).key_id());
    EXPECT_TRUE(key.Verify(CheckpointText(size, cp.root_hash(), TimeOf(cp.time())), cp.signature()))
        << size;
    EXPECT_FALSE(
        key.Verify(CheckpointText(size + 1, cp.root_hash(), TimeOf(cp.time())), cp.signature()));
    checkpoints[size] = cp;
  }
  EXPECT_EQ(latest.checkpoint().root_hash(), checkpoints[13].root_hash());

  // The leaf hashes as a reader would recompute them from the stored entries.
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<StoredEntry> entries, h_->store().Query({}, -1, 100));
  for (const auto& [size, cp] : checkpoints) {
    for (int64_t i = 0; i < size; ++i) {
      v1::GetInclusionProofRequest req;
      req.set_index(i);
      req.set_tree_size(size);
      CRM_ASSERT_OK_AND_ASSIGN(v1::GetInclusionProofResponse proof,
                               Call(&AuditStub::GetInclusionProof, req, "shop"));
      EXPECT_EQ(proof.leaf_hash(), merkle::LeafHash(EncodeLeaf(entries[i].record)));
      const std::vector<std::string> path(proof.audit_path().begin(), proof.audit_path().end());
      EXPECT_THAT(merkle::VerifyInclusion(proof.leaf_hash(), i, size, path, cp.root_hash()), IsOk())
          << i << " in " << size;
    }
    for (const auto& [later, later_cp] : checkpoints) {
      if (later < size) continue;
      v1::GetConsistencyProofRequest req;
      req.set_first_tree_size(size);
      req.set_second_tree_size(later);
      CRM_ASSERT_OK_AND_ASSIGN(v1::GetConsistencyProofResponse proof,
                               Call(&AuditStub::GetConsistencyProof, req, "shop"));
      const std::vector<std::string> hashes(proof.proof().begin(), proof.proof().end());
      EXPECT_THAT(
          merkle::VerifyConsistency(size, later, cp.root_hash(), later_cp.root_hash(), hashes),
          IsOk())
          << size << " -> " << later;
    }
  }
  CRM_ASSERT_OK_AND_ASSIGN(v1::VerifyLogResponse verified, Verify());
  EXPECT_TRUE(verified.ok()) << verified.problem();
  EXPECT_EQ(verified.entries_checked(), 13);
  EXPECT_EQ(verified.checkpoints_checked(), 3);
  EXPECT_EQ(verified.first_bad_index(), -1);
}

TEST_F(AuditServiceTest, BadInputsAreRefused) {
  ASSERT_THAT(Append("contacts", {NewEvent("contacts", "person.create", kSubject),
                                  NewEvent("contacts", "person.update", kSubject)}),
              IsOk());  // checkpoint of size 2
  v1::GetInclusionProofRequest inclusion;
  inclusion.set_tree_size(2);
  inclusion.set_index(-1);
  EXPECT_THAT(Call(&AuditStub::GetInclusionProof, inclusion, "shop"),
              StatusIs(kInvalidArgument, HasSubstr("index")));
  inclusion.set_index(2);
  EXPECT_THAT(Call(&AuditStub::GetInclusionProof, inclusion, "shop"),
              StatusIs(kInvalidArgument, HasSubstr("index")));
  inclusion.set_index(0);
  inclusion.set_tree_size(1);
  EXPECT_THAT(Call(&AuditStub::GetInclusionProof, inclusion, "shop"),
              StatusIs(kNotFound, HasSubstr("tree_size")));
  inclusion.set_tree_size(0);
  EXPECT_THAT(Call(&AuditStub::GetInclusionProof, inclusion, "shop"),
              StatusIs(kInvalidArgument, HasSubstr("tree_size")));
  v1::GetCheckpointRequest checkpoint;
  checkpoint.set_tree_size(5);
  EXPECT_THAT(Call(&AuditStub::GetCheckpoint, checkpoint, "shop"), StatusIs(kNotFound));
  checkpoint.set_tree_size(-1);
  EXPECT_THAT(Call(&AuditStub::GetCheckpoint, checkpoint, "shop"), StatusIs(kInvalidArgument));
  v1::GetConsistencyProofRequest consistency;
  consistency.set_first_tree_size(2);
  consistency.set_second_tree_size(3);
  EXPECT_THAT(Call(&AuditStub::GetConsistencyProof, consistency, "shop"),
              StatusIs(kNotFound, HasSubstr("second_tree_size")));

  v1::QueryEventsRequest query;
  query.set_subject_id("grace@example.com");
  EXPECT_THAT(Query(query), StatusIs(kInvalidArgument, HasSubstr("subject_id")));
  v1::QueryEventsRequest range;
  rpc::SetTime(h_->clock().Now(), range.mutable_range()->mutable_start());
  rpc::SetTime(h_->clock().Now() - absl::Hours(1), range.mutable_range()->mutable_end());
  EXPECT_THAT(Query(range), StatusIs(kInvalidArgument, HasSubstr("range.end")));
  v1::QueryEventsRequest page;
  page.mutable_page()->set_page_size(-1);
  EXPECT_THAT(Query(page), StatusIs(kInvalidArgument, HasSubstr("page.page_size")));
  EXPECT_THAT(SubjectReport("", v1::REPORT_FORMAT_CSV),
              StatusIs(kInvalidArgument, HasSubstr("subject_id")));
  EXPECT_THAT(SubjectReport("not-a-uuid", v1::REPORT_FORMAT_CSV),
              StatusIs(kInvalidArgument, HasSubstr("subject_id")));
  v1::LoginReportRequest logins;
  logins.set_user_id("admin");
  EXPECT_THAT(Call(&AuditStub::LoginReport, logins, "operator", reader_token_),
              StatusIs(kInvalidArgument, HasSubstr("user_id")));
  EXPECT_THAT(Call(&AuditStub::EditReport, v1::EditReportRequest(), "operator", reader_token_),
              StatusIs(kInvalidArgument, HasSubstr("actor_user_id")));
  sv1::DescribeSubjectDataRequest describe;
  describe.set_subject_id("42");
  EXPECT_THAT(Call(&SubjectStub::DescribeSubjectData, describe, "erasure"),
              StatusIs(kInvalidArgument, HasSubstr("subject_id")));
  sv1::EraseSubjectDataRequest erase;
  erase.set_subject_id(kSubject);
  erase.set_request_id("again");
  EXPECT_THAT(Call(&SubjectStub::EraseSubjectData, erase, "erasure"),
              StatusIs(kInvalidArgument, HasSubstr("request_id")));
}

// ---- Subject data ------------------------------------------------------------------------------

TEST_F(AuditServiceTest, SubjectDataIsOnlyForErasure) {
  sv1::DescribeSubjectDataRequest describe;
  describe.set_subject_id(kSubject);
  sv1::ExportSubjectDataRequest export_req;
  export_req.set_subject_id(kSubject);
  sv1::EraseSubjectDataRequest erase;
  erase.set_subject_id(kSubject);
  erase.set_request_id(base::NewUuid());
  for (const std::string peer : {"operator", "contacts", "shop"}) {
    SCOPED_TRACE(peer);
    EXPECT_THAT(Call(&SubjectStub::DescribeSubjectData, describe, peer, reader_token_),
                StatusIs(kPermissionDenied));
    EXPECT_THAT(Call(&SubjectStub::ExportSubjectData, export_req, peer, reader_token_),
                StatusIs(kPermissionDenied));
    EXPECT_THAT(Call(&SubjectStub::EraseSubjectData, erase, peer, reader_token_),
                StatusIs(kPermissionDenied));
  }
  EXPECT_THAT(Call(&SubjectStub::DescribeSubjectData, describe, "erasure"), IsOk());
}

TEST_F(AuditServiceTest, SubjectDataDescribeExportErase) {
  Event signup = NewEvent("identity", "identity.portal_user.create", kSubject);
  AddDetail(signup, "email", kEmail, true);
  signup.set_source_address(kAddress);
  Event edit = NewEvent("contacts", "person.update", kSubject, kUser);
  v1::FieldChange* change = edit.add_changes();
  change->set_field("email");
  change->set_old_value(kOldEmail);
  change->set_new_value(kEmail);
  Event consent = NewEvent("consent", "consent.grant", kSubject);
  AddDetail(consent, "purpose", "newsletter", false);
  const std::string other = base::NewUuid();
  Event other_edit = NewEvent("contacts", "person.update", other, kUser);
  other_edit.set_source_address(kAddress);
  ASSERT_THAT(Append("identity", {signup}), IsOk());
  ASSERT_THAT(Append("contacts", {edit, other_edit}), IsOk());
  ASSERT_THAT(Append("consent", {consent}), IsOk());

  sv1::DescribeSubjectDataRequest describe;
  describe.set_subject_id(kSubject);
  CRM_ASSERT_OK_AND_ASSIGN(sv1::DescribeSubjectDataResponse described,
                           Call(&SubjectStub::DescribeSubjectData, describe, "erasure"));
  EXPECT_EQ(described.service(), "audit");
  ASSERT_THAT(described.categories(), SizeIs(1));
  EXPECT_EQ(described.categories(0).category(), "audit_events");
  EXPECT_EQ(described.categories(0).record_count(), 3);
  EXPECT_TRUE(described.categories(0).legally_retained());
  describe.set_subject_id(base::NewUuid());
  CRM_ASSERT_OK_AND_ASSIGN(described, Call(&SubjectStub::DescribeSubjectData, describe, "erasure"));
  EXPECT_THAT(described.categories(), IsEmpty());

  sv1::ExportSubjectDataRequest export_req;
  export_req.set_subject_id(kSubject);
  CRM_ASSERT_OK_AND_ASSIGN(sv1::ExportSubjectDataResponse exported,
                           Call(&SubjectStub::ExportSubjectData, export_req, "erasure"));
  ASSERT_THAT(exported.records(), SizeIs(3));
  std::string exported_json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(exported, &exported_json).ok());
  EXPECT_THAT(exported_json, HasSubstr(kEmail));
  EXPECT_THAT(exported_json, HasSubstr(kOldEmail));
  EXPECT_THAT(exported_json, HasSubstr(kAddress));
  EXPECT_EQ(exported.records(0).category(), "audit_events");
  // The export was a read of personal data: logged, about the subject.
  describe.set_subject_id(kSubject);
  CRM_ASSERT_OK_AND_ASSIGN(described, Call(&SubjectStub::DescribeSubjectData, describe, "erasure"));
  EXPECT_EQ(described.categories(0).record_count(), 4);

  sv1::EraseSubjectDataRequest erase;
  erase.set_subject_id(kSubject);
  erase.set_request_id(base::NewUuid());
  CRM_ASSERT_OK_AND_ASSIGN(sv1::EraseSubjectDataResponse erased,
                           Call(&SubjectStub::EraseSubjectData, erase, "erasure"));
  EXPECT_EQ(erased.service(), "audit");
  EXPECT_TRUE(erased.data_key_destroyed());
  EXPECT_THAT(erased.erased(), IsEmpty());
  ASSERT_THAT(erased.retained(), SizeIs(1));
  EXPECT_EQ(erased.retained(0).record_count(), 4);

  CRM_ASSERT_OK_AND_ASSIGN(v1::SubjectReportResponse report,
                           SubjectReport(kSubject, v1::REPORT_FORMAT_CSV));
  ASSERT_THAT(report.entries(), SizeIs(4));
  for (int i : {0, 1}) {
    SCOPED_TRACE(i);
    const LogEntry& e = report.entries(i);
    EXPECT_EQ(e.redacted(), "erased");
    EXPECT_THAT(e.event().details(), IsEmpty());
    EXPECT_THAT(e.event().changes(), IsEmpty());
    EXPECT_EQ(e.event().source_address(), "");
  }
  // Clear details stay readable.
  EXPECT_EQ(report.entries(2).event().details(0).value(), "newsletter");
  EXPECT_THAT(report.csv(), Not(HasSubstr(kEmail)));
  EXPECT_THAT(report.csv(), HasSubstr(",erased\r\n"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::VerifyLogResponse verified, Verify());
  EXPECT_TRUE(verified.ok()) << verified.problem();

  // The same request gets the same answer, even after the log moved on.
  h_->clock().Advance(absl::Minutes(5));
  ASSERT_THAT(Append("contacts", {NewEvent("contacts", "person.read", kSubject, kUser)}), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(sv1::EraseSubjectDataResponse again,
                           Call(&SubjectStub::EraseSubjectData, erase, "erasure"));
  EXPECT_TRUE(again.data_key_destroyed());
  EXPECT_EQ(again.retained(0).record_count(), 4);
  EXPECT_EQ(TimeOf(again.completed_at()), TimeOf(erased.completed_at()));
  // A new request for the erased subject succeeds too; a request id cannot
  // be reused for another subject.
  sv1::EraseSubjectDataRequest later = erase;
  later.set_request_id(base::NewUuid());
  CRM_ASSERT_OK_AND_ASSIGN(sv1::EraseSubjectDataResponse second,
                           Call(&SubjectStub::EraseSubjectData, later, "erasure"));
  EXPECT_TRUE(second.data_key_destroyed());
  EXPECT_GE(second.retained(0).record_count(), 6);
  sv1::EraseSubjectDataRequest reused = erase;
  reused.set_subject_id(other);
  EXPECT_THAT(Call(&SubjectStub::EraseSubjectData, reused, "erasure"),
              StatusIs(kInvalidArgument, HasSubstr("request_id")));
  // Another subject's details are untouched.
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubjectReportResponse kept,
                           SubjectReport(other, v1::REPORT_FORMAT_UNSPECIFIED));
  ASSERT_THAT(kept.entries(), Not(IsEmpty()));
  EXPECT_EQ(kept.entries(0).redacted(), "");
  EXPECT_EQ(kept.entries(0).event().source_address(), kAddress);
}

}  // namespace
}  // namespace crm::audit
