#include "libs/rpc/request_id.h"

#include "gtest/gtest.h"

namespace crm::rpc {
namespace {

TEST(RequestIdTest, AcceptsUuidsAndShortTokens) {
  EXPECT_TRUE(IsValidRequestId("6f1c2a52-3d0e-4a3b-9a51-0c7d1c3e8f00"));
  EXPECT_TRUE(IsValidRequestId("req_42.a-b"));
  EXPECT_TRUE(IsValidRequestId(std::string(64, 'a')));
}

TEST(RequestIdTest, RefusesEmptyLongAndOddCharacters) {
  EXPECT_FALSE(IsValidRequestId(""));
  EXPECT_FALSE(IsValidRequestId(std::string(65, 'a')));
  EXPECT_FALSE(IsValidRequestId("alice@example.com"));
  EXPECT_FALSE(IsValidRequestId("a b"));
  EXPECT_FALSE(IsValidRequestId("a\nb"));
}

TEST(RequestIdTest, ScopesNestAndRestore) {
  EXPECT_EQ(CurrentRequestId(), "");
  {
    RequestIdScope outer("outer");
    EXPECT_EQ(CurrentRequestId(), "outer");
    {
      RequestIdScope inner("inner");
      EXPECT_EQ(CurrentRequestId(), "inner");
    }
    EXPECT_EQ(CurrentRequestId(), "outer");
    {
      RequestIdScope invalid("not valid!");
      EXPECT_EQ(CurrentRequestId(), "");
    }
    EXPECT_EQ(CurrentRequestId(), "outer");
  }
  EXPECT_EQ(CurrentRequestId(), "");
}

}  // namespace
}  // namespace crm::rpc
