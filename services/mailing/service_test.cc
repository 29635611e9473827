// MailingService end to end: real PostgreSQL (a database each for mailing and
// consent), the real consent service in-process behind its own mTLS server,
// mailing calling it with its own token, and callers over mTLS.
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/dkim/signer.h"
#include "libs/dkim/testing/dkimpy.h"
#include "libs/log/log.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/server.h"
#include "libs/smtp/sender.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/smtp_sink.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/unary_call.h"
#include "services/consent/consent_service.h"
#include "services/mailing/consent_gate.h"
#include "services/mailing/mailing_service.h"
#include "services/mailing/mailing_store.h"
#include "services/mailing/sender.h"
#include "services/mailing/subject_data_service.h"

namespace crm::mailing {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using Stub = v1::Mailing::Stub;
namespace cv1 = crm::consent::v1;

constexpr char kManager[] = "3a1f5c7e-2b4d-4e6f-8a0b-1c2d3e4f5a6b";
constexpr char kShop[] = "1c7a2d4f-9e3b-4a6c-8d2e-3f4a5b6c7d8e";

class MailingServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { log::SetMinLevel(log::Level::kError); }

  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(bed_, crm::testing::ApiTestBed::Create(
                                       "mailing", {"consent", "gateway", "shop", "erasure"}));
    // Real time: an independent DKIM verifier refuses signatures from the
    // future (the fake clock starts in 2027).
    bed_->clock().Set(absl::Now());
    std::vector<crypto::VersionedKey> keks;
    keks.push_back({1, crypto::RandomSecret(32)});
    CRM_ASSERT_OK_AND_ASSIGN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
    ring_.emplace(std::move(ring));

    // The consent service, as main.cc wires it (without the check cache).
    CRM_ASSERT_OK_AND_ASSIGN(consent_db_,
                             crm::testing::CreateMigratedDatabase("consent", "mailing_consent", 4));
    ASSERT_THAT(outbox::EnsureSchema(*consent_db_.pool), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes consent_outbox,
                             outbox::LoadOrCreateKey(*consent_db_.pool, *ring_));
    consent_audit_ =
        std::make_unique<outbox::Writer>("consent", consent_outbox.Copy(), bed_->clock());
    CRM_ASSERT_OK_AND_ASSIGN(crypto::BlindIndexer indexer,
                             crypto::BlindIndexer::Create(crypto::RandomSecret(32)));
    suppression_.emplace(std::move(indexer));
    consent_ = std::make_unique<consent::ConsentService>(
        consent::ConsentDeps{.db = *consent_db_.pool,
                             .ring = *ring_,
                             .verifier = bed_->auth().verifier(),
                             .audit = *consent_audit_,
                             .clock = bed_->clock(),
                             .suppression = &*suppression_});
    rpc::AccessPolicy consent_policy;
    ASSERT_THAT(consent::AllowConsentMethods(consent_policy), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(consent_server_,
                             bed_->Serve("consent", std::move(consent_policy), {consent_.get()}));
    CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> to_consent,
                             bed_->Channel("mailing", consent_server_->port(), "consent"));
    consent_stub_ = cv1::Consent::NewStub(to_consent);
    // Mailing's own token: what its service account holds.
    const std::string mailing_token =
        bed_->Token("mailing-service", {"consent.read", "consent.write", "consent.check"});
    gate_ = std::make_unique<GrpcConsentGate>(
        to_consent, [mailing_token]() -> absl::StatusOr<std::string> { return mailing_token; });
    admin_ = bed_->Token(kManager, {"consent.admin", "consent.read", "consent.check",
                                    "consent.write", "mailing.manage", "mailing.send"});
    shop_ = bed_->Token(kShop, {"mailing.send"});
    DefineNewsletter();

    // Mailing.
    CRM_ASSERT_OK_AND_ASSIGN(db_,
                             crm::testing::CreateMigratedDatabase("mailing", "mailing_svc", 4));
    ASSERT_THAT(outbox::EnsureSchema(*db_.pool), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes outbox_key,
                             outbox::LoadOrCreateKey(*db_.pool, *ring_));
    audit_ = std::make_unique<outbox::Writer>("mailing", outbox_key.Copy(), bed_->clock());
    CRM_ASSERT_OK_AND_ASSIGN(LinkTokens tokens, LinkTokens::Create(crypto::RandomSecret(32)));
    tokens_.emplace(std::move(tokens));
    service_ = std::make_unique<MailingService>(MailingDeps{.db = *db_.pool,
                                                            .verifier = bed_->auth().verifier(),
                                                            .audit = *audit_,
                                                            .clock = bed_->clock(),
                                                            .consent = *gate_,
                                                            .tokens = *tokens_,
                                                            .ring = *ring_,
                                                            .message_domain = "shop.example"});
    subject_data_ = std::make_unique<SubjectDataService>(*db_.pool, *audit_, bed_->clock());
    rpc::AccessPolicy policy;
    ASSERT_THAT(AllowMailingMethods(policy), IsOk());
    ASSERT_THAT(AllowMailingSubjectData(policy), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(
        server_, bed_->Serve("mailing", std::move(policy), {service_.get(), subject_data_.get()}));
    CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> shop,
                             bed_->Channel("shop", server_->port(), "mailing"));
    stub_ = v1::Mailing::NewStub(shop);
    CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> gateway,
                             bed_->Channel("gateway", server_->port(), "mailing"));
    gateway_ = v1::Mailing::NewStub(gateway);
  }

  void TearDown() override {
    sender_.reset();
    smtp_.reset();
    sink_.reset();
    server_.reset();
    consent_server_.reset();
  }

  void DefineNewsletter() {
    cv1::DefinePurposeRequest define;
    cv1::Purpose* p = define.mutable_purpose();
    p->set_purpose_id("newsletter");
    p->set_basis(cv1::LAWFUL_BASIS_CONSENT);
    p->set_description("The monthly newsletter");
    p->set_direct_marketing(true);
    ASSERT_THAT(
        crm::testing::UnaryCall(*consent_stub_, &cv1::Consent::Stub::DefinePurpose, define, admin_),
        IsOk());
    cv1::PublishNoticeRequest notice;
    notice.set_purpose_id("newsletter");
    notice.set_language("en");
    notice.set_text("We send a newsletter once a month.");
    CRM_ASSERT_OK_AND_ASSIGN(
        cv1::PublishNoticeResponse published,
        crm::testing::UnaryCall(*consent_stub_, &cv1::Consent::Stub::PublishNotice, notice,
                                admin_));
    notice_ = published.version();
  }

  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                            const Req& request, const std::string& token) {
    return crm::testing::UnaryCall(*stub_, rpc, request, token);
  }

  absl::StatusOr<v1::MailingList> CreateList(const std::string& id, v1::OptIn opt_in,
                                             const std::string& purpose = "newsletter") {
    v1::CreateListRequest req;
    req.mutable_list()->set_list_id(id);
    req.mutable_list()->set_purpose_id(purpose);
    req.mutable_list()->set_opt_in(opt_in);
    req.mutable_list()->set_description("News for customers");
    CRM_ASSIGN_OR_RETURN(v1::CreateListResponse r, Call(&Stub::CreateList, req, admin_));
    return r.list();
  }

  absl::StatusOr<v1::SubscribeResponse> Subscribe(const std::string& list,
                                                  const std::string& subject) {
    v1::SubscribeRequest req;
    req.set_list_id(list);
    req.set_subject_id(subject);
    req.set_source("shop");
    req.set_notice_version(notice_);
    req.set_source_address("203.0.113.9");
    return Call(&Stub::Subscribe, req, shop_);
  }

  absl::StatusOr<cv1::Reason> ConsentReason(const std::string& subject) {
    cv1::CheckRequest req;
    req.set_subject_id(subject);
    req.set_purpose_id("newsletter");
    CRM_ASSIGN_OR_RETURN(
        cv1::CheckResponse r,
        crm::testing::UnaryCall(*consent_stub_, &cv1::Consent::Stub::Check, req, admin_));
    return r.decision().reason();
  }

  absl::StatusOr<v1::Template> PutTemplate(const std::string& id, const std::string& subject) {
    v1::PutTemplateRequest req;
    req.mutable_template_()->set_template_id(id);
    req.mutable_template_()->set_subject(subject);
    req.mutable_template_()->set_text_body("Hello {{first_name}}, see our news.");
    req.mutable_template_()->set_html_body("<p>Hello {{first_name}}</p>");
    CRM_ASSIGN_OR_RETURN(v1::PutTemplateResponse r, Call(&Stub::PutTemplate, req, admin_));
    return r.template_();
  }

  absl::StatusOr<v1::Campaign> CreateCampaign(const std::string& list, const std::string& tmpl) {
    v1::CreateCampaignRequest req;
    req.mutable_campaign()->set_name("Spring news");
    req.mutable_campaign()->set_list_id(list);
    req.mutable_campaign()->set_template_id(tmpl);
    CRM_ASSIGN_OR_RETURN(v1::CreateCampaignResponse r, Call(&Stub::CreateCampaign, req, admin_));
    return r.campaign();
  }

  absl::StatusOr<v1::Campaign> Change(grpc::Status (Stub::*rpc)(grpc::ClientContext*,
                                                                const v1::CampaignRequest&,
                                                                v1::CampaignResponse*),
                                      const std::string& campaign_id) {
    v1::CampaignRequest req;
    req.set_campaign_id(campaign_id);
    CRM_ASSIGN_OR_RETURN(v1::CampaignResponse r, Call(rpc, req, admin_));
    return r.campaign();
  }

  // Where mail goes: a real SMTP sink (STARTTLS), an SMTP client, a DKIM key
  // and the sender, reading addresses from `book_`.
  void StartSending(crm::testing::SmtpSinkOptions options = {}, int batch_size = 200,
                    RateLimiter* rate = nullptr) {
    CRM_ASSERT_OK_AND_ASSIGN(sink_, crm::testing::SmtpSink::Start(options));
    CRM_ASSERT_OK_AND_ASSIGN(
        smtp_, smtp::Sender::Create(
                   {.host = "127.0.0.1", .port = sink_->port(), .ca_file = sink_->ca_file()}));
    if (!dkim_.has_value()) {
      CRM_ASSERT_OK_AND_ASSIGN(
          dkim::Signer signer,
          dkim::Signer::FromPem(dkim::testing::NewRsaKeyPem(2048),
                                {.domain = "shop.example", .selector = "crm1"}));
      dkim_.emplace(std::move(signer));
    }
    sender_ = std::make_unique<CampaignSender>(
        *db_.pool, *gate_, book_, *smtp_, *tokens_, *ring_, &*dkim_, bed_->clock(),
        SenderOptions{.from = "Shop News <news@shop.example>",
                      .envelope_from = "bounces@shop.example",
                      .message_domain = "shop.example",
                      .unsubscribe_base = "https://crm.shop.example/u/",
                      .confirm_base = "https://crm.shop.example/c/",
                      .batch_size = batch_size,
                      .rate = rate});
  }

  // A subject subscribed to `list` with an address in the book.
  std::string Subscriber(const std::string& list,
                         Recipient::Status status = Recipient::Status::kOk) {
    const std::string subject = base::NewUuid();
    EXPECT_THAT(Subscribe(list, subject), IsOk());
    book_.Put(subject, {.status = status,
                        .address = absl::StrCat("p", subject.substr(0, 8), "@customers.example"),
                        .first_name = "Ann"});
    return subject;
  }

  absl::StatusOr<v1::Campaign> StartCampaign(const std::string& list) {
    CRM_ASSIGN_OR_RETURN(v1::Campaign c, CreateCampaign(list, "spring"));
    v1::ScheduleCampaignRequest schedule;
    schedule.set_campaign_id(c.campaign_id());
    CRM_RETURN_IF_ERROR(Call(&Stub::ScheduleCampaign, schedule, admin_).status());
    return c;
  }

  // The address book contacts would be (GetMailingAddresses): the one
  // stand-in of these tests.
  class Book : public AddressBook {
   public:
    void Put(const std::string& subject, Recipient r) {
      absl::MutexLock l(&mu_);
      entries_[subject] = std::move(r);
    }
    Recipient Get(const std::string& subject) {
      absl::MutexLock l(&mu_);
      return entries_[subject];
    }
    // Runs at the next Lookup (a round has claimed its batch and not sent
    // anything yet), once.
    void OnNextLookup(std::function<void()> f) {
      absl::MutexLock l(&mu_);
      on_lookup_ = std::move(f);
    }
    absl::StatusOr<std::vector<Recipient>> Lookup(const std::vector<std::string>& ids) override {
      std::function<void()> f;
      {
        absl::MutexLock l(&mu_);
        f.swap(on_lookup_);
      }
      if (f) f();
      absl::MutexLock l(&mu_);
      std::vector<Recipient> out;
      for (const std::string& id : ids) {
        auto it = entries_.find(id);
        out.push_back(it == entries_.end() ? Recipient{} : it->second);
      }
      return out;
    }

   private:
    absl::Mutex mu_;
    std::map<std::string, Recipient> entries_;
    std::function<void()> on_lookup_;
  };

  std::unique_ptr<crm::testing::ApiTestBed> bed_;
  std::optional<crypto::KeyRing> ring_;
  std::optional<crypto::BlindIndexer> suppression_;
  Book book_;
  std::unique_ptr<crm::testing::SmtpSink> sink_;
  std::unique_ptr<smtp::Sender> smtp_;
  std::optional<dkim::Signer> dkim_;
  std::unique_ptr<CampaignSender> sender_;
  crm::testing::MigratedDatabase consent_db_;
  std::unique_ptr<outbox::Writer> consent_audit_;
  std::unique_ptr<consent::ConsentService> consent_;
  std::unique_ptr<rpc::ServerRunner> consent_server_;
  std::unique_ptr<cv1::Consent::Stub> consent_stub_;
  std::unique_ptr<GrpcConsentGate> gate_;
  crm::testing::MigratedDatabase db_;
  std::unique_ptr<outbox::Writer> audit_;
  std::optional<LinkTokens> tokens_;
  std::unique_ptr<MailingService> service_;
  std::unique_ptr<SubjectDataService> subject_data_;
  std::unique_ptr<rpc::ServerRunner> server_;
  std::unique_ptr<Stub> stub_;
  std::unique_ptr<Stub> gateway_;
  std::string admin_, shop_, notice_;
};

TEST_F(MailingServiceTest, ListsNeedAKnownPurposeAndAManager) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::MailingList list, CreateList("news.en", v1::OPT_IN_SINGLE));
  EXPECT_EQ(list.purpose_id(), "newsletter");
  EXPECT_THAT(CreateList("news.en", v1::OPT_IN_SINGLE),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("list.list_id")));
  EXPECT_THAT(CreateList("other", v1::OPT_IN_SINGLE, "no-such-purpose"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("list.purpose_id")));
  EXPECT_THAT(CreateList("Bad Id", v1::OPT_IN_SINGLE),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("list.list_id")));
  EXPECT_THAT(CreateList("other", v1::OPT_IN_UNSPECIFIED),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("list.opt_in")));
  v1::CreateListRequest req;
  req.mutable_list()->set_list_id("by-shop");
  req.mutable_list()->set_purpose_id("newsletter");
  req.mutable_list()->set_opt_in(v1::OPT_IN_SINGLE);
  EXPECT_THAT(Call(&Stub::CreateList, req, shop_),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("mailing.manage")));
  EXPECT_THAT(Call(&Stub::CreateList, req, ""), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(MailingServiceTest, SingleOptInGrantsConsentAndTheUnsubscribeLinkWithdrawsIt) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  const std::string subject = base::NewUuid();
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_NO_RECORD));
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubscribeResponse sub, Subscribe("news", subject));
  EXPECT_TRUE(sub.changed());
  EXPECT_EQ(sub.subscription().state(), v1::SUBSCRIPTION_STATE_ACTIVE);
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_GRANTED));
  CRM_ASSERT_OK_AND_ASSIGN(sub, Subscribe("news", subject));
  EXPECT_FALSE(sub.changed());

  // Bad input, named.
  EXPECT_THAT(Subscribe("nope", subject),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("list_id")));
  EXPECT_THAT(Subscribe("news", "not-a-uuid"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject_id")));
  v1::SubscribeRequest no_notice;
  no_notice.set_list_id("news");
  no_notice.set_subject_id(base::NewUuid());
  no_notice.set_source("shop");
  EXPECT_THAT(Call(&Stub::Subscribe, no_notice, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("notice_version")));
  no_notice.set_notice_version(std::string(64, 'a'));  // never published: consent refuses
  EXPECT_THAT(Call(&Stub::Subscribe, no_notice, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("consent:")));

  // The link in a mail: only the gateway may present it; forged ones fail.
  v1::UnsubscribeRequest unsub;
  unsub.set_token(tokens_->Issue(TokenKind::kUnsubscribe, subject, "news", bed_->clock().Now()));
  EXPECT_THAT(Call(&Stub::Unsubscribe, unsub, shop_),
              StatusIs(absl::StatusCode::kPermissionDenied));
  v1::UnsubscribeRequest forged = unsub;
  forged.set_token(tokens_->Issue(TokenKind::kConfirm, subject, "news", bed_->clock().Now()));
  EXPECT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::Unsubscribe, forged),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token")));
  CRM_ASSERT_OK_AND_ASSIGN(v1::UnsubscribeResponse done,
                           crm::testing::UnaryCall(*gateway_, &Stub::Unsubscribe, unsub));
  EXPECT_TRUE(done.changed());
  EXPECT_EQ(done.list_id(), "news");
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_WITHDRAWN));
  CRM_ASSERT_OK_AND_ASSIGN(done, crm::testing::UnaryCall(*gateway_, &Stub::Unsubscribe, unsub));
  EXPECT_FALSE(done.changed());
  v1::ListSubscriptionsRequest list_req;
  list_req.set_list_id("news");
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListSubscriptionsResponse subs,
                           Call(&Stub::ListSubscriptions, list_req, admin_));
  ASSERT_THAT(subs.subscriptions(), SizeIs(1));
  EXPECT_EQ(subs.subscriptions(0).state(), v1::SUBSCRIPTION_STATE_UNSUBSCRIBED);
  EXPECT_TRUE(subs.subscriptions(0).has_ended_at());
  // Subscribing again is a new consent.
  CRM_ASSERT_OK_AND_ASSIGN(sub, Subscribe("news", subject));
  EXPECT_TRUE(sub.changed());
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_GRANTED));
}

TEST_F(MailingServiceTest, DoubleOptInRecordsConsentOnlyWhenTheLinkIsFollowed) {
  ASSERT_THAT(CreateList("digest", v1::OPT_IN_DOUBLE), IsOk());
  const std::string subject = base::NewUuid();
  CRM_ASSERT_OK_AND_ASSIGN(v1::SubscribeResponse sub, Subscribe("digest", subject));
  EXPECT_EQ(sub.subscription().state(), v1::SUBSCRIPTION_STATE_PENDING);
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_NO_RECORD));

  v1::ConfirmSubscriptionRequest confirm;
  // A link older than the 72 h it is valid for.
  confirm.set_token(tokens_->Issue(TokenKind::kConfirm, subject, "digest",
                                   bed_->clock().Now() - absl::Hours(73)));
  confirm.set_source_address("198.51.100.4");
  EXPECT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::ConfirmSubscription, confirm),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expired")));
  confirm.set_token(tokens_->Issue(TokenKind::kConfirm, subject, "digest", bed_->clock().Now()));
  CRM_ASSERT_OK_AND_ASSIGN(v1::ConfirmSubscriptionResponse confirmed,
                           crm::testing::UnaryCall(*gateway_, &Stub::ConfirmSubscription, confirm));
  EXPECT_EQ(confirmed.subscription().state(), v1::SUBSCRIPTION_STATE_ACTIVE);
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_GRANTED));
  // Following the link twice is harmless; a link for nobody pending is refused.
  EXPECT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::ConfirmSubscription, confirm), IsOk());
  confirm.set_token(
      tokens_->Issue(TokenKind::kConfirm, base::NewUuid(), "digest", bed_->clock().Now()));
  EXPECT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::ConfirmSubscription, confirm),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(MailingServiceTest, TemplatesAreVersionedAndCampaignsFollowTheirStates) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::Template t1, PutTemplate("spring", "Spring news"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Template t2, PutTemplate("spring", "Spring news, again"));
  EXPECT_EQ(t1.version(), 1);
  EXPECT_EQ(t2.version(), 2);
  v1::PutTemplateRequest bad;
  bad.mutable_template_()->set_template_id("spring");
  bad.mutable_template_()->set_subject("Hi");
  bad.mutable_template_()->set_text_body("Your password is {{password}}");
  EXPECT_THAT(Call(&Stub::PutTemplate, bad, admin_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("template.text_body: unknown placeholder {{password}}")));
  v1::GetTemplateRequest get;
  get.set_template_id("spring");
  get.set_version(1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetTemplateResponse got, Call(&Stub::GetTemplate, get, admin_));
  EXPECT_EQ(got.template_().subject(), "Spring news");

  EXPECT_THAT(CreateCampaign("nope", "spring"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("campaign.list_id")));
  EXPECT_THAT(CreateCampaign("news", "nope"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("campaign.template_id")));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign c, CreateCampaign("news", "spring"));
  EXPECT_EQ(c.state(), v1::CAMPAIGN_STATE_DRAFT);
  EXPECT_EQ(c.template_version(), 2);  // the newest, pinned
  EXPECT_THAT(Change(&Stub::PauseCampaign, c.campaign_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("DRAFT")));
  v1::ScheduleCampaignRequest schedule;
  schedule.set_campaign_id(c.campaign_id());
  schedule.mutable_send_at()->set_seconds(absl::ToUnixSeconds(bed_->clock().Now()) + 3600);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ScheduleCampaignResponse scheduled,
                           Call(&Stub::ScheduleCampaign, schedule, admin_));
  EXPECT_EQ(scheduled.campaign().state(), v1::CAMPAIGN_STATE_SCHEDULED);
  EXPECT_THAT(Call(&Stub::ScheduleCampaign, schedule, admin_),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign paused, Change(&Stub::PauseCampaign, c.campaign_id()));
  EXPECT_EQ(paused.state(), v1::CAMPAIGN_STATE_PAUSED);
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign resumed, Change(&Stub::ResumeCampaign, c.campaign_id()));
  EXPECT_EQ(resumed.state(), v1::CAMPAIGN_STATE_SCHEDULED);
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign cancelled, Change(&Stub::CancelCampaign, c.campaign_id()));
  EXPECT_EQ(cancelled.state(), v1::CAMPAIGN_STATE_CANCELLED);
  EXPECT_THAT(Change(&Stub::ResumeCampaign, c.campaign_id()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Change(&Stub::GetCampaign, base::NewUuid()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Change(&Stub::GetCampaign, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("campaign_id")));
}

// The queue under the sender: a started campaign queues each active
// subscriber once; two workers never claim the same row; a crashed worker's
// rows come back after the lease; counts follow.
TEST_F(MailingServiceTest, TheQueueHoldsEachRecipientOnceAndWorkersShareIt) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  std::vector<std::string> subjects;
  for (int i = 0; i < 5; ++i) {
    subjects.push_back(base::NewUuid());
    ASSERT_THAT(Subscribe("news", subjects.back()), IsOk());
  }
  v1::UnsubscribeRequest unsub;
  unsub.set_token(
      tokens_->Issue(TokenKind::kUnsubscribe, subjects[4], "news", bed_->clock().Now()));
  ASSERT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::Unsubscribe, unsub), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign c, CreateCampaign("news", "spring"));
  v1::ScheduleCampaignRequest schedule;
  schedule.set_campaign_id(c.campaign_id());
  ASSERT_THAT(Call(&Stub::ScheduleCampaign, schedule, admin_), IsOk());

  const absl::Time now = bed_->clock().Now();
  auto in_tx = [&](auto fn) { return db_.pool->Transact([&](pqxx::work& tx) { return fn(tx); }); };
  std::vector<std::string> started;
  ASSERT_THAT(in_tx([&](pqxx::work& tx) -> absl::Status {
                CRM_ASSIGN_OR_RETURN(started, MailingStore::StartDueCampaigns(tx, now));
                return absl::OkStatus();
              }),
              IsOk());
  ASSERT_THAT(started, SizeIs(1));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign sending, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(sending.state(), v1::CAMPAIGN_STATE_SENDING);
  EXPECT_EQ(sending.counts().queued(), 4);  // the unsubscribed one is not queued

  // Two workers at once: disjoint claims.
  std::vector<Claimed> first, second;
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& a) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(first, MailingStore::Claim(a, 3, absl::Minutes(5), now));
    return db_.pool->Transact([&](pqxx::work& b) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(second, MailingStore::Claim(b, 3, absl::Minutes(5), now));
      return absl::OkStatus();
    });
  }),
              IsOk());
  ASSERT_THAT(first, SizeIs(3));
  ASSERT_THAT(second, SizeIs(1));
  EXPECT_EQ(first[0].purpose_id, "newsletter");
  EXPECT_EQ(first[0].template_version, 1);
  for (const Claimed& a : first) EXPECT_NE(a.message_id, second[0].message_id);
  // Leased: nothing more to claim until the lease runs out (a crashed worker).
  std::vector<Claimed> none, again;
  ASSERT_THAT(in_tx([&](pqxx::work& tx) -> absl::Status {
                CRM_ASSIGN_OR_RETURN(none, MailingStore::Claim(tx, 10, absl::Minutes(5), now));
                return absl::OkStatus();
              }),
              IsOk());
  EXPECT_THAT(none, SizeIs(0));
  ASSERT_THAT(in_tx([&](pqxx::work& tx) -> absl::Status {
                CRM_ASSIGN_OR_RETURN(
                    again, MailingStore::Claim(tx, 10, absl::Minutes(5), now + absl::Minutes(6)));
                return absl::OkStatus();
              }),
              IsOk());
  ASSERT_THAT(again, SizeIs(4));
  EXPECT_EQ(again[0].attempts, 2);

  // Results: sent, skipped, failed, and one retried later.
  ASSERT_THAT(
      in_tx([&](pqxx::work& tx) -> absl::Status {
        CRM_RETURN_IF_ERROR(MailingStore::Finish(tx, again[0].message_id, SendState::kSent, now));
        CRM_RETURN_IF_ERROR(
            MailingStore::Finish(tx, again[1].message_id, SendState::kSkippedConsent, now));
        CRM_RETURN_IF_ERROR(MailingStore::Finish(tx, again[2].message_id, SendState::kFailed, now,
                                                 "550 permanent"));
        CRM_RETURN_IF_ERROR(MailingStore::Finish(tx, again[3].message_id, SendState::kQueued, now,
                                                 "451 temporary", now + absl::Minutes(1)));
        return MailingStore::CompleteCampaigns(tx);
      }),
      IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.state(), v1::CAMPAIGN_STATE_SENDING);  // one still queued
  EXPECT_EQ(counted.counts().sent(), 1);
  EXPECT_EQ(counted.counts().skipped_consent(), 1);
  EXPECT_EQ(counted.counts().failed(), 1);
  EXPECT_EQ(counted.counts().queued(), 1);
  // Starting again adds nobody twice.
  ASSERT_THAT(in_tx([&](pqxx::work& tx) -> absl::Status {
                CRM_RETURN_IF_ERROR(MailingStore::SetCampaignState(tx, c.campaign_id(),
                                                                   v1::CAMPAIGN_STATE_SCHEDULED));
                return MailingStore::StartDueCampaigns(tx, now).status();
              }),
              IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.counts().queued() + counted.counts().sent() + counted.counts().failed() +
                counted.counts().skipped_consent(),
            4);
  // The unsubscribe link of a sent message counts against its campaign.
  unsub.set_token(tokens_->Issue(TokenKind::kUnsubscribe, again[0].subject_id, "news", now));
  ASSERT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::Unsubscribe, unsub), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.counts().unsubscribed(), 1);
  // The last one sent: the campaign is done.
  ASSERT_THAT(
      in_tx([&](pqxx::work& tx) -> absl::Status {
        CRM_RETURN_IF_ERROR(MailingStore::Finish(tx, again[3].message_id, SendState::kSent, now));
        return MailingStore::CompleteCampaigns(tx);
      }),
      IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.state(), v1::CAMPAIGN_STATE_DONE);
}

// The header `name` of a stored message (unfolded), or "".
std::string Header(const std::string& message, absl::string_view name) {
  const std::string head = message.substr(0, message.find("\r\n\r\n"));
  const std::string unfolded = absl::StrReplaceAll(head, {{"\r\n ", " "}, {"\r\n\t", " "}});
  for (absl::string_view line : absl::StrSplit(unfolded, "\r\n")) {
    if (absl::StartsWithIgnoreCase(line, absl::StrCat(name, ":"))) {
      return std::string(absl::StripAsciiWhitespace(line.substr(name.size() + 1)));
    }
  }
  return "";
}

TEST_F(MailingServiceTest, ACampaignGoesOutConsentGatedSignedAndUnsubscribable) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring news for {{first_name}}"), IsOk());
  StartSending();
  const std::string ok1 = Subscriber("news");
  const std::string withdrawn = Subscriber("news");
  const std::string no_address = Subscriber("news", Recipient::Status::kNoAddress);
  const std::string restricted = Subscriber("news", Recipient::Status::kRestricted);
  const std::string suppressed = Subscriber("news");
  const std::string ok2 = Subscriber("news");
  // Withdrawn at consent directly (not through mailing): still not mailed.
  cv1::WithdrawRequest withdraw;
  withdraw.mutable_statement()->set_subject_id(withdrawn);
  withdraw.mutable_statement()->set_purpose_id("newsletter");
  withdraw.mutable_statement()->set_method(cv1::METHOD_PHONE);
  withdraw.mutable_statement()->set_source("callcenter");
  ASSERT_THAT(
      crm::testing::UnaryCall(*consent_stub_, &cv1::Consent::Stub::Withdraw, withdraw, admin_),
      IsOk());
  // An address on consent's suppression list (an erased objector's).
  const std::string hash = suppression_->Raw(base::NormalizeEmail(book_.Get(suppressed).address));
  ASSERT_THAT(consent_db_.pool->Transact([&](pqxx::work& tx) {
    tx.exec_params("INSERT INTO suppressions VALUES ($1, 1, current_date)",
                   pqxx::binarystring(hash.data(), hash.size()));
    return absl::OkStatus();
  }),
              IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign c, StartCampaign("news"));
  prometheus::Registry registry;
  SenderMetrics metrics(registry);
  const absl::StatusOr<RoundStats> counted_round = sender_->RunOnce();
  metrics.Count(counted_round);
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, counted_round);
  EXPECT_EQ(round.claimed, 6);
  std::map<std::string, double> by_outcome;
  for (const auto& family : registry.Collect()) {
    for (const auto& m : family.metric) {
      for (const auto& label : m.label) by_outcome[label.value] += m.counter.value;
    }
  }
  EXPECT_EQ(by_outcome["sent"], 2);
  EXPECT_EQ(by_outcome["skipped_consent"], 2);
  EXPECT_EQ(by_outcome["skipped_no_address"], 2);
  EXPECT_EQ(by_outcome["ok"], 1);
  EXPECT_EQ(round.sent, 2);
  EXPECT_EQ(round.skipped_consent, 2);
  EXPECT_EQ(round.skipped_no_address, 2);
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(2));
  std::set<std::string> to;
  std::map<std::string, std::string> by_name;
  for (const crm::testing::SinkMessage& m : got) {
    ASSERT_THAT(m.recipients, SizeIs(1));
    to.insert(m.recipients[0]);
    EXPECT_EQ(m.mail_from, "bounces@shop.example");
    EXPECT_EQ(Header(m.data, "List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    EXPECT_TRUE(
        absl::StartsWith(Header(m.data, "List-Unsubscribe"), "<https://crm.shop.example/u/u."));
    EXPECT_EQ(Header(m.data, "Subject"), "Spring news for Ann");
    const std::string signature = Header(m.data, "DKIM-Signature");
    EXPECT_THAT(signature, HasSubstr("list-unsubscribe:list-unsubscribe-post"));
    by_name[m.file] = m.data;
  }
  EXPECT_EQ(to, (std::set<std::string>{book_.Get(ok1).address, book_.Get(ok2).address}));
  // DKIM-valid for an independent verifier.
  CRM_ASSERT_OK_AND_ASSIGN(
      auto verdicts,
      dkim::testing::VerifyWithDkimpy(dkim_->DnsRecordName(), dkim_->DnsTxtRecord(), by_name));
  for (const auto& [file, verdict] : verdicts) EXPECT_EQ(verdict, "valid") << file;

  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.counts().sent(), 2);
  EXPECT_EQ(counted.counts().skipped_consent(), 2);
  EXPECT_EQ(counted.counts().skipped_no_address(), 2);
  EXPECT_EQ(counted.counts().queued(), 0);
  ASSERT_THAT(sender_->RunOnce(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.state(), v1::CAMPAIGN_STATE_DONE);

  // The one-click link of ok1's message, as the gateway would present it.
  std::string header;
  for (const crm::testing::SinkMessage& m : got) {
    if (m.recipients[0] == book_.Get(ok1).address) header = Header(m.data, "List-Unsubscribe");
  }
  absl::string_view link = header;
  ASSERT_TRUE(absl::ConsumePrefix(&link, "<https://crm.shop.example/u/") &&
              absl::ConsumeSuffix(&link, ">"));
  v1::UnsubscribeRequest unsub;
  unsub.set_token(std::string(link));
  ASSERT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::Unsubscribe, unsub), IsOk());
  EXPECT_THAT(ConsentReason(ok1), testing::IsOkAndHolds(cv1::REASON_WITHDRAWN));
  CRM_ASSERT_OK_AND_ASSIGN(counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.counts().unsubscribed(), 1);
  // The next campaign reaches ok2 only.
  ASSERT_THAT(StartCampaign("news"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 1);
  CRM_ASSERT_OK_AND_ASSIGN(got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(3));
  EXPECT_EQ(got[2].recipients[0], book_.Get(ok2).address);
}

TEST_F(MailingServiceTest, TemporaryFailuresAreRetriedAndNothingGoesOutInClear) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring"), IsOk());
  StartSending({.tempfail_first = 1});
  Subscriber("news");
  ASSERT_THAT(StartCampaign("news"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.retried, 1);
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 0);  // not due yet: backoff
  bed_->clock().Advance(absl::Minutes(2));
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 1);
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  EXPECT_THAT(got, SizeIs(1));

  // A relay that offers no STARTTLS gets nothing: the send fails for good.
  StartSending({.tls = crm::testing::SmtpSinkOptions::Tls::kNone});
  Subscriber("news");
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign c, StartCampaign("news"));
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.failed, 2);  // both subscribers: the relay is unusable
  CRM_ASSERT_OK_AND_ASSIGN(got, sink_->Messages());
  EXPECT_THAT(got, SizeIs(0));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign counted, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(counted.counts().failed(), 2);
  EXPECT_EQ(counted.counts().sent(), 0);

  // Deferred after the end of data: the hand-off is undone, the row retried.
  StartSending({.tempfail_first = 1, .fail_at_data = true});
  Subscriber("news");
  ASSERT_THAT(StartCampaign("news"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.retried, 1);
  EXPECT_EQ(round.sent, 2);
  bed_->clock().Advance(absl::Minutes(2));
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 1);
  EXPECT_EQ(round.sent_unconfirmed, 0);
  CRM_ASSERT_OK_AND_ASSIGN(got, sink_->Messages());
  EXPECT_THAT(got, SizeIs(3));
}

// A worker that claims a batch and dies before sending: its messages go out
// once its lease runs out, and nothing goes out twice.
TEST_F(MailingServiceTest, ACrashedWorkerLosesNoMessageAndNoneGoesOutTwice) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring"), IsOk());
  StartSending({}, /*batch_size=*/4);
  std::set<std::string> everyone;
  for (int i = 0; i < 10; ++i) everyone.insert(book_.Get(Subscriber("news")).address);
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign c, StartCampaign("news"));
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 4);
  // The crashed worker: claims 4 and is never heard of again.
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) {
    return MailingStore::Claim(tx, 4, absl::Minutes(5), bed_->clock().Now()).status();
  }),
              IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 2);
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 0);
  bed_->clock().Advance(absl::Minutes(6));
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 4);
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(10));
  std::set<std::string> reached, ids;
  for (const crm::testing::SinkMessage& m : got) {
    reached.insert(m.recipients[0]);
    ids.insert(Header(m.data, "Message-ID"));
  }
  EXPECT_EQ(reached, everyone);
  EXPECT_EQ(ids.size(), 10u);
  ASSERT_THAT(sender_->RunOnce(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign done, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(done.state(), v1::CAMPAIGN_STATE_DONE);
  EXPECT_EQ(done.counts().sent(), 10);
}

// A worker that dies after handing a message to the relay, before its reply
// was recorded: the relay has it, so it is counted sent once the lease runs
// out and never sent again (kill_test does this with a real kill -9).
TEST_F(MailingServiceTest, AMessageHandedOffByAWorkerThatDiedIsNotSentAgain) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring"), IsOk());
  StartSending();
  std::map<std::string, std::string> address_of;
  for (int i = 0; i < 3; ++i) {
    const std::string s = Subscriber("news");
    address_of[s] = book_.Get(s).address;
  }
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign c, StartCampaign("news"));
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) {
    return MailingStore::StartDueCampaigns(tx, bed_->clock().Now()).status();
  }),
              IsOk());
  // The dead worker: claims all three and hands the first off.
  std::vector<Claimed> claimed;
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(claimed,
                         MailingStore::Claim(tx, 3, absl::Minutes(5), bed_->clock().Now()));
    return absl::OkStatus();
  }),
              IsOk());
  ASSERT_THAT(claimed, SizeIs(3));
  const Claimed& handed = claimed[0];
  absl::StatusOr<bool> ours;
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) {
    ours = MailingStore::HandOff(tx, handed.message_id, handed.attempts, bed_->clock().Now());
    return ours.status();
  }),
              IsOk());
  EXPECT_THAT(ours, testing::IsOkAndHolds(true));
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 0);
  EXPECT_EQ(round.sent_unconfirmed, 0);  // its lease has not run out

  bed_->clock().Advance(absl::Minutes(6));
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent_unconfirmed, 1);
  EXPECT_EQ(round.claimed, 2);
  EXPECT_EQ(round.sent, 2);
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.claimed + round.sent_unconfirmed, 0);
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  std::set<std::string> reached;
  for (const crm::testing::SinkMessage& m : got) reached.insert(m.recipients.at(0));
  std::set<std::string> others;
  for (const auto& [subject, address] : address_of) {
    if (subject != handed.subject_id) others.insert(address);
  }
  EXPECT_EQ(reached, others);
  EXPECT_THAT(got, SizeIs(2));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign done, Change(&Stub::GetCampaign, c.campaign_id()));
  EXPECT_EQ(done.state(), v1::CAMPAIGN_STATE_DONE);
  EXPECT_EQ(done.counts().sent(), 3);
}

// The hand-off is fenced by the claim: rows another worker took over while
// this round was slow (its lease ran out), and rows of a campaign cancelled
// meanwhile, get no end of data from this round.
TEST_F(MailingServiceTest, RowsNoLongerTheRoundsAtTheirHandOffAreNotSent) {
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring"), IsOk());
  StartSending();
  std::set<std::string> everyone;
  for (int i = 0; i < 4; ++i) everyone.insert(book_.Get(Subscriber("news")).address);
  ASSERT_THAT(StartCampaign("news"), IsOk());
  // After this round's claim, it stalls past its lease and another worker
  // takes two of its rows (and dies).
  book_.OnNextLookup([&] {
    bed_->clock().Advance(absl::Minutes(6));
    ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) {
      CRM_ASSIGN_OR_RETURN(std::vector<Claimed> taken,
                           MailingStore::Claim(tx, 2, absl::Minutes(5), bed_->clock().Now()));
      EXPECT_THAT(taken, SizeIs(2));
      return absl::OkStatus();
    }),
                IsOk());
  });
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 4);
  EXPECT_EQ(round.sent, 2);
  EXPECT_EQ(round.withdrawn, 2);
  // The other worker's lease runs out; its two go out, once.
  bed_->clock().Advance(absl::Minutes(6));
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 2);
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  std::multiset<std::string> reached;
  for (const crm::testing::SinkMessage& m : got) reached.insert(m.recipients.at(0));
  EXPECT_EQ(reached, std::multiset<std::string>(everyone.begin(), everyone.end()));

  // A campaign cancelled after the round claimed it: nothing goes out.
  CRM_ASSERT_OK_AND_ASSIGN(v1::Campaign c, StartCampaign("news"));
  book_.OnNextLookup([&] { EXPECT_THAT(Change(&Stub::CancelCampaign, c.campaign_id()), IsOk()); });
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 4);
  EXPECT_EQ(round.withdrawn, 4);
  EXPECT_EQ(round.sent, 0);
  CRM_ASSERT_OK_AND_ASSIGN(got, sink_->Messages());
  EXPECT_THAT(got, SizeIs(4));
}

TEST_F(MailingServiceTest, SubjectDataDescribesExportsAndErasesForTheOrchestratorOnly) {
  namespace sv1 = crm::subject::v1;
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring"), IsOk());
  StartSending();
  const std::string subject = Subscriber("news");
  const std::string other = Subscriber("news");
  ASSERT_THAT(StartCampaign("news"), IsOk());
  ASSERT_THAT(sender_->RunOnce(), IsOk());  // both sent
  ASSERT_THAT(StartCampaign("news"), IsOk());
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) {
    return MailingStore::StartDueCampaigns(tx, bed_->clock().Now()).status();
  }),
              IsOk());  // and queued again, not sent yet

  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> ch,
                           bed_->Channel("erasure", server_->port(), "mailing"));
  auto erasure = sv1::SubjectData::NewStub(ch);
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> shop_ch,
                           bed_->Channel("shop", server_->port(), "mailing"));
  auto shop = sv1::SubjectData::NewStub(shop_ch);
  sv1::DescribeSubjectDataRequest describe;
  describe.set_subject_id(subject);
  EXPECT_THAT(
      crm::testing::UnaryCall(*shop, &sv1::SubjectData::Stub::DescribeSubjectData, describe),
      StatusIs(absl::StatusCode::kPermissionDenied));
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::DescribeSubjectDataResponse described,
      crm::testing::UnaryCall(*erasure, &sv1::SubjectData::Stub::DescribeSubjectData, describe));
  ASSERT_THAT(described.categories(), SizeIs(2));
  EXPECT_EQ(described.categories(0).category(), "mailing_subscriptions");
  EXPECT_EQ(described.categories(0).record_count(), 1);
  EXPECT_EQ(described.categories(1).category(), "mailing_sends");
  EXPECT_EQ(described.categories(1).record_count(), 2);

  sv1::ExportSubjectDataRequest exp;
  exp.set_subject_id(subject);
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::ExportSubjectDataResponse exported,
      crm::testing::UnaryCall(*erasure, &sv1::SubjectData::Stub::ExportSubjectData, exp));
  ASSERT_THAT(exported.records(), SizeIs(3));
  EXPECT_EQ(exported.records(0).data().fields().at("list_id").string_value(), "news");
  EXPECT_EQ(exported.records(1).data().fields().at("state").string_value(), "sent");
  EXPECT_EQ(exported.records(2).data().fields().at("state").string_value(), "queued");

  sv1::EraseSubjectDataRequest erase;
  erase.set_request_id(base::NewUuid());
  erase.set_subject_id(subject);
  EXPECT_THAT(crm::testing::UnaryCall(*shop, &sv1::SubjectData::Stub::EraseSubjectData, erase),
              StatusIs(absl::StatusCode::kPermissionDenied));
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::EraseSubjectDataResponse erased,
      crm::testing::UnaryCall(*erasure, &sv1::SubjectData::Stub::EraseSubjectData, erase));
  ASSERT_THAT(erased.erased(), SizeIs(2));
  EXPECT_EQ(erased.erased(1).record_count(), 2);
  EXPECT_FALSE(erased.data_key_destroyed());
  // Nothing of the subject is left, and its queued mail is not sent.
  std::string rows;
  ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) {
    for (const char* table : {"subscriptions", "send_queue"}) {
      for (const auto& row : tx.exec(absl::StrCat("SELECT subject_id::text FROM ", table))) {
        rows += row[0].c_str();
      }
    }
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(rows, Not(HasSubstr(subject)));
  EXPECT_THAT(rows, HasSubstr(other));
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 1);  // the other subscriber only
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(3));
  EXPECT_EQ(got[2].recipients[0], book_.Get(other).address);
  // A retry gets the same answer; the id is not reusable for another subject.
  CRM_ASSERT_OK_AND_ASSIGN(
      sv1::EraseSubjectDataResponse again,
      crm::testing::UnaryCall(*erasure, &sv1::SubjectData::Stub::EraseSubjectData, erase));
  EXPECT_EQ(again.erased(1).record_count(), 2);
  EXPECT_EQ(again.completed_at().seconds(), erased.completed_at().seconds());
  erase.set_subject_id(other);
  EXPECT_THAT(crm::testing::UnaryCall(*erasure, &sv1::SubjectData::Stub::EraseSubjectData, erase),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
  erase.set_request_id("nope");
  EXPECT_THAT(crm::testing::UnaryCall(*erasure, &sv1::SubjectData::Stub::EraseSubjectData, erase),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
}

TEST_F(MailingServiceTest, DoubleOptInMailsTheConfirmationLinkAndOnlyTheLinkGrants) {
  ASSERT_THAT(CreateList("digest", v1::OPT_IN_DOUBLE), IsOk());
  ASSERT_THAT(PutTemplate("spring", "Spring"), IsOk());
  StartSending();
  const std::string subject = Subscriber("digest");
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_NO_RECORD));
  // A campaign now reaches nobody: the subscription is pending.
  ASSERT_THAT(StartCampaign("digest"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 1);  // the confirmation mail, not gated on consent
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].recipients[0], book_.Get(subject).address);
  EXPECT_EQ(Header(got[0].data, "Subject"), "Please confirm your subscription");
  EXPECT_EQ(Header(got[0].data, "List-Unsubscribe"), "");
  const std::string body = absl::StrReplaceAll(got[0].data, {{"=\r\n", ""}});
  const size_t at = body.find("https://crm.shop.example/c/");
  ASSERT_NE(at, std::string::npos) << body;
  const size_t start = at + std::string("https://crm.shop.example/c/").size();
  const std::string token = body.substr(start, body.find_first_of("\r\n", start) - start);
  v1::ConfirmSubscriptionRequest confirm;
  confirm.set_token(token);
  ASSERT_THAT(crm::testing::UnaryCall(*gateway_, &Stub::ConfirmSubscription, confirm), IsOk());
  EXPECT_THAT(ConsentReason(subject), testing::IsOkAndHolds(cv1::REASON_GRANTED));
  ASSERT_THAT(StartCampaign("digest"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 1);
  CRM_ASSERT_OK_AND_ASSIGN(got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(2));
  EXPECT_EQ(Header(got[1].data, "Subject"), "Spring");
}

v1::SendTransactionalRequest Transactional(v1::TransactionalKind kind, const std::string& dedup_key,
                                           std::map<std::string, std::string> params) {
  v1::SendTransactionalRequest r;
  r.set_kind(kind);
  r.set_dedup_key(dedup_key);
  for (auto& [k, v] : params) (*r.mutable_params())[k] = v;
  return r;
}

TEST_F(MailingServiceTest, TransactionalMailGoesOutOnceUngatedAndKeepsNoAddress) {
  StartSending();
  // To a subject: the address comes from contacts; no consent is asked (the
  // subject has none recorded).
  const std::string ann = base::NewUuid();
  book_.Put(ann,
            {.status = Recipient::Status::kOk, .address = "ann@example.com", .first_name = "Ann"});
  v1::SendTransactionalRequest expiring =
      Transactional(v1::TRANSACTIONAL_KIND_GRANT_EXPIRING, "grant:42",
                    {{"purpose", "the newsletter"}, {"expires_at", "31 December 2026"}});
  expiring.set_subject_id(ann);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SendTransactionalResponse first,
                           Call(&Stub::SendTransactional, expiring, shop_));
  EXPECT_TRUE(first.queued());
  EXPECT_TRUE(absl::EndsWith(first.message_id(), "@shop.example"));
  // The same key again: the same message, queued once.
  CRM_ASSERT_OK_AND_ASSIGN(v1::SendTransactionalResponse again,
                           Call(&Stub::SendTransactional, expiring, shop_));
  EXPECT_FALSE(again.queued());
  EXPECT_EQ(again.message_id(), first.message_id());
  // A restricted subject gets nothing.
  const std::string restricted = base::NewUuid();
  book_.Put(restricted, {.status = Recipient::Status::kRestricted});
  v1::SendTransactionalRequest changed = Transactional(v1::TRANSACTIONAL_KIND_PASSWORD_CHANGED,
                                                       "password:7", {{"changed_at", "today"}});
  changed.set_subject_id(restricted);
  ASSERT_THAT(Call(&Stub::SendTransactional, changed, shop_), IsOk());
  // To an address contacts does not know: kept encrypted until it is sent.
  v1::SendTransactionalRequest code =
      Transactional(v1::TRANSACTIONAL_KIND_VERIFICATION_CODE, "portal:1", {{"code", "X7K2P9"}});
  code.set_address("visitor@example.org");
  CRM_ASSERT_OK_AND_ASSIGN(v1::SendTransactionalResponse coded,
                           Call(&Stub::SendTransactional, code, shop_));
  auto queue_text = [&]() -> absl::StatusOr<std::string> {
    std::string all;
    CRM_RETURN_IF_ERROR(db_.pool->Transact([&](pqxx::work& tx) {
      for (const pqxx::row& r : tx.exec("SELECT q::text FROM send_queue q")) {
        all += r[0].as<std::string>();
      }
      return absl::OkStatus();
    }));
    return all;
  };
  CRM_ASSERT_OK_AND_ASSIGN(std::string stored, queue_text());
  EXPECT_THAT(stored, Not(HasSubstr("visitor@example.org")));
  EXPECT_THAT(stored, Not(HasSubstr("X7K2P9")));
  EXPECT_THAT(stored, HasSubstr("\\x01"));  // a payload is there, wrapped

  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.sent, 2);
  EXPECT_EQ(round.skipped_no_address, 1);
  EXPECT_EQ(round.skipped_consent, 0);
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(2));
  std::map<std::string, std::string> by_to, by_file;
  for (const crm::testing::SinkMessage& m : got) {
    by_to[m.recipients.at(0)] = m.data;
    by_file[m.file] = m.data;
    EXPECT_EQ(Header(m.data, "List-Unsubscribe"), "");  // not marketing
    // The link base, not a bare "/u/": that can turn up in the base64 of the DKIM signature.
    EXPECT_THAT(m.data, Not(HasSubstr("crm.shop.example/u/")));
  }
  ASSERT_EQ(by_to.count("ann@example.com"), 1u);
  EXPECT_EQ(Header(by_to["ann@example.com"], "Subject"),
            "Your consent for the newsletter ends on 31 December 2026");
  EXPECT_EQ(Header(by_to["ann@example.com"], "Message-ID"),
            absl::StrCat("<", first.message_id(), ">"));
  ASSERT_EQ(by_to.count("visitor@example.org"), 1u);
  EXPECT_THAT(by_to["visitor@example.org"], HasSubstr("X7K2P9"));
  EXPECT_EQ(Header(by_to["visitor@example.org"], "Message-ID"),
            absl::StrCat("<", coded.message_id(), ">"));
  CRM_ASSERT_OK_AND_ASSIGN(
      auto verdicts,
      dkim::testing::VerifyWithDkimpy(dkim_->DnsRecordName(), dkim_->DnsTxtRecord(), by_file));
  for (const auto& [file, verdict] : verdicts) EXPECT_EQ(verdict, "valid") << file;
  // Sent or skipped, every payload is gone.
  CRM_ASSERT_OK_AND_ASSIGN(stored, queue_text());
  EXPECT_THAT(stored, Not(HasSubstr("\\x01")));
  // Nothing is sent twice.
  CRM_ASSERT_OK_AND_ASSIGN(round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 0);
}

TEST_F(MailingServiceTest, TransactionalTemplatesCanBeReplacedAndRequestsAreChecked) {
  StartSending();
  v1::PutTemplateRequest put;
  put.mutable_template_()->set_template_id("transactional.verification_code");
  put.mutable_template_()->set_subject("Ihr Code");
  put.mutable_template_()->set_text_body("Code: {{code}}");
  ASSERT_THAT(Call(&Stub::PutTemplate, put, admin_), IsOk());
  put.mutable_template_()->set_text_body("{{code}} {{unsubscribe_url}}");
  EXPECT_THAT(Call(&Stub::PutTemplate, put, admin_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.text_body")));
  put.mutable_template_()->set_template_id("transactional.nope");
  EXPECT_THAT(Call(&Stub::PutTemplate, put, admin_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.template_id")));
  // A transactional template cannot serve a campaign.
  ASSERT_THAT(CreateList("news", v1::OPT_IN_SINGLE), IsOk());
  EXPECT_THAT(CreateCampaign("news", "transactional.verification_code"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("campaign.template_id")));

  v1::SendTransactionalRequest code =
      Transactional(v1::TRANSACTIONAL_KIND_VERIFICATION_CODE, "portal:2", {{"code", "Q1W2E3"}});
  code.set_address("visitor@example.org");
  ASSERT_THAT(Call(&Stub::SendTransactional, code, shop_), IsOk());
  ASSERT_THAT(sender_->RunOnce(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> got, sink_->Messages());
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(Header(got[0].data, "Subject"), "Ihr Code");
  EXPECT_THAT(got[0].data, HasSubstr("Code: Q1W2E3"));

  // Bad requests name the field and queue nothing; the permission is mailing.send.
  code.set_dedup_key("portal:3");
  code.set_address("visitor@example.org>\r\nBcc: all@example.org");
  EXPECT_THAT(Call(&Stub::SendTransactional, code, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("address")));
  code.set_address("visitor@example.org");
  (*code.mutable_params())["code"] = "<b>1</b>";
  EXPECT_THAT(Call(&Stub::SendTransactional, code, shop_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("params[code]")));
  (*code.mutable_params())["code"] = "123456";
  EXPECT_THAT(
      Call(&Stub::SendTransactional, code, bed_->Token(base::NewUuid(), {"mailing.manage"})),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("mailing.send")));
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 0);
}

TEST_F(MailingServiceTest, UnderARateLimitARoundClaimsOnlyWhatItCanSendInHalfALease) {
  base::FakeClock limiter_clock;
  RateLimiter slow(0.01, 1, limiter_clock);  // one message in 100 s; a lease is 5 min
  StartSending({}, 200, &slow);
  for (int i = 0; i < 3; ++i) {
    v1::SendTransactionalRequest code = Transactional(v1::TRANSACTIONAL_KIND_VERIFICATION_CODE,
                                                      absl::StrCat("rate:", i), {{"code", "ABCD"}});
    code.set_address("visitor@example.org");
    ASSERT_THAT(Call(&Stub::SendTransactional, code, shop_), IsOk());
  }
  CRM_ASSERT_OK_AND_ASSIGN(RoundStats round, sender_->RunOnce());
  EXPECT_EQ(round.claimed, 1);  // 150 s of sending at 0.01/s: one message
  EXPECT_EQ(round.sent, 1);
  // The next slot is 100 s away on the limiter's clock.
  EXPECT_EQ(slow.Reserve(limiter_clock.Now()), absl::Seconds(100));
}

}  // namespace
}  // namespace crm::mailing
