#include "services/identity/login_guard.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/log/log.h"

namespace crm::identity {

namespace {

constexpr char kThrottlePrefix[] = "crm:identity:throttle:";
constexpr char kFailurePrefix[] = "crm:identity:failures:";
constexpr size_t kMaxLocalSources = 100'000;
// Failure counters expire a day after the last failure (like a failure
// window), so abandoned counters do not pile up.
constexpr absl::Duration kFailureKeyTtl = absl::Hours(24);

absl::Status Throttled(absl::string_view what, absl::Duration retry_after) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "too many ", what, "; retry in ",
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(retry_after)))),
      " s"));
}

}  // namespace

std::string LoginGuard::FailureKey(absl::string_view user_id) {
  return absl::StrCat(kFailurePrefix, user_id);
}

absl::Status LoginGuard::Admit(absl::string_view source) {
  return Count(throttle_, "login-source", source.empty() ? "unknown" : base::SourceKeyOf(source),
               "login attempts from this source");
}

absl::Status LoginGuard::Count(const SourceThrottle& throttle, absl::string_view scope,
                               absl::string_view value, absl::string_view what) {
  const absl::Time now = clock_.Now();
  const std::string key = indexer_.Hex(absl::StrCat(scope, ":", value));
  const int64_t window = throttle.WindowIndex(now);
  const std::string current_key = absl::StrCat(kThrottlePrefix, key, ":", window);
  const std::string previous_key = absl::StrCat(kThrottlePrefix, key, ":", window - 1);
  const std::string ttl_ms =
      absl::StrCat(absl::ToInt64Milliseconds(throttle.params().window * 2) + 1000);
  redis::Pipeline p;
  p.Add("INCR", current_key).Add("PEXPIRE", current_key, ttl_ms).Add("GET", previous_key);
  absl::StatusOr<std::vector<redis::Reply>> replies = redis_.Execute(p);
  if (!replies.ok() || replies->size() != 3 ||
      replies->at(0).type != redis::Reply::Type::kInteger) {
    return CountLocally(throttle, key, what, now);
  }
  SourceWindow w{.index = window, .current = replies->at(0).integer - 1, .previous = 0};
  if (replies->at(2).type == redis::Reply::Type::kString) {
    (void)absl::SimpleAtoi(replies->at(2).str, &w.previous);
  }
  ThrottleDecision d = throttle.Decide(w, now);
  if (d.allowed) return absl::OkStatus();
  // Only allowed attempts count (SourceThrottle's rule): take this one back.
  (void)redis_.Command("DECR", current_key);
  return Throttled(what, d.retry_after);
}

absl::Status LoginGuard::CountLocally(const SourceThrottle& throttle, const std::string& key,
                                      absl::string_view what, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (local_.size() >= kMaxLocalSources && !local_.contains(key)) local_.clear();
  SourceThrottle::Attempt a = throttle.OnAttempt(local_[key], now);
  local_[key] = a.window;
  if (a.decision.allowed) return absl::OkStatus();
  return Throttled(what, a.decision.retry_after);
}

absl::StatusOr<LoginGuard::FailureResult> LoginGuard::RecordFailure(absl::string_view user_id) {
  const absl::Time now = clock_.Now();
  FailureResult result;
  const std::string key = FailureKey(user_id);
  redis::Pipeline p;
  p.Add("INCR", key).Add("PEXPIRE", key, absl::StrCat(absl::ToInt64Milliseconds(kFailureKeyTtl)));
  absl::StatusOr<std::vector<redis::Reply>> replies = redis_.Execute(p);
  std::function<LockoutState(const LockoutState&)> update;
  if (replies.ok() && !replies->empty() && replies->at(0).type == redis::Reply::Type::kInteger) {
    const int64_t failures = replies->at(0).integer;
    if (failures < lockout_.params().max_failures) return result;
    // This failure reaches the limit: lock durably. Racing failures that
    // also reach it find the account locked and change nothing.
    update = [&](const LockoutState& s) {
      if (lockout_.IsLocked(s, now)) return s;
      LockoutState at_limit = s;
      at_limit.consecutive_failures = lockout_.params().max_failures - 1;
      at_limit.last_failure = now;
      FailureOutcome o = lockout_.OnFailure(at_limit, now);
      result.event = o.event;
      result.lock_duration = o.lock_duration;
      return o.state;
    };
  } else {
    result.counted_in_redis = false;
    log::Warn("login_guard.redis_unavailable", {{"fallback", log::Literal("postgresql")}});
    update = [&](const LockoutState& s) {
      FailureOutcome o = lockout_.OnFailure(s, now);
      result.event = o.event;
      result.lock_duration = o.lock_duration;
      return o.state;
    };
  }
  CRM_RETURN_IF_ERROR(credentials_.UpdateLockout(user_id, update).status());
  if (result.event != LockoutEvent::kNone && result.counted_in_redis) (void)redis_.Del(key);
  return result;
}

void LoginGuard::RecordDecoyFailure(absl::string_view username) {
  const std::string key =
      absl::StrCat(kFailurePrefix, "decoy:", indexer_.Hex(absl::StrCat("login-decoy:", username)));
  redis::Pipeline p;
  p.Add("INCR", key).Add("PEXPIRE", key, "60000");
  (void)redis_.Execute(p);
}

absl::Status LoginGuard::RecordSuccess(absl::string_view user_id) {
  (void)redis_.Del(FailureKey(user_id));
  return credentials_.RecordLogin(user_id, clock_.Now());
}

absl::Status LoginGuard::Unlock(absl::string_view user_id) {
  CRM_RETURN_IF_ERROR(
      credentials_
          .UpdateLockout(user_id, [&](const LockoutState& s) { return lockout_.AdminUnlock(s); })
          .status());
  (void)redis_.Del(FailureKey(user_id));
  return absl::OkStatus();
}

}  // namespace crm::identity
