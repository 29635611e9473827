#include "libs/dkim/canonicalization.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::dkim {
namespace {

using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> Names(const ParsedMessage& m) {
  std::vector<std::string> out;
  for (const HeaderField& h : m.headers) out.emplace_back(h.name);
  return out;
}

std::vector<std::string> Fields(const ParsedMessage& m) {
  std::vector<std::string> out;
  for (const HeaderField& h : m.headers) out.emplace_back(h.field);
  return out;
}

// RFC 6376 §3.4.5, "relaxed" header canonicalization of
//   A: X
//   B : Y<TAB>
//   <TAB>Z<SP><SP>
// gives "a:X<CRLF>b:Y<SP>Z<CRLF>".
TEST(RelaxedHeaderTest, Rfc6376Section345Example) {
  const std::string message = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n";
  CRM_ASSERT_OK_AND_ASSIGN(ParsedMessage parsed, ParseMessage(message));
  EXPECT_THAT(Names(parsed), ElementsAre("A", "B"));
  EXPECT_THAT(Fields(parsed), ElementsAre("A: X\r\n", "B : Y\t\r\n\tZ  \r\n"));
  std::string canonical;
  for (const HeaderField& h : parsed.headers) canonical += RelaxedHeader(h.field);
  EXPECT_EQ(canonical, "a:X\r\nb:Y Z\r\n");
}

// RFC 6376 §3.4.5, "relaxed" body canonicalization of
//   <SP>C<SP>
//   D<SP><TAB><SP>E
//   (two empty lines)
// gives "<SP>C<CRLF>D<SP>E<CRLF>".
TEST(RelaxedBodyTest, Rfc6376Section345Example) {
  EXPECT_EQ(RelaxedBody(" C \r\nD \t E\r\n\r\n\r\n"), " C\r\nD E\r\n");
}

TEST(RelaxedHeaderTest, LowercasesNameAndKeepsValueCase) {
  EXPECT_EQ(RelaxedHeader("SUBJECT: Hello World\r\n"), "subject:Hello World\r\n");
}

TEST(RelaxedHeaderTest, EmptyValueKeepsColon) {
  EXPECT_EQ(RelaxedHeader("Subject:\r\n"), "subject:\r\n");
  EXPECT_EQ(RelaxedHeader("Subject:  \t \r\n"), "subject:\r\n");
}

TEST(RelaxedHeaderTest, ValueStartingOnContinuationLineIsUnfolded) {
  EXPECT_EQ(
      RelaxedHeader("List-Unsubscribe:\r\n <https://u.example/x>,\r\n\t<mailto:u@example>\r\n"),
      "list-unsubscribe:<https://u.example/x>, <mailto:u@example>\r\n");
}

TEST(RelaxedHeaderTest, MissingFinalCrlfIsAdded) {
  EXPECT_EQ(RelaxedHeader("DKIM-Signature: v=1;\r\n\tb="), "dkim-signature:v=1; b=\r\n");
}

TEST(RelaxedHeaderTest, NonAsciiBytesUnchanged) {
  EXPECT_EQ(
      RelaxedHeader("Subject: Za\xC5\xBC\xC3\xB3\xC5\x82\xC4\x87  g\xC4\x99\xC5\x9Bl\xC4\x85\r\n"),
      "subject:Za\xC5\xBC\xC3\xB3\xC5\x82\xC4\x87 g\xC4\x99\xC5\x9Bl\xC4\x85\r\n");
}

TEST(RelaxedBodyTest, EmptyBodyIsEmptyNotCrlf) {
  // §3.4.4 has no "add a CRLF to an empty body" rule (that is §3.4.3, simple);
  // dkimpy and OpenDKIM agree: the hash is SHA-256 of "".
  EXPECT_EQ(RelaxedBody(""), "");
  EXPECT_EQ(RelaxedBody("\r\n"), "");
  EXPECT_EQ(RelaxedBody("\r\n\r\n\r\n"), "");
  EXPECT_EQ(RelaxedBody(" \t\r\n\t\r\n"), "");
}

TEST(RelaxedBodyTest, MissingFinalCrlfIsAdded) {
  EXPECT_EQ(RelaxedBody("no newline"), "no newline\r\n");
  EXPECT_EQ(RelaxedBody("a\r\nlast  "), "a\r\nlast\r\n");
}

TEST(RelaxedBodyTest, InnerEmptyLinesAndLeadingWhitespaceKept) {
  EXPECT_EQ(RelaxedBody("a\r\n\r\n\r\n  b\r\n"), "a\r\n\r\n\r\n b\r\n");
}

TEST(RelaxedBodyTest, TrailingBlankLinesRemoved) {
  EXPECT_EQ(RelaxedBody("text\r\n  \r\n\t\r\n\r\n"), "text\r\n");
}

TEST(RelaxedBodyTest, Utf8BodyUnchanged) {
  const std::string body = "Za\xC5\xBC\xC3\xB3\xC5\x82\xC4\x87 g\xC4\x99\xC5\x9Bl\xC4\x85\r\n";
  EXPECT_EQ(RelaxedBody(body), body);
}

TEST(ParseMessageTest, SplitsHeaderAndBody) {
  const std::string message =
      "From: a@example.com\r\nSubject: one\r\n two\r\n\tthree\r\nTo: b@example.com\r\n\r\n"
      "body line\r\n\r\n";
  CRM_ASSERT_OK_AND_ASSIGN(ParsedMessage parsed, ParseMessage(message));
  EXPECT_THAT(Names(parsed), ElementsAre("From", "Subject", "To"));
  EXPECT_THAT(Fields(parsed),
              ElementsAre("From: a@example.com\r\n", "Subject: one\r\n two\r\n\tthree\r\n",
                          "To: b@example.com\r\n"));
  EXPECT_EQ(parsed.body, "body line\r\n\r\n");
}

TEST(ParseMessageTest, EmptyBodyAfterSeparatorIsAccepted) {
  CRM_ASSERT_OK_AND_ASSIGN(ParsedMessage parsed, ParseMessage("From: a@example.com\r\n\r\n"));
  EXPECT_EQ(parsed.headers.size(), 1u);
  EXPECT_EQ(parsed.body, "");
}

TEST(ParseMessageTest, BodyMayHoldHeaderLikeLinesAndBareColons) {
  CRM_ASSERT_OK_AND_ASSIGN(ParsedMessage parsed,
                           ParseMessage("From: a@example.com\r\n\r\nTo: not a header\r\n"));
  EXPECT_THAT(Names(parsed), ElementsAre("From"));
  EXPECT_EQ(parsed.body, "To: not a header\r\n");
}

// Every refusal: INVALID_ARGUMENT with a message that never repeats the
// message's content (the secret marker).
constexpr char kSecret[] = "secret-person@example.org";

TEST(ParseMessageTest, RefusesMessageWithoutSeparator) {
  EXPECT_THAT(ParseMessage(std::string("From: ") + kSecret + "\r\nSubject: x\r\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("no empty line"), Not(HasSubstr(kSecret)))));
  EXPECT_THAT(ParseMessage(std::string("From: ") + kSecret),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no empty line")));
  EXPECT_THAT(ParseMessage(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no empty line")));
}

TEST(ParseMessageTest, RefusesBareLineEnds) {
  for (const std::string& message : {
           std::string("From: ") + kSecret + "\n\r\nbody\r\n",
           std::string("From: ") + kSecret + "\r\n\r\nbody\n",
           std::string("From: ") + kSecret + "\r\n\r\nbo\rdy\r\n",
           std::string("From: ") + kSecret + "\r\n\r\nbody\r",
           std::string("\nFrom: ") + kSecret + "\r\n\r\n",
       }) {
    EXPECT_THAT(ParseMessage(message), StatusIs(absl::StatusCode::kInvalidArgument,
                                                AllOf(HasSubstr("CRLF"), Not(HasSubstr(kSecret)))));
  }
}

TEST(ParseMessageTest, RefusesLeadingContinuationLine) {
  EXPECT_THAT(
      ParseMessage(std::string(" folded ") + kSecret + "\r\nFrom: a@b.example\r\n\r\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("line 1"), HasSubstr("continuation"), Not(HasSubstr(kSecret)))));
}

TEST(ParseMessageTest, RefusesLinesThatAreNotFields) {
  for (const std::string& line : {std::string("no colon ") + kSecret,
                                  std::string("From ") + kSecret + " Mon Jan  1 00:00:00 2024",
                                  std::string(": ") + kSecret}) {
    EXPECT_THAT(ParseMessage("From: a@b.example\r\n" + line + "\r\n\r\n"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("line 2"), Not(HasSubstr(kSecret)))))
        << line;
  }
}

TEST(ParseMessageTest, FieldNameMayHaveWhitespaceBeforeColon) {
  CRM_ASSERT_OK_AND_ASSIGN(ParsedMessage parsed, ParseMessage("From \t: a@b.example\r\n\r\n"));
  EXPECT_THAT(Names(parsed), ElementsAre("From"));
}

}  // namespace
}  // namespace crm::dkim
