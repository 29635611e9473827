// Access-token verification cost, with and without the verified-token cache.
// Run in a Release build: ./bench/token_bench (figures in docs/crypto.md).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "libs/auth/token_minter.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/crypto/ed25519.h"

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

// The baseline: one Ed25519 verification of a message of a token's size,
// the floor under an uncached verification.
void BM_Ed25519VerifyBaseline(benchmark::State& state) {
  base::FakeClock clock;
  testing::TokenMinter minter;
  const std::string token = minter.Mint(minter.DefaultClaims(clock.Now()));
  auto key = crypto::Ed25519PrivateKey::Generate();
  if (!key.ok()) std::abort();
  const std::string message = token.substr(0, token.rfind('.'));
  const absl::StatusOr<std::string> signature = key->Sign(message);
  if (!signature.ok()) std::abort();
  const crypto::Ed25519PublicKey public_key = key->PublicKey();
  for (auto _ : state) {
    if (!public_key.Verify(message, *signature)) std::abort();
  }
}
BENCHMARK(BM_Ed25519VerifyBaseline);

void BM_VerifyUncached(benchmark::State& state) { RunVerify(state, 0); }
BENCHMARK(BM_VerifyUncached);

void BM_VerifyCached(benchmark::State& state) { RunVerify(state, 10'000); }
BENCHMARK(BM_VerifyCached);

}  // namespace
}  // namespace crm::auth

BENCHMARK_MAIN();
