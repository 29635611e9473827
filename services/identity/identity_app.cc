#include "services/identity/identity_app.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/key_file.h"
#include "libs/log/log.h"
#include "libs/outbox/schema.h"
#include "libs/rpc/channel.h"
#include "libs/service/api_auth.h"
#include "services/identity/subject_directory.h"

namespace crm::identity {

namespace {

// The verifier's leeway; a retired key stays published for at least a
// default token lifetime plus that.
constexpr absl::Duration kLeeway = absl::Seconds(30);
constexpr absl::Duration kMinRetiredKept = absl::Seconds(15 * 60 + 30);

// Prefixes a start-up error with the step that failed.
absl::Status Step(absl::string_view step, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(step, ": ", s.message()));
}

}  // namespace

absl::Status WritePasswordFile(const std::string& path, const std::string& password) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return absl::FailedPreconditionError("bootstrap_admin_password_file: cannot create");
  const std::string line = absl::StrCat(password, "\n");
  const bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  if (!ok) return absl::InternalError("bootstrap_admin_password_file: write failed");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<IdentityApp>> IdentityApp::Create(const IdentityConfig& config,
                                                                 const rpc::TlsFiles& tls,
                                                                 pg::Pool& db, base::Clock& clock,
                                                                 prometheus::Registry* metrics) {
  std::unique_ptr<IdentityApp> app(new IdentityApp(config, db, clock));
  CRM_RETURN_IF_ERROR(app->Init(tls, metrics));
  return app;
}

absl::Status IdentityApp::Init(const rpc::TlsFiles& tls, prometheus::Registry* metrics) {
  const IdentityConfig& cfg = config_;
  absl::StatusOr<crypto::KeyRing> ring = crypto::KeyRing::LoadFromFile(cfg.kek_file);
  CRM_RETURN_IF_ERROR(Step("kek_file", ring.status()));
  ring_.emplace(*std::move(ring));
  absl::StatusOr<crypto::BlindIndexer> indexer =
      crypto::BlindIndexer::LoadFromFile(cfg.blind_index_key_file);
  CRM_RETURN_IF_ERROR(Step("blind_index_key_file", indexer.status()));
  indexer_.emplace(*std::move(indexer));
  absl::StatusOr<std::unique_ptr<redis::Client>> redis =
      service::ConnectRedis(cfg.redis_addr, cfg.redis_password_file, cfg.redis_wait, clock_);
  CRM_RETURN_IF_ERROR(Step("redis", redis.status()));
  redis_ = *std::move(redis);
  CRM_RETURN_IF_ERROR(Step("outbox", outbox::EnsureSchema(db_)));
  absl::StatusOr<crypto::SecretBytes> outbox_key = outbox::LoadOrCreateKey(db_, *ring_);
  CRM_RETURN_IF_ERROR(Step("outbox key", outbox_key.status()));

  users_ = std::make_unique<PgUserStore>(db_, clock_);
  sessions_ = std::make_unique<PgSessionStore>(db_);
  credentials_ = std::make_unique<CredentialStore>(db_);
  grants_ = std::make_unique<GrantStore>(db_);
  CRM_ASSIGN_OR_RETURN(
      keys_, SigningKeys::Create(
                 db_, *ring_, clock_,
                 {.rotate_after = cfg.signing_key_rotation,
                  .retired_kept = std::max(kMinRetiredKept, cfg.access_token_ttl + kLeeway)}));
  CRM_RETURN_IF_ERROR(Step("signing keys", keys_->Refresh()));
  // In force as long as the longest-lived token identity mints (service
  // tokens are at most access_token_ttl).
  CRM_ASSIGN_OR_RETURN(
      revocations_, Revocations::Create(
                        *sessions_, *redis_, clock_,
                        std::max(cfg.access_token_ttl, cfg.subject_token_ttl) + kLeeway, metrics));
  verifier_ = std::make_unique<auth::TokenVerifier>(
      auth::TokenVerifierOptions{.issuer = cfg.token_issuer, .audience = cfg.token_audience},
      keys_->key_set(), revocations_->checker(), clock_);
  // A Redis that lost the set before this start gets it back now, not in a
  // second; the sweeper retries if this fails.
  if (absl::Status s = revocations_->Watch(); !s.ok()) {
    log::Warn("identity.revocation_watch_failed", {{"status", s}});
  }
  CRM_ASSIGN_OR_RETURN(hasher_, PasswordHasher::Create(HashParamsOf(cfg)));
  CRM_ASSIGN_OR_RETURN(policy_, PasswordPolicy::Create());
  CRM_ASSIGN_OR_RETURN(lockout_, LockoutPolicy::Create(LockoutParamsOf(cfg)));
  CRM_ASSIGN_OR_RETURN(throttle_, SourceThrottle::Create(ThrottleParamsOf(cfg)));
  guard_ = std::make_unique<LoginGuard>(*redis_, *credentials_, *lockout_, *throttle_, *indexer_,
                                        clock_);
  personal_ = std::make_unique<PersonalData>(*indexer_, *ring_);
  audit_ = std::make_unique<outbox::Writer>("identity", outbox_key->Copy(), clock_);
  if (!cfg.audit_addr.empty()) {
    CRM_ASSIGN_OR_RETURN(
        std::shared_ptr<grpc::Channel> channel,
        rpc::MakeChannel({.target = cfg.audit_addr, .tls = tls, .expected_server = "audit"}));
    sink_ = std::make_unique<outbox::GrpcSink>(channel);
    relay_ = std::make_unique<outbox::Relay>(db_, outbox_key->Copy(), *sink_, clock_,
                                             outbox::RelayOptions{}, metrics);
    CRM_RETURN_IF_ERROR(Step("outbox relay", relay_->Start()));
  }
  service_ = std::make_unique<IdentityService>(IdentityDeps{.config = cfg,
                                                            .clock = clock_,
                                                            .db = db_,
                                                            .users = *users_,
                                                            .sessions = *sessions_,
                                                            .credentials = *credentials_,
                                                            .grants = *grants_,
                                                            .keys = *keys_,
                                                            .verifier = *verifier_,
                                                            .revocation = *revocations_,
                                                            .hasher = *hasher_,
                                                            .policy = *policy_,
                                                            .guard = *guard_,
                                                            .personal = *personal_,
                                                            .audit = *audit_,
                                                            .metrics = metrics});
  if (!cfg.contacts_addr.empty()) {
    CRM_ASSIGN_OR_RETURN(
        std::shared_ptr<grpc::Channel> contacts,
        rpc::MakeChannel({.target = cfg.contacts_addr, .tls = tls, .expected_server = "contacts"}));
    CRM_ASSIGN_OR_RETURN(
        std::shared_ptr<grpc::Channel> mailing,
        rpc::MakeChannel({.target = cfg.mailing_addr, .tls = tls, .expected_server = "mailing"}));
    directory_ = std::make_unique<GrpcSubjectDirectory>(
        contacts, mailing, [this] { return service_->OwnServiceToken(); });
    CRM_ASSIGN_OR_RETURN(subjects_,
                         SubjectVerifier::Create(*redis_, *guard_, *indexer_, *directory_, clock_,
                                                 SubjectVerificationParamsOf(cfg)));
    service_->SetSubjectVerifier(subjects_.get());
  }
  if (!cfg.bootstrap_admin_password_file.empty()) {
    absl::StatusOr<std::optional<std::string>> password =
        service_->BootstrapAdmin(cfg.bootstrap_admin_username);
    CRM_RETURN_IF_ERROR(Step("first administrator", password.status()));
    if (password->has_value()) {
      CRM_RETURN_IF_ERROR(WritePasswordFile(cfg.bootstrap_admin_password_file, **password));
    }
  } else if (!cfg.bootstrap_admin_initial_password_file.empty()) {
    absl::StatusOr<crypto::SecretBytes> file =
        crypto::ReadKeyFile(cfg.bootstrap_admin_initial_password_file);
    CRM_RETURN_IF_ERROR(Step("bootstrap_admin_initial_password_file", file.status()));
    std::string initial(absl::StripTrailingAsciiWhitespace(file->view()));
    CRM_RETURN_IF_ERROR(
        Step("bootstrap_admin_initial_password_file",
             service_->BootstrapAdmin(cfg.bootstrap_admin_username, std::move(initial)).status()));
  }
  return absl::OkStatus();
}

absl::Status IdentityApp::AllowMethods(rpc::AccessPolicy& policy) const {
  return policy.AllowService(v1::Identity::service_full_name()).Validate();
}

void IdentityApp::StartSweeper() {
  if (sweeper_.joinable()) return;
  sweeper_ = std::thread([this] {
    absl::Time next_sweep = clock_.Now() + config_.sweep_interval;
    bool watch_failed = false;
    while (!stop_sweeps_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      // Logged when it starts and stops failing, not every second.
      absl::Status s = revocations_->Watch();
      if (!s.ok() && !watch_failed) log::Warn("identity.revocation_watch_failed", {{"status", s}});
      if (s.ok() && watch_failed) log::Info("identity.revocation_watch_recovered");
      watch_failed = !s.ok();
      if (clock_.Now() < next_sweep) continue;
      next_sweep = clock_.Now() + config_.sweep_interval;
      if (s = service_->Sweep(); !s.ok()) log::Warn("identity.sweep_failed", {{"status", s}});
    }
  });
}

void IdentityApp::Stop() {
  if (!stop_sweeps_.HasBeenNotified()) stop_sweeps_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
  if (relay_ != nullptr) relay_->Stop();
}

IdentityApp::~IdentityApp() { Stop(); }

}  // namespace crm::identity
