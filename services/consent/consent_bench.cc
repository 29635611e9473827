// Consent end to end against its baselines (issue 6):
//   - Check (cached) throughput at least 80% of the bare mTLS echo, same
//     client and concurrency; p99 under 2 ms at half of peak;
//   - BatchCheck of 10,000 subjects under 20 ms.
//
// The binary starts its own PostgreSQL and Redis (BenchEnv), serves
// ConsentService as main.cc wires it (Redis check cache, outbox, real
// ApiAuth) and the platform's Echo service on the same ServerRunner over
// mutual TLS, and calls both through one gRPC channel over mTLS loopback with
// an access token (Echo ignores it): same client, same server stack. Set-up
// defines a consent purpose, publishes its notice, grants it for --subjects
// subjects through the API (half of them then withdraw) and checks each once,
// so the cache holds every standing; then VACUUM ANALYZE. Redis holds
// identity's "revocation set complete" mark, as in production.
//
//   BM_CheckCached/threads:C    Check of a random subject, C client threads
//   BM_Echo/threads:C           baseline: Echo of a 60-byte message, same
//                               channel and threads
//   BM_CheckAtHalfPeak          peak with C threads for 3 s, then Check paced
//                               at half of it for --seconds; then Echo at the
//                               same rate (base_p99_ms), then Check's floor
//                               (floor_p99_ms); latency from each call's
//                               scheduled start
//   BM_BatchCheck10000          one BatchCheck of 10,000 subjects per iteration
//   BM_StandingsQuery10000      baseline: the query BatchCheck runs
//                               (ConsentStore::Standings), straight through a
//                               pooled connection
//
// Check's floor: what gRPC and the cache alone cost a cached check. A
// second server in this process (a ServerRunner with the same mTLS, policy
// and thread settings; Check's server idles meanwhile) whose Echo is a
// callback method, as Check is, that reads the subject's cached standing
// through the same CheckCache (GetAsync: one GET on the Redis client's async
// connection) and answers from the callback. No token check, no request
// validation, no decision.
//
// Defaults: --subjects=10000 --clients=8 --seconds=10. Run:
// tools/bench rpc, or build-release/bench/consent_bench.
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/nontransaction>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/testing/v1/echo.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/redis/client.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/bench_env.h"
#include "libs/testing/bench_latency.h"
#include "libs/testing/bench_ratio.h"
#include "libs/testing/pg_test_database.h"
#include "services/consent/check_cache.h"
#include "services/consent/consent_service.h"
#include "services/consent/consent_store.h"

#ifndef CRM_SOURCE_DIR
#error "CRM_SOURCE_DIR must name the source tree (services/consent/CMakeLists.txt sets it)"
#endif

namespace crm::consent {
namespace {

using Stub = v1::Consent::Stub;
using EchoStub = crm::testing::v1::Echo::Stub;

constexpr char kAdmin[] = "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d";
constexpr char kShop[] = "1c7a2d4f-9e3b-4a6c-8d2e-3f4a5b6c7d8e";
constexpr int kBatch = 10'000;

struct Flags {
  int64_t subjects = 10'000;
  int64_t clients = 8;
  int64_t seconds = 10;
};
Flags flags;

struct Env {
  std::unique_ptr<crm::testing::BenchEnv> bench;
  std::unique_ptr<crm::testing::ApiTestBed> bed;
  crm::testing::MigratedDatabase db;
  std::optional<crypto::KeyRing> ring;
  std::unique_ptr<outbox::Writer> audit;
  std::unique_ptr<redis::Client> redis;
  std::unique_ptr<CheckCache> cache;
  std::unique_ptr<ConsentService> service;
  rpc::testing::EchoService echo;
  std::unique_ptr<rpc::ServerRunner> server;
  std::unique_ptr<Stub> stub;
  std::unique_ptr<EchoStub> echo_stub;
  std::unique_ptr<crm::testing::v1::Echo::CallbackService> floor;
  std::unique_ptr<rpc::ServerRunner> floor_server;
  std::unique_ptr<EchoStub> floor_stub;
  std::string admin, shop;
  std::vector<std::string> subjects;
};
Env* g = nullptr;

template <typename S, typename Req, typename Resp>
absl::Status Call(S& stub, grpc::Status (S::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                  const Req& request, Resp* response, const std::string& token) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  return base::FromGrpcStatus((stub.*rpc)(&ctx, request, response));
}

absl::Status Check(int64_t n) {
  v1::CheckRequest req;
  req.set_subject_id(g->subjects[n]);
  req.set_purpose_id("newsletter");
  v1::CheckResponse resp;
  CRM_RETURN_IF_ERROR(Call(*g->stub, &Stub::Check, req, &resp, g->shop));
  const v1::Reason want = n % 2 == 0 ? v1::REASON_GRANTED : v1::REASON_WITHDRAWN;
  if (resp.decision().reason() != want) return absl::InternalError("unexpected decision");
  return absl::OkStatus();
}

absl::Status Echo(int64_t) {
  crm::testing::v1::EchoRequest req;
  req.set_message(std::string(60, 'e'));
  crm::testing::v1::EchoResponse resp;
  return Call(*g->echo_stub, &EchoStub::Echo, req, &resp, g->shop);
}

// Check's floor (see the top): the message is a subject id.
class CheckFloor final : public crm::testing::v1::Echo::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx,
                                 const crm::testing::v1::EchoRequest* req,
                                 crm::testing::v1::EchoResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    g->cache->GetAsync(
        req->message(), "newsletter",
        [reactor, resp](std::optional<ConsentStore::Standing> standing) {
          if (!standing.has_value()) {
            reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "floor: not cached"));
            return;
          }
          resp->set_message("cached");
          reactor->Finish(grpc::Status::OK);
        });
    return reactor;
  }
};

absl::Status Floor(int64_t n) {
  crm::testing::v1::EchoRequest req;
  req.set_message(g->subjects[n]);
  crm::testing::v1::EchoResponse resp;
  return Call(*g->floor_stub, &EchoStub::Echo, req, &resp, g->shop);
}

// Grants for every subject (half withdraw again), 4 callers.
absl::Status Load(const std::string& notice) {
  g->subjects.resize(flags.subjects);
  for (std::string& s : g->subjects) s = base::NewUuid();
  std::atomic<int64_t> next{0};
  absl::Status failed;
  std::mutex mu;
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int64_t n; (n = next.fetch_add(1)) < flags.subjects;) {
        v1::Statement s;
        s.set_subject_id(g->subjects[n]);
        s.set_purpose_id("newsletter");
        s.set_notice_version(notice);
        s.set_method(v1::METHOD_WEB_FORM);
        s.set_source("shop");
        s.set_source_address("198.51.100.7");
        v1::GrantRequest grant;
        *grant.mutable_statement() = s;
        v1::GrantResponse granted;
        absl::Status st = Call(*g->stub, &Stub::Grant, grant, &granted, g->shop);
        if (st.ok() && n % 2 == 1) {
          v1::WithdrawRequest withdraw;
          *withdraw.mutable_statement() = s;
          v1::WithdrawResponse withdrawn;
          st = Call(*g->stub, &Stub::Withdraw, withdraw, &withdrawn, g->shop);
        }
        if (st.ok()) st = Check(n);  // fills the cache
        if (!st.ok()) {
          std::lock_guard<std::mutex> l(mu);
          failed = st;
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CRM_RETURN_IF_ERROR(failed);
  std::printf("loaded %lld subjects (grant, half withdrawn, one check each) in %.1f s\n",
              static_cast<long long>(flags.subjects), absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status Setup() {
  CRM_ASSIGN_OR_RETURN(g->bench, crm::testing::BenchEnv::Start("consent_bench", CRM_SOURCE_DIR));
  CRM_ASSIGN_OR_RETURN(g->bed, crm::testing::ApiTestBed::Create("consent", {"gateway"}));
  CRM_ASSIGN_OR_RETURN(g->db, crm::testing::CreateMigratedDatabase(
                                  "consent", "consent_bench",
                                  static_cast<int>(std::max<int64_t>(8, flags.clients + 4))));
  CRM_RETURN_IF_ERROR(outbox::EnsureSchema(*g->db.pool));
  std::vector<crypto::VersionedKey> keks;
  keks.push_back({.version = 1, .key = crypto::SecretBytes::CopyFrom(crypto::RandomBytes(32))});
  CRM_ASSIGN_OR_RETURN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
  g->ring.emplace(std::move(ring));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes outbox_key,
                       outbox::LoadOrCreateKey(*g->db.pool, *g->ring));
  base::Clock& clock = base::RealClock::Get();
  g->audit = std::make_unique<outbox::Writer>("consent", outbox_key.Copy(), clock);
  const crm::testing::RedisTestServer& r = g->bench->env().redis();
  CRM_ASSIGN_OR_RETURN(
      g->redis, redis::Client::Create(
                    {.host = r.host, .port = r.port, .password = r.password, .max_size = 16}));
  g->cache = std::make_unique<CheckCache>(g->redis.get(), absl::Seconds(600), nullptr);
  g->service = std::make_unique<ConsentService>(ConsentDeps{.db = *g->db.pool,
                                                            .ring = *g->ring,
                                                            .verifier = g->bed->auth().verifier(),
                                                            .audit = *g->audit,
                                                            .clock = clock,
                                                            .cache = g->cache.get()});
  rpc::AccessPolicy policy;
  CRM_RETURN_IF_ERROR(AllowConsentMethods(policy));
  policy.AllowService(crm::testing::v1::Echo::service_full_name());
  CRM_ASSIGN_OR_RETURN(g->server,
                       g->bed->Serve("consent", std::move(policy), {g->service.get(), &g->echo}));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       g->bed->Channel("gateway", g->server->port(), "consent"));
  g->stub = v1::Consent::NewStub(channel);
  g->echo_stub = crm::testing::v1::Echo::NewStub(channel);
  rpc::AccessPolicy floor_policy;
  floor_policy.AllowService(crm::testing::v1::Echo::service_full_name());
  g->floor = std::make_unique<CheckFloor>();
  CRM_ASSIGN_OR_RETURN(g->floor_server,
                       g->bed->Serve("consent", std::move(floor_policy), {g->floor.get()}));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> floor_channel,
                       g->bed->Channel("gateway", g->floor_server->port(), "consent"));
  g->floor_stub = crm::testing::v1::Echo::NewStub(floor_channel);
  // As in production: token checks ask Redis alone.
  CRM_RETURN_IF_ERROR(g->bed->MarkRevocationsComplete());
  g->admin = g->bed->Token(kAdmin, {"consent.admin"});
  g->shop = g->bed->Token(kShop, {"consent.write", "consent.check"});

  v1::DefinePurposeRequest define;
  v1::Purpose* p = define.mutable_purpose();
  p->set_purpose_id("newsletter");
  p->set_basis(v1::LAWFUL_BASIS_CONSENT);
  p->set_description("Our monthly newsletter");
  p->set_direct_marketing(true);
  p->set_validity_days(730);
  v1::DefinePurposeResponse defined;
  CRM_RETURN_IF_ERROR(Call(*g->stub, &Stub::DefinePurpose, define, &defined, g->admin));
  v1::PublishNoticeRequest publish;
  publish.set_purpose_id("newsletter");
  publish.set_language("en");
  publish.set_text("We send a newsletter about our products once a month.");
  v1::PublishNoticeResponse published;
  CRM_RETURN_IF_ERROR(Call(*g->stub, &Stub::PublishNotice, publish, &published, g->admin));
  return Load(published.version());
}

void Teardown() {
  for (std::unique_ptr<rpc::ServerRunner>* server : {&g->server, &g->floor_server}) {
    if (*server != nullptr) (*server)->Shutdown();
    server->reset();
  }
  g->service.reset();
  g->db = {};
  g->bed.reset();
  g->bench.reset();
}

// ---- Benchmarks ---------------------------------------------------------------------

void RunCalls(benchmark::State& state, absl::Status (*call)(int64_t)) {
  int64_t n = state.thread_index() * 7919;
  for (auto _ : state) {
    n = (n + 104729) % flags.subjects;
    if (absl::Status s = call(n); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CheckCached(benchmark::State& state) { RunCalls(state, Check); }
void BM_Echo(benchmark::State& state) { RunCalls(state, Echo); }

void BM_CheckAtHalfPeak(benchmark::State& state) {
  crm::testing::MeasureAtHalfPeak(state, Check, Echo,
                                  {.population = flags.subjects,
                                   .threads = static_cast<int>(flags.clients),
                                   .peak_phase = absl::Seconds(3),
                                   .duration = absl::Seconds(flags.seconds),
                                   .more = {{"floor", Floor}}});
}

std::vector<std::string> BatchSubjects() {
  std::vector<std::string> out;
  for (int i = 0; i < kBatch; ++i) out.push_back(g->subjects[i % flags.subjects]);
  return out;
}

void BM_BatchCheck10000(benchmark::State& state) {
  v1::BatchCheckRequest req;
  req.set_purpose_id("newsletter");
  for (std::string& s : BatchSubjects()) req.add_subject_ids(std::move(s));
  for (auto _ : state) {
    v1::BatchCheckResponse resp;
    absl::Status s = Call(*g->stub, &Stub::BatchCheck, req, &resp, g->shop);
    if (s.ok() && resp.decisions_size() != kBatch) s = absl::InternalError("decisions missing");
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_StandingsQuery10000(benchmark::State& state) {
  const std::vector<std::string> subjects = BatchSubjects();
  for (auto _ : state) {
    absl::Status s = g->db.pool->WithConnection([&](pqxx::connection_base& c) -> absl::Status {
      pqxx::nontransaction tx(c);
      CRM_ASSIGN_OR_RETURN(std::vector<ConsentStore::Standing> st,
                           ConsentStore::Standings(tx, subjects, "newsletter"));
      if (st.size() != subjects.size()) return absl::InternalError("rows missing");
      return absl::OkStatus();
    });
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void Register() {
  const int clients = static_cast<int>(flags.clients);
  for (auto* b : {benchmark::RegisterBenchmark("BM_CheckCached", BM_CheckCached),
                  benchmark::RegisterBenchmark("BM_Echo", BM_Echo)}) {
    b->Threads(clients)->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("BM_CheckAtHalfPeak", BM_CheckAtHalfPeak)
      ->Iterations(1)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  for (auto* b : {benchmark::RegisterBenchmark("BM_BatchCheck10000", BM_BatchCheck10000),
                  benchmark::RegisterBenchmark("BM_StandingsQuery10000", BM_StandingsQuery10000)}) {
    b->UseRealTime()->Unit(benchmark::kMillisecond);
  }
}

void PrintRatios(const crm::testing::RatioReporter& r) {
  std::printf("\nRatios to the baselines of this run:\n");
  const std::string threads = absl::StrCat("/real_time/threads:", flags.clients);
  const auto* check = r.Find("BM_CheckCached" + threads);
  const auto* echo = r.Find("BM_Echo" + threads);
  if (check != nullptr && echo != nullptr && echo->items_per_second > 0) {
    std::printf(
        "  Check (cached) %.0f /s = %.2f x the mTLS echo (%.0f /s), %lld threads; goal >= "
        "0.80\n",
        check->items_per_second, check->items_per_second / echo->items_per_second,
        echo->items_per_second, static_cast<long long>(flags.clients));
  }
  if (const auto* l = r.Find("BM_CheckAtHalfPeak/iterations:1/manual_time"); l != nullptr) {
    auto at = [&](const char* k) {
      auto it = l->counters.find(k);
      return it == l->counters.end() ? 0.0 : it->second;
    };
    std::printf(
        "  Check at half of peak: %.0f /s (peak %.0f): p50 %.2f ms, p99 %.2f ms = %.2f x "
        "the echo's p99 at that rate (%.2f ms); goal p99 < 2 ms\n",
        at("rate_per_s"), at("peak_per_s"), at("p50_ms"), at("p99_ms"),
        at("base_p99_ms") > 0 ? at("p99_ms") / at("base_p99_ms") : 0, at("base_p99_ms"));
    std::printf(
        "    = %.2f x its floor's p99 at the same rate (%.2f ms, p50 %.2f ms): gRPC and one "
        "cached read, with no token check, validation or decision\n",
        at("floor_p99_ms") > 0 ? at("p99_ms") / at("floor_p99_ms") : 0, at("floor_p99_ms"),
        at("floor_p50_ms"));
  }
  r.PrintTimeRatio("BatchCheck of 10,000 (goal < 20 ms)", "BM_BatchCheck10000/real_time",
                   "BM_StandingsQuery10000/real_time", "its SQL");
}

}  // namespace
}  // namespace crm::consent

int main(int argc, char** argv) {
  using crm::consent::flags;
  crm::consent::Env env;
  crm::consent::g = &env;
  return crm::testing::RunBenchProgram(argc, argv,
                                       {.name = "consent_bench",
                                        .usage = "[--subjects=N] [--clients=N] [--seconds=N]",
                                        .defaults = {"--benchmark_min_time=3"},
                                        .flags = {{"subjects", &flags.subjects, 1},
                                                  {"clients", &flags.clients, 1},
                                                  {"seconds", &flags.seconds, 1}},
                                        .setup = crm::consent::Setup,
                                        .register_all = crm::consent::Register,
                                        .print_ratios = crm::consent::PrintRatios,
                                        .teardown = crm::consent::Teardown});
}
