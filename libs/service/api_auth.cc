#include "libs/service/api_auth.h"

#include "absl/strings/ascii.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/key_file.h"
#include "libs/log/log.h"
#include "libs/rpc/channel.h"

namespace crm::service {

void AddApiAuthSettings(config::Settings& s, ApiAuthConfig* c) {
  s.Add("identity_addr", &c->identity_addr, "identity's host:port (signing keys)");
  s.Add("redis_addr", &c->redis_addr, "Redis host:port (revocation set)");
  s.Add("redis_password_file", &c->redis_password_file, "file holding the Redis password");
  s.Add("redis_wait", &c->redis_wait, "how long start-up waits for Redis");
  s.Add("token_issuer", &c->token_issuer, "access tokens' expected iss");
  s.Add("token_audience", &c->token_audience, "access tokens' expected aud");
  s.Add("key_refresh", &c->key_refresh, "how often identity's signing keys are fetched");
  s.Add("key_wait", &c->key_wait,
        "how long start-up waits for identity's signing keys before serving anyway");
}

absl::Status ValidateApiAuthConfig(const ApiAuthConfig& c) {
  std::string host;
  int port;
  CRM_RETURN_IF_ERROR(config::ParseHostPort("identity_addr", c.identity_addr, &host, &port));
  CRM_RETURN_IF_ERROR(config::ParseHostPort("redis_addr", c.redis_addr, &host, &port));
  if (c.token_issuer.empty()) return absl::InvalidArgumentError("setting token_issuer: required");
  if (c.token_audience.empty()) {
    return absl::InvalidArgumentError("setting token_audience: required");
  }
  if (c.key_wait < absl::ZeroDuration() || c.key_wait > absl::Minutes(5)) {
    return absl::InvalidArgumentError("setting key_wait: must be 0s..5m");
  }
  if (c.key_refresh < absl::Seconds(1) || c.key_refresh > absl::Minutes(10)) {
    return absl::InvalidArgumentError("setting key_refresh: must be 1s..10m");
  }
  if (c.redis_wait <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("setting redis_wait: must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<redis::Client>> ConnectRedis(const std::string& addr,
                                                            const std::string& password_file,
                                                            absl::Duration wait,
                                                            base::Clock& clock) {
  redis::Options options;
  CRM_RETURN_IF_ERROR(config::ParseHostPort("redis_addr", addr, &options.host, &options.port));
  if (!password_file.empty()) {
    CRM_ASSIGN_OR_RETURN(crypto::SecretBytes pw, crypto::ReadKeyFile(password_file));
    options.password = std::string(absl::StripAsciiWhitespace(pw.view()));
  }
  const absl::Time give_up = clock.Now() + wait;
  while (true) {
    absl::StatusOr<std::unique_ptr<redis::Client>> client = redis::Client::Create(options);
    if (client.ok() || !absl::IsUnavailable(client.status()) || clock.Now() > give_up) {
      return client;
    }
    log::Warn("redis.waiting", {{"status", client.status()}});
    clock.SleepFor(absl::Seconds(1));
  }
}

namespace {

// Identity's record of revocations, asked over mutual TLS (CheckSession).
class IdentitySessions final : public auth::RevocationChecker {
 public:
  explicit IdentitySessions(std::shared_ptr<grpc::Channel> identity)
      : stub_(identity::v1::Identity::NewStub(identity)) {}

  absl::StatusOr<bool> IsRevoked(absl::string_view session_id) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    identity::v1::CheckSessionRequest req;
    req.set_session_id(std::string(session_id));
    identity::v1::CheckSessionResponse resp;
    CRM_RETURN_IF_ERROR(base::FromGrpcStatus(stub_->CheckSession(&ctx, req, &resp)));
    return resp.revoked();
  }

 private:
  std::unique_ptr<identity::v1::Identity::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ApiAuth>> ApiAuth::Create(const ApiAuthConfig& config,
                                                         const rpc::TlsFiles& tls,
                                                         base::Clock& clock,
                                                         prometheus::Registry* metrics) {
  CRM_RETURN_IF_ERROR(ValidateApiAuthConfig(config));
  std::unique_ptr<ApiAuth> a(new ApiAuth());
  CRM_ASSIGN_OR_RETURN(a->redis_, ConnectRedis(config.redis_addr, config.redis_password_file,
                                               config.redis_wait, clock));
  CRM_ASSIGN_OR_RETURN(a->identity_, rpc::MakeChannel({.target = config.identity_addr,
                                                       .tls = tls,
                                                       .expected_server = "identity",
                                                       .default_deadline = absl::Seconds(5)}));
  a->identity_sessions_ = std::make_unique<IdentitySessions>(a->identity_);
  CRM_ASSIGN_OR_RETURN(a->revocation_,
                       auth::RedisRevocationChecker::Create(
                           *a->redis_, clock, {.fallback = a->identity_sessions_.get()}, metrics));
  a->verifier_ = std::make_unique<auth::TokenVerifier>(
      auth::TokenVerifierOptions{.issuer = config.token_issuer, .audience = config.token_audience},
      a->keys_, *a->revocation_, clock);
  a->key_refresh_ = config.key_refresh;
  ApiAuth* self = a.get();
  a->fetcher_ = std::thread([self] {
    bool have_keys = false;
    absl::Duration wait = absl::ZeroDuration();
    while (!self->stop_.WaitForNotificationWithTimeout(wait)) {
      absl::Status s = self->FetchKeys();
      if (s.ok()) {
        if (!have_keys) self->have_keys_.Notify();
        have_keys = true;
      } else {
        log::Warn("auth.key_fetch_failed", {{"status", s}});
      }
      wait = have_keys ? self->key_refresh_ : absl::Seconds(1);
    }
  });
  if (!a->have_keys_.WaitForNotificationWithTimeout(config.key_wait)) {
    log::Warn("auth.serving_without_keys");
  }
  return a;
}

absl::Status ApiAuth::FetchKeys() {
  auto stub = identity::v1::Identity::NewStub(identity_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  identity::v1::GetSigningKeysRequest req;
  identity::v1::GetSigningKeysResponse resp;
  CRM_RETURN_IF_ERROR(base::FromGrpcStatus(stub->GetSigningKeys(&ctx, req, &resp)));
  auth::KeySet::KeyMap keys;
  for (const identity::v1::SigningKey& k : resp.keys()) {
    absl::StatusOr<crypto::Ed25519PublicKey> key =
        crypto::Ed25519PublicKey::FromRaw(k.public_key());
    if (!key.ok()) return absl::DataLossError("identity published a malformed signing key");
    keys.emplace(k.kid(), *std::move(key));
  }
  if (keys.empty()) return absl::UnavailableError("identity published no signing key yet");
  keys_.Replace(std::move(keys));
  return absl::OkStatus();
}

void ApiAuth::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (fetcher_.joinable()) fetcher_.join();
}

ApiAuth::~ApiAuth() { Stop(); }

}  // namespace crm::service
