// stack_bench: the suite as real processes under load (issue 11's "RPC
// overhead" and "idle RSS" figures, with the servers' CPU and memory).
//
// The binary starts its own PostgreSQL and Redis (BenchEnv), every service
// and the gateway as the system tests do (tests/system/stack.h: fresh
// databases, mutual TLS from a throwaway PKI, the administrator logged in),
// and two crm-echo-server processes on the same PKI: the bare mutual-TLS
// Echo (the baseline of every call) and the same Echo verifying an access
// token on each call as the services do (--require_token: identity's keys,
// the Redis revocation set). The load comes from load.h over one mTLS
// channel per server with the operator's certificate; every figure is a
// separate process's, read from /proc, so client and servers share the two
// cores as they would on one node.
//
//   BM_IdleRss                    RSS (MiB) of each service a few seconds after
//                                 start, before any load: <service>_rss_mb, max_rss_mb
//   BM_Echo                       Echo, --clients calls in flight, --seconds
//   BM_TokenEcho                  the same with token verification
//   BM_ConsentCheck               consent Check (cached: each subject checked
//                                 just before) of --subjects subjects who
//                                 granted (half withdrew), random order
//   BM_ConsentCheckAtHalfPeak     Check started at half BM_ConsentCheck's rate:
//                                 its latency with the server not saturated
//   BM_EchoAtHalfPeak             Echo at that same rate: its baseline
//   BM_Erasure/records:N          one erasure across the real services, one
//                                 after another (--erasures): a person in
//                                 contacts with N interactions and a consent
//                                 grant, SubmitErasure (administrator), then
//                                 GetErasure every 2 ms until completed (all
//                                 four targets planned, erased, verified, the
//                                 certificate signed): p50_ms, p99_ms, max_ms
//                                 of submit -> completed as the client sees it;
//                                 N = 1, 10, 100: erasure time by records held
// Each load benchmark reports calls_per_s, p50/p90/p99/p999_ms, late_starts,
// server_cpu_us_per_call, server_cores, server_peak_rss_mb and
// client_cpu_us_per_call. A failed call fails the benchmark (its message
// names the status).
//
// Flags: --seconds (10) --warmup (2) --clients (8) --subjects (10000)
// --erasures (100).
// Run: tools/bench rpc (or build*/bench/stack_bench).
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "crm/testing/v1/echo.pb.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/log/log.h"
#include "libs/rpc/channel.h"
#include "libs/testing/bench_env.h"
#include "libs/testing/subprocess.h"
#include "libs/testing/unary_call.h"
#include "tests/system/stack.h"
#include "tools/bench_src/load.h"

namespace crm::bench {
namespace {

namespace consent = ::crm::consent::v1;
namespace contacts = ::crm::contacts::v1;
namespace erasure = ::crm::erasure::v1;
namespace identity = ::crm::identity::v1;

struct Flags {
  double seconds = 10;
  double warmup = 2;
  int clients = 8;
  int64_t subjects = 10000;
  int erasures = 100;
} flags;

// One server under test: its process and a channel to it.
struct Target {
  pid_t pid = 0;
  std::shared_ptr<grpc::Channel> channel;
};

struct Global {
  std::unique_ptr<testing::BenchEnv> env;
  std::unique_ptr<system_test::Stack> stack;
  std::vector<std::unique_ptr<testing::Subprocess>> echo_servers;
  Target echo, token_echo, consent;
  std::unique_ptr<consent::Consent::Stub> consent_stub;
  std::unique_ptr<contacts::Contacts::Stub> contacts_stub;
  std::unique_ptr<erasure::Erasure::Stub> erasure_stub;
  std::string notice_version;               // of the purpose "bench"
  std::vector<std::string> check_subjects;  // who granted "bench" (half withdrew)
  int64_t persons = 0;
  std::string token;  // the administrator's access token
  Workload echo_calls, token_echo_calls, checks;
  std::map<std::string, double> idle_rss_mb;
  double check_peak = 0;  // BM_ConsentCheck's calls/s, for the half-peak runs
};
Global* g = nullptr;

absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelTo(int port, const std::string& server) {
  rpc::ChannelConfig config;
  config.target = absl::StrCat("127.0.0.1:", port);
  config.tls = g->stack->pki->Files("operator");
  config.expected_server = server;
  config.max_attempts = 1;  // a failed call is a failure, not a retry
  return rpc::MakeChannel(config);
}

// A crm-echo-server process (next to this binary's build tree) with the
// certificate "echo", plus `extra` flags; waits until it serves.
absl::StatusOr<Target> StartEcho(const std::string& name, std::vector<std::string> extra) {
  const std::string dir = g->stack->dir.path();
  const rpc::TlsFiles tls = g->stack->pki->Files("echo");
  const std::string port_file = absl::StrCat(dir, "/", name, ".ports");
  testing::Subprocess::Options options;
  options.args = {
      CRM_ECHO_SERVER_BINARY,      "--identity=echo",         "--tls_cert=" + tls.cert_file,
      "--tls_key=" + tls.key_file, "--tls_ca=" + tls.ca_file, "--port_file=" + port_file,
      "--log_level=warn"};
  options.args.insert(options.args.end(), extra.begin(), extra.end());
  options.output_file = absl::StrCat(dir, "/", name, ".log");
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<testing::Subprocess> process,
                       testing::Subprocess::Start(options));
  int port = 0;
  if (!testing::PollUntil([&] {
        std::ifstream in(port_file);
        return static_cast<bool>(in >> port);
      })) {
    return absl::InternalError(absl::StrCat(name, " did not start:\n", process->Output()));
  }
  Target target{.pid = process->pid()};
  CRM_ASSIGN_OR_RETURN(target.channel, ChannelTo(port, "echo"));
  g->echo_servers.push_back(std::move(process));
  return target;
}

Workload EchoCalls(bool with_token) {
  crm::testing::v1::EchoRequest request;
  request.set_message(std::string(60, 'e'));  // about the size of a Check request
  Workload w{.method = "/crm.testing.v1.Echo/Echo", .requests = {request.SerializeAsString()}};
  if (with_token) w.metadata.emplace_back("authorization", "Bearer " + g->token);
  return w;
}

// A purpose, its notice, and a grant for each of --subjects new subjects
// (every second one withdrawn again), checked once each so the cache holds
// them all; the Check requests in a shuffled order.
absl::Status LoadConsent(consent::Consent::Stub& stub) {
  consent::DefinePurposeRequest define;
  consent::Purpose* p = define.mutable_purpose();
  p->set_purpose_id("bench");
  p->set_basis(consent::LAWFUL_BASIS_CONSENT);
  p->set_description("Benchmark newsletter");
  p->set_direct_marketing(true);
  p->set_validity_days(730);
  CRM_RETURN_IF_ERROR(
      testing::UnaryCall(stub, &consent::Consent::Stub::DefinePurpose, define, g->token).status());
  consent::PublishNoticeRequest publish;
  publish.set_purpose_id("bench");
  publish.set_language("en");
  publish.set_text("We send a newsletter about our products once a month.");
  CRM_ASSIGN_OR_RETURN(
      consent::PublishNoticeResponse notice,
      testing::UnaryCall(stub, &consent::Consent::Stub::PublishNotice, publish, g->token));
  g->notice_version = notice.version();

  g->checks = {.method = "/crm.consent.v1.Consent/Check"};
  g->checks.metadata.emplace_back("authorization", "Bearer " + g->token);
  const absl::Time start = absl::Now();
  for (int64_t n = 0; n < flags.subjects; ++n) {
    consent::Statement s;
    s.set_subject_id(base::NewUuid());
    s.set_purpose_id("bench");
    s.set_notice_version(notice.version());
    s.set_method(consent::METHOD_WEB_FORM);
    s.set_source("bench");
    consent::GrantRequest grant;
    *grant.mutable_statement() = s;
    CRM_RETURN_IF_ERROR(
        testing::UnaryCall(stub, &consent::Consent::Stub::Grant, grant, g->token).status());
    if (n % 2 == 1) {
      consent::WithdrawRequest withdraw;
      *withdraw.mutable_statement() = s;
      CRM_RETURN_IF_ERROR(
          testing::UnaryCall(stub, &consent::Consent::Stub::Withdraw, withdraw, g->token).status());
    }
    consent::CheckRequest check;
    check.set_subject_id(s.subject_id());
    check.set_purpose_id("bench");
    CRM_RETURN_IF_ERROR(
        testing::UnaryCall(stub, &consent::Consent::Stub::Check, check, g->token).status());
    g->checks.requests.push_back(check.SerializeAsString());
    g->check_subjects.push_back(s.subject_id());
  }
  std::shuffle(g->checks.requests.begin(), g->checks.requests.end(), std::mt19937(42));
  std::printf("consent: %lld subjects granted and checked once in %.1f s\n",
              static_cast<long long>(flags.subjects), absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

// A new person with `records` interactions and a consent grant: their subject id.
absl::StatusOr<std::string> PersonWithRecords(int records) {
  const int64_t n = ++g->persons;
  contacts::CreatePersonRequest create;
  contacts::Person* person = create.mutable_person();
  person->set_given_name("Erika");
  person->set_family_name(absl::StrCat("Bench", n));
  person->add_emails()->set_address(absl::StrCat("erika.bench.", n, "@customers.example"));
  person->mutable_registration()->set_channel("shop");
  person->mutable_registration()->set_source("bench");
  CRM_ASSIGN_OR_RETURN(
      contacts::CreatePersonResponse created,
      testing::UnaryCall(*g->contacts_stub, &contacts::Contacts::Stub::CreatePerson, create,
                         g->token));
  const std::string subject = created.person().subject_id();
  for (int i = 0; i < records; ++i) {
    contacts::AddInteractionRequest add;
    add.mutable_interaction()->set_subject_id(subject);
    add.mutable_interaction()->set_kind(contacts::INTERACTION_KIND_NOTE);
    add.mutable_interaction()->set_summary(absl::StrCat("Called about order ", i));
    CRM_RETURN_IF_ERROR(testing::UnaryCall(*g->contacts_stub,
                                           &contacts::Contacts::Stub::AddInteraction, add, g->token)
                            .status());
  }
  consent::GrantRequest grant;
  consent::Statement* s = grant.mutable_statement();
  s->set_subject_id(subject);
  s->set_purpose_id("bench");
  s->set_notice_version(g->notice_version);
  s->set_method(consent::METHOD_WEB_FORM);
  s->set_source("bench");
  CRM_RETURN_IF_ERROR(
      testing::UnaryCall(*g->consent_stub, &consent::Consent::Stub::Grant, grant, g->token)
          .status());
  return subject;
}

// Submits the erasure of `subject` and polls until it is completed: the
// milliseconds from submit to the answer that says so.
absl::StatusOr<double> EraseAndWait(const std::string& subject) {
  erasure::SubmitErasureRequest submit;
  submit.set_subject_id(subject);
  submit.set_reason(erasure::ERASURE_REASON_ADMINISTRATOR);
  const absl::Time start = absl::Now();
  CRM_ASSIGN_OR_RETURN(erasure::SubmitErasureResponse submitted,
                       testing::UnaryCall(*g->erasure_stub, &erasure::Erasure::Stub::SubmitErasure,
                                          submit, g->token));
  erasure::GetErasureRequest get;
  get.set_request_id(submitted.request().request_id());
  while (absl::Now() - start < absl::Seconds(30)) {
    CRM_ASSIGN_OR_RETURN(
        erasure::GetErasureResponse got,
        testing::UnaryCall(*g->erasure_stub, &erasure::Erasure::Stub::GetErasure, get, g->token));
    switch (got.request().state()) {
      case erasure::STATE_COMPLETED:
      case erasure::STATE_COMPLETED_WITH_RETENTION:
        return absl::ToDoubleMilliseconds(absl::Now() - start);
      case erasure::STATE_NEEDS_ATTENTION:
      case erasure::STATE_CANCELLED:
        return absl::InternalError(
            absl::StrCat("erasure ended ", erasure::State_Name(got.request().state())));
      default:
        absl::SleepFor(absl::Milliseconds(2));
    }
  }
  return absl::DeadlineExceededError("erasure not completed within 30 s");
}

absl::Status Setup() {
  g = new Global;
  CRM_ASSIGN_OR_RETURN(g->env, testing::BenchEnv::Start("stack_bench", CRM_SOURCE_DIR));
  CRM_ASSIGN_OR_RETURN(g->stack, system_test::Stack::Create());

  // Idle memory first, before anything has been asked of the services.
  absl::SleepFor(absl::Seconds(3));
  for (const auto& [name, at] : g->stack->position) {
    CRM_ASSIGN_OR_RETURN(ProcessSample s, SampleProcess(g->stack->services[at]->pid()));
    g->idle_rss_mb[name] = static_cast<double>(s.rss_bytes) / (1 << 20);
  }
  CRM_ASSIGN_OR_RETURN(ProcessSample gateway, SampleProcess(g->stack->gateway->pid()));
  g->idle_rss_mb["gateway"] = static_cast<double>(gateway.rss_bytes) / (1 << 20);

  // The administrator's token, from identity's Login as any client gets one.
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> identity_channel,
                       ChannelTo(g->stack->ports["identity"], "identity"));
  auto identity_stub = identity::Identity::NewStub(identity_channel);
  identity::LoginRequest login;
  login.set_username("admin");
  login.set_password(system_test::kAdminPassword);
  CRM_ASSIGN_OR_RETURN(identity::LoginResponse logged_in,
                       testing::UnaryCall(*identity_stub, &identity::Identity::Stub::Login, login));
  g->token = logged_in.tokens().access_token();

  const testing::RedisTestServer& redis = g->env->env().redis();
  CRM_ASSIGN_OR_RETURN(g->echo, StartEcho("echo", {}));
  CRM_ASSIGN_OR_RETURN(
      g->token_echo,
      StartEcho("token-echo",
                {"--require_token", "--identity_addr=" + g->stack->Addr("identity"),
                 absl::StrCat("--redis_addr=", redis.host, ":", redis.port),
                 "--redis_password_file=" + g->stack->dir.path() + "/redis_password"}));
  g->echo_calls = EchoCalls(false);
  g->token_echo_calls = EchoCalls(true);

  g->consent.pid = g->stack->services[g->stack->position["consent"]]->pid();
  CRM_ASSIGN_OR_RETURN(g->consent.channel, ChannelTo(g->stack->ports["consent"], "consent"));
  g->consent_stub = consent::Consent::NewStub(g->consent.channel);
  CRM_ASSIGN_OR_RETURN(auto contacts_channel, ChannelTo(g->stack->ports["contacts"], "contacts"));
  g->contacts_stub = contacts::Contacts::NewStub(contacts_channel);
  CRM_ASSIGN_OR_RETURN(auto erasure_channel, ChannelTo(g->stack->ports["erasure"], "erasure"));
  g->erasure_stub = erasure::Erasure::NewStub(erasure_channel);
  // The service accounts erasure and mailing call others with.
  if (system_test::Outcome o = g->stack->RunPlatformAccounts(); !o.exit.exited_with(0)) {
    return absl::InternalError(absl::StrCat("tools/platform-accounts: ", o.output));
  }
  CRM_RETURN_IF_ERROR(LoadConsent(*g->consent_stub));
  // One erasure before any is measured: the first one's calls fetch service
  // tokens and open channels, once in a service's life.
  CRM_ASSIGN_OR_RETURN(const std::string subject, PersonWithRecords(1));
  return EraseAndWait(subject).status();
}

void Teardown() {
  if (g == nullptr) return;
  for (auto& p : g->echo_servers) {
    if (absl::Status s = p->Signal(SIGTERM); s.ok()) (void)p->WaitForExit(absl::Seconds(20));
  }
  if (g->stack != nullptr) {
    if (absl::Status s = g->stack->Shutdown(); !s.ok()) {
      std::fprintf(stderr, "stack_bench: shutdown: %s\n", s.ToString().c_str());
    }
  }
  g->stack.reset();
  g->env.reset();
}

void BM_IdleRss(benchmark::State& state) {
  for (auto _ : state) {
  }
  double most = 0;
  for (const auto& [name, mb] : g->idle_rss_mb) {
    state.counters[name + "_rss_mb"] = mb;
    most = std::max(most, mb);
  }
  state.counters["max_rss_mb"] = most;
}

// Runs `workload` against `target` (rate 0: closed loop) and reports it; its
// successful calls per second, 0 if it failed (then the benchmark is skipped
// with the reason).
double RunAndReport(benchmark::State& state, const Target& target, const Workload& workload,
                    double rate) {
  LoadOptions options{.concurrency = flags.clients,
                      .rate = rate,
                      .warmup = absl::Seconds(flags.warmup),
                      .duration = absl::Seconds(flags.seconds),
                      .watch = {target.pid}};
  double calls_per_s = 0;
  for (auto _ : state) {
    absl::StatusOr<LoadResult> r = RunLoad(target.channel, workload, options);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      return 0;
    }
    if (r->errors > 0) {
      state.SkipWithError(
          absl::StrCat(r->errors, " calls failed; first: ", r->first_error).c_str());
      return 0;
    }
    state.SetIterationTime(r->seconds);
    const double calls = std::max<double>(1, static_cast<double>(r->calls));
    state.counters["calls_per_s"] = r->calls_per_s;
    state.counters["p50_ms"] = r->p50_ms;
    state.counters["p90_ms"] = r->p90_ms;
    state.counters["p99_ms"] = r->p99_ms;
    state.counters["p999_ms"] = r->p999_ms;
    state.counters["late_starts"] = static_cast<double>(r->late_starts);
    state.counters["server_cpu_us_per_call"] = r->servers[0].cpu_seconds / calls * 1e6;
    state.counters["server_cores"] = r->servers[0].cpu_cores;
    state.counters["server_peak_rss_mb"] =
        static_cast<double>(r->servers[0].peak_rss_bytes) / (1 << 20);
    state.counters["client_cpu_us_per_call"] = r->client_cpu_seconds / calls * 1e6;
    state.counters["clients"] = flags.clients;
    state.counters["rate"] = rate;
    calls_per_s = r->calls_per_s;
  }
  return calls_per_s;
}

void BM_Echo(benchmark::State& state) { RunAndReport(state, g->echo, g->echo_calls, 0); }
void BM_TokenEcho(benchmark::State& state) {
  RunAndReport(state, g->token_echo, g->token_echo_calls, 0);
}
// Checks every subject once, from --clients threads, so that the cache
// holds them all when a Check benchmark starts: its entries live 60 s (the
// default check_cache_ttl), and the benchmarks before take longer.
absl::Status WarmCheckCache() {
  std::atomic<size_t> next{0};
  std::vector<absl::Status> failed(flags.clients);
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.clients; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i; (i = next.fetch_add(1)) < g->check_subjects.size();) {
        consent::CheckRequest check;
        check.set_subject_id(g->check_subjects[i]);
        check.set_purpose_id("bench");
        failed[t] =
            testing::UnaryCall(*g->consent_stub, &consent::Consent::Stub::Check, check, g->token)
                .status();
        if (!failed[t].ok()) return;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : failed) CRM_RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

void BM_ConsentCheck(benchmark::State& state) {
  if (absl::Status s = WarmCheckCache(); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  g->check_peak = RunAndReport(state, g->consent, g->checks, 0);
}
void BM_ConsentCheckAtHalfPeak(benchmark::State& state) {
  if (g->check_peak <= 0) {
    state.SkipWithError("BM_ConsentCheck did not run");
    return;
  }
  if (absl::Status s = WarmCheckCache(); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  RunAndReport(state, g->consent, g->checks, g->check_peak / 2);
}
void BM_EchoAtHalfPeak(benchmark::State& state) {
  if (g->check_peak <= 0) {
    state.SkipWithError("BM_ConsentCheck did not run");
    return;
  }
  RunAndReport(state, g->echo, g->echo_calls, g->check_peak / 2);
}

void BM_Erasure(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  std::vector<double> ms;
  for (auto _ : state) {
    for (int i = 0; i < flags.erasures; ++i) {
      absl::StatusOr<std::string> subject = PersonWithRecords(records);
      absl::StatusOr<double> took =
          subject.ok() ? EraseAndWait(*subject) : absl::StatusOr<double>(subject.status());
      if (!took.ok()) {
        state.SkipWithError(took.status().ToString().c_str());
        return;
      }
      ms.push_back(*took);
    }
    double total = 0;
    for (double m : ms) total += m;
    state.SetIterationTime(total / 1000);
  }
  std::sort(ms.begin(), ms.end());
  state.counters["p50_ms"] = Quantile(ms, 0.50);
  state.counters["p99_ms"] = Quantile(ms, 0.99);
  state.counters["max_ms"] = ms.back();
  state.counters["erasures"] = static_cast<double>(ms.size());
}

BENCHMARK(BM_IdleRss)->Iterations(1);
BENCHMARK(BM_Echo)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TokenEcho)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConsentCheck)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConsentCheckAtHalfPeak)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EchoAtHalfPeak)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Erasure)
    ->ArgName("records")
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Takes this binary's flags out of argv; false (with a message) for a bad one.
bool ParseFlags(int* argc, char** argv) {
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::string prefix = absl::StrCat("--", name, "=");
      return absl::StartsWith(arg, prefix) ? argv[i] + prefix.size() : nullptr;
    };
    bool ok = true;
    if (const char* v = value("seconds")) {
      ok = absl::SimpleAtod(v, &flags.seconds) && flags.seconds > 0;
    } else if (const char* v = value("warmup")) {
      ok = absl::SimpleAtod(v, &flags.warmup) && flags.warmup >= 0;
    } else if (const char* v = value("clients")) {
      ok = absl::SimpleAtoi(v, &flags.clients) && flags.clients > 0;
    } else if (const char* v = value("subjects")) {
      ok = absl::SimpleAtoi(v, &flags.subjects) && flags.subjects > 0;
    } else if (const char* v = value("erasures")) {
      ok = absl::SimpleAtoi(v, &flags.erasures) && flags.erasures > 0;
    } else {
      argv[out++] = argv[i];
      continue;
    }
    if (!ok) {
      std::fprintf(stderr, "stack_bench: bad value in %s\n", arg.c_str());
      return false;
    }
  }
  *argc = out;
  return true;
}

}  // namespace
}  // namespace crm::bench

int main(int argc, char** argv) {
  crm::log::SetMinLevel(crm::log::Level::kWarn);
  if (!crm::bench::ParseFlags(&argc, argv)) return 2;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  if (absl::Status s = crm::bench::Setup(); !s.ok()) {
    std::fprintf(stderr, "stack_bench: set-up failed: %s\n", s.ToString().c_str());
    crm::bench::Teardown();
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  crm::bench::Teardown();
  return 0;
}
