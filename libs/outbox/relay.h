// Relay: the background thread that ships a service's audit outbox to the
// audit service. Every service with a Writer (writer.h) runs one:
//
//   outbox::GrpcSink sink(audit_channel);
//   outbox::Relay relay(*pool, outbox_key.Copy(), sink, clock, {}, runner.registry().get());
//   CRM_RETURN_IF_ERROR(relay.Start());
//   ...
//   relay.Stop();  // before the pool, sink and clock go away
//
// Each cycle runs in one database transaction: take a transaction advisory
// lock (so of several replicas one ships at a time and the others stay idle
// instead of blocking), select the oldest batch_size rows by seq FOR UPDATE,
// open each payload, move rows that do not open (or do not parse) to
// audit_outbox_dead, hand the rest to the Sink and, if it succeeds, delete
// them and commit. If the Sink fails the transaction rolls back, nothing is
// lost, and the relay backs off exponentially (min_backoff doubling up to
// max_backoff, with jitter) before trying the same events again. Delivery is
// therefore at least once (a batch whose acknowledgement is lost is sent
// again); audit deduplicates by event id. Events are delivered in seq order,
// which is commit order for transactions that do not overlap; events of
// concurrent transactions may be shipped in either order.
//
// Time is the injected Clock's: waits end when the clock has passed their end.
// Stop() ends any wait at once; Notify() ends an idle wait (not a backoff:
// a busy service must not hammer an audit service that is down).
//
// Metrics (if a registry is given): crm_outbox_events_shipped_total,
// crm_outbox_batches_failed_total, crm_outbox_events_dead_lettered_total,
// crm_outbox_pending_events, crm_outbox_lag_seconds (age of the oldest
// unshipped event, by the writer's clock). The gauges are refreshed every
// cycle. Relays sharing a registry share these metrics.
//
// Thread-safety: all public methods are thread-safe. Stop() (or the
// destructor) must run before the pool, sink or clock are destroyed.
#pragma once

#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"
#include "libs/crypto/secret_bytes.h"
#include "libs/outbox/sink.h"
#include "libs/pg/pool.h"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace crm::outbox {

struct RelayOptions {
  // Most events per Sink call, 1..10000. Default 100.
  int batch_size = 100;
  // How long to wait after a cycle that found less than a full batch, unless
  // Notify() is called. Positive. Default 1 s.
  absl::Duration poll_interval = absl::Seconds(1);
  // Backoff after the n-th consecutive failure is
  // b = min(max_backoff, min_backoff * 2^(n-1)), drawn uniformly from
  // [b * (1 - jitter), b]. min_backoff positive, max_backoff >= min_backoff,
  // jitter in [0, 1]. Defaults 100 ms, 30 s, 0.5.
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);
  double jitter = 0.5;
  // Longest real-time sleep between two looks at the clock while waiting.
  // With the real clock waits end on time anyway; with a fake clock this
  // bounds how long the relay takes to notice that the clock was advanced.
  // Positive. Default 50 ms.
  absl::Duration clock_check_interval = absl::Milliseconds(50);
};

// A snapshot of what the relay has done; cumulative unless noted.
struct RelayStats {
  uint64_t cycles = 0;  // cycles completed, successful or not
  uint64_t events_shipped = 0;
  uint64_t batches_shipped = 0;
  uint64_t batches_failed = 0;  // cycles that ended in an error (sink or database)
  uint64_t dead_lettered = 0;
  // At the last look (not cumulative):
  int64_t pending = 0;                        // rows in audit_outbox
  absl::Duration lag = absl::ZeroDuration();  // age of the oldest of them
  int consecutive_failures = 0;
  absl::Status last_error;                             // of the last failed cycle
  bool backing_off = false;                            // waiting after a failure now
  absl::Duration last_backoff = absl::ZeroDuration();  // the latest backoff chosen
};

// What one cycle did.
struct CycleResult {
  int shipped = 0;          // events delivered and deleted
  int dead_lettered = 0;    // rows moved to audit_outbox_dead
  bool full_batch = false;  // batch_size rows were selected: more may wait
  bool busy = false;        // another relay holds the lock; nothing was done
};

class Relay {
 public:
  // `key` is the outbox key the Writer seals with (32 bytes). `pool`, `sink`,
  // `clock` and `registry` (optional, may be null) must outlive the relay.
  Relay(pg::Pool& pool, crypto::SecretBytes key, Sink& sink, base::Clock& clock,
        RelayOptions options = {}, prometheus::Registry* registry = nullptr);
  // Stops the thread if running.
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Checks the options and key and starts the thread. INVALID_ARGUMENT naming
  // the bad option (or "outbox key" if it is not 32 bytes);
  // FAILED_PRECONDITION if already started or stopped (a relay starts once).
  absl::Status Start();

  // Ends any wait at once, lets a cycle in progress finish (bounded by the
  // sink's deadline and the database), and joins the thread. Nothing is lost:
  // an interrupted cycle rolls back. Idempotent; no effect if never started.
  void Stop();

  // Tells the relay there is new work: an idle wait ends now. Call after
  // committing a transaction that enqueued events, to ship them without
  // waiting for the next poll. Cheap; no effect on a backoff.
  void Notify();

  // Runs one cycle on the calling thread (also usable without Start, e.g. in
  // tests or tools). On success says what it did. Errors: the Sink's status;
  // the database errors of Pool::Transact (e.g. UNAVAILABLE). Either way the
  // stats and metrics are updated.
  absl::StatusOr<CycleResult> RunOnce();

  RelayStats Stats() const;

 private:
  struct Backlog {
    int64_t pending = 0;
    int64_t oldest_micros = 0;  // valid if pending > 0
  };
  void Loop();
  // Waits until the clock reaches `until`, Stop(), or (if by_notify) Notify().
  void WaitUntil(absl::Time until, bool by_notify);
  void RecordBacklog(const Backlog& backlog);

  pg::Pool& pool_;
  const crypto::SecretBytes key_;
  Sink& sink_;
  base::Clock& clock_;
  const RelayOptions options_;

  prometheus::Counter* shipped_metric_ = nullptr;
  prometheus::Counter* failed_metric_ = nullptr;
  prometheus::Counter* dead_metric_ = nullptr;
  prometheus::Gauge* pending_metric_ = nullptr;
  prometheus::Gauge* lag_metric_ = nullptr;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
  RelayStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // Started and joined under start_stop_mu_.
  absl::Mutex start_stop_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

namespace internal {

// The backoff after the `failures`-th consecutive failure (failures >= 1) for
// a uniform draw `u` in [0, 1): b * (1 - jitter * u), b as in RelayOptions.
absl::Duration Backoff(const RelayOptions& options, int failures, double u);

// OK if the options are in range; INVALID_ARGUMENT naming the first one not.
absl::Status ValidateOptions(const RelayOptions& options);

}  // namespace internal
}  // namespace crm::outbox
