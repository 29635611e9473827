#include "libs/pg/copy_text.h"

#include <pqxx/tablewriter>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace crm::pg {

void AppendCopyText(std::string& out, absl::string_view s) {
  size_t done = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char* escaped = nullptr;
    switch (s[i]) {
      case '\\':
        escaped = "\\\\";
        break;
      case '\t':
        escaped = "\\t";
        break;
      case '\n':
        escaped = "\\n";
        break;
      case '\r':
        escaped = "\\r";
        break;
      default:
        continue;
    }
    out.append(s.data() + done, i - done);
    out.append(escaped);
    done = i + 1;
  }
  out.append(s.data() + done, s.size() - done);
}

void AppendCopyBytea(std::string& out, absl::string_view bytes, bool empty_is_null) {
  if (bytes.empty() && empty_is_null) {
    out.append("\\N");
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out.append("\\\\x");
  size_t at = out.size();
  out.resize(at + 2 * bytes.size());
  for (unsigned char c : bytes) {
    out[at++] = kHex[c >> 4];
    out[at++] = kHex[c & 0xf];
  }
}

std::string CopyTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", t, absl::UTCTimeZone());
}

absl::Status SplitCopyLine(absl::string_view line, std::vector<CopyField>& fields) {
  size_t n = 0;
  auto next_field = [&]() -> CopyField& {
    if (n == fields.size()) fields.emplace_back();
    CopyField& f = fields[n++];
    f.value.clear();
    f.null = false;
    return f;
  };
  CopyField* f = &next_field();
  size_t i = 0;
  while (i < line.size()) {
    // Copy the run up to the next tab or backslash at once.
    size_t stop = i;
    while (stop < line.size() && line[stop] != '\t' && line[stop] != '\\') ++stop;
    f->value.append(line.data() + i, stop - i);
    if (stop == line.size()) break;
    i = stop + 1;
    if (line[stop] == '\t') {
      f = &next_field();
      continue;
    }
    if (i == line.size()) return absl::InvalidArgumentError("COPY line ends in a backslash");
    switch (line[i++]) {
      case 'N':
        f->null = true;
        break;
      case 't':
        f->value.push_back('\t');
        break;
      case 'n':
        f->value.push_back('\n');
        break;
      case 'r':
        f->value.push_back('\r');
        break;
      case 'b':
        f->value.push_back('\b');
        break;
      case 'f':
        f->value.push_back('\f');
        break;
      case 'v':
        f->value.push_back('\v');
        break;
      default:  // a backslash, or a character escaped for no reason
        f->value.push_back(line[i - 1]);
    }
  }
  fields.resize(n);
  return absl::OkStatus();
}

absl::Status DecodeByteaHex(absl::string_view field, std::string& out) {
  if (field.size() < 2 || field[0] != '\\' || field[1] != 'x' || field.size() % 2 != 0) {
    return absl::InvalidArgumentError("bytea: not in hex form");
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.resize((field.size() - 2) / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(field[2 + 2 * i]);
    const int lo = nibble(field[3 + 2 * i]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("bytea: not in hex form");
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return absl::OkStatus();
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
CopyIn::CopyIn(pqxx::transaction_base& tx, const std::string& table, absl::string_view columns)
    : columns_(absl::StrSplit(columns, ", ")),
      writer_(std::make_unique<pqxx::tablewriter>(tx, table, columns_.begin(), columns_.end())) {}

CopyIn::~CopyIn() = default;

void CopyIn::Write(const std::string& rows) {
  if (!rows.empty()) writer_->write_raw_line(rows);
}

void CopyIn::Complete() { writer_->complete(); }
#pragma GCC diagnostic pop

}  // namespace crm::pg
