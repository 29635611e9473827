#include "services/gateway/gateway_server.h"

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <fstream>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/base/uuid.h"
#include "libs/json/json.h"
#include "libs/log/log.h"
#include "libs/rpc/certificate_expiry.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/request_id.h"
#include "services/gateway/json_api.h"
#include "services/gateway/link_pages.h"
#include "services/gateway/serving_certificate.h"

namespace crm::gateway {
namespace {

bool Readable(const std::string& path) { return std::ifstream(path).good(); }

constexpr size_t kMaxBody = 1 << 20;
constexpr int kMaxDownloads = 4;

// When the request this thread serves began (httplib serves one request per
// thread at a time).
absl::Time& RequestStart() {
  thread_local absl::Time start = absl::InfinitePast();
  return start;
}

// Pages are the gateway's own static files: nothing else may load or frame.
constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'";

void Answer(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.set_content(std::move(body), "application/json");
}

// "application/json", with or without parameters (charset).
bool IsJson(const std::string& content_type) {
  absl::string_view t = content_type;
  t = t.substr(0, t.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(t), "application/json");
}

// The gateway's own routes in the OpenAPI document.
constexpr char kOwnPaths[] =
    R"("/healthz":{"get":{"operationId":"healthz","security":[],"responses":{"200":{"description":"serving"}}}},)"
    R"("/.well-known/jwks.json":{"get":{"operationId":"jwks","security":[],"responses":{"200":{"description":"identity's token-signing keys as an RFC 7517 set, OKP Ed25519"}}}},)"
    R"("/openapi.json":{"get":{"operationId":"openapi","security":[],"responses":{"200":{"description":"this document"}}}})";

}  // namespace

void AddGatewaySettings(config::Settings& settings, GatewayConfig* config) {
  settings.Add("https_listen", &config->https_listen, "HTTPS listen address host:port");
  settings.Add("tls_cert", &config->tls_cert, "server certificate (PEM)");
  settings.Add("tls_key", &config->tls_key, "server private key (PEM)");
  settings.Add("tls_ca", &config->tls_ca, "deployment CA (PEM), for calls to the services");
  settings.Add("tls_refresh", &config->tls_refresh,
               "how often the TLS files are re-read (rotation); at least 1s");
  settings.Add("metrics_listen", &config->metrics_listen, "Prometheus listen address; empty: off");
  settings.Add("log_level", &config->log_level, "debug, info, warn or error");
  settings.Add("services", &config->services,
               "name=host:port,... of the services the JSON API calls; empty: no API");
  settings.Add("call_timeout", &config->call_timeout, "deadline of each call to a service");
  settings.Add("static_dir", &config->static_dir, "folder served at /static/; empty: none");
  settings.Add("rate_limit_per_minute", &config->rate_limit_per_minute,
               "POST requests a minute per client address (0: no limit)", 0, 1000000);
  settings.Add("trusted_proxies", &config->trusted_proxies,
               "CIDRs of proxies whose X-Forwarded-For names the client; empty: none");
  settings.Add("drain_notice", &config->drain_notice,
               "how long /healthz says NOT_SERVING after SIGTERM before the server stops");
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
  if (!config.services.empty()) {
    if (absl::Status s = config::ParseNamedAddresses("services", config.services).status();
        !s.ok()) {
      return s;
    }
  }
  if (config.call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("setting call_timeout: positive");
  }
  if (config.tls_refresh < absl::Seconds(1)) {
    return absl::InvalidArgumentError("setting tls_refresh: at least 1s");
  }
  if (config.drain_notice < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("setting drain_notice: must not be negative");
  }
  if (absl::Status s = TrustedProxies::Parse(config.trusted_proxies).status(); !s.ok()) return s;
  return absl::OkStatus();
}

GatewayServer::GatewayServer(GatewayConfig config, const base::Clock& clock)
    : config_(std::move(config)),
      clock_(clock),
      registry_(std::make_shared<prometheus::Registry>()) {}

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
  absl::StatusOr<TrustedProxies> proxies = TrustedProxies::Parse(config_.trusted_proxies);
  if (!proxies.ok()) return proxies.status();
  proxies_ = *std::move(proxies);
  absl::StatusOr<std::unique_ptr<ServingCertificate>> certificate =
      ServingCertificate::Load(config_.tls_cert, config_.tls_key);
  if (!certificate.ok()) return certificate.status();
  certificate_ = *std::move(certificate);
  server_ = std::make_unique<httplib::SSLServer>(config_.tls_cert.c_str(), config_.tls_key.c_str());
  if (!server_->is_valid()) {
    return absl::FailedPreconditionError(
        "settings tls_cert/tls_key: not a usable certificate and key");
  }
  // Every handshake takes the pair current then; the files are re-read
  // every tls_refresh (serving_certificate.h).
  certificate_->Install(server_->ssl_context());

  auto& requests = prometheus::BuildCounter()
                       .Name("crm_gateway_http_requests_total")
                       .Help("HTTP requests by route and status")
                       .Register(*registry_);
  if (!config_.services.empty()) {
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> services =
        config::ParseNamedAddresses("services", config_.services);
    if (!services.ok()) return services.status();
    std::map<std::string, std::shared_ptr<grpc::Channel>> backends;
    for (const auto& [name, addr] : *services) {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          rpc::MakeChannel({.target = addr,
                            .tls = {.cert_file = config_.tls_cert,
                                    .key_file = config_.tls_key,
                                    .ca_file = config_.tls_ca,
                                    .refresh_interval = config_.tls_refresh},
                            .expected_server = name});
      if (!channel.ok()) return channel.status();
      backends[name] = *channel;
    }
    if (backends.contains("identity")) identity_ = backends["identity"];
    if (backends.contains("erasure")) erasure_ = backends["erasure"];
    if (backends.contains("mailing")) {
      links_ = std::make_unique<LinkPages>(backends["mailing"], config_.call_timeout);
    }
    api_ = std::make_unique<JsonApi>(std::move(backends), config_.call_timeout);
  }

  server_->set_payload_max_length(kMaxBody);
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_.load()) {
      res.status = 503;
      res.set_content("{\"status\":\"NOT_SERVING\"}", "application/json");
      return;
    }
    res.set_content("{\"status\":\"SERVING\"}", "application/json");
  });
  if (api_ != nullptr) {
    server_->Post(
        R"(/api/v1/([A-Za-z0-9_.]{1,100})/([A-Za-z0-9_]{1,100}))",
        [this](const httplib::Request& req, httplib::Response& res) {
          if (erasure_ != nullptr && req.matches[1].str() == "crm.erasure.v1.Erasure" &&
              req.matches[2].str() == "GetAccessExport") {
            return DownloadExport(req, res);
          }
          const google::protobuf::MethodDescriptor* m =
              api_->Find(req.matches[1].str(), req.matches[2].str());
          if (m == nullptr) {
            return Answer(
                res, 404,
                ErrorJson("NOT_FOUND", "method: not a method of the API (see /openapi.json)"));
          }
          if (!IsJson(req.get_header_value("Content-Type"))) {
            return Answer(res, 415,
                          ErrorJson("INVALID_ARGUMENT", "Content-Type: application/json expected"));
          }
          const std::string request_id = base::NewUuid();
          res.set_header("X-Request-Id", request_id);
          HttpAnswer a = api_->Call(*m, req.get_header_value("Authorization"), req.body, request_id,
                                    {.source_address = ClientAddressOf(req),
                                     .user_agent = req.get_header_value("User-Agent")});
          Answer(res, a.status, std::move(a.body));
        });
    auto post_only = [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      Answer(res, 405, ErrorJson("INVALID_ARGUMENT", "method: the API takes POST"));
    };
    server_->Get(R"(/api/v1/.*)", post_only);
    server_->Put(R"(/api/v1/.*)", post_only);
    server_->Patch(R"(/api/v1/.*)", post_only);
    server_->Delete(R"(/api/v1/.*)", post_only);
    server_->Get("/openapi.json", [this](const httplib::Request&, httplib::Response& res) {
      Answer(res, 200, api_->OpenApi(kOwnPaths));
    });
  }
  if (links_ != nullptr) {
    auto page = [](httplib::Response& res, Page p) {
      res.status = p.status;
      res.set_content(std::move(p.html), "text/html; charset=utf-8");
    };
    auto lang = [](const httplib::Request& req) {
      return LangOf(req.get_header_value("Accept-Language"));
    };
    server_->Get(R"(/u/([^/]{1,600}))",
                 [this, page, lang](const httplib::Request& req, httplib::Response& res) {
                   page(res, links_->UnsubscribeForm(req.matches[1].str(), lang(req)));
                 });
    server_->Post(R"(/u/([^/]{1,600}))", [this, page, lang](const httplib::Request& req,
                                                            httplib::Response& res) {
      // RFC 8058: List-Unsubscribe=One-Click, as a form field or a multipart part.
      const bool one_click = req.get_param_value("List-Unsubscribe") == "One-Click" ||
                             (req.has_file("List-Unsubscribe") &&
                              absl::StripAsciiWhitespace(
                                  req.get_file_value("List-Unsubscribe").content) == "One-Click");
      page(res, links_->Unsubscribe(req.matches[1].str(), one_click, lang(req)));
    });
    server_->Get(R"(/c/([^/]{1,600}))",
                 [this, page, lang](const httplib::Request& req, httplib::Response& res) {
                   page(res, links_->ConfirmForm(req.matches[1].str(), lang(req)));
                 });
    server_->Post(R"(/c/([^/]{1,600}))",
                  [this, page, lang](const httplib::Request& req, httplib::Response& res) {
                    page(res, links_->Confirm(req.matches[1].str(), ClientAddressOf(req),
                                              req.get_header_value("User-Agent"), lang(req)));
                  });
  }
  if (!config_.static_dir.empty() && !server_->set_mount_point("/static", config_.static_dir)) {
    return absl::FailedPreconditionError("setting static_dir: not a readable folder");
  }
  // The admin console and the privacy portal: each one page of static_dir
  // (its script and styles under /static/), read on each request so that a
  // page added or changed is served without a restart.
  if (!config_.static_dir.empty()) {
    for (const char* app : {"console", "portal"}) {
      const std::string index = absl::StrCat(config_.static_dir, "/", app, "/index.html");
      auto serve = [index](const httplib::Request&, httplib::Response& res) {
        std::ifstream in(index, std::ios::binary);
        if (!in) return Answer(res, 404, ErrorJson("NOT_FOUND", "path: not found"));
        std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        res.set_content(std::move(html), "text/html; charset=utf-8");
      };
      server_->Get(absl::StrCat("/", app), serve);
      server_->Get(absl::StrCat("/", app, "/"), serve);
    }
  }
  if (identity_ != nullptr) {
    server_->Get("/.well-known/jwks.json", [this](const httplib::Request&, httplib::Response& res) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + config_.call_timeout));
      crm::identity::v1::GetSigningKeysResponse keys;
      const grpc::Status s = crm::identity::v1::Identity::NewStub(identity_)->GetSigningKeys(
          &ctx, crm::identity::v1::GetSigningKeysRequest(), &keys);
      if (!s.ok()) {
        return Answer(res, HttpStatusOf(s.error_code()),
                      ErrorJson("UNAVAILABLE", "identity: the keys cannot be read now"));
      }
      std::string out = R"({"keys":[)";
      for (int i = 0; i < keys.keys_size(); ++i) {
        const auto& k = keys.keys(i);
        absl::StrAppend(&out, i > 0 ? "," : "",
                        R"({"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":)",
                        json::Quote(k.kid()), R"(,"x":")",
                        absl::WebSafeBase64Escape(k.public_key()), "\"}");
      }
      Answer(res, 200, out + "]}");
    });
  }
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* code = res.status == 404   ? "NOT_FOUND"
                       : res.status == 413 ? "INVALID_ARGUMENT"
                       : res.status == 405 ? "INVALID_ARGUMENT"
                                           : "INTERNAL";
    const char* message = res.status == 404   ? "path: not found"
                          : res.status == 413 ? "body: larger than 1 MiB"
                                              : "the request could not be served";
    Answer(res, res.status, ErrorJson(code, message));
  });
  // Access log and metrics: the route (a pattern, never a path's values),
  // the status and the time; no body, token or query.
  limiter_ = std::make_unique<ClientLimiter>(config_.rate_limit_per_minute, clock_);
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    RequestStart() = absl::Now();
    // Every API POST counts; pages and files do not, nor the mail links'
    // buttons: mailbox providers send one-click unsubscriptions for many
    // people from few addresses, and each must work.
    if (req.method == "POST" && absl::StartsWith(req.path, "/api/")) {
      absl::Duration retry_after;
      if (absl::Status s = limiter_->Admit(ClientAddressOf(req), &retry_after); !s.ok()) {
        res.set_header("Retry-After",
                       absl::StrCat(std::max<int64_t>(
                           1, absl::ToInt64Seconds(absl::Ceil(retry_after, absl::Seconds(1))))));
        Answer(res, 429, ErrorJson("RESOURCE_EXHAUSTED", std::string(s.message())));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    // Before the body is read: the size limit holds for Content-Length only,
    // so a chunked or compressed body (which would be read or inflated
    // without limit) is refused.
    if (req.has_header("Transfer-Encoding")) {
      Answer(res, 411, ErrorJson("INVALID_ARGUMENT", "Transfer-Encoding: send a Content-Length"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (const std::string enc = req.get_header_value("Content-Encoding");
        !enc.empty() && !absl::EqualsIgnoreCase(enc, "identity")) {
      Answer(res, 415, ErrorJson("INVALID_ARGUMENT", "Content-Encoding: not accepted"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server_->set_logger([this, &requests](const httplib::Request& req, const httplib::Response& res) {
    std::string route = "other";
    if (req.path == "/healthz" || req.path == "/openapi.json" ||
        req.path == "/.well-known/jwks.json") {
      route = req.path;
    } else if (req.path == "/console" || req.path == "/console/" || req.path == "/portal" ||
               req.path == "/portal/") {
      route = req.path.substr(0, req.path.find('/', 1));
    } else if (absl::StartsWith(req.path, "/u/") || absl::StartsWith(req.path, "/c/") ||
               absl::StartsWith(req.path, "/static/")) {
      route = req.path.substr(0, req.path.find('/', 1));  // never the token or file
    } else if (absl::StartsWith(req.path, "/api/v1/")) {
      const google::protobuf::MethodDescriptor* m =
          api_ == nullptr || req.matches.size() != 3
              ? nullptr
              : api_->Find(req.matches[1].str(), req.matches[2].str());
      route = m == nullptr ? "api:unknown" : absl::StrCat("api:", m->full_name());
      if (req.path == "/api/v1/crm.erasure.v1.Erasure/GetAccessExport") {
        route = "api:crm.erasure.v1.Erasure.GetAccessExport";
      }
    }
    requests.Add({{"route", route}, {"status", absl::StrCat(res.status)}}).Increment();
    log::Info("http.request", {{"method", log::Id(req.method)},
                               {"route", log::Id(route)},
                               {"status", res.status},
                               {"duration", RequestStart() == absl::InfinitePast()
                                                ? absl::ZeroDuration()
                                                : absl::Now() - RequestStart()}});
    RequestStart() = absl::InfinitePast();  // a request answered before routing has none
  });
  server_->set_default_headers(
      {{"Strict-Transport-Security", "max-age=63072000; includeSubDomains"},
       {"Content-Security-Policy", kContentSecurityPolicy},
       {"X-Content-Type-Options", "nosniff"},
       {"X-Frame-Options", "DENY"},
       {"Referrer-Policy", "no-referrer"},
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
    certificate_expiry_ = std::make_shared<rpc::CertificateExpiry>(config_.tls_cert);
    exposer_->RegisterCollectable(certificate_expiry_);
    auto ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? 0 : ports[0];
  }
  certificate_->StartRefresh(config_.tls_refresh);
  // The socket is bound and listening: connections queue until the thread accepts.
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

std::string GatewayServer::ClientAddressOf(const httplib::Request& req) const {
  if (proxies_.empty()) return req.remote_addr;
  // Every X-Forwarded-For header, in the order received (one list).
  std::vector<std::string> forwarded_for;
  const auto range = req.headers.equal_range("X-Forwarded-For");
  for (auto it = range.first; it != range.second; ++it) forwarded_for.push_back(it->second);
  return proxies_.ClientAddress(req.remote_addr, forwarded_for);
}

void GatewayServer::Drain() { draining_.store(true); }

std::string GatewayServer::certificate_serial() const {
  return certificate_ == nullptr ? "" : certificate_->serial();
}

void GatewayServer::DownloadExport(const httplib::Request& req, httplib::Response& res) {
  namespace ev1 = crm::erasure::v1;
  if (!IsJson(req.get_header_value("Content-Type"))) {
    return Answer(res, 415,
                  ErrorJson("INVALID_ARGUMENT", "Content-Type: application/json expected"));
  }
  const std::string auth = req.get_header_value("Authorization");
  ev1::GetAccessExportRequest request;
  std::optional<HttpAnswer> bad = ParseBody(req.body, request);
  if (!bad.has_value()) bad = CheckAuthorization(auth);
  if (bad.has_value()) return Answer(res, bad->status, std::move(bad->body));
  // Each download holds a worker thread while the client reads: a few at a
  // time, so that slow readers cannot starve the other routes.
  if (downloads_.fetch_add(1) >= kMaxDownloads) {
    downloads_.fetch_sub(1);
    res.set_header("Retry-After", "10");
    return Answer(res, 503, ErrorJson("UNAVAILABLE", "too many downloads at once; try again"));
  }
  struct Slot {
    std::atomic<int>* n;
    ~Slot() { n->fetch_sub(1); }
  };
  std::shared_ptr<Slot> slot(new Slot{&downloads_});
  // The call lives as long as the download: the provider reads chunk by
  // chunk, so the gateway holds one chunk at a time.
  struct Download {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<ev1::AccessExportChunk>> reader;
    ev1::AccessExportChunk chunk;
    std::shared_ptr<Slot> slot;  // released with the download
  };
  auto d = std::make_shared<Download>();
  d->slot = slot;
  d->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(10)));
  d->ctx.AddMetadata(rpc::kRequestIdHeader, base::NewUuid());
  if (!auth.empty()) d->ctx.AddMetadata("authorization", auth);
  d->reader = ev1::Erasure::NewStub(erasure_)->GetAccessExport(&d->ctx, request);
  // The first chunk decides the status: an error before any byte is a JSON error.
  if (!d->reader->Read(&d->chunk)) {
    const grpc::Status s = d->reader->Finish();
    if (!s.ok()) {
      HttpAnswer a = ErrorAnswer(s);
      return Answer(res, a.status, std::move(a.body));
    }
    return Answer(res, 502, ErrorJson("INTERNAL", "the export was empty"));
  }
  res.set_header("Content-Disposition", "attachment; filename=\"personal-data.json\"");
  res.set_chunked_content_provider(
      "application/json",
      [d](size_t, httplib::DataSink& sink) {
        if (!d->chunk.data().empty() &&
            !sink.write(d->chunk.data().data(), d->chunk.data().size())) {
          return false;
        }
        d->chunk.clear_data();
        if (d->reader->Read(&d->chunk)) return true;
        // The end: a stream that broke must not look complete, so the
        // connection is dropped instead of ending the chunked body.
        if (!d->reader->Finish().ok()) return false;
        sink.done();
        return true;
      },
      [d](bool) { d->ctx.TryCancel(); });
}

void GatewayServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  if (certificate_) certificate_->StopRefresh();
  exposer_.reset();
}

}  // namespace crm::gateway
