#include "libs/pg/copy_text.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::pg {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::SizeIs;

TEST(CopyTextTest, TextValuesRoundTripThroughSplit) {
  const std::vector<std::string> values = {
      "plain", "", "tab\there", "new\nline", "cr\rhere", "back\\slash", "\\N", "ü ✓", "\\", "\t"};
  std::string line;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) line.push_back('\t');
    AppendCopyText(line, values[i]);
  }
  std::vector<CopyField> fields;
  ASSERT_THAT(SplitCopyLine(line, fields), IsOk());
  ASSERT_THAT(fields, SizeIs(values.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(fields[i].value, values[i]) << i;
    EXPECT_FALSE(fields[i].null) << i;
  }
}

TEST(CopyTextTest, SplitReadsNullsAndEveryEscapeCopyWrites) {
  std::vector<CopyField> fields(7);  // reused: stale values must not survive
  fields[0].value = "stale";
  ASSERT_THAT(SplitCopyLine("\\N\t\ta\\bb\\fc\\vd\\\\e\\z", fields), IsOk());
  EXPECT_THAT(fields, ElementsAre(Field(&CopyField::null, true), Field(&CopyField::null, false),
                                  Field(&CopyField::value, "a\bb\fc\vd\\ez")));
  EXPECT_EQ(fields[0].value, "");
  EXPECT_THAT(SplitCopyLine("ends in\\", fields),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("backslash")));
}

TEST(CopyTextTest, ByteaRoundTripsAndMalformedHexIsRefused) {
  const std::string bytes("\x00\x01\xfe\xff\t\\", 6);
  std::string line;
  AppendCopyBytea(line, bytes, /*empty_is_null=*/false);
  std::vector<CopyField> fields;
  ASSERT_THAT(SplitCopyLine(line, fields), IsOk());
  std::string out = "old";
  ASSERT_THAT(DecodeByteaHex(fields[0].value, out), IsOk());
  EXPECT_EQ(out, bytes);
  ASSERT_THAT(DecodeByteaHex("\\x", out), IsOk());
  EXPECT_EQ(out, "");
  ASSERT_THAT(DecodeByteaHex("\\xABcd", out), IsOk());
  EXPECT_EQ(out, "\xab\xcd");
  for (const char* bad : {"", "x00", "\\x0", "\\xzz", "\\\\x00", "00"}) {
    EXPECT_THAT(DecodeByteaHex(bad, out), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  line.clear();
  AppendCopyBytea(line, "", /*empty_is_null=*/true);
  EXPECT_EQ(line, "\\N");
}

}  // namespace
}  // namespace crm::pg
