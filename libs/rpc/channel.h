// Client side of our mutual TLS: channels to other services, with our
// certificate (re-read from files as they rotate), a default deadline,
// keepalive, retries of UNAVAILABLE, and the current request id attached to
// every call (see request_id.h).
//
// Used by every service that calls another (the outbox relay to audit, the
// erasure orchestrator to everyone), by tests and by benchmarks.
//
// Thread-safety: MakeChannel and NewClientContext are thread-safe; a channel
// is shared by any number of threads; a ClientContext serves one call.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/config/config.h"
#include "libs/rpc/tls_files.h"

namespace crm::rpc {

struct ChannelConfig {
  // "host:port" of the server, e.g. "localhost:50054". Required.
  std::string target;
  // Our certificate, key and CA. Required.
  TlsFiles tls;
  // If set (a short name like "audit"), the server's certificate must carry
  // spiffe://crm.local/<expected_server>, and the host name is not checked
  // (so "audit.crm.svc:50054" works with a certificate naming only the
  // identity). If empty, the host name of `target` must match a DNS or IP SAN.
  std::string expected_server;
  // Deadline of contexts made by NewClientContext. Default 5 s.
  absl::Duration default_deadline = absl::Seconds(5);
  // Interval of HTTP/2 keepalive pings, and how long to wait for their ack.
  // Defaults 30 s and 10 s (ServerRunner accepts pings every 10 s or slower).
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Longest wait between reconnection attempts to an unreachable server
  // (gRPC's own default is 120 s: too slow to notice a peer coming back).
  // Default 10 s.
  absl::Duration max_reconnect_backoff = absl::Seconds(10);
  // Retry of calls failing with UNAVAILABLE (service config retryPolicy):
  // total attempts (1 = no retry, at most 5), first backoff, cap, multiplier.
  // Only safe because our RPCs are idempotent. Defaults 4, 100 ms, 2 s, 2.
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  double backoff_multiplier = 2.0;
  // Largest message sent or received. Default 4 MiB.
  int max_message_bytes = 4 * 1024 * 1024;
};

// Registers `<prefix>_target`, `<prefix>_deadline` and `<prefix>_identity`
// (expected_server) for `config`, e.g. prefix "audit" -> --audit_target.
// The TLS files are usually copied from the ServerConfig after parsing.
void AddChannelSettings(crm::config::Settings& settings, absl::string_view prefix,
                        ChannelConfig* config);

// The service-config JSON of `config`'s channels: round-robin over every
// address the target resolves to, and the retry policy (none if max_attempts
// is 1).
std::string ServiceConfigJson(const ChannelConfig& config);

// A channel to config.target over mutual TLS. It connects lazily: the result
// is returned before (and regardless of whether) the server is reachable.
// INVALID_ARGUMENT for an empty target, a bad retry setting or missing TLS
// paths; FAILED_PRECONDITION if a TLS file is unreadable.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelConfig& config);

// A context with deadline now + config.default_deadline and, if this thread
// has a current request id, the x-request-id metadata.
std::unique_ptr<grpc::ClientContext> NewClientContext(const ChannelConfig& config);
// The same with deadline now + `deadline` and, unless `bearer_token` is
// empty, "authorization: Bearer <token>": a call to another service's API
// with this service's own token (service::ServiceToken).
std::unique_ptr<grpc::ClientContext> NewClientContext(absl::Duration deadline,
                                                      absl::string_view bearer_token = "");

}  // namespace crm::rpc
