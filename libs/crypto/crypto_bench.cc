// Throughput of the crypto primitives services use on hot paths. Run in a
// Release build: ./bench/crypto_bench (figures are recorded in docs/crypto.md).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/data_key.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"

namespace crm::crypto {
namespace {

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) std::abort();
  return std::move(v).value();
}

// The physical baseline for sealing and opening: copying the same bytes.
void BM_CopyBaseline(benchmark::State& state) {
  const std::string plaintext(static_cast<size_t>(state.range(0)), 'p');
  for (auto _ : state) {
    std::string copy = plaintext;
    benchmark::DoNotOptimize(copy);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_CopyBaseline)->Arg(256)->Arg(16 << 10);

void BM_AesGcmSeal(benchmark::State& state) {
  SecretBytes key = RandomSecret(kAes256KeySize);
  const std::string plaintext(static_cast<size_t>(state.range(0)), 'p');
  for (auto _ : state) benchmark::DoNotOptimize(Seal(key, plaintext, "persons.address"));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AesGcmSeal)->Arg(256)->Arg(16 << 10);

void BM_AesGcmOpen(benchmark::State& state) {
  SecretBytes key = RandomSecret(kAes256KeySize);
  const std::string sealed =
      OrDie(Seal(key, std::string(static_cast<size_t>(state.range(0)), 'p'), "persons.address"));
  for (auto _ : state) benchmark::DoNotOptimize(Open(key, sealed, "persons.address"));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AesGcmOpen)->Arg(256)->Arg(16 << 10);

void BM_RandomBytes12(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(RandomBytes(12));
}
BENCHMARK(BM_RandomBytes12);

void BM_Sha256_256B(benchmark::State& state) {
  const std::string data(256, 'd');
  for (auto _ : state) benchmark::DoNotOptimize(Sha256(data));
}
BENCHMARK(BM_Sha256_256B);

void BM_BlindIndexRaw(benchmark::State& state) {
  BlindIndexer idx = OrDie(BlindIndexer::Create(RandomSecret(32)));
  for (auto _ : state) benchmark::DoNotOptimize(idx.Raw("alice.example@example.com"));
}
BENCHMARK(BM_BlindIndexRaw);

void BM_Ed25519Sign(benchmark::State& state) {
  Ed25519PrivateKey key = OrDie(Ed25519PrivateKey::Generate());
  const std::string msg(200, 'm');  // about a JWT's signing input
  for (auto _ : state) benchmark::DoNotOptimize(key.Sign(msg));
}
BENCHMARK(BM_Ed25519Sign);

void BM_Ed25519Verify(benchmark::State& state) {
  Ed25519PrivateKey key = OrDie(Ed25519PrivateKey::Generate());
  Ed25519PublicKey pub = key.PublicKey();
  const std::string msg(200, 'm');
  const std::string sig = OrDie(key.Sign(msg));
  for (auto _ : state) {
    if (!pub.Verify(msg, sig)) std::abort();
  }
}
BENCHMARK(BM_Ed25519Verify);

KeyRing BenchRing() { return OrDie(KeyRing::Parse("1 " + absl::Base64Escape(RandomBytes(32)))); }

void BM_DataKeyWrap(benchmark::State& state) {
  KeyRing ring = BenchRing();
  SecretBytes key = NewDataKey();
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        WrapDataKey(ring, key, "contacts", "6f1c8a52-2d4e-4c1a-9b0e-1f2a3b4c5d6e"));
  }
}
BENCHMARK(BM_DataKeyWrap);

void BM_DataKeyUnwrap(benchmark::State& state) {
  KeyRing ring = BenchRing();
  const std::string wrapped =
      OrDie(WrapDataKey(ring, NewDataKey(), "contacts", "6f1c8a52-2d4e-4c1a-9b0e-1f2a3b4c5d6e"));
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        UnwrapDataKey(ring, wrapped, "contacts", "6f1c8a52-2d4e-4c1a-9b0e-1f2a3b4c5d6e"));
  }
}
BENCHMARK(BM_DataKeyUnwrap);

}  // namespace
}  // namespace crm::crypto

BENCHMARK_MAIN();
