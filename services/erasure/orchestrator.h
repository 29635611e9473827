// Orchestrator: the worker that moves erasure requests to completion.
//
// One round (RunOnce) claims due open requests (SKIP LOCKED, with a lease:
// replicas share the work, and a crashed worker's requests come back when
// the lease ends) and advances each as far as its targets let it:
//   RECEIVED   Describe on every target, recorded (the plan) -> PLANNED,
//              and at once (same transaction) -> ERASING
//   ERASING    Erase on every planned target, in parallel, each call with a
//              deadline; "already gone" is a success (targets answer
//              idempotently by request id; a later round sends a key of its
//              own, RoundRequestId) -> VERIFYING
//              Also reads the subject's e-mail addresses from the
//              address source's export, sealed under a key of the
//              request's own (passed to every Erase: consent keeps
//              suppressing them after an objection)
//   VERIFYING  Describe again: a target still holding anything but legally
//              retained categories goes back to PLANNED for another round
//              (ERASING again); after max_rounds rounds the request NEEDS
//              ATTENTION, naming the targets and categories. All clean:
//              the certificate is signed and stored -> COMPLETED, or
//              COMPLETED_WITH_RETENTION when something is legally retained.
//              For a subject's own request, the completion notice goes
//              to each address first (through mailing; retried until it
//              is queued), and then the address key is destroyed.
// Access requests (kind ACCESS) go RECEIVED -> EXPORTING at once (the
// export key made, wrapped under the KEK) and then:
//   EXPORTING  Describe and Export on every target, in parallel; each
//              target's part of the document (access_export.h) is sealed in
//              chunks under the export key and stored with the target's
//              state (EXPORTED), in one transaction; the address source's
//              export gives the subject's addresses -> COMPLETED, expiring
//              after export_ttl; the subject is told the export is ready,
//              then the address key is destroyed.
// Each round also deletes the exports whose time ran out (-> EXPIRED).
// An extension (ExtendErasure) is told to the subject of a subject's own
// request once their addresses are known.
// A target call that fails is retried for that target alone, with
// exponential backoff and jitter (first_retry doubling up to max_retry),
// without limit: a target that is down delays a request, never fails it.
// Each step is one transaction (targets, request, audit events), so a crash
// loses at most the step in flight, which is repeated (targets' answers are
// idempotent).
//
// Thread-compatible: one Orchestrator per worker thread; any number may run
// against one database.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crm/erasure/v1/erasure.pb.h"
#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "services/erasure/access_export.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace crm::erasure {

// The idempotency key of round `round`'s Erase calls: the request id for the
// first round, and for later ones a UUID derived from it (targets answer a
// repeated key with their recorded answer, so a second round under the same
// key would erase nothing).
std::string RoundRequestId(const std::string& request_id, int round);

// A service holding subject data, as the registry names it.
struct Target {
  std::string service;  // "contacts"
  std::shared_ptr<subject::v1::SubjectData::StubInterface> stub;
};

// What the subject is told (mailing's transactional kinds).
enum class NoticeKind {
  kErasureConfirmed,  // ERASURE_CONFIRMED: the erasure is complete
  kAccessReady,       // ACCESS_READY: the export can be fetched until expires_at
  kExtended,          // REQUEST_EXTENDED: the due date moved (Art. 12(3))
};

// Sends a notice about `r` to each address; idempotent per request, kind
// (and for kExtended, the months extended).
class Notifier {
 public:
  virtual ~Notifier() = default;
  virtual absl::Status Send(NoticeKind kind, const v1::ErasureRequest& r,
                            const std::vector<std::string>& addresses) = 0;
};

struct OrchestratorOptions {
  absl::Duration call_deadline = absl::Seconds(10);
  absl::Duration lease = absl::Minutes(2);
  int max_rounds = 3;
  absl::Duration first_retry = absl::Seconds(1);
  absl::Duration max_retry = absl::Minutes(5);
  int batch_size = 16;  // requests claimed per round
  // The target whose export holds the subject's e-mail addresses (record
  // "person", field emails[].address), read when a request is planned; "":
  // none are read.
  std::string address_source = "contacts";
  // How long an access export is kept once ready.
  absl::Duration export_ttl = absl::Hours(24 * 14);
  // The Art. 15 facts of access exports; null: none configured (every
  // category "described": false).
  std::shared_ptr<const ProcessingRecord> record;
};

struct AdvanceStats {
  int claimed = 0;
  int completed = 0;  // completed, with or without retention
  int needs_attention = 0;
  int target_failures = 0;  // calls that failed (and will be retried)
  int expired = 0;          // access exports deleted
};

class Orchestrator {
 public:
  // `ring` wraps each request's address key; `notifier` may be null (no
  // completion notices).
  Orchestrator(pg::Pool& db, std::vector<Target> targets, const crypto::Ed25519PrivateKey& key,
               const crypto::KeyRing& ring, Notifier* notifier, outbox::Writer& audit,
               const base::Clock& clock, OrchestratorOptions options);

  // One round (see above). Errors: the database's; a request whose step
  // failed on the database is left to its lease.
  absl::StatusOr<AdvanceStats> RunOnce();

  // Advances one request now (the round's work for one claimed request).
  absl::Status Advance(const std::string& request_id, AdvanceStats& stats);

  // The registry's service names, in order.
  std::vector<std::string> TargetNames() const;

 private:
  absl::Duration Backoff(int failures) const;
  // Deletes the exports whose time ran out.
  absl::Status ExpireExports(AdvanceStats& stats);
  // (wrapped key, sealed list) of `addresses` under a new key.
  absl::StatusOr<std::pair<std::string, std::string>> SealAddresses(
      const std::string& request_id, const std::vector<std::string>& addresses) const;
  // The addresses in `stored` ((wrapped key, sealed list), as
  // ErasureStore::GetSecrets reads them), or nullopt if none are stored.
  absl::StatusOr<std::optional<std::vector<std::string>>> OpenAddresses(
      const std::string& request_id,
      const std::optional<std::pair<std::string, std::string>>& stored) const;
  pg::Pool& db_;
  std::vector<Target> targets_;
  const crypto::Ed25519PrivateKey& key_;
  const crypto::KeyRing& ring_;
  Notifier* notifier_;
  const std::string key_id_;
  outbox::Writer& audit_;
  const base::Clock& clock_;
  const std::string worker_id_;  // whose leases are whose
  OrchestratorOptions options_;
};

}  // namespace crm::erasure
