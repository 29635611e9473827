// Identity's whole Login against its physical floor, and the per-call cost of
// access-token verification as every service does it.
//
// The benchmark starts its own PostgreSQL and Redis (tools/testenv, in a temp
// dir, stopped at the end), migrates a database, and builds IdentityApp as
// main.cc does (default Argon2id parameters m=19 MiB, t=2, p=1; key files in
// the temp dir; no audit relay, so audit events stay in the outbox table) with
// a ServerRunner over mutual TLS in front. Set-up logs in the bootstrap
// admin, changes its password and creates kUsers users through the API.
//
// Login (goal: overhead under 10% of the hash, i.e. a cost ratio under 1.10):
//   BM_RawArgon2idBaseline  argon2id_hash_raw with the users' own passwords
//                           and stored salts (Argon2id's cost depends a few
//                           percent on the pair), so both sides hash the same
//   BM_Login                IdentityService::Login called in process: the
//                           whole handler (throttle, user and credential
//                           reads, hash, grants and roles, lockout reset,
//                           session row, token signing, history and audit);
//                           counter pg_cpu_ms: PostgreSQL's CPU per login
//   BM_LoginDurable         BM_Login with PostgreSQL flushing every commit to
//                           disk (DurableCommits), as in production
//   BM_LoginOverMtls        the same through a gRPC client over mTLS loopback
//   BM_LoginWrongPassword   a known user's wrong password (failure counted;
//                           the counter is reset outside the timing so no
//                           account locks)
//   BM_LoginUnknownUser     an unknown name (a dummy hash, then history/audit)
//   BM_LoginPairedWithRawHash/durable:0|1  one raw hash and one in-process
//                           login per iteration, timed apart: the steadiest
//                           ratio on a loaded machine (counters hash_ms,
//                           login_ms, login_per_hash); durable:1 as
//                           BM_LoginDurable
// Each thread cycles through the users (thread t: t, t+n, ...); the baseline
// cycles the same way, with the same thread count.
//
// Token verification per call (one TokenVerifier with its verified-token
// cache, a token issued by this identity's Login, its signing keys):
//   BM_RedisPingBaseline                        one PING round trip
//   BM_VerifyCallCachedInMemoryRevocation       in-memory revocation check
//   BM_VerifyCallCachedWithRedisRevocation      RedisRevocationChecker as
//                                               services use it (500 ms
//                                               negative cache)
//   BM_VerifyCallCachedWithRedisRevocationNoNegativeCache
//                                               negative_cache_ttl = 0: one
//                                               PTTL round trip per call
//   BM_VerifyCallCachedWithRedisRevocationAndMarkNoNegativeCache
//                                               the same with identity's
//                                               record as fallback, as the
//                                               services run: PTTL and the
//                                               complete mark (EXISTS) in one
//                                               pipelined round trip
//   BM_VerifyCallCachedWithRecordRevocation     identity's record in
//                                               PostgreSQL (Revocations::
//                                               IsRevoked), what CheckSession
//                                               answers from while Redis is
//                                               down: one indexed query a call
//
// Defaults (each unless given on the command line): --benchmark_min_time=1
// (login is ~30 ms a call), --benchmark_repetitions=3 with
// --benchmark_enable_random_interleaving=true, so that the load of a shared
// machine falls on baseline and login alike, and
// --benchmark_display_aggregates_only=true. After the table it prints the
// ratios of the medians. Run: tools/bench login (about a minute),
// or build-release/bench/login_bench [--benchmark_filter=Login].
#include <argon2.h>
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/auth/redis_revocation.h"
#include "libs/auth/revocation.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/pg/pool.h"
#include "libs/redis/client.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/bench_env.h"
#include "libs/testing/bench_ratio.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/test_env.h"
#include "services/identity/credential_store.h"
#include "services/identity/identity_app.h"
#include "services/identity/identity_config.h"
#include "services/identity/login_guard.h"
#include "services/identity/password_hasher.h"

#ifndef CRM_SOURCE_DIR
#error "CRM_SOURCE_DIR must name the source tree (services/identity/bench.cmake sets it)"
#endif

namespace crm::identity {
namespace {

using Stub = v1::Identity::Stub;

constexpr int kUsers = 16;
constexpr char kAdminPassword[] = "Granite-Orchard-Compass-71";

struct BenchUser {
  std::string id;
  std::string password;
  std::string salt;  // of the stored hash, raw bytes
  v1::LoginRequest login;
  v1::LoginRequest wrong_password;
  v1::LoginRequest unknown_user;
};

// Everything the benchmarks share, built by Setup before the runs.
struct Env {
  std::unique_ptr<crm::testing::BenchEnv> bench;  // PostgreSQL, Redis, a temp dir
  crm::testing::MigratedDatabase db;
  std::unique_ptr<rpc::testing::TestPki> pki;
  base::Clock* clock = &base::RealClock::Get();
  IdentityConfig config;
  std::unique_ptr<IdentityApp> app;
  std::unique_ptr<rpc::ServerRunner> runner;
  std::unique_ptr<Stub> stub;
  // Redis as another service sees it (its own client).
  std::unique_ptr<redis::Client> redis;
  std::vector<BenchUser> users;
};
Env* g = nullptr;

std::string KeyLine() {
  return absl::StrCat("1 ", absl::Base64Escape(crypto::RandomBytes(32)), "\n");
}

template <typename Req, typename Resp>
absl::StatusOr<Resp> Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                          const Req& request, absl::string_view token = "") {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  Resp response;
  grpc::Status status = (g->stub.get()->*rpc)(&context, request, &response);
  if (!status.ok()) return base::FromGrpcStatus(status);
  return response;
}

v1::LoginRequest LoginRequestOf(absl::string_view username, absl::string_view password, int n) {
  v1::LoginRequest req;
  req.set_username(std::string(username));
  req.set_password(std::string(password));
  req.set_source_address(absl::StrCat("198.51.100.", n + 1));
  req.set_user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0");
  return req;
}

// The salt of a `$argon2id$v=19$m=..,t=..,p=..$<salt>$<tag>` hash.
absl::StatusOr<std::string> SaltOf(absl::string_view phc) {
  std::vector<absl::string_view> parts = absl::StrSplit(phc, '$');
  std::string salt;
  if (parts.size() != 6 || !absl::Base64Unescape(parts[4], &salt) ||
      salt.size() != PasswordHasher::kSaltBytes) {
    return absl::InternalError("unexpected stored hash format");
  }
  return salt;
}

absl::Status Setup() {
  CRM_ASSIGN_OR_RETURN(g->bench, crm::testing::BenchEnv::Start("login_bench", CRM_SOURCE_DIR));
  const crm::testing::TestEnv& env = g->bench->env();
  CRM_ASSIGN_OR_RETURN(g->db, crm::testing::CreateMigratedDatabase("identity", "login_bench", 8));
  CRM_ASSIGN_OR_RETURN(rpc::testing::TestPki pki,
                       rpc::testing::TestPki::Create({"identity", "gateway"}));
  g->pki = std::make_unique<rpc::testing::TestPki>(std::move(pki));

  IdentityConfig& c = g->config;
  c.redis_addr = absl::StrCat(env.redis().host, ":", env.redis().port);
  CRM_ASSIGN_OR_RETURN(c.redis_password_file,
                       g->bench->WriteSecretFile("redis_password", env.redis().password));
  CRM_ASSIGN_OR_RETURN(c.kek_file, g->bench->WriteSecretFile("kek", KeyLine()));
  CRM_ASSIGN_OR_RETURN(c.blind_index_key_file,
                       g->bench->WriteSecretFile("blind_index_key", KeyLine()));
  c.audit_addr = "";
  c.bootstrap_admin_password_file = g->bench->dir() + "/admin_password";
  // Thousands of logins a minute from a few sources: not what is measured.
  c.login_throttle_attempts = 1'000'000;
  CRM_RETURN_IF_ERROR(ValidateIdentityConfig(c));
  CRM_ASSIGN_OR_RETURN(
      g->app, IdentityApp::Create(c, g->pki->Files("identity"), *g->db.pool, *g->clock, nullptr));

  rpc::AccessPolicy policy;
  CRM_RETURN_IF_ERROR(g->app->AllowMethods(policy));
  rpc::ServerConfig server;
  server.service = "identity";
  server.tls = g->pki->Files("identity");
  server.metrics_listen = "";
  server.handle_signals = false;
  server.shutdown_grace = absl::Seconds(1);
  g->runner = std::make_unique<rpc::ServerRunner>(server, std::move(policy));
  g->runner->RegisterService(&g->app->service());
  CRM_RETURN_IF_ERROR(g->runner->Start());
  rpc::ChannelConfig channel;
  channel.target = absl::StrCat("127.0.0.1:", g->runner->port());
  channel.tls = g->pki->Files("gateway");
  channel.expected_server = "identity";
  channel.max_attempts = 1;
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> ch, rpc::MakeChannel(channel));
  g->stub = v1::Identity::NewStub(ch);
  CRM_ASSIGN_OR_RETURN(g->redis, redis::Client::Create({.host = env.redis().host,
                                                        .port = env.redis().port,
                                                        .password = env.redis().password}));

  // The first administrator, then the users, through the API.
  std::string bootstrap;
  {
    std::ifstream in(c.bootstrap_admin_password_file);
    if (!std::getline(in, bootstrap) || bootstrap.empty()) {
      return absl::InternalError("no bootstrap password written");
    }
  }
  CRM_ASSIGN_OR_RETURN(v1::LoginResponse first,
                       Call(&Stub::Login, LoginRequestOf("admin", bootstrap, 0)));
  v1::ChangePasswordRequest change;
  change.set_current_password(bootstrap);
  change.set_new_password(kAdminPassword);
  CRM_ASSIGN_OR_RETURN(v1::ChangePasswordResponse changed,
                       Call(&Stub::ChangePassword, change, first.tokens().access_token()));
  const std::string admin = changed.tokens().access_token();
  CredentialStore credentials(*g->db.pool);
  for (int i = 0; i < kUsers; ++i) {
    BenchUser u;
    const std::string username = absl::StrCat("bench.user.", i);
    u.password = absl::StrCat("Quiet-Meadow-Lantern-", 1009 * (i + 7));
    v1::CreateUserRequest req;
    req.set_username(username);
    req.set_display_name("Benchmark Operator");
    req.set_email(absl::StrCat(username, "@example.com"));
    req.set_initial_password(u.password);
    req.set_must_change_password(false);
    CRM_ASSIGN_OR_RETURN(v1::CreateUserResponse created, Call(&Stub::CreateUser, req, admin));
    u.id = created.user().user_id();
    CRM_ASSIGN_OR_RETURN(Credentials creds, credentials.Get(u.id));
    if (!creds.password_hash.has_value()) return absl::InternalError("user has no password hash");
    CRM_ASSIGN_OR_RETURN(u.salt, SaltOf(*creds.password_hash));
    u.login = LoginRequestOf(username, u.password, i);
    u.wrong_password = LoginRequestOf(username, "Not-The-Right-One-Sorry-3", i);
    u.unknown_user = LoginRequestOf(absl::StrCat("nobody.", i), u.password, i);
    g->users.push_back(std::move(u));
  }
  return absl::OkStatus();
}

void Teardown() {
  g->stub.reset();
  g->runner.reset();  // in-flight calls end before the app goes
  g->app.reset();
  g->redis.reset();
  g->db.pool.reset();  // before the database is dropped
  g->db.db.reset();
  g->pki.reset();
  g->bench.reset();
}

// Thread t of n takes users t, t+n, t+2n, ... (mod kUsers).
class UserCycle {
 public:
  explicit UserCycle(const benchmark::State& state)
      : next_(state.thread_index()), step_(state.threads()) {}
  const BenchUser& Next() {
    const BenchUser& u = g->users[next_ % g->users.size()];
    next_ += step_;
    return u;
  }

 private:
  size_t next_;
  size_t step_;
};

// CPU time (user + system, seconds) used so far by this benchmark's
// PostgreSQL: the postmaster (first line of postmaster.pid) and its children,
// i.e. the backends serving identity. -1 if it cannot be read.
double PostgresCpuSeconds() {
  std::ifstream pid_file(g->bench->testenv_dir() + "/pg/postmaster.pid");
  std::string postmaster;
  if (!std::getline(pid_file, postmaster)) return -1;
  double ticks = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (!absl::ascii_isdigit(static_cast<unsigned char>(pid[0]))) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line) || line.rfind(')') == std::string::npos) continue;
    // After "pid (comm) ": state ppid ... utime (12th) stime (13th).
    std::vector<std::string> f = absl::StrSplit(line.substr(line.rfind(')') + 2), ' ');
    double utime = 0, stime = 0;
    if (f.size() < 13 || (pid != postmaster && f[1] != postmaster) ||
        !absl::SimpleAtod(f[11], &utime) || !absl::SimpleAtod(f[12], &stime)) {
      continue;
    }
    ticks += utime + stime;
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// tools/testenv runs PostgreSQL for speed (fsync, synchronous_commit and
// full_page_writes off). While one of these lives, commits are flushed to
// disk as on a production server, so each write transaction of the login
// waits for the disk. Errors leave the run marked failed.
class DurableCommits {
 public:
  DurableCommits(benchmark::State& state, bool durable) : durable_(durable) {
    if (durable_ && !crm::testing::SetDurableCommits(*g->db.pool, true).ok()) {
      state.SkipWithError("cannot make commits durable");
    }
  }
  ~DurableCommits() {
    if (durable_) (void)crm::testing::SetDurableCommits(*g->db.pool, false);
  }

 private:
  const bool durable_;
};

void BM_RawArgon2idBaseline(benchmark::State& state) {
  const HashParams p = HashParamsOf(g->config);
  UserCycle users(state);
  unsigned char tag[PasswordHasher::kTagBytes];
  for (auto _ : state) {
    const BenchUser& u = users.Next();
    if (argon2id_hash_raw(p.iterations, p.memory_kib, p.parallelism, u.password.data(),
                          u.password.size(), u.salt.data(), u.salt.size(), tag,
                          sizeof(tag)) != ARGON2_OK) {
      state.SkipWithError("argon2id_hash_raw failed");
      break;
    }
    benchmark::DoNotOptimize(tag);
  }
  state.SetItemsProcessed(state.iterations());
}

// Calls Login in process with `request_of(user)`; `ok` judges the outcome.
// Counter pg_cpu_ms: PostgreSQL's CPU time per login (all threads' logins).
template <typename RequestOf, typename Ok>
void RunLoginInProcess(benchmark::State& state, RequestOf request_of, Ok ok) {
  UserCycle users(state);
  const double pg_before = state.thread_index() == 0 ? PostgresCpuSeconds() : -1;
  for (auto _ : state) {
    const BenchUser& u = users.Next();
    grpc::ServerContext context;
    v1::LoginResponse response;
    const grpc::Status status = g->app->service().Login(&context, &request_of(u), &response);
    if (!ok(status, response)) {
      state.SkipWithError("unexpected login outcome");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  // Thread 0 alone measures the whole run; counters add up over threads.
  const double pg_after = state.thread_index() == 0 ? PostgresCpuSeconds() : -1;
  const double logins = static_cast<double>(state.iterations()) * state.threads();
  if (pg_before >= 0 && pg_after >= 0 && logins > 0) {
    state.counters["pg_cpu_ms"] = (pg_after - pg_before) * 1000 / logins;
  }
}

bool LoggedIn(const grpc::Status& status, const v1::LoginResponse& response) {
  return status.ok() && !response.tokens().access_token().empty() &&
         !response.password_change_required() && !response.mfa_enrollment_required();
}

bool Refused(const grpc::Status& status, const v1::LoginResponse&) {
  return status.error_code() == grpc::StatusCode::UNAUTHENTICATED;
}

void BM_Login(benchmark::State& state) {
  RunLoginInProcess(
      state, [](const BenchUser& u) -> const v1::LoginRequest& { return u.login; }, LoggedIn);
}

void BM_LoginDurable(benchmark::State& state) {
  DurableCommits durable(state, true);
  RunLoginInProcess(
      state, [](const BenchUser& u) -> const v1::LoginRequest& { return u.login; }, LoggedIn);
}

void BM_LoginOverMtls(benchmark::State& state) {
  UserCycle users(state);
  for (auto _ : state) {
    absl::StatusOr<v1::LoginResponse> response = Call(&Stub::Login, users.Next().login);
    if (!response.ok() || !LoggedIn(grpc::Status::OK, *response)) {
      state.SkipWithError("login over mTLS failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_LoginWrongPassword(benchmark::State& state) {
  UserCycle users(state);
  for (auto _ : state) {
    const BenchUser& u = users.Next();
    grpc::ServerContext context;
    v1::LoginResponse response;
    const grpc::Status status = g->app->service().Login(&context, &u.wrong_password, &response);
    if (!Refused(status, response)) {
      state.SkipWithError("wrong password not refused");
      break;
    }
    // Keep the account below the lockout limit, untimed.
    state.PauseTiming();
    const bool reset = g->redis->Del(LoginGuard::FailureKey(u.id)).ok();
    state.ResumeTiming();
    if (!reset) {
      state.SkipWithError("cannot reset the failure counter");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_LoginUnknownUser(benchmark::State& state) {
  RunLoginInProcess(
      state, [](const BenchUser& u) -> const v1::LoginRequest& { return u.unknown_user; }, Refused);
}

// One raw hash and one in-process login per iteration, each timed: their
// ratio holds even while the load of a shared machine drifts, since the two
// alternate every few tens of milliseconds.
// Argument durable: 1 with DurableCommits.
void BM_LoginPairedWithRawHash(benchmark::State& state) {
  DurableCommits durable(state, state.range(0) == 1);
  const HashParams p = HashParamsOf(g->config);
  UserCycle users(state);
  unsigned char tag[PasswordHasher::kTagBytes];
  absl::Duration hashing, login;
  for (auto _ : state) {
    const BenchUser& u = users.Next();
    const absl::Time t0 = absl::Now();
    const int rc =
        argon2id_hash_raw(p.iterations, p.memory_kib, p.parallelism, u.password.data(),
                          u.password.size(), u.salt.data(), u.salt.size(), tag, sizeof(tag));
    benchmark::DoNotOptimize(tag);
    const absl::Time t1 = absl::Now();
    grpc::ServerContext context;
    v1::LoginResponse response;
    const grpc::Status status = g->app->service().Login(&context, &u.login, &response);
    const absl::Time t2 = absl::Now();
    if (rc != ARGON2_OK || !LoggedIn(status, response)) {
      state.SkipWithError("hash or login failed");
      break;
    }
    hashing += t1 - t0;
    login += t2 - t1;
  }
  const double n = static_cast<double>(state.iterations());
  if (n == 0) return;
  using benchmark::Counter;
  state.counters["hash_ms"] =
      Counter(absl::ToDoubleMilliseconds(hashing) / n, Counter::kAvgThreads);
  state.counters["login_ms"] = Counter(absl::ToDoubleMilliseconds(login) / n, Counter::kAvgThreads);
  state.counters["login_per_hash"] =
      Counter(absl::FDivDuration(login, hashing), Counter::kAvgThreads);
}

BENCHMARK(BM_RawArgon2idBaseline)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_Login)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1)->Threads(2);
BENCHMARK(BM_LoginOverMtls)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1)->Threads(2);
BENCHMARK(BM_LoginDurable)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1);
BENCHMARK(BM_LoginPairedWithRawHash)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgName("durable")
    ->Arg(0)
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_LoginPairedWithRawHash)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgName("durable")
    ->Arg(1)
    ->Threads(1);
BENCHMARK(BM_LoginWrongPassword)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1);
BENCHMARK(BM_LoginUnknownUser)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1);

void BM_RedisPingBaseline(benchmark::State& state) {
  for (auto _ : state) {
    if (!g->redis->Ping().ok()) {
      state.SkipWithError("PING failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// Verifies a fresh access token of users[0] (issued by Login, signed with
// identity's key) with a new verifier, as a service's call path does.
void RunVerify(benchmark::State& state, auth::RevocationChecker& revocation) {
  absl::StatusOr<v1::LoginResponse> login = Call(&Stub::Login, g->users[0].login);
  if (!login.ok()) {
    state.SkipWithError("login for a token failed");
    return;
  }
  const std::string token = login->tokens().access_token();
  auth::TokenVerifier verifier(
      {.issuer = g->config.token_issuer, .audience = g->config.token_audience},
      g->app->keys().key_set(), revocation, *g->clock);
  for (auto _ : state) {
    absl::StatusOr<std::shared_ptr<const auth::Principal>> p = verifier.Verify(token);
    if (!p.ok()) {
      state.SkipWithError("token refused");
      break;
    }
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_VerifyCallCachedInMemoryRevocation(benchmark::State& state) {
  auth::InMemoryRevocationChecker revocation;
  RunVerify(state, revocation);
}

void RunVerifyWithRedis(benchmark::State& state, absl::Duration negative_cache_ttl) {
  absl::StatusOr<std::unique_ptr<auth::RedisRevocationChecker>> revocation =
      auth::RedisRevocationChecker::Create(*g->redis, *g->clock,
                                           {.negative_cache_ttl = negative_cache_ttl});
  if (!revocation.ok()) {
    state.SkipWithError("RedisRevocationChecker::Create failed");
    return;
  }
  RunVerify(state, **revocation);
}

void BM_VerifyCallCachedWithRedisRevocation(benchmark::State& state) {
  RunVerifyWithRedis(state, auth::RedisRevocationOptions().negative_cache_ttl);
}

void BM_VerifyCallCachedWithRedisRevocationNoNegativeCache(benchmark::State& state) {
  RunVerifyWithRedis(state, absl::ZeroDuration());
}

void BM_VerifyCallCachedWithRedisRevocationAndMarkNoNegativeCache(benchmark::State& state) {
  if (!g->app->revocations().Watch().ok()) {  // sets the complete mark
    state.SkipWithError("revocation watch failed");
    return;
  }
  absl::StatusOr<std::unique_ptr<auth::RedisRevocationChecker>> revocation =
      auth::RedisRevocationChecker::Create(
          *g->redis, *g->clock,
          {.negative_cache_ttl = absl::ZeroDuration(), .fallback = &g->app->revocations()});
  if (!revocation.ok()) {
    state.SkipWithError("RedisRevocationChecker::Create failed");
    return;
  }
  RunVerify(state, **revocation);
}

void BM_VerifyCallCachedWithRecordRevocation(benchmark::State& state) {
  RunVerify(state, g->app->revocations());
}

BENCHMARK(BM_RedisPingBaseline)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_VerifyCallCachedInMemoryRevocation)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_VerifyCallCachedWithRedisRevocation)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_VerifyCallCachedWithRedisRevocationNoNegativeCache)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_VerifyCallCachedWithRedisRevocationAndMarkNoNegativeCache)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_VerifyCallCachedWithRecordRevocation)->Unit(benchmark::kMicrosecond)->UseRealTime();

void PrintRatios(const crm::testing::RatioReporter& r) {
  std::printf(
      "\nLogin against the raw Argon2id hash (same parameters, passwords and salts, same thread "
      "count):\n");
  for (const char* threads : {"1", "2"}) {
    const std::string suffix = absl::StrCat("/real_time/threads:", threads);
    const std::string baseline = "BM_RawArgon2idBaseline" + suffix;
    const crm::testing::RatioReporter::Figures* base = r.Find(baseline);
    std::printf("  threads=%s:", threads);
    if (base != nullptr) std::printf(" baseline %.1f hashes/s", base->items_per_second);
    std::printf("\n");
    for (const char* name : {"BM_Login", "BM_LoginDurable", "BM_LoginOverMtls",
                             "BM_LoginWrongPassword", "BM_LoginUnknownUser"}) {
      if (!r.PrintCostRatio(name, name + suffix, baseline)) continue;
      const crm::testing::RatioReporter::Figures* f = r.Find(name + suffix);
      if (f->counters.contains("pg_cpu_ms")) {
        std::printf("      PostgreSQL CPU per login: %.2f ms\n", f->counters.at("pg_cpu_ms"));
      }
    }
    for (const char* durable : {"0", "1"}) {
      const std::string name = absl::StrCat("BM_LoginPairedWithRawHash/durable:", durable);
      const crm::testing::RatioReporter::Figures* paired = r.Find(name + suffix);
      if (paired == nullptr || !paired->counters.contains("login_per_hash")) continue;
      const double ratio = paired->counters.at("login_per_hash");
      std::printf("    %-40s login %.2f ms / hash %.2f ms: cost %.3fx (overhead %+.1f%%)\n",
                  name.c_str(), paired->counters.at("login_ms"), paired->counters.at("hash_ms"),
                  ratio, (ratio - 1) * 100);
    }
  }
  std::printf("\nAccess-token verification per call (cached verifier, one thread):\n");
  const std::string ping = "BM_RedisPingBaseline/real_time";
  const std::string memory = "BM_VerifyCallCachedInMemoryRevocation/real_time";
  const std::string redis = "BM_VerifyCallCachedWithRedisRevocation/real_time";
  const std::string no_negative = "BM_VerifyCallCachedWithRedisRevocationNoNegativeCache/real_time";
  r.PrintTimeRatio("Redis revocation, 500 ms negative cache", redis, memory,
                   "in-memory revocation");
  r.PrintTimeRatio("Redis revocation, no negative cache", no_negative, ping, "one Redis PING");
  r.PrintTimeRatio("Redis revocation, no negative cache", no_negative, memory,
                   "in-memory revocation");
  const std::string marked =
      "BM_VerifyCallCachedWithRedisRevocationAndMarkNoNegativeCache/real_time";
  const std::string record = "BM_VerifyCallCachedWithRecordRevocation/real_time";
  r.PrintTimeRatio("Redis revocation and complete mark, no negative cache", marked, no_negative,
                   "PTTL alone");
  r.PrintTimeRatio("identity's record in PostgreSQL (Redis down)", record, no_negative,
                   "Redis PTTL");
}

}  // namespace
}  // namespace crm::identity

// Defaults for this noisy shared machine, each unless given: 1 s per run
// (login is ~30 ms a call), 3 repetitions interleaved at random (the ratios
// use their medians), only the aggregates on the console.
int main(int argc, char** argv) {
  crm::identity::Env env;
  crm::identity::g = &env;
  return crm::testing::RunBenchProgram(
      argc, argv,
      {.name = "login_bench",
       .usage = "",
       .defaults = {"--benchmark_min_time=1", "--benchmark_repetitions=3",
                    "--benchmark_enable_random_interleaving=true",
                    "--benchmark_display_aggregates_only=true"},
       .setup = crm::identity::Setup,
       .print_ratios = crm::identity::PrintRatios,
       .teardown = crm::identity::Teardown});
}
