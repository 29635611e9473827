#include "services/gateway/gateway_server.h"

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/log/log.h"

namespace crm::gateway {
namespace {

bool Readable(const std::string& path) { return std::ifstream(path).good(); }

}  // namespace

void AddGatewaySettings(config::Settings& settings, GatewayConfig* config) {
  settings.Add("https_listen", &config->https_listen, "HTTPS listen address host:port");
  settings.Add("tls_cert", &config->tls_cert, "server certificate (PEM)");
  settings.Add("tls_key", &config->tls_key, "server private key (PEM)");
  settings.Add("tls_ca", &config->tls_ca, "deployment CA (PEM), for calls to the services");
  settings.Add("metrics_listen", &config->metrics_listen, "Prometheus listen address; empty: off");
  settings.Add("log_level", &config->log_level, "debug, info, warn or error");
}

absl::Status ValidateGatewayConfig(const GatewayConfig& config) {
  std::string host;
  int port;
  if (absl::Status s = config::ParseHostPort("https_listen", config.https_listen, &host, &port);
      !s.ok()) {
    return s;
  }
  if (!config.metrics_listen.empty()) {
    if (absl::Status s =
            config::ParseHostPort("metrics_listen", config.metrics_listen, &host, &port);
        !s.ok()) {
      return s;
    }
  }
  for (const auto& [name, path] :
       {std::pair<const char*, const std::string&>{"tls_cert", config.tls_cert},
        {"tls_key", config.tls_key},
        {"tls_ca", config.tls_ca}}) {
    if (path.empty())
      return absl::InvalidArgumentError(absl::StrCat("setting ", name, ": required"));
  }
  return absl::OkStatus();
}

GatewayServer::GatewayServer(GatewayConfig config)
    : config_(std::move(config)), registry_(std::make_shared<prometheus::Registry>()) {}

GatewayServer::~GatewayServer() { Stop(); }

absl::Status GatewayServer::Start() {
  std::string host;
  int port = 0;
  if (absl::Status s = ValidateGatewayConfig(config_); !s.ok()) return s;
  if (absl::Status s = config::ParseHostPort("https_listen", config_.https_listen, &host, &port);
      !s.ok()) {
    return s;
  }
  for (const auto& [name, path] :
       {std::pair<const char*, const std::string&>{"tls_cert", config_.tls_cert},
        {"tls_key", config_.tls_key},
        {"tls_ca", config_.tls_ca}}) {
    if (!Readable(path)) {
      return absl::FailedPreconditionError(
          absl::StrCat("setting ", name, ": cannot read the file"));
    }
  }
  server_ = std::make_unique<httplib::SSLServer>(config_.tls_cert.c_str(), config_.tls_key.c_str());
  if (!server_->is_valid()) {
    return absl::FailedPreconditionError(
        "settings tls_cert/tls_key: not a usable certificate and key");
  }

  auto& requests = prometheus::BuildCounter()
                       .Name("crm_gateway_http_requests_total")
                       .Help("HTTP requests by route and status")
                       .Register(*registry_);
  auto* healthz_ok = &requests.Add({{"route", "/healthz"}, {"status", "200"}});
  auto* not_found = &requests.Add({{"route", "other"}, {"status", "404"}});

  server_->Get("/healthz", [healthz_ok](const httplib::Request&, httplib::Response& res) {
    healthz_ok->Increment();
    res.set_content("{\"status\":\"SERVING\"}", "application/json");
  });
  server_->set_error_handler([not_found](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) {
      not_found->Increment();
      res.set_content("{\"error\":\"NOT_FOUND\"}", "application/json");
    }
  });
  server_->set_default_headers({{"Strict-Transport-Security", "max-age=63072000"},
                                {"X-Content-Type-Options", "nosniff"},
                                {"Cache-Control", "no-store"}});

  if (port == 0) {
    port_ = server_->bind_to_any_port(host.c_str());
  } else {
    port_ = server_->bind_to_port(host.c_str(), port) ? port : -1;
  }
  if (port_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("https_listen: cannot listen on ", config_.https_listen));
  }

  if (!config_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics_listen);
    } catch (const std::exception&) {
      return absl::UnavailableError(
          absl::StrCat("metrics_listen: cannot listen on ", config_.metrics_listen));
    }
    exposer_->RegisterCollectable(registry_);
    auto ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? 0 : ports[0];
  }
  // The socket is bound and listening: connections queue until the thread accepts.
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void GatewayServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  exposer_.reset();
}

}  // namespace crm::gateway
