#include "libs/rpc/server.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <exception>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/log/log.h"
#include "libs/pki/pki.h"
#include "libs/rpc/certificate_expiry.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"

namespace crm::rpc {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr int kNumCodes = 17;

crm::log::Literal CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// Codes that mean the server (or something behind it) failed, as opposed to
// the caller's request being refused on its merits: logged at warn.
bool IsServerError(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DATA_LOSS:
      return true;
    default:
      return false;
  }
}

// Write end of the self-pipe of the runner that handles signals, or -1.
std::atomic<int> g_signal_fd{-1};
struct sigaction g_old_sigterm;
struct sigaction g_old_sigint;

void OnSignal(int /*sig*/) {
  const int saved_errno = errno;
  const int fd = g_signal_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const char c = 's';
    [[maybe_unused]] ssize_t n = write(fd, &c, 1);  // Async-signal-safe.
  }
  errno = saved_errno;
}

}  // namespace

// Metrics of one method, created on first use and then reused without
// touching the families' locks.
struct MethodMetrics {
  prometheus::Gauge* in_flight;
  prometheus::Histogram* latency;
  std::array<std::atomic<prometheus::Counter*>, kNumCodes> calls{};
};

struct ServerRunner::Shared {
  explicit Shared(AccessPolicy p, prometheus::Registry& registry)
      : policy(std::move(p)),
        calls(prometheus::BuildCounter()
                  .Name("crm_rpc_server_calls_total")
                  .Help("gRPC calls handled, by full method name and status code")
                  .Register(registry)),
        latency(prometheus::BuildHistogram()
                    .Name("crm_rpc_server_latency_seconds")
                    .Help("gRPC call latency from receipt of metadata to sending of status")
                    .Register(registry)),
        in_flight(prometheus::BuildGauge()
                      .Name("crm_rpc_server_in_flight")
                      .Help("gRPC calls being handled")
                      .Register(registry)),
        denied(prometheus::BuildCounter()
                   .Name("crm_rpc_server_denied_total")
                   .Help("gRPC calls refused by the access policy before any handler ran")
                   .Register(registry)),
        denied_no_policy(&denied.Add({{"reason", "no_policy"}})),
        denied_caller(&denied.Add({{"reason", "caller"}})) {}

  MethodMetrics* ForMethod(const char* method) {
    {
      absl::ReaderMutexLock lock(&mu);
      auto it = methods.find(method);
      if (it != methods.end()) return it->second.get();
    }
    absl::MutexLock lock(&mu);
    auto& slot = methods[method];
    if (slot == nullptr) {
      slot = std::make_unique<MethodMetrics>();
      slot->in_flight = &in_flight.Add({{"method", method}});
      slot->latency = &latency.Add(
          {{"method", method}},
          prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    }
    return slot.get();
  }

  prometheus::Counter* CallCounter(MethodMetrics* m, const char* method, grpc::StatusCode code) {
    const int i = static_cast<int>(code) >= 0 && static_cast<int>(code) < kNumCodes
                      ? static_cast<int>(code)
                      : static_cast<int>(grpc::StatusCode::UNKNOWN);
    prometheus::Counter* c = m->calls[i].load(std::memory_order_acquire);
    if (c == nullptr) {
      // Family::Add returns the same counter for the same labels.
      c = &calls.Add(
          {{"method", method}, {"code", std::string(CodeName(grpc::StatusCode(i)).view())}});
      m->calls[i].store(c, std::memory_order_release);
    }
    return c;
  }

  const AccessPolicy policy;
  // Set when a registered method has no policy entry: every call is refused
  // until the server, which will not be used, is shut down.
  std::atomic<bool> refuse_all{false};
  prometheus::Family<prometheus::Counter>& calls;
  prometheus::Family<prometheus::Histogram>& latency;
  prometheus::Family<prometheus::Gauge>& in_flight;
  prometheus::Family<prometheus::Counter>& denied;
  prometheus::Counter* denied_no_policy;
  prometheus::Counter* denied_caller;
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::unique_ptr<MethodMetrics>> methods ABSL_GUARDED_BY(mu);
};

namespace {

// Runs on every call, after the TLS handshake and before the call reaches
// any handler (gRPC's server auth filter). Sees the ":path" pseudo-header,
// i.e. the full method name, and the peer's auth context.
class PolicyProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit PolicyProcessor(std::shared_ptr<ServerRunner::Shared> shared)
      : shared_(std::move(shared)) {}

  // Pure in-memory work: run inline on the transport thread.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) override {
    if (shared_->refuse_all.load(std::memory_order_relaxed)) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "server is not configured");
    }
    auto path = auth_metadata.find(":path");
    absl::string_view method = path == auth_metadata.end()
                                   ? absl::string_view()
                                   : absl::string_view(path->second.data(), path->second.size());
    const std::string peer = context == nullptr ? "" : PeerIdentity(*context);
    absl::Status status = shared_->policy.Check(method, peer);
    if (status.ok()) return grpc::Status::OK;
    const bool no_policy = !shared_->policy.Covers(method);
    (no_policy ? shared_->denied_no_policy : shared_->denied_caller)->Increment();
    crm::log::Warn("rpc.denied", {{"method", crm::log::Id(method)},
                                  {"peer", crm::log::Id(peer)},
                                  {"reason", no_policy ? crm::log::Literal("no_policy")
                                                       : crm::log::Literal("caller")}});
    return crm::base::ToGrpcStatus(status);
  }

 private:
  const std::shared_ptr<ServerRunner::Shared> shared_;
};

// Per call: request id, metrics, one log line.
class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(grpc::experimental::ServerRpcInfo* info, ServerRunner::Shared* shared)
      : method_(info->method()), shared_(shared) {}

  ~CallInterceptor() override {
    if (started_ && !finished_) Finish(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      OnMetadata(methods->GetRecvInitialMetadata());
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      if (!request_id_.empty()) {
        methods->GetSendInitialMetadata()->emplace(kRequestIdHeader, request_id_);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finish(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void OnMetadata(std::multimap<grpc::string_ref, grpc::string_ref>* md) {
    auto range = md->equal_range(grpc::string_ref(kRequestIdHeader));
    if (range.first != range.second && std::next(range.first) == range.second &&
        IsValidRequestId(
            absl::string_view(range.first->second.data(), range.first->second.size()))) {
      request_id_.assign(range.first->second.data(), range.first->second.size());
    } else {
      // Missing, repeated or malformed: replace, so RequestId(ctx) always
      // finds one valid id. The map refers to request_id_, which lives as
      // long as the call.
      md->erase(range.first, range.second);
      request_id_ = crm::base::NewUuid();
      md->emplace(grpc::string_ref(kRequestIdHeader), grpc::string_ref(request_id_));
    }
    metrics_ = shared_->ForMethod(method_);
    metrics_->in_flight->Increment();
    start_ = absl::Now();
    started_ = true;
  }

  void Finish(grpc::StatusCode code) {
    if (!started_ || finished_) return;
    finished_ = true;
    const absl::Duration elapsed = absl::Now() - start_;
    metrics_->in_flight->Decrement();
    metrics_->latency->Observe(absl::ToDoubleSeconds(elapsed));
    shared_->CallCounter(metrics_, method_, code)->Increment();
    crm::log::Write(IsServerError(code) ? crm::log::Level::kWarn : crm::log::Level::kDebug,
                    "rpc.done",
                    {{"method", crm::log::Id(method_)},
                     {"code", CodeName(code)},
                     {"duration", elapsed},
                     {"request_id", crm::log::Id(request_id_)}});
  }

  const char* const method_;
  ServerRunner::Shared* const shared_;
  MethodMetrics* metrics_ = nullptr;
  std::string request_id_;
  absl::Time start_;
  bool started_ = false;
  bool finished_ = false;
};

class CallInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallInterceptorFactory(std::shared_ptr<ServerRunner::Shared> shared)
      : shared_(std::move(shared)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(info, shared_.get());
  }

 private:
  const std::shared_ptr<ServerRunner::Shared> shared_;
};

// Sees the registered service names while the server is built (before it
// starts) and checks that every method has a policy entry. On a gap it makes
// the processor refuse every call and records the error for Start.
class PolicyCoveragePlugin final : public grpc::ServerBuilderPlugin {
 public:
  PolicyCoveragePlugin(ServerRunner::Shared* shared, std::vector<std::string>* service_names,
                       absl::Status* result)
      : shared_(shared), service_names_(service_names), result_(result) {}
  std::string name() override { return "crm_policy_coverage"; }
  void InitServer(grpc::ServerInitializer* si) override {
    *service_names_ = *si->GetServiceList();
    std::vector<std::string> missing;
    for (const std::string& service : *service_names_) {
      if (AccessPolicy::IsInfrastructureService(service)) continue;
      const google::protobuf::ServiceDescriptor* d =
          google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
      if (d == nullptr) {
        missing.push_back(absl::StrCat(service, " (no descriptor: cannot list its methods)"));
        continue;
      }
      for (int i = 0; i < d->method_count(); ++i) {
        std::string method = absl::StrCat("/", service, "/", d->method(i)->name());
        if (!shared_->policy.Covers(method)) missing.push_back(std::move(method));
      }
    }
    if (!missing.empty()) {
      shared_->refuse_all.store(true);
      *result_ = absl::FailedPreconditionError(
          absl::StrCat("methods without access policy: ", absl::StrJoin(missing, ", ")));
    }
  }
  void Finish(grpc::ServerInitializer* /*si*/) override {}
  void ChangeArguments(const std::string& /*name*/, void* /*value*/) override {}

 private:
  ServerRunner::Shared* const shared_;
  std::vector<std::string>* const service_names_;
  absl::Status* const result_;
};

class PolicyCoverageOption final : public grpc::ServerBuilderOption {
 public:
  PolicyCoverageOption(ServerRunner::Shared* shared, std::vector<std::string>* service_names,
                       absl::Status* result)
      : shared_(shared), service_names_(service_names), result_(result) {}
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->push_back(std::make_unique<PolicyCoveragePlugin>(shared_, service_names_, result_));
  }

 private:
  ServerRunner::Shared* const shared_;
  std::vector<std::string>* const service_names_;
  absl::Status* const result_;
};

// Takes every globally registered ServerBuilder plugin (server reflection)
// off a builder: the plaintext health port serves grpc.health.v1 alone.
class NoPluginsOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

absl::Status CheckListen(absl::string_view setting, const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(absl::StrCat(setting, ": must be host:port"));
  }
  return absl::OkStatus();
}

}  // namespace

void AddServerSettings(crm::config::Settings& settings, ServerConfig* config) {
  settings.Add("grpc_listen", &config->listen, "gRPC listen address host:port (port 0: any free)");
  settings.Add("tls_cert", &config->tls.cert_file, "PEM certificate of this service");
  settings.Add("tls_key", &config->tls.key_file, "PEM private key of this service");
  settings.Add("tls_ca", &config->tls.ca_file, "PEM CA bundle peers' certificates must chain to");
  settings.Add("tls_refresh", &config->tls.refresh_interval,
               "how often the TLS files are re-read (rotation)");
  settings.Add("metrics_listen", &config->metrics_listen,
               "Prometheus /metrics listen address host:port (port 0: any free; empty: off)");
  settings.Add("health_listen", &config->health_listen,
               "plaintext gRPC health port host:port for Kubernetes probes (port 0: any free; "
               "empty: off)");
  settings.Add("max_message_bytes", &config->max_message_bytes,
               "largest gRPC request or response in bytes", 1024, 1 << 30);
  settings.Add("shutdown_grace", &config->shutdown_grace,
               "how long in-flight calls may finish after SIGTERM");
  settings.Add("drain_notice", &config->drain_notice,
               "how long health says NOT_SERVING before the server stops accepting calls");
  settings.Add("max_connection_age", &config->max_connection_age,
               "how long a client connection lives before the client must reconnect (0: always)");
}

ServerRunner::ServerRunner(ServerConfig config, AccessPolicy policy,
                           std::shared_ptr<prometheus::Registry> registry)
    : config_(std::move(config)),
      registry_(registry ? std::move(registry) : std::make_shared<prometheus::Registry>()),
      shared_(std::make_shared<Shared>(std::move(policy), *registry_)) {}

ServerRunner::~ServerRunner() {
  if (started_ && !stopped_) {
    Shutdown();
    (void)Wait();
  }
  if (owns_signals_) {
    sigaction(SIGTERM, &g_old_sigterm, nullptr);
    sigaction(SIGINT, &g_old_sigint, nullptr);
    g_signal_fd.store(-1);
  }
  for (int fd : wake_pipe_) {
    if (fd >= 0) close(fd);
  }
}

void ServerRunner::RegisterService(grpc::Service* service) { services_.push_back(service); }

absl::Status ServerRunner::Start() {
  if (started_) return absl::FailedPreconditionError("ServerRunner::Start called twice");
  CRM_RETURN_IF_ERROR(shared_->policy.Validate());
  CRM_RETURN_IF_ERROR(CheckListen("grpc_listen", config_.listen));
  if (!config_.metrics_listen.empty()) {
    CRM_RETURN_IF_ERROR(CheckListen("metrics_listen", config_.metrics_listen));
  }
  if (!config_.health_listen.empty()) {
    CRM_RETURN_IF_ERROR(CheckListen("health_listen", config_.health_listen));
  }
  if (config_.max_message_bytes < 1024) {
    return absl::InvalidArgumentError("max_message_bytes: at least 1024");
  }
  if (config_.shutdown_grace < absl::ZeroDuration() ||
      config_.drain_notice < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("shutdown_grace, drain_notice: must not be negative");
  }
  if (config_.max_connection_age != absl::ZeroDuration() &&
      (config_.max_connection_age < absl::Seconds(1) ||
       config_.max_connection_age > absl::Hours(24 * 24))) {
    return absl::InvalidArgumentError("max_connection_age: 0, or between 1s and 576h");
  }
  CRM_RETURN_IF_ERROR(CheckTlsFiles(config_.tls, "tls_"));
  if (!config_.service.empty()) {
    CRM_ASSIGN_OR_RETURN(std::string cert, pki::ReadFile(config_.tls.cert_file));
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> uris, pki::UriSans(cert));
    if (std::find(uris.begin(), uris.end(), pki::SpiffeId(config_.service)) == uris.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("tls_cert: certificate does not carry ", pki::SpiffeId(config_.service)));
    }
  }

  if (pipe2(wake_pipe_, O_CLOEXEC) != 0 || fcntl(wake_pipe_[1], F_SETFL, O_NONBLOCK) != 0) {
    return absl::InternalError("cannot create the shutdown pipe");
  }
  if (config_.handle_signals) {
    int expected = -1;
    if (!g_signal_fd.compare_exchange_strong(expected, wake_pipe_[1])) {
      return absl::FailedPreconditionError("another ServerRunner already handles signals");
    }
    struct sigaction sa = {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &g_old_sigterm);
    sigaction(SIGINT, &sa, &g_old_sigint);
    owns_signals_ = true;
  }

  if (!config_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics_listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("metrics_listen: cannot listen on ", config_.metrics_listen));
    }
    exposer_->RegisterCollectable(registry_);
    certificate_expiry_ = std::make_shared<CertificateExpiry>(config_.tls.cert_file);
    exposer_->RegisterCollectable(certificate_expiry_);
    std::vector<int> ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? 0 : ports[0];
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config_.tls.key_file, config_.tls.cert_file, config_.tls.ca_file,
      static_cast<unsigned int>(absl::ToInt64Seconds(config_.tls.refresh_interval)));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::experimental::TlsServerCredentials(options);
  if (creds == nullptr) return absl::InternalError("cannot create TLS server credentials");
  creds->SetAuthMetadataProcessor(std::make_shared<PolicyProcessor>(shared_));

  absl::Status coverage;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, creds, &port_);
  for (grpc::Service* s : services_) builder.RegisterService(s);
  // The sync server's threads per completion queue: at least 2 waiting for
  // calls and up to 8 kept once started. gRPC's defaults (1 and 2) made a
  // server under 8 concurrent calls start and end threads all the time:
  // CreatePerson ran at 0.63 - 0.66x pgbench with them and 0.85x with these
  // at 2x10^4 subjects, 1.00x at 10^6 (contacts_bench, 2026-11-30,
  // docs/benchmarks.md).
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 8);
  builder.SetMaxReceiveMessageSize(config_.max_message_bytes);
  builder.SetMaxSendMessageSize(config_.max_message_bytes);
  // Accept the keepalive pings ChannelConfig sends (every 30 s by default).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (config_.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(config_.max_connection_age)));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(config_.shutdown_grace)));
  }
  builder.SetOption(
      std::make_unique<PolicyCoverageOption>(shared_.get(), &service_names_, &coverage));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<CallInterceptorFactory>(shared_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("grpc_listen: cannot listen on ", config_.listen));
  }
  if (!coverage.ok()) {
    // Every call was refused meanwhile (refuse_all); stop at once.
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
    return coverage;
  }
  if (!config_.health_listen.empty()) {
    // Plaintext, and nothing but the default health service: no registered
    // services, no plugins (reflection), no interceptors.
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(config_.health_listen, grpc::InsecureServerCredentials(),
                                    &health_port_);
    health_builder.SetOption(std::make_unique<NoPluginsOption>());
    // gRPC builds no server without a service of its own (the default health
    // service joins only as the server starts): a generic service whose
    // every call ends UNIMPLEMENTED, as an unknown method's would anyway.
    health_fallback_ = std::make_unique<grpc::CallbackGenericService>();
    health_builder.RegisterCallbackGenericService(health_fallback_.get());
    health_builder.SetMaxReceiveMessageSize(4096);
    health_server_ = health_builder.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0 ||
        health_server_->GetHealthCheckService() == nullptr) {
      health_server_.reset();
      health_port_ = 0;
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
      server_.reset();
      return absl::UnavailableError(
          absl::StrCat("health_listen: cannot listen on ", config_.health_listen));
    }
    health_server_->GetHealthCheckService()->SetServingStatus(kLivenessService, true);
  }
  started_ = true;
  SetServing(true);
  crm::log::Info("server.started",
                 {{"port", port_}, {"metrics_port", metrics_port_}, {"health_port", health_port_}});
  return absl::OkStatus();
}

void ServerRunner::SetServing(bool serving) {
  // Name by name rather than SetServingStatus(serving), which would change
  // the health port's "liveness" too.
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    if (server == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
    if (health == nullptr) continue;
    health->SetServingStatus("", serving);
    for (const std::string& name : service_names_) health->SetServingStatus(name, serving);
  }
}

void ServerRunner::Shutdown() {
  if (wake_pipe_[1] < 0) return;
  const char c = 'q';
  [[maybe_unused]] ssize_t n = write(wake_pipe_[1], &c, 1);
}

absl::Status ServerRunner::Wait() {
  if (!started_ || stopped_) return absl::FailedPreconditionError("server not running");
  char reason = 0;
  while (read(wake_pipe_[0], &reason, 1) < 0 && errno == EINTR) {
  }
  crm::log::Info("server.draining", {{"cause", reason == 's' ? crm::log::Literal("signal")
                                                             : crm::log::Literal("requested")},
                                     {"grace", config_.shutdown_grace}});
  SetServing(false);
  if (config_.drain_notice > absl::ZeroDuration()) {
    pollfd p = {wake_pipe_[0], POLLIN, 0};
    const absl::Time until = absl::Now() + config_.drain_notice;
    while (absl::Now() < until) {
      const int ms = static_cast<int>(absl::ToInt64Milliseconds(until - absl::Now())) + 1;
      const int r = poll(&p, 1, ms);
      if (r > 0) break;  // A second request: skip the rest of the notice.
      if (r < 0 && errno != EINTR) break;
    }
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now() + config_.shutdown_grace));
  server_->Wait();
  if (health_server_ != nullptr) {
    // Last: probes see the process alive until the main server has stopped.
    // Every status, "liveness" included, turns NOT_SERVING for Watch
    // streams; probes' unary Checks finish at once.
    health_server_->GetHealthCheckService()->Shutdown();
    health_server_->Shutdown(std::chrono::system_clock::now());
    health_server_->Wait();
  }
  stopped_ = true;
  crm::log::Info("server.stopped");
  return absl::OkStatus();
}

}  // namespace crm::rpc
