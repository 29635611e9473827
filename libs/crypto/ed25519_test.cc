#include "libs/crypto/ed25519.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/crypto/test_files.h"
#include "libs/testing/status_matchers.h"

namespace crm::crypto {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }
std::string Bytes(absl::string_view hex) { return absl::HexStringToBytes(hex); }

struct Ed25519Vector {
  const char* name;
  const char* seed;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032, section 7.1: TEST 1, 2, 3 and SHA(abc).
const Ed25519Vector kVectors[] = {
    {"test1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"test2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"test3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"sha_abc", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
     "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

TEST(Ed25519KnownAnswerTest, MatchesRfc8032) {
  for (const Ed25519Vector& v : kVectors) {
    CRM_ASSERT_OK_AND_ASSIGN(Ed25519PrivateKey key, Ed25519PrivateKey::FromSeed(Bytes(v.seed)));
    EXPECT_EQ(Hex(key.PublicKey().Raw()), v.public_key) << v.name;
    CRM_ASSERT_OK_AND_ASSIGN(std::string sig, key.Sign(Bytes(v.message)));
    EXPECT_EQ(Hex(sig), v.signature) << v.name;
    CRM_ASSERT_OK_AND_ASSIGN(Ed25519PublicKey pub, Ed25519PublicKey::FromRaw(Bytes(v.public_key)));
    EXPECT_TRUE(pub.Verify(Bytes(v.message), Bytes(v.signature))) << v.name;
  }
}

TEST(Ed25519Test, VerifyRejectsAlteredMessageSignatureOrKey) {
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PrivateKey key, Ed25519PrivateKey::Generate());
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PrivateKey other, Ed25519PrivateKey::Generate());
  CRM_ASSERT_OK_AND_ASSIGN(std::string sig, key.Sign("checkpoint 42"));
  Ed25519PublicKey pub = key.PublicKey();
  EXPECT_TRUE(pub.Verify("checkpoint 42", sig));
  EXPECT_FALSE(pub.Verify("checkpoint 43", sig));
  EXPECT_FALSE(other.PublicKey().Verify("checkpoint 42", sig));
  for (size_t i = 0; i < sig.size(); ++i) {
    std::string t = sig;
    t[i] = static_cast<char>(t[i] ^ 0x01);
    EXPECT_FALSE(pub.Verify("checkpoint 42", t)) << "byte " << i;
  }
  EXPECT_FALSE(pub.Verify("checkpoint 42", sig.substr(0, 63)));
  EXPECT_FALSE(pub.Verify("checkpoint 42", sig + "x"));
  EXPECT_FALSE(pub.Verify("checkpoint 42", ""));
}

TEST(Ed25519Test, PemRoundTrips) {
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PrivateKey key, Ed25519PrivateKey::Generate());
  CRM_ASSERT_OK_AND_ASSIGN(SecretBytes pem, key.ToPem());
  EXPECT_THAT(std::string(pem.view()), HasSubstr("-----BEGIN PRIVATE KEY-----"));
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PrivateKey back, Ed25519PrivateKey::FromPem(pem.view()));
  EXPECT_EQ(back.PublicKey().Raw(), key.PublicKey().Raw());

  const std::string pub_pem = key.PublicKey().ToPem();
  EXPECT_THAT(pub_pem, HasSubstr("-----BEGIN PUBLIC KEY-----"));
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PublicKey pub, Ed25519PublicKey::FromPem(pub_pem));
  EXPECT_EQ(pub.Raw(), key.PublicKey().Raw());
}

TEST(Ed25519Test, ReadsRfc8410ExamplePublicKey) {
  // RFC 8410, section 10.1.
  const std::string pem =
      "-----BEGIN PUBLIC KEY-----\n"
      "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
      "-----END PUBLIC KEY-----\n";
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PublicKey pub, Ed25519PublicKey::FromPem(pem));
  EXPECT_EQ(Hex(pub.Raw()), "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1");
}

TEST(Ed25519Test, PemFileSaveAndLoad) {
  testing::TempDir dir;
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PrivateKey key, Ed25519PrivateKey::Generate());
  const std::string path = dir.path() + "/signing.pem";
  ASSERT_THAT(key.SavePemFile(path), IsOk());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  CRM_ASSERT_OK_AND_ASSIGN(Ed25519PrivateKey back, Ed25519PrivateKey::LoadPemFile(path));
  EXPECT_EQ(back.PublicKey().Raw(), key.PublicKey().Raw());
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  EXPECT_THAT(Ed25519PrivateKey::LoadPemFile(path),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(Ed25519Test, RejectsMalformedInputWithoutEchoingIt) {
  EXPECT_THAT(Ed25519PrivateKey::FromSeed("short"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Ed25519PublicKey::FromRaw("short"), StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string garbage =
      "-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n";
  absl::StatusOr<Ed25519PrivateKey> bad = Ed25519PrivateKey::FromPem(garbage);
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr("SECRETSTUFF"))));
  EXPECT_THAT(Ed25519PublicKey::FromPem("nope"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Ed25519Test, RejectsPemOfAnotherKeyType) {
  // An EC P-256 public key (RFC 5480 style SubjectPublicKeyInfo), generated for this test.
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(ec, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio, ec), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  const std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  EXPECT_THAT(Ed25519PublicKey::FromPem(pem),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not Ed25519")));
}

}  // namespace
}  // namespace crm::crypto
