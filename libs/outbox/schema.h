// The outbox's tables, created by the library itself so that no service copies
// its DDL into its own migrations. A service calls EnsureSchema once at
// start-up, right after pg::Migrate and before it serves or starts the relay:
//
//   CRM_ASSIGN_OR_RETURN(pg::MigrationReport report, pg::Migrate(*pool, cfg.migrations_dir));
//   CRM_RETURN_IF_ERROR(outbox::EnsureSchema(*pool));
//   CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, outbox::LoadOrCreateKey(*pool, kek_ring));
//
// Tables (all in the connection's default schema):
//   audit_outbox       events waiting to be shipped, payload sealed (AES-256-GCM)
//   audit_outbox_dead  rows that could not be opened, moved aside (still sealed)
//   audit_outbox_key   the outbox data key, wrapped by the service's KEK ring
//
// The DDL is idempotent (IF NOT EXISTS) and runs under a transaction-scoped
// advisory lock, so replicas starting together are safe. Changing the schema
// later means appending further idempotent statements (ADD COLUMN IF NOT
// EXISTS ...) to the list in schema.cc, never editing applied ones.
//
// Thread-safe.
#pragma once

#include <pqxx/transaction>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/secret_bytes.h"
#include "libs/pg/pool.h"

namespace crm::outbox {

inline constexpr char kOutboxTable[] = "audit_outbox";
inline constexpr char kDeadTable[] = "audit_outbox_dead";

// The whole DDL as one SQL text, for review and for tools that want to print
// it. EnsureSchema runs exactly these statements.
std::string SchemaSql();

// Creates the outbox tables and indexes if missing, inside `tx` (the caller
// commits). Database errors surface as pqxx exceptions, which Pool::Transact
// turns into a status; use this overload only inside a Transact callback, e.g.
// to create the tables in the same transaction as a service's own schema.
void EnsureSchema(pqxx::work& tx);

// EnsureSchema in a transaction of its own. OK if the tables exist afterwards;
// the database errors of Pool::Transact otherwise (e.g. UNAVAILABLE).
absl::Status EnsureSchema(pg::Pool& pool);

// The outbox data key (32 bytes) every replica of the service shares: made
// with the CSPRNG on first call and stored wrapped by `ring`'s newest KEK in
// audit_outbox_key (AAD "crm.outbox.key.v1"); later calls and other replicas
// unwrap the stored one. Needs EnsureSchema first.
// Errors: KeyRing::Unwrap's FAILED_PRECONDITION (the KEK version that wrapped
// the key is not in `ring`) or DATA_LOSS (the stored key was tampered with or
// the ring holds different keys); INTERNAL if the stored key is not 32 bytes;
// database errors of Pool::Transact (e.g. INTERNAL "relation does not exist"
// without EnsureSchema).
absl::StatusOr<crypto::SecretBytes> LoadOrCreateKey(pg::Pool& pool, const crypto::KeyRing& ring);

// Re-wraps the stored outbox key under `ring`'s newest KEK, after a KEK
// rotation. OK if it was re-wrapped or already current; errors as
// LoadOrCreateKey, and NOT_FOUND if no key is stored yet.
absl::Status RewrapKey(pg::Pool& pool, const crypto::KeyRing& ring);

}  // namespace crm::outbox
