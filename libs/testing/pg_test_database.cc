#include "libs/testing/pg_test_database.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <pqxx/nontransaction>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/clock.h"
#include "libs/base/status_macros.h"
#include "libs/pg/migrate.h"

namespace crm::testing {
namespace {

constexpr const char* kTerminateSql = "SELECT pg_terminate_backend($1, 5000)";
constexpr const char* kTerminateAllSql =
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
    "WHERE datname = $1 AND pid <> pg_backend_pid()";

std::atomic<int> next_database{0};

std::string SanitizePrefix(absl::string_view prefix) {
  std::string out;
  for (char c : prefix) {
    c = absl::ascii_tolower(static_cast<unsigned char>(c));
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_') out.push_back(c);
    if (out.size() == 20) break;
  }
  return out.empty() ? "t" : out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgTestDatabase>> PgTestDatabase::Create(absl::string_view prefix) {
  CRM_ASSIGN_OR_RETURN(TestEnv env, TestEnv::Load());
  absl::BitGen bitgen;
  std::string name =
      absl::StrCat("t_", SanitizePrefix(prefix), "_", ::getpid(), "_", next_database.fetch_add(1),
                   "_", absl::Uniform<uint32_t>(bitgen, 0, 1'000'000));
  CRM_ASSIGN_OR_RETURN(
      std::unique_ptr<pg::Pool> admin,
      pg::Pool::Create({.conninfo = env.pg().ConnString("postgres"), .max_size = 1},
                       base::RealClock::Get()));
  CRM_RETURN_IF_ERROR(admin->WithConnection([&](pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    // Identifiers cannot be bound; the name is ours, quoted anyway.
    tx.exec(absl::StrCat("CREATE DATABASE ", conn.quote_name(name)));
    return absl::OkStatus();
  }));
  return std::unique_ptr<PgTestDatabase>(
      new PgTestDatabase(std::move(env), std::move(name), std::move(admin)));
}

PgTestDatabase::~PgTestDatabase() {
  (void)admin_->WithConnection([&](pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    tx.exec(absl::StrCat("DROP DATABASE IF EXISTS ", conn.quote_name(name_), " WITH (FORCE)"));
    return absl::OkStatus();
  });
}

absl::Status PgTestDatabase::TerminateBackend(int pid) {
  bool terminated = false;
  CRM_RETURN_IF_ERROR(admin_->WithConnection([&](pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    terminated = tx.exec_params1(kTerminateSql, pid)[0].as<bool>();
    return absl::OkStatus();
  }));
  if (!terminated) return absl::NotFoundError(absl::StrCat("no backend with pid ", pid));
  return absl::OkStatus();
}

absl::StatusOr<int> PgTestDatabase::TerminateAllBackends() {
  int count = 0;
  CRM_RETURN_IF_ERROR(admin_->WithConnection([&](pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    count = tx.exec_params1(kTerminateAllSql, name_)[0].as<int>();
    return absl::OkStatus();
  }));
  return count;
}

absl::StatusOr<MigratedDatabase> CreateMigratedDatabase(absl::string_view service,
                                                        absl::string_view prefix, int pool_size) {
  const char* src = std::getenv("CRMTEST_SOURCE_DIR");
  if (src == nullptr) {
    return absl::FailedPreconditionError("CRMTEST_SOURCE_DIR is unset: run the test through ctest");
  }
  MigratedDatabase out;
  CRM_ASSIGN_OR_RETURN(out.db, PgTestDatabase::Create(prefix));
  CRM_ASSIGN_OR_RETURN(out.pool,
                       pg::Pool::Create({.conninfo = out.db->conninfo(), .max_size = pool_size},
                                        base::RealClock::Get()));
  CRM_ASSIGN_OR_RETURN(
      pg::MigrationReport report,
      pg::Migrate(*out.pool, absl::StrCat(src, "/services/", service, "/migrations")));
  if (report.version_after < 1) {
    return absl::FailedPreconditionError(absl::StrCat(service, ": no migration applied"));
  }
  return out;
}

}  // namespace crm::testing
