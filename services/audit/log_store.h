// LogStore: the audit log in PostgreSQL (services/audit/migrations): leaves in
// audit_log, complete subtrees of level >= 1 in merkle_nodes, signed
// checkpoints, the checkpoint signing keys. Appends are serialised across
// replicas by a transaction-level advisory lock; each append writes the new
// leaves (COPY) and every subtree they complete in the same transaction, so
// the stored tree is always whole.
//
// Thread-safe: the pool is; the cached tree edge is under a mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"
#include "libs/pg/pool.h"
#include "services/audit/leaf.h"
#include "services/audit/merkle.h"

namespace crm::audit {

struct StoredEntry {
  int64_t index = 0;
  LeafRecord record;  // content columns are empty when content_expired
  std::string leaf_hash;
  absl::Time ingested_at;
  bool content_expired = false;
};

struct AppendResult {
  int appended = 0;
  int duplicates = 0;
  uint64_t tree_size = 0;
  std::string root;  // of tree_size
};

struct EntryFilter {
  std::string actor_user_id;
  std::string actor_service;
  std::string subject_id;
  std::string action;                // exact
  std::string action_prefix;         // "identity.login." matches identity.login.*
  std::vector<std::string> actions;  // any of these (exact)
  std::string resource;
  std::string service;              // the emitting service, exact
  std::optional<absl::Time> start;  // event_time >= start
  std::optional<absl::Time> end;    // event_time < end
  bool only_changes = false;
};

struct Checkpoint {
  uint64_t tree_size = 0;
  std::string root_hash;
  absl::Time signed_at;
  std::string key_id;
  std::string signature;
};

struct CheckpointKeyRow {
  std::string key_id;
  std::string public_key;
  std::string private_wrapped;
  absl::Time created_at;
};

class LogStore {
 public:
  explicit LogStore(pg::Pool& pool) : pool_(pool) {}

  // The record of event i of a batch (its event_id is event_ids[i]).
  using RecordMaker = std::function<absl::StatusOr<LeafRecord>(size_t i)>;

  // Appends, in order, the events of `event_ids` (canonical lower-case) not
  // logged yet; a replayed event, or one repeated within the batch, counts
  // as a duplicate and is not made. `make` runs inside the transaction, one
  // event at a time, while the rows made before it stream to PostgreSQL, so
  // the server stores a batch while the caller prepares it (sealing,
  // hashing); it runs again for every event if the transaction is retried.
  // An error from `make` appends nothing.
  absl::StatusOr<AppendResult> Append(const std::vector<std::string>& event_ids, absl::Time now,
                                      const RecordMaker& make);

  // The current tree size.
  absl::StatusOr<uint64_t> Size();

  // The hashes of `ids` (level 0 from audit_log.leaf_hash). Missing ones are
  // absent from the map.
  absl::StatusOr<merkle::NodeMap> FetchNodes(const std::vector<merkle::NodeId>& ids);

  // Entries matching `filter` with index > after_index, ascending, at most
  // `limit`.
  absl::StatusOr<std::vector<StoredEntry>> Query(const EntryFilter& filter, int64_t after_index,
                                                 int limit);
  // How many entries match `filter`.
  absl::StatusOr<int64_t> Count(const EntryFilter& filter);

  // Every entry from index `from` on, ascending, in batches of `batch`,
  // each handed to `fn` (a non-OK status stops the scan and is returned).
  absl::Status Scan(int64_t from, int batch,
                    const std::function<absl::Status(const StoredEntry&)>& fn);

  // Clears the content of entries with event_time < cutoff (keeps the leaf
  // hash), at most `limit`; returns how many.
  absl::StatusOr<int64_t> ExpireBefore(absl::Time cutoff, int limit);

  // ---- Checkpoints ----
  // Stores a checkpoint; OK if the same size is stored already.
  absl::Status InsertCheckpoint(const Checkpoint& checkpoint);
  // The newest, or nullopt if none.
  absl::StatusOr<std::optional<Checkpoint>> LatestCheckpoint();
  // The one of `tree_size`; NOT_FOUND if none.
  absl::StatusOr<Checkpoint> CheckpointAt(uint64_t tree_size);
  // All, by size.
  absl::StatusOr<std::vector<Checkpoint>> Checkpoints();

  // ---- Checkpoint keys ----
  // Inserts `key` unless a key exists; returns the stored key (the winner).
  absl::StatusOr<CheckpointKeyRow> EnsureCheckpointKey(const CheckpointKeyRow& key);
  absl::StatusOr<std::vector<CheckpointKeyRow>> CheckpointKeys();

  // ---- Erasure bookkeeping ----
  struct ErasureRecord {
    std::string subject_id;
    int64_t events = 0;
    absl::Time completed_at;
  };
  // The answer recorded for an erasure request, if any.
  absl::StatusOr<std::optional<ErasureRecord>> ErasureRecorded(absl::string_view request_id);
  // Records the answer to `request_id` unless one is recorded already.
  absl::Status RecordErasure(absl::string_view request_id, absl::string_view subject_id,
                             int64_t events, absl::Time now);

 private:
  pg::Pool& pool_;
  absl::Mutex mu_;
  // The tree as of the last append by this process (another replica's
  // appends are noticed by size and resumed from stored nodes).
  std::optional<merkle::TreeBuilder> edge_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::audit
