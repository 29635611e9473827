#include "libs/outbox/relay.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/aead.h"
#include "libs/log/log.h"

namespace crm::outbox {
namespace {

// Transaction advisory lock key of the relay ("crm_rely" in ASCII). Advisory
// locks are per database, so each service's relays contend only with each other.
constexpr int64_t kRelayLockKey = 0x63726d5f72656c79;

constexpr const char* kTryLockSql = "SELECT pg_try_advisory_xact_lock($1)";
constexpr const char* kSelectBatchSql =
    "SELECT seq, event_id::text, payload FROM audit_outbox ORDER BY seq LIMIT $1 FOR UPDATE";
constexpr const char* kBacklogSql =
    "SELECT count(*), (SELECT (extract(epoch FROM created_at) * 1000000)::bigint "
    "FROM audit_outbox ORDER BY seq LIMIT 1) FROM audit_outbox";
constexpr const char* kDeleteShippedSql = "DELETE FROM audit_outbox WHERE seq = ANY($1::bigint[])";
constexpr const char* kMoveToDeadSql =
    "WITH moved AS (DELETE FROM audit_outbox WHERE seq = $1 "
    "RETURNING seq, event_id, payload, created_at) "
    "INSERT INTO audit_outbox_dead (seq, event_id, payload, created_at, dead_at, reason) "
    "SELECT seq, event_id, payload, created_at, now(), $2 FROM moved";

constexpr int kMaxBatchSize = 10000;

struct DeadRow {
  int64_t seq;
  std::string event_id;
  absl::Status reason;
};

// "{1,2,3}": a PostgreSQL array literal of the sequence numbers, bound as one
// parameter.
std::string SeqArray(const std::vector<int64_t>& seqs) {
  return absl::StrCat("{", absl::StrJoin(seqs, ","), "}");
}

}  // namespace

namespace internal {

absl::Duration Backoff(const RelayOptions& options, int failures, double u) {
  absl::Duration base = options.min_backoff;
  for (int i = 1; i < failures && base < options.max_backoff; ++i) base *= 2;
  base = std::min(base, options.max_backoff);
  const double jitter = std::clamp(options.jitter, 0.0, 1.0);
  return base * (1.0 - jitter * std::clamp(u, 0.0, 1.0));
}

absl::Status ValidateOptions(const RelayOptions& options) {
  if (options.batch_size < 1 || options.batch_size > kMaxBatchSize) {
    return absl::InvalidArgumentError("batch_size: must be 1..10000");
  }
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("poll_interval: must be positive");
  }
  if (options.min_backoff <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("min_backoff: must be positive");
  }
  if (options.max_backoff < options.min_backoff) {
    return absl::InvalidArgumentError("max_backoff: must be at least min_backoff");
  }
  if (!(options.jitter >= 0.0 && options.jitter <= 1.0)) {
    return absl::InvalidArgumentError("jitter: must be in [0, 1]");
  }
  if (options.clock_check_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("clock_check_interval: must be positive");
  }
  return absl::OkStatus();
}

}  // namespace internal

Relay::Relay(pg::Pool& pool, crypto::SecretBytes key, Sink& sink, base::Clock& clock,
             RelayOptions options, prometheus::Registry* registry)
    : pool_(pool), key_(std::move(key)), sink_(sink), clock_(clock), options_(options) {
  if (registry == nullptr) return;
  shipped_metric_ =
      &prometheus::BuildCounter()
           .Name("crm_outbox_events_shipped_total")
           .Help("Audit events delivered to the audit service and removed from the outbox")
           .Register(*registry)
           .Add({});
  failed_metric_ =
      &prometheus::BuildCounter()
           .Name("crm_outbox_batches_failed_total")
           .Help("Outbox relay cycles that failed (audit unreachable or database error)")
           .Register(*registry)
           .Add({});
  dead_metric_ = &prometheus::BuildCounter()
                      .Name("crm_outbox_events_dead_lettered_total")
                      .Help("Outbox rows that could not be opened, moved to audit_outbox_dead")
                      .Register(*registry)
                      .Add({});
  pending_metric_ = &prometheus::BuildGauge()
                         .Name("crm_outbox_pending_events")
                         .Help("Audit events in the outbox not yet shipped")
                         .Register(*registry)
                         .Add({});
  lag_metric_ = &prometheus::BuildGauge()
                     .Name("crm_outbox_lag_seconds")
                     .Help("Age of the oldest audit event not yet shipped, 0 if none")
                     .Register(*registry)
                     .Add({});
}

Relay::~Relay() { Stop(); }

absl::Status Relay::Start() {
  CRM_RETURN_IF_ERROR(internal::ValidateOptions(options_));
  if (key_.size() != crypto::kAes256KeySize) {
    return absl::InvalidArgumentError("outbox key: must be 32 bytes");
  }
  absl::MutexLock start_stop(&start_stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (started_ || stopping_) {
      return absl::FailedPreconditionError("outbox relay: already started or stopped");
    }
    started_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
  log::Info("outbox.relay_started", {{"batch_size", options_.batch_size}});
  return absl::OkStatus();
}

void Relay::Stop() {
  absl::MutexLock start_stop(&start_stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    thread_.join();
    log::Info("outbox.relay_stopped");
  }
}

void Relay::Notify() {
  absl::MutexLock lock(&mu_);
  notified_ = true;
}

RelayStats Relay::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void Relay::RecordBacklog(const Backlog& backlog) {
  absl::Duration lag = absl::ZeroDuration();
  if (backlog.pending > 0) {
    lag =
        std::max(absl::ZeroDuration(), clock_.Now() - absl::FromUnixMicros(backlog.oldest_micros));
  }
  if (pending_metric_ != nullptr) pending_metric_->Set(static_cast<double>(backlog.pending));
  if (lag_metric_ != nullptr) lag_metric_->Set(absl::ToDoubleSeconds(lag));
  absl::MutexLock lock(&mu_);
  stats_.pending = backlog.pending;
  stats_.lag = lag;
}

absl::StatusOr<CycleResult> Relay::RunOnce() {
  CycleResult result;
  Backlog backlog;
  bool have_backlog = false;
  std::vector<DeadRow> dead;
  const absl::Status status = pool_.Transact(
      [&](pqxx::work& tx) -> absl::Status {
        result = CycleResult{};
        dead.clear();
        have_backlog = false;
        auto read_backlog = [&] {
          const pqxx::row row = tx.exec1(kBacklogSql);
          backlog.pending = row[0].as<int64_t>();
          backlog.oldest_micros = row[1].is_null() ? 0 : row[1].as<int64_t>();
          have_backlog = true;
        };
        if (!tx.exec_params1(kTryLockSql, kRelayLockKey)[0].as<bool>()) {
          result.busy = true;
          read_backlog();
          return absl::OkStatus();
        }
        const pqxx::result rows = tx.exec_params(kSelectBatchSql, options_.batch_size);
        // Before shipping: if the sink fails, this is what stays pending.
        read_backlog();
        result.full_batch = static_cast<int>(rows.size()) >= options_.batch_size;

        std::vector<crm::audit::v1::Event> events;
        std::vector<int64_t> shipped_seqs;
        events.reserve(rows.size());
        for (const pqxx::row& row : rows) {
          const int64_t seq = row[0].as<int64_t>();
          const std::string event_id = row[1].as<std::string>();
          const pqxx::binarystring payload(row[2]);
          absl::StatusOr<std::string> plaintext =
              crypto::Open(key_, absl::string_view(payload.get(), payload.size()), event_id);
          if (!plaintext.ok()) {
            dead.push_back({seq, event_id, plaintext.status()});
            continue;
          }
          crm::audit::v1::Event event;
          if (!event.ParseFromString(*plaintext) || event.event_id() != event_id) {
            dead.push_back({seq, event_id, absl::DataLossError("payload is not the row's event")});
            continue;
          }
          events.push_back(std::move(event));
          shipped_seqs.push_back(seq);
        }
        for (const DeadRow& row : dead) {
          tx.exec_params(kMoveToDeadSql, row.seq,
                         std::string(absl::StatusCodeToString(row.reason.code())));
        }
        if (!events.empty()) {
          CRM_RETURN_IF_ERROR(sink_.Append(events));
          tx.exec_params(kDeleteShippedSql, SeqArray(shipped_seqs));
        }
        result.shipped = static_cast<int>(events.size());
        result.dead_lettered = static_cast<int>(dead.size());
        if (result.shipped > 0 || result.dead_lettered > 0) read_backlog();
        return absl::OkStatus();
      },
      pg::TxOptions{.max_attempts = 1});

  if (have_backlog) RecordBacklog(backlog);
  if (!status.ok()) {
    if (failed_metric_ != nullptr) failed_metric_->Increment();
    absl::MutexLock lock(&mu_);
    ++stats_.cycles;
    ++stats_.batches_failed;
    ++stats_.consecutive_failures;
    stats_.last_error = status;
    return status;
  }
  // Only now, after the commit, are the dead-lettered rows really moved.
  for (const DeadRow& row : dead) {
    log::Error("outbox.dead_lettered",
               {{"seq", row.seq}, {"event_id", log::Id(row.event_id)}, {"reason", row.reason}});
  }
  if (shipped_metric_ != nullptr && result.shipped > 0) shipped_metric_->Increment(result.shipped);
  if (dead_metric_ != nullptr && result.dead_lettered > 0) {
    dead_metric_->Increment(result.dead_lettered);
  }
  absl::MutexLock lock(&mu_);
  ++stats_.cycles;
  stats_.consecutive_failures = 0;
  stats_.events_shipped += static_cast<uint64_t>(result.shipped);
  if (result.shipped > 0) ++stats_.batches_shipped;
  stats_.dead_lettered += static_cast<uint64_t>(result.dead_lettered);
  return result;
}

void Relay::Loop() {
  absl::BitGen bitgen;
  int failures = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      // A Notify() from here on (even during the cycle) ends the next idle wait.
      notified_ = false;
    }
    const absl::StatusOr<CycleResult> result = RunOnce();
    if (!result.ok()) {
      ++failures;
      const absl::Duration backoff =
          internal::Backoff(options_, failures, absl::Uniform(bitgen, 0.0, 1.0));
      log::Warn("outbox.ship_failed",
                {{"status", result.status()}, {"failures", failures}, {"backoff", backoff}});
      // The end is fixed before backing_off shows, so a test that advances a
      // fake clock on seeing backing_off cannot move it.
      const absl::Time until = clock_.Now() + backoff;
      {
        absl::MutexLock lock(&mu_);
        stats_.backing_off = true;
        stats_.last_backoff = backoff;
      }
      WaitUntil(until, /*by_notify=*/false);
      absl::MutexLock lock(&mu_);
      stats_.backing_off = false;
      continue;
    }
    if (failures > 0) log::Info("outbox.ship_recovered", {{"failures", failures}});
    failures = 0;
    // A full batch means more may be waiting: go on at once.
    if (result->full_batch && !result->busy) continue;
    WaitUntil(clock_.Now() + options_.poll_interval, /*by_notify=*/true);
  }
}

void Relay::WaitUntil(absl::Time until, bool by_notify) {
  absl::MutexLock lock(&mu_);
  auto interrupted = [this, by_notify]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || (by_notify && notified_);
  };
  while (!interrupted()) {
    const absl::Duration left = until - clock_.Now();
    if (left <= absl::ZeroDuration()) return;
    mu_.AwaitWithTimeout(absl::Condition(&interrupted),
                         std::min(left, options_.clock_check_interval));
  }
}

}  // namespace crm::outbox
