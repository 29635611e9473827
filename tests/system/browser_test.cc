// Browser tests (issue 9): the gateway's pages in a real Chromium (Debian's
// /usr/bin/chromium driven by playwright-core, tests/browser/*.mjs) against
// the whole suite as processes (stack.h), the gateway serving the pages from
// the source tree's services/gateway/static.
//
// Each test prepares data with the real crmctl and the example shop, runs one
// Node script with the gateway's URL, the test CA (the script makes Chromium
// trust it through an NSS database of its own: certificates are really
// verified), the administrator's credentials, the SMTP sink's mail folder and
// a folder for screenshots, and checks that the script exited 0; the script's
// output is printed either way. The script names the step that failed.
//
// Screenshots go to a temp dir, or with CRM_UPDATE_SCREENSHOTS=1 to the
// source tree's docs/screenshots (committed: what the pages look like).
#include <signal.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/testing/smtp_sink.h"
#include "libs/testing/status_matchers.h"
#include "tests/system/stack.h"

namespace crm::system_test {
namespace {

using ::crm::testing::IsOk;
using ::testing::HasSubstr;

constexpr absl::Duration kScriptBound = absl::Seconds(150);

Stack* g_stack = nullptr;

std::string SourceDir() {
  const char* dir = std::getenv("CRMTEST_SOURCE_DIR");
  return dir == nullptr ? "" : dir;
}

class BrowserTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::signal(SIGPIPE, SIG_IGN);
    CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Stack> stack,
                             Stack::Create({.static_dir = SourceDir() + "/services/gateway/static",
                                            .relay_audit = true}));
    ASSERT_TRUE(stack->first_setup.exit.exited_with(0)) << stack->first_setup.output;
    // Mailing's account (it calls consent) and erasure's (it calls mailing).
    const Outcome accounts = stack->RunPlatformAccounts();
    ASSERT_TRUE(accounts.exit.exited_with(0)) << accounts.output;
    g_stack = stack.release();
  }

  static void TearDownTestSuite() {
    if (g_stack == nullptr) return;
    EXPECT_THAT(g_stack->Shutdown(), IsOk());
    delete g_stack;
    g_stack = nullptr;
  }

  void SetUp() override { ASSERT_NE(g_stack, nullptr) << "the services did not start"; }

  // Runs tests/browser/`script` with node and `env` added to what every
  // script gets; the outcome, its output printed.
  static Outcome RunScript(const std::string& script, std::map<std::string, std::string> env) {
    Stack& st = *g_stack;
    const bool update = std::getenv("CRM_UPDATE_SCREENSHOTS") != nullptr &&
                        std::string(std::getenv("CRM_UPDATE_SCREENSHOTS")) == "1";
    env.insert({{"BROWSER_TEST_GATEWAY", absl::StrCat("https://127.0.0.1:", st.ports["gateway"])},
                {"BROWSER_TEST_CA_FILE", st.pki->ca_file()},
                {"BROWSER_TEST_ADMIN_USER", "admin"},
                {"BROWSER_TEST_ADMIN_PASSWORD", kAdminPassword},
                {"BROWSER_TEST_MAIL_DIR", st.sink->mail_dir()},
                {"BROWSER_TEST_SCREENSHOT_DIR",
                 update ? SourceDir() + "/docs/screenshots" : st.dir.path() + "/screenshots"},
                {"BROWSER_TEST_WORK_DIR", absl::StrCat(st.dir.path(), "/browser-", script)}});
    const Outcome run =
        st.Run({"/usr/bin/env", "node", absl::StrCat(SourceDir(), "/tests/browser/", script)},
               std::move(env), kScriptBound);
    std::cout << "---- tests/browser/" << script << " (" << run.exit << ") ----\n"
              << run.output << "---- end of " << script << " ----" << std::endl;
    return run;
  }
};

// An operator signs in, finds the example shop's customer, reads the
// activity report, erases the customer, follows the request to its end and
// reads the certificate; a forced password change, a lockout and an
// expiring grant as the console shows them.
TEST_F(BrowserTest, AnOperatorErasesTheShopsCustomerAndReadsTheCertificate) {
  Stack& st = *g_stack;
  const std::string email = "erin.browser@customers.example";
  const Outcome shop = st.RunExample(
      {"--given_name=Erin", "--family_name=Browser", absl::StrCat("--email=", email)});
  ASSERT_TRUE(shop.exit.exited_with(0)) << shop.output;

  // Another operator: a first password to change, a grant that ends soon.
  const std::string initial = "browser test: first password 7";
  const Outcome user = st.CrmctlWithInput(
      "user create jdoe --email jdoe@staff.example --name 'J. Doe' --json", initial, initial);
  ASSERT_TRUE(user.exit.exited_with(0)) << user.output;
  const std::string user_id = JsonString(user.output, "user_id");
  ASSERT_EQ(user_id.size(), 36u) << user.output;
  const Outcome grant = st.Crmctl(
      {"grant", "add", user_id, "sales", "--for", "48h", "--justification", "holiday cover"});
  ASSERT_TRUE(grant.exit.exited_with(0)) << grant.output;

  const Outcome run = RunScript("console.mjs", {{"BROWSER_TEST_CUSTOMER_EMAIL", email},
                                                {"BROWSER_TEST_OPERATOR_USER", "jdoe"},
                                                {"BROWSER_TEST_OPERATOR_PASSWORD", initial}});
  EXPECT_TRUE(run.exit.exited_with(0)) << run.exit;
  EXPECT_THAT(run.output, HasSubstr("console: all steps passed"));

  // What the browser did happened in the services: the customer is gone.
  const Outcome lookup = st.Crmctl(
      {"call", "contacts", "LookupPersons", absl::StrCat(R"({"email": ")", email, R"("})")});
  ASSERT_TRUE(lookup.exit.exited_with(0)) << lookup.output;
  EXPECT_THAT(lookup.output, ::testing::Not(HasSubstr("subject_id"))) << lookup.output;
}

// One-click unsubscription in the browser: the /u/ link of a real campaign
// mail, the button pressed, and the next campaign does not reach the address.
TEST_F(BrowserTest, AOneClickUnsubscribeInTheBrowserStopsTheNextCampaign) {
  Stack& st = *g_stack;
  const std::string email = "ursula.unsubscribe@customers.example";
  ASSERT_FALSE(st.SubscribedCustomer("deals", "deal", "Ursula", email).empty());
  auto campaign_mails = [&] { return st.CampaignMailTo("deals", "deal", email).size(); };
  ASSERT_EQ(campaign_mails(), 1u);

  const Outcome run = RunScript(
      "unsubscribe.mjs", {{"BROWSER_TEST_RECIPIENT", email}, {"BROWSER_TEST_LIST", "deals"}});
  EXPECT_TRUE(run.exit.exited_with(0)) << run.exit;
  EXPECT_THAT(run.output, HasSubstr("unsubscribe: all steps passed"));

  EXPECT_EQ(campaign_mails(), 0u) << "the next campaign still reached the address";
}

// A customer signs in to the privacy portal with the code mailed to them,
// corrects their family name, asks for a copy of their data, waits for it on
// the page and downloads it (tests/browser/portal.mjs).
TEST_F(BrowserTest, ASubjectGetsACopyOfTheirDataThroughThePortal) {
  Stack& st = *g_stack;
  const std::string email = "paula.portal@customers.example";
  const Outcome shop = st.RunExample(
      {"--given_name=Paulina", "--family_name=Portal", absl::StrCat("--email=", email)});
  ASSERT_TRUE(shop.exit.exited_with(0)) << shop.output;

  const Outcome run = RunScript("portal.mjs", {{"BROWSER_TEST_SUBJECT_EMAIL", email},
                                               {"BROWSER_TEST_SUBJECT_NAME", "Paulina"}});
  EXPECT_TRUE(run.exit.exited_with(0)) << run.exit;
  EXPECT_THAT(run.output, HasSubstr("portal: all steps passed"));

  // What the browser did happened in the services: the correction, and the
  // access request, completed.
  const Outcome lookup = st.Crmctl(
      {"call", "contacts", "LookupPersons", absl::StrCat(R"({"email": ")", email, R"("})")});
  EXPECT_THAT(lookup.output, HasSubstr("Corrected-Portal"));
  const Outcome requests = st.Crmctl({"call", "erasure", "ListErasures",
                                      R"({"kind": "KIND_ACCESS", "state": "STATE_COMPLETED"})"});
  EXPECT_THAT(requests.output, HasSubstr(JsonString(lookup.output, "subject_id")));
}

}  // namespace
}  // namespace crm::system_test
