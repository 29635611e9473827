#include "tools/crmctl_src/csv.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace crm::crmctl {

absl::StatusOr<bool> CsvReader::Next(std::vector<std::string>* fields) {
  fields->clear();
  if (failed_) return false;
  int c = in_.get();
  if (c == std::char_traits<char>::eof()) return false;
  record_line_ = line_;
  std::string field;
  bool quoted = false;      // Inside quotes.
  bool was_quoted = false;  // The current field began with a quote.
  for (;; c = in_.get()) {
    if (c == std::char_traits<char>::eof()) {
      if (quoted) {
        failed_ = true;
        return absl::InvalidArgumentError(absl::StrCat(
            "line ", record_line_, ": a quoted field is not closed before the end of the input"));
      }
      fields->push_back(std::move(field));
      return true;
    }
    const char ch = static_cast<char>(c);
    if (quoted) {
      if (ch == '"') {
        if (in_.peek() == '"') {
          in_.get();
          field.push_back('"');
        } else {
          quoted = false;
        }
      } else {
        if (ch == '\n') ++line_;
        field.push_back(ch);
      }
      continue;
    }
    if (ch == ',') {
      fields->push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else if (ch == '\n' || (ch == '\r' && in_.peek() == '\n')) {
      if (ch == '\r') in_.get();
      ++line_;
      fields->push_back(std::move(field));
      return true;
    } else if (was_quoted) {
      failed_ = true;
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_, ": text after the closing quote of a field"));
    } else if (ch == '"' && field.empty()) {
      quoted = true;
      was_quoted = true;
    } else {
      field.push_back(ch);
    }
  }
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    int extra = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      extra = 1;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      extra = 2;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      extra = 3;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      const auto cb = static_cast<unsigned char>(text[i + k]);
      if ((cb & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cb & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace crm::crmctl
