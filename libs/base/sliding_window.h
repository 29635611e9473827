// SourceThrottle: a sliding-window limit on attempts per key (a client
// address, an e-mail address's HMAC, ...), so that one client cannot cheaply
// try many accounts, ask for many codes or flood an endpoint. The estimate for
// the window containing `now` is
//   previous * (1 - elapsed / window) + current
// where previous/current are the attempts counted in the previous and current
// fixed windows; an attempt is allowed while the estimate is below
// max_attempts, and only allowed attempts are counted. The caller keeps the
// counters (two Redis keys per source in identity's LoginGuard, a bounded map
// in the gateway) and passes the current time.
//
// Thread-safety: immutable after Create(); all methods are const, pure and may
// be called concurrently.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::base {

struct ThrottleParams {
  // Attempts allowed per window and source. Default 20. Valid: >= 1.
  int64_t max_attempts = 20;
  // Window length. Default 1 minute. Valid: >= 1 ms.
  absl::Duration window = absl::Minutes(1);
};

// The counters for one source: attempts in fixed window `index` (windows are
// numbered from the Unix epoch) and in the one before it. Default: none.
struct SourceWindow {
  int64_t index = 0;
  int64_t current = 0;
  int64_t previous = 0;

  friend bool operator==(const SourceWindow&, const SourceWindow&) = default;
};

struct ThrottleDecision {
  bool allowed = false;
  // When denied: the shortest wait after which an attempt would be allowed
  // (if no other attempt is counted meanwhile). Zero when allowed.
  absl::Duration retry_after = absl::ZeroDuration();
};

class SourceThrottle {
 public:
  // Fails with INVALID_ARGUMENT naming the setting if `params` is invalid.
  static absl::StatusOr<SourceThrottle> Create(const ThrottleParams& params = ThrottleParams());

  const ThrottleParams& params() const { return params_; }

  // The number of the fixed window containing `now` (floor of the time since
  // the Unix epoch divided by the window), e.g. for a Redis key suffix.
  int64_t WindowIndex(absl::Time now) const;

  // `w` moved forward to the window containing `now`: unchanged in the same
  // window; current becomes previous in the next one; both zero after a gap.
  // A `now` in an earlier window (a clock step back) leaves `w` unchanged.
  SourceWindow Roll(const SourceWindow& w, absl::Time now) const;

  // Whether one more attempt is allowed at `now`, given the counts `w` (rolled
  // to `now` first, so stale counts are fine). Does not count the attempt.
  ThrottleDecision Decide(const SourceWindow& w, absl::Time now) const;

  // Roll + Decide, counting the attempt in the returned window if allowed.
  struct Attempt {
    SourceWindow window;
    ThrottleDecision decision;
  };
  Attempt OnAttempt(const SourceWindow& w, absl::Time now) const;

 private:
  explicit SourceThrottle(const ThrottleParams& params) : params_(params) {}
  absl::Time WindowStart(int64_t index) const;

  ThrottleParams params_;
};

// The key a client address is limited by: an IPv4 address as it is, an IPv6
// address by its /64 (one host commonly has a whole /64 to pick from, e.g.
// "2001:db8:1:2::/64"), anything else (empty, a name) as given.
std::string SourceKeyOf(absl::string_view address);

}  // namespace crm::base
