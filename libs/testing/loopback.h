// A TCP connection to a port on 127.0.0.1, for tests that speak a protocol by
// hand (HTTP to /metrics, a TLS handshake, a Redis PING). Thread-safe.
#pragma once

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace crm::testing {

// A connected socket to 127.0.0.1:port whose reads and writes time out after
// `timeout`; the caller closes it. INTERNAL if no socket can be made,
// UNAVAILABLE if nothing accepts the connection.
absl::StatusOr<int> ConnectLoopback(int port, absl::Duration timeout = absl::Seconds(10));

}  // namespace crm::testing
