// Access-token verification cost, with and without the verified-token cache.
// Run in a Release build: ./bench/token_bench (figures in docs/crypto.md).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "libs/auth/token_minter.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"

namespace crm::auth {
namespace {

void RunVerify(benchmark::State& state, size_t cache_capacity) {
  base::FakeClock clock;
  testing::TokenMinter minter;
  KeySet keys(minter.KeyMap());
  InMemoryRevocationChecker revocation;
  TokenVerifierOptions options;
  options.issuer = testing::kTestIssuer;
  options.audience = testing::kTestAudience;
  options.cache_capacity = cache_capacity;
  TokenVerifier verifier(options, keys, revocation, clock);
  AccessTokenClaims claims = minter.DefaultClaims(clock.Now());
  claims.permissions = {"contacts.read", "contacts.write", "consent.read", "mailing.send"};
  claims.teams = {"sales-north"};
  const std::string token = minter.Mint(claims);
  for (auto _ : state) {
    auto p = verifier.Verify(token);
    if (!p.ok()) std::abort();
    benchmark::DoNotOptimize(p);
  }
  state.counters["token_bytes"] = static_cast<double>(token.size());
}

void BM_VerifyUncached(benchmark::State& state) { RunVerify(state, 0); }
BENCHMARK(BM_VerifyUncached);

void BM_VerifyCached(benchmark::State& state) { RunVerify(state, 10'000); }
BENCHMARK(BM_VerifyCached);

}  // namespace
}  // namespace crm::auth

BENCHMARK_MAIN();
