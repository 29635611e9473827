#include "libs/crypto/primitives.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace crm::crypto {
namespace {

[[noreturn]] void Die() { std::abort(); }

// Fetched once; EVP_MD and EVP_MAC objects are immutable and shareable.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) Die();
    return m;
  }();
  return md;
}

EVP_MAC* HmacMac() {
  static EVP_MAC* mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) Die();
    return m;
  }();
  return mac;
}

struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

void FillRandomDirect(uint8_t* out, size_t n) {
  // RAND_bytes takes an int; draw in chunks for very large requests.
  while (n > 0) {
    const size_t chunk = n > (1u << 30) ? (1u << 30) : n;
    if (RAND_bytes(out, static_cast<int>(chunk)) != 1) Die();
    out += chunk;
    n -= chunk;
  }
}

// Small draws (nonces, ids, data keys: a dozen per stored person) come from a
// per-thread buffer refilled with RAND_bytes 4 KiB at a time: one OpenSSL
// call per ~100 draws instead of one each (RAND_bytes costs about half a
// microsecond a call in locking and DRBG bookkeeping, whatever the length).
// Bytes handed out are wiped from the buffer at once, the rest when the
// thread ends. A fork() child never reuses its parent's buffered bytes: the
// generation bumped in the child makes every buffer refill first.
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

void FillRandom(uint8_t* out, size_t n) {
  if (n > RandomBuffer::kMaxDraw) {
    FillRandomDirect(out, n);
    return;
  }
  thread_local RandomBuffer buffer;
  buffer.Draw(out, n);
}

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0) FillRandom(reinterpret_cast<uint8_t*>(out.data()), n);
  return out;
}

SecretBytes RandomSecret(size_t n) {
  SecretBytes out(n);
  if (n > 0) FillRandom(out.data(), n);
  return out;
}

std::string Sha256(absl::string_view data) {
  std::string out(kSha256Size, '\0');
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                 Sha256Md(), nullptr) != 1 ||
      len != kSha256Size) {
    Die();
  }
  return out;
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(EVP_MAC_CTX_new(HmacMac()));
  if (ctx == nullptr) Die();
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  // A zero-length HMAC key is legal; OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty[1] = {0};
  const unsigned char* key_ptr =
      key.empty() ? kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  if (EVP_MAC_init(ctx.get(), key_ptr, key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) !=
          1) {
    Die();
  }
  std::string out(kSha256Size, '\0');
  size_t len = 0;
  if (EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) !=
          1 ||
      len != kSha256Size) {
    Die();
  }
  return out;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace crm::crypto
