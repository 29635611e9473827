#include "libs/outbox/schema.h"

#include <pqxx/binarystring>
#include <pqxx/result>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/primitives.h"

namespace crm::outbox {
namespace {

// Transaction advisory lock key for the DDL ("crm_obox" in ASCII).
constexpr int64_t kSchemaLockKey = 0x63726d5f6f626f78;
constexpr const char* kLockSql = "SELECT pg_advisory_xact_lock($1)";

// Append only; each statement must be idempotent.
constexpr const char* kSchemaStatements[] = {
    R"sql(CREATE TABLE IF NOT EXISTS audit_outbox (
  seq        bigserial PRIMARY KEY,
  event_id   uuid NOT NULL UNIQUE,
  payload    bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS audit_outbox_dead (
  seq        bigint PRIMARY KEY,
  event_id   uuid NOT NULL,
  payload    bytea NOT NULL,
  created_at timestamptz NOT NULL,
  dead_at    timestamptz NOT NULL DEFAULT now(),
  reason     text NOT NULL
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS audit_outbox_key (
  id         integer PRIMARY KEY CHECK (id = 1),
  wrapped    bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
))sql",
};

constexpr char kKeyAad[] = "crm.outbox.key.v1";
constexpr const char* kInsertKeySql =
    "INSERT INTO audit_outbox_key (id, wrapped) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";
constexpr const char* kSelectKeySql = "SELECT wrapped FROM audit_outbox_key WHERE id = 1";
constexpr const char* kSelectKeyForUpdateSql =
    "SELECT wrapped FROM audit_outbox_key WHERE id = 1 FOR UPDATE";
constexpr const char* kUpdateKeySql = "UPDATE audit_outbox_key SET wrapped = $1 WHERE id = 1";

}  // namespace

std::string SchemaSql() { return absl::StrCat(absl::StrJoin(kSchemaStatements, ";\n\n"), ";\n"); }

void EnsureSchema(pqxx::work& tx) {
  tx.exec_params(kLockSql, kSchemaLockKey);
  for (const char* statement : kSchemaStatements) tx.exec(statement);
}

absl::Status EnsureSchema(pg::Pool& pool) {
  return pool.Transact([](pqxx::work& tx) {
    EnsureSchema(tx);
    return absl::OkStatus();
  });
}

absl::StatusOr<crypto::SecretBytes> LoadOrCreateKey(pg::Pool& pool, const crypto::KeyRing& ring) {
  return pool.TransactValue<crypto::SecretBytes>(
      [&](pqxx::work& tx) -> absl::StatusOr<crypto::SecretBytes> {
        pqxx::result rows = tx.exec(kSelectKeySql);
        if (rows.empty()) {
          const crypto::SecretBytes fresh = crypto::RandomSecret(crypto::kAes256KeySize);
          CRM_ASSIGN_OR_RETURN(std::string wrapped, ring.Wrap(fresh.view(), kKeyAad));
          // A replica racing us may insert first: then its key is the one.
          tx.exec_params(kInsertKeySql, pqxx::binarystring(wrapped));
          rows = tx.exec(kSelectKeySql);
        }
        if (rows.empty()) return absl::InternalError("outbox key: not stored");
        const pqxx::binarystring wrapped(rows[0][0]);
        CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, ring.UnwrapSecret(wrapped.str(), kKeyAad));
        if (key.size() != crypto::kAes256KeySize) {
          return absl::InternalError("outbox key: stored key is not 32 bytes");
        }
        return key;
      });
}

absl::Status RewrapKey(pg::Pool& pool, const crypto::KeyRing& ring) {
  return pool.Transact([&](pqxx::work& tx) -> absl::Status {
    const pqxx::result rows = tx.exec(kSelectKeyForUpdateSql);
    if (rows.empty()) return absl::NotFoundError("outbox key: not stored");
    const std::string wrapped = pqxx::binarystring(rows[0][0]).str();
    CRM_ASSIGN_OR_RETURN(std::string rewrapped, ring.Rewrap(wrapped, kKeyAad));
    if (rewrapped != wrapped) tx.exec_params(kUpdateKeySql, pqxx::binarystring(rewrapped));
    return absl::OkStatus();
  });
}

}  // namespace crm::outbox
