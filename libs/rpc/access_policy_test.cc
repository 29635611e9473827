#include "libs/rpc/access_policy.h"

#include "crm/testing/v1/echo.pb.h"
#include "libs/testing/status_matchers.h"

namespace crm::rpc {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kAppend[] = "/crm.audit.v1.AuditIngest/AppendEvents";
constexpr char kErase[] = "/crm.subject.v1.SubjectData/EraseSubjectData";
constexpr char kApi[] = "/crm.contacts.v1.Contacts/GetPerson";

TEST(AccessPolicyTest, AllowServiceCoversEveryMethodOfALinkedService) {
  AccessPolicy listed;
  // Referencing the file links its descriptors in.
  listed.AllowService(crm::testing::v1::EchoRequest::descriptor()->file()->service(0)->full_name(),
                      {"gateway"});
  EXPECT_THAT(listed.Validate(), IsOk());
  for (const char* method : {"/crm.testing.v1.Echo/Echo", "/crm.testing.v1.Echo/SlowEcho"}) {
    EXPECT_THAT(listed.Check(method, "spiffe://crm.local/gateway"), IsOk()) << method;
    EXPECT_THAT(listed.Check(method, "spiffe://crm.local/shop"),
                StatusIs(absl::StatusCode::kPermissionDenied))
        << method;
  }
  AccessPolicy open;
  open.AllowService("crm.testing.v1.Echo");
  EXPECT_THAT(open.Check("/crm.testing.v1.Echo/SlowEcho", "spiffe://crm.local/shop"), IsOk());
  AccessPolicy missing;
  missing.AllowService("crm.nothing.v1.Nowhere");
  EXPECT_THAT(missing.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not linked in")));
}

AccessPolicy MakePolicy() {
  AccessPolicy p;
  p.Allow(kAppend, {"contacts", "spiffe://crm.local/identity"})
      .Allow(kErase, {"erasure"})
      .AllowAnyPeer(kApi);
  return p;
}

TEST(AccessPolicyTest, AllowsListedCallersByShortOrFullName) {
  AccessPolicy p = MakePolicy();
  EXPECT_THAT(p.Validate(), IsOk());
  EXPECT_THAT(p.Check(kAppend, "spiffe://crm.local/contacts"), IsOk());
  EXPECT_THAT(p.Check(kAppend, "spiffe://crm.local/identity"), IsOk());
  EXPECT_THAT(p.Check(kErase, "spiffe://crm.local/erasure"), IsOk());
}

TEST(AccessPolicyTest, RefusesCallerNotOnTheList) {
  AccessPolicy p = MakePolicy();
  EXPECT_THAT(p.Check(kErase, "spiffe://crm.local/contacts"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not allowed")));
  EXPECT_THAT(p.Check(kErase, ""), StatusIs(absl::StatusCode::kPermissionDenied));
  // Same name in another trust domain is another identity.
  EXPECT_THAT(p.Check(kErase, "spiffe://evil.example/erasure"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(AccessPolicyTest, DefaultDenyForMethodWithoutEntry) {
  AccessPolicy p = MakePolicy();
  EXPECT_THAT(p.Check("/crm.audit.v1.AuditIngest/Other", "spiffe://crm.local/erasure"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("no access policy")));
  EXPECT_THAT(p.Check("", "spiffe://crm.local/erasure"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_FALSE(p.Covers("/crm.audit.v1.AuditIngest/Other"));
  EXPECT_TRUE(p.Covers(kAppend));
}

TEST(AccessPolicyTest, AnyPeerMethodsAcceptEveryIdentity) {
  AccessPolicy p = MakePolicy();
  EXPECT_THAT(p.Check(kApi, "spiffe://crm.local/shop"), IsOk());
  EXPECT_THAT(p.Check(kApi, ""), IsOk());
}

TEST(AccessPolicyTest, HealthAndReflectionAreAlwaysOpen) {
  AccessPolicy p;
  EXPECT_THAT(p.Check("/grpc.health.v1.Health/Check", "spiffe://crm.local/x"), IsOk());
  EXPECT_THAT(p.Check("/grpc.health.v1.Health/Watch", ""), IsOk());
  EXPECT_THAT(p.Check("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", ""),
              IsOk());
  EXPECT_THAT(p.Check("/grpc.health.v1.Health/Check/extra", ""),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(p.Check("/grpc.health.v1.HealthX/Check", ""),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(AccessPolicyTest, MalformedEntriesAreReported) {
  AccessPolicy bad_method;
  bad_method.Allow("crm.audit.v1.AuditIngest/AppendEvents", {"contacts"});
  EXPECT_THAT(bad_method.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));

  AccessPolicy bad_caller;
  bad_caller.Allow(kAppend, {"Not A Name"});
  EXPECT_THAT(bad_caller.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));

  AccessPolicy foreign;
  foreign.Allow(kAppend, {"spiffe://evil.example/contacts"});
  EXPECT_THAT(foreign.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));

  AccessPolicy empty;
  empty.Allow(kAppend, std::vector<std::string>{});
  EXPECT_THAT(empty.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AccessPolicyTest, ValidateMethodName) {
  EXPECT_THAT(AccessPolicy::ValidateMethodName(kAppend), IsOk());
  for (const char* bad : {"", "/", "/a/", "//b", "/a/b/c", "a/b", "/a b/c"}) {
    EXPECT_THAT(AccessPolicy::ValidateMethodName(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

}  // namespace
}  // namespace crm::rpc
