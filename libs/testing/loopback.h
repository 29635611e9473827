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

// A TCP port on 127.0.0.1 for a server a test is about to start, kept from
// every other test process until this one exits. Picking a port by binding
// port 0 and closing it is racy when suites run in parallel: the kernel may
// give the same port to another suite, or as the local port of someone's
// outgoing connection, before the server binds it. So ports come from below
// the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range),
// which outgoing connections never use, each claimed by an flock on
// $TMPDIR/crm-test-ports-<uid>/<port> held until the process exits, and
// checked free by a bind. INTERNAL if no port is left (or, when the
// ephemeral range starts too low to leave room, the old way fails).
absl::StatusOr<int> PickFreePort();

}  // namespace crm::testing
