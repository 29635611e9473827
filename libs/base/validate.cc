#include "libs/base/validate.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace crm::base {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

bool IsAtext(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return absl::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != absl::string_view::npos;
}

bool IsDomainLabel(absl::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

}  // namespace

bool IsValidUtf8Text(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return false;
      ++i;
      continue;
    }
    int extra;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      extra = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra]) return false;              // overlong
    if (cp >= 0xd800 && cp <= 0xdfff) return false;  // surrogate
    if (cp > 0x10ffff) return false;
    if (cp >= 0x80 && cp <= 0x9f) return false;  // C1 controls
    i += extra + 1;
  }
  return true;
}

absl::Status ValidateUtf8(absl::string_view field, absl::string_view value) {
  if (!IsValidUtf8Text(value))
    return Invalid(field, "must be valid UTF-8 text without control characters");
  return absl::OkStatus();
}

size_t Utf8Length(absl::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<uint8_t>(c) & 0xc0) != 0x80) ++n;
  }
  return n;
}

absl::Status ValidateText(absl::string_view field, absl::string_view value, size_t min,
                          size_t max) {
  if (value.empty() && min > 0) return Invalid(field, "required");
  if (absl::Status s = ValidateUtf8(field, value); !s.ok()) return s;
  const size_t len = Utf8Length(value);
  if (len < min) return Invalid(field, absl::StrCat("must be at least ", min, " characters"));
  if (len > max) return Invalid(field, absl::StrCat("must be at most ", max, " characters"));
  return absl::OkStatus();
}

absl::Status ValidateName(absl::string_view field, absl::string_view value, size_t max) {
  if (value.empty() || value.size() > max || !std::all_of(value.begin(), value.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be 1..", max, " of a-z 0-9 . _ -"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEmail(absl::string_view field, absl::string_view value) {
  if (value.empty()) return Invalid(field, "required");
  if (value.size() > 254) return Invalid(field, "must be at most 254 characters");
  const size_t at = value.rfind('@');
  if (at == absl::string_view::npos)
    return Invalid(field, "must be an e-mail address (missing '@')");
  const absl::string_view local = value.substr(0, at);
  const absl::string_view domain = value.substr(at + 1);
  if (local.empty() || local.size() > 64) {
    return Invalid(field, "must be an e-mail address (local part of 1 to 64 characters)");
  }
  if (local.front() == '.' || local.back() == '.' || absl::StrContains(local, "..")) {
    return Invalid(field, "must be an e-mail address (misplaced '.' in local part)");
  }
  for (char c : local) {
    if (c != '.' && !IsAtext(c)) {
      return Invalid(field, "must be an e-mail address (invalid character in local part)");
    }
  }
  if (domain.empty() || domain.find('.') == absl::string_view::npos) {
    return Invalid(field, "must be an e-mail address (domain needs a dot)");
  }
  for (absl::string_view label : absl::StrSplit(domain, '.')) {
    if (!IsDomainLabel(label)) return Invalid(field, "must be an e-mail address (invalid domain)");
  }
  return absl::OkStatus();
}

absl::Status ValidatePhoneE164(absl::string_view field, absl::string_view value) {
  if (value.empty()) return Invalid(field, "required");
  if (value.front() != '+')
    return Invalid(field, "must be an E.164 phone number starting with '+'");
  const absl::string_view digits = value.substr(1);
  if (digits.size() < 8 || digits.size() > 15) {
    return Invalid(field, "must be an E.164 phone number of 8 to 15 digits");
  }
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return Invalid(field, "must be an E.164 phone number (digits only after '+')");
    }
  }
  if (digits.front() == '0')
    return Invalid(field, "must be an E.164 phone number (country code cannot start with 0)");
  return absl::OkStatus();
}

std::string NormalizeEmail(absl::string_view value) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
}

std::string NormalizePhone(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : absl::StripAsciiWhitespace(value)) {
    if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') continue;
    out.push_back(c);
  }
  return out;
}

std::string PrintableAscii(absl::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7E) c = '?';
  }
  return out;
}

}  // namespace crm::base
