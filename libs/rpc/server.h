// ServerRunner: how every service serves gRPC. It builds a grpc::Server that
//  - requires mutual TLS (our CA's client certificates, verified at the
//    handshake; the only plaintext port is the optional health port below),
//    with the certificate files re-read as they rotate;
//  - enforces the AccessPolicy on every call before any handler runs (an
//    AuthMetadataProcessor on the server credentials; see docs/rpc.md), and
//    refuses to start when a registered method has no policy entry;
//  - gives every call a request id (request_id.h), counts and times it in
//    Prometheus metrics served on a separate port at /metrics, and logs one
//    line per call (method, code, duration; never payload); the same
//    endpoint reports when tls_cert expires (certificate_expiry.h);
//  - serves grpc.health.v1 (SERVING once started, NOT_SERVING while
//    draining) and server reflection;
//  - optionally serves grpc.health.v1 alone on a second, plaintext port
//    (health_listen) for Kubernetes' gRPC probes, which cannot speak TLS:
//    the same statuses, plus "liveness", SERVING until the process stops;
//  - on SIGTERM/SIGINT or Shutdown() stops accepting, lets in-flight calls
//    finish up to the grace period, and returns from Wait().
//
//   ServerConfig cfg{.service = "audit"};
//   crm::config::Settings s("crm-audit");
//   AddServerSettings(s, &cfg);
//   ParseOrExit(s, argc, argv, environ);
//   AccessPolicy policy;
//   policy.Allow("/crm.audit.v1.AuditIngest/AppendEvents", {"contacts", "identity"});
//   ServerRunner runner(cfg, std::move(policy));
//   runner.RegisterService(&ingest_service);
//   if (auto s = runner.Start(); !s.ok()) ...;
//   return runner.Wait().ok() ? 0 : 1;
//
// Thread-safety: configure (RegisterService, registry()) and Start from one
// thread; Shutdown() may be called from any thread at any time; Wait() from
// one thread. Signal handling is process-wide: only one ServerRunner at a time
// may have handle_signals set.
#pragma once

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/config/config.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/tls_files.h"

namespace prometheus {
class Collectable;
class Exposer;
class Registry;
}  // namespace prometheus

namespace crm::rpc {

// The service name the health port (health_listen) reports SERVING for as
// long as the process serves, draining or not: what liveness probes check
// (readiness probes check "").
inline constexpr char kLivenessService[] = "liveness";

struct ServerConfig {
  // The service's identity ("audit"): its certificate must carry
  // spiffe://crm.local/<service>. Empty skips that check (tests). Not a
  // setting: fixed by the binary.
  std::string service;
  // Setting grpc_listen: address to serve on, "host:port"; port 0 picks a
  // free one (see ServerRunner::port()). Default "127.0.0.1:0".
  std::string listen = "127.0.0.1:0";
  // Settings tls_cert, tls_key, tls_ca, tls_refresh. Required (no default).
  TlsFiles tls;
  // Setting metrics_listen: address of the Prometheus endpoint (/metrics),
  // "host:port" with port 0 = a free port (see metrics_port()); empty = no
  // endpoint. Default "127.0.0.1:0".
  std::string metrics_listen = "127.0.0.1:0";
  // Setting health_listen: address of a plaintext port that serves only
  // grpc.health.v1.Health (for Kubernetes' gRPC probes), "host:port" with
  // port 0 = a free port (see health_port()); empty = no such port. Its
  // statuses follow the main server's ("" and every registered service);
  // "liveness" is SERVING from Start until the server has stopped, draining
  // or not. Default empty.
  std::string health_listen;
  // Setting max_message_bytes: largest request or response, bytes. Default
  // 4 MiB.
  int max_message_bytes = 4 * 1024 * 1024;
  // Setting shutdown_grace: how long in-flight calls may run once shutdown
  // begins; then they are cancelled. Default 10 s.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Setting drain_notice: how long health reports NOT_SERVING while new
  // calls are still accepted, before the server stops accepting (lets load
  // balancers move away). A second signal or Shutdown() cuts it short.
  // Default 0 s.
  absl::Duration drain_notice = absl::ZeroDuration();
  // Setting max_connection_age: how long a client connection may live before
  // the server asks the client to reconnect (GOAWAY; calls in flight get
  // shutdown_grace to finish). Callers balancing over a headless Service
  // resolve again when they reconnect, so new replicas receive calls. 0: no
  // limit. Default 5 min (gRPC adds up to 10 % jitter).
  absl::Duration max_connection_age = absl::Minutes(5);
  // Whether Start installs SIGTERM/SIGINT handlers that make Wait() return.
  // Default true; in-process tests with several servers turn it off. Not a
  // setting.
  bool handle_signals = true;
};

// Registers grpc_listen, tls_cert, tls_key, tls_ca, tls_refresh,
// metrics_listen, health_listen, max_message_bytes, shutdown_grace,
// drain_notice and max_connection_age, bound to `config` (whose current values
// are the defaults).
void AddServerSettings(crm::config::Settings& settings, ServerConfig* config);

class ServerRunner {
 public:
  // `registry` is the one served at /metrics; null makes a new one. Pass one
  // when metrics must be registered before the policy is complete.
  ServerRunner(ServerConfig config, AccessPolicy policy,
               std::shared_ptr<prometheus::Registry> registry = nullptr);
  // Shuts down and waits if started and not yet stopped.
  ~ServerRunner();
  ServerRunner(const ServerRunner&) = delete;
  ServerRunner& operator=(const ServerRunner&) = delete;

  // Adds a service (not owned; must outlive the runner). Before Start only.
  void RegisterService(grpc::Service* service);

  // The registry behind /metrics; add your own metric families to it.
  // Available from construction.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Validates the config, binds the ports and starts serving; returns once
  // listening. Errors: INVALID_ARGUMENT (a malformed setting or policy,
  // naming it), FAILED_PRECONDITION (unreadable TLS files, a certificate of
  // another identity, a registered method without policy entry (all of them
  // are named), called twice, or another runner handles signals),
  // UNAVAILABLE (an address cannot be bound).
  absl::Status Start();

  // The bound gRPC port; 0 before Start.
  int port() const { return port_; }
  // The bound metrics port; 0 before Start or when metrics are off.
  int metrics_port() const { return metrics_port_; }
  // The bound plaintext health port; 0 before Start or when health_listen is
  // empty.
  int health_port() const { return health_port_; }

  // Blocks until SIGTERM/SIGINT (if handled) or Shutdown(); then reports
  // NOT_SERVING, waits drain_notice, stops accepting, lets in-flight calls
  // finish until shutdown_grace has passed (cancelling the rest), stops the
  // health port last, and returns OK. FAILED_PRECONDITION if not started or
  // already stopped.
  absl::Status Wait();

  // Makes Wait() begin shutting down (a second call cuts drain_notice
  // short). Thread-safe; no effect before Start or after Wait returned.
  void Shutdown();

  // Sets the health of every service (and the overall "") to SERVING or
  // NOT_SERVING, on the main server and the health port alike ("liveness"
  // is left alone). After Start only.
  void SetServing(bool serving);

  // The server, for in-process channels in tests. Null before Start.
  grpc::Server* server() { return server_.get(); }

  struct Shared;  // State shared with the credentials' processor and interceptors.

 private:
  ServerConfig config_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Shared> shared_;
  std::vector<grpc::Service*> services_;
  std::vector<std::string> service_names_;
  int wake_pipe_[2] = {-1, -1};
  bool started_ = false;
  bool stopped_ = false;
  bool owns_signals_ = false;
  int port_ = 0;
  int metrics_port_ = 0;
  int health_port_ = 0;
  std::shared_ptr<prometheus::Collectable> certificate_expiry_;  // Outlives exposer_.
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<grpc::CallbackGenericService> health_fallback_;  // Outlives health_server_.
  std::unique_ptr<grpc::Server> health_server_;                    // Null without health_listen.
  std::unique_ptr<grpc::Server> server_;                           // Last: destroyed first.
};

}  // namespace crm::rpc
