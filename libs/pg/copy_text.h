// COPY text: rows for COPY ... FROM STDIN and the fields of COPY ... TO
// STDOUT lines, in PostgreSQL's text format (tab-separated, backslash
// escapes, \N for NULL), and CopyIn, which streams such rows into a table
// inside a transaction. What the stores use for bulk writes and scans (audit
// log entries, contacts' imports) and their benchmarks for the same rows.
// The functions are pure and thread-safe; a CopyIn belongs to its
// transaction.
#pragma once

#include <memory>
#include <pqxx/transaction_base>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pqxx {
class tablewriter;
}

namespace crm::pg {

// A text value: a backslash, tab, newline or carriage return escaped with a
// backslash.
void AppendCopyText(std::string& out, absl::string_view s);

// A bytea value in hex input form ("\x..." with its backslash escaped), or
// NULL (\N) for empty bytes when `empty_is_null`.
void AppendCopyBytea(std::string& out, absl::string_view bytes, bool empty_is_null);

// A timestamptz value, microseconds, UTC.
std::string CopyTime(absl::Time t);

// One field of a line of COPY ... TO STDOUT text output.
struct CopyField {
  std::string value;  // unescaped; empty when null
  bool null = false;
};

// Splits `line` (one row, without its newline) into `fields` (reused across
// calls to save allocations), undoing the escapes COPY writes: \\, \t,
// \n, \r, \b, \f, \v, and \N for NULL. INVALID_ARGUMENT for a line ending
// in a backslash.
absl::Status SplitCopyLine(absl::string_view line, std::vector<CopyField>& fields);

// Sets `out` to the bytes of a bytea field's text output ("\x" and hex
// digits). INVALID_ARGUMENT for anything else.
absl::Status DecodeByteaHex(absl::string_view field, std::string& out);

// COPY <table> (<columns>) FROM STDIN within `tx`, fed with whole rows
// (AppendCopy*): libpq flushes every 8 KiB, so the server stores the rows
// already sent while the caller prepares the next. Complete() ends the COPY
// (a database error then throws, as any statement of the transaction);
// destroying it without Complete() aborts the COPY and so the transaction.
// pqxx::stream_to takes a tuple per row and escapes each field character by
// character (a third of audit's ingest CPU); tablewriter::write_raw_line
// sends the text as it is, but its constructor is deprecated in libpqxx 6.4
// (Debian 12), whose stream_to has no raw write: hence this wrapper.
class CopyIn {
 public:
  // `columns`: comma-and-space separated ("a, b, c").
  CopyIn(pqxx::transaction_base& tx, const std::string& table, absl::string_view columns);
  ~CopyIn();
  CopyIn(const CopyIn&) = delete;
  CopyIn& operator=(const CopyIn&) = delete;

  // `rows`: whole rows, each ended by a newline.
  void Write(const std::string& rows);
  void Complete();

 private:
  const std::vector<std::string> columns_;
  std::unique_ptr<pqxx::tablewriter> writer_;
};

}  // namespace crm::pg
