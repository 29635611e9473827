#include "libs/base/sliding_window.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace crm::base {

absl::StatusOr<SourceThrottle> SourceThrottle::Create(const ThrottleParams& params) {
  if (params.max_attempts < 1) return absl::InvalidArgumentError("max_attempts: must be >= 1");
  if (params.window < absl::Milliseconds(1) || params.window > absl::Hours(24 * 366)) {
    return absl::InvalidArgumentError("window: must be 1 ms..366 days");
  }
  return SourceThrottle(params);
}

int64_t SourceThrottle::WindowIndex(absl::Time now) const {
  absl::Duration rem;
  const int64_t q = absl::IDivDuration(now - absl::UnixEpoch(), params_.window, &rem);
  // IDivDuration truncates towards zero; floor it for times before the epoch.
  return rem < absl::ZeroDuration() ? q - 1 : q;
}

absl::Time SourceThrottle::WindowStart(int64_t index) const {
  return absl::UnixEpoch() + params_.window * index;
}

SourceWindow SourceThrottle::Roll(const SourceWindow& w, absl::Time now) const {
  const int64_t index = WindowIndex(now);
  if (index <= w.index) return w;
  if (index == w.index + 1) return SourceWindow{index, 0, w.current};
  return SourceWindow{index, 0, 0};
}

namespace {

// The smallest elapsed time e in [0, window] (nanoseconds) within a window at
// which previous * (window - e) + current * window < max * window, i.e. the
// sliding estimate drops below max; `window` + 1 if it never does in this
// window. Exact integer arithmetic: no rounding at the boundaries.
absl::int128 FirstAllowedElapsed(absl::int128 window, int64_t previous, int64_t current,
                                 int64_t max) {
  if (current >= max) return window + 1;
  if (previous <= 0) return 0;
  const absl::int128 x = absl::int128(max - current) * window;
  const absl::int128 ceil_div = (x + previous - 1) / previous;
  const absl::int128 e = window - ceil_div + 1;
  return e < 0 ? absl::int128(0) : e;
}

}  // namespace

ThrottleDecision SourceThrottle::Decide(const SourceWindow& in, absl::Time now) const {
  const SourceWindow w = Roll(in, now);
  const absl::int128 window_ns = absl::ToInt64Nanoseconds(params_.window);
  // A clock that stepped back into an earlier window counts as the start of
  // w's window: the previous window then weighs fully (the strictest reading).
  const absl::int128 elapsed =
      std::max<int64_t>(0, absl::ToInt64Nanoseconds(now - WindowStart(w.index)));
  const absl::int128 first =
      FirstAllowedElapsed(window_ns, w.previous, w.current, params_.max_attempts);
  ThrottleDecision d;
  if (elapsed >= first) {
    d.allowed = true;
    return d;
  }
  absl::int128 wait;
  if (first <= window_ns) {
    wait = first - elapsed;
  } else {
    // Not before the next window, where `current` becomes `previous`.
    wait = window_ns - elapsed + FirstAllowedElapsed(window_ns, w.current, 0, params_.max_attempts);
  }
  d.retry_after = absl::Nanoseconds(static_cast<int64_t>(wait));
  return d;
}

SourceThrottle::Attempt SourceThrottle::OnAttempt(const SourceWindow& w, absl::Time now) const {
  Attempt a{Roll(w, now), Decide(w, now)};
  if (a.decision.allowed) ++a.window.current;
  return a;
}

std::string SourceKeyOf(absl::string_view address) {
  in6_addr v6;
  const std::string text(address);
  if (text.find(':') == std::string::npos || inet_pton(AF_INET6, text.c_str(), &v6) != 1) {
    return text;
  }
  // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    char v4[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &v6.s6_addr[12], v4, sizeof v4) == nullptr ? text : v4;
  }
  for (int i = 8; i < 16; ++i) v6.s6_addr[i] = 0;
  char out[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, &v6, out, sizeof out) == nullptr) return text;
  return absl::StrCat(out, "/64");
}

}  // namespace crm::base
