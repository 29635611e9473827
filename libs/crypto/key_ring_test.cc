#include "libs/crypto/key_ring.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/crypto/primitives.h"
#include "libs/crypto/test_files.h"
#include "libs/testing/status_matchers.h"

namespace crm::crypto {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Deterministic, recognisable test keys: 32 bytes of one value.
std::string KeyB64(char fill) { return absl::Base64Escape(std::string(32, fill)); }

std::string TwoKeyFile() {
  return absl::StrCat("# test ring\n\n1 ", KeyB64('a'), "\n  2\t", KeyB64('b'), "  \r\n");
}

TEST(KeyRingParseTest, ParsesVersionsCommentsAndBlankLines) {
  CRM_ASSERT_OK_AND_ASSIGN(KeyRing ring, KeyRing::Parse(TwoKeyFile()));
  EXPECT_THAT(ring.versions(), ElementsAre(1u, 2u));
  EXPECT_EQ(ring.active_version(), 2u);
}

TEST(KeyRingParseTest, NewestIsTheHighestVersionNotTheLastLine) {
  CRM_ASSERT_OK_AND_ASSIGN(KeyRing ring,
                           KeyRing::Parse(absl::StrCat("7 ", KeyB64('a'), "\n3 ", KeyB64('b'))));
  EXPECT_EQ(ring.active_version(), 7u);
}

TEST(KeyRingParseTest, MalformedLinesNameTheLineAndNeverTheKey) {
  const std::string good = absl::StrCat("1 ", KeyB64('a'), "\n");
  const std::string short_key = absl::Base64Escape(std::string(16, 'z'));
  struct Case {
    std::string text;
    std::string expected;
  } cases[] = {
      {good + "2\n", "line 2: expected"},
      {good + "2 " + KeyB64('b') + " extra\n", "line 2: expected"},
      {good + "2 " + KeyB64('b') + " pending extra\n", "line 2: expected"},
      {"1 " + KeyB64('a') + " pending\n", "every key is pending"},
      {good + "x " + KeyB64('b'), "line 2: version"},
      {good + "0 " + KeyB64('b'), "line 2: version"},
      {good + "-1 " + KeyB64('b'), "line 2: version"},
      {good + "+2 " + KeyB64('b'), "line 2: version"},
      {good + "4294967296 " + KeyB64('b'), "line 2: version"},
      {good + "# c\n3 " + short_key, "line 3: key must be 32 bytes"},
      {good + "2 not*base64!", "line 2: key is not base64"},
      {good + "1 " + KeyB64('b'), "line 2: duplicate key version 1"},
      {"# only a comment\n\n", "no key found"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<KeyRing> ring = KeyRing::Parse(c.text);
    EXPECT_THAT(ring, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.expected)))
        << c.text;
    if (!ring.ok()) {
      EXPECT_THAT(std::string(ring.status().message()), Not(HasSubstr(KeyB64('b'))));
      EXPECT_THAT(std::string(ring.status().message()), Not(HasSubstr(short_key)));
    }
  }
}

TEST(KeyRingParseTest, LargestVersionIsAccepted) {
  CRM_ASSERT_OK_AND_ASSIGN(KeyRing ring, KeyRing::Parse("4294967295 " + KeyB64('a')));
  EXPECT_EQ(ring.active_version(), 4294967295u);
}

// A key added as pending unwraps on every replica before any wraps with it.
TEST(KeyRingPendingTest, APendingKeyUnwrapsButTheActiveOneWraps) {
  CRM_ASSERT_OK_AND_ASSIGN(KeyRing staged, KeyRing::Parse(absl::StrCat("1 ", KeyB64('a'), "\n2 ",
                                                                       KeyB64('b'), " pending\n")));
  EXPECT_EQ(staged.active_version(), 1u);
  EXPECT_THAT(staged.versions(), ElementsAre(1u, 2u));
  CRM_ASSERT_OK_AND_ASSIGN(std::string wrapped, staged.Wrap("secret", "aad"));
  EXPECT_THAT(KeyRing::WrappedVersion(wrapped), IsOkAndHolds(1u));
  // A replica already on the next step (2 active) wraps with 2; the staged
  // one opens that.
  CRM_ASSERT_OK_AND_ASSIGN(KeyRing next, KeyRing::Parse(TwoKeyFile()));
  CRM_ASSERT_OK_AND_ASSIGN(std::string newer, next.Wrap("later", "aad"));
  EXPECT_THAT(staged.Unwrap(newer, "aad"), IsOkAndHolds("later"));
  // Rewrap moves to the active version, not to the pending one.
  EXPECT_THAT(staged.Rewrap(newer, "aad"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string back, staged.Rewrap(newer, "aad"));
  EXPECT_THAT(KeyRing::WrappedVersion(back), IsOkAndHolds(1u));
}

class KeyRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(KeyRing v1, KeyRing::Parse("1 " + KeyB64('a')));
    CRM_ASSERT_OK_AND_ASSIGN(KeyRing v12, KeyRing::Parse(TwoKeyFile()));
    CRM_ASSERT_OK_AND_ASSIGN(KeyRing v2, KeyRing::Parse("2 " + KeyB64('b')));
    v1_ = std::make_unique<KeyRing>(std::move(v1));
    v12_ = std::make_unique<KeyRing>(std::move(v12));
    v2_ = std::make_unique<KeyRing>(std::move(v2));
  }
  std::unique_ptr<KeyRing> v1_, v12_, v2_;
};

TEST_F(KeyRingTest, WrapUsesNewestVersionAndUnwraps) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string wrapped, v12_->Wrap("secret", "aad"));
  EXPECT_THAT(KeyRing::WrappedVersion(wrapped), IsOkAndHolds(2u));
  EXPECT_THAT(v12_->Unwrap(wrapped, "aad"), IsOkAndHolds("secret"));
  EXPECT_THAT(v2_->Unwrap(wrapped, "aad"), IsOkAndHolds("secret"));
  CRM_ASSERT_OK_AND_ASSIGN(SecretBytes s, v12_->UnwrapSecret(wrapped, "aad"));
  EXPECT_EQ(s.view(), "secret");
}

TEST_F(KeyRingTest, UnwrapsOlderVersionsAfterRotation) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string old_wrapped, v1_->Wrap("secret", "aad"));
  EXPECT_THAT(v12_->Unwrap(old_wrapped, "aad"), IsOkAndHolds("secret"));
}

TEST_F(KeyRingTest, UnknownVersionIsFailedPreconditionNamingTheVersion) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string old_wrapped, v1_->Wrap("secret", "aad"));
  EXPECT_THAT(v2_->Unwrap(old_wrapped, "aad"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("key version 1")));
}

TEST_F(KeyRingTest, RewrapMovesToNewestVersion) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string old_wrapped, v1_->Wrap("secret", "aad"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string rewrapped, v12_->Rewrap(old_wrapped, "aad"));
  EXPECT_THAT(KeyRing::WrappedVersion(rewrapped), IsOkAndHolds(2u));
  // After retiring version 1, the re-wrapped key still opens.
  EXPECT_THAT(v2_->Unwrap(rewrapped, "aad"), IsOkAndHolds("secret"));
  // Already newest: returned unchanged.
  EXPECT_THAT(v12_->Rewrap(rewrapped, "aad"), IsOkAndHolds(rewrapped));
  // A wrong AAD is not laundered by a rewrap.
  EXPECT_THAT(v12_->Rewrap(old_wrapped, "other"), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(KeyRingTest, TamperingWithHeaderOrBodyIsRejected) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string wrapped, v12_->Wrap("secret", "aad"));
  for (size_t i = 0; i < wrapped.size(); ++i) {
    std::string t = wrapped;
    t[i] = static_cast<char>(t[i] ^ 0x01);
    absl::StatusOr<std::string> r = v12_->Unwrap(t, "aad");
    EXPECT_FALSE(r.ok()) << "byte " << i;
    // A flipped version byte names a version the ring lacks (FAILED_PRECONDITION);
    // any other flipped byte fails authentication (DATA_LOSS).
    EXPECT_THAT(r.status().code(), ::testing::AnyOf(absl::StatusCode::kDataLoss,
                                                    absl::StatusCode::kFailedPrecondition));
  }
  // Version 2 relabelled as version 1 (held) must fail authentication.
  std::string relabelled = wrapped;
  relabelled[4] = 1;
  EXPECT_THAT(v12_->Unwrap(relabelled, "aad"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(v12_->Unwrap(wrapped, "other"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(v12_->Unwrap(wrapped.substr(0, 20), "aad"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(KeyRing::WrappedVersion("\x02xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyRingFileTest, LoadsAPrivateFile) {
  testing::TempDir dir;
  const std::string path = dir.Write("kek.keys", TwoKeyFile(), 0600);
  CRM_ASSERT_OK_AND_ASSIGN(KeyRing ring, KeyRing::LoadFromFile(path));
  EXPECT_EQ(ring.active_version(), 2u);
  EXPECT_THAT(KeyRing::LoadFromFile(dir.Write("group.keys", TwoKeyFile(), 0440)), IsOk());
}

TEST(KeyRingFileTest, RefusesFilesOthersCanReadUnlessTold) {
  testing::TempDir dir;
  const std::string path = dir.Write("kek.keys", TwoKeyFile(), 0644);
  EXPECT_THAT(KeyRing::LoadFromFile(path),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("0644")));
  EXPECT_THAT(KeyRing::LoadFromFile(dir.Write("gw.keys", TwoKeyFile(), 0660)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  KeyFileOptions lax;
  lax.check_permissions = false;
  EXPECT_THAT(KeyRing::LoadFromFile(path, lax), IsOk());
}

TEST(KeyRingFileTest, MissingFileAndParseErrorsNameThePath) {
  testing::TempDir dir;
  EXPECT_THAT(KeyRing::LoadFromFile(dir.path() + "/absent"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent")));
  const std::string bad = dir.Write("bad.keys", "1 " + KeyB64('a') + "\n2 zz\n");
  EXPECT_THAT(KeyRing::LoadFromFile(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad.keys: line 2")));
  EXPECT_THAT(KeyRing::LoadFromFile(dir.path()), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(KeyRingFileTest, OversizedFileIsRefused) {
  testing::TempDir dir;
  KeyFileOptions small;
  small.max_size = 10;
  EXPECT_THAT(KeyRing::LoadFromFile(dir.Write("k", TwoKeyFile()), small),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("too large")));
}

TEST(KeyRingFromKeysTest, RejectsBadSizesAndDuplicates) {
  std::vector<VersionedKey> keys;
  keys.push_back({1, RandomSecret(16)});
  EXPECT_THAT(KeyRing::FromKeys(std::move(keys)), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<VersionedKey> dup;
  dup.push_back({1, RandomSecret(32)});
  dup.push_back({1, RandomSecret(32)});
  EXPECT_THAT(KeyRing::FromKeys(std::move(dup)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(KeyRing::FromKeys({}), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace crm::crypto
