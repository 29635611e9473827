#include "libs/pg/error.h"

#include <pqxx/except>
#include <stdexcept>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::pg {
namespace {

using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(CodeForSqlStateTest, MapsByWhatTheCallerShouldDo) {
  EXPECT_EQ(CodeForSqlState("23505"), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeForSqlState("23502"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeForSqlState("23514"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeForSqlState("22P02"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeForSqlState("23503"), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForSqlState("40001"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeForSqlState("40P01"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeForSqlState("57014"), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(CodeForSqlState("08006"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("57P01"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("53100"), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeForSqlState("42601"), absl::StatusCode::kInternal);
  EXPECT_EQ(CodeForSqlState("XX000"), absl::StatusCode::kInternal);
}

TEST(IsRetryableSqlStateTest, OnlySerializationFailureAndDeadlock) {
  EXPECT_TRUE(IsRetryableSqlState("40001"));
  EXPECT_TRUE(IsRetryableSqlState("40P01"));
  EXPECT_FALSE(IsRetryableSqlState("23505"));
  EXPECT_FALSE(IsRetryableSqlState("40003"));
}

TEST(SqlErrorToStatusTest, UniqueViolationKeepsConstraintDropsDetail) {
  const absl::Status s = SqlErrorToStatus(
      "tx", "23505",
      "ERROR:  duplicate key value violates unique constraint \"persons_email_key\"\n"
      "DETAIL:  Key (email)=(alice@example.com) already exists.\n");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAlreadyExists,
                          AllOf(HasSubstr("persons_email_key"), HasSubstr("23505"),
                                Not(HasSubstr("alice")), Not(HasSubstr("DETAIL")))));
}

TEST(SqlErrorToStatusTest, NotNullKeepsColumnAndTable) {
  const absl::Status s = SqlErrorToStatus(
      "tx", "23502",
      "ERROR:  null value in column \"name\" of relation \"persons\" violates not-null "
      "constraint\nDETAIL:  Failing row contains (1, null, bob@example.com).\n");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("column name"), HasSubstr("table persons"),
                                Not(HasSubstr("bob")))));
}

TEST(SqlErrorToStatusTest, DataExceptionDropsPrimaryTextQuotingTheValue) {
  const absl::Status s =
      SqlErrorToStatus("tx", "22P02", "ERROR:  invalid input syntax for type integer: \"carol\"\n");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("22P02"), Not(HasSubstr("carol")))));
}

TEST(SqlErrorToStatusTest, SyntaxErrorKeepsPrimaryText) {
  const absl::Status s = SqlErrorToStatus(
      "tx", "42P01", "ERROR:  relation \"no_such_table\" does not exist\nLINE 1: ...\n");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal, HasSubstr("no_such_table")));
}

TEST(ExceptionToStatusTest, TransactionRollbacksGetTheirSqlStateBack) {
  const pqxx::serialization_failure serialization("ERROR:  could not serialize access\n");
  const pqxx::deadlock_detected deadlock("ERROR:  deadlock detected\n");
  EXPECT_EQ(SqlStateOf(serialization), "40001");
  EXPECT_EQ(SqlStateOf(deadlock), "40P01");
  EXPECT_THAT(ExceptionToStatus("tx", serialization),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("40001")));
  EXPECT_THAT(ExceptionToStatus("tx", deadlock),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("40P01")));
}

TEST(ExceptionToStatusTest, BrokenConnectionIsUnavailable) {
  EXPECT_THAT(ExceptionToStatus("tx", pqxx::broken_connection("server closed the connection")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("server closed")));
  EXPECT_THAT(ExceptionToStatus("tx", pqxx::in_doubt_error("lost during commit")),
              StatusIs(absl::StatusCode::kUnknown));
}

TEST(ExceptionToStatusTest, NonDatabaseExceptionTextIsWithheld) {
  const absl::Status s = ExceptionToStatus("tx", std::runtime_error("value dave@example.com"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal, Not(HasSubstr("dave"))));
}

}  // namespace
}  // namespace crm::pg
