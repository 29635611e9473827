// ClientLimiter: the gateway's per-client request limit. Each API POST from
// one client address (an IPv6 one by its /64) counts against a sliding
// window (base::SourceThrottle, the one behind identity's login throttling);
// over the limit the gateway answers 429 with Retry-After before calling any
// service. The counts live in this process only (a bounded map; no address
// is written anywhere), so with N replicas a client may reach N times the
// limit: it guards the services from one noisy client, while identity's
// Redis-shared limits guard the logins and the subject codes.
//
// The client is who GatewayServer says (client_address.h): behind proxies,
// set trusted_proxies so that X-Forwarded-For names it; otherwise every
// request has the proxy's address and shares one limit.
//
// Thread-safe.
#pragma once

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"
#include "libs/base/sliding_window.h"

namespace crm::gateway {

class ClientLimiter {
 public:
  // `per_minute` requests a minute per client; 0: no limit.
  ClientLimiter(int per_minute, const base::Clock& clock);

  // OK, or RESOURCE_EXHAUSTED "too many requests from this address; retry in
  // N s" with *retry_after set.
  absl::Status Admit(const std::string& client, absl::Duration* retry_after);

 private:
  static constexpr size_t kMaxClients = 100'000;
  const std::optional<base::SourceThrottle> throttle_;  // none: no limit
  const base::Clock& clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, base::SourceWindow> windows_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::gateway
