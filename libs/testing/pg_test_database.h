// A fresh PostgreSQL database per test suite on the shared test cluster
// (tools/testenv), dropped when the object is destroyed:
//
//   class PersonStoreTest : public ::testing::Test {
//     static void SetUpTestSuite() {
//       auto db = crm::testing::PgTestDatabase::Create("contacts");
//       ASSERT_TRUE(db.ok()) << db.status();
//       db_ = std::move(*db).release();
//     }
//     static void TearDownTestSuite() { delete db_; }
//     static crm::testing::PgTestDatabase* db_;
//   };
//   ... crm::pg::Pool::Create({.conninfo = db_->conninfo()}, clock) ...
//
// Needs `crm_cc_test(... DEPS crm_testing_pg FIXTURES pg)`. Also kills
// backends, for tests of broken connections.
//
// Thread-safe: the admin connection is a crm::pg::Pool.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/pg/pool.h"
#include "libs/testing/test_env.h"

namespace crm::testing {

class PgTestDatabase {
 public:
  // Loads the TestEnv and creates database "t_<prefix>_<pid>_<n>_<random>"
  // (prefix reduced to [a-z0-9_], 20 characters at most), owned by the test
  // superuser. Errors: TestEnv::Load's FAILED_PRECONDITION; the database
  // errors of crm::pg (e.g. UNAVAILABLE if the cluster is down).
  static absl::StatusOr<std::unique_ptr<PgTestDatabase>> Create(absl::string_view prefix = "t");

  // Drops the database, terminating its remaining connections first.
  ~PgTestDatabase();
  PgTestDatabase(const PgTestDatabase&) = delete;
  PgTestDatabase& operator=(const PgTestDatabase&) = delete;

  const std::string& name() const { return name_; }
  // libpq connection string for the database (superuser).
  std::string conninfo() const { return env_.pg().ConnString(name_); }
  const TestEnv& env() const { return env_; }

  // pg_terminate_backend(pid), waiting (5 s at most) until the backend has
  // exited. NOT_FOUND if no such backend was there to terminate.
  absl::Status TerminateBackend(int pid);
  // Terminates every connection to this database but the admin one, waiting
  // for each. Returns how many were terminated.
  absl::StatusOr<int> TerminateAllBackends();

 private:
  PgTestDatabase(TestEnv env, std::string name, std::unique_ptr<pg::Pool> admin)
      : env_(std::move(env)), name_(std::move(name)), admin_(std::move(admin)) {}

  TestEnv env_;
  std::string name_;
  std::unique_ptr<pg::Pool> admin_;  // connected to database "postgres"
};

// A fresh database migrated with services/<service>/migrations of this source
// tree (found through CRMTEST_SOURCE_DIR, set by ctest) and a pool on it: what
// every store test on PostgreSQL starts from. The pool is destroyed before
// the database is dropped.
struct MigratedDatabase {
  std::unique_ptr<PgTestDatabase> db;
  std::unique_ptr<pg::Pool> pool;
};

// Errors: those of PgTestDatabase::Create, pg::Pool::Create and pg::Migrate;
// FAILED_PRECONDITION if CRMTEST_SOURCE_DIR is unset or no migration applied.
absl::StatusOr<MigratedDatabase> CreateMigratedDatabase(absl::string_view service,
                                                        absl::string_view prefix,
                                                        int pool_size = 4);

}  // namespace crm::testing
