#include "libs/base/uuid.h"

#include <algorithm>
#include <set>
#include <vector>

#include "libs/testing/status_matchers.h"

namespace crm::base {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;

TEST(UuidTest, NewUuidIsCanonicalVersion4) {
  const std::string id = NewUuid();
  ASSERT_EQ(id.size(), 36u);
  EXPECT_TRUE(IsUuid(id));
  EXPECT_EQ(id[14], '4');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
  for (char c : id) EXPECT_FALSE(c >= 'A' && c <= 'F');
}

TEST(UuidTest, TimeOrderedUuidCarriesMillisecondsAndVersion7) {
  // 2026-11-28T09:00:00.123Z is 0x01a22161fefb ms since the epoch: the
  // first 48 bits, big-endian.
  const absl::Time t = absl::FromUnixMillis(1795856400123);
  const std::string id = NewTimeOrderedUuid(t);
  ASSERT_TRUE(IsUuid(id));
  EXPECT_EQ(id.substr(0, 13), "01a22161-fefb");
  EXPECT_EQ(id[14], '7');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
  EXPECT_NE(NewTimeOrderedUuid(t), id);  // the rest is random
}

TEST(UuidTest, TimeOrderedUuidsSortByTime) {
  const absl::Time t = absl::FromUnixMillis(1795856400123);
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(NewTimeOrderedUuid(t + absl::Milliseconds(i)));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  // Before the epoch clamps to zero rather than wrapping around.
  EXPECT_EQ(NewTimeOrderedUuid(absl::UnixEpoch() - absl::Hours(1)).substr(0, 13), "00000000-0000");
}

TEST(UuidTest, NewUuidsDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(NewUuid());
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(UuidTest, RejectsMalformed) {
  for (const char* bad :
       {"", "not-a-uuid", "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-4266141740000", "123e4567-e89b-12d3-a456_426614174000",
        "g23e4567-e89b-12d3-a456-426614174000", "' OR 1=1 --"}) {
    EXPECT_FALSE(IsUuid(bad)) << bad;
    EXPECT_THAT(ValidateUuid("subject_id", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("subject_id")));
  }
}

TEST(UuidTest, CanonicalFormIsLowerCase) {
  EXPECT_THAT(CanonicalUuid("id", "123E4567-E89B-12D3-A456-426614174000"),
              IsOkAndHolds("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_THAT(ValidateUuid("id", "123e4567-e89b-12d3-a456-426614174000"), IsOk());
}

TEST(UuidTest, ErrorsNameFieldNotValue) {
  absl::Status s = ValidateUuid("subject_id", "alice@example.com");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          ::testing::Not(::testing::HasSubstr("alice"))));
}

}  // namespace
}  // namespace crm::base
