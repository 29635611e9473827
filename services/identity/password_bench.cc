// The cost of identity's password domain against its physical floor: one raw
// argon2id_hash_raw with the same parameters (the defaults, m=19 MiB, t=2,
// p=1) on the same cores. The goal is a login overhead under 10% of the hash
// cost, i.e. a ratio under 1.10 for BM_LoginDomainPath.
//
//   BM_RawArgon2idBaseline  argon2id_hash_raw, 16-byte salt, 32-byte tag
//   BM_HasherVerify         PasswordHasher::Verify of the right password
//   BM_HasherDummyVerify    PasswordHasher::DummyVerify (unknown user)
//   BM_HasherHash           PasswordHasher::Hash (new salt + encoding)
//   BM_LoginDomainPath      throttle + IsLocked + Verify + OnSuccess: a login
//                           without its I/O
//   BM_PolicyCheckNoReuse   PasswordPolicy::Check without history
//
// Run in a Release build on an otherwise idle machine. One hash is tens of
// milliseconds, so a default run has ~20 iterations and +-20% noise; use
//   ./bench/password_bench --benchmark_min_time=2 --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true   (one command line)
// After the usual table it prints each ratio to the baseline with the same
// thread count (medians of the repetitions).
#include <argon2.h>
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "libs/crypto/primitives.h"
#include "libs/testing/bench_ratio.h"
#include "services/identity/lockout_policy.h"
#include "services/identity/password_hasher.h"
#include "services/identity/password_policy.h"

namespace crm::identity {
namespace {

constexpr char kPassword[] = "Tr1cky-Walrus-Orbit-42";

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) std::abort();
  return *std::move(v);
}

// Argon2id's second half addresses memory by data, so one (password, salt)
// pair has its own access pattern and cost (a few percent apart). The hash
// benchmarks therefore cycle through kSalts random salts each.
constexpr size_t kSalts = 64;

void BM_RawArgon2idBaseline(benchmark::State& state) {
  const HashParams p;
  std::vector<std::string> salts;
  for (size_t i = 0; i < kSalts; ++i) salts.push_back(crypto::RandomBytes(16));
  unsigned char tag[PasswordHasher::kTagBytes];
  size_t i = 0;
  for (auto _ : state) {
    const std::string& salt = salts[i++ % kSalts];
    if (argon2id_hash_raw(p.iterations, p.memory_kib, p.parallelism, kPassword,
                          sizeof(kPassword) - 1, salt.data(), salt.size(), tag,
                          sizeof(tag)) != ARGON2_OK) {
      std::abort();
    }
    benchmark::DoNotOptimize(tag);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_HasherVerify(benchmark::State& state) {
  const PasswordHasher hasher = OrDie(PasswordHasher::Create());
  std::vector<std::string> stored;
  for (size_t i = 0; i < kSalts; ++i) stored.push_back(OrDie(hasher.Hash(kPassword)));
  size_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<VerifyResult> r = hasher.Verify(kPassword, stored[i++ % kSalts]);
    if (!r.ok() || !r->match) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_HasherDummyVerify(benchmark::State& state) {
  const PasswordHasher hasher = OrDie(PasswordHasher::Create());
  for (auto _ : state) {
    absl::StatusOr<VerifyResult> r = hasher.DummyVerify(kPassword);
    if (!r.ok() || r->match) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_HasherHash(benchmark::State& state) {
  const PasswordHasher hasher = OrDie(PasswordHasher::Create());
  for (auto _ : state) benchmark::DoNotOptimize(OrDie(hasher.Hash(kPassword)));
  state.SetItemsProcessed(state.iterations());
}

// Everything the domain does for one successful login, minus the I/O the
// service adds (loading and storing the state and counters).
void BM_LoginDomainPath(benchmark::State& state) {
  const PasswordHasher hasher = OrDie(PasswordHasher::Create());
  const LockoutPolicy lockout = OrDie(LockoutPolicy::Create());
  const SourceThrottle throttle =
      OrDie(SourceThrottle::Create({.max_attempts = 1'000'000'000, .window = absl::Minutes(1)}));
  std::vector<std::string> stored;
  for (size_t i = 0; i < kSalts; ++i) stored.push_back(OrDie(hasher.Hash(kPassword)));
  size_t i = 0;
  LockoutState account;
  SourceWindow source;
  for (auto _ : state) {
    const absl::Time now = absl::Now();
    const SourceThrottle::Attempt a = throttle.OnAttempt(source, now);
    source = a.window;
    if (!a.decision.allowed || lockout.IsLocked(account, now)) std::abort();
    absl::StatusOr<VerifyResult> r = hasher.Verify(kPassword, stored[i++ % kSalts]);
    if (!r.ok() || !r->match) std::abort();
    account = lockout.OnSuccess(account);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PolicyCheckNoReuse(benchmark::State& state) {
  const PasswordHasher hasher = OrDie(PasswordHasher::Create());
  const PasswordPolicy policy = OrDie(PasswordPolicy::Create());
  const PolicyContext context{
      .username = "alice.example", .email = "alice.example+crm@example.com", .hasher = hasher};
  for (auto _ : state) {
    absl::StatusOr<std::vector<Violation>> v = policy.Check(kPassword, context);
    if (!v.ok() || !v->empty()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_RawArgon2idBaseline)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_HasherVerify)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1)->Threads(2);
BENCHMARK(BM_HasherDummyVerify)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1);
BENCHMARK(BM_HasherHash)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1);
BENCHMARK(BM_LoginDomainPath)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(1)->Threads(2);
BENCHMARK(BM_PolicyCheckNoReuse)->Unit(benchmark::kMicrosecond)->Threads(1);

// The ratios to the raw hash with the same thread count, after the table.
void PrintRatios(const crm::testing::RatioReporter& reporter) {
  std::printf("\nRatios to the raw Argon2id baseline (same parameters, same thread count):\n");
  for (const char* threads : {"1", "2"}) {
    const std::string suffix = std::string("/real_time/threads:") + threads;
    const crm::testing::RatioReporter::Figures* base =
        reporter.Find("BM_RawArgon2idBaseline" + suffix);
    if (base == nullptr) continue;
    std::printf("  threads=%s: baseline %.1f hashes/s\n", threads, base->items_per_second);
    for (const char* name :
         {"BM_HasherVerify", "BM_HasherDummyVerify", "BM_HasherHash", "BM_LoginDomainPath"}) {
      reporter.PrintCostRatio(name, name + suffix, "BM_RawArgon2idBaseline" + suffix);
    }
  }
  const auto* policy = reporter.Find("BM_PolicyCheckNoReuse/threads:1");
  const auto* base = reporter.Find("BM_RawArgon2idBaseline/real_time/threads:1");
  if (policy != nullptr && base != nullptr) {
    std::printf("  PasswordPolicy::Check without reuse: %.1f /s = %.4f%% of one hash\n",
                policy->items_per_second, 100 * base->items_per_second / policy->items_per_second);
  }
}

}  // namespace
}  // namespace crm::identity

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  crm::testing::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  crm::identity::PrintRatios(reporter);
  benchmark::Shutdown();
  return 0;
}
