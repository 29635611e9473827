// crm-contacts: the subject registry and the CRM records (issue 5). Wiring
// only: settings, database, migrations and serving come from libs/service;
// see docs/contacts.md.
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/civil_time.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/config/config.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/log/log.h"
#include "libs/rpc/channel.h"
#include "libs/service/api_auth.h"
#include "libs/service/audit_outbox.h"
#include "libs/service/service_main.h"
#include "libs/service/service_token.h"
#include "services/contacts/contacts_service.h"
#include "services/contacts/retention.h"
#include "services/contacts/subject_data_service.h"

namespace crm::contacts {
namespace {

struct ContactsConfig {
  std::string kek_file;
  std::string blind_index_key_file;
  // Empty: audit events stay in the outbox (tests, or audit not deployed yet).
  std::string audit_addr;
  // Empty: subjects due under the retention rules wait for an operator.
  std::string erasure_addr;
  int64_t invoice_retention_years = 5;
  std::string retention_rules = kDefaultRetentionRules;
  absl::Duration sweep_interval = absl::Hours(1);
};

struct App {
  std::optional<crypto::KeyRing> ring;
  std::optional<crypto::BlindIndexer> indexer;
  std::unique_ptr<service::ApiAuth> auth;
  std::unique_ptr<service::AuditOutbox> outbox;
  std::unique_ptr<PersonSealer> sealer;
  std::unique_ptr<ContactsService> service;
  std::unique_ptr<SubjectDataService> subject_data;
  std::vector<RetentionRule> rules;
  // Set with erasure_addr: the sweeper submits due subjects' erasures.
  std::unique_ptr<service::ServiceToken> token;
  std::unique_ptr<crm::erasure::v1::Erasure::Stub> erasure;
  absl::Notification stop;
  std::thread sweeper;
};

// SubmitErasure (reason retention) with contacts' own token.
absl::Status SubmitRetentionErasure(App& app, const std::string& subject_id) {
  absl::StatusOr<std::string> token = app.token->Get();
  if (!token.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("contacts cannot call erasure: ", token.status().message()));
  }
  crm::erasure::v1::SubmitErasureRequest req;
  req.set_subject_id(subject_id);
  req.set_reason(crm::erasure::v1::ERASURE_REASON_RETENTION);
  crm::erasure::v1::SubmitErasureResponse resp;
  std::unique_ptr<grpc::ClientContext> ctx = rpc::NewClientContext(absl::Seconds(10), *token);
  absl::Status s = base::FromGrpcStatus(app.erasure->SubmitErasure(ctx.get(), req, &resp));
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("erasure: ", s.message()));
  return absl::OkStatus();
}

// Every sweep_interval: records the persons due under the retention rules,
// submits their erasures (with erasure_addr) and purges invoice records
// whose retention has ended.
void Sweep(App& app, pg::Pool& db, const base::Clock& clock, absl::Duration interval,
           const std::vector<RetentionRule>& rules) {
  do {
    absl::StatusOr<int64_t> due = db.TransactValue<int64_t>(
        [&](pqxx::work& tx) { return SweepRetention(tx, rules, clock.Now()); });
    if (!due.ok()) {
      log::Warn("contacts.retention_sweep_failed", {{"status", due.status()}});
    } else if (*due > 0) {
      log::Info("contacts.retention_due", {{"subjects", *due}});
    }
    if (due.ok() && *due > 0 && app.erasure != nullptr) {
      absl::StatusOr<int64_t> submitted = SubmitDueErasures(
          db, [&app](const std::string& subject) { return SubmitRetentionErasure(app, subject); });
      if (!submitted.ok()) {
        log::Warn("contacts.retention_submit_failed", {{"status", submitted.status()}});
      } else if (*submitted > 0) {
        log::Info("contacts.retention_erasures_submitted", {{"subjects", *submitted}});
      }
    }
    const std::string today =
        absl::FormatCivilTime(absl::ToCivilDay(clock.Now(), absl::UTCTimeZone()));
    absl::StatusOr<int64_t> purged = db.TransactValue<int64_t>(
        [&](pqxx::work& tx) { return InvoiceStore::PurgeExpired(tx, today); });
    if (!purged.ok()) {
      log::Warn("contacts.invoice_purge_failed", {{"status", purged.status()}});
    } else if (*purged > 0) {
      log::Info("contacts.invoices_purged", {{"invoices", *purged}});
    }
  } while (!app.stop.WaitForNotificationWithTimeout(interval));
}

using service::StartupStep;

absl::Status Setup(const ContactsConfig& cfg, const service::ApiAuthConfig& auth_cfg, App& app,
                   service::Context& ctx) {
  absl::StatusOr<crypto::KeyRing> ring = crypto::KeyRing::LoadFromFile(cfg.kek_file);
  CRM_RETURN_IF_ERROR(StartupStep("kek_file", ring.status()));
  app.ring.emplace(*std::move(ring));
  absl::StatusOr<crypto::BlindIndexer> indexer =
      crypto::BlindIndexer::LoadFromFile(cfg.blind_index_key_file);
  CRM_RETURN_IF_ERROR(StartupStep("blind_index_key_file", indexer.status()));
  app.indexer.emplace(*std::move(indexer));
  CRM_ASSIGN_OR_RETURN(
      app.auth, service::ApiAuth::Create(auth_cfg, ctx.config.server.tls, ctx.clock, &ctx.metrics));
  ctx.on_stop.push_back([&app] { app.auth->Stop(); });
  CRM_ASSIGN_OR_RETURN(app.outbox, service::AuditOutbox::Start(ctx, *app.ring, cfg.audit_addr));
  app.sealer = std::make_unique<PersonSealer>(*app.ring, *app.indexer);
  app.service = std::make_unique<ContactsService>(
      ContactsDeps{.db = ctx.db,
                   .sealer = *app.sealer,
                   .verifier = app.auth->verifier(),
                   .audit = app.outbox->writer(),
                   .clock = ctx.clock,
                   .invoice_retention_years = static_cast<int>(cfg.invoice_retention_years)});
  app.subject_data =
      std::make_unique<SubjectDataService>(ctx.db, *app.sealer, app.outbox->writer(), ctx.clock);
  CRM_RETURN_IF_ERROR(AllowContactsMethods(ctx.policy));
  AllowSubjectDataMethods(ctx.policy);
  ctx.services.push_back(app.service.get());
  ctx.services.push_back(app.subject_data.get());
  CRM_ASSIGN_OR_RETURN(app.rules, ParseRetentionRules(cfg.retention_rules));
  if (!cfg.erasure_addr.empty()) {
    app.token = std::make_unique<service::ServiceToken>(app.auth->identity_channel(), "contacts",
                                                        ctx.clock);
    CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> erasure,
                         rpc::MakeChannel({.target = cfg.erasure_addr,
                                           .tls = ctx.config.server.tls,
                                           .expected_server = "erasure"}));
    app.erasure = crm::erasure::v1::Erasure::NewStub(erasure);
  }
  app.sweeper = std::thread(
      [&app, &ctx, &cfg] { Sweep(app, ctx.db, ctx.clock, cfg.sweep_interval, app.rules); });
  ctx.on_stop.push_back([&app] {
    app.stop.Notify();
    app.sweeper.join();
  });
  return absl::OkStatus();
}

}  // namespace
}  // namespace crm::contacts

int main(int argc, char** argv) {
  crm::service::CommonConfig common("contacts");
  crm::contacts::ContactsConfig cfg;
  crm::service::ApiAuthConfig auth_cfg;
  crm::config::Settings settings("crm-contacts");
  crm::service::AddCommonSettings(settings, &common);
  crm::service::AddApiAuthSettings(settings, &auth_cfg);
  settings.Add("kek_file", &cfg.kek_file, "KEK ring file wrapping subject data keys");
  settings.Add("blind_index_key_file", &cfg.blind_index_key_file,
               "key file of the blind-index key (e-mail and phone look-ups)");
  settings.Add("audit_addr", &cfg.audit_addr, "audit service host:port for the outbox relay");
  settings.Add("erasure_addr", &cfg.erasure_addr,
               "erasure orchestrator host:port: persons due under the retention rules get an "
               "erasure request (empty: they wait for an operator, ListRetentionDue)");
  settings.Add("invoice_retention_years", &cfg.invoice_retention_years,
               "invoice records are kept until the end of the issue year plus this many years", 1,
               30);
  settings.Add("sweep_interval", &cfg.sweep_interval,
               "how often retention rules are applied and expired invoices purged");
  settings.Add("retention_rules", &cfg.retention_rules,
               "status=days of inactivity after which a person is due for erasure, e.g. "
               "lead=730,prospect=730,former_customer=1095 (empty: none)");
  crm::config::ParseOrExit(settings, argc, argv, environ);
  absl::Status valid = crm::service::ValidateCommonConfig(common);
  if (valid.ok()) valid = crm::service::ValidateApiAuthConfig(auth_cfg);
  if (valid.ok() && cfg.kek_file.empty()) {
    valid = absl::InvalidArgumentError("setting kek_file: required");
  }
  if (valid.ok() && cfg.blind_index_key_file.empty()) {
    valid = absl::InvalidArgumentError("setting blind_index_key_file: required");
  }
  if (valid.ok() && cfg.sweep_interval <= absl::ZeroDuration()) {
    valid = absl::InvalidArgumentError("setting sweep_interval: must be positive");
  }
  if (valid.ok()) valid = crm::contacts::ParseRetentionRules(cfg.retention_rules).status();
  for (const auto& [name, addr] :
       {std::pair<const char*, const std::string&>{"audit_addr", cfg.audit_addr},
        std::pair<const char*, const std::string&>{"erasure_addr", cfg.erasure_addr}}) {
    if (valid.ok() && !addr.empty()) {
      std::string host;
      int port = 0;
      valid = crm::config::ParseHostPort(name, addr, &host, &port);
    }
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(valid.message()).c_str());
    return 2;
  }
  crm::contacts::App app;
  return crm::service::Run(common, [&](crm::service::Context& ctx) {
    return crm::contacts::Setup(cfg, auth_cfg, app, ctx);
  });
}
