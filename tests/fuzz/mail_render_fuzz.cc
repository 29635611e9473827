// Fuzz target `mail_render`: what becomes the message handed to the SMTP
// relay. Templates (written by marketing users), the first name (from a
// contact record) and the recipient address go through mailing's Render and
// ComposeMessage (services/mailing/render.h), then through the relay client's
// own checks (libs/smtp/sender.h: ValidateMessage, ValidateEnvelopeAddress).
//
// Input: fields separated by the byte 0x1e (record separator), missing ones
// empty: subject, text body, HTML body, first name, recipient address.
//
// Properties beyond "no crash, no sanitizer report":
//  - the rendered subject never holds a control character;
//  - a composed message passes smtp::ValidateMessage (CRLF only, no NUL);
//  - its header section (up to the first empty line) is only the headers
//    ComposeMessage writes, each exactly once, lines of at most 998 bytes, no
//    CR or LF except line ends, continuation lines only where Subject is
//    folded: nothing in the input can add a header (Bcc:, ...) or end the
//    header section early;
//  - the Subject header decodes (RFC 2047 B words) back to the rendered
//    subject;
//  - quoted-printable decodes back to the body with CRLF line ends and keeps
//    lines within 76 characters; the multipart boundary never occurs inside a
//    part;
//  - a recipient address the SMTP client accepts holds no control character,
//    '<' or '>'.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "libs/smtp/sender.h"
#include "services/mailing/render.h"

namespace {

using ::crm::mailing::ComposeMessage;
using ::crm::mailing::Envelope;
using ::crm::mailing::Rendered;

constexpr char kMessageId[] = "6b0e7a1c-1d2e-4f3a-8b4c-5d6e7f8a9b0c@shop.example";
constexpr char kBoundary[] = "=_6b0e7a1c-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
constexpr char kUnsubscribeUrl[] = "https://crm.shop.example/u/u.AAAA.BBBB";

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (mail_render): %s\n", property);
  std::abort();
}

bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// LF or CRLF line ends as CRLF, other CRs dropped: what the bodies become.
std::string Crlf(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    if (s[i] == '\n') {
      out += "\r\n";
    } else if (s[i] != '\r') {
      out += s[i];
    }
  }
  return out;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes quoted-printable as written by QuotedPrintable; checks line lengths.
std::string DecodeQuotedPrintable(absl::string_view qp) {
  for (absl::string_view line : absl::StrSplit(qp, "\r\n")) {
    if (line.size() > 76) Fail("quoted-printable line longer than 76");
    if (line.find_first_of("\r\n") != absl::string_view::npos) Fail("bare CR/LF in body");
  }
  std::string out;
  for (size_t i = 0; i < qp.size(); ++i) {
    if (qp[i] != '=') {
      out.push_back(qp[i]);
      continue;
    }
    if (qp.substr(i, 3) == "=\r\n") {
      i += 2;
      continue;
    }
    if (i + 2 >= qp.size() || Hex(qp[i + 1]) < 0 || Hex(qp[i + 2]) < 0) {
      Fail("malformed quoted-printable escape");
    }
    out.push_back(static_cast<char>(Hex(qp[i + 1]) * 16 + Hex(qp[i + 2])));
    i += 2;
  }
  return out;
}

// The Subject header's value as a reader sees it: as written when the
// rendered subject is short printable ASCII, else RFC 2047 B words, folded.
std::string DecodeSubject(absl::string_view value, absl::string_view rendered) {
  const bool plain =
      rendered.size() <= 900 &&
      std::all_of(rendered.begin(), rendered.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (plain) return std::string(value);
  std::string out;
  for (absl::string_view word : absl::StrSplit(value, "\r\n ")) {
    if (word.size() > 75) Fail("encoded word longer than 75");
    if (!absl::ConsumePrefix(&word, "=?UTF-8?B?") || !absl::ConsumeSuffix(&word, "?=")) {
      Fail("malformed encoded word");
    }
    std::string bytes;
    if (!absl::Base64Unescape(word, &bytes)) Fail("encoded word is not base64");
    out += bytes;
  }
  return out;
}

void CheckHeaders(absl::string_view headers, const Rendered& r, bool marketing, bool multipart) {
  static const auto* const kOnce = new std::vector<std::string>{"From",
                                                                "To",
                                                                "Subject",
                                                                "Date",
                                                                "Message-ID",
                                                                "MIME-Version",
                                                                "Content-Type",
                                                                "List-Unsubscribe",
                                                                "List-Unsubscribe-Post",
                                                                "Content-Transfer-Encoding"};
  absl::flat_hash_map<std::string, int> seen;
  std::string last;
  std::string subject;
  for (absl::string_view line : absl::StrSplit(headers, "\r\n")) {
    if (line.size() > 998) Fail("header line longer than 998");
    if (line.find_first_of("\r\n") != absl::string_view::npos) Fail("bare CR/LF in a header");
    if (line.empty()) Fail("empty line inside the header section");
    if (line[0] == ' ' || line[0] == '\t') {
      if (last != "Subject") Fail("a folded line outside Subject");
      absl::StrAppend(&subject, "\r\n", line);
      continue;
    }
    const size_t colon = line.find(": ");
    if (colon == absl::string_view::npos) Fail("a header line without a name");
    last = std::string(line.substr(0, colon));
    if (std::find(kOnce->begin(), kOnce->end(), last) == kOnce->end()) {
      Fail("a header ComposeMessage does not write");
    }
    if (++seen[last] > 1) Fail("a header twice");
    if (last == "Subject") subject = std::string(line.substr(colon + 2));
  }
  for (const char* name : {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version"}) {
    if (!seen.contains(name)) Fail("a required header is missing");
  }
  if (seen.contains("List-Unsubscribe") != marketing) Fail("List-Unsubscribe where it must not be");
  if (seen.contains("Content-Transfer-Encoding") == multipart) Fail("top-level encoding header");
  if (DecodeSubject(subject, r.subject) != r.subject)
    Fail("Subject does not decode to the rendered subject");
}

// A part of a multipart body: headers, a blank line, quoted-printable that
// decodes to `expected_plain` (unless null).
void CheckPart(absl::string_view part, const std::string* expected_plain) {
  const size_t end = part.find("\r\n\r\n");
  if (end == absl::string_view::npos) Fail("a part without headers");
  absl::string_view qp = part.substr(end + 4);
  if (!absl::ConsumeSuffix(&qp, "\r\n")) Fail("a part does not end with CRLF");
  const std::string plain = DecodeQuotedPrintable(qp);
  if (expected_plain != nullptr && plain != Crlf(*expected_plain)) {
    Fail("a body does not decode back");
  }
}

void Check(const Envelope& e, const Rendered& r) {
  absl::StatusOr<std::string> m = ComposeMessage(e, r);
  if (!m.ok()) {
    if (m.status().code() != absl::StatusCode::kInvalidArgument)
      Fail("error is not INVALID_ARGUMENT");
    return;
  }
  if (!crm::smtp::ValidateMessage(*m).ok()) Fail("the SMTP client refuses a composed message");
  const size_t header_end = m->find("\r\n\r\n");
  if (header_end == std::string::npos) Fail("no end of the header section");
  const bool marketing = !e.unsubscribe_url.empty();
  const bool multipart = !r.html.empty();
  CheckHeaders(absl::string_view(*m).substr(0, header_end), r, marketing, multipart);

  std::string text = r.text;
  if (marketing) {
    absl::StrAppend(&text, "\n\n-- \nTo unsubscribe, follow this link: ", e.unsubscribe_url, "\n");
  }
  const absl::string_view body = absl::string_view(*m).substr(header_end + 4);
  if (!multipart) {
    if (DecodeQuotedPrintable(body.substr(0, body.size() - 2)) != Crlf(text)) {
      Fail("the text body does not decode back");
    }
    return;
  }
  const std::string delimiter = absl::StrCat("--", kBoundary);
  const std::vector<absl::string_view> pieces = absl::StrSplit(body, delimiter);
  // "", text part, HTML part, "--\r\n": the boundary occurs nowhere else.
  if (pieces.size() != 4 || !pieces[0].empty() || pieces[3] != "--\r\n") {
    Fail("the multipart boundary occurs inside a part");
  }
  CheckPart(pieces[1], &text);
  CheckPart(pieces[2], nullptr);  // the HTML, with its footer spliced in
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> f = absl::StrSplit(input, '\x1e');
  f.resize(5);

  crm::mailing::v1::Template t;
  t.set_subject(f[0]);
  t.set_text_body(f[1]);
  t.set_html_body(f[2]);
  // Rendering does not rely on validation (a stored template was validated
  // by an older version, perhaps): both are exercised on every input.
  const absl::Status valid =
      crm::mailing::ValidateTemplate(t, crm::mailing::CampaignPlaceholders(), "template");
  if (!valid.ok() && !absl::StartsWith(valid.message(), "template.")) {
    Fail("a template error that does not name the field");
  }

  const Rendered r = crm::mailing::Render(
      t, {{"first_name", f[3]}, {"unsubscribe_url", std::string(kUnsubscribeUrl)}});
  for (char c : r.subject) {
    if (IsControl(c)) Fail("a control character in the rendered subject");
  }

  Envelope e{.from = "Shop <news@shop.example>",
             .to = f[4].empty() ? "ann@example.com" : f[4],
             .message_id = kMessageId,
             .unsubscribe_url = kUnsubscribeUrl,
             .date = absl::FromUnixSeconds(1'800'000'000)};
  Check(e, r);
  e.unsubscribe_url.clear();  // transactional: no footer, no List-* headers
  Check(e, r);

  if (crm::smtp::ValidateEnvelopeAddress(f[4], "to").ok()) {
    for (char c : f[4]) {
      if (IsControl(c) || c == '<' || c == '>')
        Fail("an envelope address with a control character");
    }
  }
  return 0;
}
