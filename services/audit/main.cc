// crm-audit: the tamper-evident log of every access and change. Wiring only:
// settings, database, migrations and serving come from libs/service; see
// docs/audit.md.
#include <cstdio>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/key_ring.h"
#include "libs/log/log.h"
#include "libs/service/api_auth.h"
#include "libs/service/service_main.h"
#include "services/audit/audit_service.h"

namespace crm::audit {
namespace {

struct AuditConfig {
  std::string kek_file;
  int64_t checkpoint_every_entries = 1000;
  absl::Duration checkpoint_interval = absl::Seconds(10);
  // 0: keep forever.
  absl::Duration retention = absl::Hours(24 * 365 * 2);
};

struct App {
  std::optional<crypto::KeyRing> ring;
  std::unique_ptr<service::ApiAuth> auth;
  std::unique_ptr<LogStore> store;
  std::unique_ptr<DataKeys> keys;
  std::unique_ptr<AuditLog> log;
  std::unique_ptr<Checkpointer> checkpointer;
  std::unique_ptr<IngestService> ingest;
  std::unique_ptr<QueryService> query;
  std::unique_ptr<SubjectDataService> subject;
  absl::Notification stop;
  std::thread background;
};

void Background(App& app, const AuditConfig& cfg, const base::Clock& clock) {
  absl::Time next_retention = clock.Now();
  const absl::Duration tick = std::min(cfg.checkpoint_interval, absl::Seconds(1));
  while (!app.stop.WaitForNotificationWithTimeout(tick)) {
    if (auto c = app.checkpointer->MaybeCheckpoint(); !c.ok()) {
      log::Warn("audit.checkpoint_failed", {{"status", c.status()}});
    }
    if (cfg.retention > absl::ZeroDuration() && clock.Now() >= next_retention) {
      absl::StatusOr<int64_t> expired = ExpireContent(*app.store, clock.Now() - cfg.retention);
      if (!expired.ok()) {
        log::Warn("audit.retention_failed", {{"status", expired.status()}});
      } else if (*expired > 0) {
        log::Info("audit.retention_expired", {{"entries", *expired}});
      }
      next_retention = clock.Now() + absl::Hours(1);
    }
  }
}

absl::Status Setup(const AuditConfig& cfg, const service::ApiAuthConfig& auth_cfg, App& app,
                   service::Context& ctx) {
  absl::StatusOr<crypto::KeyRing> ring = crypto::KeyRing::LoadFromFile(cfg.kek_file);
  if (!ring.ok()) {
    return absl::Status(ring.status().code(), absl::StrCat("kek_file: ", ring.status().message()));
  }
  app.ring.emplace(*std::move(ring));
  CRM_ASSIGN_OR_RETURN(
      app.auth, service::ApiAuth::Create(auth_cfg, ctx.config.server.tls, ctx.clock, &ctx.metrics));
  ctx.on_stop.push_back([&app] { app.auth->Stop(); });
  app.store = std::make_unique<LogStore>(ctx.db);
  app.keys = std::make_unique<DataKeys>(ctx.db, *app.ring, ctx.clock);
  app.log = std::make_unique<AuditLog>(*app.store, *app.keys, ctx.clock);
  CRM_ASSIGN_OR_RETURN(app.checkpointer,
                       Checkpointer::Create(*app.store, *app.ring, ctx.clock,
                                            cfg.checkpoint_every_entries, cfg.checkpoint_interval));
  AuditDeps deps{*app.log, *app.checkpointer, app.auth->verifier(), ctx.clock};
  app.ingest = std::make_unique<IngestService>(deps);
  app.query = std::make_unique<QueryService>(deps);
  app.subject = std::make_unique<SubjectDataService>(deps);

  AllowAuditMethods(ctx.policy);
  ctx.services.push_back(app.ingest.get());
  ctx.services.push_back(app.query.get());
  ctx.services.push_back(app.subject.get());

  app.background = std::thread([&app, &cfg, &ctx] { Background(app, cfg, ctx.clock); });
  ctx.on_stop.push_back([&app] {
    app.stop.Notify();
    app.background.join();
  });
  return absl::OkStatus();
}

}  // namespace
}  // namespace crm::audit

int main(int argc, char** argv) {
  crm::service::CommonConfig common("audit");
  crm::audit::AuditConfig cfg;
  crm::service::ApiAuthConfig auth_cfg;
  crm::config::Settings settings("crm-audit");
  crm::service::AddCommonSettings(settings, &common);
  crm::service::AddApiAuthSettings(settings, &auth_cfg);
  settings.Add("kek_file", &cfg.kek_file, "KEK ring file wrapping data keys and checkpoint keys");
  settings.Add("checkpoint_every_entries", &cfg.checkpoint_every_entries,
               "sign a checkpoint after this many new entries", 1, 10'000'000);
  settings.Add("checkpoint_interval", &cfg.checkpoint_interval,
               "sign a checkpoint this often when the log grew");
  settings.Add("retention", &cfg.retention,
               "how long entries keep their content (0s: forever); hashes stay");
  crm::config::ParseOrExit(settings, argc, argv, environ);
  absl::Status valid = crm::service::ValidateCommonConfig(common);
  if (valid.ok()) valid = crm::service::ValidateApiAuthConfig(auth_cfg);
  if (valid.ok() && cfg.kek_file.empty()) {
    valid = absl::InvalidArgumentError("setting kek_file: required");
  }
  if (valid.ok() && cfg.checkpoint_interval <= absl::ZeroDuration()) {
    valid = absl::InvalidArgumentError("setting checkpoint_interval: must be positive");
  }
  if (valid.ok() && cfg.retention < absl::ZeroDuration()) {
    valid = absl::InvalidArgumentError("setting retention: must not be negative");
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(valid.message()).c_str());
    return 2;
  }
  crm::audit::App app;
  return crm::service::Run(common, [&](crm::service::Context& ctx) {
    return crm::audit::Setup(cfg, auth_cfg, app, ctx);
  });
}
