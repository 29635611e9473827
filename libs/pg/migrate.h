// Versioned schema migrations. Each service keeps `migrations/NNNN_name.sql`
// (NNNN from 0001 up, no gaps, name in [a-z0-9_]) and calls Migrate at
// start-up, before serving:
//
//   CRM_ASSIGN_OR_RETURN(pg::MigrationReport report, pg::Migrate(*pool, cfg.migrations_dir));
//
// Each pending file runs in its own transaction together with the insert of
// its row (version, name, SHA-256 of the file, applied_at) into
// `schema_migrations`, so a file is either applied and recorded or neither.
// A whole run holds a session advisory lock, so replicas starting at the same
// time apply each migration once; the others wait, then find nothing to do.
// Files cannot use statements that refuse to run in a transaction (CREATE
// INDEX CONCURRENTLY, ALTER TYPE ... ADD VALUE before PostgreSQL 12).
//
// Thread-safe (the lock serializes concurrent runs, even across processes).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/pg/pool.h"

namespace crm::pg {

struct MigrationFile {
  int version = 0;
  std::string name;      // the file name, e.g. "0001_create_persons.sql"
  std::string sql;       // the file's content
  std::string checksum;  // lower-case hex SHA-256 of `sql`
};

struct MigrationReport {
  int version_before = 0;            // highest version applied before this run
  int version_after = 0;             // highest version applied after it
  std::vector<std::string> applied;  // file names applied by this run, in order
};

// Reads the *.sql files of `dir` (other files are ignored) in version order.
// NOT_FOUND if `dir` cannot be read; FAILED_PRECONDITION naming the file for
// a name not of the form NNNN_name.sql, a duplicate version, or a gap (the
// versions must be exactly 1..N).
absl::StatusOr<std::vector<MigrationFile>> LoadMigrations(absl::string_view dir);

// Applies the pending migrations of `dir` to the pool's database. On success
// reports what it did. Errors: those of LoadMigrations; FAILED_PRECONDITION
// naming the file if an applied migration's file has changed (checksum) or
// been renamed, or if the database has versions that `dir` lacks (an older
// binary against a newer schema); a failing migration's status (database
// error codes as in libs/pg/error.h) prefixed with its file name, after which
// earlier migrations of this run stay applied; UNAVAILABLE if the database
// cannot be reached.
absl::StatusOr<MigrationReport> Migrate(Pool& pool, absl::string_view dir);

// Lower-case hex SHA-256 (OpenSSL EVP).
std::string Sha256Hex(absl::string_view data);

}  // namespace crm::pg
