#include "libs/testing/test_env.h"

#include <stdlib.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kEnv =
    "# written by tools/testenv\n"
    "PGHOST=127.0.0.1\nPGPORT=5433\nPGUSER=crm_test\nPGPASSWORD=pw\n"
    "REDIS_HOST=127.0.0.1\nREDIS_PORT=6380\nREDIS_PASSWORD=rpw\n";

TEST(TestEnvTest, ParsesTheEnvFile) {
  CRM_ASSERT_OK_AND_ASSIGN(TestEnv env, TestEnv::Parse(kEnv));
  EXPECT_EQ(env.pg().port, 5433);
  EXPECT_EQ(env.pg().user, "crm_test");
  EXPECT_EQ(env.redis().port, 6380);
  EXPECT_EQ(env.redis().password, "rpw");
  EXPECT_EQ(env.Get("PGHOST"), "127.0.0.1");
  EXPECT_EQ(env.Get("NOPE"), "");
}

TEST(TestEnvTest, MissingKeyIsNamed) {
  EXPECT_THAT(TestEnv::Parse("PGHOST=h\n"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("PGPORT")));
}

TEST(TestEnvTest, BadPortIsRefused) {
  std::string env = kEnv;
  env.replace(env.find("5433"), 4, "x433");
  EXPECT_THAT(TestEnv::Parse(env),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("PGPORT")));
}

TEST(TestEnvTest, LoadWithoutTheVariableSaysHowToRunTheTest) {
  ::unsetenv("CRMTEST_ENV_DIR");
  EXPECT_THAT(TestEnv::Load(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("FIXTURES")));
}

TEST(PgServerInfoTest, ConnStringQuotesValues) {
  PgServerInfo info{.host = "127.0.0.1", .port = 5433, .user = "u", .password = "p'w\\"};
  EXPECT_EQ(info.ConnString("db"),
            "host='127.0.0.1' port=5433 user='u' password='p\\'w\\\\' dbname='db'");
}

}  // namespace
}  // namespace crm::testing
