// PasswordHasher: Argon2id password hashing (libargon2) in the standard PHC
// string form `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<tag>`
// (unpadded standard base64, 16-byte random salt, 32-byte tag). The cost
// parameters travel with each hash, so they can be raised later: Verify reports
// `needs_rehash` for a hash made with weaker parameters, and the login path
// re-hashes the password it has just verified.
//
// Used by identity's login, password-change and admin-reset paths, and by
// PasswordPolicy for the "not one of the last N passwords" rule.
//
// Every input password is checked BEFORE any hashing (at most
// kMaxPasswordBytes bytes, valid UTF-8 text, 1..kMaxPasswordCodePoints code
// points), so an over-long input cannot burn CPU. Passwords are hashed as the
// exact UTF-8 bytes given: no Unicode normalisation is applied.
//
// Cost: each Hash/Verify/DummyVerify allocates `memory_kib` KiB for its
// duration (19 MiB by default) and takes tens of milliseconds of one core per
// lane; callers should bound the number running at once.
//
// Thread-safety: a PasswordHasher is immutable after Create(); all methods are
// const and may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::identity {

// Argon2id cost parameters. Defaults follow the OWASP recommendation
// (m=19 MiB, t=2, p=1).
struct HashParams {
  // Memory in KiB. Default 19456 (19 MiB). Valid: 8 * parallelism .. kMaxMemoryKib.
  uint32_t memory_kib = 19456;
  // Passes over the memory. Default 2. Valid: 1..kMaxIterations.
  uint32_t iterations = 2;
  // Lanes (and threads). Default 1. Valid: 1..kMaxParallelism.
  uint32_t parallelism = 1;

  // Upper bounds, for configured parameters and for parameters read back from
  // a stored hash alike: a corrupted or hostile stored hash cannot make one
  // Verify allocate gigabytes or run for minutes.
  static constexpr uint32_t kMaxMemoryKib = 1u << 20;  // 1 GiB
  static constexpr uint32_t kMaxIterations = 64;
  static constexpr uint32_t kMaxParallelism = 16;
};

// OK if `params` is within the bounds above; otherwise INVALID_ARGUMENT naming
// the offending setting (e.g. "memory_kib").
absl::Status ValidateHashParams(const HashParams& params);

// The outcome of checking a password against a stored hash.
struct VerifyResult {
  // The password matches the stored hash.
  bool match = false;
  // Only when `match`: the stored hash was made with parameters weaker than
  // the configured ones (lower memory, iterations or parallelism, or a shorter
  // salt or tag); the caller should store Hash(password) in its place.
  bool needs_rehash = false;
};

// Input limits, applied before any hashing. 128 code points of at most 4
// bytes each fit in 512 bytes; the byte cap is checked first, so rejecting a
// 1 MB input costs no UTF-8 scan.
inline constexpr size_t kMaxPasswordBytes = 512;
inline constexpr size_t kMaxPasswordCodePoints = 128;

// OK if `password` is 1..kMaxPasswordBytes bytes of valid UTF-8 text
// (crm::base::IsValidUtf8Text: no control characters but tab, CR, LF) of at
// most kMaxPasswordCodePoints code points. Otherwise INVALID_ARGUMENT naming
// the field `password` and the rule broken, never the value.
absl::Status ValidatePasswordInput(absl::string_view password);

class PasswordHasher {
 public:
  inline static constexpr size_t kSaltBytes = 16;
  inline static constexpr size_t kTagBytes = 32;

  // A hasher for `params`. Computes the dummy hash used by DummyVerify, so
  // creation costs one Argon2id hash.
  // Fails with INVALID_ARGUMENT naming the setting if `params` is out of
  // bounds, or INTERNAL if libargon2 fails (e.g. cannot allocate the memory).
  static absl::StatusOr<PasswordHasher> Create(const HashParams& params = HashParams());

  const HashParams& params() const { return params_; }

  // The PHC-encoded Argon2id hash of `password` with a fresh random salt.
  // Fails with INVALID_ARGUMENT (field `password`) if ValidatePasswordInput
  // rejects the input, or INTERNAL if libargon2 fails.
  absl::StatusOr<std::string> Hash(absl::string_view password) const;

  // Checks `password` against `encoded` (a stored hash). A wrong password is
  // an OK result with match == false; the tag is compared in constant time.
  // Fails with INVALID_ARGUMENT (field `password`) if ValidatePasswordInput
  // rejects the input (before any hashing); DATA_LOSS if `encoded` is not a
  // well-formed `$argon2id$v=19$...` hash within the HashParams bounds (other
  // Argon2 variants and other algorithms included) — the message never
  // echoes the stored value; INTERNAL if libargon2 fails.
  absl::StatusOr<VerifyResult> Verify(absl::string_view password, absl::string_view encoded) const;

  // For an unknown user: validates `password` exactly as Verify does and then
  // verifies it against a hash of a random secret made with the current
  // parameters, so it costs the same as Verify of a current hash. On success
  // the result is always {match = false, needs_rehash = false}. Fails as
  // Verify does for bad input, or INTERNAL if libargon2 fails.
  absl::StatusOr<VerifyResult> DummyVerify(absl::string_view password) const;

 private:
  PasswordHasher(const HashParams& params, std::string dummy_hash)
      : params_(params), dummy_hash_(std::move(dummy_hash)) {}

  HashParams params_;
  std::string dummy_hash_;
};

}  // namespace crm::identity
