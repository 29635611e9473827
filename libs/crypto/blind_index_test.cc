#include "libs/crypto/blind_index.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/validate.h"
#include "libs/crypto/test_files.h"
#include "libs/testing/status_matchers.h"

namespace crm::crypto {
namespace {

using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

TEST(BlindIndexerTest, MatchesRfc4231Case6) {
  // Any HMAC-SHA256 vector with a key of 32+ bytes checks the construction.
  CRM_ASSERT_OK_AND_ASSIGN(BlindIndexer idx,
                           BlindIndexer::Create(SecretBytes::CopyFrom(std::string(131, '\xaa'))));
  EXPECT_EQ(idx.Hex("Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(
      absl::BytesToHexString(idx.Raw("Test Using Larger Than Block-Size Key - Hash Key First")),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(BlindIndexerTest, NormalisedValuesMatchAndKeysSeparate) {
  CRM_ASSERT_OK_AND_ASSIGN(BlindIndexer a,
                           BlindIndexer::Create(SecretBytes::CopyFrom(std::string(32, 'a'))));
  CRM_ASSERT_OK_AND_ASSIGN(BlindIndexer b,
                           BlindIndexer::Create(SecretBytes::CopyFrom(std::string(32, 'b'))));
  const std::string e1 = base::NormalizeEmail(" Alice@Example.COM ");
  const std::string e2 = base::NormalizeEmail("alice@example.com");
  EXPECT_EQ(a.Raw(e1), a.Raw(e2));
  EXPECT_NE(a.Raw(e1), b.Raw(e1));
  EXPECT_NE(a.Raw(e1), a.Raw("bob@example.com"));
  EXPECT_EQ(a.Hex(e1).size(), 64u);
}

TEST(BlindIndexerTest, ConcurrentCallsAgree) {
  CRM_ASSERT_OK_AND_ASSIGN(BlindIndexer idx,
                           BlindIndexer::Create(SecretBytes::CopyFrom(std::string(32, 'k'))));
  const std::string expected = idx.Raw("+4915112345678");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (idx.Raw("+4915112345678") != expected) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(BlindIndexerTest, ShortKeyIsRejected) {
  EXPECT_THAT(BlindIndexer::Create(SecretBytes::CopyFrom(std::string(31, 'a'))),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BlindIndexerTest, LoadsAOneKeyFile) {
  testing::TempDir dir;
  const std::string key_line = "1 " + absl::Base64Escape(std::string(32, 'a')) + "\n";
  CRM_ASSERT_OK_AND_ASSIGN(BlindIndexer from_file,
                           BlindIndexer::LoadFromFile(dir.Write("bi.key", "# bi\n" + key_line)));
  CRM_ASSERT_OK_AND_ASSIGN(BlindIndexer direct,
                           BlindIndexer::Create(SecretBytes::CopyFrom(std::string(32, 'a'))));
  EXPECT_EQ(from_file.Raw("x"), direct.Raw("x"));
  EXPECT_THAT(BlindIndexer::LoadFromFile(dir.Write(
                  "two.key", key_line + "2 " + absl::Base64Escape(std::string(32, 'b')) + "\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one key")));
  EXPECT_THAT(BlindIndexer::LoadFromFile(dir.Write(
                  "pending.key", "1 " + absl::Base64Escape(std::string(32, 'a')) + " pending\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not pending")));
  EXPECT_THAT(BlindIndexer::LoadFromFile(dir.Write("bad.key", "1 abc\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(BlindIndexer::LoadFromFile(dir.Write("open.key", key_line, 0644)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace crm::crypto
