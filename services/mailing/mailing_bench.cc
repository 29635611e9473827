// The mailing campaign against its baseline (issue 7): "a 100,000-recipient
// campaign to the local SMTP sink at no less than 2,000 messages/s with
// consent gating and per-recipient tokens, peak RSS under 150 MB, and the
// sink's own accept rate measured in the same run as the limit".
//
// The binary starts its own PostgreSQL and Redis (BenchEnv) and wires the
// pieces as services/mailing/service_test.cc does: the real consent service
// in process behind its own mTLS ServerRunner (with the Redis check cache and
// the suppression list, as consent's main.cc wires it), a GrpcConsentGate
// calling it with mailing's own token, MailingService behind its own
// ServerRunner (the campaign is created and scheduled through its API),
// LinkTokens, an RSA-2048 DKIM signer, and per sending thread an
// smtp::Sender to a real SMTP sink (tools/smtp-sink: Python, aiosmtpd,
// STARTTLS required) and a CampaignSender. The sending threads share the
// queue through its SKIP LOCKED claim, as replicas would.
//
// Addresses: an in-memory AddressBook that derives an address from each
// subject id ("p<id hex>@customers.example", first name "Ann"). Contacts'
// GetMailingAddresses (a sealed-field read per subject) is a service and a
// benchmark of its own (contacts_bench); here it would add contacts'
// process, keys and 100,000 persons to load, and its memory to the RSS this
// binary reports. The stand-in answers for any subject, without a map.
//
// Set-up loads --recipients subscribers straight into the tables (INSERT ...
// SELECT generate_series; the API would take many minutes at 100,000):
// consent_state standings for purpose "newsletter" in consent's database
// (every 20th subject withdrawn: 5%), and active subscriptions of list
// "news" in mailing's. Every decision still goes through consent's
// BatchCheck (cache misses: the cache is cold for a campaign) and the
// suppression check. Then VACUUM ANALYZE.
//
//   BM_Campaign           one campaign to every subscriber: ScheduleCampaign,
//                         then --senders threads run CampaignSender::RunOnce
//                         until the campaign is done. Rate = sent / wall.
//                         Verified: the sink stored exactly the sent count
//                         (.eml files counted), the queue's counts match
//                         (sent, skipped for consent = the withdrawn).
//                         Counters: peak RSS during the campaign (VmHWM,
//                         reset before it through /proc/self/clear_refs),
//                         RSS before it, and the difference.
//   BM_SinkAcceptRate     baseline: the same number of messages, pre-composed
//                         and DKIM-signed once (same template, same size),
//                         sent straight through smtp::Sender by the same
//                         number of threads to a fresh sink.
//
// Flags: --recipients (default 100000) --senders (4; 2 and 3 measured slower) --batch (200, the
// sender's batch_size). Run: tools/bench mailing, or
// build-release/bench/mailing_bench --recipients=20000 for a quick look.
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/nontransaction>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/dkim/signer.h"
#include "libs/dkim/testing/dkimpy.h"
#include "libs/log/log.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/redis/client.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/server.h"
#include "libs/smtp/sender.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/bench_env.h"
#include "libs/testing/bench_ratio.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/smtp_sink.h"
#include "libs/testing/unary_call.h"
#include "services/consent/check_cache.h"
#include "services/consent/consent_service.h"
#include "services/mailing/consent_gate.h"
#include "services/mailing/mailing_service.h"
#include "services/mailing/render.h"
#include "services/mailing/sender.h"
#include "services/mailing/tokens.h"

#ifndef CRM_SOURCE_DIR
#error "CRM_SOURCE_DIR must name the source tree (services/mailing/CMakeLists.txt sets it)"
#endif

namespace crm::mailing {
namespace {

namespace cv1 = crm::consent::v1;
using Stub = v1::Mailing::Stub;

constexpr char kManager[] = "3a1f5c7e-2b4d-4e6f-8a0b-1c2d3e4f5a6b";
constexpr int kWithdrawnEvery = 20;  // 5% of the subscribers withdrew consent
constexpr int kCampaignDone = 6;     // crm.mailing.v1.CAMPAIGN_STATE_DONE
// Subject ids, the same in both databases: md5 of a counter, as a UUID.
constexpr char kSubjectExpr[] = "md5('mailing_bench/' || i)::uuid";

struct Flags {
  int64_t recipients = 100'000;
  int64_t senders = 4;
  int64_t batch = 200;
};
Flags flags;

int64_t Withdrawn() { return flags.recipients / kWithdrawnEvery; }
int64_t Mailable() { return flags.recipients - Withdrawn(); }

// Contacts' stand-in (see the top of the file): an address derived from the
// subject id. Thread-safe (stateless).
class DerivedAddressBook final : public AddressBook {
 public:
  static std::string AddressOf(const std::string& subject_id) {
    return absl::StrCat("p", absl::StrReplaceAll(subject_id, {{"-", ""}}), "@customers.example");
  }
  absl::StatusOr<std::vector<Recipient>> Lookup(const std::vector<std::string>& ids) override {
    std::vector<Recipient> out;
    out.reserve(ids.size());
    for (const std::string& id : ids) {
      out.push_back(
          {.status = Recipient::Status::kOk, .address = AddressOf(id), .first_name = "Ann"});
    }
    return out;
  }
};

struct Env {
  std::unique_ptr<crm::testing::BenchEnv> bench;
  std::unique_ptr<crm::testing::ApiTestBed> bed;
  std::optional<crypto::KeyRing> ring;
  // Consent.
  crm::testing::MigratedDatabase consent_db;
  std::unique_ptr<outbox::Writer> consent_audit;
  std::optional<crypto::BlindIndexer> suppression;
  std::unique_ptr<redis::Client> redis;
  std::unique_ptr<consent::CheckCache> cache;
  std::unique_ptr<consent::ConsentService> consent;
  std::unique_ptr<rpc::ServerRunner> consent_server;
  std::unique_ptr<cv1::Consent::Stub> consent_stub;
  std::unique_ptr<GrpcConsentGate> gate;
  // Mailing.
  crm::testing::MigratedDatabase db;
  std::unique_ptr<outbox::Writer> audit;
  std::optional<LinkTokens> tokens;
  std::optional<dkim::Signer> dkim;
  std::unique_ptr<MailingService> service;
  std::unique_ptr<rpc::ServerRunner> server;
  std::unique_ptr<Stub> stub;
  DerivedAddressBook book;
  std::string admin, notice;
  v1::Template tmpl;
  // The baseline's message: composed and signed as the sender does.
  std::string sample_message, sample_address;
};
Env* g = nullptr;

SenderOptions Options() {
  SenderOptions o;
  o.from = "Shop News <news@shop.example>";
  o.envelope_from = "bounces@shop.example";
  o.message_domain = "shop.example";
  o.unsubscribe_base = "https://crm.shop.example/u/";
  o.batch_size = static_cast<int>(flags.batch);
  return o;
}

// A newsletter of a realistic size: ~1.4 KB of text and ~2.6 KB of HTML.
v1::Template NewsletterTemplate() {
  std::string text = "Hello {{first_name}},\n\n";
  std::string html = "<html><body><p>Hello {{first_name}},</p>\n";
  for (int i = 1; i <= 6; ++i) {
    const std::string para = absl::StrCat(
        "Item ", i,
        ": our spring collection is in the shops now, with new colours, better fabrics and "
        "free delivery on orders over 50 euros until the end of the month.");
    absl::StrAppend(&text, para, "\n\n");
    absl::StrAppend(&html, "<h2>News ", i, "</h2><p style=\"margin:0 0 12px 0\">", para,
                    " <a href=\"https://shop.example/spring/", i, "\">Read more</a></p>\n");
  }
  absl::StrAppend(&text, "Unsubscribe: {{unsubscribe_url}}\n");
  absl::StrAppend(&html, "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p></body></html>\n");
  v1::Template t;
  t.set_template_id("spring");
  t.set_subject("Spring news for {{first_name}}");
  t.set_text_body(text);
  t.set_html_body(html);
  return t;
}

template <typename S, typename Req, typename Resp>
absl::StatusOr<Resp> Call(S& stub, grpc::Status (S::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                          const Req& request) {
  return crm::testing::UnaryCall(stub, rpc, request, g->admin);
}

absl::Status Exec(pg::Pool& pool, const std::string& sql) {
  return pool.WithConnection([&](pqxx::connection_base& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    tx.exec(sql);
    return absl::OkStatus();
  });
}

// The count `sql` selects, with $1 bound to `campaign_id`.
absl::StatusOr<int64_t> CountOf(const std::string& sql, const std::string& campaign_id) {
  int64_t n = 0;
  CRM_RETURN_IF_ERROR(g->db.pool->WithConnection([&](pqxx::connection_base& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    n = tx.exec_params1(sql, campaign_id)[0].as<int64_t>();
    return absl::OkStatus();
  }));
  return n;
}

absl::Status StartConsent() {
  base::Clock& clock = base::RealClock::Get();
  CRM_ASSIGN_OR_RETURN(g->consent_db,
                       crm::testing::CreateMigratedDatabase("consent", "mailing_bench_consent",
                                                            static_cast<int>(flags.senders + 4)));
  CRM_RETURN_IF_ERROR(outbox::EnsureSchema(*g->consent_db.pool));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes outbox_key,
                       outbox::LoadOrCreateKey(*g->consent_db.pool, *g->ring));
  g->consent_audit =
      std::make_unique<outbox::Writer>("consent", outbox_key.Copy(), base::RealClock::Get());
  CRM_ASSIGN_OR_RETURN(crypto::BlindIndexer indexer,
                       crypto::BlindIndexer::Create(crypto::RandomSecret(32)));
  g->suppression.emplace(std::move(indexer));
  const crm::testing::RedisTestServer& r = g->bench->env().redis();
  CRM_ASSIGN_OR_RETURN(
      g->redis, redis::Client::Create(
                    {.host = r.host, .port = r.port, .password = r.password, .max_size = 16}));
  // As consent's main.cc: the check cache on Redis (default TTL 60 s).
  g->cache = std::make_unique<consent::CheckCache>(g->redis.get(), absl::Seconds(60), nullptr);
  g->consent = std::make_unique<consent::ConsentService>(
      consent::ConsentDeps{.db = *g->consent_db.pool,
                           .ring = *g->ring,
                           .verifier = g->bed->auth().verifier(),
                           .audit = *g->consent_audit,
                           .clock = clock,
                           .cache = g->cache.get(),
                           .suppression = &*g->suppression});
  rpc::AccessPolicy policy;
  CRM_RETURN_IF_ERROR(consent::AllowConsentMethods(policy));
  CRM_ASSIGN_OR_RETURN(g->consent_server,
                       g->bed->Serve("consent", std::move(policy), {g->consent.get()}));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> to_consent,
                       g->bed->Channel("mailing", g->consent_server->port(), "consent"));
  g->consent_stub = cv1::Consent::NewStub(to_consent);
  const std::string mailing_token =
      g->bed->Token("mailing-service", {"consent.read", "consent.write", "consent.check"});
  g->gate = std::make_unique<GrpcConsentGate>(
      to_consent, [mailing_token]() -> absl::StatusOr<std::string> { return mailing_token; });

  cv1::DefinePurposeRequest define;
  cv1::Purpose* p = define.mutable_purpose();
  p->set_purpose_id("newsletter");
  p->set_basis(cv1::LAWFUL_BASIS_CONSENT);
  p->set_description("The monthly newsletter");
  p->set_direct_marketing(true);
  CRM_RETURN_IF_ERROR(Call(*g->consent_stub, &cv1::Consent::Stub::DefinePurpose, define).status());
  cv1::PublishNoticeRequest notice;
  notice.set_purpose_id("newsletter");
  notice.set_language("en");
  notice.set_text("We send a newsletter once a month.");
  CRM_ASSIGN_OR_RETURN(cv1::PublishNoticeResponse published,
                       Call(*g->consent_stub, &cv1::Consent::Stub::PublishNotice, notice));
  g->notice = published.version();
  return absl::OkStatus();
}

absl::Status StartMailing() {
  base::Clock& clock = base::RealClock::Get();
  CRM_ASSIGN_OR_RETURN(g->db, crm::testing::CreateMigratedDatabase(
                                  "mailing", "mailing_bench", static_cast<int>(flags.senders + 4)));
  CRM_RETURN_IF_ERROR(outbox::EnsureSchema(*g->db.pool));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes outbox_key,
                       outbox::LoadOrCreateKey(*g->db.pool, *g->ring));
  g->audit = std::make_unique<outbox::Writer>("mailing", outbox_key.Copy(), clock);
  CRM_ASSIGN_OR_RETURN(LinkTokens tokens, LinkTokens::Create(crypto::RandomSecret(32)));
  g->tokens.emplace(std::move(tokens));
  CRM_ASSIGN_OR_RETURN(dkim::Signer signer,
                       dkim::Signer::FromPem(dkim::testing::NewRsaKeyPem(2048),
                                             {.domain = "shop.example", .selector = "crm1"}));
  g->dkim.emplace(std::move(signer));
  g->service = std::make_unique<MailingService>(MailingDeps{.db = *g->db.pool,
                                                            .verifier = g->bed->auth().verifier(),
                                                            .audit = *g->audit,
                                                            .clock = clock,
                                                            .consent = *g->gate,
                                                            .tokens = *g->tokens,
                                                            .ring = *g->ring,
                                                            .message_domain = "shop.example"});
  rpc::AccessPolicy policy;
  CRM_RETURN_IF_ERROR(AllowMailingMethods(policy));
  CRM_ASSIGN_OR_RETURN(g->server, g->bed->Serve("mailing", std::move(policy), {g->service.get()}));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       g->bed->Channel("gateway", g->server->port(), "mailing"));
  g->stub = v1::Mailing::NewStub(channel);

  v1::CreateListRequest list;
  list.mutable_list()->set_list_id("news");
  list.mutable_list()->set_purpose_id("newsletter");
  list.mutable_list()->set_opt_in(v1::OPT_IN_SINGLE);
  list.mutable_list()->set_description("News for customers");
  CRM_RETURN_IF_ERROR(Call(*g->stub, &Stub::CreateList, list).status());
  v1::PutTemplateRequest put;
  *put.mutable_template_() = NewsletterTemplate();
  CRM_ASSIGN_OR_RETURN(v1::PutTemplateResponse stored, Call(*g->stub, &Stub::PutTemplate, put));
  g->tmpl = stored.template_();
  return absl::OkStatus();
}

// Subscribers straight into the tables (see the top of the file).
absl::Status Load() {
  const absl::Time start = absl::Now();
  CRM_RETURN_IF_ERROR(
      g->consent_db.pool->WithConnection([&](pqxx::connection_base& c) -> absl::Status {
        pqxx::nontransaction tx(c);
        tx.exec_params(absl::StrCat("INSERT INTO consent_state (subject_id, purpose_id, kind, "
                                    "notice_version, expires_at, last_given_at) SELECT ",
                                    kSubjectExpr, ", 'newsletter', CASE WHEN i % ", kWithdrawnEvery,
                                    " = 0 THEN 2 ELSE 1 END, $1, NULL, now() "
                                    "FROM generate_series(1, $2) i"),
                       g->notice, flags.recipients);
        return absl::OkStatus();
      }));
  CRM_RETURN_IF_ERROR(g->db.pool->WithConnection([&](pqxx::connection_base& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    tx.exec_params(
        absl::StrCat("INSERT INTO subscriptions (list_id, subject_id, state, source, "
                     "created_at, confirmed_at) SELECT 'news', ",
                     kSubjectExpr, ", 2, 'shop', now(), now() FROM generate_series(1, $1) i"),
        flags.recipients);
    return absl::OkStatus();
  }));
  CRM_RETURN_IF_ERROR(Exec(*g->consent_db.pool, "VACUUM ANALYZE"));
  CRM_RETURN_IF_ERROR(Exec(*g->db.pool, "VACUUM ANALYZE"));
  std::printf("loaded %lld subscribers (%lld withdrawn) in %.1f s\n",
              static_cast<long long>(flags.recipients), static_cast<long long>(Withdrawn()),
              absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

// The baseline's message, made as CampaignSender makes one.
absl::Status ComposeSample() {
  const std::string subject = "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d";
  const absl::Time now = absl::Now();
  const std::string unsubscribe_url = absl::StrCat(
      Options().unsubscribe_base, g->tokens->Issue(TokenKind::kUnsubscribe, subject, "news", now));
  const Rendered rendered =
      Render(g->tmpl, {{"first_name", "Ann"}, {"unsubscribe_url", unsubscribe_url}});
  g->sample_address = DerivedAddressBook::AddressOf(subject);
  CRM_ASSIGN_OR_RETURN(std::string message,
                       ComposeMessage({.from = Options().from,
                                       .to = g->sample_address,
                                       .message_id = absl::StrCat(subject, "@shop.example"),
                                       .unsubscribe_url = unsubscribe_url,
                                       .date = now},
                                      rendered));
  CRM_ASSIGN_OR_RETURN(g->sample_message, g->dkim->SignMessage(message, now));
  std::printf("message size %zu bytes (DKIM-signed, RSA-2048)\n", g->sample_message.size());
  return absl::OkStatus();
}

absl::Status Setup() {
  CRM_ASSIGN_OR_RETURN(g->bench, crm::testing::BenchEnv::Start("mailing_bench", CRM_SOURCE_DIR));
  CRM_ASSIGN_OR_RETURN(g->bed, crm::testing::ApiTestBed::Create("mailing", {"consent", "gateway"}));
  g->admin = g->bed->Token(kManager, {"consent.admin", "consent.read", "consent.check",
                                      "consent.write", "mailing.manage", "mailing.send"});
  std::vector<crypto::VersionedKey> keks;
  keks.push_back({.version = 1, .key = crypto::RandomSecret(32)});
  CRM_ASSIGN_OR_RETURN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
  g->ring.emplace(std::move(ring));
  CRM_RETURN_IF_ERROR(StartConsent());
  CRM_RETURN_IF_ERROR(StartMailing());
  CRM_RETURN_IF_ERROR(Load());
  return ComposeSample();
}

void Teardown() {
  if (g->server != nullptr) g->server->Shutdown();
  if (g->consent_server != nullptr) g->consent_server->Shutdown();
  g->server.reset();
  g->consent_server.reset();
  // Channels before the bed: they read its certificate files.
  g->stub.reset();
  g->consent_stub.reset();
  g->gate.reset();
  g->service.reset();
  g->consent.reset();
  g->db = {};
  g->consent_db = {};
  g->bed.reset();
  g->bench.reset();
}

// ---- Helpers of the benchmarks ------------------------------------------------------

// A field of /proc/self/status in kB ("VmHWM", "VmRSS"); -1 if absent.
int64_t StatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (!absl::StartsWith(line, field + ":")) continue;
    int64_t kb = 0;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits.push_back(c);
    }
    return absl::SimpleAtoi(digits, &kb) ? kb : -1;
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux: "5" to /proc/self/clear_refs).
bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return out.good();
}

// Stored messages in the sink's directory (temp files start with a dot).
int64_t StoredMessages(const crm::testing::SmtpSink& sink) {
  int64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(sink.mail_dir())) {
    const std::string name = e.path().filename().string();
    if (!absl::StartsWith(name, ".") && absl::EndsWith(name, ".eml")) ++n;
  }
  return n;
}

absl::StatusOr<std::unique_ptr<smtp::Sender>> SmtpTo(const crm::testing::SmtpSink& sink) {
  return smtp::Sender::Create(
      {.host = "127.0.0.1", .port = sink.port(), .ca_file = sink.ca_file()});
}

// Runs `work(thread index)` on --senders threads; the first error.
absl::Status OnSenderThreads(const std::function<absl::Status(int)>& work) {
  std::mutex mu;
  absl::Status first;
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.senders; ++t) {
    threads.emplace_back([&, t] {
      absl::Status s = work(t);
      std::lock_guard<std::mutex> l(mu);
      if (!s.ok() && first.ok()) first = s;
    });
  }
  for (std::thread& t : threads) t.join();
  return first;
}

// ---- Benchmarks ---------------------------------------------------------------------

struct CampaignResult {
  double seconds = 0;
  RoundStats totals;
  int64_t rounds = 0;
};

absl::StatusOr<CampaignResult> RunCampaign(const crm::testing::SmtpSink& sink) {
  v1::CreateCampaignRequest create;
  create.mutable_campaign()->set_name("Spring news");
  create.mutable_campaign()->set_list_id("news");
  create.mutable_campaign()->set_template_id("spring");
  CRM_ASSIGN_OR_RETURN(v1::CreateCampaignResponse created,
                       Call(*g->stub, &Stub::CreateCampaign, create));
  const std::string campaign_id = created.campaign().campaign_id();
  std::vector<std::unique_ptr<smtp::Sender>> smtp;
  std::vector<std::unique_ptr<CampaignSender>> senders;
  for (int t = 0; t < flags.senders; ++t) {
    CRM_ASSIGN_OR_RETURN(std::unique_ptr<smtp::Sender> s, SmtpTo(sink));
    smtp.push_back(std::move(s));
    senders.push_back(std::make_unique<CampaignSender>(*g->db.pool, *g->gate, g->book, *smtp.back(),
                                                       *g->tokens, *g->ring, &*g->dkim,
                                                       base::RealClock::Get(), Options()));
  }
  const std::string done_sql = absl::StrCat(
      "SELECT count(*) FROM campaigns WHERE campaign_id = $1::uuid AND state = ", kCampaignDone);

  CampaignResult result;
  std::mutex mu;
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + absl::Hours(1);
  v1::ScheduleCampaignRequest schedule;
  schedule.set_campaign_id(campaign_id);
  CRM_RETURN_IF_ERROR(Call(*g->stub, &Stub::ScheduleCampaign, schedule).status());
  CRM_RETURN_IF_ERROR(OnSenderThreads([&](int t) -> absl::Status {
    RoundStats mine;
    int64_t rounds = 0;
    while (true) {
      CRM_ASSIGN_OR_RETURN(RoundStats round, senders[t]->RunOnce());
      ++rounds;
      mine.claimed += round.claimed;
      mine.sent += round.sent;
      mine.skipped_consent += round.skipped_consent;
      mine.skipped_no_address += round.skipped_no_address;
      mine.retried += round.retried;
      mine.failed += round.failed;
      if (round.retried > 0 || round.failed > 0) {
        return absl::InternalError("a send failed (the sink refused or broke off)");
      }
      if (round.claimed > 0) continue;
      // Nothing claimable: done once the campaign is (another thread may be
      // starting it, or finishing its last batch).
      CRM_ASSIGN_OR_RETURN(const int64_t done, CountOf(done_sql, campaign_id));
      if (done == 1) break;
      if (absl::Now() > give_up) return absl::DeadlineExceededError("campaign not done in 1 h");
      absl::SleepFor(absl::Milliseconds(5));
    }
    std::lock_guard<std::mutex> l(mu);
    result.totals.claimed += mine.claimed;
    result.totals.sent += mine.sent;
    result.totals.skipped_consent += mine.skipped_consent;
    result.totals.skipped_no_address += mine.skipped_no_address;
    result.rounds += rounds;
    return absl::OkStatus();
  }));
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);

  // The counts: the threads', the queue's and the sink's.
  if (result.totals.sent != Mailable() || result.totals.skipped_consent != Withdrawn() ||
      result.totals.skipped_no_address != 0) {
    return absl::InternalError(absl::StrCat("rounds counted sent ", result.totals.sent,
                                            ", skipped_consent ", result.totals.skipped_consent,
                                            "; expected ", Mailable(), ", ", Withdrawn()));
  }
  for (const auto& [state, want] :
       std::vector<std::pair<int, int64_t>>{{2, Mailable()}, {3, Withdrawn()}}) {
    CRM_ASSIGN_OR_RETURN(
        const int64_t got,
        CountOf(absl::StrCat("SELECT count(*) FROM send_queue WHERE campaign_id = $1::uuid AND "
                             "state = ",
                             state),
                campaign_id));
    if (got != want) {
      return absl::InternalError(
          absl::StrCat("send_queue: ", got, " rows in state ", state, ", expected ", want));
    }
  }
  if (const int64_t stored = StoredMessages(sink); stored != Mailable()) {
    return absl::InternalError(
        absl::StrCat("the sink stored ", stored, " messages, expected ", Mailable()));
  }
  return result;
}

void BM_Campaign(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<std::unique_ptr<crm::testing::SmtpSink>> sink =
        crm::testing::SmtpSink::Start({});
    if (!sink.ok()) {
      state.SkipWithError(sink.status().ToString().c_str());
      return;
    }
    const int64_t rss_before = StatusKb("VmRSS");
    const bool reset = ResetPeakRss();
    absl::StatusOr<CampaignResult> r = RunCampaign(**sink);
    const int64_t peak = StatusKb("VmHWM");
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
    state.SetIterationTime(r->seconds);
    state.SetItemsProcessed(r->totals.sent);
    state.counters["sent"] = static_cast<double>(r->totals.sent);
    state.counters["skipped_consent"] = static_cast<double>(r->totals.skipped_consent);
    state.counters["rounds"] = static_cast<double>(r->rounds);
    state.counters["rss_before_mb"] = static_cast<double>(rss_before) / 1024;
    state.counters["rss_peak_mb"] = static_cast<double>(peak) / 1024;
    state.counters["rss_growth_mb"] = static_cast<double>(peak - rss_before) / 1024;
    state.counters["hwm_reset"] = reset ? 1 : 0;
  }
}

void BM_SinkAcceptRate(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<std::unique_ptr<crm::testing::SmtpSink>> sink =
        crm::testing::SmtpSink::Start({});
    if (!sink.ok()) {
      state.SkipWithError(sink.status().ToString().c_str());
      return;
    }
    std::vector<std::unique_ptr<smtp::Sender>> smtp;
    for (int t = 0; t < flags.senders; ++t) {
      absl::StatusOr<std::unique_ptr<smtp::Sender>> s = SmtpTo(**sink);
      if (!s.ok()) {
        state.SkipWithError(s.status().ToString().c_str());
        return;
      }
      smtp.push_back(*std::move(s));
    }
    std::atomic<int64_t> next{0};
    const absl::Time start = absl::Now();
    absl::Status s = OnSenderThreads([&](int t) -> absl::Status {
      while (next.fetch_add(1) < Mailable()) {
        CRM_RETURN_IF_ERROR(
            smtp[t]->Send({.from = "bounces@shop.example", .recipients = {g->sample_address}},
                          g->sample_message));
      }
      return absl::OkStatus();
    });
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (s.ok() && StoredMessages(**sink) != Mailable()) {
      s = absl::InternalError("the sink did not store every message");
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    state.SetIterationTime(seconds);
    state.SetItemsProcessed(Mailable());
  }
}

void Register() {
  for (auto* b : {benchmark::RegisterBenchmark("BM_Campaign", BM_Campaign),
                  benchmark::RegisterBenchmark("BM_SinkAcceptRate", BM_SinkAcceptRate)}) {
    b->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
  }
}

void PrintRatios(const crm::testing::RatioReporter& r) {
  constexpr double kGoal = 2'000;
  std::printf("\nRatios (%lld recipients, %lld sending threads, batches of %lld):\n",
              static_cast<long long>(flags.recipients), static_cast<long long>(flags.senders),
              static_cast<long long>(flags.batch));
  const auto* campaign = r.Find("BM_Campaign/iterations:1/manual_time");
  const auto* sink = r.Find("BM_SinkAcceptRate/iterations:1/manual_time");
  if (campaign != nullptr) {
    std::printf("  campaign %.0f messages/s = %.2f x the goal of 2,000/s\n",
                campaign->items_per_second, campaign->items_per_second / kGoal);
    if (sink != nullptr && sink->items_per_second > 0) {
      std::printf("  campaign = %.2f x the sink's accept rate (%.0f messages/s, same threads)\n",
                  campaign->items_per_second / sink->items_per_second, sink->items_per_second);
    }
    auto at = [&](const char* k) {
      auto it = campaign->counters.find(k);
      return it == campaign->counters.end() ? 0.0 : it->second;
    };
    std::printf(
        "  peak RSS during the campaign %.0f MB (goal < 150 MB): %.0f MB before it (consent, "
        "both servers, the test infrastructure) + %.0f MB%s\n",
        at("rss_peak_mb"), at("rss_before_mb"), at("rss_growth_mb"),
        at("hwm_reset") > 0 ? "" : " (VmHWM could not be reset: peak since start)");
  }
}

}  // namespace
}  // namespace crm::mailing

int main(int argc, char** argv) {
  using crm::mailing::flags;
  crm::mailing::Env env;
  crm::mailing::g = &env;
  return crm::testing::RunBenchProgram(
      argc, argv,
      {.name = "mailing_bench",
       .usage = "[--recipients=N (>= 20)] [--senders=N] [--batch=N]",
       .flags = {{"recipients", &flags.recipients, 20},
                 {"senders", &flags.senders, 1},
                 {"batch", &flags.batch, 1}},
       .setup = crm::mailing::Setup,
       .register_all = crm::mailing::Register,
       .print_ratios = crm::mailing::PrintRatios,
       .teardown = crm::mailing::Teardown});
}
