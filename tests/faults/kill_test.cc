// Crashes under load (issue 12): the whole suite as processes (Stack), a
// mixed workload running (new persons and edits in contacts, consent grants
// and withdrawals, erasures, a campaign to 60 subscribers), and every service
// killed with SIGKILL in turn and started again. Afterwards:
//  - every acknowledged write is there: each person created, with at least
//    the edits acknowledged, each acknowledged consent change in the ledger;
//  - every audit event of a write arrives exactly once: per person, one
//    contacts.person.create, one contacts.person.update per applied edit
//    (the record's version says how many), one consent event per ledger
//    entry; unacknowledged writes may or may not have happened, but never
//    without their event or with two;
//  - every acknowledged erasure completes;
//  - the campaign reaches every subscriber exactly once (no mail lost or
//    sent twice, whenever mailing died).
// The long form (more rounds, more load) is the same binary with
// --gtest_repeat; see docs/reliability.md.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/audit/v1/audit.grpc.pb.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "libs/base/status_macros.h"
#include "libs/rpc/channel.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/unary_call.h"
#include "tests/faults/workload.h"
#include "tests/system/stack.h"

namespace crm::faults_test {
namespace {

namespace audit = ::crm::audit::v1;
namespace consent = ::crm::consent::v1;
namespace contacts = ::crm::contacts::v1;
namespace erasure = ::crm::erasure::v1;
namespace identity = ::crm::identity::v1;
namespace mailing = ::crm::mailing::v1;
using ::crm::system_test::Stack;
using ::crm::testing::IsOk;
using ::crm::testing::UnaryCall;
using ::testing::IsEmpty;

constexpr int kSubscribers = 60;

// What the workload was told.
struct Acknowledged {
  absl::Mutex mu;
  std::vector<std::string> persons ABSL_GUARDED_BY(mu);     // created
  std::map<std::string, int> edits ABSL_GUARDED_BY(mu);     // subject -> edits acknowledged
  std::map<std::string, int> consents ABSL_GUARDED_BY(mu);  // subject -> changes acknowledged
  std::map<std::string, std::string> erasures ABSL_GUARDED_BY(mu);  // request -> subject
  int failures ABSL_GUARDED_BY(mu) = 0;  // calls that got no answer or an error
};

// One round of the workload: a person, an edit, a grant and a withdrawal;
// every fifth person is then erased.
void WorkloadStep(Clients& c, int i, Acknowledged& ack) {
  absl::StatusOr<std::string> subject = CreatePerson(c, absl::StrCat("crash", i));
  if (!subject.ok()) {
    {
      absl::MutexLock l(&ack.mu);
      ++ack.failures;
    }
    absl::SleepFor(absl::Milliseconds(100));  // contacts is down: do not spin
    return;
  }
  {
    absl::MutexLock l(&ack.mu);
    ack.persons.push_back(*subject);
  }
  contacts::UpdatePersonRequest edit;
  edit.set_subject_id(*subject);
  edit.mutable_person()->set_job_title(absl::StrCat("title ", i));
  edit.mutable_update_mask()->add_paths("job_title");
  const bool edited =
      UnaryCall(*c.contacts, &contacts::Contacts::Stub::UpdatePerson, edit, c.token).ok();
  const bool granted = ConsentChange(c, *subject, true).ok();
  const bool withdrawn = ConsentChange(c, *subject, false).ok();
  {
    absl::MutexLock l(&ack.mu);
    ack.edits[*subject] += edited ? 1 : 0;
    ack.consents[*subject] += (granted ? 1 : 0) + (withdrawn ? 1 : 0);
    ack.failures += (edited ? 0 : 1) + (granted ? 0 : 1) + (withdrawn ? 0 : 1);
  }
  if (i % 5 != 0) return;
  erasure::SubmitErasureRequest request;
  request.set_subject_id(*subject);
  request.set_reason(erasure::ERASURE_REASON_SUBJECT_REQUEST);
  absl::StatusOr<erasure::SubmitErasureResponse> submitted =
      UnaryCall(*c.erasure, &erasure::Erasure::Stub::SubmitErasure, request, c.token);
  absl::MutexLock l(&ack.mu);
  if (submitted.ok()) {
    ack.erasures[submitted->request().request_id()] = *subject;
  } else {
    ++ack.failures;
  }
}

TEST(KillTest, EveryServiceKilledInTurnUnderMixedLoadLosesNoWriteAuditEventErasureOrMail) {
  // A crashed sender's claimed rows come back after send_lease (5 min by
  // default), and a round that could not reach consent or contacts puts its
  // batch back for send_retry (1 min): both shortened so the campaign
  // finishes within the test. 20 messages a second, and a sink that waits
  // 100 ms before its 250: the 60 take nine seconds, so mailing dies mid-way,
  // and it dies with a message taken by the sink but not yet answered.
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Stack> owned,
                           Stack::Create({.relay_audit = true,
                                          .service_env = {{"mailing",
                                                           {{"CRM_SEND_LEASE", "3s"},
                                                            {"CRM_SEND_RETRY", "2s"},
                                                            {"CRM_SEND_RATE", "20"}}}},
                                          .sink = {.reply_delay = absl::Milliseconds(100)}}));
  Stack& st = *owned;
  ASSERT_TRUE(st.RunPlatformAccounts().exit.exited_with(0));
  CRM_ASSERT_OK_AND_ASSIGN(Clients c, Connect(st));

  // The campaign's audience: a single opt-in list of kSubscribers.
  mailing::CreateListRequest list;
  list.mutable_list()->set_list_id("crash-news");
  list.mutable_list()->set_purpose_id("newsletter");
  list.mutable_list()->set_opt_in(mailing::OPT_IN_SINGLE);
  ASSERT_THAT(UnaryCall(*c.mailing, &mailing::Mailing::Stub::CreateList, list, c.token).status(),
              IsOk());
  mailing::PutTemplateRequest put;
  put.mutable_template_()->set_template_id("crash-news");
  put.mutable_template_()->set_subject("News for {{first_name}}");
  put.mutable_template_()->set_text_body("Hello {{first_name}}");
  ASSERT_THAT(UnaryCall(*c.mailing, &mailing::Mailing::Stub::PutTemplate, put, c.token).status(),
              IsOk());
  std::set<std::string> audience;
  for (int i = 0; i < kSubscribers; ++i) {
    CRM_ASSERT_OK_AND_ASSIGN(const std::string subject, CreatePerson(c, absl::StrCat("reader", i)));
    mailing::SubscribeRequest sub;
    sub.set_list_id("crash-news");
    sub.set_subject_id(subject);
    sub.set_source("shop");
    sub.set_notice_version(c.notice);
    ASSERT_THAT(UnaryCall(*c.mailing, &mailing::Mailing::Stub::Subscribe, sub, c.token).status(),
                IsOk());
    audience.insert(absl::StrCat("reader", i, "@customers.example"));
  }
  mailing::CreateCampaignRequest create;
  create.mutable_campaign()->set_name("Crash campaign");
  create.mutable_campaign()->set_list_id("crash-news");
  create.mutable_campaign()->set_template_id("crash-news");
  CRM_ASSERT_OK_AND_ASSIGN(
      mailing::CreateCampaignResponse campaign,
      UnaryCall(*c.mailing, &mailing::Mailing::Stub::CreateCampaign, create, c.token));
  mailing::ScheduleCampaignRequest schedule;
  schedule.set_campaign_id(campaign.campaign().campaign_id());

  // The workload, from two callers, while every service dies in turn.
  Acknowledged ack;
  std::atomic<bool> stop{false};
  std::atomic<int> next{1};
  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w) {
    workers.emplace_back([&] {
      absl::StatusOr<Clients> own = Connect(st);
      if (!own.ok()) return;
      while (!stop.load()) {
        WorkloadStep(*own, next.fetch_add(1), ack);
        absl::SleepFor(absl::Milliseconds(20));  // load, not saturation
      }
    });
  }
  absl::SleepFor(absl::Seconds(1));
  // Mailing dies first, with the campaign under way.
  ASSERT_THAT(
      UnaryCall(*c.mailing, &mailing::Mailing::Stub::ScheduleCampaign, schedule, c.token).status(),
      IsOk());
  absl::SleepFor(absl::Seconds(1));
  auto delivered = [&] {
    int n = 0;
    for (const crm::testing::SinkMessage& m :
         st.sink->Messages().value_or(std::vector<crm::testing::SinkMessage>{})) {
      for (const std::string& r : m.recipients) n += audience.contains(r) ? 1 : 0;
    }
    return n;
  };
  // How many messages the sink has stored: a file appears 100 ms before the
  // sink answers 250, so killing mailing the moment one appears lands in the
  // window a crash would turn into a duplicate: the relay has the message,
  // mailing has not heard so.
  auto stored = [&] {
    std::error_code ec;
    int n = 0;
    for (std::filesystem::directory_iterator it(st.sink->mail_dir(), ec), end; !ec && it != end;
         it.increment(ec)) {
      n += it->path().extension() == ".eml" ? 1 : 0;
    }
    return n;
  };
  for (const char* service : {"mailing", "contacts", "consent", "audit", "erasure", "identity"}) {
    if (std::string(service) == "mailing") {
      const int seen = stored();
      for (absl::Time end = absl::Now() + absl::Seconds(10); stored() == seen;) {
        ASSERT_LT(absl::Now(), end) << "no message reached the sink in 10 s";
        // Not a busy spin: on two cores it would starve the stack it watches.
        // A millisecond is well inside the sink's 100 ms before its 250.
        absl::SleepFor(absl::Milliseconds(1));
      }
      ASSERT_THAT(st.Kill(service), IsOk()) << service;
      const int before = delivered();
      EXPECT_LT(before, kSubscribers) << "the campaign was over before mailing died";
      std::cerr << "mailing killed after " << before << " of " << kSubscribers << " messages\n";
    } else {
      ASSERT_THAT(st.Kill(service), IsOk()) << service;
    }
    absl::SleepFor(absl::Milliseconds(500));
    ASSERT_THAT(st.Launch(service), IsOk()) << service;
    absl::SleepFor(absl::Seconds(1));
  }
  stop = true;
  for (std::thread& t : workers) t.join();
  const absl::Time killed = absl::Now();

  absl::MutexLock l(&ack.mu);
  ASSERT_GT(ack.persons.size(), 10u) << "the workload hardly ran";
  EXPECT_GT(ack.failures, 0) << "no call failed: were the services really killed under load?";
  std::set<std::string> erased;
  for (const auto& [request, subject] : ack.erasures) erased.insert(subject);
  std::cerr << "workload: " << ack.persons.size() << " persons, " << ack.erasures.size()
            << " erasures acknowledged; " << ack.failures << " calls failed\n";

  // Every acknowledged erasure completes.
  std::vector<std::string> wrong;
  for (const auto& [request_id, subject] : ack.erasures) {
    erasure::GetErasureRequest get;
    get.set_request_id(request_id);
    erasure::State state = erasure::STATE_UNSPECIFIED;
    for (absl::Time end = absl::Now() + absl::Seconds(60); absl::Now() < end;
         absl::SleepFor(absl::Milliseconds(200))) {
      absl::StatusOr<erasure::GetErasureResponse> r =
          UnaryCall(*c.erasure, &erasure::Erasure::Stub::GetErasure, get, c.token);
      if (r.ok()) state = r->request().state();
      if (state == erasure::STATE_COMPLETED || state == erasure::STATE_COMPLETED_WITH_RETENTION) {
        break;
      }
    }
    if (state != erasure::STATE_COMPLETED && state != erasure::STATE_COMPLETED_WITH_RETENTION) {
      wrong.push_back(
          absl::StrCat("erasure ", request_id, " ended in ", erasure::State_Name(state)));
    }
  }

  // Every acknowledged write is there, and its audit events arrive once.
  for (const std::string& subject : ack.persons) {
    if (erased.contains(subject)) continue;
    contacts::GetPersonRequest get;
    get.set_subject_id(subject);
    absl::StatusOr<contacts::GetPersonResponse> person =
        UnaryCall(*c.contacts, &contacts::Contacts::Stub::GetPerson, get, c.token);
    if (!person.ok()) {
      wrong.push_back(absl::StrCat("person ", subject, ": ", person.status().ToString()));
      continue;
    }
    const int applied_edits = static_cast<int>(person->person().version()) - 1;
    if (applied_edits < ack.edits[subject]) {
      wrong.push_back(absl::StrCat("person ", subject, ": ", ack.edits[subject],
                                   " edits acknowledged, ", applied_edits, " applied"));
    }
    consent::GetHistoryRequest history_request;
    history_request.set_subject_id(subject);
    absl::StatusOr<consent::GetHistoryResponse> history =
        UnaryCall(*c.consent, &consent::Consent::Stub::GetHistory, history_request, c.token);
    if (!history.ok() || history->entries_size() < ack.consents[subject]) {
      wrong.push_back(absl::StrCat("consent of ", subject, ": ", ack.consents[subject],
                                   " changes acknowledged, ",
                                   history.ok() ? history->entries_size() : -1, " in the ledger"));
      continue;
    }
    const std::vector<std::pair<std::string, int>> expected = {
        {"contacts.person.create", 1},
        {"contacts.person.update", applied_edits},
        {"consent.grant", static_cast<int>((history->entries_size() + 1) / 2)},
        {"consent.withdraw", static_cast<int>(history->entries_size() / 2)}};
    for (const auto& [action, want] : expected) {
      // The outboxes relay on their own schedule: wait for a missing event,
      // never for a duplicate to go away.
      absl::StatusOr<int> got = AuditCount(c, subject, action);
      for (absl::Time end = absl::Now() + absl::Seconds(30);
           got.ok() && *got < want && absl::Now() < end; absl::SleepFor(absl::Milliseconds(200))) {
        got = AuditCount(c, subject, action);
      }
      if (!got.ok() || *got != want) {
        wrong.push_back(absl::StrCat(action, " of ", subject, ": ",
                                     got.ok() ? absl::StrCat(*got) : got.status().ToString(),
                                     " events for ", want, " writes"));
      }
    }
  }

  std::cerr << "writes and erasures checked in " << absl::Now() - killed << "\n";

  // The campaign finishes and reaches every subscriber exactly once.
  mailing::CampaignRequest get_campaign;
  get_campaign.set_campaign_id(campaign.campaign().campaign_id());
  mailing::CampaignState campaign_state = mailing::CAMPAIGN_STATE_UNSPECIFIED;
  for (absl::Time end = absl::Now() + absl::Seconds(60); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(200))) {
    absl::StatusOr<mailing::CampaignResponse> r =
        UnaryCall(*c.mailing, &mailing::Mailing::Stub::GetCampaign, get_campaign, c.token);
    if (r.ok()) campaign_state = r->campaign().state();
    if (campaign_state == mailing::CAMPAIGN_STATE_DONE) break;
  }
  EXPECT_EQ(campaign_state, mailing::CAMPAIGN_STATE_DONE);
  // The message the kill caught between its hand-off and the relay's 250
  // (and those of its round the relay had answered, recorded at the round's
  // end): the restarted mailing counted them sent instead of sending them
  // again.
  EXPECT_GE(Metric(st, "mailing", "crm_mailing_messages_total{outcome=\"sent_unconfirmed\"}"), 1);
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> mail, st.sink->Messages());
  std::map<std::string, int> received;
  for (const crm::testing::SinkMessage& m : mail) {
    for (const std::string& r : m.recipients) {
      if (audience.contains(r)) ++received[r];
    }
  }
  for (const std::string& r : audience) {
    if (received[r] != 1) wrong.push_back(absl::StrCat(r, " received ", received[r], " messages"));
  }

  std::cerr << "campaign checked after " << absl::Now() - killed << "\n";
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");
  EXPECT_THAT(st.Shutdown(), IsOk());
}

}  // namespace
}  // namespace crm::faults_test
