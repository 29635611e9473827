// Store-level tests of the audit log on a real PostgreSQL (a fresh database
// migrated with services/audit/migrations per test): AuditLog ingestion and
// Open, LogStore appends from two "replicas", checkpoints, proofs from the
// stored tree, VerifyLog against every kind of tampering with the raw rows,
// erasure by key destruction and retention. A FakeClock drives everything
// time-based; the KEK ring lives in memory.
#include <google/protobuf/util/message_differencer.h>

#include <functional>
#include <memory>
#include <optional>
#include <pqxx/binarystring>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/pg/pool.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "services/audit/audit_log.h"
#include "services/audit/merkle.h"

namespace crm::audit {
namespace {

using crm::audit::v1::Event;
using crm::audit::v1::LogEntry;
using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kEmail[] = "ada.lovelace@example.com";
constexpr char kOldEmail[] = "ada@example.org";
constexpr char kAddress[] = "203.0.113.77";
constexpr char kAgent[] = "Mozilla/5.0 (AuditTest)";

// An event of `service` about `subject` (may be empty) with a clear and a
// personal detail, a field change, source address and user agent.
Event MakeEvent(absl::string_view service, absl::string_view action, absl::string_view subject,
                absl::Time time) {
  Event e;
  e.set_event_id(base::NewUuid());
  const int64_t micros = absl::ToUnixMicros(time);
  e.mutable_time()->set_seconds(micros / 1'000'000);
  e.mutable_time()->set_nanos(static_cast<int32_t>(micros % 1'000'000) * 1000);
  e.set_service(std::string(service));
  e.mutable_actor()->set_user_id("7d1c2b9e-0f3a-4c55-9d1e-2a6b8c4f0e11");
  e.mutable_actor()->set_service_identity(absl::StrCat("spiffe://crm.local/", service));
  e.mutable_actor()->set_session_id("session-1");
  e.set_action(std::string(action));
  e.set_resource("person/42");
  e.set_subject_id(std::string(subject));
  e.set_outcome(v1::OUTCOME_SUCCESS);
  e.set_request_id("req-1");
  v1::Detail* clear = e.add_details();
  clear->set_key("channel");
  clear->set_value("web-form");
  v1::Detail* personal = e.add_details();
  personal->set_key("email");
  personal->set_value(kEmail);
  personal->set_personal(true);
  v1::FieldChange* change = e.add_changes();
  change->set_field("email");
  change->set_old_value(kOldEmail);
  change->set_new_value(kEmail);
  e.set_source_address(kAddress);
  e.set_user_agent(kAgent);
  return e;
}

std::vector<const Event*> Pointers(const std::vector<Event>& events) {
  std::vector<const Event*> out;
  for (const Event& e : events) out.push_back(&e);
  return out;
}

crypto::KeyRing TestRing() {
  std::vector<crypto::VersionedKey> keys;
  keys.push_back({.version = 1, .key = crypto::SecretBytes::CopyFrom(crypto::RandomBytes(32))});
  absl::StatusOr<crypto::KeyRing> ring = crypto::KeyRing::FromKeys(std::move(keys));
  EXPECT_THAT(ring.status(), IsOk());
  return *std::move(ring);
}

// One process's view of the log: store, keys, log and checkpointer on a pool.
struct Replica {
  Replica(pg::Pool& pool, const crypto::KeyRing& ring, base::FakeClock& clock)
      : store(pool), keys(pool, ring, clock), log(store, keys, clock) {}
  LogStore store;
  DataKeys keys;
  AuditLog log;
};

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(db_, crm::testing::CreateMigratedDatabase("audit", "audit_log", 8));
    replica_ = std::make_unique<Replica>(*db_.pool, ring_, clock_);
    // Checkpoints by count or time only where a test asks (MaybeCheckpoint).
    CRM_ASSERT_OK_AND_ASSIGN(checkpointer_,
                             Checkpointer::Create(store(), ring_, clock_, 4, absl::Minutes(1)));
  }

  LogStore& store() { return replica_->store; }
  AuditLog& log() { return replica_->log; }

  absl::StatusOr<AppendResult> Ingest(const std::vector<Event>& events) {
    return log().Ingest(Pointers(events));
  }

  // Ingests `n` events one batch each, alternating services, subjects and
  // outcomes; returns them.
  std::vector<Event> IngestMany(int n) {
    std::vector<Event> out;
    for (int i = 0; i < n; ++i) {
      Event e = MakeEvent(i % 2 == 0 ? "contacts" : "identity", absl::StrCat("person.update.", i),
                          i % 3 == 0 ? subject_ : "", clock_.Now() + absl::Seconds(i));
      if (i % 4 == 1) e.set_outcome(v1::OUTCOME_DENIED);
      if (i % 5 == 2) e.clear_changes();
      EXPECT_THAT(Ingest({e}), IsOk());
      out.push_back(std::move(e));
    }
    return out;
  }

  std::vector<StoredEntry> All() {
    absl::StatusOr<std::vector<StoredEntry>> all = store().Query({}, -1, 100'000);
    EXPECT_THAT(all.status(), IsOk());
    return all.value_or(std::vector<StoredEntry>());
  }

  StoredEntry EntryAt(int64_t index) {
    absl::StatusOr<std::vector<StoredEntry>> one = store().Query({}, index - 1, 1);
    EXPECT_THAT(one.status(), IsOk());
    EXPECT_THAT(*one, SizeIs(1));
    return one->empty() ? StoredEntry() : (*one)[0];
  }

  absl::StatusOr<LogEntry> OpenAt(int64_t index) { return log().Open(EntryAt(index)); }

  // Runs `sql` directly on the database.
  void Sql(const std::string& sql) {
    ASSERT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
      tx.exec(sql);
      return absl::OkStatus();
    }),
                IsOk())
        << sql;
  }
  absl::Status TrySql(const std::string& sql) {
    return db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
      tx.exec(sql);
      return absl::OkStatus();
    });
  }
  std::string SqlValue(const std::string& sql) {
    std::string out;
    EXPECT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
      pqxx::result r = tx.exec(sql);
      out = r.empty() || r[0][0].is_null() ? "" : r[0][0].as<std::string>();
      return absl::OkStatus();
    }),
                IsOk())
        << sql;
    return out;
  }
  // A bytea column of one row, raw.
  std::string SqlBytes(const std::string& sql) {
    std::string out;
    EXPECT_THAT(db_.pool->Transact([&](pqxx::work& tx) -> absl::Status {
      pqxx::result r = tx.exec(sql);
      if (!r.empty() && !r[0][0].is_null()) out = pqxx::binarystring(r[0][0]).str();
      return absl::OkStatus();
    }),
                IsOk())
        << sql;
    return out;
  }

  VerifyReport Verify() {
    absl::StatusOr<VerifyReport> r = VerifyLog(store());
    EXPECT_THAT(r.status(), IsOk());
    return r.value_or(VerifyReport{.ok = false});
  }

  void ExpectNoCheckpoint(bool force = false) {
    absl::StatusOr<std::optional<Checkpoint>> c = checkpointer_->MaybeCheckpoint(force);
    ASSERT_THAT(c.status(), IsOk());
    EXPECT_FALSE(c->has_value()) << (*c)->tree_size;
  }

  std::optional<Checkpoint> Force() {
    absl::StatusOr<std::optional<Checkpoint>> c = checkpointer_->MaybeCheckpoint(/*force=*/true);
    EXPECT_THAT(c.status(), IsOk());
    return c.value_or(std::nullopt);
  }

  // 12 entries with checkpoints at 6 and 12; VerifyLog passes.
  void TwelveEntriesTwoCheckpoints() {
    IngestMany(6);
    ASSERT_TRUE(Force().has_value());
    IngestMany(6);
    ASSERT_TRUE(Force().has_value());
    const VerifyReport r = Verify();
    ASSERT_TRUE(r.ok) << r.problem;
    ASSERT_EQ(r.entries_checked, 12);
    ASSERT_EQ(r.checkpoints_checked, 2);
  }

  void ExpectBadAt(int64_t index, absl::string_view problem) {
    const VerifyReport r = Verify();
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.first_bad_index, index) << r.problem;
    EXPECT_THAT(r.problem, HasSubstr(std::string(problem)));
  }

  crm::testing::MigratedDatabase db_;
  base::FakeClock clock_;
  crypto::KeyRing ring_ = TestRing();
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<Checkpointer> checkpointer_;
  const std::string subject_ = "0b6f2f7a-5c1e-4d2b-8a3f-9e0d1c2b3a41";
};

// ---- Ingestion and opening ------------------------------------------------------------

TEST_F(AuditLogTest, IngestedEventOpensWithItsPersonalDetails) {
  Event e = MakeEvent("contacts", "person.update", subject_, clock_.Now());
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult r, Ingest({e}));
  EXPECT_EQ(r.appended, 1);
  EXPECT_EQ(r.duplicates, 0);
  EXPECT_EQ(r.tree_size, 1u);

  CRM_ASSERT_OK_AND_ASSIGN(LogEntry opened, OpenAt(0));
  EXPECT_EQ(opened.index(), 0);
  EXPECT_EQ(opened.redacted(), "");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(opened.event(), e))
      << opened.event().DebugString() << "\nvs\n"
      << e.DebugString();
}

// Append writes COPY text itself: tabs, newlines, carriage returns and
// backslashes in the clear columns must arrive as they were hashed.
TEST_F(AuditLogTest, ColumnsWithCopySpecialCharactersRoundTripAndVerify) {
  Event e = MakeEvent("contacts", "person.update", subject_, clock_.Now());
  e.set_resource("person\t42\\n\nnext\rline\\");
  e.mutable_actor()->set_session_id("\\N");
  e.set_request_id("\t");
  ASSERT_THAT(Ingest({e}).status(), IsOk());

  const StoredEntry stored = EntryAt(0);
  EXPECT_EQ(stored.record.resource, e.resource());
  EXPECT_EQ(stored.record.actor_session, "\\N");
  EXPECT_EQ(stored.record.request_id, "\t");
  CRM_ASSERT_OK_AND_ASSIGN(LogEntry opened, OpenAt(0));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(opened.event(), e));
  const VerifyReport r = Verify();
  EXPECT_TRUE(r.ok) << r.problem;
}

TEST_F(AuditLogTest, PersonalPartIsSealedAndClearPartIsNot) {
  const Event e = MakeEvent("contacts", "person.update", subject_, clock_.Now());
  ASSERT_THAT(Ingest({e}), IsOk());

  const std::string sealed = SqlBytes("SELECT sealed FROM audit_log WHERE leaf_index = 0");
  const std::string clear = SqlBytes("SELECT clear_part FROM audit_log WHERE leaf_index = 0");
  ASSERT_FALSE(sealed.empty());
  for (const char* secret : {kEmail, kOldEmail, kAddress, kAgent}) {
    EXPECT_THAT(sealed, Not(HasSubstr(secret)));
    EXPECT_THAT(clear, Not(HasSubstr(secret)));
  }
  // The non-personal detail stays queryable in clear.
  Event clear_event;
  ASSERT_TRUE(clear_event.ParseFromString(clear));
  ASSERT_THAT(clear_event.details(), SizeIs(1));
  EXPECT_EQ(clear_event.details(0).key(), "channel");
  EXPECT_EQ(clear_event.details(0).value(), "web-form");
  EXPECT_EQ(SqlValue("SELECT key_scope FROM audit_log"), absl::StrCat("subject:", subject_));
  EXPECT_EQ(SqlValue("SELECT has_changes::text FROM audit_log"), "true");
  // The stored leaf hash is the canonical encoding's.
  const StoredEntry stored = EntryAt(0);
  EXPECT_EQ(stored.leaf_hash, merkle::LeafHash(EncodeLeaf(stored.record)));
}

TEST_F(AuditLogTest, KeyScopeFallsBackToActorThenDay) {
  Event by_actor = MakeEvent("identity", "identity.login.success", "", clock_.Now());
  Event by_day = MakeEvent("identity", "identity.login.failure", "", clock_.Now());
  by_day.mutable_actor()->clear_user_id();
  ASSERT_THAT(Ingest({by_actor, by_day}), IsOk());
  EXPECT_EQ(EntryAt(0).record.key_scope, absl::StrCat("actor:", by_actor.actor().user_id()));
  EXPECT_EQ(EntryAt(1).record.key_scope,
            absl::StrCat("day:", absl::FormatTime("%Y-%m-%d", clock_.Now(), absl::UTCTimeZone())));
  CRM_ASSERT_OK_AND_ASSIGN(LogEntry opened, OpenAt(1));
  EXPECT_EQ(opened.event().source_address(), kAddress);
}

TEST_F(AuditLogTest, EventWithoutPersonalPartStoresNoSealedBytes) {
  Event e = MakeEvent("contacts", "person.read", subject_, clock_.Now());
  e.clear_changes();
  e.clear_source_address();
  e.clear_user_agent();
  e.mutable_details()->RemoveLast();
  ASSERT_THAT(Ingest({e}), IsOk());
  EXPECT_EQ(SqlValue("SELECT (sealed IS NULL)::text FROM audit_log"), "true");
  CRM_ASSERT_OK_AND_ASSIGN(LogEntry opened, OpenAt(0));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(opened.event(), e));
}

TEST_F(AuditLogTest, InvalidEventIsNamedAndNothingIsWritten) {
  struct Case {
    std::string field;
    std::function<void(Event&)> spoil;
  };
  const std::vector<Case> cases = {
      {"events[2].event_id", [](Event& e) { e.set_event_id("not-a-uuid"); }},
      {"events[2].time", [](Event& e) { e.clear_time(); }},
      {"events[2].time", [](Event& e) { e.mutable_time()->set_seconds(100); }},
      {"events[2].service", [](Event& e) { e.set_service("Contacts"); }},
      {"events[2].action", [](Event& e) { e.set_action(""); }},
      {"events[2].subject_id", [](Event& e) { e.set_subject_id("ada@example.com"); }},
      {"events[2].outcome", [](Event& e) { e.set_outcome(static_cast<v1::Outcome>(9)); }},
      {"events[2].resource", [](Event& e) { e.set_resource(std::string(300, 'r')); }},
      {"events[2].details[1].key", [](Event& e) { e.mutable_details(1)->set_key(""); }},
      {"events[2].details[0].value",
       [](Event& e) { e.mutable_details(0)->set_value(std::string(5000, 'v')); }},
      {"events[2].changes[0].new_value",
       [](Event& e) { e.mutable_changes(0)->set_new_value(std::string("bad\x01", 4)); }},
      {"events[2].user_agent", [](Event& e) { e.set_user_agent(std::string(600, 'u')); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    std::vector<Event> batch;
    for (int i = 0; i < 3; ++i) {
      batch.push_back(MakeEvent("contacts", "person.update", subject_, clock_.Now()));
    }
    c.spoil(batch[2]);
    absl::StatusOr<AppendResult> r = Ingest(batch);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)));
    // Never the value itself.
    EXPECT_THAT(r.status().message(), Not(HasSubstr("ada@example.com")));
    EXPECT_THAT(store().Size(), IsOkAndHolds(0u));
  }
  EXPECT_EQ(SqlValue("SELECT count(*) FROM audit_data_keys"), "0");
}

TEST_F(AuditLogTest, ReplayedBatchIsAllDuplicates) {
  std::vector<Event> batch;
  for (int i = 0; i < 3; ++i) {
    batch.push_back(MakeEvent("contacts", "person.update", subject_, clock_.Now()));
  }
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult first, Ingest(batch));
  EXPECT_EQ(first.appended, 3);
  // The replay may spell the ids in upper case: still the same events.
  for (Event& e : batch) e.set_event_id(absl::AsciiStrToUpper(e.event_id()));
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult again, Ingest(batch));
  EXPECT_EQ(again.appended, 0);
  EXPECT_EQ(again.duplicates, 3);
  EXPECT_EQ(again.tree_size, 3u);
  EXPECT_EQ(again.root, first.root);
  EXPECT_THAT(store().Size(), IsOkAndHolds(3u));
}

TEST_F(AuditLogTest, BatchMixingReplayedAndNewEventsAppendsOnlyTheNew) {
  // Append tries without looking the ids up; the replayed ones make the
  // unique index refuse the COPY, and the retry with the look-up appends
  // only the new event, in batch order, into a tree that still verifies.
  std::vector<Event> first;
  for (int i = 0; i < 3; ++i) {
    first.push_back(MakeEvent("contacts", "person.update", subject_, clock_.Now()));
  }
  ASSERT_THAT(Ingest(first), IsOk());
  const Event fresh = MakeEvent("contacts", "person.create", subject_, clock_.Now());
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult r, Ingest({first[2], fresh, first[0], fresh}));
  EXPECT_EQ(r.appended, 1);
  EXPECT_EQ(r.duplicates, 3);
  EXPECT_EQ(r.tree_size, 4u);
  EXPECT_EQ(EntryAt(3).record.event_id, fresh.event_id());
  EXPECT_THAT(store().Size(), IsOkAndHolds(4u));
  Force();
  EXPECT_TRUE(Verify().ok);
}

TEST_F(AuditLogTest, RepeatsWithinABatchCountAsDuplicates) {
  const Event a = MakeEvent("contacts", "person.update", subject_, clock_.Now());
  const Event b = MakeEvent("contacts", "person.update", subject_, clock_.Now());
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult r, Ingest({a, b, a}));
  EXPECT_EQ(r.appended, 2);
  EXPECT_EQ(r.duplicates, 1);
  EXPECT_EQ(r.tree_size, 2u);
  EXPECT_EQ(EntryAt(1).record.event_id, b.event_id());
}

TEST_F(AuditLogTest, LargeBatchStreamsInPiecesIntoOneVerifiedTree) {
  // 130 events: Append sends them to PostgreSQL in pieces of 50 while it
  // prepares the rest; the stored leaves must be the batch in order, with
  // the tree a reference builder computes from their hashes.
  std::vector<Event> batch;
  for (int i = 0; i < 130; ++i) {
    batch.push_back(MakeEvent("contacts", "person.update", i % 3 == 0 ? "" : subject_,
                              clock_.Now() + absl::Seconds(i)));
  }
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult r, Ingest(batch));
  EXPECT_EQ(r.appended, 130);
  const std::vector<StoredEntry> all = All();
  ASSERT_THAT(all, SizeIs(130));
  merkle::TreeBuilder reference;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].record.event_id, batch[i].event_id());
    EXPECT_EQ(all[i].record.subject_id, batch[i].subject_id());  // empty stays empty
    EXPECT_EQ(all[i].leaf_hash, merkle::LeafHash(EncodeLeaf(all[i].record)));
    ASSERT_THAT(reference.Append(all[i].leaf_hash), IsOk());
  }
  EXPECT_EQ(r.root, reference.Root());
  EXPECT_EQ(SqlValue("SELECT count(*) FROM audit_log WHERE subject_id IS NULL"), "44");
  Force();
  EXPECT_TRUE(Verify().ok);
}

TEST_F(AuditLogTest, FailureWhileStreamingAppendsNothing) {
  ASSERT_THAT(Ingest({MakeEvent("contacts", "person.update", subject_, clock_.Now())}), IsOk());
  // The first two pieces of 50 rows are already with PostgreSQL when event
  // 120 fails to be made: the transaction must leave no row behind.
  std::vector<Event> batch;
  std::vector<std::string> ids;
  for (int i = 0; i < 150; ++i) {
    batch.push_back(MakeEvent("contacts", "person.update", subject_, clock_.Now()));
    ids.push_back(batch.back().event_id());
  }
  int made = 0;
  absl::StatusOr<AppendResult> r =
      store().Append(ids, clock_.Now(), [&](size_t i) -> absl::StatusOr<LeafRecord> {
        if (i == 120) return absl::InternalError("sealing failed");
        ++made;
        return Split(batch[i]).record;
      });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInternal, HasSubstr("sealing failed")));
  EXPECT_GE(made, 120);
  EXPECT_THAT(store().Size(), IsOkAndHolds(1u));
  EXPECT_EQ(SqlValue("SELECT count(*) FROM merkle_nodes"), "0");
  // The log carries on where it was.
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult again, Ingest(batch));
  EXPECT_EQ(again.appended, 150);
  EXPECT_EQ(again.tree_size, 151u);
  Force();
  EXPECT_TRUE(Verify().ok);
}

// ---- Two replicas, the stored tree --------------------------------------------------------

TEST_F(AuditLogTest, TwoReplicasAppendConcurrentlyIntoOneContiguousTree) {
  CRM_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<pg::Pool> other_pool,
      pg::Pool::Create({.conninfo = db_.db->conninfo(), .max_size = 4}, base::RealClock::Get()));
  Replica other(*other_pool, ring_, clock_);
  constexpr int kThreads = 4, kBatches = 12, kBatchSize = 5;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::vector<std::string>> ids(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b < kBatches; ++b) {
      for (int i = 0; i < kBatchSize; ++i) ids[t].push_back(base::NewUuid());
    }
    threads.emplace_back([&, t] {
      AuditLog& log = t % 2 == 0 ? replica_->log : other.log;
      for (int b = 0; b < kBatches && results[t].ok(); ++b) {
        std::vector<Event> batch;
        for (int i = 0; i < kBatchSize; ++i) {
          Event e = MakeEvent(t % 2 == 0 ? "contacts" : "consent", "person.update",
                              i % 2 == 0 ? subject_ : "", clock_.Now());
          e.set_event_id(ids[t][b * kBatchSize + i]);
          batch.push_back(std::move(e));
        }
        absl::StatusOr<AppendResult> r = log.Ingest(Pointers(batch));
        results[t] = r.status();
        if (r.ok() && r->appended != kBatchSize) results[t] = absl::InternalError("not appended");
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const absl::Status& s : results) EXPECT_THAT(s, IsOk());

  constexpr uint64_t kTotal = kThreads * kBatches * kBatchSize;
  ASSERT_THAT(store().Size(), IsOkAndHolds(kTotal));
  const std::vector<StoredEntry> all = All();
  ASSERT_THAT(all, SizeIs(kTotal));
  absl::flat_hash_set<std::string> seen;
  merkle::TreeBuilder reference;
  merkle::NodeMap reference_nodes;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].index, static_cast<int64_t>(i));
    EXPECT_TRUE(seen.insert(all[i].record.event_id).second);
    EXPECT_EQ(all[i].leaf_hash, merkle::LeafHash(EncodeLeaf(all[i].record)));
    ASSERT_THAT(reference.Append(all[i].leaf_hash,
                                 [&](const merkle::NodeId& id, absl::string_view h) {
                                   if (id.level > 0) reference_nodes[id] = std::string(h);
                                 }),
                IsOk());
  }
  for (const std::vector<std::string>& thread_ids : ids) {
    for (const std::string& id : thread_ids) EXPECT_TRUE(seen.contains(id));
  }
  // Every stored subtree is the reference's, and so is the root.
  std::vector<merkle::NodeId> node_ids;
  for (const auto& [id, h] : reference_nodes) node_ids.push_back(id);
  CRM_ASSERT_OK_AND_ASSIGN(merkle::NodeMap stored, store().FetchNodes(node_ids));
  EXPECT_EQ(stored.size(), reference_nodes.size());
  for (const auto& [id, h] : reference_nodes) EXPECT_EQ(stored[id], h) << id.DebugString();
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<merkle::NodeId> root_ids, merkle::RootNodes(kTotal));
  CRM_ASSERT_OK_AND_ASSIGN(merkle::NodeMap root_nodes, store().FetchNodes(root_ids));
  EXPECT_THAT(merkle::RootHash(kTotal, root_nodes), IsOkAndHolds(reference.Root()));

  const std::optional<Checkpoint> c = Force();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->tree_size, kTotal);
  EXPECT_EQ(c->root_hash, reference.Root());
  const VerifyReport r = Verify();
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.entries_checked, static_cast<int64_t>(kTotal));
  EXPECT_EQ(r.checkpoints_checked, 1);

  // Each replica continues where the other left off.
  ASSERT_THAT(other.log.Ingest(Pointers({MakeEvent("consent", "x", "", clock_.Now())})), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(AppendResult next,
                           Ingest({MakeEvent("contacts", "y", "", clock_.Now())}));
  EXPECT_EQ(next.tree_size, kTotal + 2);
  EXPECT_TRUE(Verify().ok);
}

// ---- Checkpoints and proofs ----------------------------------------------------------------

absl::Status VerifySignature(LogStore& store, const Checkpoint& c) {
  CRM_ASSIGN_OR_RETURN(std::vector<CheckpointKeyRow> keys, store.CheckpointKeys());
  for (const CheckpointKeyRow& k : keys) {
    if (k.key_id != c.key_id) continue;
    CRM_ASSIGN_OR_RETURN(crypto::Ed25519PublicKey pub,
                         crypto::Ed25519PublicKey::FromRaw(k.public_key));
    if (pub.Verify(CheckpointText(c.tree_size, c.root_hash, c.signed_at), c.signature)) {
      return absl::OkStatus();
    }
    return absl::DataLossError("signature does not verify");
  }
  return absl::NotFoundError("no such key");
}

TEST_F(AuditLogTest, CheckpointEveryNEntries) {
  ExpectNoCheckpoint();
  IngestMany(1);
  // The first entry gets the first checkpoint.
  CRM_ASSERT_OK_AND_ASSIGN(std::optional<Checkpoint> first, checkpointer_->MaybeCheckpoint());
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->tree_size, 1u);
  for (int i = 0; i < 3; ++i) {
    IngestMany(1);
    ExpectNoCheckpoint();
  }
  IngestMany(1);  // 4 since the last checkpoint
  CRM_ASSERT_OK_AND_ASSIGN(std::optional<Checkpoint> second, checkpointer_->MaybeCheckpoint());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->tree_size, 5u);

  merkle::TreeBuilder reference;
  for (const StoredEntry& e : All()) ASSERT_THAT(reference.Append(e.leaf_hash), IsOk());
  EXPECT_EQ(second->root_hash, reference.Root());
  EXPECT_EQ(second->key_id, checkpointer_->key_id());
  EXPECT_THAT(VerifySignature(store(), *first), IsOk());
  EXPECT_THAT(VerifySignature(store(), *second), IsOk());
  // What was stored is what was returned.
  CRM_ASSERT_OK_AND_ASSIGN(Checkpoint stored, store().CheckpointAt(5));
  EXPECT_EQ(stored.root_hash, second->root_hash);
  EXPECT_EQ(stored.signature, second->signature);
  EXPECT_EQ(stored.signed_at, second->signed_at);
  Checkpoint forged = stored;
  forged.tree_size = 4;
  EXPECT_THAT(VerifySignature(store(), forged), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(AuditLogTest, CheckpointAfterIntervalWhenTheLogGrew) {
  IngestMany(1);
  ASSERT_TRUE(Force().has_value());
  IngestMany(1);
  clock_.Advance(absl::Seconds(59));
  ExpectNoCheckpoint();
  clock_.Advance(absl::Seconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(std::optional<Checkpoint> c, checkpointer_->MaybeCheckpoint());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->tree_size, 2u);
  EXPECT_EQ(c->signed_at, clock_.Now());
  EXPECT_THAT(VerifySignature(store(), *c), IsOk());
  // Without growth, time alone makes no checkpoint, forced or not.
  clock_.Advance(absl::Minutes(5));
  ExpectNoCheckpoint();
  ExpectNoCheckpoint(/*force=*/true);
}

TEST_F(AuditLogTest, SecondCheckpointerUsesTheStoredKey) {
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpointer> other,
                           Checkpointer::Create(store(), ring_, clock_, 4, absl::Minutes(1)));
  EXPECT_EQ(other->key_id(), checkpointer_->key_id());
  EXPECT_THAT(store().CheckpointKeys(), IsOkAndHolds(SizeIs(1)));
}

TEST_F(AuditLogTest, ProofsFromTheStoreVerifyAgainstCheckpointRoots) {
  std::vector<Checkpoint> checkpoints;
  for (int n : {1, 4, 2, 6, 13}) {
    IngestMany(n);
    std::optional<Checkpoint> c = Force();
    ASSERT_TRUE(c.has_value());
    checkpoints.push_back(*c);
  }
  const std::vector<StoredEntry> all = All();
  ASSERT_THAT(all, SizeIs(26));
  for (const Checkpoint& c : checkpoints) {
    SCOPED_TRACE(c.tree_size);
    for (uint64_t i = 0; i < c.tree_size; ++i) {
      CRM_ASSERT_OK_AND_ASSIGN(std::vector<merkle::NodeId> ids,
                               merkle::InclusionProofNodes(i, c.tree_size));
      CRM_ASSERT_OK_AND_ASSIGN(merkle::NodeMap nodes, store().FetchNodes(ids));
      CRM_ASSERT_OK_AND_ASSIGN(std::vector<std::string> path,
                               merkle::InclusionProof(i, c.tree_size, nodes));
      EXPECT_THAT(merkle::VerifyInclusion(all[i].leaf_hash, i, c.tree_size, path, c.root_hash),
                  IsOk())
          << i;
      // The same path does not prove another leaf.
      EXPECT_THAT(merkle::VerifyInclusion(all[(i + 1) % all.size()].leaf_hash, i, c.tree_size, path,
                                          c.root_hash),
                  StatusIs(absl::StatusCode::kDataLoss));
    }
    for (const Checkpoint& later : checkpoints) {
      if (later.tree_size < c.tree_size) continue;
      CRM_ASSERT_OK_AND_ASSIGN(std::vector<merkle::NodeId> ids,
                               merkle::ConsistencyProofNodes(c.tree_size, later.tree_size));
      CRM_ASSERT_OK_AND_ASSIGN(merkle::NodeMap nodes, store().FetchNodes(ids));
      CRM_ASSERT_OK_AND_ASSIGN(std::vector<std::string> proof,
                               merkle::ConsistencyProof(c.tree_size, later.tree_size, nodes));
      EXPECT_THAT(merkle::VerifyConsistency(c.tree_size, later.tree_size, c.root_hash,
                                            later.root_hash, proof),
                  IsOk())
          << later.tree_size;
    }
  }
}

// ---- Tampering -------------------------------------------------------------------------------

struct ColumnTamper {
  const char* name;
  const char* set;  // SQL assignment
  int64_t index;
};

class ContentTamperTest : public AuditLogTest,
                          public ::testing::WithParamInterface<ColumnTamper> {};

TEST_P(ContentTamperTest, ModifiedColumnIsNamedByItsEntry) {
  TwelveEntriesTwoCheckpoints();
  const ColumnTamper& t = GetParam();
  Sql(absl::StrCat("UPDATE audit_log SET ", t.set, " WHERE leaf_index = ", t.index));
  ExpectBadAt(t.index, absl::StrCat("entry ", t.index, ": content does not match its leaf hash"));
}

INSTANTIATE_TEST_SUITE_P(
    Columns, ContentTamperTest,
    ::testing::Values(
        ColumnTamper{"action", "action = 'person.read'", 7},
        ColumnTamper{"subject_id", "subject_id = '1b6f2f7a-5c1e-4d2b-8a3f-9e0d1c2b3a41'", 3},
        ColumnTamper{"sealed", "sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1)", 8},
        ColumnTamper{"outcome", "outcome = 3", 11},
        ColumnTamper{"clear_part", "clear_part = NULL", 0},
        ColumnTamper{"event_time", "event_time = event_time + interval '1 microsecond'", 5},
        ColumnTamper{"has_changes", "has_changes = NOT has_changes", 6}),
    [](const ::testing::TestParamInfo<ColumnTamper>& info) { return info.param.name; });

// Content and leaf hash rewritten together: the entry is consistent, but the
// stored subtree over it (kept from the append) is not.
TEST_F(AuditLogTest, RewrittenLeafHashIsNamedThroughStoredSubtrees) {
  TwelveEntriesTwoCheckpoints();
  StoredEntry e = EntryAt(8);
  e.record.action = "person.read";
  Sql(absl::StrCat("UPDATE audit_log SET action = 'person.read', leaf_hash = '\\x",
                   absl::BytesToHexString(merkle::LeafHash(EncodeLeaf(e.record))),
                   "' WHERE leaf_index = 8"));
  ExpectBadAt(8, "stored subtree (level 1, index 4)");
}

// Content, leaf hash and every stored subtree above it rewritten: only the
// checkpoint root catches it, naming the range that checkpoint added.
TEST_F(AuditLogTest, RewrittenLeafAndSubtreesAreCaughtByTheCheckpointRoot) {
  TwelveEntriesTwoCheckpoints();
  std::vector<StoredEntry> all = All();
  all[8].record.action = "person.read";
  all[8].leaf_hash = merkle::LeafHash(EncodeLeaf(all[8].record));
  Sql(absl::StrCat("UPDATE audit_log SET action = 'person.read', leaf_hash = '\\x",
                   absl::BytesToHexString(all[8].leaf_hash), "' WHERE leaf_index = 8"));
  merkle::TreeBuilder tree;
  for (const StoredEntry& e : all) {
    ASSERT_THAT(tree.Append(e.leaf_hash,
                            [&](const merkle::NodeId& id, absl::string_view h) {
                              if (id.level > 0 && id.begin() <= 8 && 8 < id.end()) {
                                Sql(absl::StrCat("UPDATE merkle_nodes SET hash = '\\x",
                                                 absl::BytesToHexString(h), "' WHERE level = ",
                                                 id.level, " AND node_index = ", id.index));
                              }
                            }),
                IsOk());
  }
  ExpectBadAt(6, "checkpoint 12: root does not match entries 6..11");
}

TEST_F(AuditLogTest, DeletedEntryIsAGap) {
  TwelveEntriesTwoCheckpoints();
  Sql("DELETE FROM audit_log WHERE leaf_index = 4");
  ExpectBadAt(4, "entry 4: missing");
}

TEST_F(AuditLogTest, DeletedLastEntriesAreMissingUnderTheCheckpoint) {
  TwelveEntriesTwoCheckpoints();
  Sql("DELETE FROM audit_log WHERE leaf_index >= 10");
  ExpectBadAt(10, "checkpoint 12 covers more entries than stored");
}

TEST_F(AuditLogTest, InsertedEntryShiftsTheTree) {
  TwelveEntriesTwoCheckpoints();
  // An index cannot be taken twice.
  EXPECT_THAT(TrySql("INSERT INTO audit_log SELECT * FROM audit_log WHERE leaf_index = 4"),
              Not(IsOk()));
  // So a forged entry goes in by renumbering the ones after it; its leaf hash
  // is consistent with its content.
  Sql("UPDATE audit_log SET leaf_index = leaf_index + 1000 WHERE leaf_index >= 4");
  Sql("UPDATE audit_log SET leaf_index = leaf_index - 999 WHERE leaf_index >= 1000");
  LeafRecord forged = EntryAt(5).record;
  forged.event_id = base::NewUuid();
  forged.action = "person.delete";
  Sql(absl::StrCat(
      "INSERT INTO audit_log (leaf_index, event_id, event_time, service, action, subject_id, "
      "outcome, key_scope, clear_part, sealed, has_changes, leaf_hash, ingested_at) "
      "SELECT 4, '",
      forged.event_id,
      "'::uuid, event_time, service, 'person.delete', subject_id, outcome, key_scope, clear_part, "
      "sealed, has_changes, leaf_hash, ingested_at FROM audit_log WHERE leaf_index = 5"));
  // Copy the other content columns too, then give it its own hash.
  Sql("UPDATE audit_log f SET actor_user_id = s.actor_user_id, actor_service = s.actor_service, "
      "actor_session = s.actor_session, resource = s.resource, request_id = s.request_id "
      "FROM audit_log s WHERE f.leaf_index = 4 AND s.leaf_index = 5");
  Sql(absl::StrCat("UPDATE audit_log SET leaf_hash = '\\x",
                   absl::BytesToHexString(merkle::LeafHash(EncodeLeaf(forged))),
                   "' WHERE leaf_index = 4"));
  ASSERT_EQ(EntryAt(4).leaf_hash, merkle::LeafHash(EncodeLeaf(EntryAt(4).record)));
  ExpectBadAt(4, "first differing entry 4");
}

TEST_F(AuditLogTest, SwappedEntriesAreNamedByTheFirst) {
  TwelveEntriesTwoCheckpoints();
  Sql("UPDATE audit_log SET leaf_index = 1000 WHERE leaf_index = 2");
  Sql("UPDATE audit_log SET leaf_index = 2 WHERE leaf_index = 9");
  Sql("UPDATE audit_log SET leaf_index = 9 WHERE leaf_index = 1000");
  ExpectBadAt(2, "first differing entry 2");
}

TEST_F(AuditLogTest, ChangedCheckpointRootFailsItsSignature) {
  TwelveEntriesTwoCheckpoints();
  Sql("UPDATE checkpoints SET root_hash = set_byte(root_hash, 0, get_byte(root_hash, 0) # 1) "
      "WHERE tree_size = 6");
  ExpectBadAt(-1, "checkpoint 6: signature does not verify");
}

TEST_F(AuditLogTest, ChangedCheckpointSignatureFails) {
  TwelveEntriesTwoCheckpoints();
  Sql("UPDATE checkpoints SET signature = set_byte(signature, 5, get_byte(signature, 5) # 1) "
      "WHERE tree_size = 12");
  ExpectBadAt(-1, "checkpoint 12: signature does not verify");
}

TEST_F(AuditLogTest, ChangedStoredSubtreeIsNamed) {
  TwelveEntriesTwoCheckpoints();
  // Proofs read stored subtrees: a changed one must not pass verification.
  Sql("UPDATE merkle_nodes SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) "
      "WHERE level = 2 AND node_index = 1");
  ExpectBadAt(4, "stored subtree (level 2, index 1) over entries 4..7");
}

TEST_F(AuditLogTest, MissingStoredSubtreeIsNamed) {
  TwelveEntriesTwoCheckpoints();
  Sql("DELETE FROM merkle_nodes WHERE level = 1 AND node_index = 5");
  ExpectBadAt(10, "stored subtree (level 1, index 5)");
}

TEST_F(AuditLogTest, TamperingAfterTheLastCheckpointIsFoundThroughSubtrees) {
  IngestMany(12);
  EXPECT_TRUE(Verify().ok);
  std::vector<StoredEntry> all = All();
  all[2].record.outcome = v1::OUTCOME_FAILURE;
  Sql(absl::StrCat("UPDATE audit_log SET outcome = 3, leaf_hash = '\\x",
                   absl::BytesToHexString(merkle::LeafHash(EncodeLeaf(all[2].record))),
                   "' WHERE leaf_index = 2"));
  ExpectBadAt(2, "stored subtree (level 1, index 1)");
}

// ---- Erasure and retention ------------------------------------------------------------------

TEST_F(AuditLogTest, ErasureLeavesTheTreeValidAndTheDetailsUnreadable) {
  const Event about = MakeEvent("contacts", "person.update", subject_, clock_.Now());
  const Event other = MakeEvent("contacts", "person.update", base::NewUuid(), clock_.Now());
  ASSERT_THAT(Ingest({about, other}), IsOk());
  ASSERT_TRUE(Force().has_value());
  const std::string sealed_before = SqlBytes("SELECT sealed FROM audit_log WHERE leaf_index = 0");

  CRM_ASSERT_OK_AND_ASSIGN(bool destroyed,
                           replica_->keys.Destroy(absl::StrCat("subject:", subject_)));
  EXPECT_TRUE(destroyed);
  EXPECT_THAT(replica_->keys.Destroy(absl::StrCat("subject:", subject_)), IsOkAndHolds(false));
  EXPECT_EQ(SqlValue(absl::StrCat("SELECT (wrapped IS NULL)::text FROM audit_data_keys WHERE "
                                  "key_scope = 'subject:",
                                  subject_, "'")),
            "true");

  CRM_ASSERT_OK_AND_ASSIGN(LogEntry erased, OpenAt(0));
  EXPECT_EQ(erased.redacted(), "erased");
  EXPECT_EQ(erased.event().event_id(), about.event_id());
  EXPECT_EQ(erased.event().action(), "person.update");
  EXPECT_THAT(erased.event().changes(), IsEmpty());
  EXPECT_EQ(erased.event().source_address(), "");
  EXPECT_EQ(erased.event().user_agent(), "");
  ASSERT_THAT(erased.event().details(), SizeIs(1));  // the clear one
  EXPECT_EQ(erased.event().details(0).key(), "channel");
  // Another subject is untouched.
  CRM_ASSERT_OK_AND_ASSIGN(LogEntry kept, OpenAt(1));
  EXPECT_EQ(kept.redacted(), "");
  EXPECT_EQ(kept.event().source_address(), kAddress);
  // The sealed bytes stay, so every hash still verifies.
  EXPECT_EQ(SqlBytes("SELECT sealed FROM audit_log WHERE leaf_index = 0"), sealed_before);
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok) << r.problem;

  // A later event about the erased subject keeps no personal part at all
  // (through another replica, whose key cache never held the key).
  Replica fresh(*db_.pool, ring_, clock_);
  const Event later = MakeEvent("contacts", "person.update", subject_, clock_.Now());
  ASSERT_THAT(fresh.log.Ingest(Pointers({later})), IsOk());
  EXPECT_EQ(SqlValue("SELECT (sealed IS NULL)::text FROM audit_log WHERE leaf_index = 2"), "true");
  CRM_ASSERT_OK_AND_ASSIGN(LogEntry after, OpenAt(2));
  EXPECT_THAT(after.event().changes(), IsEmpty());
  EXPECT_EQ(after.event().source_address(), "");
  ASSERT_TRUE(Force().has_value());
  r = Verify();
  EXPECT_TRUE(r.ok) << r.problem;
}

TEST_F(AuditLogTest, DestroyingAScopeThatNeverHadAKeyBlocksItsCreation) {
  CRM_ASSERT_OK_AND_ASSIGN(bool destroyed,
                           replica_->keys.Destroy(absl::StrCat("subject:", subject_)));
  EXPECT_FALSE(destroyed);
  ASSERT_THAT(Ingest({MakeEvent("contacts", "person.create", subject_, clock_.Now())}), IsOk());
  EXPECT_EQ(SqlValue("SELECT (sealed IS NULL)::text FROM audit_log"), "true");
}

TEST_F(AuditLogTest, RetentionClearsContentAndKeepsTheTreeValid) {
  const absl::Time start = clock_.Now();
  IngestMany(5);  // event times start .. start + 4 s
  ASSERT_TRUE(Force().has_value());
  CRM_ASSERT_OK_AND_ASSIGN(int64_t expired, store().ExpireBefore(start + absl::Seconds(3), 100));
  EXPECT_EQ(expired, 3);
  EXPECT_THAT(store().ExpireBefore(start + absl::Seconds(3), 100), IsOkAndHolds(0));
  EXPECT_EQ(SqlValue("SELECT count(*) FROM audit_log WHERE sealed IS NOT NULL AND leaf_index < 3"),
            "0");

  CRM_ASSERT_OK_AND_ASSIGN(LogEntry old, OpenAt(0));
  EXPECT_EQ(old.redacted(), "expired");
  EXPECT_EQ(old.event().action(), "");
  EXPECT_THAT(old.event().details(), IsEmpty());
  EXPECT_EQ(old.event().source_address(), "");
  CRM_ASSERT_OK_AND_ASSIGN(LogEntry recent, OpenAt(4));
  EXPECT_EQ(recent.redacted(), "");
  EXPECT_EQ(recent.event().action(), "person.update.4");

  IngestMany(2);
  ASSERT_TRUE(Force().has_value());
  const VerifyReport r = Verify();
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.entries_checked, 7);
  EXPECT_EQ(r.checkpoints_checked, 2);
}

TEST_F(AuditLogTest, RetentionRunsUntilEveryOldEntryExpired) {
  const absl::Time start = clock_.Now();
  IngestMany(5);
  CRM_ASSERT_OK_AND_ASSIGN(int64_t expired,
                           ExpireContent(store(), start + absl::Seconds(4), /*batch=*/2));
  EXPECT_EQ(expired, 4);
  EXPECT_EQ(SqlValue("SELECT count(*) FROM audit_log WHERE content_expired"), "4");
  EXPECT_THAT(ExpireContent(store(), start + absl::Seconds(4), 2), IsOkAndHolds(0));
}

}  // namespace
}  // namespace crm::audit
