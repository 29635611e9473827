// Rows of audit_log and merkle_nodes as COPY ... FROM STDIN text: what
// LogStore::Append streams, and what ingest_bench's raw-COPY baseline sends
// for the same rows. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/audit/leaf.h"
#include "services/audit/merkle.h"

namespace crm::audit {

// The audit_log columns of AppendLeafCopyRow, in order.
inline constexpr char kLeafCopyColumns[] =
    "leaf_index, event_id, event_time, service, actor_user_id, actor_service, actor_session, "
    "action, resource, subject_id, outcome, request_id, key_scope, has_changes, clear_part, "
    "sealed, leaf_hash, ingested_at";
inline constexpr char kNodeCopyColumns[] = "level, node_index, hash";

// A text value: a backslash, tab, newline or carriage return escaped with a
// backslash.
void AppendCopyText(std::string& out, absl::string_view s);

// A bytea value in hex input form ("\x..." with its backslash escaped), or
// NULL (\N) for empty bytes when `empty_is_null`.
void AppendCopyBytea(std::string& out, absl::string_view bytes, bool empty_is_null);

// A timestamptz value, microseconds, UTC.
std::string CopyTime(absl::Time t);

// The audit_log row (kLeafCopyColumns) of leaf `index`, ended by a newline.
// An empty subject id is NULL (the column is a uuid).
void AppendLeafCopyRow(std::string& out, uint64_t index, const LeafRecord& r,
                       absl::string_view leaf_hash, absl::string_view ingested_at);

// The merkle_nodes row (kNodeCopyColumns) of a subtree, ended by a newline.
void AppendNodeCopyRow(std::string& out, const merkle::NodeId& id, absl::string_view hash);

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

}  // namespace crm::audit
