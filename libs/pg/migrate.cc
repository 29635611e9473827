#include "libs/pg/migrate.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/base/status_macros.h"
#include "libs/log/log.h"
#include "libs/pg/error.h"

namespace crm::pg {
namespace {

// Session advisory lock key for migration runs ("crm_migr" in ASCII). Advisory
// locks are scoped to the current database, so services do not contend.
constexpr int64_t kMigrationLockKey = 0x63726d5f6d696772;

constexpr const char* kLockSql = "SELECT pg_advisory_lock($1)";
constexpr const char* kUnlockSql = "SELECT pg_advisory_unlock($1)";
constexpr const char* kCreateTableSql = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";
constexpr const char* kSelectAppliedSql =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";
constexpr const char* kInsertAppliedSql =
    "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
    "VALUES ($1, $2, $3, now())";

struct Applied {
  std::string name;
  std::string checksum;
};

// "0001_create_persons.sql" -> 1; false if the name has another form.
bool ParseName(absl::string_view name, int* version) {
  if (!absl::ConsumeSuffix(&name, ".sql")) return false;
  if (name.size() < 6 || name[4] != '_') return false;
  for (int i = 0; i < 4; ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(name[i]))) return false;
  }
  for (char c : name.substr(5)) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      return false;
    }
  }
  return absl::SimpleAtoi(name.substr(0, 4), version) && *version > 0;
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

absl::StatusOr<std::vector<MigrationFile>> LoadMigrations(absl::string_view dir) {
  namespace fs = std::filesystem;
  const fs::path root{std::string(dir)};
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat("migrations: cannot read directory ", dir));
  }
  std::vector<MigrationFile> files;
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!absl::EndsWith(name, ".sql") || absl::StartsWith(name, ".")) continue;
    MigrationFile file;
    if (!ParseName(name, &file.version)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migrations: file name ", name, " is not of the form NNNN_name.sql ([a-z0-9_] name)"));
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    if (!in) return absl::NotFoundError(absl::StrCat("migrations: cannot read ", name));
    file.name = name;
    file.sql = content.str();
    file.checksum = Sha256Hex(file.sql);
    files.push_back(std::move(file));
  }
  std::sort(files.begin(), files.end(), [](const MigrationFile& a, const MigrationFile& b) {
    return a.version != b.version ? a.version < b.version : a.name < b.name;
  });
  for (size_t i = 0; i < files.size(); ++i) {
    if (i > 0 && files[i].version == files[i - 1].version) {
      return absl::FailedPreconditionError(absl::StrCat("migrations: ", files[i - 1].name, " and ",
                                                        files[i].name, " have the same version"));
    }
    if (files[i].version != static_cast<int>(i) + 1) {
      return absl::FailedPreconditionError(absl::StrCat("migrations: gap before ", files[i].name,
                                                        ": expected version ",
                                                        absl::Dec(i + 1, absl::kZeroPad4)));
    }
  }
  return files;
}

absl::StatusOr<MigrationReport> Migrate(Pool& pool, absl::string_view dir) {
  CRM_ASSIGN_OR_RETURN(std::vector<MigrationFile> files, LoadMigrations(dir));
  std::map<int, const MigrationFile*> by_version;
  for (const MigrationFile& f : files) by_version[f.version] = &f;

  MigrationReport report;
  absl::Status status = pool.WithConnection([&](pqxx::connection_base& conn) -> absl::Status {
    {
      pqxx::nontransaction ntx(conn);
      ntx.exec_params(kLockSql, kMigrationLockKey);
    }
    // Unlocks on every way out; if the connection broke the lock is gone anyway.
    struct Unlocker {
      pqxx::connection_base& conn;
      ~Unlocker() {
        try {
          if (!conn.is_open()) return;
          pqxx::nontransaction ntx(conn);
          ntx.exec_params(kUnlockSql, kMigrationLockKey);
        } catch (const std::exception&) {
          // The session ends with the connection, which the pool then drops.
        }
      }
    } unlocker{conn};

    {
      pqxx::work tx(conn);
      tx.exec(kCreateTableSql);
      tx.commit();
    }
    std::map<int, Applied> applied;
    {
      pqxx::work tx(conn);
      for (const pqxx::row& row : tx.exec(kSelectAppliedSql)) {
        applied[row[0].as<int>()] = Applied{row[1].as<std::string>(), row[2].as<std::string>()};
      }
      tx.commit();
    }
    report.version_before = applied.empty() ? 0 : applied.rbegin()->first;
    for (const auto& [version, row] : applied) {
      auto it = by_version.find(version);
      if (it == by_version.end()) {
        return absl::FailedPreconditionError(absl::StrCat("migrations: the database has migration ",
                                                          row.name, " (version ", version,
                                                          ") which ", dir, " lacks"));
      }
      if (it->second->name != row.name) {
        return absl::FailedPreconditionError(absl::StrCat("migrations: version ", version,
                                                          " was applied as ", row.name,
                                                          " but the file is ", it->second->name));
      }
      if (it->second->checksum != row.checksum) {
        return absl::FailedPreconditionError(absl::StrCat(
            "migrations: ", row.name, " was changed after it was applied (checksum mismatch)"));
      }
    }
    for (const MigrationFile& file : files) {
      if (applied.count(file.version) > 0) continue;
      try {
        pqxx::work tx(conn);
        tx.exec(file.sql);
        tx.exec_params(kInsertAppliedSql, file.version, file.name, file.checksum);
        tx.commit();
      } catch (const std::exception& e) {
        const absl::Status s = ExceptionToStatus("migration", e);
        if (!conn.is_open()) throw;  // let WithConnection drop the connection
        return absl::Status(s.code(), absl::StrCat(file.name, ": ", s.message()));
      }
      report.applied.push_back(file.name);
      log::Info("pg.migration_applied", {{"version", file.version}, {"file", log::Id(file.name)}});
    }
    report.version_after = files.empty() ? report.version_before : files.back().version;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return report;
}

}  // namespace crm::pg
