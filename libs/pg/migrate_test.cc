#include "libs/pg/migrate.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"

namespace crm::pg {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::PgTestDatabase;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr const char* kInit =
    "CREATE TABLE persons (id int PRIMARY KEY, name text NOT NULL);\n"
    "INSERT INTO persons VALUES (1, 'seed');\n";
constexpr const char* kAddColumn = "ALTER TABLE persons ADD COLUMN email text;\n";

class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = PgTestDatabase::Create("migrate");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    std::string pattern = ::testing::TempDir() + "/migrations-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void Write(const std::string& name, const std::string& content) {
    std::ofstream out(dir_ + "/" + name, std::ios::binary | std::ios::trunc);
    out << content;
    ASSERT_TRUE(out.good());
  }

  std::unique_ptr<Pool> MakePool() {
    auto pool = Pool::Create({.conninfo = db_->conninfo(), .max_size = 2}, base::RealClock::Get());
    EXPECT_THAT(pool, IsOk());
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  static absl::StatusOr<int64_t> Count(Pool& pool, const std::string& sql) {
    return pool.TransactValue<int64_t>(
        [&](pqxx::work& tx) -> absl::StatusOr<int64_t> { return tx.exec1(sql)[0].as<int64_t>(); });
  }

  std::unique_ptr<PgTestDatabase> db_;
  std::string dir_;
};

TEST(Sha256HexTest, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(MigrateTest, AppliesPendingFilesInOrderAndRecordsThem) {
  Write("0002_add_email.sql", kAddColumn);
  Write("0001_init.sql", kInit);
  Write("README.md", "not a migration");
  auto pool = MakePool();
  ASSERT_NE(pool, nullptr);
  CRM_ASSERT_OK_AND_ASSIGN(MigrationReport report, Migrate(*pool, dir_));
  EXPECT_EQ(report.version_before, 0);
  EXPECT_EQ(report.version_after, 2);
  EXPECT_THAT(report.applied, ElementsAre("0001_init.sql", "0002_add_email.sql"));
  EXPECT_THAT(Count(*pool, "SELECT count(email) + count(*) FROM persons"), IsOkAndHolds(1));
  auto checksum =
      pool->TransactValue<std::string>([](pqxx::work& tx) -> absl::StatusOr<std::string> {
        return tx.exec1("SELECT checksum FROM schema_migrations WHERE version = 1")[0]
            .as<std::string>();
      });
  EXPECT_THAT(checksum, IsOkAndHolds(Sha256Hex(kInit)));

  CRM_ASSERT_OK_AND_ASSIGN(MigrationReport again, Migrate(*pool, dir_));
  EXPECT_THAT(again.applied, IsEmpty());
  EXPECT_EQ(again.version_before, 2);
  EXPECT_EQ(again.version_after, 2);
}

TEST_F(MigrateTest, ConcurrentStartsApplyEachMigrationOnce) {
  Write("0001_init.sql", kInit);
  Write("0002_add_email.sql", kAddColumn);
  constexpr int kReplicas = 4;
  std::vector<absl::StatusOr<MigrationReport>> reports(kReplicas, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] {
      auto pool =
          Pool::Create({.conninfo = db_->conninfo(), .max_size = 1}, base::RealClock::Get());
      if (!pool.ok()) {
        reports[i] = pool.status();
        return;
      }
      reports[i] = Migrate(**pool, dir_);
    });
  }
  for (std::thread& t : threads) t.join();
  int applied_by = 0;
  for (const auto& r : reports) {
    ASSERT_THAT(r, IsOk());
    if (!r->applied.empty()) {
      ++applied_by;
      EXPECT_EQ(r->applied.size(), 2u);
    }
    EXPECT_EQ(r->version_after, 2);
  }
  EXPECT_EQ(applied_by, 1);
  auto pool = MakePool();
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(Count(*pool, "SELECT count(*) FROM persons"), IsOkAndHolds(1));
  EXPECT_THAT(Count(*pool, "SELECT count(*) FROM schema_migrations"), IsOkAndHolds(2));
}

TEST_F(MigrateTest, EditedAppliedMigrationStopsStartUp) {
  Write("0001_init.sql", kInit);
  auto pool = MakePool();
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Migrate(*pool, dir_), IsOk());
  Write("0001_init.sql", std::string(kInit) + "-- edited\n");
  EXPECT_THAT(Migrate(*pool, dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("0001_init.sql")));
}

TEST_F(MigrateTest, GapIsRefused) {
  Write("0001_init.sql", kInit);
  Write("0003_add_email.sql", kAddColumn);
  auto pool = MakePool();
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(Migrate(*pool, dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("0003_add_email.sql")));
  EXPECT_THAT(Count(*pool, "SELECT count(*) FROM pg_tables WHERE tablename = 'persons'"),
              IsOkAndHolds(0));
}

TEST_F(MigrateTest, DuplicateVersionIsRefused) {
  Write("0001_init.sql", kInit);
  Write("0001_other.sql", kAddColumn);
  EXPECT_THAT(LoadMigrations(dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("same version")));
}

TEST_F(MigrateTest, MalformedNameIsRefused) {
  Write("1_init.sql", kInit);
  EXPECT_THAT(LoadMigrations(dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("1_init.sql")));
}

TEST_F(MigrateTest, MissingDirectoryIsNotFound) {
  EXPECT_THAT(LoadMigrations(dir_ + "/nope"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(MigrateTest, FailingMigrationIsNamedAndLeavesNoTrace) {
  Write("0001_init.sql", kInit);
  Write("0002_broken.sql", "CREATE TABLE half (id int);\nSELEC 1;\n");
  auto pool = MakePool();
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(Migrate(*pool, dir_),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("0002_broken.sql")));
  EXPECT_THAT(Count(*pool, "SELECT count(*) FROM schema_migrations"), IsOkAndHolds(1));
  EXPECT_THAT(Count(*pool, "SELECT count(*) FROM pg_tables WHERE tablename = 'half'"),
              IsOkAndHolds(0));
}

TEST_F(MigrateTest, DatabaseNewerThanFilesIsRefused) {
  Write("0001_init.sql", kInit);
  Write("0002_add_email.sql", kAddColumn);
  auto pool = MakePool();
  ASSERT_NE(pool, nullptr);
  ASSERT_THAT(Migrate(*pool, dir_), IsOk());
  std::filesystem::remove(dir_ + "/0002_add_email.sql");
  EXPECT_THAT(Migrate(*pool, dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("0002_add_email.sql")));
}

}  // namespace
}  // namespace crm::pg
