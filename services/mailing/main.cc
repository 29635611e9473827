// crm-mailing: lists, subscriptions, templates, campaigns and the unsubscribe
// link (issue 7). Wiring only: the handlers are MailingService, sending is
// CampaignSender's loop; docs/mailing.md lists the settings.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/base/status_macros.h"
#include "libs/config/config.h"
#include "libs/crypto/key_file.h"
#include "libs/crypto/key_ring.h"
#include "libs/dkim/signer.h"
#include "libs/log/log.h"
#include "libs/rpc/channel.h"
#include "libs/service/api_auth.h"
#include "libs/service/audit_outbox.h"
#include "libs/service/service_main.h"
#include "libs/service/service_token.h"
#include "libs/smtp/sender.h"
#include "services/mailing/address_book.h"
#include "services/mailing/consent_gate.h"
#include "services/mailing/mailing_service.h"
#include "services/mailing/sender.h"
#include "services/mailing/subject_data_service.h"

namespace crm::mailing {
namespace {

struct MailingConfig {
  std::string kek_file;
  std::string audit_addr;
  std::string consent_addr = "127.0.0.1:50053";
  std::string contacts_addr = "127.0.0.1:50052";
  std::string link_key_file;
  // The relay.
  smtp::Options smtp{.host = "127.0.0.1", .port = 2525};
  std::string smtp_tls = "starttls";
  std::string smtp_password_file;
  // What mail says.
  SenderOptions sender;
  std::string dkim_key_file, dkim_domain, dkim_selector;
  absl::Duration send_interval = absl::Seconds(1);
  int send_rate = 0;  // messages a second to the relay; 0: no limit
  absl::Duration confirm_max_age = absl::Hours(72);
};

struct App {
  std::optional<crypto::KeyRing> ring;
  std::optional<LinkTokens> tokens;
  std::optional<dkim::Signer> dkim;
  std::unique_ptr<service::ApiAuth> auth;
  std::unique_ptr<service::AuditOutbox> outbox;
  std::unique_ptr<service::ServiceToken> token;
  std::unique_ptr<GrpcConsentGate> consent;
  std::unique_ptr<GrpcAddressBook> addresses;
  std::unique_ptr<smtp::Sender> smtp;
  std::unique_ptr<RateLimiter> rate;
  std::unique_ptr<CampaignSender> sender;
  std::unique_ptr<SenderMetrics> metrics;
  std::unique_ptr<MailingService> service;
  std::unique_ptr<SubjectDataService> subject_data;
  absl::Notification stop;
  std::thread sending;
};

absl::StatusOr<LinkTokens> LoadLinkKey(const std::string& path) {
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes text, crypto::ReadKeyFile(path));
  CRM_ASSIGN_OR_RETURN(std::vector<crypto::VersionedKey> keys,
                       crypto::ParseKeyLines(text.view(), 32));
  if (keys.size() != 1 || keys[0].pending) {
    return absl::InvalidArgumentError("exactly one key expected, not pending");
  }
  return LinkTokens::Create(std::move(keys[0].key));
}

// Rounds of the sender until stopped: at once while there is work, every
// send_interval otherwise.
void Send(App& app, absl::Duration interval) {
  absl::Duration wait = absl::ZeroDuration();
  while (!app.stop.WaitForNotificationWithTimeout(wait)) {
    absl::StatusOr<RoundStats> round = app.sender->RunOnce();
    app.metrics->Count(round);
    if (!round.ok()) {
      log::Warn("mailing.send_round_failed", {{"status", round.status()}});
      wait = interval;
      continue;
    }
    if (round->claimed > 0) {
      log::Info("mailing.send_round", {{"claimed", round->claimed},
                                       {"sent", round->sent},
                                       {"skipped_consent", round->skipped_consent},
                                       {"skipped_no_address", round->skipped_no_address},
                                       {"retried", round->retried},
                                       {"failed", round->failed}});
    }
    wait = round->claimed > 0 ? absl::ZeroDuration() : interval;
  }
}

using service::StartupStep;

absl::Status Setup(MailingConfig& cfg, const service::ApiAuthConfig& auth_cfg, App& app,
                   service::Context& ctx) {
  absl::StatusOr<crypto::KeyRing> ring = crypto::KeyRing::LoadFromFile(cfg.kek_file);
  CRM_RETURN_IF_ERROR(StartupStep("kek_file", ring.status()));
  app.ring.emplace(*std::move(ring));
  absl::StatusOr<LinkTokens> tokens = LoadLinkKey(cfg.link_key_file);
  CRM_RETURN_IF_ERROR(StartupStep("link_key_file", tokens.status()));
  app.tokens.emplace(*std::move(tokens));
  if (!cfg.dkim_key_file.empty()) {
    absl::StatusOr<dkim::Signer> signer = dkim::Signer::FromPemFile(
        cfg.dkim_key_file, {.domain = cfg.dkim_domain, .selector = cfg.dkim_selector});
    CRM_RETURN_IF_ERROR(StartupStep("dkim_key_file", signer.status()));
    app.dkim.emplace(*std::move(signer));
    log::Info("mailing.dkim_signing", {{"key_bits", app.dkim->key_bits()}});
  } else {
    log::Warn("mailing.dkim_off", {{"reason", log::Literal("no dkim_key_file: mail is unsigned")}});
  }
  if (!cfg.smtp_password_file.empty()) {
    absl::StatusOr<crypto::SecretBytes> pw = crypto::ReadKeyFile(cfg.smtp_password_file);
    CRM_RETURN_IF_ERROR(StartupStep("smtp_password_file", pw.status()));
    cfg.smtp.password = std::string(absl::StripTrailingAsciiWhitespace(pw->view()));
  }
  cfg.smtp.tls = cfg.smtp_tls == "implicit" ? smtp::TlsMode::kImplicit : smtp::TlsMode::kStartTls;
  absl::StatusOr<std::unique_ptr<smtp::Sender>> smtp = smtp::Sender::Create(cfg.smtp);
  CRM_RETURN_IF_ERROR(StartupStep("smtp", smtp.status()));
  app.smtp = *std::move(smtp);

  CRM_ASSIGN_OR_RETURN(
      app.auth, service::ApiAuth::Create(auth_cfg, ctx.config.server.tls, ctx.clock, &ctx.metrics));
  ctx.on_stop.push_back([&app] { app.auth->Stop(); });
  CRM_ASSIGN_OR_RETURN(app.outbox, service::AuditOutbox::Start(ctx, *app.ring, cfg.audit_addr));
  app.token =
      std::make_unique<service::ServiceToken>(app.auth->identity_channel(), "mailing", ctx.clock);
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> consent,
                       rpc::MakeChannel({.target = cfg.consent_addr,
                                         .tls = ctx.config.server.tls,
                                         .expected_server = "consent"}));
  app.consent = std::make_unique<GrpcConsentGate>(consent, [&app] { return app.token->Get(); });
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> contacts,
                       rpc::MakeChannel({.target = cfg.contacts_addr,
                                         .tls = ctx.config.server.tls,
                                         .expected_server = "contacts"}));
  app.addresses = std::make_unique<GrpcAddressBook>(contacts);
  app.service =
      std::make_unique<MailingService>(MailingDeps{.db = ctx.db,
                                                   .verifier = app.auth->verifier(),
                                                   .audit = app.outbox->writer(),
                                                   .clock = ctx.clock,
                                                   .consent = *app.consent,
                                                   .tokens = *app.tokens,
                                                   .ring = *app.ring,
                                                   .message_domain = cfg.sender.message_domain,
                                                   .confirm_max_age = cfg.confirm_max_age});
  app.subject_data = std::make_unique<SubjectDataService>(ctx.db, app.outbox->writer(), ctx.clock);
  CRM_RETURN_IF_ERROR(AllowMailingMethods(ctx.policy));
  CRM_RETURN_IF_ERROR(AllowMailingSubjectData(ctx.policy));
  ctx.services.push_back(app.service.get());
  ctx.services.push_back(app.subject_data.get());
  if (cfg.send_rate > 0) {
    // Bursts of up to one second's worth.
    app.rate = std::make_unique<RateLimiter>(cfg.send_rate, cfg.send_rate, ctx.clock);
    cfg.sender.rate = app.rate.get();
  }
  app.metrics = std::make_unique<SenderMetrics>(ctx.metrics);
  cfg.sender.metrics = app.metrics.get();
  app.sender = std::make_unique<CampaignSender>(
      ctx.db, *app.consent, *app.addresses, *app.smtp, *app.tokens, *app.ring,
      app.dkim ? &*app.dkim : nullptr, ctx.clock, cfg.sender);
  app.sending = std::thread([&app, &cfg] { Send(app, cfg.send_interval); });
  ctx.on_stop.push_back([&app] {
    app.stop.Notify();
    app.sending.join();
  });
  return absl::OkStatus();
}

}  // namespace
}  // namespace crm::mailing

int main(int argc, char** argv) {
  crm::service::CommonConfig common("mailing");
  crm::mailing::MailingConfig cfg;
  crm::service::ApiAuthConfig auth_cfg;
  crm::config::Settings settings("crm-mailing");
  crm::service::AddCommonSettings(settings, &common);
  crm::service::AddApiAuthSettings(settings, &auth_cfg);
  settings.Add("kek_file", &cfg.kek_file, "KEK ring file (wraps the outbox key)");
  settings.Add("audit_addr", &cfg.audit_addr, "audit service host:port for the outbox relay");
  settings.Add("consent_addr", &cfg.consent_addr, "consent service host:port");
  settings.Add("contacts_addr", &cfg.contacts_addr, "contacts service host:port");
  settings.Add("link_key_file", &cfg.link_key_file,
               "key file of the key signing unsubscribe and confirmation links (one key)");
  settings.Add("smtp_host", &cfg.smtp.host, "the relay's host name (its certificate must name it)");
  settings.Add("smtp_port", &cfg.smtp.port, "the relay's port", 1, 65535);
  settings.Add("smtp_tls", &cfg.smtp_tls, "starttls (required, never clear) or implicit");
  settings.Add("smtp_ca_file", &cfg.smtp.ca_file,
               "CA bundle to verify the relay with (empty: the system's)");
  settings.Add("smtp_username", &cfg.smtp.username, "AUTH user (empty: no AUTH)");
  settings.Add("smtp_password_file", &cfg.smtp_password_file, "file holding the AUTH password");
  settings.Add("smtp_ehlo_name", &cfg.smtp.ehlo_name, "our name in EHLO");
  settings.Add("mail_from", &cfg.sender.from, "the From header of campaigns");
  settings.Add("envelope_from", &cfg.sender.envelope_from, "MAIL FROM: where bounces go");
  settings.Add("message_domain", &cfg.sender.message_domain, "the domain of Message-IDs");
  settings.Add("unsubscribe_base", &cfg.sender.unsubscribe_base,
               "the gateway's unsubscribe URL; the token is appended");
  settings.Add("confirm_base", &cfg.sender.confirm_base,
               "the gateway's double opt-in confirmation URL; the token is appended");
  settings.Add("dkim_key_file", &cfg.dkim_key_file,
               "PEM RSA key (2048+ bits) signing mail; empty: unsigned (development only)");
  settings.Add("dkim_domain", &cfg.dkim_domain, "DKIM d=");
  settings.Add("dkim_selector", &cfg.dkim_selector, "DKIM s=");
  settings.Add("send_batch", &cfg.sender.batch_size, "queue rows per sending round", 1, 10'000);
  settings.Add("send_interval", &cfg.send_interval, "pause between rounds when the queue is idle");
  settings.Add("send_retry", &cfg.sender.first_retry,
               "wait before the first retry of a message the relay deferred or could not take "
               "(doubles with each further attempt)");
  settings.Add(
      "send_lease", &cfg.sender.lease,
      "how long claimed queue rows stay a worker's (a crashed worker's come back after it)");
  settings.Add("send_rate", &cfg.send_rate,
               "messages a second to the relay, per replica (bursts of one second's); 0: no limit",
               0, 1'000'000);
  settings.Add("confirm_max_age", &cfg.confirm_max_age,
               "how long a double opt-in confirmation link is valid");
  cfg.sender.from = "CRM <crm@localhost>";
  cfg.sender.message_domain = "localhost";
  cfg.sender.unsubscribe_base = "https://localhost:8443/u/";
  cfg.sender.confirm_base = "https://localhost:8443/c/";
  crm::config::ParseOrExit(settings, argc, argv, environ);
  absl::Status valid = crm::service::ValidateCommonConfig(common);
  if (valid.ok()) valid = crm::service::ValidateApiAuthConfig(auth_cfg);
  for (const auto& [name, value] :
       {std::pair<const char*, const std::string&>{"kek_file", cfg.kek_file},
        {"link_key_file", cfg.link_key_file},
        {"mail_from", cfg.sender.from},
        {"message_domain", cfg.sender.message_domain},
        {"unsubscribe_base", cfg.sender.unsubscribe_base}}) {
    if (valid.ok() && value.empty()) {
      valid = absl::InvalidArgumentError(absl::StrCat("setting ", name, ": required"));
    }
  }
  if (valid.ok() && cfg.smtp_tls != "starttls" && cfg.smtp_tls != "implicit") {
    valid = absl::InvalidArgumentError("setting smtp_tls: starttls or implicit");
  }
  if (valid.ok() && !cfg.dkim_key_file.empty() &&
      (cfg.dkim_domain.empty() || cfg.dkim_selector.empty())) {
    valid = absl::InvalidArgumentError("setting dkim_domain, dkim_selector: required with a key");
  }
  if (valid.ok() && cfg.send_interval <= absl::ZeroDuration()) {
    valid = absl::InvalidArgumentError("setting send_interval: must be positive");
  }
  if (valid.ok() &&
      (cfg.sender.first_retry < absl::Seconds(1) || cfg.sender.first_retry > absl::Hours(24))) {
    valid = absl::InvalidArgumentError("setting send_retry: from 1s to 24h");
  }
  if (valid.ok() && (cfg.sender.lease < absl::Seconds(1) || cfg.sender.lease > absl::Hours(24))) {
    valid = absl::InvalidArgumentError("setting send_lease: from 1s to 24h");
  }
  for (const auto& [name, addr] :
       {std::pair<const char*, const std::string&>{"consent_addr", cfg.consent_addr},
        {"contacts_addr", cfg.contacts_addr}}) {
    std::string host;
    int port = 0;
    if (valid.ok()) valid = crm::config::ParseHostPort(name, addr, &host, &port);
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
  crm::mailing::App app;
  return crm::service::Run(common, [&](crm::service::Context& ctx) {
    return crm::mailing::Setup(cfg, auth_cfg, app, ctx);
  });
}
