// The pages behind the links in mail, for people without an account:
//
//   GET  /u/<token>   "Stop receiving this list?" and a button; changes nothing
//                     (mail scanners fetch links).
//   POST /u/<token>   with List-Unsubscribe=One-Click (RFC 8058; form or
//                     multipart): unsubscribes at once, no cookie, no login.
//                     Mail clients' one-click POST and the page's button both.
//   GET  /c/<token>   "Confirm your subscription?" and a button.
//   POST /c/<token>   confirms the double opt-in subscription.
//
// Mailing checks the token (Unsubscribe / ConfirmSubscription, callable by
// the gateway's identity only); a malformed, forged or expired one gets a
// 400 page. English or Polish, from Accept-Language. Pages are plain HTML
// with the portal's style sheet: no script, so the strict CSP holds.
//
// Thread-safe.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::gateway {

enum class Lang { kEn, kPl };

// The first of Polish or English in an Accept-Language header; English by
// default.
Lang LangOf(absl::string_view accept_language);

struct Page {
  int status = 200;
  std::string html;
};

// A whole page: `title` (text) and `body` (HTML, already escaped).
Page HtmlPage(int status, Lang lang, absl::string_view title, absl::string_view body);

class LinkPages {
 public:
  LinkPages(std::shared_ptr<grpc::Channel> mailing, absl::Duration timeout);

  Page UnsubscribeForm(absl::string_view token, Lang lang) const;
  // `one_click`: the body carried List-Unsubscribe=One-Click.
  Page Unsubscribe(absl::string_view token, bool one_click, Lang lang) const;
  Page ConfirmForm(absl::string_view token, Lang lang) const;
  Page Confirm(absl::string_view token, const std::string& source_address,
               const std::string& user_agent, Lang lang) const;

 private:
  std::shared_ptr<grpc::Channel> mailing_;
  absl::Duration timeout_;
};

}  // namespace crm::gateway
