// Fuzz target `csv`: crmctl's streaming CSV reader (tools/crmctl_src/csv.h),
// which reads the files of `crmctl person import`, and its UTF-8 check.
//
// Properties beyond "no crash, no sanitizer report":
//  - the reader ends: every call consumes input or reports the end, and after
//    an error it reports the end;
//  - record lines only grow;
//  - what it reads, written back as CSV (every field quoted, '"' doubled,
//    CRLF between records), reads back as the same records;
//  - crmctl::IsValidUtf8 agrees with base::IsValidUtf8Text (the services'
//    check) on text without control characters, so a row crmctl lets through
//    as UTF-8 is not refused for its encoding by the server.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "libs/base/validate.h"
#include "tools/crmctl_src/csv.h"

namespace {

using Records = std::vector<std::vector<std::string>>;

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (csv): %s\n", property);
  std::abort();
}

// All records up to the end or the first error (`*ok` false then).
Records ReadAll(const std::string& text, bool* ok) {
  std::istringstream in(text);
  crm::crmctl::CsvReader reader(in);
  Records records;
  std::vector<std::string> fields;
  int64_t last_line = 0;
  *ok = true;
  // Each record consumes at least one byte, so more calls than bytes loop.
  for (size_t calls = 0; calls <= text.size() + 1; ++calls) {
    absl::StatusOr<bool> got = reader.Next(&fields);
    if (!got.ok()) {
      *ok = false;
      absl::StatusOr<bool> after = reader.Next(&fields);
      if (!after.ok() || *after) Fail("the reader goes on after an error");
      return records;
    }
    if (!*got) return records;
    if (reader.record_line() <= last_line) Fail("record lines do not grow");
    last_line = reader.record_line();
    records.push_back(fields);
  }
  Fail("the reader does not end");
}

std::string Write(const Records& records) {
  std::string out;
  for (const std::vector<std::string>& record : records) {
    for (size_t i = 0; i < record.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.push_back('"');
      for (char c : record[i]) {
        if (c == '"') out.push_back('"');
        out.push_back(c);
      }
      out.push_back('"');
    }
    out += "\r\n";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  bool ok = false;
  const Records records = ReadAll(input, &ok);
  bool rewritten_ok = false;
  if (ReadAll(Write(records), &rewritten_ok) != records || !rewritten_ok) {
    Fail("records written back as CSV read back differently");
  }

  // base::IsValidUtf8Text also refuses control characters: C0, DEL and
  // the C1 range (U+0080..U+009F, encoded C2 80..C2 9F).
  bool has_control = false;
  for (size_t i = 0; i < input.size(); ++i) {
    const auto c = static_cast<unsigned char>(input[i]);
    const bool c1 = c == 0xc2 && i + 1 < input.size() &&
                    static_cast<unsigned char>(input[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(input[i + 1]) <= 0x9f;
    has_control = has_control || c < 0x20 || c == 0x7f || c1;
  }
  const bool crmctl_valid = crm::crmctl::IsValidUtf8(input);
  const bool services_valid = crm::base::IsValidUtf8Text(input);
  if (services_valid && !crmctl_valid) Fail("crmctl refuses UTF-8 the services accept");
  if (!has_control && crmctl_valid != services_valid) {
    Fail("crmctl and the services disagree on UTF-8");
  }
  return 0;
}
