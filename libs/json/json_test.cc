#include "libs/json/json.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::json {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Optional;

TEST(JsonParseTest, ParsesAllValueKinds) {
  CRM_ASSERT_OK_AND_ASSIGN(
      Value v, Parse(R"( {"s":"a\"b\\c\/\n\u00e9\ud83d\ude00","n":-12,"f":1.5e2,"t":true,)"
                     R"("F":false,"z":null,"a":[1,[],{}],"o":{"k":"v"}} )"));
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.Find("s")->string_value(), "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_THAT(v.Find("n")->AsInt64(), Optional(-12));
  EXPECT_DOUBLE_EQ(v.Find("f")->number(), 150.0);
  EXPECT_EQ(v.Find("f")->AsInt64(), std::nullopt);
  EXPECT_TRUE(v.Find("t")->bool_value());
  EXPECT_FALSE(v.Find("F")->bool_value());
  EXPECT_TRUE(v.Find("z")->is_null());
  ASSERT_TRUE(v.Find("a")->is_array());
  EXPECT_EQ(v.Find("a")->array().size(), 3u);
  EXPECT_EQ(v.Find("o")->Find("k")->string_value(), "v");
  EXPECT_EQ(v.Find("missing"), nullptr);
  EXPECT_EQ(v.Find("s")->Find("x"), nullptr);  // not an object
}

TEST(JsonParseTest, IntegersBeyondInt64AreNotExact) {
  CRM_ASSERT_OK_AND_ASSIGN(Value big, Parse("9223372036854775808"));
  EXPECT_EQ(big.AsInt64(), std::nullopt);
  CRM_ASSERT_OK_AND_ASSIGN(Value max, Parse("9223372036854775807"));
  EXPECT_THAT(max.AsInt64(), Optional(INT64_MAX));
}

TEST(JsonParseTest, RejectsEverythingOutsideTheGrammar) {
  const char* bad[] = {
      "",
      " ",
      "{",
      "}",
      "[1,]",
      "{\"a\":1,}",
      "{'a':1}",
      "{a:1}",
      "01",
      "-",
      "1.",
      ".5",
      "1e",
      "+1",
      "NaN",
      "Infinity",
      "1e999",
      "tru",
      "nul",
      "\"abc",
      "\"\\x\"",
      "\"\\u12\"",
      "\"\\ud800\"",
      "\"\\udc00\"",
      "\"\\ud800\\u0041\"",
      "\"a\tb\"",
      "\"\x01\"",
      "[1 2]",
      "{\"a\" 1}",
      "1 2",
      "{} x",
      "/*c*/1",
      "\"\xc0\xaf\"",
      "\"\xed\xa0\x80\"",
      "\"\xf4\x90\x80\x80\"",
      "\"\xe2\x82\"",
      "\xef\xbb\xbf{}",
      "{\"a\":1,\"a\":2}",
  };
  for (const char* text : bad) {
    EXPECT_THAT(Parse(text), StatusIs(absl::StatusCode::kInvalidArgument)) << text;
  }
}

TEST(JsonParseTest, DepthLimit) {
  ParseOptions opts;
  opts.max_depth = 4;
  EXPECT_THAT(Parse("[[[[1]]]]", opts), IsOk());
  EXPECT_THAT(Parse("[[[[[1]]]]]", opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too deep")));
  EXPECT_THAT(Parse("{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too deep")));
  // The default survives hostile nesting without recursing far.
  EXPECT_THAT(Parse(std::string(100000, '[')), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(JsonParseTest, SizeLimit) {
  ParseOptions opts;
  opts.max_size = 10;
  EXPECT_THAT(Parse("\"12345678\"", opts), IsOk());
  EXPECT_THAT(Parse("\"123456789\"", opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too large")));
}

TEST(JsonParseTest, ErrorsDoNotEchoInput) {
  absl::StatusOr<Value> v = Parse("{\"email\":\"alice@example.com\" x}");
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()), ::testing::Not(HasSubstr("alice")));
}

TEST(JsonWriteTest, AppendStringRoundTrips) {
  const std::string original = std::string("q\"b\\s/\n\r\t\x01\x1f") + "\xc3\xa9 end";
  std::string out;
  AppendString(&out, original);
  EXPECT_EQ(out, "\"q\\\"b\\\\s/\\n\\r\\t\\u0001\\u001f\xc3\xa9 end\"");
  CRM_ASSERT_OK_AND_ASSIGN(Value back, Parse(out));
  EXPECT_EQ(back.string_value(), original);
}

}  // namespace
}  // namespace crm::json
