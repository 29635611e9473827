#include "libs/pki/pki.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "libs/testing/status_matchers.h"

namespace crm::pki {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pki_test.XXXXXX").string();
  char* made = mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  return tmpl;
}

LeafOptions Leaf(std::string name, absl::Time not_before, absl::Time not_after,
                 KeyAlgorithm alg = KeyAlgorithm::kEcdsaP256) {
  LeafOptions o;
  o.name = std::move(name);
  o.not_before = not_before;
  o.not_after = not_after;
  o.algorithm = alg;
  return o;
}

class PkiTest : public ::testing::TestWithParam<KeyAlgorithm> {};

TEST_P(PkiTest, IssuedLeafVerifiesAndCarriesSpiffeId) {
  CRM_ASSERT_OK_AND_ASSIGN(auto ca,
                           CertificateAuthority::Create("test CA", kNow - absl::Hours(1),
                                                        kNow + absl::Hours(48), GetParam()));
  CRM_ASSERT_OK_AND_ASSIGN(CertAndKey leaf, ca.Issue(Leaf("contacts", kNow - absl::Hours(1),
                                                          kNow + absl::Hours(24), GetParam())));
  EXPECT_THAT(ca.VerifyLeaf(leaf.cert_pem, leaf.key_pem, "contacts", kNow), IsOk());
  EXPECT_THAT(UriSans(leaf.cert_pem),
              crm::testing::IsOkAndHolds(ElementsAre("spiffe://crm.local/contacts")));
  EXPECT_THAT(ca.VerifyLeaf(leaf.cert_pem, leaf.key_pem, "identity", kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("identity")));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PkiTest,
                         ::testing::Values(KeyAlgorithm::kEcdsaP256, KeyAlgorithm::kEd25519));

TEST(Pki, ExpiredLeafFailsVerification) {
  CRM_ASSERT_OK_AND_ASSIGN(auto ca, CertificateAuthority::Create("test CA", kNow - absl::Hours(48),
                                                                 kNow + absl::Hours(48)));
  CRM_ASSERT_OK_AND_ASSIGN(CertAndKey leaf,
                           ca.Issue(Leaf("audit", kNow - absl::Hours(48), kNow - absl::Hours(1))));
  EXPECT_THAT(ca.VerifyLeaf(leaf.cert_pem, "", "audit", kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("expired")));
  EXPECT_THAT(ca.VerifyLeaf(leaf.cert_pem, "", "audit", kNow - absl::Hours(2)), IsOk());
}

TEST(Pki, LeafOfForeignCaFailsVerification) {
  CRM_ASSERT_OK_AND_ASSIGN(
      auto ca, CertificateAuthority::Create("ours", kNow - absl::Hours(1), kNow + absl::Hours(48)));
  CRM_ASSERT_OK_AND_ASSIGN(auto other, CertificateAuthority::Create("theirs", kNow - absl::Hours(1),
                                                                    kNow + absl::Hours(48)));
  CRM_ASSERT_OK_AND_ASSIGN(
      CertAndKey leaf, other.Issue(Leaf("audit", kNow - absl::Hours(1), kNow + absl::Hours(1))));
  EXPECT_THAT(ca.VerifyLeaf(leaf.cert_pem, "", "", kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(other.VerifyLeaf(leaf.cert_pem, "", "", kNow), IsOk());
}

TEST(Pki, MismatchedKeyIsDetected) {
  CRM_ASSERT_OK_AND_ASSIGN(
      auto ca, CertificateAuthority::Create("ours", kNow - absl::Hours(1), kNow + absl::Hours(48)));
  CRM_ASSERT_OK_AND_ASSIGN(CertAndKey a,
                           ca.Issue(Leaf("a", kNow - absl::Hours(1), kNow + absl::Hours(1))));
  CRM_ASSERT_OK_AND_ASSIGN(CertAndKey b,
                           ca.Issue(Leaf("b", kNow - absl::Hours(1), kNow + absl::Hours(1))));
  EXPECT_THAT(ca.VerifyLeaf(a.cert_pem, b.key_pem, "a", kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("key")));
  EXPECT_THAT(CertificateAuthority::FromPem(ca.cert_pem(), b.key_pem),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CertificateAuthority::FromPem(a.cert_pem, a.key_pem),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a CA")));
}

TEST(Pki, RejectsBadNamesAndEmptyWindows) {
  CRM_ASSERT_OK_AND_ASSIGN(
      auto ca, CertificateAuthority::Create("ours", kNow - absl::Hours(1), kNow + absl::Hours(48)));
  EXPECT_THAT(ca.Issue(Leaf("Bad Name", kNow, kNow + absl::Hours(1))),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ca.Issue(Leaf("ok", kNow, kNow)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CertificateAuthority::Create("x", kNow, kNow - absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Pki, SpiffeNames) {
  EXPECT_EQ(SpiffeId("identity"), "spiffe://crm.local/identity");
  EXPECT_EQ(NameFromSpiffeId("spiffe://crm.local/identity"), "identity");
  EXPECT_EQ(NameFromSpiffeId("spiffe://other.domain/identity"), "");
  EXPECT_EQ(NameFromSpiffeId("spiffe://crm.local/a/b"), "");
  EXPECT_EQ(NameFromSpiffeId("spiffe://crm.local/"), "");
}

TEST(Pki, InitDirectoryCreatesKeepsAndForces) {
  const std::string dir = MakeTempDir() + "/pki";
  InitOptions o;
  o.dir = dir;
  o.names = {"identity", "operator"};
  o.now = kNow;
  CRM_ASSERT_OK_AND_ASSIGN(InitReport first, InitDirectory(o));
  EXPECT_THAT(first.created, ElementsAre("ca", "identity", "operator"));
  EXPECT_TRUE(first.kept.empty());

  struct stat st;
  ASSERT_EQ(stat((dir + "/identity.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat((dir + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  CRM_ASSERT_OK_AND_ASSIGN(auto ca, CertificateAuthority::Load(dir + "/ca.crt", dir + "/ca.key"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string cert, ReadFile(dir + "/identity.crt"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string key, ReadFile(dir + "/identity.key"));
  EXPECT_THAT(ca.VerifyLeaf(cert, key, "identity", kNow), IsOk());

  // Second run: everything kept, byte for byte; a new name is added.
  o.names.push_back("audit");
  CRM_ASSERT_OK_AND_ASSIGN(InitReport second, InitDirectory(o));
  EXPECT_THAT(second.created, ElementsAre("audit"));
  EXPECT_THAT(second.kept, UnorderedElementsAre("ca", "identity", "operator"));
  EXPECT_THAT(ReadFile(dir + "/identity.crt"), crm::testing::IsOkAndHolds(cert));

  // A damaged leaf is reissued on its own.
  ASSERT_THAT(WriteCertAndKey({"garbage", "garbage"}, dir + "/operator.crt", dir + "/operator.key"),
              IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(InitReport third, InitDirectory(o));
  EXPECT_THAT(third.created, ElementsAre("operator"));

  // Past the leaves' expiry the leaves are reissued (the CA outlives them).
  o.now = kNow + absl::Hours(24 * 366);
  CRM_ASSERT_OK_AND_ASSIGN(InitReport later, InitDirectory(o));
  EXPECT_THAT(later.created, ElementsAre("identity", "operator", "audit"));
  EXPECT_THAT(later.kept, ElementsAre("ca"));

  o.force = true;
  CRM_ASSERT_OK_AND_ASSIGN(InitReport forced, InitDirectory(o));
  EXPECT_THAT(forced.created, ElementsAre("ca", "identity", "operator", "audit"));
  EXPECT_THAT(ReadFile(dir + "/identity.crt"), crm::testing::IsOkAndHolds(::testing::Ne(cert)));
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST(Pki, InitDirectoryRejectsBadNames) {
  InitOptions o;
  o.dir = MakeTempDir();
  o.names = {"ca"};
  EXPECT_THAT(InitDirectory(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o.names = {"Upper"};
  EXPECT_THAT(InitDirectory(o), StatusIs(absl::StatusCode::kInvalidArgument));
  std::filesystem::remove_all(o.dir);
}

}  // namespace
}  // namespace crm::pki
