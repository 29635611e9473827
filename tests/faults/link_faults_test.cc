// Links failing between the suite's processes (issue 12), with a TcpProxy
// (libs/testing/tcp_proxy.h) on the link and the whole suite as processes:
//  - a network partition between the erasure orchestrator and mailing: the
//    request waits (neither completed nor given up) and completes once the
//    partition heals;
//  - the SMTP relay down, then answering without STARTTLS: the campaign's
//    message waits, then fails as refused, and nothing is sent in clear.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/testing/smtp_sink.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/tcp_proxy.h"
#include "tests/system/stack.h"

namespace crm::faults_test {
namespace {

using ::crm::system_test::JsonString;
using ::crm::system_test::Outcome;
using ::crm::system_test::Stack;
using ::crm::testing::IsOk;
using ::crm::testing::SmtpSink;
using ::crm::testing::TcpProxy;
using ::testing::HasSubstr;
using ::testing::Not;

bool Ok(const Outcome& o) { return o.exit.exited_with(0); }

// `service` restarted with `changes` to its settings.
absl::Status Relaunch(Stack& st, const std::string& service,
                      const std::map<std::string, std::string>& changes) {
  for (const auto& [name, value] : changes) st.launched[service].env[name] = value;
  if (absl::Status s = st.Kill(service); !s.ok()) return s;
  return st.Launch(service);
}

// The erasure's state (e.g. "STATE_ERASING") as crmctl prints it.
std::string ErasureState(Stack& st, const std::string& request_id) {
  const std::string got = st.Crmctl({"call", "erasure", "GetErasure",
                                     absl::StrCat(R"({"requestId": ")", request_id, R"("})")})
                              .output;
  return JsonString(got, "state");
}

TEST(LinkFaultsTest, AnErasureWaitsOutAPartitionFromMailingAndCompletesWhenItHeals) {
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Stack> owned, Stack::Create());
  Stack& st = *owned;
  ASSERT_TRUE(Ok(st.RunPlatformAccounts()));
  const std::string subject =
      st.SubscribedCustomer("part-news", "part-welcome", "Partita", "partita@customers.example");
  ASSERT_FALSE(subject.empty());

  // The orchestrator reaches mailing only through the proxy.
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TcpProxy> proxy, TcpProxy::Start(st.ports["mailing"]));
  const std::string through = absl::StrCat("127.0.0.1:", proxy->port());
  const std::string targets = absl::StrReplaceAll(st.launched["erasure"].env["CRM_TARGETS"],
                                                  {{st.Addr("mailing"), through}});
  ASSERT_NE(targets, st.launched["erasure"].env["CRM_TARGETS"]);
  ASSERT_THAT(Relaunch(st, "erasure", {{"CRM_TARGETS", targets}, {"CRM_MAILING_ADDR", through}}),
              IsOk());

  proxy->SetMode(TcpProxy::Mode::kDrop);
  const Outcome submitted =
      st.Crmctl({"call", "erasure", "SubmitErasure",
                 absl::StrCat(R"({"subjectId": ")", subject,
                              R"(", "reason": "ERASURE_REASON_SUBJECT_REQUEST"})")});
  ASSERT_TRUE(Ok(submitted)) << submitted.output;
  const std::string request_id = JsonString(submitted.output, "request_id");

  // Partitioned for several of the orchestrator's call deadlines (2 s): it
  // keeps waiting, and neither finishes nor gives up.
  std::string state;
  for (absl::Time end = absl::Now() + absl::Seconds(8); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(500))) {
    state = ErasureState(st, request_id);
    ASSERT_THAT(state, Not(HasSubstr("COMPLETED")));
    ASSERT_NE(state, "STATE_NEEDS_ATTENTION");
    ASSERT_NE(state, "STATE_CANCELLED");
  }
  EXPECT_GT(proxy->accepted(), 0) << "the orchestrator never tried mailing";

  proxy->SetMode(TcpProxy::Mode::kForward);
  state = JsonString(
      st.AwaitErasure(request_id, {"STATE_COMPLETED", "STATE_COMPLETED_WITH_RETENTION"}), "state");
  EXPECT_THAT(state, HasSubstr("STATE_COMPLETED"));
  EXPECT_THAT(st.Shutdown(), IsOk());
}

TEST(LinkFaultsTest, MailWaitsForADownRelayThenFailsRatherThanGoOutInClear) {
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Stack> owned, Stack::Create());
  Stack& st = *owned;
  ASSERT_TRUE(Ok(st.RunPlatformAccounts()));
  const std::string email = "clearly.not@customers.example";
  ASSERT_FALSE(st.SubscribedCustomer("relay-news", "relay-welcome", "Relayna", email).empty());

  // The relay is down: every connection is reset.
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TcpProxy> proxy, TcpProxy::Start(st.sink->port()));
  proxy->SetMode(TcpProxy::Mode::kRefuse);
  ASSERT_THAT(Relaunch(st, "mailing",
                       {{"CRM_SMTP_PORT", absl::StrCat(proxy->port())}, {"CRM_SEND_RETRY", "1s"}}),
              IsOk());
  const Outcome created = st.Crmctl(
      {"call", "mailing", "CreateCampaign",
       R"({"campaign": {"name": "Relay down", "listId": "relay-news", "templateId": "relay-welcome"}})"});
  ASSERT_TRUE(Ok(created)) << created.output;
  const std::string campaign =
      absl::StrCat(R"({"campaignId": ")", JsonString(created.output, "campaign_id"), R"("})");
  ASSERT_TRUE(Ok(st.Crmctl({"call", "mailing", "ScheduleCampaign", campaign})));

  // It waits: tried (and retried), not sent, not failed.
  for (absl::Time end = absl::Now() + absl::Seconds(30); proxy->accepted() < 2 && absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(200))) {
  }
  EXPECT_GE(proxy->accepted(), 2) << "mailing did not retry the relay";
  std::string got = st.Crmctl({"call", "mailing", "GetCampaign", campaign}).output;
  EXPECT_THAT(got, Not(HasSubstr("CAMPAIGN_STATE_DONE"))) << got;
  EXPECT_THAT(got, Not(HasSubstr(R"("failed")"))) << got;

  // Back, but offering no STARTTLS: the message fails; nothing in clear.
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SmtpSink> plain,
                           SmtpSink::Start({.tls = crm::testing::SmtpSinkOptions::Tls::kNone}));
  proxy->SetUpstream(plain->port());
  proxy->SetMode(TcpProxy::Mode::kForward);
  for (absl::Time end = absl::Now() + absl::Seconds(60); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(250))) {
    got = st.Crmctl({"call", "mailing", "GetCampaign", campaign}).output;
    if (absl::StrContains(got, "CAMPAIGN_STATE_DONE")) break;
  }
  EXPECT_THAT(got, HasSubstr("CAMPAIGN_STATE_DONE")) << got;
  EXPECT_THAT(got, HasSubstr(R"("failed": "1")")) << got;
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> in_clear, plain->Messages());
  EXPECT_TRUE(in_clear.empty()) << in_clear.size() << " messages went out in clear";
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<crm::testing::SinkMessage> over_tls, st.sink->Messages());
  for (const auto& m : over_tls) EXPECT_NE(m.recipients, std::vector<std::string>{email});
  EXPECT_THAT(st.Shutdown(), IsOk());
}

}  // namespace
}  // namespace crm::faults_test
