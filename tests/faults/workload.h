// What the fault tests (tests/faults) share: stubs of every service of a
// Stack over the operator's certificate, without retries (an answer is an
// acknowledgement, a failure is not), logged in as the administrator, and the
// writes their workloads make.
//
// Not thread-safe: one Clients per thread.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crm/audit/v1/audit.grpc.pb.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "tests/system/stack.h"

namespace crm::faults_test {

struct Clients {
  std::unique_ptr<identity::v1::Identity::Stub> identity;
  std::unique_ptr<contacts::v1::Contacts::Stub> contacts;
  std::unique_ptr<consent::v1::Consent::Stub> consent;
  std::unique_ptr<mailing::v1::Mailing::Stub> mailing;
  std::unique_ptr<erasure::v1::Erasure::Stub> erasure;
  std::unique_ptr<audit::v1::Audit::Stub> audit;
  std::string token;   // the administrator's access token
  std::string notice;  // the current "en" notice of the purpose newsletter
};

// A channel to `service` as "operator", reconnecting quickly after a restart.
absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelTo(system_test::Stack& st,
                                                         const std::string& service);
// Every stub, the administrator's token (a Login of its own) and the
// newsletter's notice. The first error of those calls.
absl::StatusOr<Clients> Connect(system_test::Stack& st);

// A new person `name` <name@customers.example>: their subject id.
absl::StatusOr<std::string> CreatePerson(Clients& c, const std::string& name);
// A grant (or withdrawal) of the newsletter purpose for `subject`.
absl::Status ConsentChange(Clients& c, const std::string& subject, bool grant);
// How many audit events of `action` about `subject` audit holds.
absl::StatusOr<int> AuditCount(Clients& c, const std::string& subject, const std::string& action);

// The value of the first sample of `metric` (a name, with labels if need be)
// in the service's /metrics (plain HTTP on its metrics port); -1 if it
// cannot be read.
double Metric(system_test::Stack& st, const std::string& service, const std::string& metric);

}  // namespace crm::faults_test
