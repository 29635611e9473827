// crm-consent: purposes, lawful bases, notices and the consent ledger (issue
// 6). Wiring only: settings, database, migrations and serving come from
// libs/service; see docs/consent.md.
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "libs/base/status_macros.h"
#include "libs/config/config.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/log/log.h"
#include "libs/service/api_auth.h"
#include "libs/service/audit_outbox.h"
#include "libs/service/service_main.h"
#include "services/consent/consent_service.h"
#include "services/consent/subject_data_service.h"

namespace crm::consent {
namespace {

struct ConsentConfig {
  std::string kek_file;
  std::string blind_index_key_file;
  // Empty: audit events stay in the outbox (tests, or audit not deployed yet).
  std::string audit_addr;
  absl::Duration cache_ttl = absl::Seconds(60);
  ReceiptIssuer issuer;
};

struct App {
  std::optional<crypto::KeyRing> ring;
  std::optional<crypto::BlindIndexer> suppression;
  std::unique_ptr<service::ApiAuth> auth;
  std::unique_ptr<service::AuditOutbox> outbox;
  std::unique_ptr<CheckCache> cache;
  std::unique_ptr<ReceiptSigner> receipts;
  std::unique_ptr<ConsentService> service;
  std::unique_ptr<SubjectDataService> subject_data;
  // CheckCache::Repair every second (check_cache.h).
  std::thread repairer;
  absl::Notification stop_repairs;
};

using service::StartupStep;

absl::Status Setup(const ConsentConfig& cfg, const service::ApiAuthConfig& auth_cfg, App& app,
                   service::Context& ctx) {
  absl::StatusOr<crypto::KeyRing> ring = crypto::KeyRing::LoadFromFile(cfg.kek_file);
  CRM_RETURN_IF_ERROR(StartupStep("kek_file", ring.status()));
  app.ring.emplace(*std::move(ring));
  absl::StatusOr<crypto::BlindIndexer> indexer =
      crypto::BlindIndexer::LoadFromFile(cfg.blind_index_key_file);
  CRM_RETURN_IF_ERROR(StartupStep("blind_index_key_file", indexer.status()));
  app.suppression.emplace(*std::move(indexer));
  CRM_ASSIGN_OR_RETURN(
      app.auth, service::ApiAuth::Create(auth_cfg, ctx.config.server.tls, ctx.clock, &ctx.metrics));
  ctx.on_stop.push_back([&app] { app.auth->Stop(); });
  CRM_ASSIGN_OR_RETURN(app.outbox, service::AuditOutbox::Start(ctx, *app.ring, cfg.audit_addr));
  app.cache = std::make_unique<CheckCache>(&app.auth->redis(), cfg.cache_ttl, &ctx.metrics);
  app.repairer = std::thread([&app, &db = ctx.db] {
    while (!app.stop_repairs.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      if (absl::Status s = app.cache->Repair(db); !s.ok()) {
        log::Warn("consent.cache_repair_failed", {{"status", s}});
      }
    }
  });
  ctx.on_stop.push_back([&app] {
    app.stop_repairs.Notify();
    app.repairer.join();
  });
  absl::StatusOr<std::unique_ptr<ReceiptSigner>> receipts =
      ReceiptSigner::LoadOrCreate(ctx.db, *app.ring, cfg.issuer);
  CRM_RETURN_IF_ERROR(StartupStep("receipt key", receipts.status()));
  app.receipts = *std::move(receipts);
  app.service = std::make_unique<ConsentService>(ConsentDeps{.db = ctx.db,
                                                             .ring = *app.ring,
                                                             .verifier = app.auth->verifier(),
                                                             .audit = app.outbox->writer(),
                                                             .clock = ctx.clock,
                                                             .cache = app.cache.get(),
                                                             .receipts = app.receipts.get(),
                                                             .suppression = &*app.suppression});
  app.subject_data = std::make_unique<SubjectDataService>(
      ctx.db, *app.ring, app.outbox->writer(), ctx.clock, app.cache.get(), *app.suppression);
  CRM_RETURN_IF_ERROR(AllowConsentMethods(ctx.policy));
  CRM_RETURN_IF_ERROR(AllowConsentSubjectData(ctx.policy));
  ctx.services.push_back(app.service.get());
  ctx.services.push_back(app.subject_data.get());
  return absl::OkStatus();
}

}  // namespace
}  // namespace crm::consent

int main(int argc, char** argv) {
  crm::service::CommonConfig common("consent");
  crm::consent::ConsentConfig cfg;
  crm::service::ApiAuthConfig auth_cfg;
  crm::config::Settings settings("crm-consent");
  crm::service::AddCommonSettings(settings, &common);
  crm::service::AddApiAuthSettings(settings, &auth_cfg);
  settings.Add("kek_file", &cfg.kek_file, "KEK ring file wrapping subject data keys");
  settings.Add("blind_index_key_file", &cfg.blind_index_key_file,
               "key file of the blind-index key hashing the suppression list's addresses "
               "(never rotate: the list could not be matched any more)");
  settings.Add("audit_addr", &cfg.audit_addr, "audit service host:port for the outbox relay");
  settings.Add("receipt_controller", &cfg.issuer.controller,
               "the data controller named in consent receipts");
  settings.Add("receipt_contact", &cfg.issuer.contact,
               "the controller's privacy contact (e-mail) in consent receipts");
  settings.Add("receipt_policy_url", &cfg.issuer.policy_url,
               "the privacy notice linked from consent receipts");
  settings.Add("receipt_jurisdiction", &cfg.issuer.jurisdiction,
               "the jurisdiction stated in consent receipts");
  settings.Add("check_cache_ttl", &cfg.cache_ttl,
               "how long a subject's standing on a purpose stays in Redis for Check");
  crm::config::ParseOrExit(settings, argc, argv, environ);
  absl::Status valid = crm::service::ValidateCommonConfig(common);
  if (valid.ok()) valid = crm::service::ValidateApiAuthConfig(auth_cfg);
  if (valid.ok() && cfg.kek_file.empty()) {
    valid = absl::InvalidArgumentError("setting kek_file: required");
  }
  if (valid.ok() && cfg.blind_index_key_file.empty()) {
    valid = absl::InvalidArgumentError("setting blind_index_key_file: required");
  }
  if (valid.ok() && (cfg.cache_ttl < absl::Seconds(1) || cfg.cache_ttl > absl::Hours(1))) {
    valid = absl::InvalidArgumentError("setting check_cache_ttl: 1s .. 1h");
  }
  if (valid.ok() && !cfg.audit_addr.empty()) {
    std::string host;
    int port = 0;
    valid = crm::config::ParseHostPort("audit_addr", cfg.audit_addr, &host, &port);
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(valid.message()).c_str());
    return 2;
  }
  crm::consent::App app;
  return crm::service::Run(common, [&](crm::service::Context& ctx) {
    return crm::consent::Setup(cfg, auth_cfg, app, ctx);
  });
}
