#include "libs/crypto/aead.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/crypto/primitives.h"
#include "libs/testing/status_matchers.h"

namespace crm::crypto {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }
std::string Bytes(absl::string_view hex) { return absl::HexStringToBytes(hex); }

struct GcmVector {
  const char* name;
  const char* key;
  const char* iv;
  const char* plaintext;
  const char* aad;
  const char* ciphertext;
  const char* tag;
};

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", appendix B,
// test cases 13-16 (AES-256, 96-bit IV); the same vectors as NIST's.
const GcmVector kGcmVectors[] = {
    {"case13", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case14", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"case16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

TEST(GcmKnownAnswerTest, EncryptMatchesPublishedVectors) {
  for (const GcmVector& v : kGcmVectors) {
    absl::StatusOr<std::string> out =
        internal::GcmEncrypt(Bytes(v.key), Bytes(v.iv), "", Bytes(v.aad), Bytes(v.plaintext));
    ASSERT_THAT(out, IsOk()) << v.name;
    EXPECT_EQ(Hex(*out), std::string(v.ciphertext) + v.tag) << v.name;
  }
}

TEST(GcmKnownAnswerTest, DecryptMatchesPublishedVectorsAndSplitAadIsTheSame) {
  for (const GcmVector& v : kGcmVectors) {
    const std::string aad = Bytes(v.aad);
    const std::string input = Bytes(std::string(v.ciphertext) + v.tag);
    std::string out(input.size() - kGcmTagSize, '\0');
    // The AAD split across prefix and rest must authenticate the same bytes.
    const size_t split = aad.size() / 2;
    ASSERT_THAT(
        internal::GcmDecrypt(Bytes(v.key), Bytes(v.iv), aad.substr(0, split), aad.substr(split),
                             input, reinterpret_cast<uint8_t*>(out.data())),
        IsOk())
        << v.name;
    EXPECT_EQ(Hex(out), v.plaintext) << v.name;
  }
}

class AeadTest : public ::testing::Test {
 protected:
  SecretBytes key_ = RandomSecret(kAes256KeySize);
};

TEST_F(AeadTest, SealThenOpenRoundTrips) {
  for (size_t n : {0u, 1u, 15u, 16u, 17u, 1000u}) {
    const std::string plaintext(n, 'p');
    CRM_ASSERT_OK_AND_ASSIGN(std::string sealed, Seal(key_, plaintext, "row-1"));
    EXPECT_EQ(sealed.size(), n + kSealOverhead);
    EXPECT_EQ(static_cast<uint8_t>(sealed[0]), kSealedFormatV1);
    EXPECT_THAT(Open(key_, sealed, "row-1"), IsOkAndHolds(plaintext));
    CRM_ASSERT_OK_AND_ASSIGN(SecretBytes secret, OpenSecret(key_, sealed, "row-1"));
    EXPECT_EQ(secret.view(), plaintext);
  }
}

TEST_F(AeadTest, SealUsesAFreshNonceEachTime) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string a, Seal(key_, "same", ""));
  CRM_ASSERT_OK_AND_ASSIGN(std::string b, Seal(key_, "same", ""));
  EXPECT_NE(a.substr(1, kGcmNonceSize), b.substr(1, kGcmNonceSize));
  EXPECT_NE(a, b);
}

TEST_F(AeadTest, FlippingAnyBitOfAnyByteIsRejected) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string sealed, Seal(key_, "personal data", "aad"));
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string tampered = sealed;
      tampered[i] = static_cast<char>(tampered[i] ^ (1 << bit));
      EXPECT_THAT(Open(key_, tampered, "aad"), StatusIs(absl::StatusCode::kDataLoss))
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST_F(AeadTest, WrongAadIsRejected) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string sealed, Seal(key_, "x", "subject-a"));
  EXPECT_THAT(Open(key_, sealed, "subject-b"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(Open(key_, sealed, ""), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AeadTest, WrongKeyIsRejected) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string sealed, Seal(key_, "x", ""));
  EXPECT_THAT(Open(RandomSecret(32), sealed, ""), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AeadTest, TruncatedOrExtendedInputIsRejected) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string sealed, Seal(key_, "some plaintext", ""));
  for (size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_THAT(Open(key_, sealed.substr(0, n), ""), StatusIs(absl::StatusCode::kDataLoss))
        << "length " << n;
  }
  EXPECT_THAT(Open(key_, sealed + "x", ""), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AeadTest, ErrorMessagesDoNotContainPlaintext) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string sealed, Seal(key_, "alice@example.com", ""));
  sealed[5] ^= 1;
  absl::StatusOr<std::string> r = Open(key_, sealed, "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(::testing::HasSubstr("alice")));
}

TEST_F(AeadTest, SealingKeySealsManyMessagesEachOpeningUnderItsOwnAad) {
  CRM_ASSERT_OK_AND_ASSIGN(SealingKey sealing, SealingKey::Create(key_));
  // Lengths around AES's block and both sides of an empty message: the
  // context's state from one message must not leak into the next.
  std::vector<std::string> sealed;
  const std::vector<size_t> sizes = {17, 0, 1, 16, 1000, 15, 0, 33};
  for (size_t i = 0; i < sizes.size(); ++i) {
    CRM_ASSERT_OK_AND_ASSIGN(
        std::string s, sealing.Seal(std::string(sizes[i], 'a' + i), absl::StrCat("field-", i)));
    EXPECT_EQ(s.size(), sizes[i] + kSealOverhead);
    sealed.push_back(std::move(s));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_THAT(Open(key_, sealed[i], absl::StrCat("field-", i)),
                IsOkAndHolds(std::string(sizes[i], 'a' + i)))
        << i;
    EXPECT_THAT(Open(key_, sealed[i], absl::StrCat("field-", (i + 1) % sizes.size())),
                StatusIs(absl::StatusCode::kDataLoss))
        << i;
    for (size_t j = 0; j < i; ++j) {
      EXPECT_NE(sealed[i].substr(1, kGcmNonceSize), sealed[j].substr(1, kGcmNonceSize));
    }
  }
  // Moved, it goes on sealing under the same key.
  SealingKey moved = std::move(sealing);
  CRM_ASSERT_OK_AND_ASSIGN(std::string later, moved.Seal("later", "aad"));
  EXPECT_THAT(Open(key_, later, "aad"), IsOkAndHolds("later"));
}

TEST(AeadKeySizeTest, KeyOfWrongSizeIsInvalidArgument) {
  SecretBytes short_key = RandomSecret(16);
  EXPECT_THAT(Seal(short_key, "x", ""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SealingKey::Create(short_key), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Open(short_key, std::string(40, 'x'), ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(internal::GcmEncrypt(std::string(32, 'k'), "short", "", "", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace crm::crypto
