// crm-erasure: the erasure orchestrator (issue 8). Wiring only: the handlers
// are ErasureService, the work is Orchestrator's loop; docs/erasure.md lists
// the settings.
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "libs/base/status_macros.h"
#include "libs/config/config.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/log/log.h"
#include "libs/rpc/channel.h"
#include "libs/service/api_auth.h"
#include "libs/service/audit_outbox.h"
#include "libs/service/service_main.h"
#include "libs/service/service_token.h"
#include "services/erasure/erasure_service.h"
#include "services/erasure/erasure_store.h"
#include "services/erasure/notifier.h"
#include "services/erasure/orchestrator.h"
#include "services/erasure/subject_lookup.h"

namespace crm::erasure {
namespace {

struct ErasureConfig {
  std::string kek_file;
  std::string audit_addr;
  std::string certificate_key_file;
  // name=host:port,... : the services holding subject data.
  std::string targets =
      "audit=127.0.0.1:50054,consent=127.0.0.1:50053,contacts=127.0.0.1:50052,"
      "mailing=127.0.0.1:50055";
  // Where the completion notice goes ("": none is sent) and whose export
  // holds the subject's addresses ("": none are read).
  std::string mailing_addr = "127.0.0.1:50055";
  // Where subjects are looked up by e-mail address ("": not offered).
  std::string contacts_addr = "127.0.0.1:50052";
  std::string address_source = "contacts";
  absl::Duration cancel_window = absl::ZeroDuration();
  absl::Duration call_deadline = absl::Seconds(10);
  absl::Duration work_interval = absl::Seconds(1);
  absl::Duration lease = absl::Minutes(2);
  int max_rounds = 3;
  absl::Duration export_ttl = absl::Hours(24 * 14);
  int export_max_mib = 64;
  std::string processing_record_file;
};

// The worker's pause between rounds: cut short when a request is submitted
// (the worker starts on it at once, not after work_interval) and ended for
// good at stop. Thread-safe.
class Pause {
 public:
  void Wake() {
    absl::MutexLock lock(&mu_);
    woken_ = true;
  }
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  // Waits up to `d` or until woken; false once stopped.
  bool Wait(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(this, &Pause::Ready), d);
    woken_ = false;
    return !stopped_;
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return woken_ || stopped_; }

  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

struct App {
  std::optional<crypto::KeyRing> ring;
  std::optional<crypto::Ed25519PrivateKey> key;
  std::unique_ptr<service::ApiAuth> auth;
  std::unique_ptr<service::AuditOutbox> outbox;
  std::unique_ptr<service::ServiceToken> token;
  std::unique_ptr<GrpcNotifier> notifier;
  std::unique_ptr<GrpcSubjectLookup> lookup;
  std::unique_ptr<ErasureService> service;
  std::unique_ptr<Orchestrator> orchestrator;
  Pause pause;
  std::thread working;
};

// The legal clock and the queue as gauges, refreshed by the worker.
struct Gauges {
  explicit Gauges(prometheus::Registry& registry)
      : requests(prometheus::BuildGauge()
                     .Name("crm_erasure_requests")
                     .Help("Erasure and access requests not finished, by state (needs_attention "
                           "included)")
                     .Register(registry)),
        overdue(prometheus::BuildGauge()
                    .Name("crm_erasure_overdue_requests")
                    .Help("Unfinished erasure requests past their due date (Art. 12(3))")
                    .Register(registry)
                    .Add({})),
        due_soon(prometheus::BuildGauge()
                     .Name("crm_erasure_due_soon_requests")
                     .Help("Unfinished erasure requests due within 7 days")
                     .Register(registry)
                     .Add({})),
        rounds(prometheus::BuildCounter()
                   .Name("crm_erasure_worker_rounds_total")
                   .Help("Worker rounds, by result (error: the database failed)")
                   .Register(registry)),
        target_failures(prometheus::BuildCounter()
                            .Name("crm_erasure_target_call_failures_total")
                            .Help("Calls to target services that failed and will be retried")
                            .Register(registry)
                            .Add({})),
        completed(prometheus::BuildCounter()
                      .Name("crm_erasure_completed_total")
                      .Help("Erasure and access requests completed (with or without retention)")
                      .Register(registry)
                      .Add({})),
        expired(prometheus::BuildCounter()
                    .Name("crm_erasure_access_exports_expired_total")
                    .Help("Access exports deleted when their time ran out")
                    .Register(registry)
                    .Add({})) {}
  prometheus::Family<prometheus::Gauge>& requests;
  prometheus::Gauge& overdue;
  prometheus::Gauge& due_soon;
  prometheus::Family<prometheus::Counter>& rounds;
  prometheus::Counter& target_failures;
  prometheus::Counter& completed;
  prometheus::Counter& expired;
};

void Work(App& app, service::Context& ctx, Gauges& gauges, absl::Duration interval) {
  absl::Duration wait = absl::ZeroDuration();
  absl::Time counted = absl::InfinitePast();
  while (app.pause.Wait(wait)) {
    absl::StatusOr<AdvanceStats> round = app.orchestrator->RunOnce();
    gauges.rounds.Add({{"result", round.ok() ? "ok" : "error"}}).Increment();
    if (!round.ok()) {
      log::Warn("erasure.round_failed", {{"status", round.status()}});
      wait = interval;
      continue;
    }
    gauges.target_failures.Increment(round->target_failures);
    gauges.completed.Increment(round->completed);
    gauges.expired.Increment(round->expired);
    if (round->claimed > 0) {
      log::Info("erasure.round", {{"claimed", round->claimed},
                                  {"completed", round->completed},
                                  {"needs_attention", round->needs_attention},
                                  {"target_failures", round->target_failures}});
    }
    const absl::Time now = ctx.clock.Now();
    if (now - counted > absl::Seconds(15)) {
      counted = now;
      absl::StatusOr<ErasureStore::OpenCounts> counts =
          ctx.db.TransactValue<ErasureStore::OpenCounts>(
              [&](pqxx::work& tx) {
                return ErasureStore::CountOpen(tx, now, now + absl::Hours(24 * 7));
              },
              {.read_only = true});
      if (counts.ok()) {
        for (int s = v1::State_MIN; s <= v1::State_MAX; ++s) {
          if (!IsOpen(static_cast<v1::State>(s)) && s != v1::STATE_NEEDS_ATTENTION) continue;
          int64_t n = 0;
          for (const auto& [state, count] : counts->by_state) {
            if (state == s) n = count;
          }
          gauges.requests.Add({{"state", v1::State_Name(s)}}).Set(static_cast<double>(n));
        }
        gauges.overdue.Set(static_cast<double>(counts->overdue));
        gauges.due_soon.Set(static_cast<double>(counts->due_soon));
      }
    }
    wait = round->claimed > 0 ? absl::ZeroDuration() : interval;
  }
}

using service::StartupStep;

absl::Status Setup(const ErasureConfig& cfg, const service::ApiAuthConfig& auth_cfg, App& app,
                   service::Context& ctx, std::unique_ptr<Gauges>& gauges) {
  absl::StatusOr<crypto::KeyRing> ring = crypto::KeyRing::LoadFromFile(cfg.kek_file);
  CRM_RETURN_IF_ERROR(StartupStep("kek_file", ring.status()));
  app.ring.emplace(*std::move(ring));
  absl::StatusOr<crypto::Ed25519PrivateKey> key =
      crypto::Ed25519PrivateKey::LoadPemFile(cfg.certificate_key_file);
  CRM_RETURN_IF_ERROR(StartupStep("certificate_key_file", key.status()));
  app.key.emplace(*std::move(key));
  std::shared_ptr<const ProcessingRecord> record;
  if (!cfg.processing_record_file.empty()) {
    absl::StatusOr<ProcessingRecord> loaded =
        ProcessingRecord::LoadFile(cfg.processing_record_file);
    CRM_RETURN_IF_ERROR(StartupStep("processing_record_file", loaded.status()));
    record = std::make_shared<const ProcessingRecord>(*std::move(loaded));
  } else {
    log::Warn("erasure.no_processing_record", {});
  }
  CRM_ASSIGN_OR_RETURN(auto registry, config::ParseNamedAddresses("targets", cfg.targets));
  std::vector<Target> targets;
  std::vector<std::string> names;
  for (const auto& [name, addr] : registry) {
    CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                         rpc::MakeChannel({.target = addr,
                                           .tls = ctx.config.server.tls,
                                           .expected_server = name,
                                           .max_message_bytes = cfg.export_max_mib << 20}));
    targets.push_back({.service = name, .stub = subject::v1::SubjectData::NewStub(channel)});
    names.push_back(name);
  }
  CRM_ASSIGN_OR_RETURN(
      app.auth, service::ApiAuth::Create(auth_cfg, ctx.config.server.tls, ctx.clock, &ctx.metrics));
  ctx.on_stop.push_back([&app] { app.auth->Stop(); });
  CRM_ASSIGN_OR_RETURN(app.outbox, service::AuditOutbox::Start(ctx, *app.ring, cfg.audit_addr));
  app.token =
      std::make_unique<service::ServiceToken>(app.auth->identity_channel(), "erasure", ctx.clock);
  if (!cfg.contacts_addr.empty()) {
    CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> contacts,
                         rpc::MakeChannel({.target = cfg.contacts_addr,
                                           .tls = ctx.config.server.tls,
                                           .expected_server = "contacts"}));
    app.lookup = std::make_unique<GrpcSubjectLookup>(contacts, [&app] { return app.token->Get(); });
  }
  app.service =
      std::make_unique<ErasureService>(ErasureDeps{.db = ctx.db,
                                                   .verifier = app.auth->verifier(),
                                                   .audit = app.outbox->writer(),
                                                   .clock = ctx.clock,
                                                   .certificate_key = app.key->PublicKey(),
                                                   .targets = names,
                                                   .cancel_window = cfg.cancel_window,
                                                   .lookup = app.lookup.get(),
                                                   .ring = &*app.ring,
                                                   .record = record,
                                                   .on_created = [&app] { app.pause.Wake(); }});
  ctx.policy.AllowService(v1::Erasure::service_full_name());
  ctx.services.push_back(app.service.get());
  if (!cfg.mailing_addr.empty()) {
    CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> mailing,
                         rpc::MakeChannel({.target = cfg.mailing_addr,
                                           .tls = ctx.config.server.tls,
                                           .expected_server = "mailing"}));
    app.notifier = std::make_unique<GrpcNotifier>(mailing, [&app] { return app.token->Get(); });
  }
  app.orchestrator =
      std::make_unique<Orchestrator>(ctx.db, std::move(targets), *app.key, *app.ring,
                                     app.notifier.get(), app.outbox->writer(), ctx.clock,
                                     OrchestratorOptions{.call_deadline = cfg.call_deadline,
                                                         .lease = cfg.lease,
                                                         .max_rounds = cfg.max_rounds,
                                                         .address_source = cfg.address_source,
                                                         .export_ttl = cfg.export_ttl,
                                                         .record = record});
  log::Info("erasure.registry", {{"targets", static_cast<int>(names.size())}});
  gauges = std::make_unique<Gauges>(ctx.metrics);
  app.working =
      std::thread([&app, &ctx, &gauges, &cfg] { Work(app, ctx, *gauges, cfg.work_interval); });
  ctx.on_stop.push_back([&app] {
    app.pause.Stop();
    app.working.join();
  });
  return absl::OkStatus();
}

}  // namespace
}  // namespace crm::erasure

int main(int argc, char** argv) {
  crm::service::CommonConfig common("erasure");
  crm::erasure::ErasureConfig cfg;
  crm::service::ApiAuthConfig auth_cfg;
  crm::config::Settings settings("crm-erasure");
  crm::service::AddCommonSettings(settings, &common);
  crm::service::AddApiAuthSettings(settings, &auth_cfg);
  settings.Add("kek_file", &cfg.kek_file, "KEK ring file (wraps the outbox key)");
  settings.Add("audit_addr", &cfg.audit_addr, "audit service host:port for the outbox relay");
  settings.Add("certificate_key_file", &cfg.certificate_key_file,
               "Ed25519 private key (PKCS#8 PEM) signing erasure certificates");
  settings.Add("targets", &cfg.targets,
               "the registry: name=host:port,... of every service holding subject data");
  settings.Add("mailing_addr", &cfg.mailing_addr,
               "mailing service host:port for completion notices; empty: none are sent");
  settings.Add("contacts_addr", &cfg.contacts_addr,
               "contacts service host:port for submissions by e-mail address; empty: not offered");
  settings.Add("address_source", &cfg.address_source,
               "the target whose export holds the subject's e-mail addresses; empty: none read");
  settings.Add("cancel_window", &cfg.cancel_window,
               "how long a new request may be cancelled before erasing starts");
  settings.Add("call_deadline", &cfg.call_deadline, "deadline of each call to a target");
  settings.Add("work_interval", &cfg.work_interval, "pause between rounds when nothing is due");
  settings.Add("lease", &cfg.lease,
               "how long a worker holds a request; a crashed worker's requests wait this long");
  settings.Add("max_rounds", &cfg.max_rounds,
               "erase-and-verify rounds before a request needs attention", 1, 20);
  settings.Add("export_ttl", &cfg.export_ttl,
               "how long an access export is kept once ready, then deleted");
  settings.Add("export_max_mib", &cfg.export_max_mib,
               "largest answer accepted from one target (an access export's part), MiB", 4, 1024);
  settings.Add("processing_record_file", &cfg.processing_record_file,
               "the record of processing (JSON) giving access exports their Art. 15 facts");
  crm::config::ParseOrExit(settings, argc, argv, environ);
  absl::Status valid = crm::service::ValidateCommonConfig(common);
  if (valid.ok()) valid = crm::service::ValidateApiAuthConfig(auth_cfg);
  if (valid.ok() && cfg.kek_file.empty())
    valid = absl::InvalidArgumentError("setting kek_file: required");
  if (valid.ok() && cfg.certificate_key_file.empty()) {
    valid = absl::InvalidArgumentError("setting certificate_key_file: required");
  }
  if (valid.ok()) valid = crm::config::ParseNamedAddresses("targets", cfg.targets).status();
  if (valid.ok() &&
      (cfg.cancel_window < absl::ZeroDuration() || cfg.call_deadline <= absl::ZeroDuration() ||
       cfg.work_interval <= absl::ZeroDuration() || cfg.lease < 2 * cfg.call_deadline ||
       cfg.export_ttl < absl::Hours(1))) {
    valid = absl::InvalidArgumentError(
        "setting cancel_window, call_deadline, work_interval, lease, export_ttl: none negative, "
        "call_deadline and work_interval positive, lease at least twice call_deadline, "
        "export_ttl at least 1h");
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(valid.message()).c_str());
    return 2;
  }
  crm::erasure::App app;
  std::unique_ptr<crm::erasure::Gauges> gauges;
  return crm::service::Run(common, [&](crm::service::Context& ctx) {
    return crm::erasure::Setup(cfg, auth_cfg, app, ctx, gauges);
  });
}
