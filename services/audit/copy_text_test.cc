#include "services/audit/copy_text.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::audit {
namespace {

using ::crm::testing::IsOk;
using pg::CopyField;
using pg::SplitCopyLine;
using ::testing::SizeIs;

TEST(CopyTextTest, LeafRowHasEveryColumnAndAnEmptySubjectIsNull) {
  LeafRecord r;
  r.event_id = "0190c5a2-0000-7000-8000-000000000001";
  r.event_time = absl::FromUnixMicros(1'796'083'200'123'456);
  r.service = "contacts";
  r.action = "person.update";
  r.key_scope = "day:2026-12-01";
  r.sealed = "\x01\x02";
  std::string line;
  AppendLeafCopyRow(line, 7, r, std::string(32, 'h'), "2026-12-01 00:00:00.000000+00");
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();
  std::vector<CopyField> fields;
  ASSERT_THAT(SplitCopyLine(line, fields), IsOk());
  ASSERT_THAT(fields, SizeIs(18));  // kLeafCopyColumns
  EXPECT_EQ(fields[0].value, "7");
  EXPECT_EQ(fields[2].value, "2026-12-01 00:00:00.123456+00");
  EXPECT_TRUE(fields[9].null);   // subject_id
  EXPECT_TRUE(fields[14].null);  // clear_part
  EXPECT_EQ(fields[15].value, "\\x0102");
  r.subject_id = "5b0c8f3e-6d1a-4c2b-9e7f-1a2b3c4d5e6f";
  line.clear();
  AppendLeafCopyRow(line, 7, r, std::string(32, 'h'), "x");
  line.pop_back();
  ASSERT_THAT(SplitCopyLine(line, fields), IsOk());
  EXPECT_EQ(fields[9].value, r.subject_id);
  EXPECT_FALSE(fields[9].null);
}

}  // namespace
}  // namespace crm::audit
