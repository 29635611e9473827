#include "libs/base/random.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace crm::base {
namespace {

[[noreturn]] void Die() { std::abort(); }

void FillRandomDirect(uint8_t* out, size_t n) {
  // RAND_bytes takes an int; draw in chunks for very large requests.
  while (n > 0) {
    const size_t chunk = n > (1u << 30) ? (1u << 30) : n;
    if (RAND_bytes(out, static_cast<int>(chunk)) != 1) Die();
    out += chunk;
    n -= chunk;
  }
}

std::atomic<uint64_t> fork_generation{0};

struct RandomBuffer {
  static constexpr size_t kSize = 4096;
  static constexpr size_t kMaxDraw = 64;
  uint8_t bytes[kSize];
  size_t used = kSize;
  uint64_t generation = 0;

  RandomBuffer() {
    static const bool registered = [] {
      return pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); }) == 0;
    }();
    if (!registered) Die();
  }
  ~RandomBuffer() { OPENSSL_cleanse(bytes, sizeof(bytes)); }

  void Draw(uint8_t* out, size_t n) {
    const uint64_t gen = fork_generation.load(std::memory_order_relaxed);
    if (used + n > kSize || generation != gen) {
      FillRandomDirect(bytes, kSize);
      used = 0;
      generation = gen;
    }
    std::memcpy(out, bytes + used, n);
    OPENSSL_cleanse(bytes + used, n);
    used += n;
  }
};

}  // namespace

void FillRandom(void* out_bytes, size_t n) {
  uint8_t* out = static_cast<uint8_t*>(out_bytes);
  if (n > RandomBuffer::kMaxDraw) {
    FillRandomDirect(out, n);
    return;
  }
  thread_local RandomBuffer buffer;
  buffer.Draw(out, n);
}

}  // namespace crm::base
