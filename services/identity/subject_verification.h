// SubjectVerifier: a data subject proves control of an e-mail address (the
// privacy portal's sign-in, issue 9) before identity issues them a token for
// their own data.
//
// Start(email, source) counts the attempt against two sliding windows in
// Redis (per address and per source, keyed by HMAC: neither appears in clear),
// looks up the persons with the address (SubjectDirectory: contacts), draws a
// 6-digit code, stores the verification in Redis and has the code mailed.
// What is stored, under crm:identity:subject-verification:<uuid> with the
// code's lifetime as TTL, is the subject ids found (pseudonymous UUIDs), an
// HMAC of the code, one of the address and the count of tries: never the
// address or the code.
// The answer does not depend on whether anyone has the address.
//
// Confirm(id, code, source) counts the try before checking it (so concurrent
// guesses cannot exceed max_tries), and against the budgets of tries of the
// address and of the source across verifications (tries_per_address,
// tries_per_source: sending many codes does not buy many guesses); deletes the verification on
// success (single use) or after the last allowed wrong code, and says which persons the address
// belongs to.
//
// Thread-safe. All dependencies must outlive the verifier.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"
#include "libs/crypto/blind_index.h"
#include "libs/redis/client.h"
#include "services/identity/lockout_policy.h"
#include "services/identity/login_guard.h"

namespace crm::identity {

// Who has an address, and how to mail it: contacts and mailing in
// production (GrpcSubjectDirectory), a fake in unit tests.
class SubjectDirectory {
 public:
  virtual ~SubjectDirectory() = default;
  // The subject ids of the persons with `email` (none: empty).
  virtual absl::StatusOr<std::vector<std::string>> SubjectsByEmail(const std::string& email) = 0;
  // Mails `code` to `email` (mailing VERIFICATION_CODE); `dedup_key` makes a
  // retry queue one message only.
  virtual absl::Status SendCode(const std::string& email, const std::string& code,
                                const std::string& dedup_key) = 0;
};

struct SubjectVerificationParams {
  absl::Duration code_ttl = absl::Minutes(15);
  int max_tries = 5;  // codes tried on one verification, right or wrong
  // Codes sent, per address and per client address (an IPv6 one by its /64).
  ThrottleParams per_address{.max_attempts = 3, .window = absl::Hours(1)};
  ThrottleParams per_source{.max_attempts = 10, .window = absl::Hours(1)};
  // Codes tried, across verifications: per address (so that many codes sent
  // over days still allow few guesses) and per client address.
  ThrottleParams tries_per_address{.max_attempts = 10, .window = absl::Hours(24)};
  ThrottleParams tries_per_source{.max_attempts = 30, .window = absl::Hours(1)};
};

class SubjectVerifier {
 public:
  // INVALID_ARGUMENT naming the setting for bad params.
  static absl::StatusOr<std::unique_ptr<SubjectVerifier>> Create(
      redis::Client& redis, LoginGuard& guard, const crypto::BlindIndexer& indexer,
      SubjectDirectory& directory, const base::Clock& clock, SubjectVerificationParams params);

  struct Started {
    std::string verification_id;
    absl::Time expires_at;
  };
  // INVALID_ARGUMENT naming "email"; RESOURCE_EXHAUSTED when a limit is
  // reached; UNAVAILABLE (Redis, contacts or mailing unreachable).
  absl::StatusOr<Started> Start(absl::string_view email, absl::string_view source);

  struct Confirmed {
    std::vector<std::string> subject_ids;  // of the persons with the address
  };
  // INVALID_ARGUMENT naming "verification_id" or "code" (malformed, or
  // "code: wrong code; N tries left"); NOT_FOUND when the verification is
  // unknown, used, expired or out of tries; RESOURCE_EXHAUSTED when the
  // address or `source` has tried too many codes; UNAVAILABLE (Redis).
  absl::StatusOr<Confirmed> Confirm(absl::string_view verification_id, absl::string_view code,
                                    absl::string_view source);

  static std::string Key(absl::string_view verification_id);

 private:
  SubjectVerifier(redis::Client& redis, LoginGuard& guard, const crypto::BlindIndexer& indexer,
                  SubjectDirectory& directory, const base::Clock& clock,
                  SubjectVerificationParams params, SourceThrottle per_address,
                  SourceThrottle per_source, SourceThrottle tries_per_address,
                  SourceThrottle tries_per_source)
      : redis_(redis),
        guard_(guard),
        indexer_(indexer),
        directory_(directory),
        clock_(clock),
        params_(params),
        per_address_(per_address),
        per_source_(per_source),
        tries_per_address_(tries_per_address),
        tries_per_source_(tries_per_source) {}
  std::string CodeMac(absl::string_view verification_id, absl::string_view code) const;

  redis::Client& redis_;
  LoginGuard& guard_;
  const crypto::BlindIndexer& indexer_;
  SubjectDirectory& directory_;
  const base::Clock& clock_;
  const SubjectVerificationParams params_;
  const SourceThrottle per_address_;
  const SourceThrottle per_source_;
  const SourceThrottle tries_per_address_;
  const SourceThrottle tries_per_source_;
};

}  // namespace crm::identity
