#include "libs/rpc/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/client_interceptor.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/base/status_macros.h"
#include "libs/pki/pki.h"
#include "libs/rpc/request_id.h"

namespace crm::rpc {
namespace {

// Accepts the server only if its certificate carries the expected SPIFFE id.
// Chain verification against our CA is done by gRPC before this runs.
class SpiffeVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit SpiffeVerifier(std::string expected) : expected_(std::move(expected)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    for (const grpc::string_ref& uri : request->uri_names()) {
      if (absl::string_view(uri.data(), uri.size()) == expected_) {
        *sync_status = grpc::Status::OK;
        return true;
      }
    }
    *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                "server certificate does not carry the expected identity");
    return true;  // Synchronous.
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest* /*request*/) override {}

 private:
  const std::string expected_;
};

// Adds the thread's current request id to calls that do not carry one.
class RequestIdClientInterceptor final : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      absl::string_view current = CurrentRequestId();
      if (!current.empty() && md->find(kRequestIdHeader) == md->end()) {
        id_ = std::string(current);
        md->emplace(kRequestIdHeader, id_);
      }
    }
    methods->Proceed();
  }

 private:
  std::string id_;  // Outlives the send of the metadata, which refers to it.
};

class RequestIdClientInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new RequestIdClientInterceptor();
  }
};

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d)); }

}  // namespace

void AddChannelSettings(crm::config::Settings& settings, absl::string_view prefix,
                        ChannelConfig* config) {
  settings.Add(absl::StrCat(prefix, "_target"), &config->target,
               absl::StrCat("host:port of the ", prefix, " service"));
  settings.Add(absl::StrCat(prefix, "_deadline"), &config->default_deadline,
               absl::StrCat("default deadline of calls to ", prefix));
  settings.Add(absl::StrCat(prefix, "_identity"), &config->expected_server,
               absl::StrCat("expected identity (short name) of the ", prefix,
                            " server; empty: check the host name instead"));
}

std::string ServiceConfigJson(const ChannelConfig& config) {
  // Every address the target resolves to is used (a headless Kubernetes
  // Service: one per replica), calls spread over them.
  constexpr absl::string_view kBalance = R"({"loadBalancingConfig":[{"round_robin":{}}],)";
  // gRPC rejects a retryPolicy with maxAttempts < 2: no retries, no policy.
  if (config.max_attempts < 2) return absl::StrCat(kBalance, R"("methodConfig":[{"name":[{}]}]})");
  return absl::StrCat(kBalance, R"("methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":)",
                      config.max_attempts, R"(,"initialBackoff":")",
                      Seconds(config.initial_backoff), R"(","maxBackoff":")",
                      Seconds(config.max_backoff), R"(","backoffMultiplier":)",
                      absl::StrFormat("%.3f", config.backoff_multiplier),
                      R"(,"retryableStatusCodes":["UNAVAILABLE"]}}]})");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelConfig& config) {
  if (config.target.empty()) return absl::InvalidArgumentError("channel target: required");
  if (config.max_attempts < 1 || config.max_attempts > 5) {
    return absl::InvalidArgumentError("channel max_attempts: must be 1..5");
  }
  if (config.initial_backoff <= absl::ZeroDuration() ||
      config.max_backoff < config.initial_backoff || config.backoff_multiplier <= 0) {
    return absl::InvalidArgumentError("channel backoff: must be positive and max >= initial");
  }
  if (!config.expected_server.empty() && !pki::IsValidName(config.expected_server)) {
    return absl::InvalidArgumentError("channel expected_server: must be a short name");
  }
  CRM_RETURN_IF_ERROR(CheckTlsFiles(config.tls, "tls_"));

  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config.tls.key_file, config.tls.cert_file, config.tls.ca_file,
      static_cast<unsigned int>(absl::ToInt64Seconds(config.tls.refresh_interval)));
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  if (!config.expected_server.empty()) {
    options.set_certificate_verifier(
        grpc::experimental::ExternalCertificateVerifier::Create<SpiffeVerifier>(
            pki::SpiffeId(config.expected_server)));
    options.set_check_call_host(false);
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::experimental::TlsCredentials(options);
  if (creds == nullptr) return absl::InternalError("cannot create TLS channel credentials");

  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(ServiceConfigJson(config));
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, config.max_attempts > 1 ? 1 : 0);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(config.max_reconnect_backoff)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
              static_cast<int>(absl::ToInt64Milliseconds(config.keepalive_time)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
              static_cast<int>(absl::ToInt64Milliseconds(config.keepalive_timeout)));
  args.SetMaxReceiveMessageSize(config.max_message_bytes);
  args.SetMaxSendMessageSize(config.max_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RequestIdClientInterceptorFactory>());
  return grpc::experimental::CreateCustomChannelWithInterceptors(config.target, creds, args,
                                                                 std::move(interceptors));
}

std::unique_ptr<grpc::ClientContext> NewClientContext(const ChannelConfig& config) {
  return NewClientContext(config.default_deadline);
}

std::unique_ptr<grpc::ClientContext> NewClientContext(absl::Duration deadline,
                                                      absl::string_view bearer_token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  absl::string_view current = CurrentRequestId();
  if (!current.empty()) context->AddMetadata(kRequestIdHeader, std::string(current));
  if (!bearer_token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", bearer_token));
  }
  return context;
}

}  // namespace crm::rpc
