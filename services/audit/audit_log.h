// The audit log's domain layer over LogStore and DataKeys: ingestion (validate,
// split, seal, append), opening entries for readers, signed checkpoints, and
// full verification. The gRPC handlers (audit_service.h) and
// tools/audit-verify use it.
//
// Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crm/audit/v1/audit.pb.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/clock.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "services/audit/data_keys.h"
#include "services/audit/log_store.h"

namespace crm::audit {

class AuditLog {
 public:
  AuditLog(LogStore& store, DataKeys& keys, const base::Clock& clock)
      : store_(store), keys_(keys), clock_(clock) {}

  // Validates every event first (INVALID_ARGUMENT naming events[i].field;
  // nothing is written), then seals each personal part under its scope's key
  // and appends the batch. Events of an erased subject keep no personal part.
  absl::StatusOr<AppendResult> Ingest(absl::Span<const crm::audit::v1::Event* const> events);

  // The entry with its personal part opened, or the reason it cannot be
  // ("erased", "expired").
  absl::StatusOr<crm::audit::v1::LogEntry> Open(const StoredEntry& entry);

  LogStore& store() { return store_; }
  DataKeys& keys() { return keys_; }

 private:
  LogStore& store_;
  DataKeys& keys_;
  const base::Clock& clock_;
};

// The text a checkpoint signature covers (docs/audit.md):
// "crm-audit-checkpoint/v1\n<tree_size>\n<base64 root>\n<unix micros>\n".
std::string CheckpointText(uint64_t tree_size, absl::string_view root, absl::Time signed_at);

// Signs checkpoints of the log: every `every_entries` new entries or every
// `every_interval` when the log grew, whichever comes first. The Ed25519
// key is made once per deployment, stored wrapped under the KEK ring.
class Checkpointer {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpointer>> Create(LogStore& store,
                                                              const crypto::KeyRing& ring,
                                                              const base::Clock& clock,
                                                              int64_t every_entries,
                                                              absl::Duration every_interval);

  // Signs the current tree if due (or `force` and it grew); returns the new
  // checkpoint, or nullopt if none was due.
  absl::StatusOr<std::optional<Checkpoint>> MaybeCheckpoint(bool force = false);

  const std::string& key_id() const { return key_id_; }

 private:
  Checkpointer(LogStore& store, const base::Clock& clock, crypto::Ed25519PrivateKey key,
               std::string key_id, int64_t every_entries, absl::Duration every_interval)
      : store_(store),
        clock_(clock),
        key_(std::move(key)),
        key_id_(std::move(key_id)),
        every_entries_(every_entries),
        every_interval_(every_interval) {}

  LogStore& store_;
  const base::Clock& clock_;
  crypto::Ed25519PrivateKey key_;
  std::string key_id_;
  const int64_t every_entries_;
  const absl::Duration every_interval_;
  absl::Mutex mu_;
};

// Retention: clears the content of every entry with event_time < cutoff
// (LogStore::ExpireBefore, `batch` entries per transaction, until a batch
// comes back short); returns how many. Errors: INVALID_ARGUMENT if batch <
// 1; the store's (batches done before the error stay expired).
absl::StatusOr<int64_t> ExpireContent(LogStore& store, absl::Time cutoff, int batch = 10'000);

struct VerifyReport {
  bool ok = true;
  int64_t entries_checked = 0;
  int64_t checkpoints_checked = 0;
  int64_t first_bad_index = -1;
  std::string problem;
};

// Recomputes every leaf hash from the stored content (entries whose content
// expired count by their stored hash), rebuilds the tree, and checks every
// checkpoint's signature and root, and every stored subtree hash (proofs are
// served from them). Names the first bad entry it can: modified content, a
// missing index (also entries missing at the end under a checkpoint), or
// (for leaf hashes rewritten along with their content, rows inserted or
// swapped, a stored subtree changed or deleted) the first leaf of the lowest
// stored subtree that differs, which is the entry itself when its index is
// even; when the stored subtrees were rewritten too, the first entry the
// failing checkpoint added. A checkpoint whose signature does not verify
// names no entry (first_bad_index -1).
// `pinned_public_keys` (raw Ed25519 keys obtained out of band, e.g. from
// GetCheckpointKeys when the log was young), if given, replace the keys
// stored in the database: someone able to rewrite the database could
// otherwise re-sign checkpoints with a key of their own.
absl::StatusOr<VerifyReport> VerifyLog(LogStore& store,
                                       const std::vector<std::string>& pinned_public_keys = {});

}  // namespace crm::audit
