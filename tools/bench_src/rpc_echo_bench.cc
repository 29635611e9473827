// The baseline every service benchmark is compared with: unary Echo calls
// over our full mutual-TLS stack (ServerRunner with access policy, request
// ids, metrics; MakeChannel with retries and the request-id interceptor), in
// process on loopback, with N calls kept in flight by the callback API on one
// channel. Reports calls/s and p50/p99 latency (microseconds).
//
// Its own baseline, measured in the same run: the same Echo service on a bare
// grpc::Server with insecure credentials and nothing of ours around it
// (BM_UnaryEchoBareInsecure). The ratio of the two is what our stack (TLS,
// policy, metrics, request ids) costs per call.
//
//   build-release/bench/rpc_echo_bench [--benchmark_filter=...]
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "libs/base/runtime.h"
#include "libs/log/log.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/rpc/testing/test_pki.h"

namespace crm::rpc {
namespace {

using ::crm::testing::v1::Echo;
using ::crm::testing::v1::EchoRequest;
using ::crm::testing::v1::EchoResponse;

// Calls per benchmark iteration, spread over the in-flight slots.
constexpr int kCallsPerIteration = 2000;

struct Fixture {
  std::unique_ptr<testing::TestPki> pki;
  testing::EchoService service;
  std::unique_ptr<ServerRunner> runner;
  std::unique_ptr<Echo::Stub> stub;
  // The baseline: the same service, bare gRPC, plaintext on loopback.
  testing::EchoService bare_service;
  std::unique_ptr<grpc::Server> bare_server;
  std::unique_ptr<Echo::Stub> bare_stub;
};

Fixture& GetFixture() {
  static Fixture* fixture = [] {
    crm::log::SetMinLevel(crm::log::Level::kWarn);
    crm::base::ConfigureServerRuntime();  // as the services' mains do
    auto* f = new Fixture();
    absl::StatusOr<testing::TestPki> pki = testing::TestPki::Create({"bench", "client"});
    if (!pki.ok()) {
      std::fprintf(stderr, "pki: %s\n", pki.status().ToString().c_str());
      std::abort();
    }
    f->pki = std::make_unique<testing::TestPki>(std::move(*pki));
    ServerConfig config;
    config.service = "bench";
    config.tls = f->pki->Files("bench");
    config.handle_signals = false;
    AccessPolicy policy;
    policy.Allow(testing::kEchoMethod, {"client"}).Allow(testing::kSlowEchoMethod, {"client"});
    f->runner = std::make_unique<ServerRunner>(config, std::move(policy));
    f->runner->RegisterService(&f->service);
    if (absl::Status s = f->runner->Start(); !s.ok()) {
      std::fprintf(stderr, "start: %s\n", s.ToString().c_str());
      std::abort();
    }
    ChannelConfig channel;
    channel.target = absl::StrCat("127.0.0.1:", f->runner->port());
    channel.tls = f->pki->Files("client");
    channel.expected_server = "bench";
    absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = MakeChannel(channel);
    if (!ch.ok()) std::abort();
    f->stub = Echo::NewStub(*ch);

    int bare_port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &bare_port);
    builder.RegisterService(&f->bare_service);
    f->bare_server = builder.BuildAndStart();
    if (!f->bare_server || bare_port == 0) std::abort();
    f->bare_stub = Echo::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", bare_port),
                                                     grpc::InsecureChannelCredentials()));
    return f;
  }();
  return *fixture;
}

// Keeps `slots` calls in flight until `total` calls are done; records each
// call's latency in microseconds.
class Driver {
 public:
  Driver(Echo::Stub* stub, int slots, int total)
      : stub_(stub), remaining_(total), pending_slots_(slots), latencies_(slots) {
    request_.set_message("0123456789abcdef0123456789abcdef");  // 32 bytes
    for (auto& v : latencies_) v.reserve(static_cast<size_t>(total / slots + 1));
  }

  // Runs to completion; returns false if any call failed.
  bool Run() {
    const int slots = static_cast<int>(latencies_.size());
    for (int i = 0; i < slots; ++i) StartNext(i);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* pending) { return *pending == 0; }, &pending_slots_));
    return !failed_.load();
  }

  void AppendLatencies(std::vector<double>* out) const {
    for (const auto& v : latencies_) out->insert(out->end(), v.begin(), v.end());
  }

 private:
  struct Call {
    grpc::ClientContext context;
    EchoResponse response;
    absl::Time start;
  };

  void StartNext(int slot) {
    if (remaining_.fetch_sub(1) <= 0) {
      absl::MutexLock lock(&mu_);
      --pending_slots_;
      return;
    }
    auto call = std::make_shared<Call>();
    call->start = absl::Now();
    stub_->async()->Echo(
        &call->context, &request_, &call->response, [this, slot, call](grpc::Status status) {
          latencies_[slot].push_back(absl::ToDoubleMicroseconds(absl::Now() - call->start));
          if (!status.ok()) failed_ = true;
          StartNext(slot);
        });
  }

  Echo::Stub* const stub_;
  EchoRequest request_;
  std::atomic<int> remaining_;
  std::atomic<bool> failed_{false};
  absl::Mutex mu_;
  int pending_slots_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<double>> latencies_;  // Per slot: one writer at a time.
};

double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  const size_t k = static_cast<size_t>(p * static_cast<double>(v->size() - 1));
  std::nth_element(v->begin(), v->begin() + static_cast<std::ptrdiff_t>(k), v->end());
  return (*v)[k];
}

void RunEcho(benchmark::State& state, Echo::Stub* stub) {
  const int in_flight = static_cast<int>(state.range(0));
  std::vector<double> latencies;
  int64_t calls = 0;
  for (auto _ : state) {
    Driver driver(stub, in_flight, kCallsPerIteration);
    if (!driver.Run()) {
      state.SkipWithError("a call failed");
      return;
    }
    driver.AppendLatencies(&latencies);
    calls += kCallsPerIteration;
  }
  state.counters["calls_per_s"] =
      benchmark::Counter(static_cast<double>(calls), benchmark::Counter::kIsRate);
  state.counters["p50_us"] = Percentile(&latencies, 0.50);
  state.counters["p99_us"] = Percentile(&latencies, 0.99);
  state.counters["in_flight"] = in_flight;
}
void BM_UnaryEchoMtls(benchmark::State& state) { RunEcho(state, GetFixture().stub.get()); }
void BM_UnaryEchoBareInsecure(benchmark::State& state) {
  RunEcho(state, GetFixture().bare_stub.get());
}
BENCHMARK(BM_UnaryEchoBareInsecure)
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UnaryEchoMtls)->Arg(1)->Arg(8)->Arg(32)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace crm::rpc

BENCHMARK_MAIN();
