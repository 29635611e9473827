#include "tests/security/served_rpcs.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crm/audit/v1/audit.grpc.pb.h"
#include "crm/audit/v1/ingest.grpc.pb.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "crm/subject/v1/subject_data.grpc.pb.h"

namespace crm::security_test {

const std::map<std::string, std::set<std::string>>& CallerOnly() {
  static const auto* table = [] {
    auto* t = new std::map<std::string, std::set<std::string>>{
        {"/crm.audit.v1.AuditIngest/AppendEvents",
         {"identity", "contacts", "consent", "mailing", "erasure", "gateway"}},
        {"/crm.contacts.v1.Contacts/GetMailingAddresses", {"mailing"}},
        {"/crm.mailing.v1.Mailing/Unsubscribe", {"gateway"}},
        {"/crm.mailing.v1.Mailing/ConfirmSubscription", {"gateway"}},
        // identity's subject_callers (the portal's e-mail codes).
        {"/crm.identity.v1.Identity/StartSubjectVerification", {"gateway"}},
        {"/crm.identity.v1.Identity/ConfirmSubjectVerification", {"gateway"}},
        // identity's session_check_callers (the services that verify tokens).
        {"/crm.identity.v1.Identity/CheckSession",
         {"contacts", "consent", "audit", "mailing", "erasure"}},
    };
    for (const char* m : {"DescribeSubjectData", "ExportSubjectData", "EraseSubjectData"}) {
      (*t)[absl::StrCat("/crm.subject.v1.SubjectData/", m)] = {"erasure"};
    }
    return t;
  }();
  return *table;
}

const std::set<std::string>& NoToken() {
  static const auto* table = new std::set<std::string>{
      "/crm.identity.v1.Identity/Login",          "/crm.identity.v1.Identity/RefreshSession",
      "/crm.identity.v1.Identity/GetSigningKeys", "/crm.identity.v1.Identity/IssueServiceToken",
      "/crm.audit.v1.Audit/GetCheckpoint",        "/crm.audit.v1.Audit/GetInclusionProof",
      "/crm.audit.v1.Audit/GetConsistencyProof",  "/crm.audit.v1.Audit/GetCheckpointKeys",
      "/crm.consent.v1.Consent/GetReceiptKeys",   "/crm.erasure.v1.Erasure/GetVerificationKey",
  };
  return *table;
}

Access AccessOf(const std::string& method) {
  if (CallerOnly().contains(method)) return Access::kCallerOnly;
  if (NoToken().contains(method)) return Access::kNoToken;
  return Access::kToken;
}

namespace {

const google::protobuf::ServiceDescriptor* ServiceOf(const google::protobuf::Descriptor* message,
                                                     const char* name) {
  return message->file()->FindServiceByName(name);
}

}  // namespace

std::vector<std::pair<std::string, std::vector<const google::protobuf::ServiceDescriptor*>>>
Served() {
  const auto* subject_data =
      ServiceOf(subject::v1::DescribeSubjectDataRequest::descriptor(), "SubjectData");
  return {
      {"identity", {ServiceOf(identity::v1::LoginRequest::descriptor(), "Identity")}},
      {"contacts",
       {ServiceOf(contacts::v1::GetPersonRequest::descriptor(), "Contacts"), subject_data}},
      {"consent", {ServiceOf(consent::v1::CheckRequest::descriptor(), "Consent"), subject_data}},
      {"audit",
       {ServiceOf(audit::v1::AppendEventsRequest::descriptor(), "AuditIngest"),
        ServiceOf(audit::v1::QueryEventsRequest::descriptor(), "Audit"), subject_data}},
      {"mailing",
       {ServiceOf(mailing::v1::CreateListRequest::descriptor(), "Mailing"), subject_data}},
      {"erasure", {ServiceOf(erasure::v1::SubmitErasureRequest::descriptor(), "Erasure")}},
  };
}

std::vector<Rpc> AllRpcs() {
  std::vector<Rpc> out;
  for (const auto& [process, services] : Served()) {
    for (const google::protobuf::ServiceDescriptor* service : services) {
      if (service == nullptr) continue;  // reported by the coverage test
      for (int i = 0; i < service->method_count(); ++i) {
        out.push_back(
            {process, absl::StrCat("/", service->full_name(), "/", service->method(i)->name())});
      }
    }
  }
  return out;
}

std::string CodeName(grpc::StatusCode code) {
  // gRPC's codes are absl's, number for number.
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? absl::StrCat(static_cast<int>(code)) : name;
}

}  // namespace crm::security_test
