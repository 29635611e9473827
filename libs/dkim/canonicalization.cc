#include "libs/dkim/canonicalization.h"

#include <cstddef>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace crm::dkim {
namespace {

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

// RFC 5322 ftext: printable US-ASCII except ':'.
bool IsFieldNameChar(char c) { return c >= 33 && c <= 126 && c != ':'; }

absl::string_view TrimTrailingWsp(absl::string_view s) {
  while (!s.empty() && IsWsp(s.back())) s.remove_suffix(1);
  return s;
}

// Appends `in` with every run of spaces and tabs replaced by one space and
// whitespace at its end dropped. `skip_crlf` also drops CRLF pairs (unfolding
// header continuation lines).
void AppendCompressed(absl::string_view in, bool skip_crlf, std::string& out) {
  bool pending_space = false;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (skip_crlf && c == '\r' && i + 1 < in.size() && in[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (IsWsp(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
}

}  // namespace

absl::StatusOr<ParsedMessage> ParseMessage(absl::string_view message) {
  // Every CR must begin a CRLF and every LF end one: a verifier that reads
  // bare line ends differently would see another message than the one signed.
  for (size_t i = 0; i < message.size(); ++i) {
    const bool bare_cr = message[i] == '\r' && (i + 1 >= message.size() || message[i + 1] != '\n');
    const bool bare_lf = message[i] == '\n' && (i == 0 || message[i - 1] != '\r');
    if (bare_cr || bare_lf) {
      return absl::InvalidArgumentError(
          "message: every line must end in CRLF (found a bare CR or LF)");
    }
  }

  ParsedMessage parsed;
  size_t pos = 0;
  size_t line_number = 0;
  size_t field_start = 0;
  bool in_field = false;
  while (true) {
    const size_t eol = message.find("\r\n", pos);
    if (eol == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "message: no empty line separates the header from the body");
    }
    ++line_number;
    const absl::string_view line = message.substr(pos, eol - pos);
    const size_t next = eol + 2;
    if (line.empty() || !IsWsp(line[0])) {
      // The previous field, if any, ends before this line.
      if (in_field) parsed.headers.back().field = message.substr(field_start, pos - field_start);
      in_field = false;
    }
    if (line.empty()) {
      parsed.body = message.substr(next);
      return parsed;
    }
    if (IsWsp(line[0])) {
      if (!in_field) {
        return absl::InvalidArgumentError(
            absl::StrCat("message: header line ", line_number,
                         " is a continuation line without a field before it"));
      }
    } else {
      const size_t colon = line.find(':');
      const absl::string_view name =
          colon == absl::string_view::npos ? line : TrimTrailingWsp(line.substr(0, colon));
      bool valid = colon != absl::string_view::npos && !name.empty();
      for (char c : name) valid = valid && IsFieldNameChar(c);
      if (!valid) {
        return absl::InvalidArgumentError(absl::StrCat("message: header line ", line_number,
                                                       " is not a header field (\"<name>:\")"));
      }
      parsed.headers.push_back(HeaderField{name, {}});
      field_start = pos;
      in_field = true;
    }
    pos = next;
  }
}

std::string RelaxedHeader(absl::string_view field) {
  const size_t colon = field.find(':');
  const absl::string_view name =
      TrimTrailingWsp(colon == absl::string_view::npos ? field : field.substr(0, colon));
  std::string out;
  out.reserve(field.size() + 2);
  out.append(name.data(), name.size());
  absl::AsciiStrToLower(&out);
  out.push_back(':');
  if (colon != absl::string_view::npos) {
    absl::string_view value = field.substr(colon + 1);
    // Leading whitespace (and folds) of the value go; AppendCompressed drops
    // the trailing ones and unfolds the rest.
    while (!value.empty() && (IsWsp(value[0]) || absl::StartsWith(value, "\r\n"))) {
      value.remove_prefix(value[0] == '\r' ? 2 : 1);
    }
    AppendCompressed(value, /*skip_crlf=*/true, out);
  }
  out.append("\r\n");
  return out;
}

std::string RelaxedBody(absl::string_view body) {
  std::string out;
  out.reserve(body.size() + 2);
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find("\r\n", pos);
    if (eol == absl::string_view::npos) eol = body.size();
    AppendCompressed(body.substr(pos, eol - pos), /*skip_crlf=*/false, out);
    out.append("\r\n");  // Also where the last line had none.
    pos = eol + 2;
  }
  // Empty lines at the end go; a body of nothing but empty lines becomes "".
  while (absl::EndsWith(out, "\r\n\r\n")) out.resize(out.size() - 2);
  if (out == "\r\n") out.clear();
  return out;
}

}  // namespace crm::dkim
