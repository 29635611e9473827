// The network side of crmctl: a unary call by method name with serialized
// bytes (rpc::UnaryCall), the grpc.health.v1 check of a gRPC service, and
// GET /healthz on the HTTPS gateway, all over mutual TLS with the operator's
// certificate. Knows nothing of JSON or descriptors (see proto_registry.h).
//
// Thread-safety: the functions are thread-safe; `crmctl health` runs the
// checks of several services in parallel.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/generic_call.h"
#include "libs/rpc/tls_files.h"

namespace crm::crmctl {

// The unary call by method name: rpc::UnaryCall (libs/rpc/generic_call.h).
using rpc::UnaryCall;

// The outcome of one health check.
struct HealthResult {
  bool serving = false;
  // "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", "UNKNOWN", a gRPC code name
  // ("UNAVAILABLE") for a failed call, or "HTTP <code>" / a transport error
  // for the gateway.
  std::string status;
  // Why it is not serving (the error message); empty when serving.
  std::string detail;
  // Time of the whole check, including connecting and the TLS handshake.
  absl::Duration latency;
};

// grpc.health.v1.Health/Check for the whole server ("") over a channel made
// from `config` (no retries). Never fails: errors become the result.
HealthResult CheckGrpcHealth(const rpc::ChannelConfig& config, absl::Duration timeout);

// GET https://<address>/healthz with the operator's certificate, verifying
// the server chains to tls.ca_file and, if `expected_server` is set, that it
// carries spiffe://crm.local/<expected_server> (then the host name is not
// checked, like MakeChannel). 200 is SERVING. Never fails.
HealthResult CheckHttpsHealth(const std::string& address, const rpc::TlsFiles& tls,
                              const std::string& expected_server, absl::Duration timeout);

// The name of a gRPC status code ("PERMISSION_DENIED").
std::string CodeName(grpc::StatusCode code);

}  // namespace crm::crmctl
