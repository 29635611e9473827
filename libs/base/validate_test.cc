#include "libs/base/validate.h"

#include <string>

#include "libs/testing/status_matchers.h"

namespace crm::base {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(Utf8Test, AcceptsTextInManyScripts) {
  EXPECT_TRUE(IsValidUtf8Text("Zażółć gęślą jaźń"));
  EXPECT_TRUE(IsValidUtf8Text("日本語テキスト"));
  EXPECT_TRUE(IsValidUtf8Text("emoji \xF0\x9F\x98\x80 and tab\tnewline\n"));
  EXPECT_TRUE(IsValidUtf8Text(""));
}

TEST(Utf8Test, RejectsMalformedAndControlCharacters) {
  for (const std::string& bad : {
           std::string("\xC0\xAF"),          // overlong '/'
           std::string("\xE0\x80\xAF"),      // overlong
           std::string("\xED\xA0\x80"),      // surrogate
           std::string("\xF4\x90\x80\x80"),  // > U+10FFFF
           std::string("\xC3"),              // truncated
           std::string("ab\xE2\x82"),        // truncated at end
           std::string("\x80"),              // lone continuation
           std::string("\xFF"),              // invalid byte
           std::string("nul\0byte", 8),      // NUL
           std::string("bell\x07"),          // C0 control
           std::string("del\x7F"),           // DEL
           std::string("c1\xC2\x85"),        // C1 control (NEL)
       }) {
    EXPECT_FALSE(IsValidUtf8Text(bad)) << ::testing::PrintToString(bad);
  }
}

TEST(Utf8Test, LengthCountsCodePoints) {
  EXPECT_EQ(Utf8Length("abc"), 3u);
  EXPECT_EQ(Utf8Length("żółw"), 4u);
  EXPECT_EQ(Utf8Length("\xF0\x9F\x98\x80"), 1u);
}

TEST(ValidateTextTest, EnforcesRequiredAndBounds) {
  EXPECT_THAT(ValidateText("display_name", "", 1, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("display_name: required")));
  EXPECT_THAT(ValidateText("note", "", 0, 10), IsOk());
  EXPECT_THAT(ValidateText("display_name", "żółwżółwżó", 1, 10), IsOk());
  EXPECT_THAT(ValidateText("display_name", "żółwżółwżół", 1, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 10")));
  EXPECT_THAT(ValidateText("code", "ab", 3, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 3")));
  EXPECT_THAT(ValidateText("note", std::string("a\0b", 3), 0, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("note")));
}

TEST(ValidateEmailTest, AcceptsOrdinaryAddresses) {
  for (const char* ok :
       {"anna@example.com", "anna.kowalska+crm@mail.example.co.uk", "o'brien@example.ie",
        "x@xn--bcher-kva.example", "A_B-c@sub-1.example.org"}) {
    EXPECT_THAT(ValidateEmail("email", ok), IsOk()) << ok;
  }
}

TEST(ValidateEmailTest, RejectsMalformedWithoutEchoingTheValue) {
  const std::string long_local(65, 'a');
  const std::string long_total = std::string(64, 'a') + "@" + std::string(190, 'b') + ".com";
  for (const std::string& bad :
       {std::string(""), std::string("anna"), std::string("@example.com"), std::string("anna@"),
        std::string("anna@localhost"), std::string(".anna@example.com"),
        std::string("anna.@example.com"), std::string("an..na@example.com"),
        std::string("an na@example.com"), std::string("anna@exa_mple.com"),
        std::string("anna@-example.com"), std::string("anna@example..com"),
        std::string("anna@example.com\r\nBcc: victim@example.com"), long_local + "@example.com",
        long_total, std::string("\"quoted\"@example.com"), std::string("anna@ex ample.com")}) {
    EXPECT_THAT(ValidateEmail("email", bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("email"), Not(HasSubstr("anna")))))
        << bad;
  }
}

TEST(ValidatePhoneTest, AcceptsE164) {
  EXPECT_THAT(ValidatePhoneE164("phone", "+48123456789"), IsOk());
  EXPECT_THAT(ValidatePhoneE164("phone", "+12025550123"), IsOk());
  EXPECT_THAT(ValidatePhoneE164("phone", "+123456789012345"), IsOk());
}

TEST(ValidatePhoneTest, RejectsOtherForms) {
  for (const char* bad : {"", "48123456789", "+0123456789", "+48 123 456 789", "+4812345",
                          "+1234567890123456", "+48-123-456-789", "+48123456789x"}) {
    EXPECT_THAT(ValidatePhoneE164("phone", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("phone")))
        << bad;
  }
}

TEST(NormalizeTest, EmailAndPhoneNormaliseForBlindIndexes) {
  EXPECT_EQ(NormalizeEmail("  Anna.Kowalska@Example.COM "), "anna.kowalska@example.com");
  EXPECT_EQ(NormalizePhone(" +48 (12) 345-67.89 "), "+48123456789");
}

TEST(PrintableAsciiTest, ReplacesWhatIsNotPrintableAsciiAndCuts) {
  EXPECT_EQ(PrintableAscii("Mozilla/5.0 (X11)", 100), "Mozilla/5.0 (X11)");
  EXPECT_EQ(PrintableAscii("a\r\nb\x7f\xc3\xa9", 100), "a??b???");
  EXPECT_EQ(PrintableAscii(std::string(600, 'x'), 500).size(), 500u);
  EXPECT_EQ(PrintableAscii("", 10), "");
}

}  // namespace
}  // namespace crm::base
