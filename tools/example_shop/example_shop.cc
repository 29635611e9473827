// crm-example-shop: the integration guide (docs/integration.md) as a program.
// A shop, authenticated as the system "shop" by its client certificate
// (spiffe://crm.local/shop), does what it would do at checkout:
//
//   1. Identity/IssueServiceToken: an access token bound to its certificate;
//   2. Contacts/CreatePerson: registers the customer (ALREADY_EXISTS: the
//      e-mail address is registered already; use that subject);
//   3. Consent/ListPurposes, then Grant: records the newsletter consent the
//      customer gave, citing the notice version they were shown;
//   4. Consent/Check right before sending the newsletter;
//   5. Consent/Withdraw: the customer unsubscribed (a link in the e-mail);
//   6. Consent/Check again: a withdrawal counts at once.
//
// It prints ids and outcomes only, never the customer's name or address.
// Exit codes: 0 done; 1 a call failed (the step and the gRPC status are
// printed); 2 a bad setting (named). Settings are flags or CRM_* variables
// (libs/config, like the services'); --help lists them. `tools/dev example`
// sets up the shop's account, role and purpose (tools/example_shop/setup)
// and runs it against the local stack.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/config/config.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/tls_files.h"

namespace crm::example_shop {
namespace {

namespace consent = ::crm::consent::v1;
namespace contacts = ::crm::contacts::v1;
namespace identity = ::crm::identity::v1;

struct Options {
  std::string identity_addr = "127.0.0.1:50051";
  std::string contacts_addr = "127.0.0.1:50052";
  std::string consent_addr = "127.0.0.1:50053";
  // The shop's certificate and key, and the CA the services must chain to.
  // Default: shop.crt, shop.key and ca.crt in pki_dir.
  std::string pki_dir = ".run/pki";
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // The customer. Default e-mail: a new customer-<random>@example.com.
  std::string given_name = "Alex";
  std::string family_name = "Example";
  std::string email;
  std::string purpose = "newsletter";
  std::string language = "en";
};

// Prints which step failed with the gRPC status it answered; returns the
// exit code 1. The services' messages never contain personal data.
int Failed(absl::string_view step, const grpc::Status& status) {
  std::fprintf(stderr, "crm-example-shop: step %s failed: %s: %s\n", std::string(step).c_str(),
               absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())).c_str(),
               status.error_message().c_str());
  return 1;
}

// Every call has a deadline; every call after step 1 carries the token.
void Prepare(grpc::ClientContext& context, const std::string& token) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
}

// A channel to `service` over mutual TLS with the shop's certificate. All
// three use the same certificate: the token is bound to it (RFC 8705), so a
// stolen token is useless without the shop's private key.
std::shared_ptr<grpc::Channel> Connect(const Options& o, const std::string& addr,
                                       const std::string& service) {
  rpc::ChannelConfig config;
  config.target = addr;
  config.tls = {.cert_file = o.tls_cert, .key_file = o.tls_key, .ca_file = o.tls_ca};
  config.expected_server = service;  // the server must be spiffe://crm.local/<service>
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
  return channel.ok() ? *channel : nullptr;  // settings were checked before
}

// The subject an ALREADY_EXISTS of CreatePerson names when our account may
// see it ("person.emails[0].address: already registered to subject <id>").
std::string ExistingSubject(const grpc::Status& status) {
  constexpr absl::string_view kMarker = " to subject ";
  const std::string message = status.error_message();  // a copy: error_message() returns by value
  const size_t at = absl::string_view(message).rfind(kMarker);
  if (status.error_code() != grpc::StatusCode::ALREADY_EXISTS || at == std::string::npos) {
    return "";
  }
  return message.substr(at + kMarker.size());
}

std::string ReasonName(consent::Reason reason) {
  return std::string(absl::StripPrefix(consent::Reason_Name(reason), "REASON_"));
}

int Run(const Options& o) {
  auto identity_stub = identity::Identity::NewStub(Connect(o, o.identity_addr, "identity"));
  auto contacts_stub = contacts::Contacts::NewStub(Connect(o, o.contacts_addr, "contacts"));
  auto consent_stub = consent::Consent::NewStub(Connect(o, o.consent_addr, "consent"));

  // 1. The certificate alone authenticates this call. Renew the token before
  //    expires_at, or on UNAUTHENTICATED; a one-shot run needs neither.
  identity::IssueServiceTokenResponse issued;
  {
    grpc::ClientContext context;
    Prepare(context, "");
    grpc::Status s = identity_stub->IssueServiceToken(&context, {}, &issued);
    if (!s.ok()) return Failed("1 (Identity/IssueServiceToken)", s);
  }
  const std::string& token = issued.access_token();
  std::printf(
      "1. token: issued to the shop's certificate, valid until %s\n",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(issued.expires_at().seconds()),
                       absl::UTCTimeZone())
          .c_str());

  // 2. Register the customer; keep the subject id with the shop's own record.
  std::string subject_id;
  {
    contacts::CreatePersonRequest request;
    contacts::Person* person = request.mutable_person();
    person->set_given_name(o.given_name);
    person->set_family_name(o.family_name);
    person->add_emails()->set_address(o.email);
    person->mutable_registration()->set_channel("shop");
    person->mutable_registration()->set_source("checkout");
    contacts::CreatePersonResponse response;
    grpc::ClientContext context;
    Prepare(context, token);
    grpc::Status s = contacts_stub->CreatePerson(&context, request, &response);
    if (s.ok()) {
      subject_id = response.person().subject_id();
      std::printf("2. customer: registered as subject %s\n", subject_id.c_str());
    } else if (subject_id = ExistingSubject(s); !subject_id.empty()) {
      std::printf("2. customer: already registered (same e-mail address) as subject %s\n",
                  subject_id.c_str());
    } else {
      return Failed("2 (Contacts/CreatePerson)", s);
    }
  }

  // 3. The grant cites the notice the customer saw at checkout: the current
  //    version of the purpose's notice in their language.
  consent::Statement statement;
  {
    consent::ListPurposesResponse purposes;
    grpc::ClientContext context;
    Prepare(context, token);
    grpc::Status s = consent_stub->ListPurposes(&context, {}, &purposes);
    if (!s.ok()) return Failed("3 (Consent/ListPurposes)", s);
    std::string notice_version;
    for (const consent::Purpose& p : purposes.purposes()) {
      if (p.purpose_id() != o.purpose) continue;
      auto it = p.current_notice_versions().find(o.language);
      if (it != p.current_notice_versions().end()) notice_version = it->second;
    }
    if (notice_version.empty()) {
      return Failed("3 (Consent/ListPurposes)",
                    grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("no purpose ", o.purpose, " with a notice in ",
                                              o.language, " (tools/dev example defines one)")));
    }
    statement.set_subject_id(subject_id);
    statement.set_purpose_id(o.purpose);
    statement.set_notice_version(notice_version);
    statement.set_language(o.language);
    statement.set_method(consent::METHOD_WEB_FORM);
    statement.set_source("shop");
    // Evidence (sealed under the customer's key): what the shop's web front
    // saw. Here a documentation address (RFC 5737) and our own name.
    statement.set_source_address("192.0.2.10");
    statement.set_user_agent("crm-example-shop");
  }
  {
    consent::GrantRequest request;
    *request.mutable_statement() = statement;
    consent::GrantResponse response;
    grpc::ClientContext context;
    Prepare(context, token);
    grpc::Status s = consent_stub->Grant(&context, request, &response);
    if (!s.ok()) return Failed("3 (Consent/Grant)", s);
    std::printf("3. consent: %s granted with notice %s (%s), %s\n", o.purpose.c_str(),
                statement.notice_version().substr(0, 12).c_str(), o.language.c_str(),
                response.changed()
                    ? absl::StrCat("ledger entry ", response.entry().sequence()).c_str()
                    : "already in force");
  }

  // 4. and 6. Check right before each use; never keep the answer.
  auto check = [&](absl::string_view step) -> int {
    consent::CheckRequest request;
    request.set_subject_id(subject_id);
    request.set_purpose_id(o.purpose);
    consent::CheckResponse response;
    grpc::ClientContext context;
    Prepare(context, token);
    grpc::Status s = consent_stub->Check(&context, request, &response);
    if (!s.ok()) return Failed(absl::StrCat(step, " (Consent/Check)"), s);
    const bool allowed = response.decision().allowed();
    std::printf("%s. check %s: allowed=%s reason=%s -> %s\n", std::string(step).c_str(),
                o.purpose.c_str(), allowed ? "yes" : "no",
                ReasonName(response.decision().reason()).c_str(),
                allowed ? "send the newsletter" : "do not send it");
    return 0;
  };
  if (int failed = check("4"); failed != 0) return failed;
  {
    consent::WithdrawRequest request;
    *request.mutable_statement() = statement;
    request.mutable_statement()->set_method(consent::METHOD_EMAIL_LINK);
    consent::WithdrawResponse response;
    grpc::ClientContext context;
    Prepare(context, token);
    grpc::Status s = consent_stub->Withdraw(&context, request, &response);
    if (!s.ok()) return Failed("5 (Consent/Withdraw)", s);
    std::printf("5. withdraw: %s\n",
                response.changed()
                    ? absl::StrCat("ledger entry ", response.entry().sequence()).c_str()
                    : "no grant was in force");
  }
  return check("6");
}

}  // namespace
}  // namespace crm::example_shop

int main(int argc, char** argv) {
  crm::example_shop::Options o;
  crm::config::Settings s("crm-example-shop");
  s.Add("identity_addr", &o.identity_addr, "identity's host:port");
  s.Add("contacts_addr", &o.contacts_addr, "contacts' host:port");
  s.Add("consent_addr", &o.consent_addr, "consent's host:port");
  s.Add("pki_dir", &o.pki_dir, "directory of shop.crt, shop.key and ca.crt");
  s.Add("tls_cert", &o.tls_cert, "the shop's certificate (default <pki_dir>/shop.crt)");
  s.Add("tls_key", &o.tls_key, "its private key (default <pki_dir>/shop.key)");
  s.Add("tls_ca", &o.tls_ca, "the CA the services chain to (default <pki_dir>/ca.crt)");
  s.Add("given_name", &o.given_name, "the customer's given name");
  s.Add("family_name", &o.family_name, "the customer's family name");
  s.Add("email", &o.email, "the customer's e-mail (default customer-<random>@example.com)");
  s.Add("purpose", &o.purpose, "the purpose consented to");
  s.Add("language", &o.language, "the language of the notice the customer saw");
  crm::config::ParseOrExit(s, argc, argv, environ);

  if (o.tls_cert.empty()) o.tls_cert = o.pki_dir + "/shop.crt";
  if (o.tls_key.empty()) o.tls_key = o.pki_dir + "/shop.key";
  if (o.tls_ca.empty()) o.tls_ca = o.pki_dir + "/ca.crt";
  if (o.email.empty()) {
    o.email = absl::StrFormat("customer-%08x@example.com", absl::Uniform<uint32_t>(absl::BitGen()));
  }
  absl::Status valid = crm::rpc::CheckTlsFiles(
      {.cert_file = o.tls_cert, .key_file = o.tls_key, .ca_file = o.tls_ca}, "tls_");
  for (const auto& [name, value] :
       {std::pair{"identity_addr", o.identity_addr}, std::pair{"contacts_addr", o.contacts_addr},
        std::pair{"consent_addr", o.consent_addr}}) {
    std::string host;
    int port = 0;
    if (valid.ok()) valid = crm::config::ParseHostPort(name, value, &host, &port);
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "crm-example-shop: %s\n", std::string(valid.message()).c_str());
    return 2;
  }
  return crm::example_shop::Run(o);
}
