// A bounded pool of libpqxx connections to one PostgreSQL database, and the
// transaction runner every store uses:
//
//   CRM_ASSIGN_OR_RETURN(auto pool, pg::Pool::Create({.conninfo = cfg.db_url}, clock));
//   absl::Status s = pool->Transact([&](pqxx::work& tx) -> absl::Status {
//     tx.exec_params(kInsertPerson, id, name_ciphertext);
//     return absl::OkStatus();
//   });
//
// Transact is the only way services talk to PostgreSQL: it catches every
// libpqxx exception and returns an absl::Status (see libs/pg/error.h), retries
// serialization failures and deadlocks with jittered backoff, and retries on a
// connection that broke before COMMIT. Connections whose backend went away
// (server restart, pg_terminate_backend) are noticed when they are taken from
// the pool, or when a statement fails, and replaced for the next caller.
//
// Thread-safe: any number of threads may share one Pool. A Lease, like the
// pg::Connection it holds, belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <pqxx/connection>
#include <pqxx/transaction>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"
#include "libs/pg/connection.h"
#include "libs/pg/pipeline.h"

namespace crm::pg {

struct PoolOptions {
  // libpq connection string, "key=value ..." or "postgresql://..." form.
  // Required.
  std::string conninfo;
  // Most connections open at once. Default 8.
  int max_size = 8;
  // How long Acquire (and so Transact) waits for a free connection before
  // UNAVAILABLE. Default 5 s.
  absl::Duration acquire_timeout = absl::Seconds(5);
  // libpq connect_timeout, added to conninfo unless it sets one. Rounded up to
  // whole seconds (libpq's unit); at least 2 s. Default 5 s.
  absl::Duration connect_timeout = absl::Seconds(5);
};

enum class Isolation { kReadCommitted, kRepeatableRead, kSerializable };

struct TxOptions {
  Isolation isolation = Isolation::kReadCommitted;
  // SET TRANSACTION READ ONLY: writes fail with INTERNAL (SQLSTATE 25006).
  bool read_only = false;
  // Attempts in all, counting the first, for serialization failures,
  // deadlocks and connections broken before COMMIT. Default 5.
  int max_attempts = 5;
  // Backoff before attempt n+1 is uniform in [0, min(max_backoff,
  // initial_backoff * 2^(n-1))], slept on the pool's clock.
  absl::Duration initial_backoff = absl::Milliseconds(5);
  absl::Duration max_backoff = absl::Milliseconds(250);
};

// Counters for metrics (libs/rpc exports them). A snapshot; all cumulative
// except size, open, in_use, idle and waiting.
struct PoolStats {
  int64_t size = 0;    // max_size
  int64_t open = 0;    // connections open or being opened
  int64_t in_use = 0;  // leased out
  int64_t idle = 0;
  int64_t waiting = 0;            // callers blocked in Acquire right now
  uint64_t acquired = 0;          // successful acquires
  uint64_t waited = 0;            // acquires that had to wait for a connection
  uint64_t timed_out = 0;         // acquires that gave up (UNAVAILABLE)
  uint64_t connects = 0;          // connections opened
  uint64_t connect_failures = 0;  // failed connection attempts
  uint64_t discarded = 0;         // broken connections closed and dropped
  uint64_t tx_committed = 0;
  uint64_t tx_rolled_back = 0;  // the callback returned an error
  uint64_t tx_retried = 0;      // attempts repeated after a retryable failure
  uint64_t tx_failed = 0;       // ended with a database or connection error
};

class Pool;

// One connection taken from a Pool; given back when the Lease is destroyed.
// Move-only. For libs/pg itself and tests: services use Pool::Transact.
class Lease {
 public:
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  Connection& connection() { return *conn_; }
  // The connection is closed instead of going back to the pool.
  void MarkBroken() { broken_ = true; }

 private:
  friend class Pool;
  Lease(Pool* pool, std::unique_ptr<Connection> conn);
  void Release();

  Pool* pool_ = nullptr;
  std::unique_ptr<Connection> conn_;
  bool broken_ = false;
};

class Pool {
 public:
  using TxFunction = std::function<absl::Status(pqxx::work&)>;
  using ConnFunction = std::function<absl::Status(pqxx::connection_base&)>;

  // Opens one connection to check the settings and keeps it.
  // INVALID_ARGUMENT if conninfo is empty or max_size < 1; UNAVAILABLE if the
  // server cannot be reached; FAILED_PRECONDITION if it refused the password.
  // `clock` (for retry backoff) must outlive the pool.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(PoolOptions options, base::Clock& clock);

  // All leases must have been destroyed.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs `fn` in a transaction and commits if it returns OK; rolls back and
  // returns its status otherwise. `fn` may run several times (see TxOptions),
  // so it must only touch the database and its own outputs, resetting those
  // at the start. Failures: the callback's own status; ABORTED after
  // max_attempts serialization failures or deadlocks; UNAVAILABLE if no
  // connection could be had (pool exhausted for acquire_timeout, server down);
  // UNKNOWN if the connection broke during COMMIT; other database errors as in
  // libs/pg/error.h (e.g. ALREADY_EXISTS for a unique violation).
  absl::Status Transact(const TxFunction& fn, const TxOptions& options = {});

  // Transact for a callback that produces a value.
  template <typename T>
  absl::StatusOr<T> TransactValue(const std::function<absl::StatusOr<T>(pqxx::work&)>& fn,
                                  const TxOptions& options = {}) {
    absl::StatusOr<T> out = absl::UnknownError("not run");
    absl::Status s = Transact(
        [&](pqxx::work& tx) {
          out = fn(tx);
          return out.status();
        },
        options);
    if (!s.ok()) return s;
    return out;
  }

  // Runs the pipeline's statements in one transaction, sent together in one
  // round trip (see libs/pg/pipeline.h): BEGIN, the statements, COMMIT.
  // Retries and failures as Transact's; a statement that fails rolls the
  // transaction back, skips the statements after it and gives its status
  // (e.g. ALREADY_EXISTS for a unique violation), and the pipeline then tells
  // which statements ran and what they returned.
  absl::Status RunPipeline(Pipeline& pipeline, const TxOptions& options = {});

  // Runs `fn` on a leased connection with no transaction opened for it (for
  // CREATE DATABASE, session advisory locks, several transactions on one
  // session). No retries. Exceptions are mapped as in Transact, and a broken
  // connection is dropped from the pool.
  absl::Status WithConnection(const ConnFunction& fn);

  // Takes an idle connection that passes a health check, or opens a new one if
  // fewer than max_size are open, or waits up to `timeout` (default: the
  // pool's acquire_timeout). UNAVAILABLE on timeout or when connecting fails;
  // FAILED_PRECONDITION if the server refused the password.
  absl::StatusOr<Lease> Acquire();
  absl::StatusOr<Lease> Acquire(absl::Duration timeout);

  PoolStats Stats() const;

 private:
  friend class Lease;
  Pool(PoolOptions options, std::string conninfo, base::Clock& clock);

  absl::StatusOr<std::unique_ptr<Connection>> Connect();
  void Return(std::unique_ptr<Connection> conn, bool broken);
  // One attempt of Transact. Sets *retry when another attempt may succeed.
  absl::Status TransactOnce(const TxFunction& fn, const TxOptions& options, bool* retry);
  // Transact's and RunPipeline's attempts, with backoff between them.
  absl::Status WithRetries(const std::function<absl::Status(bool* retry)>& once,
                           const TxOptions& options);

  const PoolOptions options_;
  const std::string conninfo_;  // with connect_timeout
  base::Clock& clock_;

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int64_t open_ ABSL_GUARDED_BY(mu_) = 0;
  PoolStats stats_ ABSL_GUARDED_BY(mu_);
};

// Adds connect_timeout (seconds, rounded up, at least 2) to a libpq
// connection string in either form, unless it already has one.
std::string WithConnectTimeout(const std::string& conninfo, absl::Duration timeout);

}  // namespace crm::pg
