// Service tests of crm-consent through the whole stack: the handlers in an
// in-process ServerRunner over mutual TLS with the access policy main.cc
// uses, tokens verified by a real ApiAuth (ApiTestBed), a database migrated
// with services/consent/migrations, audit events in the outbox.
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/json/json.h"
#include "libs/log/log.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/redis/client.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/generic_call.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/server.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/private_redis.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/unary_call.h"
#include "services/consent/consent_service.h"
#include "services/consent/subject_data_service.h"

namespace crm::consent {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using Stub = v1::Consent::Stub;
namespace sv1 = crm::subject::v1;

constexpr char kAdmin[] = "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d";
constexpr char kShop[] = "1c7a2d4f-9e3b-4a6c-8d2e-3f4a5b6c7d8e";
constexpr char kNoticeV1[] = "We send a newsletter about our products once a month.";
constexpr char kNoticeV2[] = "We send a newsletter about our products and offers twice a month.";
constexpr char kAddress[] = "203.0.113.77";
constexpr char kAgent[] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0";

class ConsentServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { log::SetMinLevel(log::Level::kError); }

  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(bed_,
                             crm::testing::ApiTestBed::Create("consent", {"gateway", "erasure"}));
    CRM_ASSERT_OK_AND_ASSIGN(db_,
                             crm::testing::CreateMigratedDatabase("consent", "consent_svc", 8));
    ASSERT_THAT(outbox::EnsureSchema(*db_.pool), IsOk());
    std::vector<crypto::VersionedKey> keks;
    keks.push_back({.version = 1, .key = crypto::SecretBytes::CopyFrom(crypto::RandomBytes(32))});
    CRM_ASSERT_OK_AND_ASSIGN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
    ring_.emplace(std::move(ring));
    CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes outbox_key,
                             outbox::LoadOrCreateKey(*db_.pool, *ring_));
    writer_ = std::make_unique<outbox::Writer>("consent", outbox_key.Copy(), bed_->clock());
    // Checks go through a cache in a Redis of this test's own, which a test
    // may stop.
    CRM_ASSERT_OK_AND_ASSIGN(redis_server_, crm::testing::PrivateRedisServer::Start("cache-pw"));
    CRM_ASSERT_OK_AND_ASSIGN(
        redis_, redis::Client::Create(
                    {.host = "127.0.0.1", .port = redis_server_->port(), .password = "cache-pw"}));
    cache_ = std::make_unique<CheckCache>(redis_.get(), absl::Seconds(60), &metrics_);
    CRM_ASSERT_OK_AND_ASSIGN(crypto::BlindIndexer indexer,
                             crypto::BlindIndexer::Create(crypto::RandomSecret(32)));
    suppression_.emplace(std::move(indexer));
    CRM_ASSERT_OK_AND_ASSIGN(
        receipts_, ReceiptSigner::LoadOrCreate(*db_.pool, *ring_,
                                               {.controller = "Example Shop Ltd.",
                                                .contact = "privacy@shop.example",
                                                .policy_url = "https://shop.example/privacy"}));
    service_ = std::make_unique<ConsentService>(ConsentDeps{.db = *db_.pool,
                                                            .ring = *ring_,
                                                            .verifier = bed_->auth().verifier(),
                                                            .audit = *writer_,
                                                            .clock = bed_->clock(),
                                                            .cache = cache_.get(),
                                                            .receipts = receipts_.get(),
                                                            .suppression = &*suppression_});
    subject_data_ = std::make_unique<SubjectDataService>(*db_.pool, *ring_, *writer_, bed_->clock(),
                                                         cache_.get(), *suppression_);
    rpc::AccessPolicy policy;
    ASSERT_THAT(AllowConsentMethods(policy), IsOk());
    ASSERT_THAT(AllowConsentSubjectData(policy), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(
        server_, bed_->Serve("consent", std::move(policy), {service_.get(), subject_data_.get()}));
    CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> ch,
                             bed_->Channel("gateway", server_->port(), "consent"));
    stub_ = v1::Consent::NewStub(ch);
    channel_ = ch;
    gateway_subject_ = sv1::SubjectData::NewStub(ch);
    CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> erasure,
                             bed_->Channel("erasure", server_->port(), "consent"));
    erasure_ = sv1::SubjectData::NewStub(erasure);
    admin_ = bed_->Token(kAdmin, {"consent.admin", "consent.read", "consent.write"});
    shop_ = bed_->Token(kShop, {"consent.write", "consent.check", "consent.read"});

    ASSERT_THAT(Define("newsletter", v1::LAWFUL_BASIS_CONSENT, true, 365), IsOk());
    ASSERT_THAT(Define("billing", v1::LAWFUL_BASIS_CONTRACT, false, 0), IsOk());
    ASSERT_THAT(Define("analytics", v1::LAWFUL_BASIS_LEGITIMATE_INTEREST, false, 0), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(v1_, Publish("newsletter", kNoticeV1));
    CRM_ASSERT_OK_AND_ASSIGN(v2_, Publish("newsletter", kNoticeV2));
  }

  void TearDown() override { server_.reset(); }

  double CacheCount(const std::string& result) {
    for (const auto& family : metrics_.Collect()) {
      if (family.name != "crm_consent_check_cache_total") continue;
      for (const auto& m : family.metric) {
        for (const auto& label : m.label) {
          if (label.name == "result" && label.value == result) return m.counter.value;
        }
      }
    }
    return -1;
  }

  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                            const Req& request, const std::string& token) {
    return crm::testing::UnaryCall(*stub_, rpc, request, token);
  }

  absl::Status Define(const std::string& id, v1::LawfulBasis basis, bool dm, int validity) {
    v1::DefinePurposeRequest req;
    v1::Purpose* p = req.mutable_purpose();
    p->set_purpose_id(id);
    p->set_basis(basis);
    p->set_description(absl::StrCat("The ", id, " purpose"));
    p->add_data_categories("contact");
    p->set_direct_marketing(dm);
    p->set_validity_days(validity);
    return Call(&Stub::DefinePurpose, req, admin_).status();
  }

  absl::StatusOr<std::string> Publish(const std::string& purpose, const std::string& text) {
    v1::PublishNoticeRequest req;
    req.set_purpose_id(purpose);
    req.set_language("en");
    req.set_text(text);
    CRM_ASSIGN_OR_RETURN(v1::PublishNoticeResponse resp, Call(&Stub::PublishNotice, req, admin_));
    return resp.version();
  }

  static v1::Statement Statement(const std::string& subject, const std::string& purpose,
                                 const std::string& notice = "") {
    v1::Statement s;
    s.set_subject_id(subject);
    s.set_purpose_id(purpose);
    s.set_notice_version(notice);
    s.set_method(v1::METHOD_WEB_FORM);
    s.set_source("shop");
    return s;
  }

  absl::StatusOr<v1::GrantResponse> Grant(const v1::Statement& s) {
    v1::GrantRequest req;
    *req.mutable_statement() = s;
    return Call(&Stub::Grant, req, shop_);
  }
  absl::StatusOr<v1::WithdrawResponse> Withdraw(const v1::Statement& s) {
    v1::WithdrawRequest req;
    *req.mutable_statement() = s;
    return Call(&Stub::Withdraw, req, shop_);
  }
  absl::StatusOr<v1::ObjectResponse> Object(const v1::Statement& s) {
    v1::ObjectRequest req;
    *req.mutable_statement() = s;
    return Call(&Stub::Object, req, shop_);
  }
  absl::StatusOr<v1::Reason> Check(const std::string& subject, const std::string& purpose) {
    v1::CheckRequest req;
    req.set_subject_id(subject);
    req.set_purpose_id(purpose);
    CRM_ASSIGN_OR_RETURN(v1::CheckResponse resp, Call(&Stub::Check, req, shop_));
    if (resp.decision().subject_id() != subject) return absl::InternalError("wrong subject");
    const bool allowed = resp.decision().reason() == v1::REASON_GRANTED ||
                         resp.decision().reason() == v1::REASON_BASIS_NOT_CONSENT;
    if (resp.decision().allowed() != allowed) return absl::InternalError("allowed mismatch");
    return resp.decision().reason();
  }
  absl::StatusOr<v1::GetHistoryResponse> History(const std::string& subject) {
    v1::GetHistoryRequest req;
    req.set_subject_id(subject);
    return Call(&Stub::GetHistory, req, shop_);
  }

  std::string DumpAll() {
    std::string out;
    EXPECT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
      for (const char* table :
           {"ledger", "consent_state", "subject_keys", "audit_outbox", "suppressions"}) {
        for (const auto& row : tx.exec(absl::StrCat("SELECT * FROM ", table))) {
          for (const auto& field : row) {
            if (field.is_null()) continue;
            out += field.type() == 17 ? pqxx::binarystring(field).str() : field.c_str();
            out += "\t";
          }
          out += "\n";
        }
      }
      return absl::OkStatus();
    }),
                IsOk());
    return out;
  }

  std::unique_ptr<crm::testing::ApiTestBed> bed_;
  crm::testing::MigratedDatabase db_;
  std::optional<crypto::KeyRing> ring_;
  std::unique_ptr<outbox::Writer> writer_;
  std::unique_ptr<crm::testing::PrivateRedisServer> redis_server_;
  std::unique_ptr<redis::Client> redis_;
  prometheus::Registry metrics_;
  std::unique_ptr<CheckCache> cache_;
  std::shared_ptr<grpc::Channel> channel_;
  std::optional<crypto::BlindIndexer> suppression_;
  std::unique_ptr<ReceiptSigner> receipts_;
  std::unique_ptr<ConsentService> service_;
  std::unique_ptr<SubjectDataService> subject_data_;
  std::unique_ptr<sv1::SubjectData::Stub> gateway_subject_, erasure_;
  std::unique_ptr<rpc::ServerRunner> server_;
  std::unique_ptr<Stub> stub_;
  std::string admin_, shop_;
  std::string v1_, v2_;
};

TEST_F(ConsentServiceTest, PurposesCarryTheirBasisAndCurrentNotice) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListPurposesResponse list,
                           Call(&Stub::ListPurposes, v1::ListPurposesRequest(), shop_));
  ASSERT_THAT(list.purposes(), SizeIs(3));
  const v1::Purpose& newsletter = list.purposes(2);  // by id
  EXPECT_EQ(newsletter.purpose_id(), "newsletter");
  EXPECT_EQ(newsletter.basis(), v1::LAWFUL_BASIS_CONSENT);
  EXPECT_EQ(newsletter.current_notice_versions().at("en"), v2_);
  EXPECT_EQ(v2_, absl::BytesToHexString(crypto::Sha256(kNoticeV2)));
  // The same text again is no new version; a basis never changes.
  v1::PublishNoticeRequest again;
  again.set_purpose_id("newsletter");
  again.set_language("en");
  again.set_text(kNoticeV1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::PublishNoticeResponse republished,
                           Call(&Stub::PublishNotice, again, admin_));
  EXPECT_FALSE(republished.created());
  EXPECT_EQ(republished.version(), v1_);
  EXPECT_THAT(Define("newsletter", v1::LAWFUL_BASIS_LEGITIMATE_INTEREST, true, 365),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("purpose.basis")));
  EXPECT_THAT(Define("Bad Id", v1::LAWFUL_BASIS_CONSENT, false, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("purpose.purpose_id")));
  again.set_purpose_id("nope");
  EXPECT_THAT(Call(&Stub::PublishNotice, again, admin_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown purpose")));
  // Purposes and notices are the admin's.
  EXPECT_THAT(Define("spam", v1::LAWFUL_BASIS_CONSENT, false, 0).code(), absl::StatusCode::kOk);
  v1::DefinePurposeRequest by_shop;
  by_shop.mutable_purpose()->set_purpose_id("other");
  EXPECT_THAT(Call(&Stub::DefinePurpose, by_shop, shop_),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(ConsentServiceTest, GrantWithdrawObjectDecideTheNextCheck) {
  const std::string subject = base::NewUuid();
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_NO_RECORD));
  EXPECT_THAT(Check(subject, "billing"), testing::IsOkAndHolds(v1::REASON_BASIS_NOT_CONSENT));

  // Only the current notice may be granted.
  EXPECT_THAT(Grant(Statement(subject, "newsletter", v1_)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(v2_)));
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantResponse granted, Grant(Statement(subject, "newsletter", v2_)));
  EXPECT_TRUE(granted.changed());
  EXPECT_EQ(granted.entry().sequence(), 1);
  EXPECT_TRUE(granted.entry().has_expires_at());
  EXPECT_EQ(granted.entry().actor(), kShop);
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantResponse again, Grant(Statement(subject, "newsletter", v2_)));
  EXPECT_FALSE(again.changed());

  CRM_ASSERT_OK_AND_ASSIGN(v1::WithdrawResponse withdrawn,
                           Withdraw(Statement(subject, "newsletter")));
  EXPECT_TRUE(withdrawn.changed());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_WITHDRAWN));
  CRM_ASSERT_OK_AND_ASSIGN(v1::WithdrawResponse twice, Withdraw(Statement(subject, "newsletter")));
  EXPECT_FALSE(twice.changed());

  CRM_ASSERT_OK_AND_ASSIGN(v1::ObjectResponse objected, Object(Statement(subject, "newsletter")));
  EXPECT_TRUE(objected.changed());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_OBJECTED));
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantResponse regranted,
                           Grant(Statement(subject, "newsletter", v2_)));
  EXPECT_TRUE(regranted.changed());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));

  CRM_ASSERT_OK_AND_ASSIGN(v1::GetHistoryResponse history, History(subject));
  ASSERT_THAT(history.entries(), SizeIs(4));
  EXPECT_TRUE(history.chain_intact());
  EXPECT_EQ(history.entries(3).previous_hash(), history.entries(2).entry_hash());
  EXPECT_EQ(history.entries(1).action(), v1::ACTION_WITHDRAW);

  // Another subject's statements change nothing here.
  ASSERT_THAT(Object(Statement(base::NewUuid(), "newsletter")), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
}

TEST_F(ConsentServiceTest, ChecksAreCachedInvalidatedByChangesAndCorrectWithoutRedis) {
  const std::string subject = base::NewUuid();
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
  const double hits = CacheCount("hit");
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
  EXPECT_EQ(CacheCount("hit"), hits + 1);
  // Keys carry ids only: the subject's 16 bytes and the purpose.
  CRM_ASSERT_OK_AND_ASSIGN(redis::Reply keys, redis_->Command("KEYS", "*"));
  ASSERT_FALSE(keys.elements.empty());
  const std::string id_bytes = absl::HexStringToBytes(absl::StrReplaceAll(subject, {{"-", ""}}));
  for (const redis::Reply& k : keys.elements) {
    EXPECT_TRUE(k.str == absl::StrCat("cs:", id_bytes, ":newsletter") ||
                k.str == absl::StrCat("cg:", id_bytes))
        << absl::CHexEscape(k.str);
  }
  // A change takes effect for the next check, cached or not.
  ASSERT_THAT(Withdraw(Statement(subject, "newsletter")), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_WITHDRAWN));
  v1::SetRestrictionRequest restrict;
  restrict.set_subject_id(subject);
  restrict.set_restricted(true);
  EXPECT_THAT(Check(subject, "billing"), testing::IsOkAndHolds(v1::REASON_BASIS_NOT_CONSENT));
  ASSERT_THAT(Call(&Stub::SetRestriction, restrict, shop_), IsOk());
  EXPECT_THAT(Check(subject, "billing"), testing::IsOkAndHolds(v1::REASON_RESTRICTED));

  // Without Redis: PostgreSQL answers, and changes still count.
  ASSERT_THAT(redis_server_->Stop(), IsOk());
  const double errors = CacheCount("error");
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_RESTRICTED));
  EXPECT_GT(CacheCount("error"), errors);
  restrict.set_restricted(false);
  ASSERT_THAT(Call(&Stub::SetRestriction, restrict, shop_), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_WITHDRAWN));
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
}

// Check answers from the cache without holding a thread: many checks in
// flight at once share the Redis client's pipeline, and each gets its own
// subject's answer.
TEST_F(ConsentServiceTest, ManyChecksInFlightEachGetTheirOwnSubjectsAnswer) {
  const std::vector<std::string> subjects = {base::NewUuid(), base::NewUuid(), base::NewUuid()};
  const std::vector<v1::Reason> want = {v1::REASON_GRANTED, v1::REASON_WITHDRAWN,
                                        v1::REASON_NO_RECORD};
  ASSERT_THAT(Grant(Statement(subjects[0], "newsletter", v2_)), IsOk());
  ASSERT_THAT(Grant(Statement(subjects[1], "newsletter", v2_)), IsOk());
  ASSERT_THAT(Withdraw(Statement(subjects[1], "newsletter")), IsOk());
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_THAT(Check(subjects[i], "newsletter"), testing::IsOkAndHolds(want[i]));  // cached
  }
  const double hits = CacheCount("hit");
  constexpr int kThreads = 8, kCalls = 30;
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const size_t k = static_cast<size_t>(t + i) % 3;
        absl::StatusOr<v1::Reason> got = Check(subjects[k], "newsletter");
        if (!got.ok() || *got != want[k]) ++wrong[static_cast<size_t>(t)];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[static_cast<size_t>(t)], 0) << t;
  EXPECT_EQ(CacheCount("hit"), hits + kThreads * kCalls);
}

// Redis unreachable while a withdrawal commits, and the invalidation lost
// on the way (a dropped packet; here: the entry written back after Redis
// returns): the "granted" Redis holds must not be served when it is back.
TEST_F(ConsentServiceTest, AWithdrawalWhoseInvalidationWasLostIsNotUndoneWhenRedisReturns) {
  const std::string subject = base::NewUuid();
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
  const double hits = CacheCount("hit");
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
  ASSERT_EQ(CacheCount("hit"), hits + 1);  // "granted" is in Redis
  CRM_ASSERT_OK_AND_ASSIGN(redis::Reply keys, redis_->Command("KEYS", "cs:*"));
  ASSERT_EQ(keys.elements.size(), 1u);
  const std::string key = keys.elements[0].str;
  CRM_ASSERT_OK_AND_ASSIGN(redis::Reply granted, redis_->Command("GET", key));

  ASSERT_THAT(redis_server_->Pause(), IsOk());
  ASSERT_THAT(Withdraw(Statement(subject, "newsletter")), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_WITHDRAWN));
  EXPECT_TRUE(cache_->bypassed());
  ASSERT_THAT(redis_server_->Resume(), IsOk());
  ASSERT_THAT(redis_->Command("SET", key, granted.str).status(), IsOk());

  // Back, with the old entry in it: bypassed until repaired, then repaired.
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_WITHDRAWN));
  ASSERT_THAT(cache_->Repair(*db_.pool), IsOk());
  EXPECT_FALSE(cache_->bypassed());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_WITHDRAWN));
  const double hits_after = CacheCount("hit");
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_WITHDRAWN));
  EXPECT_EQ(CacheCount("hit"), hits_after + 1);  // cached again, correctly
}

// A process that died between a change's commit and its invalidation left a
// row in cache_invalidations: the next Repair (any replica's) drops the entry.
TEST_F(ConsentServiceTest, RepairInvalidatesWhatACrashedWriterLeftBehind) {
  const std::string subject = base::NewUuid();
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
  ASSERT_TRUE(cache_->GetMany({subject}, "newsletter")[0].has_value());
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
    return cache_->Pending(tx, subject, {"newsletter", "billing"}).status();
  }),
              IsOk());
  ASSERT_THAT(cache_->Repair(*db_.pool), IsOk());
  EXPECT_FALSE(cache_->GetMany({subject}, "newsletter")[0].has_value());
  int64_t left = -1;
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
    left = tx.exec1("SELECT count(*) FROM cache_invalidations")[0].as<int64_t>();
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(left, 0);
}

TEST(CheckCacheValueTest, EncodedStandingsRoundTripAndGarbageIsAMiss) {
  ConsentStore::Standing s;
  s.state.kind = PurposeState::Kind::kGranted;
  s.state.expires_at = absl::FromUnixMicros(1'796'083'200'123'456);
  s.restricted = true;
  std::optional<ConsentStore::Standing> back = DecodeStanding(EncodeStanding(s));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->state.kind, PurposeState::Kind::kGranted);
  EXPECT_EQ(back->state.expires_at, s.state.expires_at);
  EXPECT_TRUE(back->restricted);
  for (const char* bad : {"9|0|0", "1|0|2", "1|x|0", "1||0", "garbage", "", "1|0|0|0", "10|0|0"}) {
    EXPECT_FALSE(DecodeStanding(bad).has_value()) << bad;
  }
  s.state.expires_at = absl::InfiniteFuture();
  s.restricted = false;
  back = DecodeStanding(EncodeStanding(s));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->state.expires_at, absl::InfiniteFuture());
  EXPECT_FALSE(back->restricted);
}

// The race the generations close: a check that read PostgreSQL before a
// change committed must not put its old answer back after the change's
// invalidation.
TEST_F(ConsentServiceTest, AStandingReadBeforeAChangeIsNotCachedAfterIt) {
  const std::vector<std::string> subjects = {base::NewUuid(), base::NewUuid()};
  const std::vector<size_t> both = {0, 1};
  ConsentStore::Standing granted;
  granted.state.kind = PurposeState::Kind::kGranted;
  granted.state.expires_at = absl::InfiniteFuture();
  const std::vector<std::string> before = cache_->Generations(subjects, both);
  ASSERT_THAT(before, ElementsAre("0", "0"));
  ASSERT_THAT(cache_->Invalidate(subjects[0], {"newsletter"}),
              IsOk());  // a change of the first commits
  cache_->PutMany(subjects, both, "newsletter", before, {granted, granted});
  std::vector<std::optional<ConsentStore::Standing>> got = cache_->GetMany(subjects, "newsletter");
  EXPECT_FALSE(got[0].has_value());  // refused: its generation moved
  ASSERT_TRUE(got[1].has_value());
  EXPECT_EQ(got[1]->state.kind, PurposeState::Kind::kGranted);
  // Under the current generation it is stored; the next change drops it.
  cache_->PutMany(subjects, {0}, "newsletter", cache_->Generations(subjects, {0}), {granted});
  EXPECT_TRUE(cache_->GetMany(subjects, "newsletter")[0].has_value());
  ASSERT_THAT(cache_->Invalidate(subjects[0], {"newsletter"}), IsOk());
  EXPECT_FALSE(cache_->GetMany(subjects, "newsletter")[0].has_value());
}

TEST_F(ConsentServiceTest, EveryGrantHasASignedReceiptVerifiableWithThePublishedKey) {
  const std::string subject = base::NewUuid();
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantResponse granted, Grant(Statement(subject, "newsletter", v2_)));
  const std::vector<std::string> parts = absl::StrSplit(granted.receipt_jws(), '.');
  ASSERT_EQ(parts.size(), 3u);
  std::optional<std::string> header = auth::Base64UrlDecode(parts[0]);
  std::optional<std::string> payload = auth::Base64UrlDecode(parts[1]);
  std::optional<std::string> signature = auth::Base64UrlDecode(parts[2]);
  ASSERT_TRUE(header && payload && signature);
  CRM_ASSERT_OK_AND_ASSIGN(json::Value h, json::Parse(*header));
  CRM_ASSERT_OK_AND_ASSIGN(json::Value p, json::Parse(*payload));
  auto member = [](const json::Value& v, const std::string& key) -> std::string {
    for (const auto& [k, val] : v.object()) {
      if (k == key && val.is_string()) return val.string_value();
    }
    return "";
  };
  EXPECT_EQ(member(h, "alg"), "EdDSA");
  EXPECT_EQ(member(p, "version"), "KI-CR-v1.1.0");
  EXPECT_EQ(member(p, "piiPrincipalId"), subject);
  EXPECT_EQ(member(p, "consentReceiptID"), granted.entry().entry_hash());
  EXPECT_EQ(member(p, "noticeVersion"), v2_);
  EXPECT_EQ(member(p, "policyUrl"), "https://shop.example/privacy");

  // The published key verifies it; a changed payload does not verify.
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetReceiptKeysResponse keys,
                           Call(&Stub::GetReceiptKeys, v1::GetReceiptKeysRequest(), shop_));
  ASSERT_THAT(keys.keys(), SizeIs(1));
  EXPECT_EQ(keys.keys(0).kid(), member(h, "kid"));
  std::optional<std::string> raw = auth::Base64UrlDecode(keys.keys(0).public_key());
  ASSERT_TRUE(raw.has_value());
  CRM_ASSERT_OK_AND_ASSIGN(crypto::Ed25519PublicKey key, crypto::Ed25519PublicKey::FromRaw(*raw));
  const std::string signed_part = absl::StrCat(parts[0], ".", parts[1]);
  EXPECT_TRUE(key.Verify(signed_part, *signature));
  std::string forged = *payload;
  forged.replace(forged.find(subject), subject.size(), base::NewUuid());
  EXPECT_FALSE(key.Verify(absl::StrCat(parts[0], ".", auth::Base64UrlEncode(forged)), *signature));

  // Retrievable later, and given again for a repeated grant.
  v1::GetReceiptRequest get;
  get.set_subject_id(subject);
  get.set_sequence(granted.entry().sequence());
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetReceiptResponse stored, Call(&Stub::GetReceipt, get, shop_));
  EXPECT_EQ(stored.receipt_jws(), granted.receipt_jws());
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantResponse again, Grant(Statement(subject, "newsletter", v2_)));
  EXPECT_FALSE(again.changed());
  EXPECT_EQ(again.receipt_jws(), granted.receipt_jws());
  // Withdrawals have none.
  CRM_ASSERT_OK_AND_ASSIGN(v1::WithdrawResponse withdrawn,
                           Withdraw(Statement(subject, "newsletter")));
  get.set_sequence(withdrawn.entry().sequence());
  EXPECT_THAT(Call(&Stub::GetReceipt, get, shop_), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ConsentServiceTest, LapsedAndLapsingGrantsFormThePagedReconsentList) {
  // newsletter grants last 365 days; three granted at different times.
  std::vector<std::string> subjects;
  for (int days_ago : {400, 370, 300}) {
    const std::string subject = base::NewUuid();
    v1::Statement s = Statement(subject, "newsletter", v2_);
    rpc::SetTime(bed_->clock().Now() - absl::Hours(24) * days_ago, s.mutable_given_at());
    ASSERT_THAT(Grant(s), IsOk());
    subjects.push_back(subject);
  }
  ASSERT_THAT(Grant(Statement(base::NewUuid(), "newsletter", v2_)), IsOk());  // fresh
  EXPECT_THAT(Check(subjects[0], "newsletter"), testing::IsOkAndHolds(v1::REASON_EXPIRED));
  v1::ListReconsentRequest req;
  req.set_purpose_id("newsletter");
  req.set_page_size(1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListReconsentResponse first, Call(&Stub::ListReconsent, req, shop_));
  ASSERT_THAT(first.entries(), SizeIs(1));
  EXPECT_EQ(first.entries(0).subject_id(), subjects[0]);  // lapsed longest ago
  req.set_page_token(first.next_page_token());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListReconsentResponse second,
                           Call(&Stub::ListReconsent, req, shop_));
  ASSERT_THAT(second.entries(), SizeIs(1));
  EXPECT_EQ(second.entries(0).subject_id(), subjects[1]);
  EXPECT_TRUE(second.next_page_token().empty());  // the 300-day one lapses in 65 days
  req.clear_page_token();
  req.set_page_size(10);
  req.set_within_days(90);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListReconsentResponse within,
                           Call(&Stub::ListReconsent, req, shop_));
  EXPECT_THAT(within.entries(), SizeIs(3));
  req.set_page_token("bm9wZQ");
  EXPECT_THAT(Call(&Stub::ListReconsent, req, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  req.clear_page_token();
  req.set_within_days(-1);
  EXPECT_THAT(Call(&Stub::ListReconsent, req, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("within_days")));
}

TEST_F(ConsentServiceTest, AnEditedLedgerIsFoundByTheChain) {
  const std::string subject = base::NewUuid();
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  ASSERT_THAT(Withdraw(Statement(subject, "newsletter")), IsOk());
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params("UPDATE ledger SET action = 1 WHERE subject_id = $1::uuid AND sequence = 2",
                   subject);
    return absl::OkStatus();
  }),
              IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetHistoryResponse history, History(subject));
  EXPECT_FALSE(history.chain_intact());
  EXPECT_EQ(history.first_broken_sequence(), 2);
}

TEST_F(ConsentServiceTest, ObjectionAndRestrictionAcrossBases) {
  const std::string subject = base::NewUuid();
  EXPECT_THAT(Object(Statement(subject, "billing")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Art. 21")));
  EXPECT_THAT(Grant(Statement(subject, "billing", v2_)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not consent")));
  ASSERT_THAT(Object(Statement(subject, "analytics")), IsOk());
  EXPECT_THAT(Check(subject, "analytics"), testing::IsOkAndHolds(v1::REASON_OBJECTED));
  EXPECT_THAT(Check(subject, "billing"), testing::IsOkAndHolds(v1::REASON_BASIS_NOT_CONSENT));

  v1::SetRestrictionRequest restrict;
  restrict.set_subject_id(subject);
  restrict.set_restricted(true);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SetRestrictionResponse r,
                           Call(&Stub::SetRestriction, restrict, shop_));
  EXPECT_TRUE(r.changed());
  EXPECT_THAT(Check(subject, "billing"), testing::IsOkAndHolds(v1::REASON_RESTRICTED));
  restrict.set_restricted(false);
  ASSERT_THAT(Call(&Stub::SetRestriction, restrict, shop_), IsOk());
  EXPECT_THAT(Check(subject, "billing"), testing::IsOkAndHolds(v1::REASON_BASIS_NOT_CONSENT));
}

TEST_F(ConsentServiceTest, BatchCheckAnswersInOrder) {
  const std::string granted = base::NewUuid(), none = base::NewUuid(), objected = base::NewUuid();
  ASSERT_THAT(Grant(Statement(granted, "newsletter", v2_)), IsOk());
  ASSERT_THAT(Object(Statement(objected, "newsletter")), IsOk());
  v1::BatchCheckRequest req;
  req.set_purpose_id("newsletter");
  for (const std::string& s : {objected, granted, none, granted}) req.add_subject_ids(s);
  CRM_ASSERT_OK_AND_ASSIGN(v1::BatchCheckResponse resp, Call(&Stub::BatchCheck, req, shop_));
  ASSERT_THAT(resp.decisions(), SizeIs(4));
  EXPECT_EQ(resp.decisions(0).reason(), v1::REASON_OBJECTED);
  EXPECT_EQ(resp.decisions(1).reason(), v1::REASON_GRANTED);
  EXPECT_TRUE(resp.decisions(1).allowed());
  EXPECT_EQ(resp.decisions(2).reason(), v1::REASON_NO_RECORD);
  EXPECT_EQ(resp.decisions(3).subject_id(), granted);
  // Answered from the cache now; a change still counts at once.
  const double hits = CacheCount("hit");
  ASSERT_THAT(Withdraw(Statement(granted, "newsletter")), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(resp, Call(&Stub::BatchCheck, req, shop_));
  ASSERT_THAT(resp.decisions(), SizeIs(4));
  EXPECT_EQ(resp.decisions(0).reason(), v1::REASON_OBJECTED);
  EXPECT_EQ(resp.decisions(1).reason(), v1::REASON_WITHDRAWN);
  EXPECT_EQ(resp.decisions(2).reason(), v1::REASON_NO_RECORD);
  EXPECT_EQ(resp.decisions(3).reason(), v1::REASON_WITHDRAWN);
  EXPECT_EQ(CacheCount("hit"), hits + 2);  // objected and none; granted's generation moved

  req.add_subject_ids("not-a-uuid");
  EXPECT_THAT(Call(&Stub::BatchCheck, req, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject_ids[4]")));
  v1::BatchCheckRequest big;
  big.set_purpose_id("newsletter");
  for (int i = 0; i <= kMaxBatchCheck; ++i) big.add_subject_ids(granted);
  EXPECT_THAT(Call(&Stub::BatchCheck, big, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 10,000")));
}

TEST_F(ConsentServiceTest, BadStatementsHaveDefinedAnswers) {
  const std::string subject = base::NewUuid();
  EXPECT_THAT(Grant(Statement(subject, "unknown", v2_)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown purpose")));
  EXPECT_THAT(Grant(Statement(subject, "newsletter", std::string(64, 'c'))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a notice")));
  v1::Statement future = Statement(subject, "newsletter", v2_);
  rpc::SetTime(bed_->clock().Now() + absl::Hours(1), future.mutable_given_at());
  EXPECT_THAT(Grant(future),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("statement.given_at")));
  v1::Statement injected = Statement("'; DROP TABLE ledger; --", "newsletter", v2_);
  EXPECT_THAT(Grant(injected),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("statement.subject_id")));
  EXPECT_THAT(Check(subject, "newsletter; DROP TABLE ledger"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("purpose_id")));
  EXPECT_THAT(Check(subject, "unknown"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown purpose")));
  EXPECT_THAT(Check("' OR 1=1 --", "newsletter"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject_id")));
  // A grant back-dated before the latest entry is refused.
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  v1::Statement late = Statement(subject, "newsletter");
  rpc::SetTime(bed_->clock().Now() - absl::Hours(1), late.mutable_given_at());
  EXPECT_THAT(Withdraw(late),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("statement.given_at")));
  // Bytes that are no CheckRequest (invalid UTF-8 in a string, a truncated
  // field): Check parses them itself and names the request.
  for (const std::string& bytes :
       {std::string("\x0a\x02\xff\xfe", 4), std::string("\x0a\x10") + "abc"}) {
    std::string out;
    const grpc::Status raw = rpc::UnaryCall(channel_, "/crm.consent.v1.Consent/Check", bytes,
                                            {{"authorization", absl::StrCat("Bearer ", shop_)}},
                                            absl::Seconds(10), &out);
    EXPECT_EQ(raw.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << raw.error_message();
    EXPECT_THAT(raw.error_message(), HasSubstr("request"));
  }
  // Permissions.
  v1::CheckRequest check;
  check.set_subject_id(subject);
  check.set_purpose_id("newsletter");
  EXPECT_THAT(Call(&Stub::Check, check, ""), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(Call(&Stub::Check, check, admin_), StatusIs(absl::StatusCode::kPermissionDenied));
  v1::GrantRequest grant;
  *grant.mutable_statement() = Statement(subject, "newsletter", v2_);
  EXPECT_THAT(Call(&Stub::Grant, grant, bed_->Token(kShop, {"consent.check"})),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(ConsentServiceTest, EvidenceIsSealedAndEveryStatementAudited) {
  const std::string subject = base::NewUuid();
  v1::Statement s = Statement(subject, "newsletter", v2_);
  s.set_source_address(kAddress);
  s.set_user_agent(kAgent);
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantResponse granted, Grant(s));
  EXPECT_TRUE(granted.entry().has_evidence());
  ASSERT_THAT(Withdraw(Statement(subject, "newsletter")), IsOk());
  const std::string dump = DumpAll();
  ASSERT_THAT(dump, HasSubstr(subject));  // the dump did read the rows
  EXPECT_THAT(dump, Not(HasSubstr(kAddress)));
  EXPECT_THAT(dump, Not(HasSubstr("Firefox")));
  CRM_ASSERT_OK_AND_ASSIGN(
      int64_t events,
      db_.pool->TransactValue<int64_t>([](pqxx::work& tx) -> absl::StatusOr<int64_t> {
        return tx.exec1("SELECT count(*) FROM audit_outbox")[0].as<int64_t>();
      }));
  // 3 purposes and 2 notices defined in SetUp, then a grant and a withdrawal.
  EXPECT_EQ(events, 7);
}

TEST_F(ConsentServiceTest, SubjectDataDescribeExportEraseForTheOrchestratorOnly) {
  const std::string subject = base::NewUuid();
  v1::Statement s = Statement(subject, "newsletter", v2_);
  s.set_source_address(kAddress);
  s.set_user_agent(kAgent);
  ASSERT_THAT(Grant(s), IsOk());
  ASSERT_THAT(Object(Statement(subject, "analytics")), IsOk());
  sv1::DescribeSubjectDataRequest describe;
  describe.set_subject_id(subject);
  EXPECT_THAT(crm::testing::UnaryCall(*gateway_subject_,
                                      &sv1::SubjectData::Stub::DescribeSubjectData, describe),
              StatusIs(absl::StatusCode::kPermissionDenied));
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::DescribeSubjectDataResponse described,
      crm::testing::UnaryCall(*erasure_, &sv1::SubjectData::Stub::DescribeSubjectData, describe));
  EXPECT_EQ(described.service(), "consent");
  ASSERT_THAT(described.categories(), SizeIs(2));
  EXPECT_EQ(described.categories(0).category(), "consent_records");
  EXPECT_EQ(described.categories(0).record_count(), 2);
  EXPECT_EQ(described.categories(1).record_count(), 2);  // two purposes

  sv1::ExportSubjectDataRequest exp;
  exp.set_subject_id(subject);
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::ExportSubjectDataResponse exported,
      crm::testing::UnaryCall(*erasure_, &sv1::SubjectData::Stub::ExportSubjectData, exp));
  ASSERT_THAT(exported.records(), SizeIs(2));
  const auto& first = exported.records(0).data().fields();
  for (const char* key : {"purpose_id", "source_address", "user_agent"}) {
    ASSERT_TRUE(first.contains(key)) << key;
  }
  EXPECT_EQ(first.at("purpose_id").string_value(), "newsletter");
  EXPECT_EQ(first.at("source_address").string_value(), kAddress);
  EXPECT_EQ(first.at("user_agent").string_value(), kAgent);
  // The grant's signed receipt comes with it; the objection has none.
  ASSERT_TRUE(first.contains("receipt_jws"));
  EXPECT_EQ(std::count(first.at("receipt_jws").string_value().begin(),
                       first.at("receipt_jws").string_value().end(), '.'),
            2);
  EXPECT_FALSE(exported.records(1).data().fields().contains("receipt_jws"));

  // Cached answers too must not outlive the erasure.
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_GRANTED));

  sv1::EraseSubjectDataRequest erase;
  erase.set_request_id(base::NewUuid());
  erase.set_subject_id(subject);
  // The objection was not to direct marketing: nothing is kept.
  erase.add_email_addresses("kept.nowhere@shop.example");
  EXPECT_THAT(
      crm::testing::UnaryCall(*gateway_subject_, &sv1::SubjectData::Stub::EraseSubjectData, erase),
      StatusIs(absl::StatusCode::kPermissionDenied));
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::EraseSubjectDataResponse erased,
      crm::testing::UnaryCall(*erasure_, &sv1::SubjectData::Stub::EraseSubjectData, erase));
  EXPECT_TRUE(erased.data_key_destroyed());
  EXPECT_THAT(erased.retained(), SizeIs(0));
  ASSERT_THAT(erased.erased(), SizeIs(2));
  EXPECT_EQ(erased.erased(0).record_count(), 2);
  // Gone: the ledger, the standings, the key; checks start over.
  EXPECT_THAT(DumpAll(), Not(HasSubstr(subject)));
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_NO_RECORD));
  EXPECT_THAT(Check(subject, "analytics"), testing::IsOkAndHolds(v1::REASON_BASIS_NOT_CONSENT));
  // A retry gets the same answer; the id is not reusable for another subject.
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::EraseSubjectDataResponse again,
      crm::testing::UnaryCall(*erasure_, &sv1::SubjectData::Stub::EraseSubjectData, erase));
  EXPECT_EQ(again.erased(0).record_count(), 2);
  EXPECT_EQ(again.completed_at().seconds(), erased.completed_at().seconds());
  erase.set_subject_id(base::NewUuid());
  EXPECT_THAT(crm::testing::UnaryCall(*erasure_, &sv1::SubjectData::Stub::EraseSubjectData, erase),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
}

TEST_F(ConsentServiceTest, AnErasedObjectorsAddressesStaySuppressedAsKeyedHashesOnly) {
  const std::string subject = base::NewUuid();
  ASSERT_THAT(Grant(Statement(subject, "newsletter", v2_)), IsOk());
  ASSERT_THAT(Object(Statement(subject, "newsletter")), IsOk());
  sv1::DescribeSubjectDataRequest describe;
  describe.set_subject_id(subject);
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::DescribeSubjectDataResponse described,
      crm::testing::UnaryCall(*erasure_, &sv1::SubjectData::Stub::DescribeSubjectData, describe));
  ASSERT_THAT(described.categories(), SizeIs(3));
  EXPECT_EQ(described.categories(2).category(), "marketing_suppression");
  EXPECT_TRUE(described.categories(2).legally_retained());
  EXPECT_THAT(described.categories(2).retention_basis(), HasSubstr("Art. 21(3)"));

  sv1::EraseSubjectDataRequest erase;
  erase.set_request_id(base::NewUuid());
  erase.set_subject_id(subject);
  erase.add_email_addresses("Ann.Example@Shop.Example");
  erase.add_email_addresses("not an address");
  auto erase_call = [&] {
    return crm::testing::UnaryCall(*erasure_, &sv1::SubjectData::Stub::EraseSubjectData, erase);
  };
  // A bad address refuses the whole erasure, naming it; nothing is gone.
  EXPECT_THAT(erase_call(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email_addresses[1]")));
  EXPECT_THAT(Check(subject, "newsletter"), testing::IsOkAndHolds(v1::REASON_OBJECTED));
  for (int i = 0; i < 15; ++i) erase.add_email_addresses(absl::StrCat("a", i, "@x.example"));
  EXPECT_THAT(erase_call(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email_addresses: at most")));
  erase.clear_email_addresses();
  erase.add_email_addresses("Ann.Example@Shop.Example");
  erase.add_email_addresses("ann@other.example");
  erase.add_email_addresses(" ann.example@shop.example ");  // the same address again
  CRM_ASSERT_OK_AND_ASSIGN(sv1::EraseSubjectDataResponse erased, erase_call());
  ASSERT_THAT(erased.retained(), SizeIs(1));
  EXPECT_EQ(erased.retained(0).category(), "marketing_suppression");
  EXPECT_EQ(erased.retained(0).record_count(), 2);
  EXPECT_TRUE(erased.retained(0).legally_retained());
  CRM_ASSERT_OK_AND_ASSIGN(sv1::EraseSubjectDataResponse again, erase_call());
  EXPECT_EQ(again.retained(0).record_count(), 2);
  // Nothing readable is kept: neither the subject nor the addresses.
  const std::string dump = DumpAll();
  EXPECT_THAT(dump, Not(HasSubstr(subject)));
  EXPECT_THAT(absl::AsciiStrToLower(dump), Not(HasSubstr("ann.example")));
  EXPECT_THAT(absl::AsciiStrToLower(dump), Not(HasSubstr("@other.example")));

  // Mailing asks before sending, in any letter case; unknown addresses pass.
  v1::CheckSuppressionRequest ask;
  ask.add_email_addresses("ANN.EXAMPLE@shop.example");
  ask.add_email_addresses("someone@else.example");
  ask.add_email_addresses("ann@other.example");
  CRM_ASSERT_OK_AND_ASSIGN(v1::CheckSuppressionResponse answer,
                           Call(&Stub::CheckSuppression, ask, shop_));
  EXPECT_THAT(answer.suppressed(), ElementsAre(true, false, true));
  ask.add_email_addresses("@nobody");
  EXPECT_THAT(Call(&Stub::CheckSuppression, ask, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email_addresses[3]")));
  ask.Clear();
  CRM_ASSERT_OK_AND_ASSIGN(answer, Call(&Stub::CheckSuppression, ask, shop_));
  EXPECT_THAT(answer.suppressed(), SizeIs(0));
}

}  // namespace
}  // namespace crm::consent
