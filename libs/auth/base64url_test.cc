#include "libs/auth/base64url.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace crm::auth {
namespace {

using ::testing::Optional;

TEST(Base64UrlTest, Rfc4648Examples) {
  // RFC 4648 section 10, in the URL alphabet without padding.
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_THAT(Base64UrlDecode("Zm9vYg"), Optional(std::string("foob")));
  EXPECT_THAT(Base64UrlDecode("-_8"), Optional(std::string("\xfb\xff")));
}

TEST(Base64UrlTest, DecoderIsStrict) {
  EXPECT_EQ(Base64UrlDecode("Zg=="), std::nullopt);   // padding
  EXPECT_EQ(Base64UrlDecode("+/8"), std::nullopt);    // standard alphabet
  EXPECT_EQ(Base64UrlDecode("Zm 9v"), std::nullopt);  // whitespace
  EXPECT_EQ(Base64UrlDecode("Z"), std::nullopt);      // impossible length
  EXPECT_EQ(Base64UrlDecode("Zh"), std::nullopt);     // non-zero trailing bits
  EXPECT_EQ(Base64UrlDecode("Zm9=v"), std::nullopt);
}

}  // namespace
}  // namespace crm::auth
