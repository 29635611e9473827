#include "libs/pg/pool.h"

#include <atomic>
#include <pqxx/nontransaction>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/loopback.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/private_redis.h"
#include "libs/testing/status_matchers.h"

namespace crm::pg {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::PgTestDatabase;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kBackendPidSql = "SELECT pg_backend_pid()";

// Waits (bounded) until `done` holds; for states reached by other threads.
template <typename F>
bool PollUntil(F done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

// Makes two threads meet: each Arrive() blocks until `n` have arrived.
class Barrier {
 public:
  explicit Barrier(int n) : left_(n) {}
  void Arrive() {
    absl::MutexLock lock(&mu_);
    --left_;
    auto all_here = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return left_ <= 0; };
    mu_.Await(absl::Condition(&all_here));
  }

 private:
  absl::Mutex mu_;
  int left_ ABSL_GUARDED_BY(mu_);
};

class PoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto db = PgTestDatabase::Create("pool");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = db->release();
  }
  static void TearDownTestSuite() {
    delete db_;
    db_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(db_, nullptr) << "test database not created"; }

  std::unique_ptr<Pool> MakePool(int max_size, absl::Duration acquire_timeout = absl::Seconds(10)) {
    auto pool = Pool::Create(
        {.conninfo = db_->conninfo(), .max_size = max_size, .acquire_timeout = acquire_timeout},
        base::RealClock::Get());
    EXPECT_THAT(pool, IsOk());
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  static absl::StatusOr<int> BackendPid(Pool& pool) {
    return pool.TransactValue<int>([](pqxx::work& tx) -> absl::StatusOr<int> {
      return tx.exec1(kBackendPidSql)[0].as<int>();
    });
  }

  static absl::Status Exec(Pool& pool, const std::string& sql) {
    return pool.Transact([&](pqxx::work& tx) {
      tx.exec(sql);
      return absl::OkStatus();
    });
  }

  static absl::StatusOr<int64_t> Count(Pool& pool, const std::string& table) {
    return pool.TransactValue<int64_t>([&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
      return tx.exec1("SELECT count(*) FROM " + table)[0].as<int64_t>();
    });
  }

  static PgTestDatabase* db_;
};

PgTestDatabase* PoolTest::db_ = nullptr;

TEST_F(PoolTest, CreateFailsWhenServerUnreachable) {
  CRM_ASSERT_OK_AND_ASSIGN(int port, crm::testing::PickFreePort());
  auto pool = Pool::Create(
      {.conninfo = "host=127.0.0.1 port=" + std::to_string(port) + " user=x password=y dbname=z"},
      base::RealClock::Get());
  EXPECT_THAT(pool, StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(PoolTest, CreateFailsClearlyOnWrongPassword) {
  crm::testing::PgServerInfo info = db_->env().pg();
  info.password = "wrong";
  auto pool = Pool::Create({.conninfo = info.ConnString(db_->name())}, base::RealClock::Get());
  EXPECT_THAT(pool, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("password authentication failed")));
}

TEST_F(PoolTest, CreateRejectsBadOptions) {
  EXPECT_THAT(Pool::Create({.conninfo = ""}, base::RealClock::Get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Pool::Create({.conninfo = db_->conninfo(), .max_size = 0}, base::RealClock::Get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PoolTest, ReleasedConnectionIsReused) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  CRM_ASSERT_OK_AND_ASSIGN(int first, BackendPid(*pool));
  EXPECT_THAT(BackendPid(*pool), IsOkAndHolds(first));
  EXPECT_EQ(pool->Stats().connects, 1u);
  EXPECT_EQ(pool->Stats().in_use, 0);
  EXPECT_EQ(pool->Stats().idle, 1);
}

TEST_F(PoolTest, AcquireTimesOutWhenAllConnectionsAreLeased) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  CRM_ASSERT_OK_AND_ASSIGN(Lease held, pool->Acquire());
  EXPECT_EQ(pool->Stats().in_use, 1);
  EXPECT_THAT(pool->Acquire(absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no connection free")));
  EXPECT_EQ(pool->Stats().timed_out, 1u);
}

TEST_F(PoolTest, WaitingAcquireGetsTheReleasedConnection) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  std::optional<Lease> held;
  {
    CRM_ASSERT_OK_AND_ASSIGN(Lease lease, pool->Acquire());
    held.emplace(std::move(lease));
  }
  absl::Status waiter_status = absl::UnknownError("not run");
  std::thread waiter([&] { waiter_status = pool->Acquire(absl::Seconds(60)).status(); });
  ASSERT_TRUE(PollUntil([&] { return pool->Stats().waiting == 1; }));
  held.reset();
  waiter.join();
  EXPECT_THAT(waiter_status, IsOk());
  EXPECT_EQ(pool->Stats().waited, 1u);
  EXPECT_EQ(pool->Stats().connects, 1u);
}

TEST_F(PoolTest, TransactCommits) {
  auto pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE commit_t (id int PRIMARY KEY)"), IsOk());
  EXPECT_THAT(pool->Transact([](pqxx::work& tx) {
    tx.exec_params("INSERT INTO commit_t (id) VALUES ($1)", 1);
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_THAT(Count(*pool, "commit_t"), IsOkAndHolds(1));
  EXPECT_GE(pool->Stats().tx_committed, 2u);
}

TEST_F(PoolTest, TransactRollsBackWhenCallbackFails) {
  auto pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE rollback_t (id int PRIMARY KEY)"), IsOk());
  EXPECT_THAT(pool->Transact([](pqxx::work& tx) {
    tx.exec_params("INSERT INTO rollback_t (id) VALUES ($1)", 1);
    return absl::FailedPreconditionError("no consent");
  }),
              StatusIs(absl::StatusCode::kFailedPrecondition, "no consent"));
  EXPECT_THAT(Count(*pool, "rollback_t"), IsOkAndHolds(0));
  EXPECT_EQ(pool->Stats().tx_rolled_back, 1u);
}

TEST_F(PoolTest, UniqueViolationIsAlreadyExistsWithoutTheValue) {
  auto pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE unique_t (email text CONSTRAINT unique_t_email UNIQUE)"),
              IsOk());
  auto insert = [](pqxx::work& tx) {
    tx.exec_params("INSERT INTO unique_t (email) VALUES ($1)", "erin@example.com");
    return absl::OkStatus();
  };
  ASSERT_THAT(pool->Transact(insert), IsOk());
  EXPECT_THAT(pool->Transact(insert),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("unique_t_email"), Not(HasSubstr("erin")))));
}

TEST_F(PoolTest, CheckAndNotNullViolationsAreInvalidArgument) {
  auto pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(
      Exec(*pool, "CREATE TABLE check_t (n int NOT NULL CONSTRAINT check_t_pos CHECK (n > 0))"),
      IsOk());
  EXPECT_THAT(pool->Transact([](pqxx::work& tx) {
    tx.exec_params("INSERT INTO check_t (n) VALUES ($1)", -5);
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("check_t_pos")));
  EXPECT_THAT(pool->Transact([](pqxx::work& tx) {
    tx.exec("INSERT INTO check_t (n) VALUES (NULL)");
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("column n")));
}

TEST_F(PoolTest, ConversionErrorInCallbackIsInternalWithoutTheValue) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(pool->Transact([](pqxx::work& tx) {
    tx.exec1("SELECT 'frank-secret'::text")[0].as<int>();
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInternal, Not(HasSubstr("frank"))));
}

TEST_F(PoolTest, ReadOnlyTransactionRefusesWrites) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE readonly_t (id int)"), IsOk());
  EXPECT_THAT(pool->Transact(
                  [](pqxx::work& tx) {
                    tx.exec("INSERT INTO readonly_t VALUES (1)");
                    return absl::OkStatus();
                  },
                  {.read_only = true}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("25006")));
}

// Two SERIALIZABLE transactions read the same row, then both update it: one
// must fail with 40001. Both callbacks meet at a barrier on their first
// attempt, so the conflict happens every run.
class SerializationConflict {
 public:
  explicit SerializationConflict(Pool& pool) : pool_(pool) {}

  absl::Status Run(int max_attempts, std::atomic<int>* attempts) {
    bool first = true;
    return pool_.Transact(
        [&](pqxx::work& tx) {
          attempts->fetch_add(1);
          tx.exec("SELECT n FROM serial_t WHERE id = 1");
          if (first) {
            first = false;
            barrier_.Arrive();
          }
          tx.exec("UPDATE serial_t SET n = n + 1 WHERE id = 1");
          return absl::OkStatus();
        },
        {.isolation = Isolation::kSerializable, .max_attempts = max_attempts});
  }

 private:
  Pool& pool_;
  Barrier barrier_{2};
};

TEST_F(PoolTest, SerializationFailureIsRetried) {
  auto pool = MakePool(4);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool,
                   "CREATE TABLE serial_t (id int PRIMARY KEY, n int NOT NULL);"
                   "INSERT INTO serial_t VALUES (1, 0)"),
              IsOk());
  SerializationConflict conflict(*pool);
  std::atomic<int> attempts{0};
  absl::Status a, b;
  std::thread ta([&] { a = conflict.Run(5, &attempts); });
  std::thread tb([&] { b = conflict.Run(5, &attempts); });
  ta.join();
  tb.join();
  EXPECT_THAT(a, IsOk());
  EXPECT_THAT(b, IsOk());
  EXPECT_GE(attempts.load(), 3);
  EXPECT_GE(pool->Stats().tx_retried, 1u);
  auto n = pool->TransactValue<int>([](pqxx::work& tx) -> absl::StatusOr<int> {
    return tx.exec1("SELECT n FROM serial_t WHERE id = 1")[0].as<int>();
  });
  EXPECT_THAT(n, IsOkAndHolds(2));
}

TEST_F(PoolTest, SerializationFailureIsAbortedWhenAttemptsRunOut) {
  auto pool = MakePool(4);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool,
                   "DROP TABLE IF EXISTS serial_t;"
                   "CREATE TABLE serial_t (id int PRIMARY KEY, n int NOT NULL);"
                   "INSERT INTO serial_t VALUES (1, 0)"),
              IsOk());
  SerializationConflict conflict(*pool);
  std::atomic<int> attempts{0};
  absl::Status a, b;
  std::thread ta([&] { a = conflict.Run(1, &attempts); });
  std::thread tb([&] { b = conflict.Run(1, &attempts); });
  ta.join();
  tb.join();
  EXPECT_EQ(attempts.load(), 2);
  EXPECT_EQ(a.ok() + b.ok(), 1) << a << " / " << b;
  EXPECT_THAT(a.ok() ? b : a, StatusIs(absl::StatusCode::kAborted, HasSubstr("40001")));
}

TEST_F(PoolTest, KilledConnectionIsReplacedForTheNextCaller) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  CRM_ASSERT_OK_AND_ASSIGN(int before, BackendPid(*pool));
  ASSERT_THAT(db_->TerminateBackend(before), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(int after, BackendPid(*pool));
  EXPECT_NE(after, before);
  EXPECT_GE(pool->Stats().discarded, 1u);
  EXPECT_EQ(pool->Stats().open, 1);
}

TEST_F(PoolTest, ConnectionKilledInsideTransactionIsRetriedOnANewOne) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE killed_t (id int)"), IsOk());
  int attempts = 0;
  absl::Status s = pool->Transact([&](pqxx::work& tx) -> absl::Status {
    ++attempts;
    tx.exec_params("INSERT INTO killed_t (id) VALUES ($1)", attempts);
    if (attempts == 1) {
      const int pid = tx.exec1(kBackendPidSql)[0].as<int>();
      if (absl::Status t = db_->TerminateBackend(pid); !t.ok()) return t;
      tx.exec("SELECT 1");  // fails: the backend is gone
    }
    return absl::OkStatus();
  });
  EXPECT_THAT(s, IsOk());
  EXPECT_EQ(attempts, 2);
  auto ids = pool->TransactValue<int>([](pqxx::work& tx) -> absl::StatusOr<int> {
    return tx.exec1("SELECT sum(id) FROM killed_t")[0].as<int>();
  });
  EXPECT_THAT(ids, IsOkAndHolds(2));  // only the second attempt's row
}

TEST_F(PoolTest, WithConnectionMapsErrors) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(pool->WithConnection([](pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    tx.exec("SELECT * FROM no_such_table");
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no_such_table")));
}

// ---- RunPipeline ----

TEST_F(PoolTest, PipelineCommitsAllStatementsAndReturnsRows) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE pipe_t (id int PRIMARY KEY, note text, blob bytea)"),
              IsOk());
  const std::string bytes("a\0b\xff\n", 5);  // binary, with a NUL
  Pipeline p;
  p.Add("INSERT INTO pipe_t (id, note, blob) VALUES ($1, $2, $3)", 1, "one",
        pqxx::binarystring(bytes.data(), bytes.size()));
  p.Add("INSERT INTO pipe_t (id, note, blob) VALUES ($1, $2, $3)", int64_t{2}, std::nullopt,
        std::nullopt);
  const size_t read =
      p.Add("SELECT id, note, encode(blob, 'hex'), $1::bool FROM pipe_t ORDER BY id", true);
  ASSERT_THAT(pool->RunPipeline(p), IsOk());
  ASSERT_TRUE(p.Ran(read));
  using Row = Pipeline::Row;
  EXPECT_THAT(p.Rows(read), ::testing::ElementsAre(Row{"1", "one", "610062ff0a", "t"},
                                                   Row{"2", std::nullopt, std::nullopt, "t"}));
  EXPECT_THAT(Count(*pool, "pipe_t"), IsOkAndHolds(2));
}

TEST_F(PoolTest, PipelineFailureRollsBackAndSkipsTheRest) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE pipe_fail_t (email text CONSTRAINT pipe_fail_u UNIQUE)"),
              IsOk());
  ASSERT_THAT(Exec(*pool, "INSERT INTO pipe_fail_t VALUES ('taken@example.com')"), IsOk());
  Pipeline p;
  const size_t probe =
      p.Add("SELECT count(*) FROM pipe_fail_t WHERE email = $1", "taken@example.com");
  const size_t first = p.Add("INSERT INTO pipe_fail_t VALUES ($1)", "new@example.com");
  const size_t dup = p.Add("INSERT INTO pipe_fail_t VALUES ($1)", "taken@example.com");
  const size_t after = p.Add("INSERT INTO pipe_fail_t VALUES ($1)", "later@example.com");
  EXPECT_THAT(pool->RunPipeline(p),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       AllOf(HasSubstr("pipe_fail_u"), Not(HasSubstr("taken")))));
  EXPECT_TRUE(p.Ran(probe));
  EXPECT_THAT(p.Rows(probe), ::testing::ElementsAre(Pipeline::Row{"1"}));
  EXPECT_TRUE(p.Ran(first));
  EXPECT_FALSE(p.Ran(dup));
  EXPECT_FALSE(p.Ran(after));
  EXPECT_THAT(Count(*pool, "pipe_fail_t"), IsOkAndHolds(1));  // the first insert rolled back
  // The connection is back in a clean state for the next caller.
  Pipeline next;
  next.Add("INSERT INTO pipe_fail_t VALUES ($1)", "next@example.com");
  EXPECT_THAT(pool->RunPipeline(next), IsOk());
  EXPECT_THAT(Count(*pool, "pipe_fail_t"), IsOkAndHolds(2));
  EXPECT_EQ(pool->Stats().discarded, 0u);
}

TEST_F(PoolTest, PipelinePreparesEachStatementOncePerConnection) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  constexpr const char* kPrepared =
      "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'crmp\\_%'";
  for (int i = 0; i < 3; ++i) {
    Pipeline p;
    p.Add("SELECT $1::int + 1", i);
    p.Add("SELECT $1::int + 1", i + 10);  // the same text twice in one pipeline
    const size_t n = p.Add(kPrepared);
    ASSERT_THAT(pool->RunPipeline(p), IsOk());
    EXPECT_THAT(p.Rows(0), ::testing::ElementsAre(Pipeline::Row{absl::StrCat(i + 1)}));
    EXPECT_THAT(p.Rows(1), ::testing::ElementsAre(Pipeline::Row{absl::StrCat(i + 11)}));
    EXPECT_THAT(p.Rows(n), ::testing::ElementsAre(Pipeline::Row{"2"}));
  }
  // Deallocated behind the pool's back: prepared again, once.
  ASSERT_THAT(Exec(*pool, "DEALLOCATE ALL"), IsOk());
  Pipeline p;
  p.Add("SELECT $1::int + 1", 41);
  EXPECT_THAT(pool->RunPipeline(p), IsOk());
  EXPECT_THAT(p.Rows(0), ::testing::ElementsAre(Pipeline::Row{"42"}));
  EXPECT_EQ(pool->Stats().tx_retried, 1u);
}

TEST_F(PoolTest, PipelineErrorsNameNoValueAndBadSqlIsInternal) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE pipe_check_t (n int CHECK (n > 0))"), IsOk());
  Pipeline bad_value;
  bad_value.Add("INSERT INTO pipe_check_t VALUES ($1::int)", "secret-123");
  EXPECT_THAT(pool->RunPipeline(bad_value),
              StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr("secret"))));
  Pipeline bad_sql;
  bad_sql.Add("SELECT no_such_column FROM pipe_check_t");
  EXPECT_THAT(pool->RunPipeline(bad_sql),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no_such_column")));
  Pipeline ok;
  ok.Add("INSERT INTO pipe_check_t VALUES ($1)", 5);
  EXPECT_THAT(pool->RunPipeline(ok), IsOk());
  EXPECT_THAT(Count(*pool, "pipe_check_t"), IsOkAndHolds(1));
}

TEST_F(PoolTest, PipelineOnAKilledConnectionRunsOnANewOne) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Exec(*pool, "CREATE TABLE pipe_killed_t (id int)"), IsOk());
  Pipeline warm;
  warm.Add("INSERT INTO pipe_killed_t VALUES ($1)", 1);
  ASSERT_THAT(pool->RunPipeline(warm), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(int before, BackendPid(*pool));
  ASSERT_THAT(db_->TerminateBackend(before), IsOk());
  Pipeline p;
  p.Add("INSERT INTO pipe_killed_t VALUES ($1)", 2);
  const size_t pid = p.Add(kBackendPidSql);
  ASSERT_THAT(pool->RunPipeline(p), IsOk());
  ASSERT_EQ(p.Rows(pid).size(), 1u);
  EXPECT_NE(p.Rows(pid)[0][0], absl::StrCat(before));
  EXPECT_THAT(Count(*pool, "pipe_killed_t"), IsOkAndHolds(2));
}

TEST_F(PoolTest, PipelineBackendKilledMidwayIsUnknownOrUnavailableNeverOk) {
  auto pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  CRM_ASSERT_OK_AND_ASSIGN(int pid, BackendPid(*pool));
  // The pipeline's own backend terminates itself between BEGIN and COMMIT.
  Pipeline p;
  p.Add("SELECT pg_terminate_backend(pg_backend_pid())");
  p.Add("SELECT 1");
  absl::Status s = pool->RunPipeline(p, {.max_attempts = 1});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.code(),
              ::testing::AnyOf(absl::StatusCode::kUnavailable, absl::StatusCode::kUnknown));
  EXPECT_GE(pool->Stats().discarded, 1u);
  CRM_ASSERT_OK_AND_ASSIGN(int after, BackendPid(*pool));
  EXPECT_NE(after, pid);
}

TEST(WithConnectTimeoutTest, AddsTheParameterInBothForms) {
  EXPECT_EQ(WithConnectTimeout("host=x", absl::Milliseconds(2500)), "host=x connect_timeout=3");
  EXPECT_EQ(WithConnectTimeout("postgresql://h/db", absl::Seconds(5)),
            "postgresql://h/db?connect_timeout=5");
  EXPECT_EQ(WithConnectTimeout("postgresql://h/db?sslmode=disable", absl::Seconds(1)),
            "postgresql://h/db?sslmode=disable&connect_timeout=2");
  EXPECT_EQ(WithConnectTimeout("host=x connect_timeout=9", absl::Seconds(1)),
            "host=x connect_timeout=9");
}

}  // namespace
}  // namespace crm::pg
