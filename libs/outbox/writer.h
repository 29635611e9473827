// Writer: how a service records an audit event. The event is written into the
// service's own audit_outbox table inside the caller's transaction, so it is
// committed if and only if the change it records is; the Relay (relay.h)
// ships it to the audit service afterwards.
//
//   outbox::Writer audit_out("contacts", outbox_key.Copy(), clock);
//   CRM_RETURN_IF_ERROR(pool.Transact([&](pqxx::work& tx) -> absl::Status {
//     tx.exec_params(kUpdatePerson, ...);
//     crm::audit::v1::Event event;
//     event.set_action("person.update");
//     ...
//     return audit_out.Enqueue(tx, std::move(event));
//   }));
//   relay.Notify();  // optional: ship now rather than at the next poll
//
// The serialized event contains personal data (changed values, source
// address), so the payload column holds it sealed with AES-256-GCM under the
// outbox key (see schema.h LoadOrCreateKey), with the event id as associated
// data: a payload copied into another row does not open.
//
// Thread-safe: Enqueue may be called from any number of threads (each with its
// own transaction).
#pragma once

#include <cstdint>
#include <pqxx/transaction>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/clock.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/secret_bytes.h"
#include "libs/pg/pipeline.h"

namespace crm::outbox {

// Longest action and service names accepted, in code points.
inline constexpr size_t kMaxActionLength = 128;
inline constexpr size_t kMaxServiceLength = 63;

// An event checked and sealed by Writer::SealForInsert, for a statement that
// inserts it itself.
struct SealedEvent {
  std::string event_id;
  std::string payload;  // sealed; bytea
  int64_t created_at_micros = 0;
};

// The start of an INSERT of one SealedEvent into the outbox, as a SELECT of
// parameters $first (event_id), $first + 1 (payload, binary) and $first + 2
// (created_at_micros): append a FROM or WHERE clause to make it conditional.
std::string InsertSelectSql(int first_param);

class Writer {
 public:
  // `service` is the emitting service's name ("contacts"), filled into events
  // that lack one. `key` is the 32-byte outbox key. `clock` must outlive the
  // writer. A bad service name or key is reported by Enqueue.
  Writer(std::string service, crypto::SecretBytes key, base::Clock& clock);

  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Inserts `event` into audit_outbox within `tx` (the caller commits or rolls
  // back). Before that it fills event_id with a new UUID and time with the
  // clock's now if they are unset, and service with the writer's service if
  // empty. On success, `*event_id` (if not null) receives the event id.
  // Errors (nothing is written):
  //   INVALID_ARGUMENT naming the field: "action" missing, too long or not
  //     text; "service" missing (the writer has none), not valid, or different
  //     from the writer's; "event_id" set but not a UUID;
  //   INVALID_ARGUMENT "outbox key" if the key is not 32 bytes;
  //   INTERNAL if the event cannot be serialized or sealed.
  // Database errors (e.g. the table is missing, or a duplicate event_id) are
  // thrown by libpqxx inside `tx` and become the status of Pool::Transact
  // (ALREADY_EXISTS for a duplicate event id).
  absl::Status Enqueue(pqxx::transaction_base& tx, crm::audit::v1::Event event,
                       std::string* event_id = nullptr) const;

  // Enqueue as one more statement of `pipeline` (pg::Pool::RunPipeline),
  // committed with the others. The same checks; database errors become the
  // status of RunPipeline.
  absl::Status Enqueue(pg::Pipeline& pipeline, crm::audit::v1::Event event) const;

  // Enqueue's checks and sealing without the insert, for a statement that
  // writes the event itself (InsertSelectSql): e.g. a read that audits what
  // it returns in the same statement, one round trip. Same errors.
  absl::StatusOr<SealedEvent> SealForInsert(crm::audit::v1::Event event) const;

  // Enqueue of every event of `events`, with one COPY for all of them (bulk
  // writes), sealed under one keyed context. Each event is completed in
  // place (event id, time, service), so a transaction tried again writes
  // the same ids. The same errors; an invalid event writes none of them.
  absl::Status EnqueueAll(pqxx::transaction_base& tx,
                          absl::Span<crm::audit::v1::Event* const> events) const;

  const std::string& service() const { return service_; }

 private:
  // The outbox key, keyed for sealing; INVALID_ARGUMENT if not 32 bytes.
  absl::StatusOr<crypto::SealingKey> Key() const;
  // The sealed payload of `event`, prepared at `now` (Enqueue's checks).
  absl::StatusOr<std::string> Seal(absl::Time now, crm::audit::v1::Event& event,
                                   crypto::SealingKey& key) const;

  const std::string service_;
  const crypto::SecretBytes key_;
  base::Clock& clock_;
};

namespace internal {

// Fills (time from `now`) and validates `event` as Enqueue does, without
// writing it. Same INVALID_ARGUMENT errors as Enqueue.
absl::Status PrepareEvent(absl::string_view service, absl::Time now, crm::audit::v1::Event& event);

}  // namespace internal
}  // namespace crm::outbox
