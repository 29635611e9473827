#include "libs/auth/principal.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::auth {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;

TEST(PrincipalTest, HasAndInTeam) {
  Principal p;
  p.permissions = {"contacts.read", "contacts.write"};
  p.teams = {"sales-north"};
  EXPECT_TRUE(p.Has("contacts.read"));
  EXPECT_FALSE(p.Has("contacts.read.all"));
  EXPECT_FALSE(p.Has(""));
  EXPECT_TRUE(p.InTeam("sales-north"));
  EXPECT_FALSE(p.InTeam("sales-south"));
}

TEST(PrincipalTest, CertificateThumbprintIsBase64UrlSha256) {
  // SHA-256("abc") = ba7816bf...15ad, base64url without padding.
  EXPECT_EQ(CertificateThumbprint("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

TEST(PrincipalTest, CertificateBinding) {
  Principal unbound;
  EXPECT_THAT(unbound.CheckCertificateBinding(""), IsOk());
  EXPECT_THAT(unbound.CheckCertificateBinding("any cert"), IsOk());

  Principal bound;
  bound.cert_thumbprint = CertificateThumbprint("shop cert DER");
  EXPECT_TRUE(bound.IsCertificateBound());
  EXPECT_THAT(bound.CheckCertificateBinding("shop cert DER"), IsOk());
  EXPECT_THAT(bound.CheckCertificateBinding("billing cert DER"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(bound.CheckCertificateBinding(""), StatusIs(absl::StatusCode::kUnauthenticated));
}

}  // namespace
}  // namespace crm::auth
