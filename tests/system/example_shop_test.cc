// System test of the example shop (tools/example_shop, docs/integration.md,
// issue 6): the real identity, contacts and consent binaries run as processes
// on fresh databases of the shared test PostgreSQL and the shared Redis, with
// mutual TLS from a throwaway PKI (clients operator, shop, clerk, stranger).
// The bootstrap administrator logs in with the real crmctl and runs
// tools/example_shop/setup, as `tools/dev example` does; then the
// crm-example-shop binary runs the guide's steps, and its exit code and
// outcome lines are checked, along with what it left in consent's ledger.
//
// The processes (stack.h) are started once for the suite (Argon2, migrations and
// key fetches are what take time); each test uses its own customer.
//
// Mailing runs too, with a real SMTP sink: after tools/platform-accounts
// gave it its service account, a campaign goes out through the whole stack
// (mailing's own token at consent, the address from contacts by mailing's
// certificate, the mail in the sink). Audit and the erasure orchestrator run
// as well: a customer with data in every service is erased and nothing
// readable is left in any database or in Redis; a target and the
// orchestrator are killed mid-request and the request still completes.
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "libs/base/status_macros.h"
#include "libs/json/json.h"
#include "libs/pki/pki.h"
#include "libs/redis/client.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/smtp_sink.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/subprocess.h"
#include "libs/testing/test_env.h"
#include "tests/system/service_processes.h"
#include "tests/system/stack.h"

namespace crm::system_test {
namespace {

using ::crm::testing::ExitStatus;
using ::crm::testing::IsOk;
using ::crm::testing::TestEnv;
using ::testing::HasSubstr;
using ::testing::Not;

Stack* g_stack = nullptr;

// The subject id the example printed ("... subject <id>"), or "".
std::string SubjectOf(const std::string& output) {
  constexpr absl::string_view kMarker = "subject ";
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (!absl::StartsWith(line, "2. customer:")) continue;
    const size_t at = line.rfind(kMarker);
    if (at != absl::string_view::npos) return std::string(line.substr(at + kMarker.size()));
  }
  return "";
}

// Whether `output` holds each of `parts` as substrings in this order.
bool InOrder(const std::string& output, const std::vector<std::string>& parts) {
  size_t from = 0;
  for (const std::string& part : parts) {
    const size_t at = output.find(part, from);
    if (at == std::string::npos) return false;
    from = at + part.size();
  }
  return true;
}

class ExampleShopTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The gateway answers some requests (411, 415) before reading their
    // body; writing the rest to the closed socket must fail, not kill us.
    std::signal(SIGPIPE, SIG_IGN);
    // Contacts applies its retention rules every second (default: hourly).
    CRM_ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<Stack> stack,
        Stack::Create({.service_env = {{"contacts", {{"CRM_SWEEP_INTERVAL", "1s"}}}}}));
    g_stack = stack.release();
  }

  static void TearDownTestSuite() {
    if (g_stack == nullptr) return;
    EXPECT_THAT(g_stack->Shutdown(), IsOk());
    delete g_stack;
    g_stack = nullptr;
  }

  void SetUp() override { ASSERT_NE(g_stack, nullptr) << "the services did not start"; }
};

TEST_F(ExampleShopTest, SetupCreatesAccountRoleGrantAndPurposeThenFindsThemInPlace) {
  const Outcome& first = g_stack->first_setup;
  ASSERT_TRUE(first.exit.exited_with(0)) << first.exit << "\n" << first.output;
  EXPECT_TRUE(InOrder(first.output,
                      {
                          "service account shop (spiffe://crm.local/shop): created",
                          "role shop-checkout: created",
                          "grant of shop-checkout to shop: created",
                          "purpose newsletter: created",
                          "English notice of newsletter: created",
                      }))
      << first.output;

  const Outcome again = g_stack->RunSetup();
  ASSERT_TRUE(again.exit.exited_with(0)) << again.exit << "\n" << again.output;
  EXPECT_TRUE(InOrder(again.output,
                      {
                          "service account shop (spiffe://crm.local/shop): in place",
                          "role shop-checkout: in place",
                          "grant of shop-checkout to shop: in place",
                          "purpose newsletter: in place",
                          "English notice of newsletter: in place",
                      }))
      << again.output;
  EXPECT_THAT(again.output, Not(HasSubstr("created")));

  const Outcome role = g_stack->Crmctl({"role", "list"});
  ASSERT_TRUE(role.exit.exited_with(0)) << role.output;
  EXPECT_THAT(role.output,
              HasSubstr("consent.check,consent.read,consent.write,contacts.read,contacts.write"));
}

TEST_F(ExampleShopTest, RegistersGrantsChecksWithdrawsAndTheWithdrawalCountsAtOnce) {
  const Outcome run = g_stack->RunExample(
      {"--given_name=Marisol", "--family_name=Quintero", "--email=m.quintero@example.com"});
  ASSERT_TRUE(run.exit.exited_with(0)) << run.exit << "\n" << run.output;
  EXPECT_TRUE(InOrder(run.output,
                      {
                          "1. token: issued to the shop's certificate, valid until ",
                          "2. customer: registered as subject ",
                          "3. consent: newsletter granted with notice ",
                          "ledger entry 1",
                          "4. check newsletter: allowed=yes reason=GRANTED",
                          "5. withdraw: ledger entry 2",
                          "6. check newsletter: allowed=no reason=WITHDRAWN",
                      }))
      << run.output;
  // Ids and outcomes only.
  for (const char* personal : {"Marisol", "Quintero", "quintero@"}) {
    EXPECT_THAT(run.output, Not(HasSubstr(personal)));
  }

  // The ledger holds what the example printed, recorded as the shop's.
  const std::string subject = SubjectOf(run.output);
  ASSERT_EQ(subject.size(), 36u) << run.output;
  const Outcome history = g_stack->Crmctl({"consent", "history", subject});
  ASSERT_TRUE(history.exit.exited_with(0)) << history.output;
  EXPECT_TRUE(InOrder(history.output, {"newsletter", "grant", "web-form", "shop", "newsletter",
                                       "withdraw", "email-link", "shop", "chain_intact: yes"}))
      << history.output;
  const Outcome check = g_stack->Crmctl({"consent", "check", subject, "newsletter"});
  ASSERT_TRUE(check.exit.exited_with(0)) << check.output;
  EXPECT_THAT(check.output, HasSubstr("withdrawn"));
}

TEST_F(ExampleShopTest, AlreadyRegisteredEmailUsesTheExistingSubject) {
  const Outcome first = g_stack->RunExample({"--email=returning@example.com"});
  ASSERT_TRUE(first.exit.exited_with(0)) << first.exit << "\n" << first.output;
  const std::string subject = SubjectOf(first.output);
  ASSERT_EQ(subject.size(), 36u) << first.output;

  const Outcome second = g_stack->RunExample({"--email=returning@example.com"});
  ASSERT_TRUE(second.exit.exited_with(0)) << second.exit << "\n" << second.output;
  EXPECT_THAT(second.output,
              HasSubstr(absl::StrCat("2. customer: already registered (same e-mail address) as "
                                     "subject ",
                                     subject)));
  // Granted again after the first run's withdrawal: a new entry, then the
  // same outcomes.
  EXPECT_TRUE(
      InOrder(second.output,
              {"ledger entry 3", "4. check newsletter: allowed=yes reason=GRANTED",
               "5. withdraw: ledger entry 4", "6. check newsletter: allowed=no reason=WITHDRAWN"}))
      << second.output;
}

TEST_F(ExampleShopTest, CertificateWithoutServiceAccountFailsAtTheTokenStep) {
  const Outcome run = g_stack->RunExample({}, "stranger");
  EXPECT_TRUE(run.exit.exited_with(1)) << run.exit << "\n" << run.output;
  EXPECT_THAT(run.output,
              HasSubstr("step 1 (Identity/IssueServiceToken) failed: UNAUTHENTICATED: no active "
                        "service account is bound to this certificate"));
  EXPECT_THAT(run.output, Not(HasSubstr("2. customer")));
}

TEST_F(ExampleShopTest, ServiceAccountWithoutTheRoleIsRefusedAtTheRegisterStep) {
  const Outcome created = g_stack->Crmctl(
      {"service-account", "create", "clerk", "--spiffe-id", "spiffe://crm.local/clerk"});
  ASSERT_TRUE(created.exit.exited_with(0)) << created.output;

  const Outcome run = g_stack->RunExample({}, "clerk");
  EXPECT_TRUE(run.exit.exited_with(1)) << run.exit << "\n" << run.output;
  EXPECT_THAT(run.output, HasSubstr("1. token: issued"));
  EXPECT_THAT(run.output, HasSubstr("step 2 (Contacts/CreatePerson) failed: PERMISSION_DENIED"));
  EXPECT_THAT(run.output, Not(HasSubstr("3. consent")));
}

TEST_F(ExampleShopTest, BadSettingExitsWith2NamingIt) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--emial=a@example.com", "--emial"},
      {"--identity_addr=identity", "identity_addr"},
      {"--tls_cert=/nonexistent/shop.crt", "tls_cert"},
      {"checkout", "unexpected argument"},
  };
  for (const auto& [flag, named] : cases) {
    SCOPED_TRACE(flag);
    const Outcome run = g_stack->RunExample({flag});
    EXPECT_TRUE(run.exit.exited_with(2)) << run.exit << "\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(named));
    EXPECT_THAT(run.output, Not(HasSubstr("1. token")));
  }
}

TEST_F(ExampleShopTest, TheMailingServiceSendsACampaignThroughTheWholeStack) {
  Stack& st = *g_stack;
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  // Before its service account exists, mailing cannot reach consent.
  const std::string list_json =
      R"({"list": {"listId": "news", "purposeId": "newsletter", "optIn": "OPT_IN_SINGLE"}})";
  Outcome early = st.Crmctl({"call", "mailing", "CreateList", list_json});
  ASSERT_FALSE(ok(early)) << early.output;
  EXPECT_THAT(early.output, HasSubstr("platform's own services"));

  const Outcome accounts =
      st.Run({absl::StrCat(std::getenv("CRMTEST_SOURCE_DIR"), "/tools/platform-accounts")});
  ASSERT_TRUE(ok(accounts)) << accounts.output;
  EXPECT_TRUE(
      InOrder(accounts.output,
              {"service account mailing (spiffe://crm.local/mailing): created",
               "role platform-mailing: created", "grant of platform-mailing to mailing: created"}))
      << accounts.output;
  const Outcome list = st.Crmctl({"call", "mailing", "CreateList", list_json});
  ASSERT_TRUE(ok(list)) << list.output;

  const std::string email = "mailing.system.test@customers.example";
  const Outcome person = st.Crmctl(
      {"call", "contacts", "CreatePerson",
       absl::StrCat(
           R"({"person": {"givenName": "Zofia", "familyName": "Test", "emails": [{"address": ")",
           email, R"(", "primary": true}], "registration": {"channel": "web"}}})")});
  ASSERT_TRUE(ok(person)) << person.output;
  const std::string subject = JsonString(person.output, "subject_id");
  ASSERT_FALSE(subject.empty()) << person.output;
  const Outcome purposes = st.Crmctl({"call", "consent", "ListPurposes", "{}"});
  ASSERT_TRUE(ok(purposes)) << purposes.output;
  const std::string notice = JsonString(purposes.output, "en");
  ASSERT_EQ(notice.size(), 64u) << purposes.output;
  const Outcome subscribed =
      st.Crmctl({"call", "mailing", "Subscribe",
                 absl::StrCat(R"({"listId": "news", "subjectId": ")", subject,
                              R"(", "source": "shop", "noticeVersion": ")", notice, R"("})")});
  ASSERT_TRUE(ok(subscribed)) << subscribed.output;
  const Outcome tmpl = st.Crmctl(
      {"call", "mailing", "PutTemplate",
       R"({"template": {"templateId": "spring", "subject": "Spring news for {{first_name}}", "textBody": "Hello {{first_name}}"}})"});
  ASSERT_TRUE(ok(tmpl)) << tmpl.output;
  const Outcome campaign =
      st.Crmctl({"call", "mailing", "CreateCampaign",
                 R"({"campaign": {"name": "Spring", "listId": "news", "templateId": "spring"}})"});
  ASSERT_TRUE(ok(campaign)) << campaign.output;
  const std::string campaign_id = JsonString(campaign.output, "campaign_id");
  ASSERT_FALSE(campaign_id.empty()) << campaign.output;
  const Outcome scheduled = st.Crmctl({"call", "mailing", "ScheduleCampaign",
                                       absl::StrCat(R"({"campaignId": ")", campaign_id, R"("})")});
  ASSERT_TRUE(ok(scheduled)) << scheduled.output;

  // The sender's loop picks it up within a few rounds.
  std::vector<crm::testing::SinkMessage> got;
  for (int i = 0; i < 100 && got.empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    CRM_ASSERT_OK_AND_ASSIGN(got, st.sink->Messages());
  }
  ASSERT_THAT(got, ::testing::SizeIs(1));
  ASSERT_THAT(got[0].recipients, ::testing::ElementsAre(email));
  EXPECT_THAT(got[0].data, HasSubstr("Subject: Spring news for Zofia\r\n"));
  EXPECT_THAT(got[0].data, HasSubstr("List-Unsubscribe: <https://crm.shop.example/u/u."));
  EXPECT_THAT(got[0].data, HasSubstr("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
  const Outcome counted = st.Crmctl({"call", "mailing", "GetCampaign",
                                     absl::StrCat(R"({"campaignId": ")", campaign_id, R"("})")});
  ASSERT_TRUE(ok(counted)) << counted.output;
  EXPECT_THAT(counted.output, HasSubstr(R"("sent": "1")"));

  // Transactional mail: to the subject (address from contacts) and to an
  // address contacts does not know; neither carries an unsubscribe link.
  const Outcome notice_mail = st.Crmctl(
      {"call", "mailing", "SendTransactional",
       absl::StrCat(R"({"kind": "TRANSACTIONAL_KIND_PASSWORD_CHANGED", "subjectId": ")", subject,
                    R"(", "params": {"changed_at": "today"}, "dedupKey": "system:1"})")});
  ASSERT_TRUE(ok(notice_mail)) << notice_mail.output;
  const Outcome code_mail = st.Crmctl(
      {"call", "mailing", "SendTransactional",
       R"({"kind": "TRANSACTIONAL_KIND_VERIFICATION_CODE", "address": "visitor@portal.example", "params": {"code": "K3Y9Z7"}, "dedupKey": "system:2"})"});
  ASSERT_TRUE(ok(code_mail)) << code_mail.output;
  for (int i = 0; i < 100 && got.size() < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    CRM_ASSERT_OK_AND_ASSIGN(got, st.sink->Messages());
  }
  ASSERT_THAT(got, ::testing::SizeIs(3));
  std::map<std::string, std::string> by_to;
  for (size_t i = 1; i < got.size(); ++i) by_to[got[i].recipients.at(0)] = got[i].data;
  EXPECT_THAT(by_to[email], HasSubstr("Subject: Your password was changed\r\n"));
  EXPECT_THAT(by_to["visitor@portal.example"], HasSubstr("K3Y9Z7"));
  for (const auto& [to, data] : by_to) EXPECT_THAT(data, Not(HasSubstr("List-Unsubscribe"))) << to;

  // Mailing logged no address.
  CRM_ASSERT_OK_AND_ASSIGN(std::string log, pki::ReadFile(st.dir.path() + "/mailing.log"));
  EXPECT_THAT(log, Not(HasSubstr("portal.example")));
  EXPECT_THAT(log, Not(HasSubstr("customers.example")));
}

// ---- Erasure (issue 8) ----------------------------------------------------

// A customer with data in every service: a person with name, address and
// phone in contacts, a consent statement, a mailing subscription and a sent
// mail, and the audit events all of that made. The subject id.
std::string CustomerEverywhere(Stack& st, const std::string& given, const std::string& email,
                               const std::string& phone) {
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  const Outcome person =
      st.Crmctl({"call", "contacts", "CreatePerson",
                 absl::StrCat(R"({"person": {"givenName": ")", given,
                              R"(", "familyName": "Vanishing", "emails": [{"address": ")", email,
                              R"(", "primary": true}], "phones": [{"number": ")", phone,
                              R"("}], "registration": {"channel": "web"}}})")});
  EXPECT_TRUE(ok(person)) << person.output;
  const std::string subject = JsonString(person.output, "subject_id");
  const Outcome purposes = st.Crmctl({"call", "consent", "ListPurposes", "{}"});
  const std::string notice = JsonString(purposes.output, "en");
  EXPECT_TRUE(
      ok(st.Crmctl({"call", "mailing", "Subscribe",
                    absl::StrCat(R"({"listId": "news", "subjectId": ")", subject,
                                 R"(", "source": "shop", "noticeVersion": ")", notice, R"("})")})));
  // Objected to direct marketing after all: consent must keep suppressing
  // the address once everything else is gone.
  EXPECT_TRUE(ok(st.Crmctl(
      {"call", "consent", "Object",
       absl::StrCat(
           R"({"statement": {"subjectId": ")", subject,
           R"(", "purposeId": "newsletter", "method": "METHOD_WEB_FORM", "source": "shop"}})")})));
  return subject;
}

// Retention: a lead inactive for longer than its rule (lead=730 days) is
// found by contacts' sweeper, which submits its erasure to the orchestrator
// with contacts' own token; the orchestrator erases it everywhere.
TEST_F(ExampleShopTest, ALeadPastItsRetentionIsErasedThroughTheOrchestrator) {
  Stack& st = *g_stack;
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  ASSERT_TRUE(
      ok(st.Run({absl::StrCat(std::getenv("CRMTEST_SOURCE_DIR"), "/tools/platform-accounts")})));
  const Outcome created =
      st.Crmctl({"call", "contacts", "CreatePerson",
                 R"({"person": {"familyName": "Longgone", "status": "PERSON_STATUS_LEAD"}})"});
  ASSERT_TRUE(ok(created)) << created.output;
  const std::string subject = JsonString(created.output, "subject_id");
  ASSERT_FALSE(subject.empty());
  {
    // Started in the same order as their databases were made.
    pqxx::connection c(st.dbs.at(st.position.at("contacts"))->conninfo());
    pqxx::work tx(c);
    tx.exec_params(
        "UPDATE persons SET last_activity_at = now() - interval '800 days' "
        "WHERE subject_id = $1::uuid",
        subject);
    tx.commit();
  }

  const std::string get = absl::StrCat(R"({"subjectId": ")", subject, R"("})");
  Outcome person;
  for (int i = 0; i < 600; ++i) {  // sweeps every second, erases in a few
    person = st.Crmctl({"call", "contacts", "GetPerson", get});
    if (!ok(person)) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(person.output, HasSubstr("NOT_FOUND"));
  const Outcome list = st.Crmctl({"call", "erasure", "ListErasures", "{}"});
  ASSERT_TRUE(ok(list)) << list.output;
  const size_t at = list.output.find(subject);
  ASSERT_NE(at, std::string::npos) << list.output;
  // request_id comes just before subject_id in each request.
  const size_t id_at = list.output.rfind("\"request_id\"", at);
  ASSERT_NE(id_at, std::string::npos) << list.output;
  const std::string request_id = JsonString(list.output.substr(id_at), "request_id");
  const std::string done =
      st.AwaitErasure(request_id, {"STATE_COMPLETED", "STATE_COMPLETED_WITH_RETENTION"});
  EXPECT_THAT(done, HasSubstr("ERASURE_REASON_RETENTION")) << done;
  EXPECT_THAT(done, HasSubstr(subject));
}

TEST_F(ExampleShopTest, AnErasureLeavesNoTraceInAnyServiceAndIsCertified) {
  Stack& st = *g_stack;
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  ASSERT_TRUE(
      ok(st.Run({absl::StrCat(std::getenv("CRMTEST_SOURCE_DIR"), "/tools/platform-accounts")})));
  const std::string email = "vera.vanishing@customers.example";
  const std::string subject = CustomerEverywhere(st, "Veronika", email, "+4930901820");
  ASSERT_FALSE(subject.empty());
  // The scan below reads every row: it finds what is stored in clear (names,
  // addresses and phones never are: contacts seals them under the subject's
  // key, which the erasure destroys).
  EXPECT_THAT(st.Traces({"newsletter"}), Not(::testing::IsEmpty()));

  const std::string submit = absl::StrCat(R"({"subjectId": ")", subject,
                                          R"(", "reason": "ERASURE_REASON_SUBJECT_REQUEST"})");
  // Mailing is down, so the request stays open (planning waits for every
  // target) however fast the orchestrator is.
  ASSERT_THAT(st.Kill("mailing"), IsOk());
  const Outcome first = st.Crmctl({"call", "erasure", "SubmitErasure", submit});
  ASSERT_TRUE(ok(first)) << first.output;
  const std::string request_id = JsonString(first.output, "request_id");
  // A second submission while it is open is the same request.
  const Outcome second = st.Crmctl({"call", "erasure", "SubmitErasure", submit});
  ASSERT_TRUE(ok(second)) << second.output;
  EXPECT_EQ(JsonString(second.output, "request_id"), request_id);
  EXPECT_THAT(second.output, HasSubstr("STATE_RECEIVED"));
  ASSERT_THAT(st.Launch("mailing"), IsOk());

  const std::string done =
      st.AwaitErasure(request_id, {"STATE_COMPLETED", "STATE_COMPLETED_WITH_RETENTION"});
  ASSERT_THAT(done, HasSubstr("STATE_COMPLETED_WITH_RETENTION")) << done;
  EXPECT_THAT(done, HasSubstr("marketing_suppression"));  // consent keeps a hash
  EXPECT_THAT(done, HasSubstr("audit_events"));           // pseudonymous, retained

  // No name, address or phone anywhere: every table of every database, and Redis.
  EXPECT_THAT(st.Traces({"Veronika", "Vanishing", email, "4930901820"}), ::testing::IsEmpty());

  // The subject was told, once, at the address erased everywhere else.
  std::vector<crm::testing::SinkMessage> mail;
  for (int i = 0; i < 100; ++i) {
    CRM_ASSERT_OK_AND_ASSIGN(mail, st.sink->Messages());
    if (std::any_of(mail.begin(), mail.end(), [&](const auto& m) {
          return m.recipients.size() == 1 && m.recipients[0] == email;
        })) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  int notices = 0;
  for (const auto& m : mail) {
    if (m.recipients.size() == 1 && m.recipients[0] == email &&
        absl::StrContains(m.data, "Subject: Your personal data has been erased")) {
      ++notices;
      EXPECT_THAT(m.data, HasSubstr(request_id));
    }
  }
  EXPECT_EQ(notices, 1);

  // The certificate verifies offline with the public key; a forged one does not.
  const Outcome cert = st.Crmctl({"call", "erasure", "GetCertificate",
                                  absl::StrCat(R"({"requestId": ")", request_id, R"("})")});
  ASSERT_TRUE(ok(cert)) << cert.output;
  EXPECT_THAT(cert.output, Not(HasSubstr(subject)));
  const Outcome key = st.Crmctl({"call", "erasure", "GetVerificationKey", "{}"});
  ASSERT_TRUE(ok(key)) << key.output;
  const std::string dir = st.dir.path();
  ASSERT_THAT(WriteFile(dir + "/cert.b64", JsonString(cert.output, "certificate")), IsOk());
  ASSERT_THAT(WriteFile(dir + "/sig.b64", JsonString(cert.output, "signature")), IsOk());
  std::string pem = JsonString(key.output, "public_key_pem");
  pem = absl::StrReplaceAll(pem, {{"\\n", "\n"}});
  ASSERT_THAT(WriteFile(dir + "/erasure.pub.pem", pem), IsOk());
  const std::string verify = absl::StrCat(
      "cd '", dir, "' && base64 -d cert.b64 > cert.json && base64 -d sig.b64 > cert.sig && ",
      "openssl pkeyutl -verify -pubin -inkey erasure.pub.pem -rawin -in cert.json -sigfile "
      "cert.sig");
  const Outcome verified = st.Run({"/bin/bash", "-c", verify});
  EXPECT_TRUE(ok(verified)) << verified.output;
  const Outcome forged = st.Run(
      {"/bin/bash", "-c",
       absl::StrCat("cd '", dir,
                    "' && sed 's/\"rounds\":1/\"rounds\":2/' cert.json > forged.json && ",
                    "openssl pkeyutl -verify -pubin -inkey erasure.pub.pem -rawin -in forged.json "
                    "-sigfile cert.sig")});
  EXPECT_FALSE(ok(forged)) << forged.output;
}

TEST_F(ExampleShopTest, AnErasureWaitsForAStoppedServiceAndForARestartedOrchestrator) {
  Stack& st = *g_stack;
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  const std::string email = "paul.patient@customers.example";
  const std::string subject = CustomerEverywhere(st, "Paulus", email, "+4930901821");
  ASSERT_FALSE(subject.empty());

  // Mailing crashes; the request (by e-mail address: the orchestrator finds
  // the subject in contacts) waits for it, it does not fail.
  ASSERT_THAT(st.Kill("mailing"), IsOk());
  const Outcome submitted = st.Crmctl(
      {"call", "erasure", "SubmitErasure",
       absl::StrCat(R"({"email": ")", email, R"(", "reason": "ERASURE_REASON_SUBJECT_REQUEST"})")});
  ASSERT_TRUE(ok(submitted)) << submitted.output;
  EXPECT_EQ(JsonString(submitted.output, "subject_id"), subject);
  const std::string request_id = JsonString(submitted.output, "request_id");
  std::string waiting;
  for (int i = 0; i < 100 && !absl::StrContains(waiting, R"("failures": 2)"); ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    waiting = st.Crmctl({"call", "erasure", "GetErasure",
                         absl::StrCat(R"({"requestId": ")", request_id, R"("})")})
                  .output;
  }
  EXPECT_THAT(waiting, HasSubstr(R"("failures": 2)")) << waiting;
  EXPECT_THAT(waiting, HasSubstr("STATE_RECEIVED"));  // the plan waits for every target

  // The orchestrator crashes too, holding the request's lease.
  ASSERT_THAT(st.Kill("erasure"), IsOk());
  ASSERT_THAT(st.Launch("mailing"), IsOk());
  ASSERT_THAT(st.Launch("erasure"), IsOk());
  const std::string done =
      st.AwaitErasure(request_id, {"STATE_COMPLETED", "STATE_COMPLETED_WITH_RETENTION"});
  EXPECT_THAT(done, HasSubstr("STATE_COMPLETED_WITH_RETENTION")) << done;
  EXPECT_THAT(st.Traces({"Paulus", email, "4930901821"}), ::testing::IsEmpty());
}

TEST_F(ExampleShopTest, AnAccessRequestGathersEveryServicesDataIntoOneEncryptedExport) {
  Stack& st = *g_stack;
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  ASSERT_TRUE(
      ok(st.Run({absl::StrCat(std::getenv("CRMTEST_SOURCE_DIR"), "/tools/platform-accounts")})));
  const std::string email = "anna.asking@customers.example";
  const std::string subject = CustomerEverywhere(st, "Annabella", email, "+4930901822");
  ASSERT_FALSE(subject.empty());

  const Outcome submitted = st.Crmctl({"erasure", "access-email", email});
  ASSERT_TRUE(ok(submitted)) << submitted.output;
  const Outcome listed = st.Crmctl(
      {"call", "erasure", "ListErasures", R"({"kind": "KIND_ACCESS", "unfinished": false})"});
  ASSERT_TRUE(ok(listed)) << listed.output;
  const std::string request_id = JsonString(listed.output, "request_id");
  ASSERT_FALSE(request_id.empty()) << listed.output;
  EXPECT_EQ(JsonString(listed.output, "subject_id"), subject);
  const std::string done = st.AwaitErasure(request_id, {"STATE_COMPLETED"});
  ASSERT_THAT(done, HasSubstr("STATE_COMPLETED")) << done;
  EXPECT_THAT(done, HasSubstr("KIND_ACCESS"));

  // The document: every service's part, the person decrypted, the Art. 15
  // facts from the record of processing.
  const std::string file = st.dir.path() + "/export.json";
  const Outcome exported = st.Crmctl({"erasure", "export", request_id, "--out", file});
  ASSERT_TRUE(ok(exported)) << exported.output;
  EXPECT_THAT(exported.output, Not(HasSubstr("Annabella")));
  CRM_ASSERT_OK_AND_ASSIGN(const std::string text, pki::ReadFile(file));
  for (const char* part :
       {R"("format":"crm.access-export.v1")", R"("service":"contacts")", R"("service":"consent")",
        R"("service":"mailing")", R"("service":"audit")", "Annabella", "anna.asking@customers",
        "newsletter", "managing the customer relationship", "Art. 77"}) {
    EXPECT_THAT(text, HasSubstr(part));
  }
  // Stored encrypted: the name is nowhere in clear, in any database or Redis.
  EXPECT_THAT(st.Traces({"Annabella", "4930901822"}), ::testing::IsEmpty());

  // The subject was told the copy is ready.
  bool told = false;
  std::string seen;  // for the failure message
  for (int i = 0; i < 100 && !told; ++i) {
    CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> mail, st.sink->Messages());
    seen.clear();
    for (const auto& m : mail) {
      absl::StrAppend(&seen, absl::StrJoin(m.recipients, ","), ": ", m.data.substr(0, 600),
                      "\n---\n");
      // The body is quoted-printable: soft line breaks may split the id.
      const std::string body = absl::StrReplaceAll(m.data, {{"=\r\n", ""}, {"=\n", ""}});
      told = told || (m.recipients.size() == 1 && m.recipients[0] == email &&
                      absl::StrContains(body, "A copy of your personal data is ready") &&
                      absl::StrContains(body, request_id));
    }
    if (!told) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(told) << seen;
}

// The gateway's JSON API: the services' own answers, their own
// authorization, errors as JSON with the right status and field.
TEST_F(ExampleShopTest, TheGatewayApiCallsTheServicesWithTheCallersToken) {
  Stack& st = *g_stack;
  std::unique_ptr<httplib::SSLClient> client = st.Https();
  httplib::SSLClient& https = *client;
  auto post = [&](const std::string& path, const std::string& body, const std::string& token,
                  const std::string& type = "application/json") {
    httplib::Headers headers = {{"User-Agent", "system-test"}};
    if (!token.empty()) headers.emplace("Authorization", absl::StrCat("Bearer ", token));
    return https.Post(path.c_str(), headers, body, type.c_str());
  };
  auto error = [](const httplib::Result& r) {
    absl::StatusOr<json::Value> doc = json::Parse(r->body);
    if (!doc.ok() || doc->Find("error") == nullptr) return std::string("no error object");
    const json::Value* field = doc->Find("error")->Find("field");
    return absl::StrCat(doc->Find("error")->Find("code")->string_value(), " ",
                        field == nullptr ? "-" : field->string_value());
  };
  const std::string login = "/api/v1/crm.identity.v1.Identity/Login";
  httplib::Result logged_in = post(
      login, absl::StrCat(R"({"username": "admin", "password": ")", kAdminPassword, R"("})"), "");
  ASSERT_TRUE(logged_in);
  ASSERT_EQ(logged_in->status, 200) << logged_in->body;
  EXPECT_FALSE(logged_in->get_header_value("X-Request-Id").empty());
  EXPECT_THAT(logged_in->get_header_value("Content-Security-Policy"),
              HasSubstr("frame-ancestors 'none'"));
  absl::StatusOr<json::Value> tokens = json::Parse(logged_in->body);
  ASSERT_THAT(tokens.status(), IsOk());
  const std::string token = tokens->Find("tokens")->Find("accessToken")->string_value();
  ASSERT_FALSE(token.empty());

  // The service's answer, in protobuf's JSON mapping.
  const std::string list = "/api/v1/crm.erasure.v1.Erasure/ListErasures";
  httplib::Result listed = post(list, R"({"pageSize": 5})", token);
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->status, 200) << listed->body;
  EXPECT_THAT(json::Parse(listed->body).status(), IsOk());

  // Who may call is the service's business: no token, a forged one.
  EXPECT_EQ(error(post(list, "{}", "")), "UNAUTHENTICATED -");
  EXPECT_EQ(post(list, "{}", "")->status, 401);
  EXPECT_EQ(post(list, "{}", "eyJhbGciOiJFZERTQSJ9.e30.c2ln")->status, 401);
  // A token whose session has ended (logged out: revoked at once, where
  // expiry takes the token's lifetime) is refused too.
  httplib::Result second = post(
      login, absl::StrCat(R"({"username": "admin", "password": ")", kAdminPassword, R"("})"), "");
  ASSERT_TRUE(second);
  ASSERT_EQ(second->status, 200);
  const std::string ended =
      json::Parse(second->body)->Find("tokens")->Find("accessToken")->string_value();
  EXPECT_EQ(post(list, "{}", ended)->status, 200);
  EXPECT_EQ(post("/api/v1/crm.identity.v1.Identity/Logout", "{}", ended)->status, 200);
  // Other services learn of a revocation within their negative cache (500 ms).
  httplib::Result revoked = post(list, "{}", ended);
  for (int i = 0; i < 30 && revoked && revoked->status != 401; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    revoked = post(list, "{}", ended);
  }
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->status, 401);
  EXPECT_EQ(error(revoked), "UNAUTHENTICATED -");
  // Bad bodies: malformed, an unknown field, a wrong type (named), the service's own check.
  for (const auto& [bad, field] :
       std::vector<std::pair<const char*, const char*>>{{"{", "body"},
                                                        {R"({"nope": 1})", "body"},
                                                        {R"({"pageSize": "many"})", "page_size"},
                                                        {"[]", "body"}}) {
    httplib::Result r = post(list, bad, token);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(error(r), absl::StrCat("INVALID_ARGUMENT ", field)) << bad;
    EXPECT_THAT(r->body, Not(HasSubstr("nope"))) << "the body is not echoed";
    EXPECT_THAT(r->body, Not(HasSubstr("many"))) << "the value is not echoed";
  }
  httplib::Result bad_id =
      post("/api/v1/crm.erasure.v1.Erasure/GetErasure", R"({"requestId": "x"})", token);
  EXPECT_EQ(bad_id->status, 400);
  EXPECT_EQ(error(bad_id), "INVALID_ARGUMENT request_id");
  httplib::Result unknown_id =
      post("/api/v1/crm.erasure.v1.Erasure/GetErasure",
           R"({"requestId": "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d"})", token);
  EXPECT_EQ(unknown_id->status, 404);
  // Not the API: unknown or internal methods, streaming ones, other verbs and types.
  for (const char* path :
       {"/api/v1/crm.erasure.v1.Erasure/Nope", "/api/v1/crm.audit.v1.AuditIngest/AppendEvents",
        "/api/v1/crm.subject.v1.SubjectData/EraseSubjectData",
        "/api/v1/crm.erasure.v1.Erasure/ListErasure"}) {
    EXPECT_EQ(post(path, "{}", token)->status, 404) << path;
  }
  // Methods a service authorizes by the caller's certificate alone would be
  // the gateway's certificate for anyone: never exposed.
  for (const char* path : {"/api/v1/crm.identity.v1.Identity/IssueServiceToken",
                           "/api/v1/crm.identity.v1.Identity/CheckSession",
                           "/api/v1/crm.mailing.v1.Mailing/Unsubscribe",
                           "/api/v1/crm.mailing.v1.Mailing/ConfirmSubscription",
                           "/api/v1/crm.mailing.v1.Mailing/SendTransactional"}) {
    EXPECT_EQ(post(path, "{}", token)->status, 404) << path;
  }
  // A header gRPC metadata would refuse (httplib percent-decodes %0A into a
  // line break) is a 401, not a crash; the gateway still answers after it.
  EXPECT_EQ(post(list, "{}", "%0Aevil")->status, 401);
  EXPECT_EQ(post(list, "{}", "\x7f")->status, 401);
  // Bodies whose size is not known up front are refused before reading.
  httplib::Result chunked = https.Post(
      list.c_str(),
      [](size_t offset, httplib::DataSink& sink) {
        if (offset == 0) sink.write("{}", 2);
        sink.done();
        return true;
      },
      "application/json");
  // (The gateway may close the connection before the client has sent it all.)
  if (chunked) {
    EXPECT_EQ(chunked->status, 411);
  }
  httplib::Result gzipped =
      https.Post(list.c_str(), {{"Content-Encoding", "gzip"}}, "{}", "application/json");
  ASSERT_TRUE(gzipped);
  EXPECT_EQ(gzipped->status, 415);
  EXPECT_EQ(https.Get(list.c_str())->status, 405);
  EXPECT_EQ(https.Delete(list.c_str())->status, 405);
  EXPECT_EQ(post(list, "{}", token, "text/plain")->status, 415);
  httplib::Result huge = post(list, std::string(2 << 20, ' '), token);
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);

  // An access export, downloaded through the gateway as one JSON document.
  const std::string someone = "3e9c4f6b-0a5d-4c8e-9f1a-2b3c4d5e6f70";  // holds nothing yet
  httplib::Result access = post("/api/v1/crm.erasure.v1.Erasure/SubmitAccess",
                                absl::StrCat(R"({"subjectId": ")", someone, R"("})"), token);
  ASSERT_TRUE(access);
  ASSERT_EQ(access->status, 200) << access->body;
  const std::string access_id =
      json::Parse(access->body)->Find("request")->Find("requestId")->string_value();
  const std::string download = "/api/v1/crm.erasure.v1.Erasure/GetAccessExport";
  const std::string by_id = absl::StrCat(R"({"requestId": ")", access_id, R"("})");
  httplib::Result exported = post(download, by_id, token);
  for (int i = 0; i < 100 && exported && exported->status == 409; ++i) {  // 409: not ready yet
    absl::SleepFor(absl::Milliseconds(100));
    exported = post(download, by_id, token);
  }
  ASSERT_TRUE(exported);
  ASSERT_EQ(exported->status, 200) << exported->body;
  EXPECT_THAT(exported->get_header_value("Content-Disposition"), HasSubstr("attachment"));
  absl::StatusOr<json::Value> document =
      json::Parse(exported->body, {.max_size = 8 << 20, .max_depth = 32});
  ASSERT_THAT(document.status(), IsOk());
  EXPECT_EQ(document->Find("format")->string_value(), "crm.access-export.v1");
  EXPECT_EQ(document->Find("subject_id")->string_value(), someone);
  EXPECT_EQ(post(download, by_id, "")->status, 401);
  EXPECT_EQ(
      post(download, R"({"requestId": "4f0d5a7c-1b6e-4d9f-8a2b-3c4d5e6f7081"})", token)->status,
      404);
  EXPECT_EQ(error(post(download, R"({"requestId": 7})", token)), "INVALID_ARGUMENT request_id");

  // The OpenAPI document describes every method; the JWKS has identity's keys.
  httplib::Result openapi = https.Get("/openapi.json");
  ASSERT_TRUE(openapi);
  ASSERT_EQ(openapi->status, 200);
  absl::StatusOr<json::Value> spec =
      json::Parse(openapi->body, {.max_size = 8 << 20, .max_depth = 32});
  ASSERT_THAT(spec.status(), IsOk());
  EXPECT_EQ(spec->Find("openapi")->string_value(), "3.0.3");
  EXPECT_NE(spec->Find("paths")->Find(login), nullptr);
  EXPECT_NE(spec->Find("paths")->Find("/api/v1/crm.contacts.v1.Contacts/CreatePerson"), nullptr);
  EXPECT_EQ(spec->Find("paths")->Find("/api/v1/crm.audit.v1.AuditIngest/AppendEvents"), nullptr);
  EXPECT_EQ(spec->Find("paths")->Find("/api/v1/crm.mailing.v1.Mailing/Unsubscribe"), nullptr);
  EXPECT_EQ(spec->Find("paths")->Find("/api/v1/crm.contacts.v1.Contacts/GetMailingAddresses"),
            nullptr);
  EXPECT_NE(spec->Find("components")->Find("schemas")->Find("crm.identity.v1.LoginRequest"),
            nullptr);
  // Every endpoint it lists: bad JSON and a wrong type are 400 naming the
  // body, and without a token 401 (the few public ones answer for themselves,
  // never with a server error).
  const std::set<std::string> kPublic = {
      login, "/api/v1/crm.identity.v1.Identity/RefreshSession",
      "/api/v1/crm.identity.v1.Identity/GetSigningKeys",
      "/api/v1/crm.identity.v1.Identity/StartSubjectVerification",
      "/api/v1/crm.identity.v1.Identity/ConfirmSubjectVerification",
      // Anyone may check the audit log's signed checkpoints and proofs.
      "/api/v1/crm.audit.v1.Audit/GetCheckpoint", "/api/v1/crm.audit.v1.Audit/GetCheckpointKeys",
      "/api/v1/crm.audit.v1.Audit/GetConsistencyProof",
      "/api/v1/crm.audit.v1.Audit/GetInclusionProof"};
  int endpoints = 0;
  for (const auto& [path, unused] : spec->Find("paths")->object()) {
    if (!absl::StartsWith(path, "/api/")) continue;  // the GET routes
    SCOPED_TRACE(path);
    ++endpoints;
    for (const char* broken : {"{", R"({"no_such_field": true})", "[1]", "\"\\u0000\""}) {
      httplib::Result r = post(path, broken, token);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 400) << broken;
      EXPECT_EQ(error(r), "INVALID_ARGUMENT body") << broken;
    }
    httplib::Result anonymous = post(path, "{}", "");
    ASSERT_TRUE(anonymous);
    if (!kPublic.contains(path)) {
      EXPECT_EQ(anonymous->status, 401) << anonymous->body;
    }
    EXPECT_LT(anonymous->status, 500) << anonymous->body;
  }
  EXPECT_GT(endpoints, 90);
  httplib::Result jwks = https.Get("/.well-known/jwks.json");
  ASSERT_TRUE(jwks);
  ASSERT_EQ(jwks->status, 200) << jwks->body;
  absl::StatusOr<json::Value> keys = json::Parse(jwks->body);
  ASSERT_THAT(keys.status(), IsOk());
  ASSERT_FALSE(keys->Find("keys")->array().empty());
  EXPECT_EQ(keys->Find("keys")->array()[0].Find("crv")->string_value(), "Ed25519");

  // The access log names routes, never a password, a token or a body.
  const std::string log = st.gateway->Output();
  EXPECT_THAT(log, HasSubstr("api:crm.identity.v1.Identity.Login"));
  EXPECT_THAT(log, Not(HasSubstr(kAdminPassword)));
  EXPECT_THAT(log, Not(HasSubstr(token)));
}

// RFC 8058 one-click unsubscription through the gateway's /u/ link: the GET
// page changes nothing; the POST unsubscribes at once, and the next campaign
// does not reach the address.
TEST_F(ExampleShopTest, AOneClickUnsubscribeThroughTheGatewayStopsTheNextCampaign) {
  Stack& st = *g_stack;
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  ASSERT_TRUE(
      ok(st.Run({absl::StrCat(std::getenv("CRMTEST_SOURCE_DIR"), "/tools/platform-accounts")})));
  const std::string email = "olga.oneclick@customers.example";
  ASSERT_FALSE(st.SubscribedCustomer("offers", "offer", "Olga", email).empty());
  auto campaign_mail = [&] { return st.CampaignMailTo("offers", "offer", email); };
  std::vector<std::string> first = campaign_mail();
  ASSERT_THAT(first, ::testing::SizeIs(1));
  const std::string marker = "List-Unsubscribe: <https://crm.shop.example/u/";
  const size_t at = first[0].find(marker);
  ASSERT_NE(at, std::string::npos) << first[0];
  const std::string token =
      first[0].substr(at + marker.size(), first[0].find('>', at) - at - marker.size());
  ASSERT_FALSE(token.empty());

  std::unique_ptr<httplib::SSLClient> https = st.Https();
  const std::string path = absl::StrCat("/u/", token);
  // GET: a page with the button, in Polish when asked; nothing changes.
  httplib::Result page = https->Get(path.c_str(), {{"Accept-Language", "pl-PL,pl;q=0.9,en;q=0.5"}});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(page->body, HasSubstr("<html lang=\"pl\">"));
  EXPECT_THAT(page->body, HasSubstr("Wypisz mnie"));
  EXPECT_THAT(page->body, HasSubstr(R"(name="List-Unsubscribe" value="One-Click")"));
  EXPECT_THAT(page->body, Not(HasSubstr("<script")));
  EXPECT_THAT(campaign_mail(), ::testing::SizeIs(1)) << "a GET must not unsubscribe";

  // POST without One-Click, or with a forged token: refused.
  httplib::Result plain = https->Post(path.c_str(), "", "application/x-www-form-urlencoded");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 400);
  httplib::Result forged =
      https->Post(absl::StrCat(path, "x").c_str(), "List-Unsubscribe=One-Click",
                  "application/x-www-form-urlencoded");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 400);
  EXPECT_THAT(forged->body, HasSubstr("This link is not valid"));
  httplib::Result junk = https->Get("/u/%3Cscript%3E");
  ASSERT_TRUE(junk);
  EXPECT_EQ(junk->status, 400);
  EXPECT_THAT(junk->body, Not(HasSubstr("<script>")));

  // The one-click POST as a mail client sends it: no cookie, no login.
  httplib::Result done =
      https->Post(path.c_str(), "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, 200) << done->body;
  EXPECT_THAT(done->body, HasSubstr("You are unsubscribed"));
  EXPECT_THAT(done->body, HasSubstr("offers"));
  EXPECT_TRUE(done->get_header_value("Set-Cookie").empty());
  httplib::Result again =
      https->Post(path.c_str(), "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_THAT(again->body, HasSubstr("already"));
  EXPECT_THAT(campaign_mail(), ::testing::IsEmpty());

  // The token never reaches the gateway's log.
  EXPECT_THAT(st.gateway->Output(), Not(HasSubstr(token)));
}

// A data subject signs in on the portal's API with a code mailed to their
// address, then asks for a copy of their data, follows the request and
// downloads it; their token reaches nobody else's data and no staff method.
TEST_F(ExampleShopTest, ASubjectProvesTheirAddressWithAMailedCodeAndFetchesTheirOwnExport) {
  Stack& st = *g_stack;
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  ASSERT_TRUE(
      ok(st.Run({absl::StrCat(std::getenv("CRMTEST_SOURCE_DIR"), "/tools/platform-accounts")})));
  const std::string email = "sofia.self@customers.example";
  const std::string subject = CustomerEverywhere(st, "Sofiana", email, "+4930901823");
  const std::string other =
      CustomerEverywhere(st, "Ottokar", "otto.other@customers.example", "+4930901824");
  ASSERT_FALSE(subject.empty());
  ASSERT_FALSE(other.empty());
  std::unique_ptr<httplib::SSLClient> client = st.Https();
  auto post = [&](const std::string& method, const std::string& body,
                  const std::string& token = "") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", absl::StrCat("Bearer ", token));
    httplib::Result r =
        client->Post(absl::StrCat("/api/v1/", method).c_str(), headers, body, "application/json");
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string("no answer"));
  };
  auto field = [](const std::string& body, const std::string& name) {
    absl::StatusOr<json::Value> doc = json::Parse(body);
    if (!doc.ok()) return std::string();
    const json::Value* v = doc->Find(name);
    if (v == nullptr && doc->Find("error") != nullptr) v = doc->Find("error")->Find(name);
    return v == nullptr ? std::string() : v->string_value();
  };
  const std::string start = "crm.identity.v1.Identity/StartSubjectVerification";
  const std::string confirm = "crm.identity.v1.Identity/ConfirmSubjectVerification";

  // Bad input names the field.
  auto bad = post(start, R"({"email": "not an address"})");
  EXPECT_EQ(bad.first, 400) << bad.second;
  EXPECT_EQ(field(bad.second, "field"), "email");

  auto started = post(start, absl::StrCat(R"({"email": ")", email, R"("})"));
  ASSERT_EQ(started.first, 200) << started.second;
  const std::string verification = field(started.second, "verificationId");
  ASSERT_FALSE(verification.empty()) << started.second;
  const std::string code = st.MailedCode(email);
  ASSERT_EQ(code.size(), 6u) << "no code mailed";

  const std::string wrong_code = code == "000000" ? "000001" : "000000";
  auto wrong = post(confirm, absl::StrCat(R"({"verificationId": ")", verification,
                                          R"(", "code": ")", wrong_code, R"("})"));
  EXPECT_EQ(wrong.first, 400) << wrong.second;
  EXPECT_EQ(field(wrong.second, "field"), "code");
  EXPECT_THAT(wrong.second, HasSubstr("4 tries left"));
  auto malformed = post(
      confirm, absl::StrCat(R"({"verificationId": ")", verification, R"(", "code": "12ab56"})"));
  EXPECT_EQ(malformed.first, 400) << malformed.second;

  auto confirmed = post(confirm, absl::StrCat(R"({"verificationId": ")", verification,
                                              R"(", "code": ")", code, R"("})"));
  ASSERT_EQ(confirmed.first, 200) << confirmed.second;
  EXPECT_EQ(field(confirmed.second, "match"), "SUBJECT_MATCH_ONE");
  EXPECT_EQ(field(confirmed.second, "subjectId"), subject);
  const std::string token = field(confirmed.second, "accessToken");
  ASSERT_FALSE(token.empty());
  // Single use.
  EXPECT_EQ(post(confirm, absl::StrCat(R"({"verificationId": ")", verification, R"(", "code": ")",
                                       code, R"("})"))
                .first,
            404);

  // Only for themselves, and nothing of staff's.
  EXPECT_EQ(post("crm.erasure.v1.Erasure/SubmitAccess",
                 absl::StrCat(R"({"subjectId": ")", other, R"("})"), token)
                .first,
            403);
  EXPECT_EQ(post("crm.erasure.v1.Erasure/SubmitAccess",
                 absl::StrCat(R"({"email": ")", email, R"("})"), token)
                .first,
            403);
  EXPECT_EQ(post("crm.identity.v1.Identity/ListUsers", "{}", token).first, 403);
  EXPECT_EQ(post("crm.contacts.v1.Contacts/ListPersons", "{}", token).first, 403);
  EXPECT_EQ(post("crm.consent.v1.Consent/GetHistory",
                 absl::StrCat(R"({"subjectId": ")", other, R"("})"), token)
                .first,
            403);
  auto history = post("crm.consent.v1.Consent/GetHistory",
                      absl::StrCat(R"({"subjectId": ")", subject, R"("})"), token);
  EXPECT_EQ(history.first, 200) << history.second;
  EXPECT_THAT(history.second, HasSubstr("newsletter"));

  // Their own record, whole; corrections of name and phones, not of e-mails.
  auto person = post("crm.contacts.v1.Contacts/GetPerson",
                     absl::StrCat(R"({"subjectId": ")", subject, R"("})"), token);
  ASSERT_EQ(person.first, 200) << person.second;
  EXPECT_THAT(person.second, HasSubstr("Sofiana"));
  EXPECT_EQ(post("crm.contacts.v1.Contacts/GetPerson",
                 absl::StrCat(R"({"subjectId": ")", other, R"("})"), token)
                .first,
            403);
  auto corrected =
      post("crm.contacts.v1.Contacts/UpdatePerson",
           absl::StrCat(R"({"subjectId": ")", subject,
                        R"(", "person": {"familyName": "Corrected"}, "updateMask": "familyName"})"),
           token);
  EXPECT_EQ(corrected.first, 200) << corrected.second;
  EXPECT_THAT(corrected.second, HasSubstr("Corrected"));
  auto email_change =
      post("crm.contacts.v1.Contacts/UpdatePerson",
           absl::StrCat(
               R"({"subjectId": ")", subject,
               R"(", "person": {"emails": [{"address": "x@y.example"}]}, "updateMask": "emails"})"),
           token);
  EXPECT_EQ(email_change.first, 403) << email_change.second;
  EXPECT_EQ(field(email_change.second, "field"), "update_mask");

  // A consent given on the portal is theirs, with the connection as evidence.
  auto purposes = post("crm.consent.v1.Consent/ListPurposes", "{}", token);
  ASSERT_EQ(purposes.first, 200) << purposes.second;
  absl::StatusOr<json::Value> listed_purposes = json::Parse(purposes.second);
  ASSERT_THAT(listed_purposes.status(), IsOk());
  std::string notice;
  for (const json::Value& p : listed_purposes->Find("purposes")->array()) {
    if (p.Find("purposeId")->string_value() == "newsletter") {
      notice = p.Find("currentNoticeVersions")->Find("en")->string_value();
    }
  }
  ASSERT_FALSE(notice.empty()) << purposes.second;
  auto granted = post("crm.consent.v1.Consent/Grant",
                      absl::StrCat(R"({"statement": {"subjectId": ")", subject,
                                   R"(", "purposeId": "newsletter", "noticeVersion": ")", notice,
                                   R"(", "method": "METHOD_WEB_FORM", "source": "portal"}})"),
                      token);
  ASSERT_EQ(granted.first, 200) << granted.second;
  auto ledger = post("crm.consent.v1.Consent/GetHistory",
                     absl::StrCat(R"({"subjectId": ")", subject, R"("})"), token);
  ASSERT_EQ(ledger.first, 200) << ledger.second;
  absl::StatusOr<json::Value> entries = json::Parse(ledger.second);
  ASSERT_THAT(entries.status(), IsOk());
  const json::Value& last = entries->Find("entries")->array().back();
  EXPECT_EQ(last.Find("actor")->string_value(), "subject");
  ASSERT_NE(last.Find("hasEvidence"), nullptr) << ledger.second;
  EXPECT_TRUE(last.Find("hasEvidence")->bool_value());

  // Someone else's request is not theirs to see.
  const Outcome others = st.Crmctl(
      {"call", "erasure", "SubmitAccess", absl::StrCat(R"({"subjectId": ")", other, R"("})")});
  ASSERT_TRUE(ok(others)) << others.output;
  const std::string others_id = JsonString(others.output, "request_id");
  EXPECT_EQ(post("crm.erasure.v1.Erasure/GetErasure",
                 absl::StrCat(R"({"requestId": ")", others_id, R"("})"), token)
                .first,
            404);

  auto submitted = post("crm.erasure.v1.Erasure/SubmitAccess",
                        absl::StrCat(R"({"subjectId": ")", subject, R"("})"), token);
  ASSERT_EQ(submitted.first, 200) << submitted.second;
  absl::StatusOr<json::Value> doc = json::Parse(submitted.second);
  ASSERT_THAT(doc.status(), IsOk());
  const std::string request_id = doc->Find("request")->Find("requestId")->string_value();
  auto listed = post("crm.erasure.v1.Erasure/ListErasures", "{}", token);
  ASSERT_EQ(listed.first, 200) << listed.second;
  EXPECT_THAT(listed.second, HasSubstr(request_id));
  EXPECT_THAT(listed.second, Not(HasSubstr(other)));

  std::string state;
  for (int i = 0; i < 300 && state != "STATE_COMPLETED"; ++i) {
    auto got = post("crm.erasure.v1.Erasure/GetErasure",
                    absl::StrCat(R"({"requestId": ")", request_id, R"("})"), token);
    ASSERT_EQ(got.first, 200) << got.second;
    absl::StatusOr<json::Value> r = json::Parse(got.second);
    ASSERT_THAT(r.status(), IsOk());
    state = r->Find("request")->Find("state")->string_value();
    if (state != "STATE_COMPLETED") absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(state, "STATE_COMPLETED");
  auto exported = post("crm.erasure.v1.Erasure/GetAccessExport",
                       absl::StrCat(R"({"requestId": ")", request_id, R"("})"), token);
  ASSERT_EQ(exported.first, 200) << exported.second.substr(0, 300);
  EXPECT_THAT(exported.second, HasSubstr("Sofiana"));
  EXPECT_THAT(exported.second, Not(HasSubstr("Ottokar")));

  // A request staff opened for them is not theirs to cancel, and they do not
  // see who opened it.
  const Outcome staff_opened = st.Crmctl(
      {"call", "erasure", "SubmitAccess", absl::StrCat(R"({"subjectId": ")", subject, R"("})")});
  ASSERT_TRUE(ok(staff_opened)) << staff_opened.output;
  const std::string staff_request = JsonString(staff_opened.output, "request_id");
  auto seen_by_subject = post("crm.erasure.v1.Erasure/GetErasure",
                              absl::StrCat(R"({"requestId": ")", staff_request, R"("})"), token);
  ASSERT_EQ(seen_by_subject.first, 200) << seen_by_subject.second;
  EXPECT_THAT(seen_by_subject.second, Not(HasSubstr("requester")));
  auto cancel = post("crm.erasure.v1.Erasure/CancelErasure",
                     absl::StrCat(R"({"requestId": ")", staff_request, R"("})"), token);
  EXPECT_EQ(cancel.first, 403) << cancel.second;
  // A statement of theirs is dated now, on the web, from the portal.
  for (const char* forged :
       {R"("method": "METHOD_WEB_FORM", "source": "portal", "givenAt": "2020-01-01T00:00:00Z")",
        R"("method": "METHOD_PAPER", "source": "portal")",
        R"("method": "METHOD_WEB_FORM", "source": "shop")"}) {
    auto r = post("crm.consent.v1.Consent/Withdraw",
                  absl::StrCat(R"({"statement": {"subjectId": ")", subject,
                               R"(", "purposeId": "newsletter", )", forged, "}}"),
                  token);
    EXPECT_EQ(r.first, 400) << forged << " " << r.second;
  }
  // Another person's phone is refused without naming that person.
  auto taken =
      post("crm.contacts.v1.Contacts/UpdatePerson",
           absl::StrCat(
               R"({"subjectId": ")", subject,
               R"(", "person": {"phones": [{"number": "+4930901824"}]}, "updateMask": "phones"})"),
           token);
  EXPECT_EQ(taken.first, 409) << taken.second;
  EXPECT_THAT(taken.second, Not(HasSubstr(other)));

  // An address nobody has: the same answers, then no token.
  const std::string stranger = "nobody.here@customers.example";
  auto started_unknown = post(start, absl::StrCat(R"({"email": ")", stranger, R"("})"));
  ASSERT_EQ(started_unknown.first, 200) << started_unknown.second;
  const std::string unknown_code = st.MailedCode(stranger);
  ASSERT_EQ(unknown_code.size(), 6u);
  auto none = post(confirm, absl::StrCat(R"({"verificationId": ")",
                                         field(started_unknown.second, "verificationId"),
                                         R"(", "code": ")", unknown_code, R"("})"));
  ASSERT_EQ(none.first, 200) << none.second;
  EXPECT_EQ(field(none.second, "match"), "SUBJECT_MATCH_NONE");
  EXPECT_EQ(field(none.second, "accessToken"), "");

  // Per-address limit: three codes an hour.
  const std::string flooded = "flooded@customers.example";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(post(start, absl::StrCat(R"({"email": ")", flooded, R"("})")).first, 200) << i;
  }
  auto refused = post(start, absl::StrCat(R"({"email": ")", flooded, R"("})"));
  EXPECT_EQ(refused.first, 429) << refused.second;
  EXPECT_THAT(refused.second, HasSubstr("too many verification codes for this address"));

  // Only the gateway may ask identity directly.
  const Outcome direct = st.Crmctl({"call", "identity", "StartSubjectVerification",
                                    absl::StrCat(R"({"email": ")", email, R"("})")});
  EXPECT_FALSE(ok(direct));
  EXPECT_THAT(direct.output, HasSubstr("only for the gateway"));
  // No address, code or token in any log or Redis key.
  for (const char* service : {"identity", "gateway"}) {
    const std::string log = std::string(service) == "gateway"
                                ? st.gateway->Output()
                                : pki::ReadFile(st.dir.path() + "/identity.log").value_or("");
    EXPECT_THAT(log, Not(HasSubstr(email))) << service;
    EXPECT_THAT(log, Not(HasSubstr(token))) << service;
  }
  EXPECT_THAT(st.Traces({"sofia.self", "Sofiana"}), ::testing::IsEmpty());
}

// The gateway's per-client limit: over it, 429 with Retry-After before any
// service is called; GETs of pages do not count.
TEST_F(ExampleShopTest, TheGatewayLimitsRequestsPerClient) {
  Stack& st = *g_stack;
  ASSERT_THAT(st.StartGateway("", 3), IsOk());
  std::unique_ptr<httplib::SSLClient> https = st.Https();
  for (int i = 0; i < 3; ++i) {
    httplib::Result r =
        https->Post("/api/v1/crm.identity.v1.Identity/GetSigningKeys", "{}", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i;
  }
  httplib::Result limited =
      https->Post("/api/v1/crm.identity.v1.Identity/GetSigningKeys", "{}", "application/json");
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 429);
  EXPECT_THAT(limited->body, HasSubstr("too many requests from this address"));
  EXPECT_FALSE(limited->get_header_value("Retry-After").empty());
  httplib::Result page = https->Get("/healthz");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  ASSERT_THAT(st.StartGateway(""), IsOk());  // as the other tests expect it
}

}  // namespace
}  // namespace crm::system_test
