// Personal data stays where the design puts it (issue 12): after a scenario
// that passes distinctive personal values through every service (a campaign,
// a customer with every kind of field, consent, staff accounts, guessed
// logins, the privacy portal, hostile input carrying personal values, an
// access request and an erasure), none of them is in any service's or the
// gateway's log, in Redis, or in clear in any table of any database
// (Stack::Traces reads every row). Controls show that each place was read
// and that the values really went through the system.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/json/json.h"
#include "libs/rpc/channel.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/unary_call.h"
#include "tests/system/stack.h"

namespace crm::security_test {
namespace {

using ::crm::system_test::JsonString;
using ::crm::system_test::Outcome;
using ::crm::system_test::Stack;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr char kNewsletterName[] = "Quillonia";
constexpr char kNewsletterEmail[] = "quillonia.v7@customers.example";
constexpr char kStaffPassword[] = "personal data scan: nine amber owls";

bool Ok(const Outcome& o) { return o.exit.exited_with(0); }

TEST(PersonalDataTest, AfterTheWholeScenarioNoPersonalValueIsInALogInRedisOrInClearInADatabase) {
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Stack> owned, Stack::Create({.relay_audit = true}));
  Stack& st = *owned;
  ASSERT_TRUE(Ok(st.RunPlatformAccounts()));

  // A newsletter customer, mailed a campaign that greets them by name.
  const std::string newsletter =
      st.SubscribedCustomer("pii-news", "pii-welcome", kNewsletterName, kNewsletterEmail);
  ASSERT_FALSE(newsletter.empty());
  const std::vector<std::string> mails =
      st.CampaignMailTo("pii-news", "pii-welcome", kNewsletterEmail);
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_THAT(mails[0], HasSubstr(kNewsletterName));  // the value went through mailing

  // A customer with every kind of field, who objects to marketing.
  const Outcome created = st.Crmctl(
      {"call", "contacts", "CreatePerson",
       R"({"person": {"givenName": "Ottoline", "familyName": "Brackenridge", )"
       R"("emails": [{"address": "ottoline.brackenridge@customers.example", "primary": true}], )"
       R"("phones": [{"number": "+44 20 7946 0958"}], )"
       R"("addresses": [{"label": "home", "streetLines": ["17 Wraxall Mews"], )"
       R"("postalCode": "GL20 5AB", "city": "Tewkesbury", "countryCode": "GB"}], )"
       R"("jobTitle": "Lighthouse keeper", "notes": "Allergic to walnuts", "notesSensitive": true, )"
       R"("registration": {"channel": "web"}}})"});
  ASSERT_TRUE(Ok(created)) << created.output;
  const std::string ottoline = JsonString(created.output, "subject_id");
  ASSERT_FALSE(ottoline.empty());
  ASSERT_TRUE(Ok(st.Crmctl(
      {"call", "consent", "Object",
       absl::StrCat(
           R"({"statement": {"subjectId": ")", ottoline,
           R"(", "purposeId": "newsletter", "method": "METHOD_WEB_FORM", "source": "shop"}})")})));

  // A member of staff, and guessed logins: a customer's address as a user
  // name, the staff member's name with wrong passwords.
  ASSERT_TRUE(Ok(
      st.Crmctl({"call", "identity", "CreateUser",
                 absl::StrCat(R"({"username": "staff.pdx", "displayName": "Perpetua Xylander", )",
                              R"("email": "perpetua.xylander@staff.example", "initialPassword": ")",
                              kStaffPassword, R"(", "mustChangePassword": false})")})));
  {
    rpc::ChannelConfig config;
    config.target = st.Addr("identity");
    config.tls = st.pki->Files("operator");
    config.expected_server = "identity";
    CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel, rpc::MakeChannel(config));
    auto stub = identity::v1::Identity::NewStub(channel);
    for (const std::string& username : {std::string(kNewsletterEmail), std::string("staff.pdx"),
                                        std::string("Perpetua Xylander")}) {
      identity::v1::LoginRequest login;
      login.set_username(username);
      login.set_password("Quillonia's birthday is 1990-04-01");
      EXPECT_FALSE(testing::UnaryCall(*stub, &identity::v1::Identity::Stub::Login, login).ok());
    }
  }

  // The newsletter customer on the privacy portal: a mailed code, their own record.
  std::unique_ptr<httplib::SSLClient> client = st.Https();
  auto post = [&](const std::string& method, const std::string& body, const std::string& token) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", absl::StrCat("Bearer ", token));
    httplib::Result r =
        client->Post(absl::StrCat("/api/v1/", method).c_str(), headers, body, "application/json");
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string("no answer"));
  };
  auto started = post("crm.identity.v1.Identity/StartSubjectVerification",
                      absl::StrCat(R"({"email": ")", kNewsletterEmail, R"("})"), "");
  ASSERT_EQ(started.first, 200) << started.second;
  CRM_ASSERT_OK_AND_ASSIGN(json::Value start_reply, json::Parse(started.second));
  ASSERT_NE(start_reply.Find("verificationId"), nullptr) << started.second;
  const std::string code = st.MailedCode(kNewsletterEmail);
  ASSERT_EQ(code.size(), 6u);
  auto confirmed = post(
      "crm.identity.v1.Identity/ConfirmSubjectVerification",
      absl::StrCat(R"({"verificationId": ")", start_reply.Find("verificationId")->string_value(),
                   R"(", "code": ")", code, R"("})"),
      "");
  ASSERT_EQ(confirmed.first, 200) << confirmed.second;
  CRM_ASSERT_OK_AND_ASSIGN(json::Value confirm_reply, json::Parse(confirmed.second));
  ASSERT_NE(confirm_reply.Find("accessToken"), nullptr) << confirmed.second;
  const std::string portal_token = confirm_reply.Find("accessToken")->string_value();
  auto own = post("crm.contacts.v1.Contacts/GetPerson",
                  absl::StrCat(R"({"subjectId": ")", newsletter, R"("})"), portal_token);
  EXPECT_EQ(own.first, 200) << own.second;
  EXPECT_THAT(own.second, HasSubstr(kNewsletterName));

  // Hostile input carrying personal values: refused, naming the field, not echoing the value.
  auto hostile =
      post("crm.identity.v1.Identity/StartSubjectVerification",
           R"({"email": "Quillonia Brackenridge <quillonia\r\nBcc: x@evil.example>"})", "");
  EXPECT_EQ(hostile.first, 400) << hostile.second;
  EXPECT_THAT(hostile.second, Not(HasSubstr("Brackenridge")));
  const Outcome bad_phone = st.Crmctl(
      {"call", "contacts", "CreatePerson",
       R"({"person": {"givenName": "Ottoline", "phones": [{"number": "Xylander 0958 <script>"}], )"
       R"("registration": {"channel": "web"}}})"});
  EXPECT_FALSE(Ok(bad_phone));
  EXPECT_THAT(bad_phone.output, HasSubstr("phones"));
  EXPECT_THAT(bad_phone.output, Not(HasSubstr("Xylander")));

  // An access request for one, an erasure of the other.
  ASSERT_TRUE(Ok(st.Crmctl({"call", "erasure", "SubmitAccess",
                            absl::StrCat(R"({"subjectId": ")", newsletter, R"("})")})));
  const Outcome erasure =
      st.Crmctl({"call", "erasure", "SubmitErasure",
                 absl::StrCat(R"({"subjectId": ")", ottoline,
                              R"(", "reason": "ERASURE_REASON_SUBJECT_REQUEST"})")});
  ASSERT_TRUE(Ok(erasure)) << erasure.output;
  const std::string request_id = JsonString(erasure.output, "request_id");
  const std::string state =
      st.AwaitErasure(request_id, {"STATE_COMPLETED", "STATE_COMPLETED_WITH_RETENTION"});
  ASSERT_THAT(state, HasSubstr("STATE_COMPLETED"));

  // Controls: every kind of place is read (these are stored by design).
  const std::vector<std::string> controls = st.Traces({"newsletter", "crm:", "\"svc\""});
  EXPECT_THAT(controls, Contains(StartsWith("redis ")));
  EXPECT_THAT(controls, Contains(StartsWith("log ")));
  EXPECT_THAT(controls, Contains(HasSubstr(".purposes")));

  // Phones as typed, in E.164 and the local part; the address, notes, job.
  const std::vector<std::string> traces = st.Traces(
      {kNewsletterName, "quillonia.v7", "Ottoline", "Brackenridge", "ottoline.brackenridge",
       "7946 0958", "442079460958", "2079460958", "Wraxall", "Tewkesbury", "GL20 5AB",
       "Lighthouse keeper", "walnuts", "Perpetua", "Xylander", "perpetua.xylander"});
  EXPECT_THAT(traces, IsEmpty()) << absl::StrJoin(traces, "\n");

  EXPECT_THAT(st.Shutdown(), testing::IsOk());
}

}  // namespace
}  // namespace crm::security_test
