#include "libs/crypto/data_key.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/crypto/aead.h"
#include "libs/testing/status_matchers.h"

namespace crm::crypto {
namespace {

using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;

constexpr char kSubjectA[] = "6f1c8a52-2d4e-4c1a-9b0e-1f2a3b4c5d6e";
constexpr char kSubjectB[] = "0b7e2f4d-93a1-4f6b-8c2d-7e6f5a4b3c2d";

KeyRing Ring(absl::string_view text) { return std::move(KeyRing::Parse(text)).value(); }
std::string Line(int v, char fill) {
  return std::to_string(v) + " " + absl::Base64Escape(std::string(32, fill)) + "\n";
}

TEST(DataKeyTest, NewKeysAreRandom32Bytes) {
  SecretBytes a = NewDataKey();
  EXPECT_EQ(a.size(), kDataKeySize);
  EXPECT_NE(a.view(), NewDataKey().view());
}

TEST(DataKeyTest, WrapUnwrapRoundTripAndEncryptsData) {
  KeyRing ring = Ring(Line(1, 'k'));
  SecretBytes key = NewDataKey();
  CRM_ASSERT_OK_AND_ASSIGN(std::string wrapped, WrapDataKey(ring, key, "contacts", kSubjectA));
  CRM_ASSERT_OK_AND_ASSIGN(SecretBytes unwrapped,
                           UnwrapDataKey(ring, wrapped, "contacts", kSubjectA));
  EXPECT_EQ(unwrapped.view(), key.view());
  CRM_ASSERT_OK_AND_ASSIGN(std::string sealed, Seal(key, "address", "persons.address"));
  EXPECT_THAT(Open(unwrapped, sealed, "persons.address"), IsOkAndHolds("address"));
}

TEST(DataKeyTest, WrappedKeyIsBoundToSubjectAndPurpose) {
  KeyRing ring = Ring(Line(1, 'k'));
  SecretBytes key = NewDataKey();
  CRM_ASSERT_OK_AND_ASSIGN(std::string wrapped, WrapDataKey(ring, key, "contacts", kSubjectA));
  EXPECT_THAT(UnwrapDataKey(ring, wrapped, "contacts", kSubjectB),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(UnwrapDataKey(ring, wrapped, "audit", kSubjectA),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(DataKeyTest, AadIsUnambiguous) {
  // Without length prefixes these two would produce the same bytes.
  EXPECT_NE(DataKeyAad("ab", "c"), DataKeyAad("a", "bc"));
}

TEST(DataKeyTest, RewrapAfterRotationKeepsTheKey) {
  KeyRing old_ring = Ring(Line(1, 'k'));
  KeyRing new_ring = Ring(Line(1, 'k') + Line(2, 'n'));
  KeyRing retired = Ring(Line(2, 'n'));
  SecretBytes key = NewDataKey();
  CRM_ASSERT_OK_AND_ASSIGN(std::string wrapped, WrapDataKey(old_ring, key, "mailing", kSubjectA));
  CRM_ASSERT_OK_AND_ASSIGN(std::string rewrapped,
                           RewrapDataKey(new_ring, wrapped, "mailing", kSubjectA));
  EXPECT_THAT(KeyRing::WrappedVersion(rewrapped), IsOkAndHolds(2u));
  CRM_ASSERT_OK_AND_ASSIGN(SecretBytes back,
                           UnwrapDataKey(retired, rewrapped, "mailing", kSubjectA));
  EXPECT_EQ(back.view(), key.view());
  EXPECT_THAT(UnwrapDataKey(retired, wrapped, "mailing", kSubjectA),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(DataKeyTest, RejectsBadInputs) {
  KeyRing ring = Ring(Line(1, 'k'));
  SecretBytes key = NewDataKey();
  EXPECT_THAT(WrapDataKey(ring, SecretBytes(16), "contacts", kSubjectA),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WrapDataKey(ring, key, "", kSubjectA), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WrapDataKey(ring, key, "contacts", ""), StatusIs(absl::StatusCode::kInvalidArgument));
  // A ring-wrapped blob of the right AAD but wrong size is not a data key.
  CRM_ASSERT_OK_AND_ASSIGN(std::string odd, ring.Wrap("short", DataKeyAad("contacts", kSubjectA)));
  EXPECT_THAT(UnwrapDataKey(ring, odd, "contacts", kSubjectA),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(DataKeyTest, DestroyedKeyIsWiped) {
  SecretBytes key = NewDataKey();
  key.Clear();
  EXPECT_TRUE(key.empty());
  EXPECT_EQ(key.data(), nullptr);
}

}  // namespace
}  // namespace crm::crypto
