// Templates and messages: placeholder validation, rendering with escaping,
// and composing the RFC 5322 / MIME message that goes to the relay.
//
// Placeholders are {{name}}, name 1..32 of a-z 0-9 _. A template may use only
// the placeholders its use allows (campaigns: first_name, unsubscribe_url);
// an unknown one, or an unclosed "{{", is INVALID_ARGUMENT naming the
// template field. Values are inserted escaped for where they land: HTML
// bodies get HTML escaping, the subject loses line breaks and control
// characters (no header injection), plain text is as given.
//
// A message is multipart/alternative (plain text, and HTML when the template
// has it), UTF-8, quoted-printable, CRLF line endings. A marketing message
// carries the unsubscribe link in a footer of each body and in the headers
// List-Unsubscribe and List-Unsubscribe-Post (RFC 8058 one-click).
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "crm/mailing/v1/mailing.pb.h"

namespace crm::mailing {

using Values = absl::flat_hash_map<std::string, std::string>;

// The placeholders of a campaign template.
const absl::flat_hash_set<std::string>& CampaignPlaceholders();

// Checks subject (1..200 bytes), text body (1..100,000), HTML body (0..200,000),
// all UTF-8, and that they use only `allowed` placeholders. Fields are named
// "<prefix>.subject", "<prefix>.text_body", "<prefix>.html_body".
absl::Status ValidateTemplate(const v1::Template& t,
                              const absl::flat_hash_set<std::string>& allowed,
                              absl::string_view prefix);

struct Rendered {
  std::string subject;  // one line, no control characters
  std::string text;
  std::string html;  // empty when the template has no HTML body
};

// Fills the placeholders (a missing value renders empty).
Rendered Render(const v1::Template& t, const Values& values);

struct Envelope {
  std::string from;             // "Display Name <address>" or an address
  std::string to;               // the recipient's address
  std::string message_id;       // without angle brackets: "<uuid>@<domain>"
  std::string unsubscribe_url;  // empty: a transactional message (no footer, no List-* headers)
  absl::Time date;
};

// The whole message, CRLF line endings. INVALID_ARGUMENT naming the field if
// an envelope field contains a line break or any other control character
// (NUL, tab, ...), or (but `from`) a '>'.
absl::StatusOr<std::string> ComposeMessage(const Envelope& e, const Rendered& r);

// Exposed for tests.
std::string QuotedPrintable(absl::string_view text);
std::string EncodeHeaderWord(absl::string_view text);  // RFC 2047 B when not plain ASCII

}  // namespace crm::mailing
