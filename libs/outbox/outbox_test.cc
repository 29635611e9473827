// libs/outbox on a real PostgreSQL with a fake Sink: the schema and key, the
// Writer's filling, validation and sealing, and the Relay's delivery, order,
// backoff, stopping, dead-lettering, metrics and replica exclusion.
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <atomic>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/outbox/relay.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"

namespace crm::outbox {
namespace {

using ::crm::audit::v1::Event;
using ::crm::testing::IsOk;
using ::crm::testing::PgTestDatabase;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Personal data stand-in; must never be visible in the payload column.
constexpr char kMarker[] = "Marker-Erika-Mustermann-0176";

// Waits (bounded) for a state reached by another thread.
template <typename F>
bool PollUntil(F done) {
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < until) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

// A Sink that records what it receives; fails the first `fail_times` calls
// (or all, with fail_times < 0) with UNAVAILABLE; can be made to block.
class FakeSink final : public Sink {
 public:
  absl::Status Append(const std::vector<Event>& events) override {
    absl::Notification* gate;
    {
      absl::MutexLock lock(&mu_);
      ++calls_;
      batch_sizes_.push_back(static_cast<int>(events.size()));
      gate = gate_;
      if (gate != nullptr) entered_ = true;
    }
    if (gate != nullptr) gate->WaitForNotification();
    absl::MutexLock lock(&mu_);
    if (fail_times_ != 0) {
      if (fail_times_ > 0) --fail_times_;
      return absl::UnavailableError("audit: connection refused");
    }
    for (const Event& e : events) events_.push_back(e);
    return absl::OkStatus();
  }

  void FailTimes(int n) {
    absl::MutexLock lock(&mu_);
    fail_times_ = n;
  }
  // Append blocks until `gate` is notified.
  void BlockOn(absl::Notification* gate) {
    absl::MutexLock lock(&mu_);
    gate_ = gate;
    entered_ = false;
  }
  bool entered() const {
    absl::MutexLock lock(&mu_);
    return entered_;
  }
  std::vector<Event> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  std::vector<std::string> ids() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const Event& e : events_) out.push_back(e.event_id());
    return out;
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<int> batch_sizes() const {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_times_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Notification* gate_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool entered_ ABSL_GUARDED_BY(mu_) = false;
};

Event MakeEvent(absl::string_view action, absl::string_view resource = "person/1") {
  Event e;
  e.set_action(std::string(action));
  e.set_resource(std::string(resource));
  return e;
}

// The value of an unlabelled metric in `registry`, or -1 if absent.
double MetricValue(prometheus::Registry& registry, const std::string& name) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name || family.metric.empty()) continue;
    const prometheus::ClientMetric& m = family.metric[0];
    return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return -1;
}

class OutboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto db = PgTestDatabase::Create("outbox");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = db->release();
  }
  static void TearDownTestSuite() {
    delete db_;
    db_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(db_, nullptr) << "test database not created";
    auto pool = pg::Pool::Create({.conninfo = db_->conninfo()}, base::RealClock::Get());
    ASSERT_THAT(pool, IsOk());
    pool_ = *std::move(pool);
    ASSERT_THAT(EnsureSchema(*pool_), IsOk());
    ASSERT_THAT(pool_->Transact([](pqxx::work& tx) {
      tx.exec("TRUNCATE audit_outbox, audit_outbox_dead, audit_outbox_key RESTART IDENTITY");
      return absl::OkStatus();
    }),
                IsOk());
    key_ = crypto::RandomSecret(crypto::kAes256KeySize);
    writer_ = std::make_unique<Writer>("contacts", key_.Copy(), clock_);
  }

  // Enqueues `events` in one committed transaction; returns their ids.
  std::vector<std::string> EnqueueCommitted(std::vector<Event> events) {
    std::vector<std::string> ids;
    const absl::Status s = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
      ids.clear();
      for (const Event& e : events) {
        std::string id;
        CRM_RETURN_IF_ERROR(writer_->Enqueue(tx, e, &id));
        ids.push_back(id);
      }
      return absl::OkStatus();
    });
    EXPECT_THAT(s, IsOk());
    return ids;
  }

  // Enqueues `n` events (actions "a.<first>".."a.<first+n-1>") in one transaction.
  std::vector<std::string> EnqueueN(int first, int n) {
    std::vector<Event> events;
    for (int i = first; i < first + n; ++i) events.push_back(MakeEvent(absl::StrCat("a.", i)));
    return EnqueueCommitted(std::move(events));
  }

  int64_t CountRows(const char* table) {
    auto n = pool_->TransactValue<int64_t>([&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
      return tx.exec1(absl::StrCat("SELECT count(*) FROM ", table))[0].as<int64_t>();
    });
    EXPECT_THAT(n, IsOk());
    return n.ok() ? *n : -1;
  }

  std::string RawPayload(const std::string& event_id) {
    auto p = pool_->TransactValue<std::string>([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
      const pqxx::row row =
          tx.exec_params1("SELECT payload FROM audit_outbox WHERE event_id = $1::uuid", event_id);
      return pqxx::binarystring(row[0]).str();
    });
    EXPECT_THAT(p, IsOk());
    return p.ok() ? *p : "";
  }

  RelayOptions TestOptions() {
    return RelayOptions{.batch_size = 10,
                        .poll_interval = absl::Hours(1),  // only Notify() ends idle waits
                        .min_backoff = absl::Seconds(1),
                        .max_backoff = absl::Seconds(4),
                        .jitter = 0.0,
                        .clock_check_interval = absl::Milliseconds(2)};
  }

  static PgTestDatabase* db_;
  std::unique_ptr<pg::Pool> pool_;
  base::FakeClock clock_;
  crypto::SecretBytes key_;
  std::unique_ptr<Writer> writer_;
};

PgTestDatabase* OutboxTest::db_ = nullptr;

// --- schema and key ---------------------------------------------------------

TEST_F(OutboxTest, EnsureSchemaIsIdempotentAndCreatesTheTables) {
  ASSERT_THAT(EnsureSchema(*pool_), IsOk());
  ASSERT_THAT(EnsureSchema(*pool_), IsOk());
  EXPECT_EQ(CountRows("audit_outbox"), 0);
  EXPECT_EQ(CountRows("audit_outbox_dead"), 0);
  EXPECT_THAT(SchemaSql(), HasSubstr("CREATE TABLE IF NOT EXISTS audit_outbox ("));
}

TEST_F(OutboxTest, LoadOrCreateKeyStoresOneWrappedKeyAndReturnsItAgain) {
  const crypto::SecretBytes kek1 = crypto::RandomSecret(crypto::kAes256KeySize);
  std::vector<crypto::VersionedKey> keys;
  keys.push_back({1, kek1.Copy()});
  CRM_ASSERT_OK_AND_ASSIGN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keys)));
  CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes first, LoadOrCreateKey(*pool_, ring));
  CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes second, LoadOrCreateKey(*pool_, ring));
  EXPECT_EQ(first.size(), crypto::kAes256KeySize);
  EXPECT_TRUE(crypto::ConstantTimeEquals(first.view(), second.view()));
  EXPECT_EQ(CountRows("audit_outbox_key"), 1);
  // Stored wrapped, not in clear.
  auto stored =
      pool_->TransactValue<std::string>([](pqxx::work& tx) -> absl::StatusOr<std::string> {
        return pqxx::binarystring(tx.exec1("SELECT wrapped FROM audit_outbox_key")[0]).str();
      });
  ASSERT_THAT(stored, IsOk());
  EXPECT_FALSE(absl::StrContains(*stored, first.view()));

  // A ring without the wrapping KEK cannot read it.
  std::vector<crypto::VersionedKey> other_keys;
  other_keys.push_back({2, crypto::RandomSecret(crypto::kAes256KeySize)});
  CRM_ASSERT_OK_AND_ASSIGN(crypto::KeyRing other, crypto::KeyRing::FromKeys(std::move(other_keys)));
  EXPECT_THAT(LoadOrCreateKey(*pool_, other), StatusIs(absl::StatusCode::kFailedPrecondition));

  // After a KEK rotation the key is re-wrapped and is still the same key.
  std::vector<crypto::VersionedKey> rotated_keys;
  rotated_keys.push_back({1, kek1.Copy()});
  rotated_keys.push_back({2, crypto::RandomSecret(crypto::kAes256KeySize)});
  CRM_ASSERT_OK_AND_ASSIGN(crypto::KeyRing rotated,
                           crypto::KeyRing::FromKeys(std::move(rotated_keys)));
  ASSERT_THAT(RewrapKey(*pool_, rotated), IsOk());
  auto rewrapped =
      pool_->TransactValue<std::string>([](pqxx::work& tx) -> absl::StatusOr<std::string> {
        return pqxx::binarystring(tx.exec1("SELECT wrapped FROM audit_outbox_key")[0]).str();
      });
  ASSERT_THAT(rewrapped, IsOk());
  EXPECT_THAT(crypto::KeyRing::WrappedVersion(*rewrapped), crm::testing::IsOkAndHolds(2u));
  CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes third, LoadOrCreateKey(*pool_, rotated));
  EXPECT_TRUE(crypto::ConstantTimeEquals(first.view(), third.view()));
}

// --- Writer -----------------------------------------------------------------

TEST_F(OutboxTest, EnqueueFillsIdTimeAndServiceAndSealsUnderTheEventId) {
  std::vector<std::string> ids = EnqueueCommitted({MakeEvent("person.update")});
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_TRUE(base::IsUuid(ids[0]));
  const std::string sealed = RawPayload(ids[0]);
  CRM_ASSERT_OK_AND_ASSIGN(std::string plaintext, crypto::Open(key_, sealed, ids[0]));
  Event event;
  ASSERT_TRUE(event.ParseFromString(plaintext));
  EXPECT_EQ(event.event_id(), ids[0]);
  EXPECT_EQ(event.service(), "contacts");
  EXPECT_EQ(event.action(), "person.update");
  EXPECT_EQ(event.time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  // Bound to its row: another event id does not open it.
  EXPECT_THAT(crypto::Open(key_, sealed, base::NewUuid()), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(OutboxTest, EnqueueKeepsAGivenIdAndTime) {
  Event e = MakeEvent("login.success");
  const std::string id = base::NewUuid();
  e.set_event_id(id);
  e.mutable_time()->set_seconds(1234);
  std::vector<std::string> ids = EnqueueCommitted({e});
  ASSERT_THAT(ids, ElementsAre(id));
  CRM_ASSERT_OK_AND_ASSIGN(std::string plaintext, crypto::Open(key_, RawPayload(id), id));
  Event stored;
  ASSERT_TRUE(stored.ParseFromString(plaintext));
  EXPECT_EQ(stored.time().seconds(), 1234);
}

TEST_F(OutboxTest, PayloadColumnHoldsNoPlaintext) {
  Event e = MakeEvent("person.update");
  e.set_source_address(kMarker);
  auto* change = e.add_changes();
  change->set_field("last_name");
  change->set_new_value(kMarker);
  // The serialized event does carry the marker: the check below means something.
  ASSERT_TRUE(absl::StrContains(e.SerializeAsString(), kMarker));
  std::vector<std::string> ids = EnqueueCommitted({e});
  ASSERT_EQ(ids.size(), 1u);
  const std::string raw = RawPayload(ids[0]);
  ASSERT_FALSE(raw.empty());
  EXPECT_FALSE(absl::StrContains(raw, kMarker));
  EXPECT_FALSE(absl::StrContains(raw, "last_name"));
  // Nor anywhere in the row as PostgreSQL renders it.
  auto text = pool_->TransactValue<std::string>([](pqxx::work& tx) -> absl::StatusOr<std::string> {
    return tx.exec1("SELECT string_agg(t::text, '') FROM audit_outbox t")[0].as<std::string>();
  });
  ASSERT_THAT(text, IsOk());
  EXPECT_FALSE(absl::StrContains(*text, kMarker));
}

TEST_F(OutboxTest, EnqueueRejectsInvalidEventsNamingTheField) {
  auto enqueue = [&](const Writer& w, Event e) {
    return pool_->Transact([&](pqxx::work& tx) { return w.Enqueue(tx, e); });
  };
  EXPECT_THAT(enqueue(*writer_, Event()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("action")));
  Event bad_id = MakeEvent("x.y");
  bad_id.set_event_id("not-a-uuid");
  EXPECT_THAT(enqueue(*writer_, bad_id),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("event_id")));
  Event foreign = MakeEvent("x.y");
  foreign.set_service("billing");
  EXPECT_THAT(enqueue(*writer_, foreign),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("service")));
  Writer anonymous("", key_.Copy(), clock_);
  EXPECT_THAT(enqueue(anonymous, MakeEvent("x.y")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("service")));
  Writer short_key("contacts", crypto::RandomSecret(16), clock_);
  EXPECT_THAT(enqueue(short_key, MakeEvent("x.y")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outbox key")));
  EXPECT_EQ(CountRows("audit_outbox"), 0);
}

TEST_F(OutboxTest, DuplicateEventIdIsAlreadyExists) {
  Event e = MakeEvent("x.y");
  e.set_event_id(base::NewUuid());
  EnqueueCommitted({e});
  EXPECT_THAT(pool_->Transact([&](pqxx::work& tx) { return writer_->Enqueue(tx, e); }),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(CountRows("audit_outbox"), 1);
}

TEST_F(OutboxTest, PipelineEnqueueSealsLikeEnqueueAndCommitsWithTheOtherStatements) {
  Event e = MakeEvent("person.create");
  const std::string id = base::NewUuid();
  e.set_event_id(id);
  pg::Pipeline p;
  p.Add("SELECT 1");
  ASSERT_THAT(writer_->Enqueue(p, e), IsOk());
  ASSERT_THAT(pool_->RunPipeline(p), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string plaintext, crypto::Open(key_, RawPayload(id), id));
  Event stored;
  ASSERT_TRUE(stored.ParseFromString(plaintext));
  EXPECT_EQ(stored.action(), "person.create");
  EXPECT_EQ(stored.service(), "contacts");
  // The same checks as Enqueue; an invalid event adds no statement.
  pg::Pipeline bad;
  EXPECT_THAT(writer_->Enqueue(bad, Event()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("action")));
  EXPECT_EQ(bad.size(), 0u);
  // A failing statement after it rolls the event back.
  Event second = MakeEvent("person.create");
  pg::Pipeline failing;
  ASSERT_THAT(writer_->Enqueue(failing, second), IsOk());
  failing.Add("SELECT 1 / 0");
  EXPECT_THAT(pool_->RunPipeline(failing), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(CountRows("audit_outbox"), 1);
}

TEST_F(OutboxTest, EnqueueAllSealsEachEventUnderItsIdInOneCopyAndFillsTheEventsInPlace) {
  std::vector<Event> events = {MakeEvent("person.create"), MakeEvent("person.update"),
                               MakeEvent("person.delete")};
  const std::string given = base::NewUuid();
  events[1].set_event_id(given);
  std::vector<Event*> all = {&events[0], &events[1], &events[2]};
  ASSERT_THAT(pool_->Transact([&](pqxx::work& tx) { return writer_->EnqueueAll(tx, all); }),
              IsOk());
  EXPECT_EQ(events[1].event_id(), given);
  for (const Event& e : events) {
    ASSERT_TRUE(base::IsUuid(e.event_id()));
    EXPECT_EQ(e.service(), "contacts");
    CRM_ASSERT_OK_AND_ASSIGN(std::string plaintext,
                             crypto::Open(key_, RawPayload(e.event_id()), e.event_id()));
    Event stored;
    ASSERT_TRUE(stored.ParseFromString(plaintext));
    EXPECT_EQ(stored.action(), e.action());
    EXPECT_EQ(stored.event_id(), e.event_id());
  }
  EXPECT_EQ(CountRows("audit_outbox"), 3);

  // An invalid event among valid ones writes none of them.
  std::vector<Event> mixed = {MakeEvent("person.create"), Event(), MakeEvent("person.create")};
  std::vector<Event*> mixed_all = {&mixed[0], &mixed[1], &mixed[2]};
  EXPECT_THAT(pool_->Transact([&](pqxx::work& tx) { return writer_->EnqueueAll(tx, mixed_all); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("action")));
  EXPECT_EQ(CountRows("audit_outbox"), 3);
  Writer short_key("contacts", crypto::RandomSecret(16), clock_);
  std::vector<Event> one = {MakeEvent("x.y")};
  std::vector<Event*> one_all = {&one[0]};
  EXPECT_THAT(pool_->Transact([&](pqxx::work& tx) { return short_key.EnqueueAll(tx, one_all); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outbox key")));
  EXPECT_EQ(CountRows("audit_outbox"), 3);
}

// --- Relay ------------------------------------------------------------------

TEST_F(OutboxTest, CommittedEventIsDeliveredAfterNotify) {
  FakeSink sink;
  Relay relay(*pool_, key_.Copy(), sink, clock_, TestOptions());
  ASSERT_THAT(relay.Start(), IsOk());
  // The first (empty) cycle is over; the relay now waits an hour of fake time.
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().cycles >= 1; }));
  std::vector<std::string> ids = EnqueueCommitted({MakeEvent("person.create")});
  relay.Notify();
  ASSERT_TRUE(PollUntil([&] { return sink.events().size() >= 1; }));
  EXPECT_THAT(sink.ids(), ElementsAreArray(ids));
  EXPECT_EQ(sink.events()[0].action(), "person.create");
  EXPECT_EQ(sink.events()[0].service(), "contacts");
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().events_shipped == 1; }));
  EXPECT_EQ(CountRows("audit_outbox"), 0);
  relay.Stop();
}

TEST_F(OutboxTest, RolledBackEventIsNeverDelivered) {
  // Enqueued first, in a transaction that rolls back...
  ASSERT_THAT(pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    CRM_RETURN_IF_ERROR(writer_->Enqueue(tx, MakeEvent("person.update")));
    return absl::AbortedError("the change failed");
  }),
              StatusIs(absl::StatusCode::kAborted));
  // ...then one that commits: had the first been written it would come first.
  std::vector<std::string> committed = EnqueueCommitted({MakeEvent("person.read")});
  FakeSink sink;
  Relay relay(*pool_, key_.Copy(), sink, clock_, TestOptions());
  ASSERT_THAT(relay.Start(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().events_shipped >= 1; }));
  relay.Stop();
  EXPECT_THAT(sink.ids(), ElementsAreArray(committed));
  EXPECT_EQ(CountRows("audit_outbox"), 0);
}

TEST_F(OutboxTest, OrderIsPreservedAcrossBatches) {
  std::vector<std::string> ids;
  for (int tx = 0; tx < 4; ++tx) {
    std::vector<std::string> more = EnqueueN(tx * 8, 8);
    ids.insert(ids.end(), more.begin(), more.end());
  }
  FakeSink sink;
  RelayOptions options = TestOptions();
  options.batch_size = 7;
  Relay relay(*pool_, key_.Copy(), sink, clock_, options);
  ASSERT_THAT(relay.Start(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return sink.events().size() >= 32; }));
  relay.Stop();
  EXPECT_THAT(sink.ids(), ElementsAreArray(ids));
  for (int size : sink.batch_sizes()) EXPECT_LE(size, 7);
  EXPECT_EQ(sink.calls(), 5);  // 7+7+7+7+4
  for (size_t i = 0; i < sink.events().size(); ++i) {
    EXPECT_EQ(sink.events()[i].action(), absl::StrCat("a.", i));
  }
}

TEST_F(OutboxTest, FailingSinkIsRetriedWithExponentialBackoffThenAllArriveOnceInOrder) {
  std::vector<std::string> ids = EnqueueN(0, 5);
  FakeSink sink;
  sink.FailTimes(4);
  Relay relay(*pool_, key_.Copy(), sink, clock_, TestOptions());  // 1 s .. 4 s, no jitter
  ASSERT_THAT(relay.Start(), IsOk());
  const absl::Duration expected[] = {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                                     absl::Seconds(4)};
  for (int k = 1; k <= 4; ++k) {
    ASSERT_TRUE(PollUntil([&] {
      RelayStats s = relay.Stats();
      return s.batches_failed == static_cast<uint64_t>(k) && s.backing_off;
    })) << "failure "
        << k;
    const RelayStats s = relay.Stats();
    EXPECT_EQ(s.last_backoff, expected[k - 1]) << "failure " << k;
    EXPECT_EQ(s.consecutive_failures, k);
    EXPECT_THAT(s.last_error, StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(s.pending, 5);
    EXPECT_EQ(sink.calls(), k);  // no retry before the clock moves
    EXPECT_THAT(sink.events(), IsEmpty());
    clock_.Advance(s.last_backoff);
  }
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().events_shipped == 5; }));
  relay.Stop();
  EXPECT_THAT(sink.ids(), ElementsAreArray(ids));
  EXPECT_EQ(sink.calls(), 5);
  const RelayStats s = relay.Stats();
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.pending, 0);
  EXPECT_EQ(CountRows("audit_outbox"), 0);
}

TEST_F(OutboxTest, StopDuringBackoffReturnsPromptly) {
  EnqueueN(0, 1);
  FakeSink sink;
  sink.FailTimes(-1);
  RelayOptions options = TestOptions();
  options.min_backoff = options.max_backoff = absl::Hours(1);
  options.clock_check_interval = absl::Seconds(10);  // Stop must not wait for a tick either
  Relay relay(*pool_, key_.Copy(), sink, clock_, options);
  ASSERT_THAT(relay.Start(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().backing_off; }));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    relay.Stop();
    stopped = true;
  });
  const bool prompt = PollUntil([&] { return stopped.load(); });
  if (!prompt) clock_.Advance(absl::Hours(2));  // let the thread end so the test can
  stopper.join();
  EXPECT_TRUE(prompt) << "Stop() waited for the backoff to run out";
  EXPECT_EQ(sink.calls(), 1);
  EXPECT_EQ(CountRows("audit_outbox"), 1);  // nothing lost
}

TEST_F(OutboxTest, NotifyDoesNotCutABackoffShort) {
  EnqueueN(0, 1);
  FakeSink sink;
  sink.FailTimes(1);
  Relay relay(*pool_, key_.Copy(), sink, clock_, TestOptions());
  ASSERT_THAT(relay.Start(), IsOk());
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().backing_off; }));
  relay.Notify();
  // Had Notify() ended the wait, the next cycle would succeed within a few ms.
  for (int i = 0; i < 20; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
    ASSERT_TRUE(relay.Stats().backing_off) << "Notify() ended the backoff";
  }
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().events_shipped == 1; }));
}

TEST_F(OutboxTest, RowsThatDoNotOpenAreDeadLetteredAndTheRestStillFlow) {
  std::vector<std::string> log_lines;
  absl::Mutex log_mu;
  log::SetSink([&](absl::string_view line) {
    absl::MutexLock lock(&log_mu);
    log_lines.emplace_back(line);
  });
  std::vector<std::string> ids = EnqueueN(0, 3);
  // Row 2 is tampered with; a fourth row is sealed under another key.
  ASSERT_THAT(pool_->Transact([&](pqxx::work& tx) {
    tx.exec_params(
        "UPDATE audit_outbox SET payload = set_byte(payload, 20, get_byte(payload, 20) # 1) "
        "WHERE event_id = $1::uuid",
        ids[1]);
    return absl::OkStatus();
  }),
              IsOk());
  const std::string tampered = RawPayload(ids[1]);
  Writer stranger("contacts", crypto::RandomSecret(crypto::kAes256KeySize), clock_);
  std::string foreign_id;
  ASSERT_THAT(pool_->Transact([&](pqxx::work& tx) {
    Event e = MakeEvent("a.3");
    e.set_source_address(kMarker);
    return stranger.Enqueue(tx, e, &foreign_id);
  }),
              IsOk());
  std::vector<std::string> more = EnqueueN(4, 1);

  prometheus::Registry registry;
  FakeSink sink;
  Relay relay(*pool_, key_.Copy(), sink, clock_, TestOptions(), &registry);
  CRM_ASSERT_OK_AND_ASSIGN(CycleResult result, relay.RunOnce());
  log::SetSink(nullptr);

  EXPECT_EQ(result.shipped, 3);
  EXPECT_EQ(result.dead_lettered, 2);
  EXPECT_THAT(sink.ids(), ElementsAre(ids[0], ids[2], more[0]));
  EXPECT_EQ(CountRows("audit_outbox"), 0);
  auto dead = pool_->TransactValue<std::vector<std::string>>(
      [](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
        std::vector<std::string> out;
        for (const pqxx::row& row : tx.exec(
                 "SELECT event_id::text, reason, payload FROM audit_outbox_dead ORDER BY seq")) {
          out.push_back(row[0].as<std::string>());
          out.push_back(row[1].as<std::string>());
          out.push_back(pqxx::binarystring(row[2]).str());
        }
        return out;
      });
  ASSERT_THAT(dead, IsOk());
  ASSERT_EQ(dead->size(), 6u);
  EXPECT_EQ((*dead)[0], ids[1]);
  EXPECT_EQ((*dead)[1], "DATA_LOSS");
  EXPECT_EQ((*dead)[2], tampered);  // kept as it was, still sealed
  EXPECT_EQ((*dead)[3], foreign_id);
  EXPECT_FALSE(absl::StrContains((*dead)[5], kMarker));

  EXPECT_EQ(relay.Stats().dead_lettered, 2u);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_events_dead_lettered_total"), 2);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_events_shipped_total"), 3);
  int dead_lines = 0;
  absl::MutexLock lock(&log_mu);
  for (const std::string& line : log_lines) {
    if (!absl::StrContains(line, "outbox.dead_lettered")) continue;
    ++dead_lines;
    EXPECT_THAT(line, Not(HasSubstr(kMarker)));
  }
  EXPECT_EQ(dead_lines, 2);
  EXPECT_TRUE(absl::StrContains(absl::StrJoin(log_lines, "\n"), foreign_id));
}

TEST_F(OutboxTest, DeadLetteringIsUndoneWhenTheBatchFails) {
  std::vector<std::string> ids = EnqueueN(0, 2);
  ASSERT_THAT(pool_->Transact([&](pqxx::work& tx) {
    tx.exec_params("UPDATE audit_outbox SET payload = '\\x00'::bytea WHERE event_id = $1::uuid",
                   ids[0]);
    return absl::OkStatus();
  }),
              IsOk());
  FakeSink sink;
  sink.FailTimes(1);
  Relay relay(*pool_, key_.Copy(), sink, clock_, TestOptions());
  EXPECT_THAT(relay.RunOnce(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(CountRows("audit_outbox"), 2);
  EXPECT_EQ(CountRows("audit_outbox_dead"), 0);
  EXPECT_EQ(relay.Stats().dead_lettered, 0u);
  CRM_ASSERT_OK_AND_ASSIGN(CycleResult result, relay.RunOnce());
  EXPECT_EQ(result.dead_lettered, 1);
  EXPECT_THAT(sink.ids(), ElementsAre(ids[1]));
  EXPECT_EQ(CountRows("audit_outbox_dead"), 1);
}

TEST_F(OutboxTest, MetricsReportPendingLagAndFailures) {
  prometheus::Registry registry;
  FakeSink sink;
  Relay relay(*pool_, key_.Copy(), sink, clock_, TestOptions(), &registry);
  CRM_ASSERT_OK_AND_ASSIGN(CycleResult idle, relay.RunOnce());
  EXPECT_EQ(idle.shipped, 0);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_pending_events"), 0);

  EnqueueN(0, 3);
  clock_.Advance(absl::Seconds(90));
  EnqueueN(3, 1);
  clock_.Advance(absl::Seconds(10));
  sink.FailTimes(1);
  EXPECT_THAT(relay.RunOnce(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(MetricValue(registry, "crm_outbox_pending_events"), 4);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_lag_seconds"), 100);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_batches_failed_total"), 1);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_events_shipped_total"), 0);
  EXPECT_EQ(relay.Stats().lag, absl::Seconds(100));

  RelayOptions small = TestOptions();
  small.batch_size = 3;
  Relay partial(*pool_, key_.Copy(), sink, clock_, small, &registry);
  CRM_ASSERT_OK_AND_ASSIGN(CycleResult first, partial.RunOnce());
  EXPECT_TRUE(first.full_batch);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_pending_events"), 1);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_lag_seconds"), 10);  // the one left

  CRM_ASSERT_OK_AND_ASSIGN(CycleResult rest, relay.RunOnce());
  EXPECT_FALSE(rest.full_batch);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_pending_events"), 0);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_lag_seconds"), 0);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_events_shipped_total"), 4);  // shared family
  EXPECT_EQ(relay.Stats().pending, 0);
}

TEST_F(OutboxTest, ASecondRelayDoesNotShipWhileTheFirstHoldsTheBatch) {
  std::vector<std::string> ids = EnqueueN(0, 3);
  FakeSink slow;
  absl::Notification release;
  slow.BlockOn(&release);
  Relay first(*pool_, key_.Copy(), slow, clock_, TestOptions());
  absl::StatusOr<CycleResult> first_result;
  std::thread t([&] { first_result = first.RunOnce(); });
  ASSERT_TRUE(PollUntil([&] { return slow.entered(); }));

  FakeSink other;
  Relay second(*pool_, key_.Copy(), other, clock_, TestOptions());
  absl::StatusOr<CycleResult> second_result = second.RunOnce();
  release.Notify();
  t.join();
  ASSERT_THAT(second_result, IsOk());
  EXPECT_TRUE(second_result->busy);
  EXPECT_EQ(second_result->shipped, 0);
  EXPECT_EQ(other.calls(), 0);
  ASSERT_THAT(first_result, IsOk());
  EXPECT_EQ(first_result->shipped, 3);
  EXPECT_THAT(slow.ids(), ElementsAreArray(ids));
}

TEST_F(OutboxTest, StartRejectsBadOptionsAndKeys) {
  FakeSink sink;
  RelayOptions bad = TestOptions();
  bad.batch_size = 0;
  Relay a(*pool_, key_.Copy(), sink, clock_, bad);
  EXPECT_THAT(a.Start(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch_size")));
  bad = TestOptions();
  bad.max_backoff = absl::Milliseconds(1);
  Relay b(*pool_, key_.Copy(), sink, clock_, bad);
  EXPECT_THAT(b.Start(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_backoff")));
  bad = TestOptions();
  bad.jitter = 1.5;
  Relay c(*pool_, key_.Copy(), sink, clock_, bad);
  EXPECT_THAT(c.Start(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("jitter")));
  Relay d(*pool_, crypto::RandomSecret(31), sink, clock_, TestOptions());
  EXPECT_THAT(d.Start(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outbox key")));
  Relay e(*pool_, key_.Copy(), sink, clock_, TestOptions());
  ASSERT_THAT(e.Start(), IsOk());
  EXPECT_THAT(e.Start(), StatusIs(absl::StatusCode::kFailedPrecondition));
  e.Stop();
  e.Stop();  // idempotent
  EXPECT_THAT(e.Start(), StatusIs(absl::StatusCode::kFailedPrecondition));
  Relay f(*pool_, key_.Copy(), sink, clock_, TestOptions());
  f.Stop();  // never started: nothing to do, and it stays stopped
  EXPECT_THAT(f.Start(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(BackoffTest, DoublesFromMinToMaxAndJitterOnlyShortens) {
  RelayOptions o{
      .min_backoff = absl::Milliseconds(100), .max_backoff = absl::Seconds(1), .jitter = 0.5};
  EXPECT_EQ(internal::Backoff(o, 1, 0.0), absl::Milliseconds(100));
  EXPECT_EQ(internal::Backoff(o, 2, 0.0), absl::Milliseconds(200));
  EXPECT_EQ(internal::Backoff(o, 4, 0.0), absl::Milliseconds(800));
  EXPECT_EQ(internal::Backoff(o, 5, 0.0), absl::Seconds(1));
  EXPECT_EQ(internal::Backoff(o, 1000, 0.0), absl::Seconds(1));
  EXPECT_EQ(internal::Backoff(o, 2, 1.0), absl::Milliseconds(100));
  EXPECT_EQ(internal::Backoff(o, 1000, 0.5), absl::Milliseconds(750));
}

}  // namespace
}  // namespace crm::outbox
