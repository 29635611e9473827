// A small streaming CSV reader for crmctl (person import): RFC 4180 records
// read one at a time from a stream, never the whole input. Fields are
// separated by ',', records by CRLF or LF; a field may be quoted with '"',
// inside which ',' CR and LF are data and "" is one '"'. A '"' inside an
// unquoted field is kept as data. A final line break is optional. Bytes are
// passed through as they are (UTF-8 is checked by the caller).
//
// Thread-safety: one CsvReader per thread.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::crmctl {

class CsvReader {
 public:
  // `in` must outlive the reader.
  explicit CsvReader(std::istream& in) : in_(in) {}

  // The next record into `*fields`: true, or false at the end of the input.
  // INVALID_ARGUMENT naming the line for a quote left open at the end of
  // the input or text after a closing quote ("a"b); the reader then stops.
  absl::StatusOr<bool> Next(std::vector<std::string>* fields);

  // The line (1-based) where the record last returned started.
  int64_t record_line() const { return record_line_; }

 private:
  std::istream& in_;
  int64_t line_ = 1;
  int64_t record_line_ = 0;
  bool failed_ = false;
};

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or
// values above U+10FFFF).
bool IsValidUtf8(absl::string_view text);

}  // namespace crm::crmctl
