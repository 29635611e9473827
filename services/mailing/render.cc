#include "services/mailing/render.h"

#include <algorithm>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/base/html.h"
#include "libs/base/status_macros.h"
#include "libs/base/validate.h"

namespace crm::mailing {
namespace {

bool IsNameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

// Calls on_text(literal) and on_placeholder(name) in order; INVALID_ARGUMENT
// naming `field` for an unclosed or malformed placeholder.
template <typename Text, typename Placeholder>
absl::Status Scan(absl::string_view field, absl::string_view s, Text on_text,
                  Placeholder on_placeholder) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t open = s.find("{{", pos);
    if (open == absl::string_view::npos) {
      on_text(s.substr(pos));
      return absl::OkStatus();
    }
    on_text(s.substr(pos, open - pos));
    const size_t close = s.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": a placeholder is not closed"));
    }
    const absl::string_view name = s.substr(open + 2, close - open - 2);
    if (name.empty() || name.size() > 32 || !std::all_of(name.begin(), name.end(), IsNameChar)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": placeholders are {{name}} with 1..32 of a-z 0-9 _"));
    }
    CRM_RETURN_IF_ERROR(on_placeholder(name));
    pos = close + 2;
  }
  return absl::OkStatus();
}

std::string Fill(absl::string_view s, const Values& values,
                 std::string (*escape)(absl::string_view)) {
  std::string out;
  (void)Scan(
      "", s, [&](absl::string_view text) { out.append(text.data(), text.size()); },
      [&](absl::string_view name) {
        auto it = values.find(name);
        if (it != values.end()) out += escape(it->second);
        return absl::OkStatus();
      });
  return out;
}

std::string AsIs(absl::string_view v) { return std::string(v); }

// One line: control characters (CR, LF, tab, ...) become spaces.
std::string OneLine(absl::string_view v) {
  std::string out(v);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

// LF or CRLF line ends as CRLF.
std::string Crlf(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 32);
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

bool HasLineBreak(absl::string_view s) {
  return s.find_first_of("\r\n") != absl::string_view::npos;
}

// CR, LF, NUL and every other C0 control character or DEL: none belongs in a
// header, and the SMTP client refuses a message with a NUL or bare CR/LF.
bool HasControl(absl::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f;
  });
}

std::string RfcDate(absl::Time t) {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", t, absl::UTCTimeZone());
}

}  // namespace

const absl::flat_hash_set<std::string>& CampaignPlaceholders() {
  static const auto* const kSet =
      new absl::flat_hash_set<std::string>{"first_name", "unsubscribe_url"};
  return *kSet;
}

absl::Status ValidateTemplate(const v1::Template& t,
                              const absl::flat_hash_set<std::string>& allowed,
                              absl::string_view prefix) {
  const std::string subject = absl::StrCat(prefix, ".subject");
  const std::string text = absl::StrCat(prefix, ".text_body");
  const std::string html = absl::StrCat(prefix, ".html_body");
  CRM_RETURN_IF_ERROR(base::ValidateText(subject, t.subject(), 1, 200));
  CRM_RETURN_IF_ERROR(base::ValidateUtf8(text, t.text_body()));
  CRM_RETURN_IF_ERROR(base::ValidateUtf8(html, t.html_body()));
  if (t.text_body().empty() || t.text_body().size() > 100'000) {
    return absl::InvalidArgumentError(absl::StrCat(text, ": 1 .. 100,000 bytes"));
  }
  if (t.html_body().size() > 200'000) {
    return absl::InvalidArgumentError(absl::StrCat(html, ": at most 200,000 bytes"));
  }
  if (HasLineBreak(t.subject())) {
    return absl::InvalidArgumentError(absl::StrCat(subject, ": one line"));
  }
  // Not a structured binding: clang before 16 (the fuzz build's) cannot
  // capture one in the lambda below.
  for (const auto& entry : {std::pair<const std::string&, const std::string&>{subject, t.subject()},
                            {text, t.text_body()},
                            {html, t.html_body()}}) {
    const std::string& field = entry.first;
    CRM_RETURN_IF_ERROR(Scan(
        field, entry.second, [](absl::string_view) {},
        [&](absl::string_view name) -> absl::Status {
          if (allowed.contains(name)) return absl::OkStatus();
          return absl::InvalidArgumentError(absl::StrCat(
              field, ": unknown placeholder {{", name, "}} (allowed: ",
              absl::StrJoin(std::vector<std::string>(allowed.begin(), allowed.end()), ", "), ")"));
        }));
  }
  return absl::OkStatus();
}

Rendered Render(const v1::Template& t, const Values& values) {
  Rendered r;
  r.subject = OneLine(Fill(t.subject(), values, &OneLine));
  r.text = Fill(t.text_body(), values, &AsIs);
  if (!t.html_body().empty()) r.html = Fill(t.html_body(), values, &base::HtmlEscape);
  return r;
}

std::string QuotedPrintable(absl::string_view text) {
  const std::string in = Crlf(text);
  std::string out;
  out.reserve(in.size() + in.size() / 8);
  size_t line = 0;  // characters on the current output line
  auto emit = [&](absl::string_view piece) {
    if (line + piece.size() > 75) {  // room for the soft break's '='
      out += "=\r\n";
      line = 0;
    }
    out.append(piece.data(), piece.size());
    line += piece.size();
  };
  for (size_t i = 0; i < in.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    if (c == '\r' && i + 1 < in.size() && in[i + 1] == '\n') {
      out += "\r\n";
      line = 0;
      ++i;
      continue;
    }
    const bool at_line_end = i + 1 == in.size() || in[i + 1] == '\r';
    const bool plain =
        (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_line_end);
    if (plain) {
      const char ch = static_cast<char>(c);
      emit(absl::string_view(&ch, 1));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      const char enc[3] = {'=', kHex[c >> 4], kHex[c & 15]};
      emit(absl::string_view(enc, 3));
    }
  }
  return out;
}

std::string EncodeHeaderWord(absl::string_view text) {
  const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (plain && text.size() <= 900) return std::string(text);
  // Encoded words of at most 45 input bytes (60 base64 characters), split at
  // UTF-8 character boundaries, folded onto continuation lines.
  std::vector<std::string> words;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.size(), pos + 45);
    while (end < text.size() && end > pos + 1 &&
           (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
      --end;
    }
    words.push_back(
        absl::StrCat("=?UTF-8?B?", absl::Base64Escape(text.substr(pos, end - pos)), "?="));
    pos = end;
  }
  return absl::StrJoin(words, "\r\n ");
}

absl::StatusOr<std::string> ComposeMessage(const Envelope& e, const Rendered& r) {
  for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"from", e.from},
                                    {"to", e.to},
                                    {"message_id", e.message_id},
                                    {"unsubscribe_url", e.unsubscribe_url}}) {
    const bool angle = value.find('>') != std::string::npos && std::string(name) != "from";
    if (HasControl(value) || angle) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": not allowed in a header"));
    }
  }
  const bool marketing = !e.unsubscribe_url.empty();
  std::string text = r.text;
  std::string html = r.html;
  if (marketing) {
    absl::StrAppend(&text, "\n\n-- \nTo unsubscribe, follow this link: ", e.unsubscribe_url, "\n");
    if (!html.empty()) {
      const std::string footer =
          absl::StrCat("<p style=\"font-size:small\"><a href=\"",
                       base::HtmlEscape(e.unsubscribe_url), "\">Unsubscribe</a></p>");
      const size_t body_end = html.rfind("</body>");
      if (body_end == std::string::npos) {
        html += footer;
      } else {
        html.insert(body_end, footer);
      }
    }
  }
  std::string m;
  absl::StrAppend(&m, "From: ", e.from, "\r\n", "To: ", e.to, "\r\n",
                  "Subject: ", EncodeHeaderWord(r.subject), "\r\n", "Date: ", RfcDate(e.date),
                  "\r\n", "Message-ID: <", e.message_id, ">\r\n", "MIME-Version: 1.0\r\n");
  if (marketing) {
    absl::StrAppend(&m, "List-Unsubscribe: <", e.unsubscribe_url, ">\r\n",
                    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
  }
  auto part = [](absl::string_view type, absl::string_view body) {
    return absl::StrCat("Content-Type: ", type, "; charset=utf-8\r\n",
                        "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                        QuotedPrintable(body), "\r\n");
  };
  if (html.empty()) {
    absl::StrAppend(&m, part("text/plain", text));
    return m;
  }
  const std::string boundary = absl::StrCat("=_", e.message_id.substr(0, e.message_id.find('@')));
  absl::StrAppend(&m, "Content-Type: multipart/alternative; boundary=\"", boundary, "\"\r\n\r\n",
                  "--", boundary, "\r\n", part("text/plain", text), "--", boundary, "\r\n",
                  part("text/html", html), "--", boundary, "--\r\n");
  return m;
}

}  // namespace crm::mailing
