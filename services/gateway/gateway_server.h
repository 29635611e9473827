// The gateway's HTTPS front: a thin HTTPS/JSON server (cpp-httplib over
// OpenSSL) for the admin and subject-request endpoints, the admin console and
// the privacy portal (issue 9). It serves GET /healthz, the JSON API over the
// services' gRPC methods (json_api.h: POST /api/v1/<Service>/<Method>), its
// OpenAPI document (/openapi.json) and identity's token keys as a JWKS
// (/.well-known/jwks.json), the pages behind the links in mail (link_pages.h:
// /u/ one-click unsubscribe, /c/ double opt-in confirmation), static files
// (/static/) and the admin console and privacy portal pages (/console,
// /portal: static_dir's console/index.html and portal/index.html, whose
// scripts call the JSON API), and counts requests in Prometheus metrics.
//
// Every answer carries HSTS, a strict Content-Security-Policy, nosniff and
// no-store; bodies over 1 MiB are refused (413), chunked or compressed ones
// too (411, 415: their size is not known before reading), API bodies must be
// JSON (415), the Authorization header must be "Bearer <printable ASCII>". The access log names the
// route, status and time, never a path's values, a body or a token.
//
// Browsers and the portal connect with ordinary server-authenticated TLS; the
// gateway itself calls the other services over mutual TLS (libs/rpc). The
// certificate files are re-read every tls_refresh, for HTTPS
// (serving_certificate.h) and for the calls alike, so rotating them needs no
// restart.
//
// Behind proxies (trusted_proxies), the client's address is read from
// X-Forwarded-For as client_address.h says; it is what the per-client limit
// counts and what the services get as a request's source address.
//
// Drain() turns /healthz to 503 while everything else is still served, so a
// load balancer stops sending requests before Stop().
//
// Thread-safety: Start/Stop from one thread; Stop may be called from any thread
// (e.g. a signal thread). httplib serves requests on its own thread pool.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"
#include "libs/config/config.h"
#include "services/gateway/client_address.h"
#include "services/gateway/client_limiter.h"

namespace grpc {
class Channel;
}
namespace httplib {
class SSLServer;
struct Request;
struct Response;
}  // namespace httplib
namespace prometheus {
class Collectable;
class Exposer;
class Registry;
}  // namespace prometheus

namespace crm::gateway {

class JsonApi;
class LinkPages;
class ServingCertificate;

struct GatewayConfig {
  // Setting https_listen: "host:port" to serve HTTPS on; port 0 picks a free
  // one. Default "0.0.0.0:8443".
  std::string https_listen = "0.0.0.0:8443";
  // Settings tls_cert, tls_key: the gateway's server certificate and key (PEM).
  // Required.
  std::string tls_cert;
  std::string tls_key;
  // Setting tls_ca: the deployment CA, for calls to the services. Required.
  std::string tls_ca;
  // Setting tls_refresh: how often the three TLS files are re-read (the
  // HTTPS certificate and the calls' mutual TLS). Default 1 min; at least
  // 1 s.
  absl::Duration tls_refresh = absl::Minutes(1);
  // Setting metrics_listen: Prometheus endpoint "host:port"; empty = off.
  // Default "0.0.0.0:9100".
  std::string metrics_listen = "0.0.0.0:9100";
  // Setting log_level. Default info.
  std::string log_level = "info";
  // Setting services: name=host:port,... of the services the API calls
  // (identity, contacts, consent, audit, mailing, erasure); empty: no API.
  std::string services;
  // Setting call_timeout: deadline of each call to a service. Default 10 s.
  absl::Duration call_timeout = absl::Seconds(10);
  // Setting static_dir: the folder served at /static/ (the pages' style
  // sheets and scripts; services/gateway/static in this repository), whose
  // console/index.html and portal/index.html are also served at /console and
  // /portal; empty: none.
  std::string static_dir;
  // Setting rate_limit_per_minute: POST requests a minute from one client
  // address, per replica (client_limiter.h); over it 429. 0: no limit.
  // Default 600.
  int rate_limit_per_minute = 600;
  // Setting trusted_proxies: comma-separated CIDRs of the proxies in front
  // of the gateway (e.g. the Ingress controller's pods), whose
  // X-Forwarded-For is read for the client's address (client_address.h).
  // Default empty: the TCP peer is the client, the header is ignored.
  std::vector<std::string> trusted_proxies;
  // Setting drain_notice: how long /healthz answers 503 NOT_SERVING after
  // SIGTERM/SIGINT while requests are still served, before the server stops
  // (a second signal cuts it short). Default 0.
  absl::Duration drain_notice = absl::ZeroDuration();
};

void AddGatewaySettings(config::Settings& settings, GatewayConfig* config);

// Checks the settings that need no file or network: listen addresses are
// host:port, certificate settings are present, tls_refresh is at least 1 s,
// trusted_proxies are CIDRs. INVALID_ARGUMENT naming the setting otherwise.
absl::Status ValidateGatewayConfig(const GatewayConfig& config);

class GatewayServer {
 public:
  // `clock` times the per-client limit (tests pass a FakeClock).
  explicit GatewayServer(GatewayConfig config, const base::Clock& clock = base::RealClock::Get());
  ~GatewayServer();

  // Loads the certificate, binds the ports and starts serving in the
  // background. Errors: INVALID_ARGUMENT naming a malformed setting,
  // FAILED_PRECONDITION (certificate or key unreadable, or not a pair),
  // UNAVAILABLE (a port cannot be bound).
  absl::Status Start();
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  // From now on /healthz answers 503 {"status":"NOT_SERVING"}; every other
  // route is served as before. Thread-safe.
  void Drain();
  // Stops accepting, lets in-flight requests finish (httplib's worker pool
  // completes the requests it holds before joining), joins. Idempotent.
  void Stop();
  // The serial number (hex) of the HTTPS certificate in use; empty before
  // Start. For tests.
  std::string certificate_serial() const;

 private:
  // The client's address of `req`: its peer's, or X-Forwarded-For's when
  // the peer is a trusted proxy (client_address.h). Every use of a client's
  // address goes through here.
  std::string ClientAddressOf(const httplib::Request& req) const;

  GatewayConfig config_;
  const base::Clock& clock_;
  TrustedProxies proxies_;
  std::atomic<bool> draining_{false};
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> certificate_expiry_;  // outlives exposer_
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<ServingCertificate> certificate_;  // outlives server_, whose SSL_CTX uses it
  std::unique_ptr<httplib::SSLServer> server_;
  std::unique_ptr<JsonApi> api_;
  std::unique_ptr<LinkPages> links_;         // null without mailing
  std::shared_ptr<grpc::Channel> identity_;  // for the JWKS; null without an API
  std::shared_ptr<grpc::Channel> erasure_;   // for export downloads; null without
  std::atomic<int> downloads_{0};            // in progress
  std::unique_ptr<ClientLimiter> limiter_;
  // POST /api/v1/crm.erasure.v1.Erasure/GetAccessExport: the document,
  // streamed from erasure chunk by chunk (erasure authorizes the caller).
  void DownloadExport(const httplib::Request& req, httplib::Response& res);
  std::thread thread_;
  int port_ = 0;
  int metrics_port_ = 0;
};

}  // namespace crm::gateway
