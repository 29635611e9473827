#include "tests/faults/workload.h"

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "libs/base/status_macros.h"
#include "libs/rpc/channel.h"
#include "libs/testing/unary_call.h"

namespace crm::faults_test {

namespace audit = ::crm::audit::v1;
namespace consent = ::crm::consent::v1;
namespace contacts = ::crm::contacts::v1;
namespace erasure = ::crm::erasure::v1;
namespace identity = ::crm::identity::v1;
namespace mailing = ::crm::mailing::v1;
using ::crm::system_test::Stack;
using ::crm::testing::UnaryCall;

absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelTo(Stack& st, const std::string& service) {
  rpc::ChannelConfig config;
  config.target = st.Addr(service);
  config.tls = st.pki->Files("operator");
  config.expected_server = service;
  config.max_attempts = 1;
  config.max_reconnect_backoff = absl::Milliseconds(500);  // notice a restart at once
  return rpc::MakeChannel(config);
}

absl::StatusOr<Clients> Connect(Stack& st) {
  Clients c;
  CRM_ASSIGN_OR_RETURN(auto ch, ChannelTo(st, "identity"));
  c.identity = identity::Identity::NewStub(ch);
  CRM_ASSIGN_OR_RETURN(ch, ChannelTo(st, "contacts"));
  c.contacts = contacts::Contacts::NewStub(ch);
  CRM_ASSIGN_OR_RETURN(ch, ChannelTo(st, "consent"));
  c.consent = consent::Consent::NewStub(ch);
  CRM_ASSIGN_OR_RETURN(ch, ChannelTo(st, "mailing"));
  c.mailing = mailing::Mailing::NewStub(ch);
  CRM_ASSIGN_OR_RETURN(ch, ChannelTo(st, "erasure"));
  c.erasure = erasure::Erasure::NewStub(ch);
  CRM_ASSIGN_OR_RETURN(ch, ChannelTo(st, "audit"));
  c.audit = audit::Audit::NewStub(ch);
  identity::LoginRequest login;
  login.set_username("admin");
  login.set_password(system_test::kAdminPassword);
  CRM_ASSIGN_OR_RETURN(identity::LoginResponse session,
                       UnaryCall(*c.identity, &identity::Identity::Stub::Login, login));
  c.token = session.tokens().access_token();
  CRM_ASSIGN_OR_RETURN(consent::ListPurposesResponse purposes,
                       UnaryCall(*c.consent, &consent::Consent::Stub::ListPurposes,
                                 consent::ListPurposesRequest(), c.token));
  for (const consent::Purpose& p : purposes.purposes()) {
    if (p.purpose_id() == "newsletter") c.notice = p.current_notice_versions().at("en");
  }
  if (c.notice.empty()) return absl::FailedPreconditionError("no newsletter notice");
  return c;
}

absl::StatusOr<std::string> CreatePerson(Clients& c, const std::string& name) {
  contacts::CreatePersonRequest request;
  contacts::Person* p = request.mutable_person();
  p->set_given_name(name);
  p->set_family_name("Crash");
  contacts::EmailAddress* e = p->add_emails();
  e->set_address(absl::StrCat(name, "@customers.example"));
  e->set_primary(true);
  p->mutable_registration()->set_channel("web");
  CRM_ASSIGN_OR_RETURN(
      contacts::CreatePersonResponse r,
      UnaryCall(*c.contacts, &contacts::Contacts::Stub::CreatePerson, request, c.token));
  return r.person().subject_id();
}

absl::Status ConsentChange(Clients& c, const std::string& subject, bool grant) {
  consent::Statement s;
  s.set_subject_id(subject);
  s.set_purpose_id("newsletter");
  s.set_method(consent::METHOD_WEB_FORM);
  s.set_source("shop");
  if (grant) {
    consent::GrantRequest r;
    s.set_notice_version(c.notice);
    *r.mutable_statement() = s;
    return UnaryCall(*c.consent, &consent::Consent::Stub::Grant, r, c.token).status();
  }
  consent::WithdrawRequest r;
  *r.mutable_statement() = s;
  return UnaryCall(*c.consent, &consent::Consent::Stub::Withdraw, r, c.token).status();
}

// Audit events of `action` about `subject`.
absl::StatusOr<int> AuditCount(Clients& c, const std::string& subject, const std::string& action) {
  audit::QueryEventsRequest q;
  q.set_subject_id(subject);
  q.set_action(action);
  q.mutable_page()->set_page_size(1000);
  CRM_ASSIGN_OR_RETURN(audit::QueryEventsResponse r,
                       UnaryCall(*c.audit, &audit::Audit::Stub::QueryEvents, q, c.token));
  return r.entries_size();
}

double Metric(system_test::Stack& st, const std::string& service, const std::string& metric) {
  const std::string listen = st.launched[service].env["CRM_METRICS_LISTEN"];
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port)) return -1;
  httplib::Client client("127.0.0.1", port);
  httplib::Result r = client.Get("/metrics");
  if (!r || r->status != 200) return -1;
  for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
    if (!absl::StartsWith(line, metric)) continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space != absl::string_view::npos && absl::SimpleAtod(line.substr(space + 1), &v)) return v;
  }
  return -1;
}

}  // namespace crm::faults_test
