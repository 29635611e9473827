// Rows of audit_log and merkle_nodes as COPY ... FROM STDIN text (the format
// of libs/pg/copy_text.h): what LogStore::Append streams, and what
// ingest_bench's raw-COPY baseline sends for the same rows. Pure functions:
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/pg/copy_text.h"
#include "services/audit/leaf.h"
#include "services/audit/merkle.h"

namespace crm::audit {

// The audit_log columns of AppendLeafCopyRow, in order.
inline constexpr char kLeafCopyColumns[] =
    "leaf_index, event_id, event_time, service, actor_user_id, actor_service, actor_session, "
    "action, resource, subject_id, outcome, request_id, key_scope, has_changes, clear_part, "
    "sealed, leaf_hash, ingested_at";
inline constexpr char kNodeCopyColumns[] = "level, node_index, hash";

// The audit_log row (kLeafCopyColumns) of leaf `index`, ended by a newline.
// An empty subject id is NULL (the column is a uuid).
void AppendLeafCopyRow(std::string& out, uint64_t index, const LeafRecord& r,
                       absl::string_view leaf_hash, absl::string_view ingested_at);

// The merkle_nodes row (kNodeCopyColumns) of a subtree, ended by a newline.
void AppendNodeCopyRow(std::string& out, const merkle::NodeId& id, absl::string_view hash);

}  // namespace crm::audit
