// crmctl person import FILE.csv: persons from a CSV file (RFC 4180, UTF-8,
// a header row naming the columns) streamed to Contacts/ImportPersons, one
// request a row, read as they are sent (the file is never held in memory).
// Rows the CSV itself gets wrong (a different number of fields than the
// header, a bad status, bytes that are not UTF-8) are reported locally and
// not sent; the server's errors, numbered by stream position, are mapped
// back to CSV data rows. See docs/crmctl.md, "Importing persons".
//
// Thread-safety: like Run (crmctl.h).
#pragma once

#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {

// The Runner of `person import`: exit 0 if every row was imported, 1 if a
// row failed or the RPC failed, 2 for usage and file errors (an unreadable
// file, an unknown or duplicate column).
int RunPersonImport(Invocation& inv);

}  // namespace crm::crmctl
