// The outbox end to end over real mutual TLS: a Writer and Relay of service
// "contacts" on a real PostgreSQL, shipping through GrpcSink and libs/rpc's
// MakeChannel to an in-test AuditIngest served by ServerRunner with a
// throwaway PKI. The audit side records events and deduplicates by id, as the
// real audit service does.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "crm/audit/v1/ingest.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/primitives.h"
#include "libs/outbox/grpc_sink.h"
#include "libs/outbox/relay.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"

namespace crm::outbox {
namespace {

using ::crm::audit::v1::AppendEventsRequest;
using ::crm::audit::v1::AppendEventsResponse;
using ::crm::audit::v1::AuditIngest;
using ::crm::audit::v1::Event;
using ::crm::rpc::testing::TestPki;
using ::crm::testing::IsOk;
using ::crm::testing::PgTestDatabase;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr char kAppendMethod[] = "/crm.audit.v1.AuditIngest/AppendEvents";

template <typename F>
bool PollUntil(F done) {
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (absl::Now() < until) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

// A loopback port nobody listens on right now (bound, then released).
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

double MetricValue(prometheus::Registry& registry, const std::string& name) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name || family.metric.empty()) continue;
    const prometheus::ClientMetric& m = family.metric[0];
    return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return -1;
}

// Audit's ingestion as far as the outbox can tell: records each event id once
// in arrival order, counts everything received. With drop_acks > 0 it records
// a batch but answers UNAVAILABLE, as if the acknowledgement were lost.
class RecordingAudit final : public AuditIngest::Service {
 public:
  grpc::Status AppendEvents(grpc::ServerContext* context, const AppendEventsRequest* request,
                            AppendEventsResponse* response) override {
    absl::MutexLock lock(&mu_);
    callers_.insert(rpc::PeerName(*context));
    for (const Event& e : request->events()) {
      ++received_;
      if (seen_.insert(e.event_id()).second) {
        stored_.push_back(e);
        response->set_appended(response->appended() + 1);
      } else {
        response->set_duplicates(response->duplicates() + 1);
      }
    }
    if (drop_acks_ > 0) {
      --drop_acks_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "acknowledgement lost");
    }
    return grpc::Status::OK;
  }

  void DropAcks(int n) {
    absl::MutexLock lock(&mu_);
    drop_acks_ = n;
  }
  std::vector<Event> stored() const {
    absl::MutexLock lock(&mu_);
    return stored_;
  }
  int received() const {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  std::set<std::string> callers() const {
    absl::MutexLock lock(&mu_);
    return callers_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Event> stored_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> callers_ ABSL_GUARDED_BY(mu_);
  int received_ ABSL_GUARDED_BY(mu_) = 0;
  int drop_acks_ ABSL_GUARDED_BY(mu_) = 0;
};

class OutboxIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(db_, PgTestDatabase::Create("outbox_e2e"));
    CRM_ASSERT_OK_AND_ASSIGN(
        pool_, pg::Pool::Create({.conninfo = db_->conninfo()}, base::RealClock::Get()));
    ASSERT_THAT(EnsureSchema(*pool_), IsOk());
    CRM_ASSERT_OK_AND_ASSIGN(TestPki pki, TestPki::Create({"audit", "contacts", "mailing"}));
    pki_ = std::make_unique<TestPki>(std::move(pki));
    key_ = crypto::RandomSecret(crypto::kAes256KeySize);
  }

  std::unique_ptr<rpc::ServerRunner> StartAudit(int port) {
    rpc::ServerConfig config;
    config.service = "audit";
    config.listen = absl::StrCat("127.0.0.1:", port);
    config.metrics_listen = "";
    config.tls = pki_->Files("audit");
    config.handle_signals = false;
    config.shutdown_grace = absl::Seconds(1);
    rpc::AccessPolicy policy;
    policy.Allow(kAppendMethod, {"contacts"});
    auto runner = std::make_unique<rpc::ServerRunner>(config, std::move(policy));
    runner->RegisterService(&audit_);
    const absl::Status s = runner->Start();
    EXPECT_THAT(s, IsOk());
    return s.ok() ? std::move(runner) : nullptr;
  }

  std::shared_ptr<grpc::Channel> ChannelAs(const std::string& identity, int port) {
    rpc::ChannelConfig config;
    config.target = absl::StrCat("127.0.0.1:", port);
    config.tls = pki_->Files(identity);
    config.expected_server = "audit";
    config.max_attempts = 1;  // the relay does its own retrying
    auto channel = rpc::MakeChannel(config);
    EXPECT_THAT(channel, IsOk());
    return channel.ok() ? *channel : nullptr;
  }

  static RelayOptions FastOptions() {
    return RelayOptions{.batch_size = 8,
                        .poll_interval = absl::Milliseconds(50),
                        .min_backoff = absl::Milliseconds(20),
                        .max_backoff = absl::Milliseconds(200),
                        .jitter = 0.5};
  }

  std::unique_ptr<PgTestDatabase> db_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<TestPki> pki_;
  crypto::SecretBytes key_;
  RecordingAudit audit_;
};

TEST_F(OutboxIntegrationTest, EventsWrittenWhileAuditIsDownAllArriveOnceInOrderAfterItComesBack) {
  const int port = UnusedPort();
  ASSERT_NE(port, 0);
  prometheus::Registry registry;
  GrpcSink sink(ChannelAs("contacts", port), {.deadline = absl::Seconds(5)});
  Relay relay(*pool_, key_.Copy(), sink, base::RealClock::Get(), FastOptions(), &registry);
  ASSERT_THAT(relay.Start(), IsOk());

  // 50 events in 5 transactions while nothing listens.
  Writer writer("contacts", key_.Copy(), base::RealClock::Get());
  std::vector<std::string> ids;
  for (int tx = 0; tx < 5; ++tx) {
    std::vector<std::string> batch;
    ASSERT_THAT(pool_->Transact([&](pqxx::work& work) -> absl::Status {
      batch.clear();
      for (int i = 0; i < 10; ++i) {
        Event e;
        e.set_action("person.update");
        e.set_resource(absl::StrCat("person/", tx * 10 + i));
        e.set_source_address("192.0.2.7");
        std::string id;
        CRM_RETURN_IF_ERROR(writer.Enqueue(work, std::move(e), &id));
        batch.push_back(id);
      }
      return absl::OkStatus();
    }),
                IsOk());
    ids.insert(ids.end(), batch.begin(), batch.end());
    relay.Notify();
  }

  // They stay pending while the relay fails and backs off.
  ASSERT_TRUE(PollUntil([&] {
    const RelayStats s = relay.Stats();
    return s.batches_failed >= 3 && s.pending == 50;
  }));
  EXPECT_THAT(relay.Stats().last_error, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(relay.Stats().events_shipped, 0u);
  EXPECT_EQ(MetricValue(registry, "crm_outbox_pending_events"), 50);
  EXPECT_GE(MetricValue(registry, "crm_outbox_batches_failed_total"), 3);

  // Audit comes up; its first acknowledgement gets lost, so one batch is sent twice.
  audit_.DropAcks(1);
  std::unique_ptr<rpc::ServerRunner> server = StartAudit(port);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(PollUntil([&] { return relay.Stats().events_shipped == 50; }))
      << "shipped " << relay.Stats().events_shipped << ", last error " << relay.Stats().last_error;
  ASSERT_TRUE(PollUntil([&] {
    return MetricValue(registry, "crm_outbox_pending_events") == 0 &&
           MetricValue(registry, "crm_outbox_lag_seconds") == 0;
  }));
  relay.Stop();

  std::vector<std::string> stored_ids;
  for (const Event& e : audit_.stored()) {
    stored_ids.push_back(e.event_id());
    EXPECT_EQ(e.service(), "contacts");
    EXPECT_EQ(e.source_address(), "192.0.2.7");
  }
  EXPECT_THAT(stored_ids, ElementsAreArray(ids));  // 50 distinct, in enqueue order
  EXPECT_GT(audit_.received(), 50);                // the resent batch was deduplicated
  EXPECT_THAT(audit_.callers(), ElementsAre("contacts"));
  EXPECT_EQ(MetricValue(registry, "crm_outbox_events_shipped_total"), 50);
  const RelayStats s = relay.Stats();
  EXPECT_EQ(s.pending, 0);
  EXPECT_EQ(s.lag, absl::ZeroDuration());
  EXPECT_EQ(s.consecutive_failures, 0);

  server->Shutdown();
  EXPECT_THAT(server->Wait(), IsOk());
}

TEST_F(OutboxIntegrationTest, ACallerNotOnAuditsAllowlistIsRefusedAndKeepsItsEvents) {
  std::unique_ptr<rpc::ServerRunner> server = StartAudit(0);
  ASSERT_NE(server, nullptr);
  GrpcSink sink(ChannelAs("mailing", server->port()));
  Writer writer("mailing", key_.Copy(), base::RealClock::Get());
  ASSERT_THAT(pool_->Transact([&](pqxx::work& tx) {
    Event e;
    e.set_action("list.subscribe");
    return writer.Enqueue(tx, std::move(e));
  }),
              IsOk());
  Relay relay(*pool_, key_.Copy(), sink, base::RealClock::Get(), FastOptions());
  EXPECT_THAT(relay.RunOnce(), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(relay.Stats().pending, 1);
  EXPECT_TRUE(audit_.stored().empty());
  server->Shutdown();
  EXPECT_THAT(server->Wait(), IsOk());
}

}  // namespace
}  // namespace crm::outbox
