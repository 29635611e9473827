// The erasure orchestrator against its baseline (issue 8): "one erasure
// across all services, verified and certified, p50 under 50 ms and p99 under
// 200 ms on this machine; 10,000 queued erasures completed in under 60 s".
//
// The binary starts its own PostgreSQL and Redis (BenchEnv). Four targets
// (audit, consent, contacts, mailing) are in-memory SubjectData services,
// each behind its own mTLS ServerRunner: every subject holds two categories
// until erased, and audit keeps a legally retained one, as the real audit
// does. Their own erasure costs (each a transaction or two in the real
// services, see contacts_bench and consent_bench) are not what is measured
// here: this is the orchestrator's part, on top of the calls it must make.
// The ErasureService (behind its ServerRunner, called over mTLS with a
// dsr.manage token) and Orchestrators run in process, on their own
// database, with the outbox as in production.
//
//   BM_OneErasure     SubmitErasure over gRPC, then the orchestrator's
//                     Advance of that request: plan (Describe x4), erase
//                     (Erase x4), verify (Describe x4), certificate
//                     (Ed25519), each step durable with its audit events.
//                     --samples requests one after another; p50 and p99 of
//                     their latencies (counters p50_ms, p99_ms).
//   BM_DirectFanOut   baseline: the same calls straight to the targets
//                     (Describe x4, Erase x4, Describe x4, each step's four
//                     in parallel) and an Ed25519 signature, nothing stored.
//   BM_Queued         --queued requests inserted as one batch (the queue),
//                     then --workers threads, an Orchestrator each, run
//                     rounds (SKIP LOCKED claims) until every one is
//                     completed. Wall time and requests/s.
//   BM_QueuedDirect   baseline: the same number of direct fan-outs on the
//                     same number of threads.
//
// Flags: --samples (default 500) --queued (10000) --workers (8). Run:
// tools/bench erasure, or build-release/bench/erasure_bench.
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/subject/v1/subject_data.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/server.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/bench_env.h"
#include "libs/testing/bench_ratio.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/unary_call.h"
#include "services/erasure/erasure_service.h"
#include "services/erasure/erasure_store.h"
#include "services/erasure/orchestrator.h"

#ifndef CRM_SOURCE_DIR
#error "CRM_SOURCE_DIR must name the source tree (services/erasure/CMakeLists.txt sets it)"
#endif

namespace crm::erasure {
namespace {

namespace sv1 = crm::subject::v1;

constexpr char kDpo[] = "5d2c0f4e-7a1b-4c3d-9e8f-0a1b2c3d4e5f";
const std::vector<std::string> kTargets = {"audit", "consent", "contacts", "mailing"};

struct Flags {
  int64_t samples = 500;
  int64_t queued = 10'000;
  int64_t workers = 8;
} flags;

// A target answering from memory (see the top of the file).
class MemoryTarget final : public sv1::SubjectData::Service {
 public:
  explicit MemoryTarget(std::string name) : name_(std::move(name)) {}

  grpc::Status DescribeSubjectData(grpc::ServerContext*, const sv1::DescribeSubjectDataRequest* req,
                                   sv1::DescribeSubjectDataResponse* resp) override {
    resp->set_service(name_);
    if (name_ == "audit") *resp->add_categories() = Retained();
    if (!Erased(req->subject_id())) {
      for (sv1::DataCategory& c : Held()) *resp->add_categories() = std::move(c);
    }
    return grpc::Status::OK;
  }
  grpc::Status ExportSubjectData(grpc::ServerContext*, const sv1::ExportSubjectDataRequest*,
                                 sv1::ExportSubjectDataResponse* resp) override {
    resp->set_service(name_);
    return grpc::Status::OK;
  }
  grpc::Status EraseSubjectData(grpc::ServerContext*, const sv1::EraseSubjectDataRequest* req,
                                sv1::EraseSubjectDataResponse* resp) override {
    resp->set_service(name_);
    bool first = false;
    {
      absl::MutexLock l(&mu_);
      first = erased_.insert(req->subject_id()).second;
    }
    for (sv1::DataCategory& c : Held()) {
      if (!first) c.set_record_count(0);  // already gone
      *resp->add_erased() = std::move(c);
    }
    if (name_ == "audit") *resp->add_retained() = Retained();
    resp->set_data_key_destroyed(true);
    rpc::SetTime(absl::Now(), resp->mutable_completed_at());
    return grpc::Status::OK;
  }

 private:
  bool Erased(const std::string& subject) {
    absl::MutexLock l(&mu_);
    return erased_.contains(subject);
  }
  static std::vector<sv1::DataCategory> Held() {
    std::vector<sv1::DataCategory> out(2);
    out[0].set_category("records");
    out[0].set_record_count(3);
    out[1].set_category("history");
    out[1].set_record_count(5);
    return out;
  }
  static sv1::DataCategory Retained() {
    sv1::DataCategory c;
    c.set_category("audit_events");
    c.set_record_count(7);
    c.set_legally_retained(true);
    c.set_retention_basis("accountability (GDPR Art. 5(2))");
    rpc::SetTime(absl::FromUnixSeconds(2'000'000'000), c.mutable_purge_after());
    return c;
  }
  const std::string name_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> erased_ ABSL_GUARDED_BY(mu_);
};

struct Env {
  std::unique_ptr<crm::testing::BenchEnv> bench;
  std::unique_ptr<crm::testing::ApiTestBed> bed;
  std::optional<crypto::KeyRing> ring;
  std::optional<crypto::Ed25519PrivateKey> key;
  std::vector<std::unique_ptr<MemoryTarget>> targets;
  std::vector<std::unique_ptr<rpc::ServerRunner>> target_servers;
  std::vector<Target> stubs;  // the orchestrator's view of the targets
  crm::testing::MigratedDatabase db;
  std::unique_ptr<outbox::Writer> audit;
  std::unique_ptr<ErasureService> service;
  std::unique_ptr<rpc::ServerRunner> server;
  std::unique_ptr<v1::Erasure::Stub> stub;
  std::string dpo;
};
Env* g = nullptr;

std::unique_ptr<Orchestrator> NewOrchestrator() {
  return std::make_unique<Orchestrator>(*g->db.pool, g->stubs, *g->key, *g->ring, nullptr,
                                        *g->audit, base::RealClock::Get(),
                                        OrchestratorOptions{.address_source = ""});
}

absl::Status Setup() {
  CRM_ASSIGN_OR_RETURN(g->bench, crm::testing::BenchEnv::Start("erasure_bench", CRM_SOURCE_DIR));
  std::vector<std::string> peers = kTargets;
  peers.push_back("operator");
  CRM_ASSIGN_OR_RETURN(g->bed, crm::testing::ApiTestBed::Create("erasure", peers));
  g->dpo = g->bed->Token(kDpo, {"dsr.manage"});
  std::vector<crypto::VersionedKey> keks;
  keks.push_back({.version = 1, .key = crypto::RandomSecret(32)});
  CRM_ASSIGN_OR_RETURN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
  g->ring.emplace(std::move(ring));
  CRM_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key, crypto::Ed25519PrivateKey::Generate());
  g->key.emplace(std::move(key));

  for (const std::string& name : kTargets) {
    g->targets.push_back(std::make_unique<MemoryTarget>(name));
    rpc::AccessPolicy policy;
    for (const char* m : {"DescribeSubjectData", "ExportSubjectData", "EraseSubjectData"}) {
      policy.Allow(absl::StrCat("/crm.subject.v1.SubjectData/", m), {"erasure"});
    }
    CRM_ASSIGN_OR_RETURN(std::unique_ptr<rpc::ServerRunner> server,
                         g->bed->Serve(name, std::move(policy), {g->targets.back().get()}));
    CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                         g->bed->Channel("erasure", server->port(), name));
    g->stubs.push_back({.service = name, .stub = sv1::SubjectData::NewStub(channel)});
    g->target_servers.push_back(std::move(server));
  }

  CRM_ASSIGN_OR_RETURN(g->db, crm::testing::CreateMigratedDatabase(
                                  "erasure", "erasure_bench", static_cast<int>(flags.workers + 4)));
  CRM_RETURN_IF_ERROR(outbox::EnsureSchema(*g->db.pool));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes outbox_key,
                       outbox::LoadOrCreateKey(*g->db.pool, *g->ring));
  g->audit = std::make_unique<outbox::Writer>("erasure", outbox_key.Copy(), base::RealClock::Get());
  g->service = std::make_unique<ErasureService>(ErasureDeps{.db = *g->db.pool,
                                                            .verifier = g->bed->auth().verifier(),
                                                            .audit = *g->audit,
                                                            .clock = base::RealClock::Get(),
                                                            .certificate_key = g->key->PublicKey(),
                                                            .targets = kTargets});
  rpc::AccessPolicy policy;
  policy.AllowService(v1::Erasure::service_full_name());
  CRM_ASSIGN_OR_RETURN(g->server, g->bed->Serve("erasure", std::move(policy), {g->service.get()}));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       g->bed->Channel("operator", g->server->port(), "erasure"));
  g->stub = v1::Erasure::NewStub(channel);
  return absl::OkStatus();
}

void Teardown() {
  if (g->server != nullptr) g->server->Shutdown();
  for (auto& s : g->target_servers) s->Shutdown();
  g->stub.reset();
  g->stubs.clear();
  g->server.reset();
  g->target_servers.clear();
  g->service.reset();
  g->db = {};
  g->bed.reset();
  g->bench.reset();
}

// ---- Helpers -----------------------------------------------------------------------

// Runs `work(t)` on `n` threads; the first error.
absl::Status OnThreads(int n, const std::function<absl::Status(int)>& work) {
  std::mutex mu;
  absl::Status first;
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      absl::Status s = work(t);
      std::lock_guard<std::mutex> l(mu);
      if (!s.ok() && first.ok()) first = s;
    });
  }
  for (std::thread& t : threads) t.join();
  return first;
}

// One of the baseline's steps: `call` on every target at once.
template <typename Req, typename Resp>
absl::Status FanOut(void (sv1::SubjectData::StubInterface::async_interface::*call)(
                        grpc::ClientContext*, const Req*, Resp*, std::function<void(grpc::Status)>),
                    const Req& req) {
  const size_t n = g->stubs.size();
  std::vector<grpc::ClientContext> ctx(n);
  std::vector<Resp> resp(n);
  std::vector<grpc::Status> status(n);
  absl::BlockingCounter left(static_cast<int>(n));
  for (size_t i = 0; i < n; ++i) {
    ctx[i].set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    (g->stubs[i].stub->async()->*call)(&ctx[i], &req, &resp[i], [&, i](grpc::Status s) {
      status[i] = std::move(s);
      left.DecrementCount();
    });
  }
  left.Wait();
  for (const grpc::Status& s : status) {
    if (!s.ok()) return absl::UnavailableError(s.error_message());
  }
  return absl::OkStatus();
}

// The baseline for one subject: what the orchestrator must at least do.
absl::Status DirectErasure(const std::string& subject) {
  using Async = sv1::SubjectData::StubInterface::async_interface;
  sv1::DescribeSubjectDataRequest describe;
  describe.set_subject_id(subject);
  sv1::EraseSubjectDataRequest erase;
  erase.set_request_id(base::NewUuid());
  erase.set_subject_id(subject);
  CRM_RETURN_IF_ERROR(FanOut(&Async::DescribeSubjectData, describe));
  CRM_RETURN_IF_ERROR(FanOut(&Async::EraseSubjectData, erase));
  CRM_RETURN_IF_ERROR(FanOut(&Async::DescribeSubjectData, describe));
  return g->key->Sign(std::string(1500, 'c')).status();  // a certificate's size
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void Latencies(benchmark::State& state, const std::vector<double>& ms) {
  state.counters["p50_ms"] = Percentile(ms, 0.50);
  state.counters["p99_ms"] = Percentile(ms, 0.99);
  state.counters["samples"] = static_cast<double>(ms.size());
}

// ---- Benchmarks --------------------------------------------------------------------

void BM_OneErasure(benchmark::State& state) {
  std::unique_ptr<Orchestrator> orchestrator = NewOrchestrator();
  for (auto _ : state) {
    std::vector<double> ms;
    const absl::Time start = absl::Now();
    for (int i = 0; i < flags.samples; ++i) {
      const absl::Time t0 = absl::Now();
      v1::SubmitErasureRequest submit;
      submit.set_subject_id(base::NewUuid());
      submit.set_reason(v1::ERASURE_REASON_SUBJECT_REQUEST);
      absl::StatusOr<v1::SubmitErasureResponse> r =
          crm::testing::UnaryCall(*g->stub, &v1::Erasure::Stub::SubmitErasure, submit, g->dpo);
      AdvanceStats stats;
      absl::Status s =
          r.ok() ? orchestrator->Advance(r->request().request_id(), stats) : r.status();
      if (s.ok() && stats.completed != 1) s = absl::InternalError("the request did not complete");
      if (!s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
    state.SetItemsProcessed(flags.samples);
    Latencies(state, ms);
  }
}

void BM_DirectFanOut(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<double> ms;
    const absl::Time start = absl::Now();
    for (int i = 0; i < flags.samples; ++i) {
      const absl::Time t0 = absl::Now();
      if (absl::Status s = DirectErasure(base::NewUuid()); !s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
    state.SetItemsProcessed(flags.samples);
    Latencies(state, ms);
  }
}

// Inserts `n` received requests (the queue), as SubmitErasure would.
absl::Status Enqueue(int64_t n) {
  const absl::Time now = absl::Now();
  for (int64_t done = 0; done < n;) {
    const int64_t batch = std::min<int64_t>(1000, n - done);
    CRM_RETURN_IF_ERROR(g->db.pool->Transact([&](pqxx::work& tx) -> absl::Status {
      for (int64_t i = 0; i < batch; ++i) {
        v1::ErasureRequest r;
        r.set_request_id(base::NewUuid());
        r.set_subject_id(base::NewUuid());
        r.set_kind(v1::KIND_ERASURE);
        r.set_reason(v1::ERASURE_REASON_RETENTION);
        r.set_requester(kDpo);
        rpc::SetTime(now, r.mutable_received_at());
        rpc::SetTime(now, r.mutable_not_before());
        rpc::SetTime(AddMonths(now, 1), r.mutable_due_at());
        CRM_RETURN_IF_ERROR(ErasureStore::Insert(tx, r, kTargets).status());
      }
      return absl::OkStatus();
    }));
    done += batch;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> OpenRequests() {
  return g->db.pool->TransactValue<int64_t>([](pqxx::work& tx) -> absl::StatusOr<int64_t> {
    return tx.exec1("SELECT count(*) FROM requests WHERE state BETWEEN 1 AND 4")[0].as<int64_t>();
  });
}

void BM_Queued(benchmark::State& state) {
  for (auto _ : state) {
    if (absl::Status s = Enqueue(flags.queued); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    std::atomic<int64_t> completed{0};
    const absl::Time start = absl::Now();
    absl::Status s = OnThreads(static_cast<int>(flags.workers), [&](int) -> absl::Status {
      std::unique_ptr<Orchestrator> orchestrator = NewOrchestrator();
      for (;;) {
        CRM_ASSIGN_OR_RETURN(AdvanceStats round, orchestrator->RunOnce());
        completed += round.completed;
        if (round.claimed == 0) return absl::OkStatus();
      }
    });
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    absl::StatusOr<int64_t> open = OpenRequests();
    if (s.ok() && !open.ok()) s = open.status();
    if (s.ok() && (*open != 0 || completed.load() != flags.queued)) {
      s = absl::InternalError(
          absl::StrCat(*open, " requests still open, ", completed.load(), " completed"));
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    state.SetIterationTime(seconds);
    state.SetItemsProcessed(flags.queued);
    state.counters["seconds"] = seconds;
  }
}

void BM_QueuedDirect(benchmark::State& state) {
  for (auto _ : state) {
    std::atomic<int64_t> next{0};
    const absl::Time start = absl::Now();
    absl::Status s = OnThreads(static_cast<int>(flags.workers), [&](int) -> absl::Status {
      while (next.fetch_add(1) < flags.queued) CRM_RETURN_IF_ERROR(DirectErasure(base::NewUuid()));
      return absl::OkStatus();
    });
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    state.SetIterationTime(seconds);
    state.SetItemsProcessed(flags.queued);
    state.counters["seconds"] = seconds;
  }
}

void Register() {
  for (auto* b : {benchmark::RegisterBenchmark("BM_OneErasure", BM_OneErasure),
                  benchmark::RegisterBenchmark("BM_DirectFanOut", BM_DirectFanOut),
                  benchmark::RegisterBenchmark("BM_Queued", BM_Queued),
                  benchmark::RegisterBenchmark("BM_QueuedDirect", BM_QueuedDirect)}) {
    b->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  }
}

void PrintRatios(const crm::testing::RatioReporter& r) {
  auto counter = [](const crm::testing::RatioReporter::Figures* f, const char* k) {
    if (f == nullptr) return 0.0;
    auto it = f->counters.find(k);
    return it == f->counters.end() ? 0.0 : it->second;
  };
  const auto* one = r.Find("BM_OneErasure/iterations:1/manual_time");
  const auto* direct = r.Find("BM_DirectFanOut/iterations:1/manual_time");
  const auto* queued = r.Find("BM_Queued/iterations:1/manual_time");
  const auto* queued_direct = r.Find("BM_QueuedDirect/iterations:1/manual_time");
  std::printf("\nRatios (%lld samples; %lld queued, %lld workers):\n",
              static_cast<long long>(flags.samples), static_cast<long long>(flags.queued),
              static_cast<long long>(flags.workers));
  if (one != nullptr && direct != nullptr) {
    std::printf(
        "  one erasure p50 %.2f ms (goal 50: %.2f x), p99 %.2f ms (goal 200: %.2f x); "
        "= %.2f x / %.2f x the direct fan-out's p50 %.2f / p99 %.2f ms\n",
        counter(one, "p50_ms"), counter(one, "p50_ms") / 50, counter(one, "p99_ms"),
        counter(one, "p99_ms") / 200, counter(one, "p50_ms") / counter(direct, "p50_ms"),
        counter(one, "p99_ms") / counter(direct, "p99_ms"), counter(direct, "p50_ms"),
        counter(direct, "p99_ms"));
  }
  if (queued != nullptr && queued_direct != nullptr) {
    std::printf(
        "  %lld queued erasures in %.1f s (goal 60 s: %.2f x) = %.2f x the direct fan-outs' "
        "%.1f s\n",
        static_cast<long long>(flags.queued), counter(queued, "seconds"),
        counter(queued, "seconds") / 60,
        counter(queued, "seconds") / counter(queued_direct, "seconds"),
        counter(queued_direct, "seconds"));
  }
}

}  // namespace
}  // namespace crm::erasure

int main(int argc, char** argv) {
  using crm::erasure::flags;
  crm::erasure::Env env;
  crm::erasure::g = &env;
  return crm::testing::RunBenchProgram(argc, argv,
                                       {.name = "erasure_bench",
                                        .usage = "[--samples=N (>= 10)] [--queued=N] [--workers=N]",
                                        .flags = {{"samples", &flags.samples, 10},
                                                  {"queued", &flags.queued, 1},
                                                  {"workers", &flags.workers, 1}},
                                        .setup = crm::erasure::Setup,
                                        .register_all = crm::erasure::Register,
                                        .print_ratios = crm::erasure::PrintRatios,
                                        .teardown = crm::erasure::Teardown});
}
