// crm-identity's own settings (beyond the common ones of libs/service), as
// flags or CRM_* environment variables; see docs/identity.md "Settings".
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/config/config.h"
#include "services/identity/lockout_policy.h"
#include "services/identity/password_hasher.h"

namespace crm::identity {

struct IdentityConfig {
  // Redis for lockout counters, throttling and the revocation set.
  std::string redis_addr = "127.0.0.1:6379";
  std::string redis_password_file;  // a file holding the password; empty: none
  absl::Duration redis_wait = absl::Seconds(60);
  // Key files (libs/crypto key_file.h): the KEK ring sealing personal data,
  // TOTP secrets and signing keys, and the one blind-index key.
  std::string kek_file;
  std::string blind_index_key_file;
  // Audit service for the outbox relay ("host:port"); empty: events wait in
  // the outbox.
  std::string audit_addr;

  // Argon2id (password_hasher.h).
  int argon2_memory_kib = 19456;
  int argon2_iterations = 2;
  int argon2_parallelism = 1;

  // Lockout (lockout_policy.h) and per-source throttling.
  int lockout_max_failures = 5;
  absl::Duration lockout_base = absl::Minutes(15);
  absl::Duration lockout_max = absl::Hours(24);
  int lockouts_before_admin = 3;
  int login_throttle_attempts = 20;
  absl::Duration login_throttle_window = absl::Minutes(1);

  // Passwords: maximum age (0 = never expire) and reminder days before it.
  absl::Duration max_password_age = absl::Hours(24 * 90);
  std::vector<std::string> password_reminder_days = {"14", "1"};

  // Tokens.
  std::string token_issuer = "crm-identity";
  std::string token_audience = "crm";
  absl::Duration access_token_ttl = absl::Minutes(15);
  absl::Duration refresh_token_ttl = absl::Hours(12);
  absl::Duration service_token_ttl = absl::Minutes(10);
  absl::Duration signing_key_rotation = absl::Hours(24 * 30);

  // First administrator: created at start when no user exists, its password
  // written once to this file (mode 0600). Empty: no bootstrap.
  std::string bootstrap_admin_password_file;
  // Or: its initial password read from this file (0400/0440/0600, e.g. a
  // Kubernetes Secret) instead of generated and written; it must meet the
  // password policy and is changed at the first login all the same. At most
  // one of the two is set.
  std::string bootstrap_admin_initial_password_file;
  std::string bootstrap_admin_username = "admin";

  // Data subjects (subject_verification.h): contacts and mailing ("host:port";
  // both empty: no subject verification, FAILED_PRECONDITION), the
  // certificate identities allowed to call it (the gateway), the codes'
  // lifetime and limits, and the subject tokens' lifetime.
  std::string contacts_addr;
  std::string mailing_addr;
  std::vector<std::string> subject_callers = {"gateway"};
  absl::Duration subject_code_ttl = absl::Minutes(15);
  int subject_codes_per_address = 3;        // an hour
  int subject_codes_per_source = 10;        // an hour
  int subject_code_tries = 5;               // on one code
  int subject_code_tries_per_address = 10;  // a day, across codes
  absl::Duration subject_token_ttl = absl::Minutes(15);

  // The certificate identities that may ask CheckSession: the services that
  // verify tokens (their fallback while Redis is down).
  std::vector<std::string> session_check_callers = {"contacts", "consent", "audit", "mailing",
                                                    "erasure"};

  // Background sweeps (keys, expiry notices, reminders).
  absl::Duration sweep_interval = absl::Minutes(1);

  // Parsed from password_reminder_days by ValidateIdentityConfig.
  std::vector<int> reminder_days;
};

void AddIdentitySettings(config::Settings& settings, IdentityConfig* config);

// Checks what parsing alone cannot and fills reminder_days: required files,
// host:port, TTL relations, positive durations. INVALID_ARGUMENT naming the
// setting.
absl::Status ValidateIdentityConfig(IdentityConfig& config);

HashParams HashParamsOf(const IdentityConfig& config);
LockoutParams LockoutParamsOf(const IdentityConfig& config);
ThrottleParams ThrottleParamsOf(const IdentityConfig& config);
struct SubjectVerificationParams;
SubjectVerificationParams SubjectVerificationParamsOf(const IdentityConfig& config);

}  // namespace crm::identity
