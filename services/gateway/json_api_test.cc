// The gateway's JSON API helpers without a network: status mapping, error
// bodies, which methods are exposed and the OpenAPI document. The calls
// themselves run against the real services in tests/system/example_shop_test.cc.
#include "services/gateway/json_api.h"

#include <grpcpp/grpcpp.h>

#include "crm/consent/v1/consent.pb.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "crm/identity/v1/identity.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/html.h"
#include "libs/json/json.h"
#include "services/gateway/link_pages.h"

namespace crm::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(JsonApiTest, TheConnectionFillsLoginSignInAndConsentEvidenceOnly) {
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  auto method = [&](const char* name) { return pool->FindMethodByName(name); };
  crm::identity::v1::LoginRequest login;
  EXPECT_EQ(JsonApi::ConnectionFilled(*method("crm.identity.v1.Identity.Login"), login), &login);
  crm::identity::v1::StartSubjectVerificationRequest start;
  EXPECT_EQ(JsonApi::ConnectionFilled(*method("crm.identity.v1.Identity.StartSubjectVerification"),
                                      start),
            &start);
  crm::consent::v1::GrantRequest grant;
  EXPECT_EQ(JsonApi::ConnectionFilled(*method("crm.consent.v1.Consent.Grant"), grant),
            grant.mutable_statement());
  crm::consent::v1::CheckRequest check;
  EXPECT_EQ(JsonApi::ConnectionFilled(*method("crm.consent.v1.Consent.Check"), check), nullptr);
  crm::identity::v1::ListUsersRequest users;
  EXPECT_EQ(JsonApi::ConnectionFilled(*method("crm.identity.v1.Identity.ListUsers"), users),
            nullptr);
}

TEST(HttpStatusOfTest, MapsEachCodeTheWayClientsExpect) {
  const std::pair<grpc::StatusCode, int> cases[] = {
      {grpc::StatusCode::OK, 200},
      {grpc::StatusCode::INVALID_ARGUMENT, 400},
      {grpc::StatusCode::OUT_OF_RANGE, 400},
      {grpc::StatusCode::UNAUTHENTICATED, 401},
      {grpc::StatusCode::PERMISSION_DENIED, 403},
      {grpc::StatusCode::NOT_FOUND, 404},
      {grpc::StatusCode::ALREADY_EXISTS, 409},
      {grpc::StatusCode::ABORTED, 409},
      {grpc::StatusCode::FAILED_PRECONDITION, 409},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, 429},
      {grpc::StatusCode::UNIMPLEMENTED, 501},
      {grpc::StatusCode::UNAVAILABLE, 503},
      {grpc::StatusCode::DEADLINE_EXCEEDED, 504},
      {grpc::StatusCode::INTERNAL, 500},
      {grpc::StatusCode::DATA_LOSS, 500},
  };
  for (const auto& [code, status] : cases) EXPECT_EQ(HttpStatusOf(code), status) << code;
}

TEST(IsBearerTest, OnlyPrintableAsciiBearerTokensPass) {
  EXPECT_TRUE(IsBearer("Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln"));
  for (const char* bad : {"", "Bearer ", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "bearer x",
                          "Bearer a\nb", "Bearer a\rb", "Bearer \x7f", "Bearer \xc3\xa9"}) {
    EXPECT_FALSE(IsBearer(bad)) << bad;
  }
  EXPECT_FALSE(IsBearer(std::string("Bearer ") + std::string(9000, 'a')));
}

TEST(ErrorJsonTest, NamesTheFieldWhenTheMessageStartsWithOne) {
  EXPECT_EQ(
      ErrorJson("INVALID_ARGUMENT", "emails[0].address: not an address"),
      R"({"error":{"code":"INVALID_ARGUMENT","message":"emails[0].address: not an address","field":"emails[0].address"}})");
  EXPECT_EQ(ErrorJson("UNAUTHENTICATED", "Missing bearer token"),
            R"({"error":{"code":"UNAUTHENTICATED","message":"Missing bearer token"}})");
  // Not a field: capitals, spaces, or nothing before the colon.
  for (const char* message : {"Bad thing: x", "two words: x", ": x", "no colon"}) {
    EXPECT_THAT(ErrorJson("INTERNAL", message), ::testing::Not(HasSubstr("\"field\""))) << message;
  }
  // Quotes and control characters are escaped; long messages are cut.
  absl::StatusOr<json::Value> parsed = json::Parse(ErrorJson("X", "a\"b\n\x01"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Find("error")->Find("message")->string_value(), "a\"b\n\x01");
  EXPECT_LT(ErrorJson("X", std::string(5000, 'a')).size(), 700u);
}

// Found by tests/fuzz (gateway_json): the 500-byte cut split a multi-byte
// character, and the error body was no longer valid UTF-8, so not JSON.
// The error of ParseBody, or "" if the body parsed.
std::string ParseError(absl::string_view body, google::protobuf::Message& message) {
  std::optional<HttpAnswer> a = ParseBody(body, message);
  if (!a.has_value()) return "";
  EXPECT_EQ(a->status, 400);
  return a->body;
}

TEST(ParseBodyTest, NamesTheFieldOfAWrongTypeWithoutItsValue) {
  crm::contacts::v1::CreatePersonRequest person;
  const std::string wrong =
      ParseError(R"({"person": {"emails": [{"address": 987654321}]}})", person);
  EXPECT_THAT(wrong, HasSubstr(R"("field":"person.emails[0].address")"));
  EXPECT_THAT(wrong, Not(HasSubstr("987654321")));
  const std::string bad_enum = ParseError(R"({"person": {"status": "ZQXJ_SECRET"}})", person);
  EXPECT_THAT(bad_enum, HasSubstr(R"("field":"person.status")"));
  EXPECT_THAT(bad_enum, Not(HasSubstr("ZQXJ")));
  // An object for a text field, at the top and further down.
  crm::contacts::v1::UpdatePersonRequest update;
  EXPECT_THAT(ParseError(R"({"subjectId": {"zqxj": 1}})", update),
              HasSubstr(R"("field":"subject_id")"));
  EXPECT_THAT(ParseError(R"({"person": {"givenName": {"zqxj": 1}}})", update),
              HasSubstr(R"("field":"person.given_name")"));
  // An unknown key inside a known field: that field, not the key.
  const std::string inner = ParseError(R"({"person": {"emails": {"zqxjKey": 1}}})", update);
  EXPECT_THAT(inner, HasSubstr(R"("field":"person.emails")"));
  EXPECT_THAT(inner, Not(HasSubstr("zqxj")));
  // An unknown field: protobuf names the key as sent, so the body is named.
  const std::string unknown = ParseError(R"({"zqxjUnknown": 1})", person);
  EXPECT_THAT(unknown, HasSubstr(R"("field":"body")"));
  EXPECT_THAT(unknown, Not(HasSubstr("zqxj")));
}

TEST(ParseBodyTest, RefusesArraysInsideArraysThatProtobufWouldFlatten) {
  crm::consent::v1::CheckSuppressionRequest check;
  // protobuf 3.21 reads [["a"], "b"] as ["a", "b"], at any depth.
  EXPECT_THAT(ParseError(R"({"emailAddresses": [["a"], "b"]})", check),
              HasSubstr(R"("field":"body")"));
  EXPECT_THAT(ParseError(absl::StrCat(R"({"emailAddresses": )", std::string(100000, '['),
                                      std::string(100000, ']'), "}"),
                         check),
              HasSubstr("array inside an array"));
  // Brackets inside strings are text.
  EXPECT_EQ(ParseError(R"({"emailAddresses": ["[[a]]", "\"[["]})", check), "");
  EXPECT_EQ(check.email_addresses_size(), 2);
  EXPECT_EQ(ParseError(R"({"emailAddresses": []})", check), "");
}

TEST(ErrorJsonTest, CutsLongMessagesAtACharacterBoundary) {
  std::string message = "name: ";  // then two-byte characters across byte 500
  while (message.size() < 600) message += "\xc3\xa9";
  for (const std::string& m : {message, "n" + message, "nn" + message + "\xf0\x9f\x98\x80"}) {
    absl::StatusOr<json::Value> parsed = json::Parse(ErrorJson("INVALID_ARGUMENT", m));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const std::string& cut = parsed->Find("error")->Find("message")->string_value();
    EXPECT_LE(cut.size(), 500u);
    EXPECT_GE(cut.size(), 497u);
    EXPECT_EQ(m.substr(0, cut.size()), cut);
  }
}

TEST(JsonApiTest, ExposesTheUnaryMethodsOfTheConfiguredServicesOnly) {
  // Channels are lazy: nothing connects in this test.
  auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  JsonApi api({{"erasure", channel}, {"audit", channel}}, absl::Seconds(1));
  EXPECT_NE(api.Find("crm.erasure.v1.Erasure", "SubmitErasure"), nullptr);
  EXPECT_NE(api.Find("crm.audit.v1.Audit", "QueryEvents"), nullptr);
  EXPECT_EQ(api.Find("crm.erasure.v1.Erasure", "GetAccessExport"), nullptr);  // streaming
  EXPECT_EQ(api.Find("crm.audit.v1.AuditIngest", "AppendEvents"), nullptr);   // internal
  EXPECT_EQ(api.Find("crm.identity.v1.Identity", "Login"), nullptr);          // not configured
  EXPECT_EQ(api.Find("crm.erasure.v1.Erasure", "Nope"), nullptr);
  for (const auto* m : api.methods()) {
    EXPECT_THAT(m->full_name(), ::testing::AnyOf(::testing::StartsWith("crm.erasure.v1."),
                                                 ::testing::StartsWith("crm.audit.v1.Audit.")));
  }

  absl::StatusOr<json::Value> spec =
      json::Parse(api.OpenApi(""), {.max_size = 8 << 20, .max_depth = 32});
  ASSERT_TRUE(spec.ok()) << spec.status();
  const json::Value* submit =
      spec->Find("paths")->Find("/api/v1/crm.erasure.v1.Erasure/SubmitErasure");
  ASSERT_NE(submit, nullptr);
  EXPECT_EQ(submit->Find("post")->Find("tags")->array()[0].string_value(), "erasure");
  const json::Value* schemas = spec->Find("components")->Find("schemas");
  const json::Value* request = schemas->Find("crm.erasure.v1.ErasureRequest");
  ASSERT_NE(request, nullptr);
  const json::Value* props = request->Find("properties");
  // JSON names, 64-bit integers as strings, enums by name, timestamps as date-time.
  EXPECT_NE(props->Find("requestId"), nullptr);
  EXPECT_EQ(props->Find("dueAt")->Find("format")->string_value(), "date-time");
  EXPECT_EQ(props->Find("state")->Find("enum")->array()[1].string_value(), "STATE_RECEIVED");
  EXPECT_EQ(props->Find("targets")->Find("items")->Find("$ref")->string_value(),
            "#/components/schemas/crm.erasure.v1.Target");
  // Every $ref resolves.
  EXPECT_NE(schemas->Find("crm.erasure.v1.Target"), nullptr);
  EXPECT_NE(schemas->Find("crm.subject.v1.DataCategory"), nullptr);
  const json::Value* category = schemas->Find("crm.subject.v1.DataCategory")->Find("properties");
  EXPECT_EQ(category->Find("recordCount")->Find("format")->string_value(), "int64");
}

TEST(LinkPagesTest, LanguageFromAcceptLanguageEnglishByDefault) {
  EXPECT_EQ(LangOf("pl-PL,pl;q=0.9,en-US;q=0.8"), Lang::kPl);
  EXPECT_EQ(LangOf("de-DE, en;q=0.5, pl;q=0.4"), Lang::kEn);
  EXPECT_EQ(LangOf("de-DE"), Lang::kEn);
  EXPECT_EQ(LangOf(""), Lang::kEn);
  EXPECT_EQ(LangOf("PL"), Lang::kPl);
}

TEST(LinkPagesTest, PagesEscapeTheirTextAndRefuseMalformedTokensWithoutACall) {
  EXPECT_EQ(base::HtmlEscape(R"(<a href="x">'&'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const Page page = HtmlPage(200, Lang::kPl, "<b>", "<p>ok</p>");
  EXPECT_THAT(page.html, HasSubstr("<html lang=\"pl\">"));
  EXPECT_THAT(page.html, HasSubstr("<title>&lt;b&gt;</title>"));
  EXPECT_THAT(page.html, HasSubstr("/static/portal.css"));
  // A channel to nowhere: a malformed token must not reach it.
  LinkPages pages(grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
                  absl::Milliseconds(100));
  for (const char* token : {"", "<script>", "a/b", "a b", "a\"b"}) {
    EXPECT_EQ(pages.UnsubscribeForm(token, Lang::kEn).status, 400) << token;
    EXPECT_EQ(pages.Unsubscribe(token, true, Lang::kEn).status, 400) << token;
    EXPECT_EQ(pages.ConfirmForm(token, Lang::kEn).status, 400) << token;
    EXPECT_THAT(pages.ConfirmForm(token, Lang::kEn).html, Not(HasSubstr("<script>")));
  }
  EXPECT_EQ(pages.Unsubscribe(std::string(513, 'a'), true, Lang::kEn).status, 400);
  // Without One-Click nothing is called either; with it, an unreachable
  // mailing is "try again", not a bad link.
  EXPECT_EQ(pages.Unsubscribe("u.abc", false, Lang::kEn).status, 400);
  EXPECT_EQ(pages.Unsubscribe("u.abc", true, Lang::kEn).status, 503);
  const Page form = pages.UnsubscribeForm("u.abc-_", Lang::kEn);
  EXPECT_EQ(form.status, 200);
  EXPECT_THAT(form.html, HasSubstr(R"(action="/u/u.abc-_")"));
}

}  // namespace
}  // namespace crm::gateway
