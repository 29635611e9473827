#include "services/identity/identity_config.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "services/identity/subject_verification.h"

namespace crm::identity {

void AddIdentitySettings(config::Settings& s, IdentityConfig* c) {
  s.Add("redis_addr", &c->redis_addr, "Redis host:port (lockout counters, revocation set)");
  s.Add("redis_password_file", &c->redis_password_file, "file holding the Redis password");
  s.Add("redis_wait", &c->redis_wait, "how long start-up waits for Redis");
  s.Add("kek_file", &c->kek_file, "KEK ring file sealing personal data and signing keys");
  s.Add("blind_index_key_file", &c->blind_index_key_file, "blind-index key file");
  s.Add("audit_addr", &c->audit_addr, "audit service host:port for the outbox relay");
  s.Add("argon2_memory_kib", &c->argon2_memory_kib, "Argon2id memory in KiB", 64, 1 << 20);
  s.Add("argon2_iterations", &c->argon2_iterations, "Argon2id passes", 1, 64);
  s.Add("argon2_parallelism", &c->argon2_parallelism, "Argon2id lanes", 1, 16);
  s.Add("lockout_max_failures", &c->lockout_max_failures, "failures that lock an account", 1, 1000);
  s.Add("lockout_base", &c->lockout_base, "first lock duration (doubles per lockout)");
  s.Add("lockout_max", &c->lockout_max, "longest timed lock");
  s.Add("lockouts_before_admin", &c->lockouts_before_admin,
        "the lockout that only an admin lifts (0: never)", 0, 1000);
  s.Add("login_throttle_attempts", &c->login_throttle_attempts,
        "login attempts per source and window", 1, 1000000);
  s.Add("login_throttle_window", &c->login_throttle_window, "login throttle window");
  s.Add("max_password_age", &c->max_password_age, "password lifetime (0s: never expires)");
  s.Add("password_reminder_days", &c->password_reminder_days,
        "days before expiry a reminder is sent, comma-separated");
  s.Add("token_issuer", &c->token_issuer, "access tokens' iss");
  s.Add("token_audience", &c->token_audience, "access tokens' aud");
  s.Add("access_token_ttl", &c->access_token_ttl, "access token lifetime");
  s.Add("refresh_token_ttl", &c->refresh_token_ttl, "session (refresh token) lifetime");
  s.Add("service_token_ttl", &c->service_token_ttl, "service-account token lifetime");
  s.Add("signing_key_rotation", &c->signing_key_rotation, "signing key age that starts a rotation");
  s.Add("bootstrap_admin_password_file", &c->bootstrap_admin_password_file,
        "create the first admin when no user exists and write its password here");
  s.Add("bootstrap_admin_initial_password_file", &c->bootstrap_admin_initial_password_file,
        "create the first admin when no user exists with the password in this file");
  s.Add("bootstrap_admin_username", &c->bootstrap_admin_username, "the first admin's username");
  s.Add("contacts_addr", &c->contacts_addr,
        "contacts host:port (subject verification: who has an address)");
  s.Add("mailing_addr", &c->mailing_addr, "mailing host:port (subject verification codes)");
  s.Add("subject_callers", &c->subject_callers,
        "certificate identities that may verify subjects, comma-separated (the gateway)");
  s.Add("subject_code_ttl", &c->subject_code_ttl, "how long a subject's e-mail code is valid");
  s.Add("subject_codes_per_address", &c->subject_codes_per_address, "codes an hour for one address",
        1, 1000);
  s.Add("subject_codes_per_source", &c->subject_codes_per_source,
        "codes an hour from one client address", 1, 100000);
  s.Add("subject_code_tries", &c->subject_code_tries, "codes tried on one verification", 1, 20);
  s.Add("subject_code_tries_per_address", &c->subject_code_tries_per_address,
        "codes tried a day for one address, across its verifications", 1, 1000);
  s.Add("subject_token_ttl", &c->subject_token_ttl, "lifetime of a subject's access token");
  s.Add("session_check_callers", &c->session_check_callers,
        "certificate identities that may ask CheckSession, comma-separated (the API services)");
  s.Add("sweep_interval", &c->sweep_interval, "interval of key refresh and notice sweeps");
}

namespace {

absl::Status Positive(absl::string_view name, absl::Duration d) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("setting ", name, ": must be positive"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateIdentityConfig(IdentityConfig& c) {
  std::string host;
  int port;
  CRM_RETURN_IF_ERROR(config::ParseHostPort("redis_addr", c.redis_addr, &host, &port));
  if (!c.audit_addr.empty()) {
    CRM_RETURN_IF_ERROR(config::ParseHostPort("audit_addr", c.audit_addr, &host, &port));
  }
  if (c.kek_file.empty()) return absl::InvalidArgumentError("setting kek_file: required");
  if (!c.bootstrap_admin_password_file.empty() &&
      !c.bootstrap_admin_initial_password_file.empty()) {
    return absl::InvalidArgumentError(
        "settings bootstrap_admin_password_file, bootstrap_admin_initial_password_file: set one");
  }
  if (c.blind_index_key_file.empty()) {
    return absl::InvalidArgumentError("setting blind_index_key_file: required");
  }
  if (c.contacts_addr.empty() != c.mailing_addr.empty()) {
    return absl::InvalidArgumentError(
        "setting contacts_addr: subject verification needs both contacts_addr and mailing_addr");
  }
  if (!c.contacts_addr.empty()) {
    CRM_RETURN_IF_ERROR(config::ParseHostPort("contacts_addr", c.contacts_addr, &host, &port));
    CRM_RETURN_IF_ERROR(config::ParseHostPort("mailing_addr", c.mailing_addr, &host, &port));
  }
  CRM_RETURN_IF_ERROR(Positive("subject_token_ttl", c.subject_token_ttl));
  if (c.subject_token_ttl > absl::Hours(1)) {
    return absl::InvalidArgumentError("setting subject_token_ttl: at most 1h");
  }
  CRM_RETURN_IF_ERROR(Positive("redis_wait", c.redis_wait));
  CRM_RETURN_IF_ERROR(Positive("lockout_base", c.lockout_base));
  CRM_RETURN_IF_ERROR(Positive("lockout_max", c.lockout_max));
  CRM_RETURN_IF_ERROR(Positive("login_throttle_window", c.login_throttle_window));
  CRM_RETURN_IF_ERROR(Positive("access_token_ttl", c.access_token_ttl));
  CRM_RETURN_IF_ERROR(Positive("refresh_token_ttl", c.refresh_token_ttl));
  CRM_RETURN_IF_ERROR(Positive("service_token_ttl", c.service_token_ttl));
  CRM_RETURN_IF_ERROR(Positive("signing_key_rotation", c.signing_key_rotation));
  CRM_RETURN_IF_ERROR(Positive("sweep_interval", c.sweep_interval));
  if (c.access_token_ttl > absl::Hours(1)) {
    return absl::InvalidArgumentError("setting access_token_ttl: at most 1h");
  }
  if (c.service_token_ttl > c.access_token_ttl) {
    return absl::InvalidArgumentError("setting service_token_ttl: at most access_token_ttl");
  }
  if (c.refresh_token_ttl < c.access_token_ttl) {
    return absl::InvalidArgumentError("setting refresh_token_ttl: at least access_token_ttl");
  }
  if (c.lockout_max < c.lockout_base) {
    return absl::InvalidArgumentError("setting lockout_max: at least lockout_base");
  }
  if (c.max_password_age < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("setting max_password_age: must not be negative");
  }
  if (c.token_issuer.empty()) return absl::InvalidArgumentError("setting token_issuer: required");
  if (c.token_audience.empty()) {
    return absl::InvalidArgumentError("setting token_audience: required");
  }
  c.reminder_days.clear();
  for (const std::string& d : c.password_reminder_days) {
    int days;
    if (!absl::SimpleAtoi(d, &days) || days < 1 || days > 365) {
      return absl::InvalidArgumentError(
          "setting password_reminder_days: each must be a whole number of days 1..365");
    }
    c.reminder_days.push_back(days);
  }
  std::sort(c.reminder_days.rbegin(), c.reminder_days.rend());
  return ValidateHashParams(HashParamsOf(c));
}

HashParams HashParamsOf(const IdentityConfig& c) {
  return {.memory_kib = static_cast<uint32_t>(c.argon2_memory_kib),
          .iterations = static_cast<uint32_t>(c.argon2_iterations),
          .parallelism = static_cast<uint32_t>(c.argon2_parallelism)};
}

LockoutParams LockoutParamsOf(const IdentityConfig& c) {
  LockoutParams p;
  p.max_failures = c.lockout_max_failures;
  p.base_lock = c.lockout_base;
  p.max_lock = c.lockout_max;
  p.lockouts_before_admin = c.lockouts_before_admin;
  return p;
}

ThrottleParams ThrottleParamsOf(const IdentityConfig& c) {
  return {.max_attempts = c.login_throttle_attempts, .window = c.login_throttle_window};
}

SubjectVerificationParams SubjectVerificationParamsOf(const IdentityConfig& c) {
  return {.code_ttl = c.subject_code_ttl,
          .max_tries = c.subject_code_tries,
          .per_address = {.max_attempts = c.subject_codes_per_address, .window = absl::Hours(1)},
          .per_source = {.max_attempts = c.subject_codes_per_source, .window = absl::Hours(1)},
          .tries_per_address = {.max_attempts = c.subject_code_tries_per_address,
                                .window = absl::Hours(24)}};
}

}  // namespace crm::identity
