// The shared throwaway PostgreSQL and Redis of a test run, as started by
// tools/testenv (CTest fixtures crm_pg / crm_redis). A test declared with
// `crm_cc_test(... FIXTURES pg redis)` gets CRMTEST_ENV_DIR, and TestEnv::Load
// reads $CRMTEST_ENV_DIR/env:
//
//   CRM_ASSERT_OK_AND_ASSIGN(crm::testing::TestEnv env, crm::testing::TestEnv::Load());
//   auto redis = crm::redis::Client::Create({.host = env.redis().host, ...});
//
// For PostgreSQL, use PgTestDatabase (pg_test_database.h, target
// crm_testing_pg), which gives each suite its own database.
//
// Thread-safe once loaded (immutable).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::testing {

// The superuser of the shared PostgreSQL cluster (127.0.0.1 only).
struct PgServerInfo {
  std::string host;
  int port = 0;
  std::string user;
  std::string password;
  // A libpq "key=value" connection string for database `dbname`.
  std::string ConnString(absl::string_view dbname) const;
};

// The shared Redis, or a PrivateRedisServer (private_redis.h).
struct RedisTestServer {
  std::string host;
  int port = 0;
  std::string password;
};

class TestEnv {
 public:
  // Reads $CRMTEST_ENV_DIR/env. FAILED_PRECONDITION, saying how to fix it,
  // if the variable is unset (the test was not run by ctest, or lacks
  // FIXTURES), the file is missing (the fixture did not start) or a key is
  // missing or malformed.
  static absl::StatusOr<TestEnv> Load();
  // Parses the content of an env file (KEY=VALUE lines; blank lines and
  // '#' comments ignored). Errors as for Load.
  static absl::StatusOr<TestEnv> Parse(absl::string_view content);

  const PgServerInfo& pg() const { return pg_; }
  const RedisTestServer& redis() const { return redis_; }
  // Any key of the file, or "" if absent.
  std::string Get(absl::string_view key) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
  PgServerInfo pg_;
  RedisTestServer redis_;
};

// Quotes a value for a libpq "key=value" connection string.
std::string QuoteConnValue(absl::string_view value);

}  // namespace crm::testing
