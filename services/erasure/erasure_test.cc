// The erasure orchestrator end to end: real PostgreSQL, the ErasureService
// behind its own mTLS server, and fake target services (crm.subject.v1
// SubjectData held in memory, each behind an mTLS server of its own name)
// that the Orchestrator calls as "erasure". Time is the bed's fake clock:
// leases, backoff and the cancel window move only when a test moves it.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/json/json.h"
#include "libs/log/log.h"
#include "libs/outbox/capturing_sink.h"
#include "libs/outbox/relay.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/sink.h"
#include "libs/outbox/writer.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/server.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/subprocess.h"
#include "libs/testing/unary_call.h"
#include "services/erasure/certificate.h"
#include "services/erasure/erasure_service.h"
#include "services/erasure/erasure_store.h"
#include "services/erasure/orchestrator.h"

namespace crm::erasure {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using Stub = v1::Erasure::Stub;
namespace sv1 = crm::subject::v1;

constexpr char kDpo[] = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
constexpr char kAda[] = "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d";
constexpr char kBob[] = "1c7a2d4f-9e3b-4a6c-8d2e-3f4a5b6c7d8e";
constexpr char kEve[] = "2d8b3e5a-af4c-4b7d-9e3f-4a5b6c7d8e9f";
constexpr char kAddress[] = "someone@example.com";
// The registry, in the order the store lists targets (by name).
const std::vector<std::string>& TargetNames() {
  static const auto* names = new std::vector<std::string>{"consent", "contacts", "mailing"};
  return *names;
}

absl::Time Utc(int y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}

sv1::DataCategory Category(const std::string& name, int64_t count) {
  sv1::DataCategory c;
  c.set_category(name);
  c.set_record_count(count);
  return c;
}

MATCHER_P2(CategoryIs, name, count, "") {
  return arg.category() == name && arg.record_count() == count;
}

// A service holding subject data, in memory: per subject a list of
// categories with counts. Erase removes all but the legally retained ones and
// answers a repeated request id with the recorded answer, as the contract
// says. Switches make it fail or misbehave. Thread-safe.
class FakeTarget final : public sv1::SubjectData::Service {
 public:
  explicit FakeTarget(std::string name) : name_(std::move(name)) {}
  ~FakeTarget() override {
    Release();
    runner_.reset();
  }

  // Serves on loopback with the certificate of the target's name; only the
  // "erasure" peer may call.
  absl::Status Start(const crm::testing::ApiTestBed& bed) {
    rpc::AccessPolicy policy;
    policy.AllowService(sv1::SubjectData::service_full_name(), {"erasure"});
    CRM_ASSIGN_OR_RETURN(runner_, bed.Serve(name_, std::move(policy), {this}));
    return absl::OkStatus();
  }
  int port() const { return runner_->port(); }
  const std::string& name() const { return name_; }

  void Hold(const std::string& subject, const std::string& category, int64_t count) {
    absl::MutexLock l(&mu_);
    held_[subject].push_back(Category(category, count));
  }
  void HoldRetained(const std::string& subject, const std::string& category, int64_t count,
                    const std::string& basis, absl::Time purge_after) {
    sv1::DataCategory c = Category(category, count);
    c.set_legally_retained(true);
    c.set_retention_basis(basis);
    c.mutable_purge_after()->set_seconds(absl::ToUnixSeconds(purge_after));
    absl::MutexLock l(&mu_);
    held_[subject].push_back(c);
  }
  void SetEmails(const std::string& subject, std::vector<std::string> addresses) {
    absl::MutexLock l(&mu_);
    emails_[subject] = std::move(addresses);
  }
  std::vector<sv1::DataCategory> Held(const std::string& subject) {
    absl::MutexLock l(&mu_);
    return held_[subject];
  }

  // Down: every call answers UNAVAILABLE.
  void SetDown(bool down) {
    absl::MutexLock l(&mu_);
    down_ = down;
  }
  // The next `n` Erase calls answer UNAVAILABLE.
  void FailNextErases(int n) {
    absl::MutexLock l(&mu_);
    fail_erases_ = n;
  }
  // Erase leaves `category` in place (and does not report it erased).
  void SetStubborn(const std::string& category) {
    absl::MutexLock l(&mu_);
    stubborn_ = category;
  }
  // The first Describe after an erasure still sees the data (a stale read).
  void SetLagging() {
    absl::MutexLock l(&mu_);
    lagging_ = true;
  }
  // The next Erase blocks until Release() or until the call is cancelled.
  void HangNextErase() {
    absl::MutexLock l(&mu_);
    hang_next_erase_ = true;
  }
  // Every Describe blocks until Release() or until the call is cancelled.
  void HangDescribes() {
    absl::MutexLock l(&mu_);
    hang_describes_ = true;
  }
  // Every exported record carries `bytes` of padding (a large export).
  void SetExportPadding(size_t bytes) {
    absl::MutexLock l(&mu_);
    padding_ = bytes;
  }
  // Every Export blocks until Release() or until the call is cancelled.
  void HangExports() {
    absl::MutexLock l(&mu_);
    hang_exports_ = true;
  }
  bool WaitUntilHanging() { return hanging_.WaitForNotificationWithTimeout(absl::Seconds(20)); }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

  // Calls received, including failed ones.
  int describe_calls() {
    absl::MutexLock l(&mu_);
    return describe_calls_;
  }
  int erase_calls() {
    absl::MutexLock l(&mu_);
    return static_cast<int>(erase_request_ids_.size());
  }
  int export_calls() {
    absl::MutexLock l(&mu_);
    return export_calls_;
  }
  // The request id of every Erase call, in order.
  std::vector<std::string> erase_request_ids() {
    absl::MutexLock l(&mu_);
    return erase_request_ids_;
  }
  // The e-mail addresses every Erase call carried, in order.
  std::vector<std::vector<std::string>> erase_addresses() {
    absl::MutexLock l(&mu_);
    return erase_addresses_;
  }
  // "describe" / "erase" for every call answered OK, in order.
  std::vector<std::string> answered() {
    absl::MutexLock l(&mu_);
    return answered_;
  }

  grpc::Status DescribeSubjectData(grpc::ServerContext* ctx,
                                   const sv1::DescribeSubjectDataRequest* req,
                                   sv1::DescribeSubjectDataResponse* resp) override {
    bool hang = false;
    {
      absl::MutexLock l(&mu_);
      ++describe_calls_;
      if (down_) return Unavailable();
      hang = hang_describes_;
    }
    if (hang) WaitForRelease(ctx);
    absl::MutexLock l(&mu_);
    answered_.push_back("describe");
    resp->set_service(name_);
    if (auto stale = stale_.find(req->subject_id()); stale != stale_.end()) {
      for (const sv1::DataCategory& c : stale->second) *resp->add_categories() = c;
      stale_.erase(stale);
      return grpc::Status::OK;
    }
    for (const sv1::DataCategory& c : held_[req->subject_id()]) *resp->add_categories() = c;
    return grpc::Status::OK;
  }

  // One record per held category ({"records": count}); "person" also lists
  // the subject's e-mail addresses as emails[].address, as contacts does.
  grpc::Status ExportSubjectData(grpc::ServerContext* ctx, const sv1::ExportSubjectDataRequest* req,
                                 sv1::ExportSubjectDataResponse* resp) override {
    bool hang = false;
    {
      absl::MutexLock l(&mu_);
      ++export_calls_;
      if (down_) return Unavailable();
      hang = hang_exports_;
    }
    if (hang) WaitForRelease(ctx);
    absl::MutexLock l(&mu_);
    resp->set_service(name_);
    for (const sv1::DataCategory& c : held_[req->subject_id()]) {
      sv1::ExportedRecord* record = resp->add_records();
      record->set_category(c.category());
      auto& fields = *record->mutable_data()->mutable_fields();
      fields["records"].set_number_value(static_cast<double>(c.record_count()));
      if (padding_ > 0) fields["padding"].set_string_value(std::string(padding_, 'p'));
      if (c.category() != "person") continue;
      auto* emails = fields["emails"].mutable_list_value();
      for (const std::string& address : emails_[req->subject_id()]) {
        (*emails->add_values()->mutable_struct_value()->mutable_fields())["address"]
            .set_string_value(address);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status EraseSubjectData(grpc::ServerContext* ctx, const sv1::EraseSubjectDataRequest* req,
                                sv1::EraseSubjectDataResponse* resp) override {
    bool hang = false;
    {
      absl::MutexLock l(&mu_);
      erase_request_ids_.push_back(req->request_id());
      erase_addresses_.emplace_back(req->email_addresses().begin(), req->email_addresses().end());
      if (down_) return Unavailable();
      if (fail_erases_ > 0) {
        --fail_erases_;
        return Unavailable();
      }
      hang = hang_next_erase_;
      hang_next_erase_ = false;
    }
    if (hang) {
      if (!hanging_.HasBeenNotified()) hanging_.Notify();
      WaitForRelease(ctx);
    }
    absl::MutexLock l(&mu_);
    answered_.push_back("erase");
    if (auto done = answers_.find(req->request_id()); done != answers_.end()) {
      if (done->second.first != req->subject_id()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "request_id: reused");
      }
      *resp = done->second.second;
      return grpc::Status::OK;
    }
    std::vector<sv1::DataCategory>& held = held_[req->subject_id()];
    if (lagging_) stale_[req->subject_id()] = held;
    std::vector<sv1::DataCategory> kept;
    resp->set_service(name_);
    for (const sv1::DataCategory& c : held) {
      if (c.legally_retained()) {
        *resp->add_retained() = c;
        kept.push_back(c);
      } else if (c.category() == stubborn_) {
        kept.push_back(c);
      } else {
        *resp->add_erased() = c;
      }
    }
    held = std::move(kept);
    resp->set_data_key_destroyed(true);
    answers_[req->request_id()] = {req->subject_id(), *resp};
    return grpc::Status::OK;
  }

 private:
  static grpc::Status Unavailable() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake target is down");
  }
  // Blocks until Release() or the call is cancelled (its deadline passed),
  // at most 20 s of real time so that a broken test fails instead of hanging.
  void WaitForRelease(grpc::ServerContext* ctx) {
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (!release_.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
      if (ctx->IsCancelled() || absl::Now() > give_up) return;
    }
  }

  const std::string name_;
  absl::Notification hanging_;
  absl::Notification release_;
  absl::Mutex mu_;
  std::map<std::string, std::vector<sv1::DataCategory>> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<sv1::DataCategory>> stale_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> emails_ ABSL_GUARDED_BY(mu_);
  // request id -> (subject id, answer)
  std::map<std::string, std::pair<std::string, sv1::EraseSubjectDataResponse>> answers_
      ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  int fail_erases_ ABSL_GUARDED_BY(mu_) = 0;
  std::string stubborn_ ABSL_GUARDED_BY(mu_);
  bool lagging_ ABSL_GUARDED_BY(mu_) = false;
  bool hang_next_erase_ ABSL_GUARDED_BY(mu_) = false;
  bool hang_describes_ ABSL_GUARDED_BY(mu_) = false;
  bool hang_exports_ ABSL_GUARDED_BY(mu_) = false;
  size_t padding_ ABSL_GUARDED_BY(mu_) = 0;
  int describe_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int export_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> erase_request_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> erase_addresses_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> answered_ ABSL_GUARDED_BY(mu_);
  // Last: stopped (in the destructor) before the state its handlers use.
  std::unique_ptr<rpc::ServerRunner> runner_;
};

// Records the completion notices; can be made to fail.
class FakeNotifier final : public Notifier {
 public:
  struct Notice {
    std::string request_id;
    v1::State state;
    std::vector<std::string> addresses;
    NoticeKind kind = NoticeKind::kErasureConfirmed;
  };
  absl::Status Send(NoticeKind kind, const v1::ErasureRequest& r,
                    const std::vector<std::string>& addresses) override {
    absl::MutexLock l(&mu_);
    notices_.push_back({r.request_id(), r.state(), addresses, kind});
    if (failures_ > 0) {
      --failures_;
      return absl::UnavailableError("mailing is down");
    }
    return absl::OkStatus();
  }
  void FailNext(int n) {
    absl::MutexLock l(&mu_);
    failures_ = n;
  }
  // Every call, failed ones included.
  std::vector<Notice> notices() {
    absl::MutexLock l(&mu_);
    return notices_;
  }

 private:
  absl::Mutex mu_;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Notice> notices_ ABSL_GUARDED_BY(mu_);
};

MATCHER_P2(NoticeOf, request_id, addresses, "") {
  return arg.request_id == request_id && arg.addresses == addresses &&
         (arg.state == v1::STATE_COMPLETED || arg.state == v1::STATE_COMPLETED_WITH_RETENTION);
}

class ErasureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { log::SetMinLevel(log::Level::kError); }

  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(bed_, crm::testing::ApiTestBed::Create(
                                       "erasure", {"consent", "contacts", "mailing", "gateway"}));
    CRM_ASSERT_OK_AND_ASSIGN(db_, crm::testing::CreateMigratedDatabase("erasure", "erasure", 8));
    ASSERT_THAT(outbox::EnsureSchema(*db_.pool), IsOk());
    std::vector<crypto::VersionedKey> keks;
    keks.push_back({1, crypto::RandomSecret(32)});
    CRM_ASSERT_OK_AND_ASSIGN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
    ring_.emplace(std::move(ring));
    CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes outbox_key,
                             outbox::LoadOrCreateKey(*db_.pool, *ring_));
    audit_ = std::make_unique<outbox::Writer>("erasure", outbox_key.Copy(), bed_->clock());
    relay_ = std::make_unique<outbox::Relay>(*db_.pool, outbox_key.Copy(), sink_, bed_->clock());
    CRM_ASSERT_OK_AND_ASSIGN(crypto::Ed25519PrivateKey key, crypto::Ed25519PrivateKey::Generate());
    key_.emplace(std::move(key));
    for (const std::string& name : TargetNames()) {
      auto target = std::make_unique<FakeTarget>(name);
      ASSERT_THAT(target->Start(*bed_), IsOk());
      targets_[name] = std::move(target);
    }
    ASSERT_THAT(StartService(absl::ZeroDuration()), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(worker_, NewOrchestrator(Options()));
  }

  void TearDown() override {
    server_.reset();
    for (auto& [name, target] : targets_) target->Release();
  }

  // What the tests run the worker with: retries within a minute.
  static OrchestratorOptions Options() {
    OrchestratorOptions o;
    o.call_deadline = absl::Seconds(20);
    o.lease = absl::Minutes(2);
    o.max_rounds = 3;
    o.first_retry = absl::Seconds(1);
    o.max_retry = absl::Minutes(1);
    o.record = Record();
    return o;
  }

  // The record of processing access exports take their Art. 15 facts from:
  // "person" and "consent_records" described, the rest by the default...
  // except that there is none, so they say "described": false.
  static std::shared_ptr<const ProcessingRecord> Record() {
    static const auto* const record = new std::shared_ptr<const ProcessingRecord>(
        std::make_shared<const ProcessingRecord>(*ProcessingRecord::Parse(R"json({
      "controller": {"name": "Example Shop GmbH", "contact": "privacy@shop.example"},
      "rights": "You may ask us to correct or erase your data.",
      "categories": {
        "person": {"purposes": ["customer relationship", "orders"],
                   "recipients": ["payment processor"], "source": "you, when you registered",
                   "retention": "until you ask us to erase it"},
        "consent_records": {"purposes": ["proof of consent (Art. 7(1))"], "recipients": ["none"],
                            "source": "you", "retention": "3 years after withdrawal"}}})json")));
    return *record;
  }

  // (Re)starts the ErasureService with `cancel_window`.
  absl::Status StartService(absl::Duration cancel_window) {
    server_.reset();
    service_ = std::make_unique<ErasureService>(ErasureDeps{.db = *db_.pool,
                                                            .verifier = bed_->auth().verifier(),
                                                            .audit = *audit_,
                                                            .clock = bed_->clock(),
                                                            .certificate_key = key_->PublicKey(),
                                                            .targets = TargetNames(),
                                                            .cancel_window = cancel_window,
                                                            .lookup = &lookup_,
                                                            .ring = &*ring_,
                                                            .record = Record(),
                                                            .on_created = [this] { ++created_; }});
    rpc::AccessPolicy policy;
    policy.AllowService(v1::Erasure::service_full_name());
    CRM_ASSIGN_OR_RETURN(server_, bed_->Serve("erasure", std::move(policy), {service_.get()}));
    CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                         bed_->Channel("gateway", server_->port(), "erasure"));
    stub_ = v1::Erasure::NewStub(channel);
    return absl::OkStatus();
  }

  // An orchestrator calling every fake target as "erasure", over mTLS.
  absl::StatusOr<std::unique_ptr<Orchestrator>> NewOrchestrator(
      const OrchestratorOptions& options) {
    std::vector<Target> targets;
    for (const std::string& name : TargetNames()) {
      CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                           bed_->Channel("erasure", targets_.at(name)->port(), name));
      targets.push_back({.service = name, .stub = sv1::SubjectData::NewStub(channel)});
    }
    return std::make_unique<Orchestrator>(*db_.pool, std::move(targets), *key_, *ring_, &notifier_,
                                          *audit_, bed_->clock(), options);
  }

  FakeTarget& target(const std::string& name) { return *targets_.at(name); }

  // A data-protection officer's token (fresh: the fake clock moves).
  std::string Dpo() { return bed_->Token(kDpo, {"dsr.manage"}); }

  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                            const Req& request, std::optional<std::string> token = std::nullopt) {
    return crm::testing::UnaryCall(*stub_, rpc, request, token.has_value() ? *token : Dpo());
  }

  absl::StatusOr<v1::SubmitErasureResponse> Submit(
      const std::string& subject, v1::ErasureReason reason = v1::ERASURE_REASON_SUBJECT_REQUEST) {
    v1::SubmitErasureRequest req;
    req.set_subject_id(subject);
    req.set_reason(reason);
    return Call(&Stub::SubmitErasure, req);
  }
  absl::StatusOr<v1::ErasureRequest> Get(const std::string& id) {
    v1::GetErasureRequest req;
    req.set_request_id(id);
    CRM_ASSIGN_OR_RETURN(v1::GetErasureResponse resp, Call(&Stub::GetErasure, req));
    return resp.request();
  }
  absl::StatusOr<v1::ErasureRequest> Cancel(const std::string& id) {
    v1::CancelErasureRequest req;
    req.set_request_id(id);
    CRM_ASSIGN_OR_RETURN(v1::CancelErasureResponse resp, Call(&Stub::CancelErasure, req));
    return resp.request();
  }
  absl::StatusOr<v1::ErasureRequest> Extend(const std::string& id, int months,
                                            const std::string& reason = "complex request") {
    v1::ExtendErasureRequest req;
    req.set_request_id(id);
    req.set_months(months);
    req.set_reason(reason);
    CRM_ASSIGN_OR_RETURN(v1::ExtendErasureResponse resp, Call(&Stub::ExtendErasure, req));
    return resp.request();
  }
  absl::StatusOr<v1::SubmitErasureResponse> SubmitAccess(const std::string& subject) {
    v1::SubmitAccessRequest req;
    req.set_subject_id(subject);
    return Call(&Stub::SubmitAccess, req);
  }
  // The export of access request `id`, its chunks concatenated.
  absl::StatusOr<std::string> Export(const std::string& id,
                                     std::optional<std::string> token = std::nullopt) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token.has_value() ? *token : Dpo()));
    v1::GetAccessExportRequest req;
    req.set_request_id(id);
    std::unique_ptr<grpc::ClientReader<v1::AccessExportChunk>> reader =
        stub_->GetAccessExport(&ctx, req);
    std::string out;
    v1::AccessExportChunk chunk;
    while (reader->Read(&chunk)) {
      if (chunk.data().size() > kExportChunkSize + 1) {
        return absl::InternalError("a chunk larger than promised");
      }
      out += chunk.data();
    }
    const grpc::Status s = reader->Finish();
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    return out;
  }
  // A count from the erasure database.
  int64_t Count(const std::string& sql, const std::string& request_id) {
    absl::StatusOr<int64_t> n =
        db_.pool->TransactValue<int64_t>([&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
          return tx.exec_params1(sql, request_id)[0].as<int64_t>();
        });
    EXPECT_THAT(n, IsOk());
    return n.value_or(-1);
  }
  absl::StatusOr<v1::GetCertificateResponse> Certificate(const std::string& id) {
    v1::GetCertificateRequest req;
    req.set_request_id(id);
    return Call(&Stub::GetCertificate, req);
  }

  // The request's state (UNSPECIFIED, and a failure, if it cannot be read).
  v1::State StateOf(const std::string& id) {
    absl::StatusOr<v1::ErasureRequest> r = Get(id);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->state() : v1::STATE_UNSPECIFIED;
  }

  // Submits an erasure of `subject` and returns its request id ("" on error).
  std::string SubmitNew(const std::string& subject) {
    absl::StatusOr<v1::SubmitErasureResponse> r = Submit(subject);
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return "";
    EXPECT_TRUE(r->created());
    return r->request().request_id();
  }

  // Typical holdings of `subject` in every target.
  void Seed(const std::string& subject) {
    target("consent").Hold(subject, "consent_records", 4);
    target("contacts").Hold(subject, "person", 1);
    target("contacts").SetEmails(subject, {kAddress});
    target("contacts").Hold(subject, "interactions", 3);
    target("mailing").Hold(subject, "subscriptions", 2);
  }

  static const v1::Target* TargetIn(const v1::ErasureRequest& r, const std::string& service) {
    for (const v1::Target& t : r.targets()) {
      if (t.service() == service) return &t;
    }
    ADD_FAILURE() << "no target " << service;
    static const v1::Target kNone;
    return &kNone;
  }

  // The request's sealed addresses as stored, or nullopt once dropped.
  std::optional<std::string> StoredAddresses(const std::string& request_id) {
    absl::StatusOr<std::optional<std::string>> stored =
        db_.pool->TransactValue<std::optional<std::string>>(
            [&](pqxx::work& tx) -> absl::StatusOr<std::optional<std::string>> {
              const pqxx::row row = tx.exec_params1(
                  "SELECT addresses FROM requests WHERE request_id = $1::uuid", request_id);
              if (row[0].is_null()) return std::nullopt;
              return pqxx::binarystring(row[0]).str();
            });
    EXPECT_THAT(stored, IsOk());
    return stored.value_or(std::nullopt);
  }

  // Audit events of `request_id` shipped from the outbox, actions only.
  std::vector<std::string> AuditActions(const std::string& request_id) {
    for (int i = 0; i < 10; ++i) {
      absl::StatusOr<outbox::CycleResult> r = relay_->RunOnce();
      EXPECT_THAT(r.status(), IsOk());
      if (!r.ok() || r->shipped == 0) break;
    }
    std::vector<std::string> out;
    for (const crm::audit::v1::Event& e : sink_.Events()) {
      if (e.resource() != absl::StrCat("erasure/", request_id)) continue;
      EXPECT_EQ(e.service(), "erasure");
      out.push_back(e.action());
    }
    return out;
  }

  std::unique_ptr<crm::testing::ApiTestBed> bed_;
  crm::testing::MigratedDatabase db_;
  std::optional<crypto::KeyRing> ring_;
  outbox::CapturingSink sink_;
  std::unique_ptr<outbox::Writer> audit_;
  std::unique_ptr<outbox::Relay> relay_;
  std::optional<crypto::Ed25519PrivateKey> key_;
  std::map<std::string, std::unique_ptr<FakeTarget>> targets_;
  FakeNotifier notifier_;
  // Contacts' look-up by e-mail address, as the orchestrator's token sees it.
  class FakeLookup final : public SubjectLookup {
   public:
    absl::StatusOr<std::vector<std::string>> ByEmail(const std::string& email) override {
      absl::MutexLock l(&mu_);
      if (!status_.ok()) return status_;
      auto it = persons_.find(email);
      return it == persons_.end() ? std::vector<std::string>{} : it->second;
    }
    void Put(const std::string& email, std::vector<std::string> subjects) {
      absl::MutexLock l(&mu_);
      persons_[email] = std::move(subjects);
    }
    void Fail(absl::Status s) {
      absl::MutexLock l(&mu_);
      status_ = std::move(s);
    }

   private:
    absl::Mutex mu_;
    std::map<std::string, std::vector<std::string>> persons_ ABSL_GUARDED_BY(mu_);
    absl::Status status_ ABSL_GUARDED_BY(mu_);
  } lookup_;
  std::unique_ptr<ErasureService> service_;
  std::atomic<int> created_{0};  // calls of on_created (the worker's wake-up)
  std::unique_ptr<rpc::ServerRunner> server_;
  std::unique_ptr<Stub> stub_;
  std::unique_ptr<Orchestrator> worker_;
};

// Writes `content` to `path`; false on failure.
bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return out.good();
}

// `openssl pkeyutl -verify` of `body` and `signature` with `public_key_pem`,
// in `dir`: the process's exit status.
absl::StatusOr<crm::testing::ExitStatus> OpensslVerify(const std::string& dir,
                                                       const std::string& public_key_pem,
                                                       const std::string& body,
                                                       const std::string& signature) {
  const std::string pub = absl::StrCat(dir, "/erasure.pub.pem");
  const std::string cert = absl::StrCat(dir, "/certificate.json");
  const std::string sig = absl::StrCat(dir, "/certificate.sig");
  if (!WriteFile(pub, public_key_pem) || !WriteFile(cert, body) || !WriteFile(sig, signature)) {
    return absl::InternalError("cannot write the files for openssl");
  }
  crm::testing::Subprocess::Options options;
  options.args = {"/usr/bin/openssl", "pkeyutl", "-verify", "-pubin",   "-inkey", pub,
                  "-rawin",           "-in",     cert,      "-sigfile", sig};
  options.output_file = absl::StrCat(dir, "/openssl.log");
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<crm::testing::Subprocess> p,
                       crm::testing::Subprocess::Start(options));
  return p->WaitForExit(absl::Seconds(30));
}

// The categories of the certificate's `list` ("found", "erased", "retained")
// of `service`, as "category:records".
std::vector<std::string> CertificateCategories(const json::Value& cert, const std::string& service,
                                               const std::string& list) {
  std::vector<std::string> out;
  const json::Value* targets = cert.Find("targets");
  if (targets == nullptr || !targets->is_array()) return {"no targets"};
  for (const json::Value& t : targets->array()) {
    const json::Value* name = t.Find("service");
    if (name == nullptr || !name->is_string() || name->string_value() != service) continue;
    const json::Value* cs = t.Find(list);
    if (cs == nullptr || !cs->is_array()) return {"no list"};
    for (const json::Value& c : cs->array()) {
      const json::Value* category = c.Find("category");
      const json::Value* records = c.Find("records");
      if (category == nullptr || records == nullptr || !category->is_string()) return {"bad"};
      out.push_back(absl::StrCat(category->string_value(), ":", records->AsInt64().value_or(-1)));
    }
  }
  return out;
}

// 1. The happy path, with the certificate checked in-process and by OpenSSL.
TEST_F(ErasureTest, SubmittedRequestCompletesEverywhereWithAVerifiableCertificate) {
  Seed(kAda);
  const absl::Time received = bed_->clock().Now();
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse submitted, Submit(kAda));
  ASSERT_TRUE(submitted.created());
  const v1::ErasureRequest& r0 = submitted.request();
  const std::string& id = r0.request_id();
  EXPECT_EQ(r0.state(), v1::STATE_RECEIVED);
  EXPECT_EQ(r0.subject_id(), kAda);
  EXPECT_EQ(r0.requester(), kDpo);
  EXPECT_EQ(rpc::ToTime(r0.received_at()), received);
  EXPECT_EQ(rpc::ToTime(r0.due_at()), AddMonths(received, 1));
  ASSERT_THAT(r0.targets(), SizeIs(3));
  for (const v1::Target& t : r0.targets()) EXPECT_EQ(t.state(), v1::TARGET_STATE_PENDING);

  bed_->clock().Advance(absl::Seconds(5));
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 1);
  EXPECT_EQ(stats.completed, 1);
  EXPECT_EQ(stats.target_failures, 0);

  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
  EXPECT_EQ(r.rounds(), 1);
  EXPECT_EQ(rpc::ToTime(r.completed_at()), bed_->clock().Now());
  EXPECT_THAT(r.attention(), IsEmpty());
  for (const v1::Target& t : r.targets()) {
    SCOPED_TRACE(t.service());
    EXPECT_EQ(t.state(), v1::TARGET_STATE_VERIFIED);
    EXPECT_EQ(t.failures(), 0);
    EXPECT_THAT(t.retained(), IsEmpty());
    EXPECT_TRUE(t.has_erased_at());
    EXPECT_TRUE(t.has_verified_at());
    // Described (the plan recorded), erased, described again: in that order.
    EXPECT_THAT(target(t.service()).answered(), ElementsAre("describe", "erase", "describe"));
    EXPECT_THAT(target(t.service()).erase_request_ids(), ElementsAre(id));
    EXPECT_THAT(target(t.service()).Held(kAda), IsEmpty());
    // Every Erase carried the addresses read from contacts before.
    EXPECT_THAT(target(t.service()).erase_addresses(),
                ElementsAre(std::vector<std::string>{kAddress}));
  }
  // The subject was told once, and then the addresses were destroyed.
  EXPECT_THAT(notifier_.notices(), ElementsAre(NoticeOf(id, std::vector<std::string>{kAddress})));
  EXPECT_EQ(StoredAddresses(id), std::nullopt);
  EXPECT_THAT(TargetIn(r, "contacts")->planned(),
              ElementsAre(CategoryIs("person", 1), CategoryIs("interactions", 3)));
  EXPECT_THAT(TargetIn(r, "contacts")->erased(),
              ElementsAre(CategoryIs("person", 1), CategoryIs("interactions", 3)));
  EXPECT_THAT(TargetIn(r, "consent")->planned(), ElementsAre(CategoryIs("consent_records", 4)));
  EXPECT_THAT(TargetIn(r, "mailing")->erased(), ElementsAre(CategoryIs("subscriptions", 2)));

  // Audited: the submission and every move of the worker.
  EXPECT_THAT(AuditActions(id), ElementsAre("erasure.request.received", "erasure.request.planned",
                                            "erasure.request.erasing", "erasure.request.verifying",
                                            "erasure.request.completed"));

  // The certificate: no subject id, the counts, and a signature by the key
  // GetVerificationKey publishes (to any authenticated caller).
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetCertificateResponse cert, Certificate(id));
  EXPECT_THAT(cert.certificate(), Not(HasSubstr(kAda)));
  EXPECT_THAT(cert.signature(), SizeIs(64));
  CRM_ASSERT_OK_AND_ASSIGN(json::Value body, json::Parse(cert.certificate()));
  ASSERT_TRUE(body.is_object());
  ASSERT_NE(body.Find("request_id"), nullptr);
  EXPECT_EQ(body.Find("request_id")->string_value(), id);
  EXPECT_EQ(body.Find("outcome")->string_value(), "completed");
  EXPECT_EQ(body.Find("reason")->string_value(), "subject_request");
  EXPECT_EQ(body.Find("key_id")->string_value(), KeyId(key_->PublicKey()));
  EXPECT_THAT(CertificateCategories(body, "contacts", "found"),
              ElementsAre("person:1", "interactions:3"));
  EXPECT_THAT(CertificateCategories(body, "contacts", "erased"),
              ElementsAre("person:1", "interactions:3"));
  EXPECT_THAT(CertificateCategories(body, "consent", "erased"), ElementsAre("consent_records:4"));
  EXPECT_THAT(CertificateCategories(body, "mailing", "erased"), ElementsAre("subscriptions:2"));

  v1::GetVerificationKeyRequest key_req;
  CRM_ASSERT_OK_AND_ASSIGN(
      v1::GetVerificationKeyResponse key_resp,
      Call(&Stub::GetVerificationKey, key_req, bed_->Token(kBob, {"contacts.read"})));
  CRM_ASSERT_OK_AND_ASSIGN(crypto::Ed25519PublicKey pub,
                           crypto::Ed25519PublicKey::FromPem(key_resp.public_key_pem()));
  EXPECT_TRUE(pub.Verify(cert.certificate(), cert.signature()));
  std::string forged = cert.certificate();
  const size_t at = forged.find("\"records\":3");
  ASSERT_NE(at, std::string::npos);
  forged[at + 10] = '0';  // "records":0
  EXPECT_FALSE(pub.Verify(forged, cert.signature()));

  // Offline, as docs/erasure.md tells an auditor to.
  CRM_ASSERT_OK_AND_ASSIGN(
      crm::testing::ExitStatus good,
      OpensslVerify(bed_->dir(), key_resp.public_key_pem(), cert.certificate(), cert.signature()));
  EXPECT_TRUE(good.exited_with(0)) << good;
  CRM_ASSERT_OK_AND_ASSIGN(
      crm::testing::ExitStatus bad,
      OpensslVerify(bed_->dir(), key_resp.public_key_pem(), forged, cert.signature()));
  EXPECT_FALSE(bad.exited_with(0)) << bad;
  EXPECT_EQ(bad.signal, 0) << bad;

  // Finished: nothing more to claim.
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
}

// 2.
TEST_F(ErasureTest, SecondSubmissionWhileOpenAnswersTheOpenRequest) {
  Seed(kAda);
  const std::string first = SubmitNew(kAda);
  EXPECT_EQ(created_, 1);  // the worker is woken for the new request
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse again,
                           Submit(kAda, v1::ERASURE_REASON_ADMINISTRATOR));
  EXPECT_FALSE(again.created());
  EXPECT_EQ(created_, 1);  // not for the one answered again
  EXPECT_EQ(again.request().request_id(), first);
  EXPECT_EQ(again.request().reason(), v1::ERASURE_REASON_SUBJECT_REQUEST);
  // Another subject is another request.
  Seed(kBob);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse bob_submitted,
                           Submit(kBob, v1::ERASURE_REASON_ADMINISTRATOR));
  const std::string bob = bob_submitted.request().request_id();
  EXPECT_TRUE(bob_submitted.created());
  EXPECT_EQ(created_, 2);
  EXPECT_NE(bob, first);

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 2);
  // Only the subject's own request sends the completion notice.
  EXPECT_THAT(notifier_.notices(),
              ElementsAre(NoticeOf(first, std::vector<std::string>{kAddress})));
  EXPECT_EQ(StoredAddresses(bob), std::nullopt);
  EXPECT_EQ(StateOf(first), v1::STATE_COMPLETED);

  // Finished: a new submission is a new request.
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse later, Submit(kAda));
  EXPECT_TRUE(later.created());
  EXPECT_NE(later.request().request_id(), first);
  EXPECT_EQ(later.request().state(), v1::STATE_RECEIVED);
  // One "received" event per request created, none for the answered one.
  const std::vector<std::string> actions = AuditActions(first);
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "erasure.request.received"), 1);
}

// 3. A target down while planning: the others go on, it is retried with
// backoff (never before its retry time), and the request completes once it
// is back.
TEST_F(ErasureTest, ATargetThatIsDownDelaysTheRequestButNeverFailsIt) {
  Seed(kAda);
  const std::string id = SubmitNew(kAda);
  target("consent").SetDown(true);

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 1);
  EXPECT_EQ(stats.target_failures, 1);
  EXPECT_EQ(stats.completed, 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_RECEIVED);
  const v1::Target* consent = TargetIn(r, "consent");
  EXPECT_EQ(consent->state(), v1::TARGET_STATE_PENDING);
  EXPECT_EQ(consent->failures(), 1);
  EXPECT_THAT(consent->last_error(), HasSubstr("fake target is down"));
  absl::Time retry = rpc::ToTime(consent->next_attempt_at());
  EXPECT_GT(retry, bed_->clock().Now());
  EXPECT_LE(retry, bed_->clock().Now() + Options().first_retry * 1.5);
  EXPECT_EQ(TargetIn(r, "contacts")->state(), v1::TARGET_STATE_PLANNED);
  EXPECT_EQ(TargetIn(r, "mailing")->state(), v1::TARGET_STATE_PLANNED);
  EXPECT_THAT(TargetIn(r, "contacts")->planned(),
              ElementsAre(CategoryIs("person", 1), CategoryIs("interactions", 3)));

  // Not before the retry time.
  bed_->clock().Set(retry - absl::Milliseconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  EXPECT_EQ(target("consent").describe_calls(), 1);
  // Then retried, still down: the backoff grows; the others are not called.
  bed_->clock().Set(retry);
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 1);
  EXPECT_EQ(stats.target_failures, 1);
  EXPECT_EQ(target("consent").describe_calls(), 2);
  EXPECT_EQ(target("contacts").describe_calls(), 1);
  EXPECT_EQ(target("mailing").describe_calls(), 1);
  CRM_ASSERT_OK_AND_ASSIGN(r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_RECEIVED);
  EXPECT_EQ(TargetIn(r, "consent")->failures(), 2);
  retry = rpc::ToTime(TargetIn(r, "consent")->next_attempt_at());
  EXPECT_GE(retry - bed_->clock().Now(), Options().first_retry);  // 2 s with jitter

  // Back: everything is erased.
  target("consent").SetDown(false);
  bed_->clock().Set(retry);
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 1);
  CRM_ASSERT_OK_AND_ASSIGN(r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
  for (const v1::Target& t : r.targets()) {
    SCOPED_TRACE(t.service());
    EXPECT_EQ(t.state(), v1::TARGET_STATE_VERIFIED);
    EXPECT_EQ(t.failures(), 0);
    EXPECT_THAT(t.last_error(), IsEmpty());
    EXPECT_FALSE(t.has_next_attempt_at());
    EXPECT_THAT(target(t.service()).Held(kAda), IsEmpty());
  }
  EXPECT_THAT(TargetIn(r, "consent")->erased(), ElementsAre(CategoryIs("consent_records", 4)));
}

// 3 (continued). A target failing in the erase step: the plan is kept, the
// others are not erased twice, and it is erased once it answers.
TEST_F(ErasureTest, ATargetFailingToEraseIsRetriedAndNothingIsLost) {
  Seed(kAda);
  const std::string id = SubmitNew(kAda);
  target("mailing").FailNextErases(2);

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.target_failures, 1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_ERASING);
  const v1::Target* mailing = TargetIn(r, "mailing");
  EXPECT_EQ(mailing->state(), v1::TARGET_STATE_PLANNED);
  EXPECT_EQ(mailing->failures(), 1);
  EXPECT_THAT(mailing->last_error(), HasSubstr("fake target is down"));
  // The plan was recorded before anything was erased.
  EXPECT_THAT(mailing->planned(), ElementsAre(CategoryIs("subscriptions", 2)));
  EXPECT_THAT(mailing->erased(), IsEmpty());
  EXPECT_THAT(target("mailing").Held(kAda), SizeIs(1));
  EXPECT_EQ(TargetIn(r, "contacts")->state(), v1::TARGET_STATE_ERASED);
  EXPECT_EQ(TargetIn(r, "consent")->state(), v1::TARGET_STATE_ERASED);
  // The addresses wait for the retry, sealed.
  const std::optional<std::string> sealed = StoredAddresses(id);
  ASSERT_TRUE(sealed.has_value());
  EXPECT_THAT(*sealed, Not(HasSubstr(kAddress)));

  for (int attempt = 2; attempt <= 3; ++attempt) {
    SCOPED_TRACE(attempt);
    bed_->clock().Set(rpc::ToTime(TargetIn(r, "mailing")->next_attempt_at()));
    CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
    EXPECT_EQ(stats.claimed, 1);
    CRM_ASSERT_OK_AND_ASSIGN(r, Get(id));
  }
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
  EXPECT_THAT(TargetIn(r, "mailing")->erased(), ElementsAre(CategoryIs("subscriptions", 2)));
  EXPECT_EQ(TargetIn(r, "mailing")->failures(), 0);
  EXPECT_THAT(target("mailing").Held(kAda), IsEmpty());
  EXPECT_THAT(target("mailing").erase_request_ids(), ElementsAre(id, id, id));
  EXPECT_THAT(target("mailing").erase_addresses().back(), ElementsAre(kAddress));
  EXPECT_EQ(StoredAddresses(id), std::nullopt);
  EXPECT_THAT(target("contacts").erase_request_ids(), ElementsAre(id));
  EXPECT_THAT(target("consent").erase_request_ids(), ElementsAre(id));
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetCertificateResponse cert, Certificate(id));
  CRM_ASSERT_OK_AND_ASSIGN(json::Value body, json::Parse(cert.certificate()));
  EXPECT_THAT(CertificateCategories(body, "mailing", "erased"), ElementsAre("subscriptions:2"));
}

// 4.
TEST_F(ErasureTest, LegallyRetainedDataCompletesWithRetentionAndIsCertified) {
  Seed(kAda);
  const absl::Time purge = Utc(2032, 1, 1);
  target("contacts").HoldRetained(kAda, "invoices", 5, "accounting law (5 years)", purge);
  const std::string id = SubmitNew(kAda);

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED_WITH_RETENTION);
  const v1::Target* contacts = TargetIn(r, "contacts");
  EXPECT_EQ(contacts->state(), v1::TARGET_STATE_VERIFIED);
  EXPECT_THAT(contacts->erased(),
              ElementsAre(CategoryIs("person", 1), CategoryIs("interactions", 3)));
  ASSERT_THAT(contacts->retained(), ElementsAre(CategoryIs("invoices", 5)));
  EXPECT_EQ(contacts->retained(0).retention_basis(), "accounting law (5 years)");
  EXPECT_EQ(rpc::ToTime(contacts->retained(0).purge_after()), purge);
  EXPECT_THAT(TargetIn(r, "consent")->retained(), IsEmpty());
  EXPECT_THAT(target("contacts").Held(kAda), ElementsAre(CategoryIs("invoices", 5)));

  CRM_ASSERT_OK_AND_ASSIGN(v1::GetCertificateResponse cert, Certificate(id));
  EXPECT_TRUE(key_->PublicKey().Verify(cert.certificate(), cert.signature()));
  CRM_ASSERT_OK_AND_ASSIGN(json::Value body, json::Parse(cert.certificate()));
  EXPECT_EQ(body.Find("outcome")->string_value(), "completed_with_retention");
  EXPECT_THAT(CertificateCategories(body, "contacts", "retained"), ElementsAre("invoices:5"));
  EXPECT_THAT(CertificateCategories(body, "consent", "retained"), IsEmpty());
  EXPECT_THAT(cert.certificate(),
              HasSubstr("{\"category\":\"invoices\",\"records\":5,\"basis\":\"accounting law (5 "
                        "years)\",\"purge_after\":\"2032-01-01T00:00:00.000000Z\"}"));
  EXPECT_THAT(cert.certificate(), Not(HasSubstr(kAda)));
}

// 5. Erase keeps leaving a category behind: after max_rounds the request
// needs attention, naming where; the other targets are not erased again.
TEST_F(ErasureTest, DataLeftAfterMaxRoundsNeedsAttentionNamingServiceAndCategory) {
  OrchestratorOptions options = Options();
  options.max_rounds = 2;
  CRM_ASSERT_OK_AND_ASSIGN(worker_, NewOrchestrator(options));
  Seed(kAda);
  target("contacts").SetStubborn("interactions");
  const std::string id = SubmitNew(kAda);

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.needs_attention, 1);
  EXPECT_EQ(stats.completed, 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_NEEDS_ATTENTION);
  EXPECT_EQ(r.rounds(), 2);
  EXPECT_THAT(r.attention(), AllOf(HasSubstr("contacts"), HasSubstr("interactions")));
  EXPECT_THAT(r.attention(), Not(AnyOf(HasSubstr("consent"), HasSubstr("mailing"))));
  EXPECT_EQ(TargetIn(r, "contacts")->state(), v1::TARGET_STATE_PLANNED);
  EXPECT_EQ(TargetIn(r, "consent")->state(), v1::TARGET_STATE_VERIFIED);
  EXPECT_EQ(TargetIn(r, "mailing")->state(), v1::TARGET_STATE_VERIFIED);
  // Round two under a key of its own: a target's recorded answer to the
  // first would otherwise come back and nothing be erased.
  EXPECT_THAT(target("contacts").erase_request_ids(), ElementsAre(id, RoundRequestId(id, 2)));
  EXPECT_NE(RoundRequestId(id, 2), id);
  EXPECT_TRUE(base::IsUuid(RoundRequestId(id, 2)));
  EXPECT_THAT(target("consent").erase_request_ids(), ElementsAre(id));
  EXPECT_THAT(target("mailing").erase_request_ids(), ElementsAre(id));
  EXPECT_THAT(Certificate(id), StatusIs(absl::StatusCode::kFailedPrecondition));
  const std::vector<std::string> actions = AuditActions(id);
  ASSERT_THAT(actions, Not(IsEmpty()));
  EXPECT_EQ(actions.back(), "erasure.request.needs_attention");

  // Left for a person: the worker does not take it up again.
  bed_->clock().Advance(absl::Hours(1));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  EXPECT_EQ(target("contacts").erase_calls(), 2);
}

// 5 (continued). Data a target still reports once after erasing (a stale
// read) takes another round; the replayed answer is not counted twice.
TEST_F(ErasureTest, DataSeenAgainOnVerificationTakesAnotherRoundAndIsCountedOnce) {
  Seed(kAda);
  target("mailing").SetLagging();
  const std::string id = SubmitNew(kAda);

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
  EXPECT_EQ(r.rounds(), 2);
  EXPECT_THAT(target("mailing").erase_request_ids(), ElementsAre(id, RoundRequestId(id, 2)));
  EXPECT_THAT(target("contacts").erase_request_ids(), ElementsAre(id));
  EXPECT_THAT(TargetIn(r, "mailing")->erased(), ElementsAre(CategoryIs("subscriptions", 2)));
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetCertificateResponse cert, Certificate(id));
  CRM_ASSERT_OK_AND_ASSIGN(json::Value body, json::Parse(cert.certificate()));
  EXPECT_THAT(CertificateCategories(body, "mailing", "erased"), ElementsAre("subscriptions:2"));
  EXPECT_EQ(body.Find("rounds")->AsInt64(), 2);
}

// 6. A replica claims and crashes before doing anything: nobody else takes
// the request until its lease has run out.
TEST_F(ErasureTest, AClaimedRequestWaitsForItsLeaseToRunOut) {
  Seed(kAda);
  const std::string id = SubmitNew(kAda);
  std::vector<std::string> claimed;
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(claimed, ErasureStore::Claim(tx, 16, Options().lease, bed_->clock().Now(),
                                                      base::NewUuid()));
    return absl::OkStatus();
  }),
              IsOk());
  ASSERT_THAT(claimed, ElementsAre(id));

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  bed_->clock().Advance(Options().lease);  // the lease's last instant
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  for (const std::string& name : TargetNames()) EXPECT_EQ(target(name).describe_calls(), 0);

  bed_->clock().Advance(absl::Milliseconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 1);
  EXPECT_EQ(stats.completed, 1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
}

// 6 (continued). A replica hangs in the middle of the erase step (as good as
// crashed): a second one takes over once the lease has run out and
// completes the request; the first one's late write changes nothing; every
// target only ever sees the one request id.
TEST_F(ErasureTest, AnotherReplicaFinishesTheRequestOfAHungOneAfterTheLease) {
  Seed(kAda);
  const std::string id = SubmitNew(kAda);
  target("mailing").HangNextErase();
  OrchestratorOptions patient = Options();
  patient.call_deadline = absl::Seconds(60);
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Orchestrator> first, NewOrchestrator(patient));
  absl::StatusOr<AdvanceStats> first_result;
  struct Joiner {
    FakeTarget& hanging;
    std::thread thread;
    ~Joiner() {
      hanging.Release();
      if (thread.joinable()) thread.join();
    }
  } joiner{target("mailing"), std::thread([&] { first_result = first->RunOnce(); })};
  ASSERT_TRUE(target("mailing").WaitUntilHanging());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_ERASING);  // planned and erasing recorded

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  bed_->clock().Advance(Options().lease + absl::Seconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 1);
  EXPECT_EQ(stats.completed, 1);
  CRM_ASSERT_OK_AND_ASSIGN(r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
  // Erased twice (idempotently): the replayed answers keep the counts.
  EXPECT_THAT(TargetIn(r, "contacts")->erased(),
              ElementsAre(CategoryIs("person", 1), CategoryIs("interactions", 3)));
  EXPECT_THAT(TargetIn(r, "mailing")->erased(), ElementsAre(CategoryIs("subscriptions", 2)));
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetCertificateResponse cert, Certificate(id));

  target("mailing").Release();
  joiner.thread.join();
  EXPECT_THAT(first_result, IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest after, Get(id));
  EXPECT_EQ(after.SerializeAsString(), r.SerializeAsString());
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetCertificateResponse cert_after, Certificate(id));
  EXPECT_EQ(cert_after.certificate(), cert.certificate());
  for (const std::string& name : TargetNames()) {
    SCOPED_TRACE(name);
    EXPECT_THAT(target(name).erase_request_ids(), ElementsAre(id, id));
  }
  const std::vector<std::string> actions = AuditActions(id);
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "erasure.request.completed"), 1);
  EXPECT_THAT(notifier_.notices(), ElementsAre(NoticeOf(id, std::vector<std::string>{kAddress})));
}

// A target that does not answer: the call ends at call_deadline (real time:
// a gRPC deadline) and is retried like any failure.
TEST_F(ErasureTest, AHangingTargetFailsAtTheCallDeadlineAndIsRetried) {
  OrchestratorOptions options = Options();
  options.call_deadline = absl::Milliseconds(500);
  CRM_ASSERT_OK_AND_ASSIGN(worker_, NewOrchestrator(options));
  Seed(kAda);
  target("contacts").HangDescribes();
  const std::string id = SubmitNew(kAda);

  const absl::Time started = absl::Now();
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_LT(absl::Now() - started, absl::Seconds(10));
  EXPECT_EQ(stats.target_failures, 1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_RECEIVED);
  EXPECT_EQ(TargetIn(r, "contacts")->state(), v1::TARGET_STATE_PENDING);
  EXPECT_THAT(TargetIn(r, "contacts")->last_error(),
              HasSubstr(absl::StrCat(grpc::StatusCode::DEADLINE_EXCEEDED, ": ")));
  EXPECT_EQ(TargetIn(r, "consent")->state(), v1::TARGET_STATE_PLANNED);
}

// The same for reading the addresses from contacts' export.
TEST_F(ErasureTest, AHangingAddressExportFailsAtTheCallDeadlineAndIsRetried) {
  OrchestratorOptions options = Options();
  options.call_deadline = absl::Milliseconds(500);
  CRM_ASSERT_OK_AND_ASSIGN(worker_, NewOrchestrator(options));
  Seed(kAda);
  target("contacts").HangExports();
  const std::string id = SubmitNew(kAda);

  const absl::Time started = absl::Now();
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_LT(absl::Now() - started, absl::Seconds(10));
  EXPECT_EQ(stats.target_failures, 1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_RECEIVED);  // not planned without the addresses
  const v1::Target* contacts = TargetIn(r, "contacts");
  EXPECT_EQ(contacts->failures(), 1);
  EXPECT_THAT(contacts->last_error(),
              HasSubstr(absl::StrCat(grpc::StatusCode::DEADLINE_EXCEEDED, ": ")));
  EXPECT_EQ(StoredAddresses(id), std::nullopt);

  target("contacts").Release();
  bed_->clock().Set(rpc::ToTime(contacts->next_attempt_at()));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 1);
  EXPECT_EQ(target("contacts").export_calls(), 2);
  EXPECT_THAT(target("consent").erase_addresses(), ElementsAre(ElementsAre(kAddress)));
}

// The completion notice: until mailing has queued it the request stays
// open (no certificate), saying why, and is retried.
TEST_F(ErasureTest, ACompletionNoticeThatFailsIsRetriedBeforeTheRequestCompletes) {
  Seed(kAda);
  notifier_.FailNext(1);
  const std::string id = SubmitNew(kAda);

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_VERIFYING);
  EXPECT_THAT(r.attention(), HasSubstr("completion notice"));
  for (const v1::Target& t : r.targets()) EXPECT_EQ(t.state(), v1::TARGET_STATE_VERIFIED);
  EXPECT_THAT(Certificate(id), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(StoredAddresses(id).has_value());

  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);  // not before the retry
  bed_->clock().Advance(Options().max_retry);
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 1);
  CRM_ASSERT_OK_AND_ASSIGN(r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
  EXPECT_THAT(r.attention(), IsEmpty());
  EXPECT_THAT(notifier_.notices(), SizeIs(2));
  EXPECT_EQ(StoredAddresses(id), std::nullopt);
  EXPECT_THAT(Certificate(id), IsOk());
  for (const std::string& name : TargetNames()) EXPECT_EQ(target(name).erase_calls(), 1);
}

// 7.
TEST_F(ErasureTest, CancelInTheWindowStopsTheRequestBeforeAnyTargetIsCalled) {
  ASSERT_THAT(StartService(absl::Hours(1)), IsOk());
  Seed(kAda);
  const absl::Time received = bed_->clock().Now();
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse submitted, Submit(kAda));
  const std::string id = submitted.request().request_id();
  EXPECT_EQ(rpc::ToTime(submitted.request().not_before()), received + absl::Hours(1));

  // In the window the worker leaves it alone.
  bed_->clock().Advance(absl::Minutes(30));
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest cancelled, Cancel(id));
  EXPECT_EQ(cancelled.state(), v1::STATE_CANCELLED);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest again, Cancel(id));
  EXPECT_EQ(again.state(), v1::STATE_CANCELLED);

  bed_->clock().Advance(absl::Hours(2));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  for (const std::string& name : TargetNames()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(target(name).describe_calls(), 0);
    EXPECT_EQ(target(name).erase_calls(), 0);
    EXPECT_THAT(target(name).Held(kAda), Not(IsEmpty()));
  }
  EXPECT_THAT(Certificate(id), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(AuditActions(id),
              ElementsAre("erasure.request.received", "erasure.request.cancelled"));

  // A cancelled request is not open: a new one can be made; once the worker
  // has begun it cannot be cancelled.
  const std::string second = SubmitNew(kAda);
  EXPECT_NE(second, id);
  bed_->clock().Advance(absl::Hours(1));
  target("mailing").FailNextErases(1);
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 1);
  ASSERT_EQ(StateOf(second), v1::STATE_ERASING);
  EXPECT_THAT(Cancel(second),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("request_id")));
  bed_->clock().Advance(absl::Minutes(5));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  ASSERT_EQ(StateOf(second), v1::STATE_COMPLETED);
  EXPECT_THAT(Cancel(second), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// 8. Received on 31 January: due 28 February; the extensions count from
// receipt (31 March, 30 April), not from the last due date.
TEST_F(ErasureTest, ExtendMovesTheDueDateByCalendarMonthsFromReceipt) {
  bed_->clock().Set(Utc(2027, 1, 31, 10, 30, 15));
  const std::string id = SubmitNew(kAda);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(rpc::ToTime(r.due_at()), Utc(2027, 2, 28, 10, 30, 15));

  EXPECT_THAT(Extend(id, 0), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("months")));
  EXPECT_THAT(Extend(id, 3), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("months")));
  EXPECT_THAT(Extend(id, -1), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("months")));
  EXPECT_THAT(Extend(id, 1, ""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reason")));
  EXPECT_THAT(Extend(id, 1, std::string(501, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reason")));

  CRM_ASSERT_OK_AND_ASSIGN(r, Extend(id, 1, "records in three archives"));
  EXPECT_EQ(rpc::ToTime(r.due_at()), Utc(2027, 3, 31, 10, 30, 15));
  EXPECT_EQ(r.extended_months(), 1);
  EXPECT_EQ(r.extension_reason(), "records in three archives");

  EXPECT_THAT(Extend(id, 2), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("months")));
  CRM_ASSERT_OK_AND_ASSIGN(r, Get(id));
  EXPECT_EQ(rpc::ToTime(r.due_at()), Utc(2027, 3, 31, 10, 30, 15));
  EXPECT_EQ(r.extended_months(), 1);

  CRM_ASSERT_OK_AND_ASSIGN(r, Extend(id, 1, "one archive is offline"));
  EXPECT_EQ(rpc::ToTime(r.due_at()), Utc(2027, 4, 30, 10, 30, 15));
  EXPECT_EQ(r.extended_months(), 2);
  EXPECT_EQ(r.extension_reason(), "one archive is offline");
  EXPECT_THAT(Extend(id, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  const std::vector<std::string> actions = AuditActions(id);
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "erasure.request.extended"), 2);

  // A finished request is not extended.
  const std::string bob = SubmitNew(kBob);
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 2);
  EXPECT_THAT(Extend(bob, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// 9.
TEST_F(ErasureTest, ListFiltersByStateAndDueDateAndPagesThroughAll) {
  const std::string ada = SubmitNew(kAda);
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  ASSERT_EQ(stats.completed, 1);
  bed_->clock().Advance(absl::Hours(24));
  const std::string bob = SubmitNew(kBob);
  bed_->clock().Advance(absl::Hours(24));
  const std::string eve = SubmitNew(kEve);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest bob_request, Get(bob));

  auto list = [&](v1::State state, std::optional<absl::Time> due_before, int page_size,
                  const std::string& token) -> absl::StatusOr<v1::ListErasuresResponse> {
    v1::ListErasuresRequest req;
    req.set_state(state);
    if (due_before.has_value()) {
      req.mutable_due_before()->set_seconds(absl::ToUnixSeconds(*due_before));
    }
    req.set_page_size(page_size);
    req.set_page_token(token);
    return Call(&Stub::ListErasures, req);
  };
  auto ids = [](const v1::ListErasuresResponse& resp) {
    std::vector<std::string> out;
    for (const v1::ErasureRequest& r : resp.requests()) {
      EXPECT_THAT(r.targets(), IsEmpty());
      out.push_back(r.request_id());
    }
    return out;
  };

  CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse all,
                           list(v1::STATE_UNSPECIFIED, std::nullopt, 0, ""));
  EXPECT_THAT(ids(all), ElementsAre(ada, bob, eve));  // oldest due first
  EXPECT_THAT(all.next_page_token(), IsEmpty());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse completed,
                           list(v1::STATE_COMPLETED, std::nullopt, 0, ""));
  EXPECT_THAT(ids(completed), ElementsAre(ada));
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse received,
                           list(v1::STATE_RECEIVED, std::nullopt, 0, ""));
  EXPECT_THAT(ids(received), ElementsAre(bob, eve));
  v1::ListErasuresRequest work;  // the DPO's work list: everything not finished
  work.set_unfinished(true);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse unfinished, Call(&Stub::ListErasures, work));
  EXPECT_THAT(ids(unfinished), ElementsAre(bob, eve));
  work.set_state(v1::STATE_RECEIVED);
  EXPECT_THAT(Call(&Stub::ListErasures, work),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unfinished")));
  const absl::Time bob_due = rpc::ToTime(bob_request.due_at());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse due,
                           list(v1::STATE_UNSPECIFIED, bob_due + absl::Seconds(1), 0, ""));
  EXPECT_THAT(ids(due), ElementsAre(ada, bob));
  CRM_ASSERT_OK_AND_ASSIGN(due, list(v1::STATE_UNSPECIFIED, bob_due, 0, ""));
  EXPECT_THAT(ids(due), ElementsAre(ada));
  CRM_ASSERT_OK_AND_ASSIGN(due, list(v1::STATE_RECEIVED, bob_due + absl::Seconds(1), 0, ""));
  EXPECT_THAT(ids(due), ElementsAre(bob));

  // One at a time, following the tokens.
  for (v1::State state : {v1::STATE_UNSPECIFIED, v1::STATE_RECEIVED}) {
    SCOPED_TRACE(state);
    std::vector<std::string> seen;
    std::string token;
    int pages = 0;
    do {
      CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse page, list(state, std::nullopt, 1, token));
      ASSERT_THAT(page.requests(), SizeIs(1));
      seen.push_back(page.requests(0).request_id());
      token = page.next_page_token();
      ASSERT_LT(++pages, 10);
    } while (!token.empty());
    if (state == v1::STATE_RECEIVED) {
      EXPECT_THAT(seen, ElementsAre(bob, eve));
    } else {
      EXPECT_THAT(seen, ElementsAre(ada, bob, eve));
    }
  }

  for (const char* bad : {"garbage", "123.not-a-uuid", "x.0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(list(v1::STATE_UNSPECIFIED, std::nullopt, 1, bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  }
  EXPECT_THAT(list(v1::STATE_UNSPECIFIED, std::nullopt, 501, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
  EXPECT_THAT(list(v1::STATE_UNSPECIFIED, std::nullopt, -1, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
  EXPECT_THAT(list(static_cast<v1::State>(42), std::nullopt, 0, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("state")));
}

// 10.
TEST_F(ErasureTest, MalformedInputIsInvalidArgumentNamingTheField) {
  EXPECT_THAT(Submit("not-a-uuid"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject_id")));
  EXPECT_THAT(Submit(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject_id")));
  EXPECT_THAT(Submit(kAda, v1::ERASURE_REASON_UNSPECIFIED),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reason")));
  EXPECT_THAT(Submit(kAda, static_cast<v1::ErasureReason>(42)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reason")));
  for (const char* bad : {"", "42", "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(Get(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
    EXPECT_THAT(Cancel(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
    EXPECT_THAT(Extend(bad, 1),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
    EXPECT_THAT(Certificate(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
  }
  // Nothing was made.
  v1::ListErasuresRequest list;
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse all, Call(&Stub::ListErasures, list));
  EXPECT_THAT(all.requests(), IsEmpty());
}

TEST_F(ErasureTest, WithoutDsrManageEveryRequestMethodIsPermissionDenied) {
  const std::string id = SubmitNew(kAda);
  const std::string token = bed_->Token(kBob, {"contacts.read", "contacts.write"});
  const auto denied = StatusIs(absl::StatusCode::kPermissionDenied);
  v1::SubmitErasureRequest submit;
  submit.set_subject_id(kBob);
  submit.set_reason(v1::ERASURE_REASON_SUBJECT_REQUEST);
  EXPECT_THAT(Call(&Stub::SubmitErasure, submit, token), denied);
  v1::GetErasureRequest get;
  get.set_request_id(id);
  EXPECT_THAT(Call(&Stub::GetErasure, get, token), denied);
  EXPECT_THAT(Call(&Stub::ListErasures, v1::ListErasuresRequest(), token), denied);
  v1::CancelErasureRequest cancel;
  cancel.set_request_id(id);
  EXPECT_THAT(Call(&Stub::CancelErasure, cancel, token), denied);
  v1::ExtendErasureRequest extend;
  extend.set_request_id(id);
  extend.set_months(1);
  extend.set_reason("because");
  EXPECT_THAT(Call(&Stub::ExtendErasure, extend, token), denied);
  v1::GetCertificateRequest cert;
  cert.set_request_id(id);
  EXPECT_THAT(Call(&Stub::GetCertificate, cert, token), denied);
  // Without a token at all: unauthenticated, even for the key.
  EXPECT_THAT(Call(&Stub::SubmitErasure, submit, std::string()),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(Call(&Stub::GetVerificationKey, v1::GetVerificationKeyRequest(), std::string()),
              StatusIs(absl::StatusCode::kUnauthenticated));
  // The key is for anyone authenticated.
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetVerificationKeyResponse key,
                           Call(&Stub::GetVerificationKey, v1::GetVerificationKeyRequest(), token));
  EXPECT_EQ(key.public_key_pem(), key_->PublicKey().ToPem());

  // Nothing changed.
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_RECEIVED);
  EXPECT_EQ(r.extended_months(), 0);
  EXPECT_THAT(Submit(kBob), IsOk());
}

TEST_F(ErasureTest, UnknownRequestIsNotFound) {
  constexpr char kUnknown[] = "7f3e2d1c-0b9a-4876-a543-210fedcba987";
  EXPECT_THAT(Get(kUnknown), StatusIs(absl::StatusCode::kNotFound, HasSubstr("request_id")));
  EXPECT_THAT(Cancel(kUnknown), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Extend(kUnknown, 1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Certificate(kUnknown), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ErasureTest, NoCertificateBeforeCompletion) {
  Seed(kAda);
  const std::string id = SubmitNew(kAda);
  EXPECT_THAT(Certificate(id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("request_id")));
  target("mailing").FailNextErases(1);
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.target_failures, 1);
  EXPECT_THAT(Certificate(id), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// 11. AddMonths (Art. 12(3) via Regulation 1182/71).
TEST(AddMonthsTest, ADayTheMonthLacksBecomesItsLastDay) {
  EXPECT_EQ(AddMonths(Utc(2027, 1, 31, 13, 45, 30), 1), Utc(2027, 2, 28, 13, 45, 30));
  EXPECT_EQ(AddMonths(Utc(2028, 1, 31, 13, 45, 30), 1), Utc(2028, 2, 29, 13, 45, 30));
  EXPECT_EQ(AddMonths(Utc(2027, 3, 31, 23, 59, 59), 3), Utc(2027, 6, 30, 23, 59, 59));
  EXPECT_EQ(AddMonths(Utc(2027, 8, 31), 1), Utc(2027, 9, 30));
}

TEST(AddMonthsTest, ADayTheMonthHasIsKept) {
  EXPECT_EQ(AddMonths(Utc(2027, 1, 28, 9), 1), Utc(2027, 2, 28, 9));
  EXPECT_EQ(AddMonths(Utc(2027, 2, 28, 9), 1), Utc(2027, 3, 28, 9));
  EXPECT_EQ(AddMonths(Utc(2027, 4, 30, 9), 1), Utc(2027, 5, 30, 9));
}

TEST(AddMonthsTest, DecemberRollsIntoTheNextYear) {
  EXPECT_EQ(AddMonths(Utc(2026, 12, 15, 8, 0, 0), 1), Utc(2027, 1, 15, 8, 0, 0));
  EXPECT_EQ(AddMonths(Utc(2026, 11, 30, 8, 0, 0), 3), Utc(2027, 2, 28, 8, 0, 0));
  EXPECT_EQ(AddMonths(Utc(2027, 12, 31), 2), Utc(2028, 2, 29));
}

TEST(AddMonthsTest, TimeOfDayAndFractionsOfASecondAreKept) {
  const absl::Time t = Utc(2027, 5, 10, 7, 8, 9) + absl::Microseconds(250'001);
  EXPECT_EQ(AddMonths(t, 2), Utc(2027, 7, 10, 7, 8, 9) + absl::Microseconds(250'001));
  EXPECT_EQ(AddMonths(t, 0), t);
}

// After a database restore: every subject whose erasure completed since the
// backup is submitted again, once; open ones are counted, not duplicated.
TEST_F(ErasureTest, ReapplyAfterARestoreSubmitsCompletedErasuresAgainOnce) {
  Seed(kAda);
  Seed(kBob);
  const absl::Time before = bed_->clock().Now();
  SubmitNew(kAda);
  SubmitNew(kBob);
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  ASSERT_EQ(stats.completed, 2);
  auto reapply = [&](absl::Time since) {
    v1::ReapplyErasuresRequest req;
    rpc::SetTime(since, req.mutable_completed_since());
    return Call(&Stub::ReapplyErasures, req);
  };
  // Completed before the "backup" time: nothing to re-apply.
  bed_->clock().Advance(absl::Hours(1));
  CRM_ASSERT_OK_AND_ASSIGN(v1::ReapplyErasuresResponse none, reapply(bed_->clock().Now()));
  EXPECT_EQ(none.submitted(), 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ReapplyErasuresResponse first, reapply(before));
  EXPECT_EQ(first.submitted(), 2);
  EXPECT_EQ(first.already_open(), 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ReapplyErasuresResponse again, reapply(before));
  EXPECT_EQ(again.submitted(), 0);
  EXPECT_EQ(again.already_open(), 2);
  // The new requests run like any other and erase again.
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 2);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ReapplyErasuresResponse after, reapply(before));
  EXPECT_EQ(after.submitted(), 2);  // 2 subjects, each once, not once per request

  v1::ReapplyErasuresRequest missing;
  EXPECT_THAT(Call(&Stub::ReapplyErasures, missing),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("completed_since")));
  v1::ReapplyErasuresRequest bad;
  bad.mutable_completed_since()->set_nanos(-1);
  bad.mutable_completed_since()->set_seconds(1);
  EXPECT_THAT(Call(&Stub::ReapplyErasures, bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("completed_since")));
}

// 6 (continued). A worker whose lease ran out and was taken over by another
// cannot write over the new holder's progress, even where the state it
// expects is still the stored one.
TEST_F(ErasureTest, AWorkerWhoseLeaseWasTakenOverCannotWrite) {
  const std::string id = SubmitNew(kAda);
  const std::string stale = base::NewUuid(), holder = base::NewUuid();
  auto claim = [&](const std::string& owner) -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> claimed;
    CRM_RETURN_IF_ERROR(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(
          claimed, ErasureStore::Claim(tx, 16, Options().lease, bed_->clock().Now(), owner));
      return absl::OkStatus();
    }));
    return claimed;
  };
  EXPECT_THAT(claim(stale), testing::IsOkAndHolds(ElementsAre(id)));
  bed_->clock().Advance(Options().lease + absl::Seconds(1));
  EXPECT_THAT(claim(holder), testing::IsOkAndHolds(ElementsAre(id)));
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  ASSERT_EQ(r.state(), v1::STATE_RECEIVED);
  r.set_state(v1::STATE_ERASING);
  auto write = [&](const std::string& owner) {
    return db_.pool->Transact([&](pqxx::work& tx) {
      return ErasureStore::Update(tx, r, v1::STATE_RECEIVED, bed_->clock().Now(), true, owner);
    });
  };
  EXPECT_THAT(write(stale), StatusIs(absl::StatusCode::kFailedPrecondition));
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest unchanged, Get(id));
  EXPECT_EQ(unchanged.state(), v1::STATE_RECEIVED);
  EXPECT_THAT(write(holder), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest moved, Get(id));
  EXPECT_EQ(moved.state(), v1::STATE_ERASING);
}

// A request by e-mail address is a request for the subject contacts finds
// by it; nothing about the address is kept.
TEST_F(ErasureTest, SubmissionByEmailFindsTheSubjectThroughContacts) {
  Seed(kAda);
  lookup_.Put("ada@example.com", {kAda});
  lookup_.Put("shared@example.com", {kAda, kBob});
  v1::SubmitErasureRequest req;
  req.set_email("ada@example.com");
  req.set_reason(v1::ERASURE_REASON_SUBJECT_REQUEST);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse by_email, Call(&Stub::SubmitErasure, req));
  EXPECT_TRUE(by_email.created());
  EXPECT_EQ(by_email.request().subject_id(), kAda);
  // The same subject by id: the open request.
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse by_id, Submit(kAda));
  EXPECT_FALSE(by_id.created());
  EXPECT_EQ(by_id.request().request_id(), by_email.request().request_id());

  req.set_email("nobody@example.com");
  EXPECT_THAT(Call(&Stub::SubmitErasure, req),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("email")));
  req.set_email("shared@example.com");
  EXPECT_THAT(Call(&Stub::SubmitErasure, req),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("subject_id")));
  req.set_email("not an address");
  EXPECT_THAT(Call(&Stub::SubmitErasure, req),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email")));
  lookup_.Fail(absl::UnavailableError("contacts: down"));
  req.set_email("ada@example.com");
  EXPECT_THAT(Call(&Stub::SubmitErasure, req), StatusIs(absl::StatusCode::kUnavailable));
  // The address is nowhere in the orchestrator's tables.
  std::string rows;
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) {
    rows.clear();
    for (const char* table : {"requests", "targets", "audit_outbox"}) {
      for (const pqxx::row& r : tx.exec(absl::StrCat("SELECT x::text FROM ", table, " x"))) {
        rows += r[0].as<std::string>();
      }
    }
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(rows, HasSubstr(kAda));  // the scan sees the rows
  EXPECT_THAT(rows, Not(HasSubstr("ada@example.com")));
}

// ---- Access requests (Art. 15 and 20) ------------------------------------

// The members of a parsed export's service `name`, or nullptr.
const json::Value* ServiceIn(const json::Value& doc, const std::string& name) {
  const json::Value* services = doc.Find("services");
  if (services == nullptr || !services->is_array()) return nullptr;
  for (const json::Value& s : services->array()) {
    const json::Value* n = s.Find("service");
    if (n != nullptr && n->is_string() && n->string_value() == name) return &s;
  }
  return nullptr;
}

// The category `name` of a service member of an export, or nullptr.
const json::Value* CategoryIn(const json::Value* service, const std::string& name) {
  if (service == nullptr) return nullptr;
  const json::Value* cs = service->Find("categories");
  if (cs == nullptr || !cs->is_array()) return nullptr;
  for (const json::Value& c : cs->array()) {
    const json::Value* n = c.Find("category");
    if (n != nullptr && n->is_string() && n->string_value() == name) return &c;
  }
  return nullptr;
}

json::Value ParseExport(const std::string& text) {
  absl::StatusOr<json::Value> doc = json::Parse(text, {.max_size = 64 << 20, .max_depth = 16});
  EXPECT_THAT(doc.status(), IsOk()) << text.substr(0, 300);
  return doc.ok() ? *std::move(doc) : json::Value();
}

TEST_F(ErasureTest, AccessRequestExportsEverythingWithTheArt15FactsAndErasesNothing) {
  Seed(kAda);
  target("contacts")
      .HoldRetained(kAda, "invoices", 2, "accounting law (10 years)", Utc(2036, 1, 1));
  Seed(kBob);  // someone else: not in Ada's export
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse submitted, SubmitAccess(kAda));
  ASSERT_TRUE(submitted.created());
  const std::string id = submitted.request().request_id();
  EXPECT_EQ(submitted.request().kind(), v1::KIND_ACCESS);
  EXPECT_EQ(submitted.request().state(), v1::STATE_RECEIVED);
  EXPECT_EQ(rpc::ToTime(submitted.request().due_at()), AddMonths(bed_->clock().Now(), 1));
  // Not ready yet.
  EXPECT_THAT(Export(id), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not ready")));

  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.completed, 1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_COMPLETED);
  EXPECT_EQ(rpc::ToTime(r.expires_at()), bed_->clock().Now() + absl::Hours(24 * 14));
  for (const v1::Target& t : r.targets()) {
    SCOPED_TRACE(t.service());
    EXPECT_EQ(t.state(), v1::TARGET_STATE_EXPORTED);
    EXPECT_EQ(target(t.service()).erase_calls(), 0);
    EXPECT_THAT(target(t.service()).Held(kAda), Not(IsEmpty()));
  }
  EXPECT_THAT(TargetIn(r, "consent")->planned(), ElementsAre(CategoryIs("consent_records", 4)));
  // No certificate for an access request.
  EXPECT_THAT(Certificate(id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("GetAccessExport")));
  // The subject was told the export is ready, then the addresses went.
  ASSERT_THAT(notifier_.notices(), SizeIs(1));
  EXPECT_EQ(notifier_.notices()[0].kind, NoticeKind::kAccessReady);
  EXPECT_EQ(notifier_.notices()[0].addresses, std::vector<std::string>{kAddress});
  EXPECT_EQ(StoredAddresses(id), std::nullopt);

  CRM_ASSERT_OK_AND_ASSIGN(const std::string text, Export(id));
  const json::Value doc = ParseExport(text);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc.Find("format")->string_value(), "crm.access-export.v1");
  EXPECT_EQ(doc.Find("request_id")->string_value(), id);
  EXPECT_EQ(doc.Find("subject_id")->string_value(), kAda);
  EXPECT_EQ(doc.Find("controller")->Find("name")->string_value(), "Example Shop GmbH");
  EXPECT_THAT(doc.Find("rights")->string_value(), HasSubstr("correct or erase"));
  ASSERT_EQ(doc.Find("services")->array().size(), 3u);
  // Art. 15 facts from the record of processing, counts and retention from
  // the target.
  const json::Value* person = CategoryIn(ServiceIn(doc, "contacts"), "person");
  ASSERT_NE(person, nullptr);
  EXPECT_EQ(person->Find("records")->AsInt64(), 1);
  EXPECT_EQ(person->Find("purposes")->array()[1].string_value(), "orders");
  EXPECT_EQ(person->Find("recipients")->array()[0].string_value(), "payment processor");
  EXPECT_EQ(person->Find("source")->string_value(), "you, when you registered");
  EXPECT_EQ(person->Find("retention")->string_value(), "until you ask us to erase it");
  EXPECT_FALSE(person->Find("legally_retained")->bool_value());
  const json::Value* invoices = CategoryIn(ServiceIn(doc, "contacts"), "invoices");
  ASSERT_NE(invoices, nullptr);
  EXPECT_TRUE(invoices->Find("legally_retained")->bool_value());
  EXPECT_EQ(invoices->Find("retention_basis")->string_value(), "accounting law (10 years)");
  EXPECT_EQ(invoices->Find("purge_after")->string_value(), "2036-01-01T00:00:00.000000Z");
  // A category the record does not describe says so.
  const json::Value* subscriptions = CategoryIn(ServiceIn(doc, "mailing"), "subscriptions");
  ASSERT_NE(subscriptions, nullptr);
  EXPECT_FALSE(subscriptions->Find("described")->bool_value());
  // The records themselves, decrypted: the person's address is there.
  EXPECT_THAT(text, HasSubstr(kAddress));
  const json::Value* records = ServiceIn(doc, "contacts")->Find("records");
  ASSERT_NE(records, nullptr);
  EXPECT_EQ(records->array().size(), 3u);  // person, interactions, invoices
  EXPECT_EQ(records->array()[0].Find("category")->string_value(), "person");

  // Audited: the submission, the moves and the download.
  EXPECT_THAT(AuditActions(id),
              ElementsAre("erasure.access.received", "erasure.access.exporting",
                          "erasure.access.completed", "erasure.access.downloaded"));
}

TEST_F(ErasureTest, AnExportIsStoredEncryptedInBoundedPartsAndServedWhole) {
  Seed(kAda);
  // A large holding: contacts' part spans several stored chunks.
  for (int i = 0; i < 8000; ++i) {
    target("contacts").Hold(kAda, absl::StrCat("interaction_", i), i);
  }
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse submitted, SubmitAccess(kAda));
  const std::string id = submitted.request().request_id();
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  ASSERT_EQ(StateOf(id), v1::STATE_COMPLETED);
  EXPECT_GT(Count("SELECT count(*) FROM export_parts WHERE request_id = $1::uuid AND service = "
                  "'contacts'",
                  id),
            1);
  // Nothing in clear: not the address, not a category name.
  absl::StatusOr<std::string> raw =
      db_.pool->TransactValue<std::string>([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
        std::string all;
        for (const pqxx::row& row :
             tx.exec_params("SELECT body FROM export_parts WHERE request_id = $1::uuid", id)) {
          all += pqxx::binarystring(row[0]).str();
        }
        return all;
      });
  ASSERT_THAT(raw, IsOk());
  EXPECT_GT(raw->size(), kExportChunkSize);
  EXPECT_THAT(*raw, Not(HasSubstr(kAddress)));
  EXPECT_THAT(*raw, Not(HasSubstr("interaction_7")));

  CRM_ASSERT_OK_AND_ASSIGN(const std::string text, Export(id));
  const json::Value doc = ParseExport(text);
  ASSERT_TRUE(doc.is_object());
  const json::Value* contacts = ServiceIn(doc, "contacts");
  ASSERT_NE(contacts, nullptr);
  EXPECT_EQ(contacts->Find("records")->array().size(), 8002u);
  EXPECT_NE(CategoryIn(contacts, "interaction_7999"), nullptr);

  // A part moved to another request does not open (bound to its place).
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(
        "UPDATE export_parts SET body = (SELECT body FROM export_parts WHERE request_id = "
        "$1::uuid AND service = 'contacts' AND seq = 1) WHERE request_id = $1::uuid AND service = "
        "'contacts' AND seq = 0",
        id);
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(Export(id), Not(IsOk()));
}

TEST_F(ErasureTest, AnExportWaitsForATargetThatIsDownAndIsDeletedWhenItExpires) {
  Seed(kAda);
  target("mailing").SetDown(true);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse submitted, SubmitAccess(kAda));
  const std::string id = submitted.request().request_id();
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_GT(stats.target_failures, 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_EXPORTING);
  EXPECT_EQ(TargetIn(r, "mailing")->state(), v1::TARGET_STATE_PENDING);
  EXPECT_EQ(TargetIn(r, "contacts")->state(), v1::TARGET_STATE_EXPORTED);
  EXPECT_THAT(TargetIn(r, "mailing")->last_error(), HasSubstr("14"));  // UNAVAILABLE
  EXPECT_THAT(Export(id), StatusIs(absl::StatusCode::kFailedPrecondition));

  target("mailing").SetDown(false);
  bed_->clock().Advance(absl::Minutes(2));
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  ASSERT_EQ(StateOf(id), v1::STATE_COMPLETED);
  // Contacts was exported once: its part was kept, not fetched again.
  EXPECT_EQ(target("contacts").export_calls(), 1);
  CRM_ASSERT_OK_AND_ASSIGN(const std::string text, Export(id));
  EXPECT_NE(ServiceIn(ParseExport(text), "mailing"), nullptr);

  // Fourteen days later it is gone.
  bed_->clock().Advance(absl::Hours(24 * 14) - absl::Seconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.expired, 0);
  bed_->clock().Advance(absl::Seconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(stats, worker_->RunOnce());
  EXPECT_EQ(stats.expired, 1);
  EXPECT_EQ(StateOf(id), v1::STATE_EXPIRED);
  EXPECT_EQ(Count("SELECT count(*) FROM export_parts WHERE request_id = $1::uuid", id), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM requests WHERE request_id = $1::uuid AND export_key IS "
                  "NOT NULL",
                  id),
            0);
  EXPECT_THAT(Export(id), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("expired")));
  EXPECT_THAT(AuditActions(id), Contains("erasure.access.expired"));
}

TEST_F(ErasureTest, AnExportLargerThanTheChannelAllowsNeedsAttentionAndKeepsNothing) {
  Seed(kAda);
  target("mailing").SetExportPadding(5 << 20);  // over the 4 MiB of the test channels
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse submitted, SubmitAccess(kAda));
  const std::string id = submitted.request().request_id();
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_EQ(r.state(), v1::STATE_NEEDS_ATTENTION);
  EXPECT_THAT(r.attention(), HasSubstr("mailing"));
  EXPECT_THAT(r.attention(), HasSubstr("export_max_mib"));
  EXPECT_THAT(TargetIn(r, "mailing")->last_error(), HasSubstr("8"));  // RESOURCE_EXHAUSTED
  // What the other targets gave is not kept, nor the key, nor the addresses.
  EXPECT_EQ(Count("SELECT count(*) FROM export_parts WHERE request_id = $1::uuid", id), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM requests WHERE request_id = $1::uuid AND (export_key IS "
                  "NOT NULL OR addresses IS NOT NULL)",
                  id),
            0);
  absl::StatusOr<std::string> none = Export(id);
  EXPECT_THAT(none, StatusIs(absl::StatusCode::kFailedPrecondition)) << none.value_or("");
  // Not worked again; a new request may be submitted.
  CRM_ASSERT_OK_AND_ASSIGN(AdvanceStats stats, worker_->RunOnce());
  EXPECT_EQ(stats.claimed, 0);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse again, SubmitAccess(kAda));
  EXPECT_TRUE(again.created());
}

TEST_F(ErasureTest, AccessAndErasureRequestsAreSeparateAndListedByKind) {
  Seed(kAda);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse access, SubmitAccess(kAda));
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse again, SubmitAccess(kAda));
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.request().request_id(), access.request().request_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse erasure, Submit(kAda));
  EXPECT_TRUE(erasure.created());
  EXPECT_EQ(erasure.request().kind(), v1::KIND_ERASURE);
  for (v1::RequestKind kind : {v1::KIND_ACCESS, v1::KIND_ERASURE}) {
    v1::ListErasuresRequest list;
    list.set_kind(kind);
    CRM_ASSERT_OK_AND_ASSIGN(v1::ListErasuresResponse page, Call(&Stub::ListErasures, list));
    ASSERT_THAT(page.requests(), SizeIs(1));
    EXPECT_EQ(page.requests(0).request_id(), kind == v1::KIND_ACCESS
                                                 ? access.request().request_id()
                                                 : erasure.request().request_id());
  }
  v1::ListErasuresRequest bad;
  bad.set_kind(static_cast<v1::RequestKind>(9));
  EXPECT_THAT(Call(&Stub::ListErasures, bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kind")));
  // An erasure request has no export.
  EXPECT_THAT(Export(erasure.request().request_id()), StatusIs(absl::StatusCode::kNotFound));
  // Reapply after a restore re-submits erasures only.
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  v1::ReapplyErasuresRequest reapply;
  rpc::SetTime(bed_->clock().Now() - absl::Hours(1), reapply.mutable_completed_since());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ReapplyErasuresResponse reapplied,
                           Call(&Stub::ReapplyErasures, reapply));
  EXPECT_EQ(reapplied.submitted(), 1);
}

TEST_F(ErasureTest, AccessInputIsCheckedAndNeedsDsrManage) {
  v1::SubmitAccessRequest none;
  EXPECT_THAT(Call(&Stub::SubmitAccess, none),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject_id")));
  v1::SubmitAccessRequest bad_email;
  bad_email.set_email("not an address\r\nBcc: x@evil.example");
  EXPECT_THAT(Call(&Stub::SubmitAccess, bad_email),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email")));
  v1::SubmitAccessRequest unknown_email;
  unknown_email.set_email("nobody@example.com");
  EXPECT_THAT(Call(&Stub::SubmitAccess, unknown_email), StatusIs(absl::StatusCode::kNotFound));
  lookup_.Put("ada@example.com", {kAda});
  v1::SubmitAccessRequest by_email;
  by_email.set_email("ada@example.com");
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse found, Call(&Stub::SubmitAccess, by_email));
  EXPECT_EQ(found.request().subject_id(), kAda);
  EXPECT_EQ(found.request().kind(), v1::KIND_ACCESS);

  EXPECT_THAT(Export("'; DROP TABLE requests; --"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
  EXPECT_THAT(Export(base::NewUuid()), StatusIs(absl::StatusCode::kNotFound));
  const std::string clerk = bed_->Token(kEve, {"contacts.read"});
  EXPECT_THAT(Export(found.request().request_id(), clerk),
              StatusIs(absl::StatusCode::kPermissionDenied));
  v1::SubmitAccessRequest ok;
  ok.set_subject_id(kBob);
  EXPECT_THAT(Call(&Stub::SubmitAccess, ok, clerk), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(ErasureTest, TheSubjectIsToldOfAnExtensionOnceTheirAddressIsKnown) {
  ASSERT_THAT(StartService(absl::Hours(1)), IsOk());  // a cancel window
  Seed(kAda);
  const std::string id = SubmitNew(kAda);
  // In the cancel window nothing is read yet: the notice waits.
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest extended, Extend(id, 1, "many systems to check"));
  EXPECT_TRUE(extended.extension_notice_pending());
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  EXPECT_THAT(notifier_.notices(), IsEmpty());
  EXPECT_EQ(StateOf(id), v1::STATE_RECEIVED);
  EXPECT_EQ(target("contacts").describe_calls(), 0);  // the window holds

  bed_->clock().Advance(absl::Hours(1));
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  std::vector<FakeNotifier::Notice> notices = notifier_.notices();
  ASSERT_THAT(notices, SizeIs(2));
  EXPECT_EQ(notices[0].kind, NoticeKind::kExtended);
  EXPECT_EQ(notices[0].addresses, std::vector<std::string>{kAddress});
  EXPECT_EQ(notices[1].kind, NoticeKind::kErasureConfirmed);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_FALSE(r.extension_notice_pending());
}

TEST_F(ErasureTest, AnExtensionNoticeThatFailsIsRetriedAndRetentionErasuresSendNone) {
  Seed(kAda);
  target("consent").SetDown(true);  // keeps the request open after planning contacts
  const std::string id = SubmitNew(kAda);
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  ASSERT_EQ(StateOf(id), v1::STATE_RECEIVED);
  notifier_.FailNext(1);
  ASSERT_THAT(Extend(id, 2, "legal review"), IsOk());
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ErasureRequest r, Get(id));
  EXPECT_TRUE(r.extension_notice_pending());
  EXPECT_THAT(r.attention(), HasSubstr("extension notice"));
  bed_->clock().Advance(absl::Minutes(1));
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(r, Get(id));
  EXPECT_FALSE(r.extension_notice_pending());
  ASSERT_THAT(notifier_.notices(), SizeIs(2));
  EXPECT_EQ(notifier_.notices()[1].kind, NoticeKind::kExtended);

  // A retention erasure is not the subject's request: nobody is told.
  Seed(kBob);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubmitErasureResponse retention,
                           Submit(kBob, v1::ERASURE_REASON_RETENTION));
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  ASSERT_THAT(Extend(retention.request().request_id(), 1, "legal review"), IsOk());
  ASSERT_THAT(worker_->RunOnce(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(r, Get(retention.request().request_id()));
  EXPECT_FALSE(r.extension_notice_pending());
  EXPECT_THAT(notifier_.notices(), SizeIs(2));
}

TEST(ProcessingRecordTest, BadRecordsAreRefusedNamingTheMember) {
  struct Case {
    const char* text;
    const char* names;
  };
  const Case cases[] = {
      {"[]", "top level"},
      {"{\"categories\":{}}", "controller"},
      {"{\"controller\":{\"name\":\"x\"}}", "categories"},
      {"{\"controller\":{\"name\":\"x\"},\"categories\":{},\"extra\":1}", "extra"},
      {"{\"controller\":{\"name\":5},\"categories\":{}}", "controller.name"},
      {"{\"controller\":{\"name\":\"x\"},\"categories\":{\"person\":{\"purposes\":\"a\","
       "\"recipients\":[\"b\"],\"source\":\"c\",\"retention\":\"d\"}}}",
       "categories.person.purposes"},
      {"{\"controller\":{\"name\":\"x\"},\"categories\":{\"person\":{\"purposes\":[\"a\"],"
       "\"recipients\":[\"b\"],\"source\":\"c\"}}}",
       "categories.person.retention"},
      {"{\"controller\":{\"name\":\"x\"},\"categories\":{},\"default\":{\"purposes\":[\"\"],"
       "\"recipients\":[\"b\"],\"source\":\"c\",\"retention\":\"d\"}}",
       "default.purposes"},
      {"{\"controller\":{\"name\":\"x\"},\"categories\":{},}", "JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_THAT(ProcessingRecord::Parse(c.text),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.names)));
  }
  EXPECT_THAT(ProcessingRecord::LoadFile("/nonexistent/record.json"), Not(IsOk()));
}

TEST(ProcessingRecordTest, TheShippedRecordParses) {
  EXPECT_THAT(ProcessingRecord::LoadFile(CRM_SOURCE_DIR "/deploy/processing-record.json"), IsOk());
}

}  // namespace
}  // namespace crm::erasure
