// Unit tests of mailing's pure logic: link tokens, template validation,
// rendering with escaping, message composition, transactional requests.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/crypto/primitives.h"
#include "libs/testing/status_matchers.h"
#include "services/mailing/rate_limiter.h"
#include "services/mailing/render.h"
#include "services/mailing/tokens.h"
#include "services/mailing/transactional.h"

namespace crm::mailing {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSubject[] = "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d";
const absl::Time kNow = absl::FromUnixSeconds(1'796'000'000);

LinkTokens Tokens(char fill = 'k') {
  absl::StatusOr<LinkTokens> t =
      LinkTokens::Create(crypto::SecretBytes::CopyFrom(std::string(32, fill)));
  EXPECT_TRUE(t.ok());
  return *std::move(t);
}

TEST(LinkTokensTest, RoundTripNamesSubjectListAndTime) {
  const LinkTokens tokens = Tokens();
  const std::string t = tokens.Issue(TokenKind::kUnsubscribe, kSubject, "newsletter.en", kNow);
  EXPECT_THAT(t, Not(HasSubstr(kSubject)));  // not readable at a glance; ids only anyway
  CRM_ASSERT_OK_AND_ASSIGN(
      LinkClaims c, tokens.Verify(TokenKind::kUnsubscribe, t, kNow + absl::Hours(24 * 3650)));
  EXPECT_EQ(c.subject_id, kSubject);
  EXPECT_EQ(c.list_id, "newsletter.en");
  EXPECT_EQ(c.issued_at, kNow);
}

TEST(LinkTokensTest, ForgedAlteredOtherKindOtherKeyAndExpiredAreRefused) {
  const LinkTokens tokens = Tokens();
  const std::string t = tokens.Issue(TokenKind::kUnsubscribe, kSubject, "news", kNow);
  // Another key, another kind.
  EXPECT_THAT(Tokens('x').Verify(TokenKind::kUnsubscribe, t, kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid")));
  EXPECT_THAT(tokens.Verify(TokenKind::kConfirm, t, kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid")));
  // Every single-character change of the payload or tag.
  const size_t first_dot = t.find('.');
  for (size_t i = first_dot + 1; i < t.size(); ++i) {
    if (t[i] == '.') continue;
    std::string bad = t;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(tokens.Verify(TokenKind::kUnsubscribe, bad, kNow).ok()) << i;
  }
  for (const char* junk : {"", "u", "u..", "u.AAAA.AAAA", "x.y.z.w", "u.!!!.???"}) {
    EXPECT_THAT(tokens.Verify(TokenKind::kUnsubscribe, junk, kNow),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << junk;
  }
  EXPECT_THAT(tokens.Verify(TokenKind::kUnsubscribe, std::string(600, 'a'), kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
  // Confirmation links expire.
  const std::string c = tokens.Issue(TokenKind::kConfirm, kSubject, "news", kNow);
  EXPECT_TRUE(tokens.Verify(TokenKind::kConfirm, c, kNow + absl::Hours(47), absl::Hours(48)).ok());
  EXPECT_THAT(tokens.Verify(TokenKind::kConfirm, c, kNow + absl::Hours(49), absl::Hours(48)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expired")));
  EXPECT_THAT(LinkTokens::Create(crypto::SecretBytes::CopyFrom("short")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

v1::Template Tmpl(std::string subject, std::string text, std::string html = "") {
  v1::Template t;
  t.set_template_id("spring");
  t.set_subject(std::move(subject));
  t.set_text_body(std::move(text));
  t.set_html_body(std::move(html));
  return t;
}

TEST(TemplateTest, OnlyAllowedPlaceholdersAndNamedFields) {
  EXPECT_TRUE(ValidateTemplate(
                  Tmpl("Hi {{first_name}}", "Text {{unsubscribe_url}}", "<b>{{first_name}}</b>"),
                  CampaignPlaceholders(), "template")
                  .ok());
  EXPECT_THAT(ValidateTemplate(Tmpl("Hi", "Text {{password}}"), CampaignPlaceholders(), "template"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("template.text_body: unknown placeholder {{password}}")));
  EXPECT_THAT(ValidateTemplate(Tmpl("Hi {{first_name", "x"), CampaignPlaceholders(), "template"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("template.subject: a placeholder is not closed")));
  EXPECT_THAT(ValidateTemplate(Tmpl("Hi", "x", "{{First}}"), CampaignPlaceholders(), "template"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.html_body")));
  EXPECT_THAT(ValidateTemplate(Tmpl("", "x"), CampaignPlaceholders(), "template"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.subject")));
  EXPECT_THAT(
      ValidateTemplate(Tmpl("a\r\nBcc: x@y.example", "x"), CampaignPlaceholders(), "template"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.subject")));
  EXPECT_THAT(ValidateTemplate(Tmpl("Hi", ""), CampaignPlaceholders(), "template"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.text_body")));
  EXPECT_THAT(ValidateTemplate(Tmpl("Hi", "bad \xff utf8"), CampaignPlaceholders(), "template"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.text_body")));
}

TEST(TemplateTest, ValuesAreEscapedForWhereTheyLand) {
  const Rendered r =
      Render(Tmpl("Hello {{first_name}}!", "Dear {{first_name}},", "<p>Dear {{first_name}}</p>"),
             {{"first_name", "<script>alert('x')</script>\r\nBcc: evil@x.example"}});
  EXPECT_EQ(r.subject, "Hello <script>alert('x')</script>  Bcc: evil@x.example!");
  EXPECT_THAT(r.html, HasSubstr("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
  EXPECT_THAT(r.html, Not(HasSubstr("<script>")));
  EXPECT_THAT(r.text, HasSubstr("Dear <script>"));
  EXPECT_EQ(Render(Tmpl("{{first_name}}", "{{missing}}x"), {}).text, "x");
}

TEST(MessageTest, MarketingMessageHasFooterAndOneClickHeaders) {
  Envelope e{.from = "Shop <news@shop.example>",
             .to = "ann@example.com",
             .message_id = "6b0e7a1c-1d2e-4f3a-8b4c-5d6e7f8a9b0c@shop.example",
             .unsubscribe_url = "https://crm.shop.example/u/u.AAA.BBB",
             .date = kNow};
  const Rendered r = Render(
      Tmpl("Spring sale – 20 % off", "Hello Ann", "<html><body><p>Hello</p></body></html>"), {});
  CRM_ASSERT_OK_AND_ASSIGN(std::string m, ComposeMessage(e, r));
  EXPECT_THAT(m, HasSubstr("\r\nList-Unsubscribe: <https://crm.shop.example/u/u.AAA.BBB>\r\n"));
  EXPECT_THAT(m, HasSubstr("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
  EXPECT_THAT(m, HasSubstr("Message-ID: <6b0e7a1c-1d2e-4f3a-8b4c-5d6e7f8a9b0c@shop.example>\r\n"));
  EXPECT_THAT(m, HasSubstr("Subject: =?UTF-8?B?"));  // the en dash
  EXPECT_THAT(m, HasSubstr("Content-Type: multipart/alternative"));
  // The footer link is in both bodies (quoted-printable may fold it: unfold).
  std::string unfolded = absl::StrReplaceAll(m, {{"=\r\n", ""}});
  EXPECT_THAT(unfolded, HasSubstr("follow this link: https://crm.shop.example/u/u.AAA.BBB"));
  EXPECT_THAT(
      unfolded,
      HasSubstr("<a href=3D\"https://crm.shop.example/u/u.AAA.BBB\">Unsubscribe</a></p></body>"));
  // Every line is CRLF-terminated and at most 998 characters (RFC 5322).
  for (absl::string_view line : absl::StrSplit(m, "\r\n")) {
    EXPECT_LE(line.size(), 998u);
    EXPECT_FALSE(absl::StrContains(line, "\n")) << line;
  }
  // A transactional message: neither footer nor List-* headers.
  e.unsubscribe_url.clear();
  CRM_ASSERT_OK_AND_ASSIGN(m, ComposeMessage(e, Render(Tmpl("Code", "Your code"), {})));
  EXPECT_THAT(m, Not(HasSubstr("List-Unsubscribe")));
  EXPECT_THAT(m, Not(HasSubstr("unsubscribe")));
  EXPECT_THAT(m, HasSubstr("Content-Type: text/plain; charset=utf-8"));
  // Header injection through the envelope is refused.
  e.to = "ann@example.com\r\nBcc: all@example.com";
  EXPECT_THAT(ComposeMessage(e, r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to")));
}

// Found by tests/fuzz (mail_render): a NUL or other control character in an
// envelope field reached the header, and the SMTP client then refused the
// whole message ("message: NUL byte").
TEST(MessageTest, ControlCharactersInTheEnvelopeAreRefused) {
  const Rendered r = Render(Tmpl("Code", "Your code"), {});
  for (const std::string& bad :
       {std::string("ann@example.com\0", 16), std::string("ann\t@example.com"),
        std::string("ann@example.com\x0b"), std::string("ann@example.com\x7f")}) {
    Envelope e{.from = "Shop <news@shop.example>",
               .to = bad,
               .message_id = "6b0e7a1c-1d2e-4f3a-8b4c-5d6e7f8a9b0c@shop.example",
               .date = kNow};
    EXPECT_THAT(ComposeMessage(e, r),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("to")));
    e.to = "ann@example.com";
    e.from = bad;
    EXPECT_THAT(ComposeMessage(e, r),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from")));
  }
}

TEST(MessageTest, QuotedPrintableKeepsLinesShortAndEncodesWhatItMust) {
  EXPECT_EQ(QuotedPrintable("a=b\n"), "a=3Db\r\n");
  EXPECT_EQ(QuotedPrintable("trailing \nx"), "trailing=20\r\nx");
  EXPECT_EQ(QuotedPrintable("\xc3\xa9"), "=C3=A9");
  const std::string long_line = QuotedPrintable(std::string(200, 'x'));
  for (absl::string_view line : absl::StrSplit(long_line, "\r\n")) EXPECT_LE(line.size(), 76u);
  EXPECT_EQ(absl::StrReplaceAll(long_line, {{"=\r\n", ""}}), std::string(200, 'x'));
  EXPECT_EQ(EncodeHeaderWord("plain"), "plain");
  const std::string word = EncodeHeaderWord(std::string(100, '\xc3'));
  EXPECT_THAT(word, HasSubstr("\r\n "));  // folded into several words
}

v1::SendTransactionalRequest Code(const std::string& code) {
  v1::SendTransactionalRequest r;
  r.set_kind(v1::TRANSACTIONAL_KIND_VERIFICATION_CODE);
  r.set_address("ann@example.com");
  (*r.mutable_params())["code"] = code;
  r.set_dedup_key("portal:login:7f3a");
  return r;
}

TEST(TransactionalTest, AWellFormedRequestOfEachKindPasses) {
  EXPECT_THAT(ValidateTransactional(Code("X7K2P9")), IsOk());
  v1::SendTransactionalRequest erased;
  erased.set_kind(v1::TRANSACTIONAL_KIND_ERASURE_CONFIRMED);
  erased.set_subject_id(kSubject);
  (*erased.mutable_params())["request_id"] = "r-1";
  (*erased.mutable_params())["completed_at"] = "2026-11-29";
  (*erased.mutable_params())["certificate_url"] = "https://crm.shop.example/certificates/r-1";
  erased.set_dedup_key("erasure:r-1");
  EXPECT_THAT(ValidateTransactional(erased), IsOk());
  v1::SendTransactionalRequest ready;
  ready.set_kind(v1::TRANSACTIONAL_KIND_ACCESS_READY);
  ready.set_address("ann@example.com");
  (*ready.mutable_params())["request_id"] = "r-2";
  (*ready.mutable_params())["expires_at"] = "2026-12-13 10:00 UTC";
  ready.set_dedup_key("access:r-2:0");
  EXPECT_THAT(ValidateTransactional(ready), IsOk());
  v1::SendTransactionalRequest extended;
  extended.set_kind(v1::TRANSACTIONAL_KIND_REQUEST_EXTENDED);
  extended.set_address("ann@example.com");
  for (const char* name : {"request_id", "request_kind", "due_at", "reason"}) {
    (*extended.mutable_params())[name] = "x";
  }
  extended.set_dedup_key("extended:r-2:1:0");
  EXPECT_THAT(ValidateTransactional(extended), IsOk());
  // Each new kind's required parameters are required.
  extended.mutable_params()->erase("reason");
  EXPECT_THAT(ValidateTransactional(extended),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reason")));
  (*ready.mutable_params())["completed_at"] = "2026-11-29";  // another kind's
  EXPECT_THAT(ValidateTransactional(ready),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("completed_at")));
}

TEST(TransactionalTest, BadRequestsNameTheField) {
  auto refused = [](const v1::SendTransactionalRequest& r, const std::string& field) {
    EXPECT_THAT(ValidateTransactional(r),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << r.ShortDebugString();
  };
  v1::SendTransactionalRequest r = Code("X7K2P9");
  r.set_kind(v1::TRANSACTIONAL_KIND_UNSPECIFIED);
  refused(r, "kind");
  r.set_kind(static_cast<v1::TransactionalKind>(99));
  refused(r, "kind");
  r = Code("X7K2P9");
  r.clear_address();
  refused(r, "subject_id");  // neither a subject nor an address
  r.set_subject_id("not-a-uuid");
  refused(r, "subject_id");
  r.set_address("ann@example.com\r\nBcc: all@example.com");
  refused(r, "address");
  r = Code("X7K2P9");
  (*r.mutable_params())["password"] = "x";
  refused(r, "params[password]: not a parameter of verification_code");
  r = Code("X7K2P9");
  (*r.mutable_params())["first_name"] = "x";  // filled from contacts only
  refused(r, "params[first_name]");
  r = Code("X7K2P9");
  (*r.mutable_params())["\x01<script>"] = "x";  // not echoed
  EXPECT_THAT(ValidateTransactional(r),
              StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr("script"))));
  refused(Code(""), "params[code]: required");
  refused(Code("abc1"), "params[code]");
  refused(Code("123"), "params[code]");
  refused(Code(std::string(13, '1')), "params[code]");
  v1::SendTransactionalRequest expiring;
  expiring.set_kind(v1::TRANSACTIONAL_KIND_GRANT_EXPIRING);
  expiring.set_subject_id(kSubject);
  expiring.set_dedup_key("grant:1");
  (*expiring.mutable_params())["purpose"] = "newsletter";
  refused(expiring, "params[expires_at]: required");
  (*expiring.mutable_params())["expires_at"] = "2026-12-31\r\nBcc: x@y.example";
  refused(expiring, "params[expires_at]: one line");
  (*expiring.mutable_params())["expires_at"] = std::string(1001, 'x');
  refused(expiring, "params[expires_at]: at most 1,000 bytes");
  (*expiring.mutable_params())["expires_at"] = "\xff\xfe";
  refused(expiring, "params[expires_at]");
  r = Code("X7K2P9");
  r.set_dedup_key("");
  refused(r, "dedup_key");
  r.set_dedup_key("ann@example.com");  // no addresses as keys
  refused(r, "dedup_key");
  r.set_dedup_key(std::string(201, 'k'));
  refused(r, "dedup_key");
  r = Code("X7K2P9");
  for (int i = 0; i < 17; ++i) (*r.mutable_params())[absl::StrCat("p", i)] = "x";
  refused(r, "params: at most 16");
}

TEST(TransactionalTest, TemplatesOfAKindMayUseOnlyItsPlaceholders) {
  CRM_ASSERT_OK_AND_ASSIGN(auto campaign, PlaceholdersOf("template.template_id", "spring"));
  EXPECT_EQ(campaign, &CampaignPlaceholders());
  CRM_ASSERT_OK_AND_ASSIGN(
      auto code, PlaceholdersOf("template.template_id", "transactional.verification_code"));
  EXPECT_TRUE(code->contains("code"));
  EXPECT_FALSE(code->contains("unsubscribe_url"));
  EXPECT_THAT(PlaceholdersOf("template.template_id", "transactional.nope"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("template.template_id")));
  // Every built-in template passes the check an operator's would.
  for (int k = 1; k <= 4; ++k) {
    const TransactionalKind* kind = FindTransactionalKind(k);
    ASSERT_NE(kind, nullptr);
    EXPECT_EQ(kind->builtin.template_id(), TransactionalTemplateId(*kind));
    EXPECT_THAT(ValidateTemplate(kind->builtin, kind->usable, "builtin"), IsOk()) << kind->name;
  }
  EXPECT_EQ(FindTransactionalKind(0), nullptr);
  EXPECT_EQ(FindTransactionalKind(100), nullptr);  // the confirmation mail is not one
}

TEST(RateLimiterTest, ABurstGoesAtOnceThenSlotsAreOneIntervalApart) {
  base::FakeClock clock;
  RateLimiter limiter(10, 3, clock);  // 100 ms apart, bursts of 3
  const absl::Time t0 = clock.Now();
  EXPECT_EQ(limiter.Reserve(t0), absl::ZeroDuration());
  EXPECT_EQ(limiter.Reserve(t0), absl::ZeroDuration());
  EXPECT_EQ(limiter.Reserve(t0), absl::ZeroDuration());
  EXPECT_EQ(limiter.Reserve(t0), absl::Milliseconds(100));
  EXPECT_EQ(limiter.Reserve(t0), absl::Milliseconds(200));
  // Time passing frees slots; idle time saves up no more than the burst.
  EXPECT_EQ(limiter.Reserve(t0 + absl::Milliseconds(500)), absl::ZeroDuration());
  const absl::Time later = t0 + absl::Seconds(60);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Reserve(later), absl::ZeroDuration()) << i;
  EXPECT_EQ(limiter.Reserve(later), absl::Milliseconds(100));
  // Over a long run the rate holds: 1,000 sends take 100 s less the burst.
  RateLimiter steady(10, 1, clock);
  absl::Duration waited;
  for (int i = 0; i < 1000; ++i) waited = steady.Reserve(t0);
  EXPECT_EQ(waited, absl::Seconds(99.9));
}

}  // namespace
}  // namespace crm::mailing
