#include "services/gateway/link_pages.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "libs/base/html.h"
#include "libs/base/validate.h"

namespace crm::gateway {
namespace {

namespace mv1 = crm::mailing::v1;

// The texts of the pages, by language.
struct Texts {
  const char* unsubscribe_title;
  const char* unsubscribe_question;  // the GET asks mailing nothing: no list name yet
  const char* unsubscribe_button;
  const char* unsubscribed_title;
  const char* unsubscribed_body;  // then the list id
  const char* already_body;
  const char* confirm_title;
  const char* confirm_question;
  const char* confirm_button;
  const char* confirmed_title;
  const char* confirmed_body;
  const char* bad_link_title;
  const char* bad_link_body;
  const char* unavailable_title;
  const char* unavailable_body;
  const char* one_click_missing;
};

const Texts& TextsOf(Lang lang) {
  static const Texts kEn = {
      "Unsubscribe",
      "Do you want to stop receiving mail from this list?",
      "Unsubscribe",
      "You are unsubscribed",
      "You will receive no more mail from this list:",
      "You had already left this list; nothing changed.",
      "Confirm your subscription",
      "Do you want to receive this mailing list? You can leave it at any time with the link in "
      "every message.",
      "Yes, subscribe me",
      "Subscription confirmed",
      "Thank you: your subscription is confirmed.",
      "This link is not valid",
      "The link is incomplete, was changed, or has expired. Use the link of a newer message, "
      "or contact us.",
      "Please try again",
      "We cannot do this right now. Please try again in a few minutes.",
      "A one-click unsubscription needs List-Unsubscribe=One-Click (RFC 8058).",
  };
  static const Texts kPl = {
      "Rezygnacja z subskrypcji",
      "Czy chcesz przestać otrzymywać wiadomości z tej listy?",
      "Wypisz mnie",
      "Wypisano Cię z listy",
      "Nie otrzymasz już wiadomości z tej listy:",
      "Lista była już wcześniej opuszczona; nic się nie zmieniło.",
      "Potwierdź subskrypcję",
      "Czy chcesz otrzymywać wiadomości z tej listy? Możesz się wypisać w każdej chwili linkiem "
      "w każdej wiadomości.",
      "Tak, zapisz mnie",
      "Subskrypcja potwierdzona",
      "Dziękujemy: subskrypcja jest potwierdzona.",
      "Ten link jest nieprawidłowy",
      "Link jest niepełny, został zmieniony lub wygasł. Użyj linku z nowszej wiadomości albo "
      "skontaktuj się z nami.",
      "Spróbuj ponownie",
      "Nie możemy tego teraz zrobić. Spróbuj ponownie za kilka minut.",
      "Rezygnacja jednym kliknięciem wymaga List-Unsubscribe=One-Click (RFC 8058).",
  };
  return lang == Lang::kPl ? kPl : kEn;
}

// Tokens are base64url with dots; anything else is refused before mailing
// sees it.
bool WellFormed(absl::string_view token) {
  return !token.empty() && token.size() <= 512 &&
         std::all_of(token.begin(), token.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
         });
}

Page Paragraphs(int status, Lang lang, absl::string_view title,
                std::initializer_list<absl::string_view> lines) {
  std::string body;
  for (absl::string_view line : lines)
    absl::StrAppend(&body, "<p>", base::HtmlEscape(line), "</p>");
  return HtmlPage(status, lang, title, body);
}

Page BadLink(Lang lang) {
  const Texts& t = TextsOf(lang);
  return Paragraphs(400, lang, t.bad_link_title, {t.bad_link_body});
}

// The page for a failed call: a bad token, or try again later.
Page Failed(const grpc::Status& s, Lang lang) {
  const Texts& t = TextsOf(lang);
  if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
      s.error_code() == grpc::StatusCode::NOT_FOUND) {
    return BadLink(lang);
  }
  return Paragraphs(503, lang, t.unavailable_title, {t.unavailable_body});
}

// A page with a question and one button posting back to `action`.
Page Form(Lang lang, absl::string_view title, absl::string_view question, absl::string_view button,
          absl::string_view action, bool one_click) {
  return HtmlPage(
      200, lang, title,
      absl::StrCat(
          "<p>", base::HtmlEscape(question), "</p><form method=\"post\" action=\"",
          base::HtmlEscape(action), "\">",
          one_click ? R"(<input type="hidden" name="List-Unsubscribe" value="One-Click">)" : "",
          "<button type=\"submit\">", base::HtmlEscape(button), "</button></form>"));
}

}  // namespace

Lang LangOf(absl::string_view accept_language) {
  for (absl::string_view range : absl::StrSplit(accept_language, ',')) {
    range = absl::StripAsciiWhitespace(range.substr(0, range.find(';')));
    if (absl::StartsWithIgnoreCase(range, "pl")) return Lang::kPl;
    if (absl::StartsWithIgnoreCase(range, "en")) return Lang::kEn;
  }
  return Lang::kEn;
}

Page HtmlPage(int status, Lang lang, absl::string_view title, absl::string_view body) {
  return {status,
          absl::StrCat("<!DOCTYPE html>\n<html lang=\"", lang == Lang::kPl ? "pl" : "en",
                       "\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                       "content=\"width=device-width, initial-scale=1\"><title>",
                       base::HtmlEscape(title),
                       "</title><link rel=\"stylesheet\" href=\"/static/portal.css\"></head>"
                       "<body><main><h1>",
                       base::HtmlEscape(title), "</h1>", body, "</main></body></html>\n")};
}

LinkPages::LinkPages(std::shared_ptr<grpc::Channel> mailing, absl::Duration timeout)
    : mailing_(std::move(mailing)), timeout_(timeout) {}

Page LinkPages::UnsubscribeForm(absl::string_view token, Lang lang) const {
  if (!WellFormed(token)) return BadLink(lang);
  const Texts& t = TextsOf(lang);
  return Form(lang, t.unsubscribe_title, t.unsubscribe_question, t.unsubscribe_button,
              absl::StrCat("/u/", token), /*one_click=*/true);
}

Page LinkPages::Unsubscribe(absl::string_view token, bool one_click, Lang lang) const {
  const Texts& t = TextsOf(lang);
  if (!WellFormed(token)) return BadLink(lang);
  if (!one_click) return Paragraphs(400, lang, t.unsubscribe_title, {t.one_click_missing});
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  mv1::UnsubscribeRequest req;
  req.set_token(std::string(token));
  mv1::UnsubscribeResponse resp;
  const grpc::Status s = mv1::Mailing::NewStub(mailing_)->Unsubscribe(&ctx, req, &resp);
  if (!s.ok()) return Failed(s, lang);
  if (!resp.changed()) return Paragraphs(200, lang, t.unsubscribed_title, {t.already_body});
  return HtmlPage(200, lang, t.unsubscribed_title,
                  absl::StrCat("<p>", base::HtmlEscape(t.unsubscribed_body), " <strong>",
                               base::HtmlEscape(resp.list_id()), "</strong></p>"));
}

Page LinkPages::ConfirmForm(absl::string_view token, Lang lang) const {
  if (!WellFormed(token)) return BadLink(lang);
  const Texts& t = TextsOf(lang);
  return Form(lang, t.confirm_title, t.confirm_question, t.confirm_button,
              absl::StrCat("/c/", token), /*one_click=*/false);
}

Page LinkPages::Confirm(absl::string_view token, const std::string& source_address,
                        const std::string& user_agent, Lang lang) const {
  if (!WellFormed(token)) return BadLink(lang);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  mv1::ConfirmSubscriptionRequest req;
  req.set_token(std::string(token));
  req.set_source_address(source_address);
  req.set_user_agent(base::PrintableAscii(user_agent, 500));
  mv1::ConfirmSubscriptionResponse resp;
  const grpc::Status s = mv1::Mailing::NewStub(mailing_)->ConfirmSubscription(&ctx, req, &resp);
  if (!s.ok()) return Failed(s, lang);
  const Texts& t = TextsOf(lang);
  return Paragraphs(200, lang, t.confirmed_title, {t.confirmed_body});
}

}  // namespace crm::gateway
