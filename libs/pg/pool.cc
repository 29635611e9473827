#include "libs/pg/pool.h"

#include <poll.h>

#include <algorithm>
#include <cmath>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/pg/error.h"
#include "libs/pg/pipeline_runner.h"

namespace crm::pg {
namespace {

// SET TRANSACTION must be the first statement after BEGIN.
constexpr const char* kSetTransaction[2][3] = {
    {"SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ WRITE",
     "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ WRITE",
     "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ WRITE"},
    {"SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ ONLY",
     "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
     "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY"},
};

// The SET TRANSACTION that `options` need after BEGIN, or null for the
// default (read committed, read write).
const char* SetTransactionSql(const TxOptions& options) {
  if (options.isolation == Isolation::kReadCommitted && !options.read_only) return nullptr;
  return kSetTransaction[options.read_only ? 1 : 0][static_cast<int>(options.isolation)];
}

// An idle connection has nothing to read. If its socket is readable, the
// server sent something unasked (the FATAL of pg_terminate_backend, a
// shutdown notice) or closed it: either way it is not worth keeping.
bool LooksHealthy(pqxx::connection_base& conn) {
  if (!conn.is_open()) return false;
  const int fd = conn.sock();
  if (fd < 0) return false;
  struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
  const int n = ::poll(&pfd, 1, 0);
  return n == 0;
}

}  // namespace

std::string WithConnectTimeout(const std::string& conninfo, absl::Duration timeout) {
  if (absl::StrContains(conninfo, "connect_timeout")) return conninfo;
  const int64_t seconds =
      std::max<int64_t>(2, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(timeout))));
  if (absl::StartsWith(conninfo, "postgresql://") || absl::StartsWith(conninfo, "postgres://")) {
    return absl::StrCat(conninfo, absl::StrContains(conninfo, "?") ? "&" : "?",
                        "connect_timeout=", seconds);
  }
  return absl::StrCat(conninfo, conninfo.empty() ? "" : " ", "connect_timeout=", seconds);
}

// ---- Lease ----

Lease::Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}

Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      conn_(std::move(other.conn_)),
      broken_(other.broken_) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    conn_ = std::move(other.conn_);
    broken_ = other.broken_;
  }
  return *this;
}

Lease::~Lease() { Release(); }

void Lease::Release() {
  if (pool_ != nullptr && conn_ != nullptr) pool_->Return(std::move(conn_), broken_);
  pool_ = nullptr;
  conn_.reset();
}

// ---- Pool ----

Pool::Pool(PoolOptions options, std::string conninfo, base::Clock& clock)
    : options_(std::move(options)), conninfo_(std::move(conninfo)), clock_(clock) {
  stats_.size = options_.max_size;
}

Pool::~Pool() {
  absl::MutexLock lock(&mu_);
  idle_.clear();
}

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(PoolOptions options, base::Clock& clock) {
  if (options.conninfo.empty()) return absl::InvalidArgumentError("pg pool: conninfo is empty");
  if (options.max_size < 1) return absl::InvalidArgumentError("pg pool: max_size must be >= 1");
  std::string conninfo = WithConnectTimeout(options.conninfo, options.connect_timeout);
  std::unique_ptr<Pool> pool(new Pool(std::move(options), std::move(conninfo), clock));
  // The first connection checks address and credentials, then waits idle.
  absl::StatusOr<Lease> lease = pool->Acquire();
  if (!lease.ok()) return lease.status();
  return pool;
}

absl::StatusOr<std::unique_ptr<Connection>> Pool::Connect() {
  try {
    auto conn = std::make_unique<Connection>(conninfo_);
    absl::MutexLock lock(&mu_);
    ++stats_.connects;
    return conn;
  } catch (const std::exception& e) {
    absl::Status status = ExceptionToStatus("pg connect", e);
    {
      absl::MutexLock lock(&mu_);
      ++stats_.connect_failures;
    }
    log::Warn("pg.connect_failed", {{"status", status}});
    return status;
  }
}

absl::StatusOr<Lease> Pool::Acquire() { return Acquire(options_.acquire_timeout); }

absl::StatusOr<Lease> Pool::Acquire(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  bool waited = false;
  while (true) {
    std::unique_ptr<Connection> conn;
    {
      absl::MutexLock lock(&mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < options_.max_size;
      };
      if (!available()) {
        waited = true;
        ++stats_.waiting;
        const bool got = mu_.AwaitWithDeadline(absl::Condition(&available), deadline);
        --stats_.waiting;
        if (!got) {
          ++stats_.timed_out;
          if (waited) ++stats_.waited;
          return absl::UnavailableError(absl::StrCat("pg pool: no connection free within ",
                                                     absl::FormatDuration(timeout), " (max_size ",
                                                     options_.max_size, ")"));
        }
      }
      if (!idle_.empty()) {
        conn = std::move(idle_.back());
        idle_.pop_back();
      } else {
        ++open_;
      }
    }
    if (conn != nullptr) {
      if (LooksHealthy(*conn)) {
        absl::MutexLock lock(&mu_);
        ++stats_.acquired;
        if (waited) ++stats_.waited;
        return Lease(this, std::move(conn));
      }
      log::Info("pg.connection_dropped", {{"reason", log::Literal("unhealthy when idle")}});
      Return(std::move(conn), /*broken=*/true);
      continue;  // the slot is free again: reuse another idle one or connect
    }
    absl::StatusOr<std::unique_ptr<Connection>> fresh = Connect();
    absl::MutexLock lock(&mu_);
    if (!fresh.ok()) {
      --open_;
      return fresh.status();
    }
    ++stats_.acquired;
    if (waited) ++stats_.waited;
    return Lease(this, *std::move(fresh));
  }
}

void Pool::Return(std::unique_ptr<Connection> conn, bool broken) {
  if (broken || !conn->is_open()) {
    conn.reset();  // closes the socket outside the lock
    absl::MutexLock lock(&mu_);
    --open_;
    ++stats_.discarded;
    return;
  }
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(conn));
}

PoolStats Pool::Stats() const {
  absl::MutexLock lock(&mu_);
  PoolStats s = stats_;
  s.open = open_;
  s.idle = static_cast<int64_t>(idle_.size());
  s.in_use = open_ - s.idle;
  return s;
}

absl::Status Pool::Transact(const TxFunction& fn, const TxOptions& options) {
  return WithRetries([&](bool* retry) { return TransactOnce(fn, options, retry); }, options);
}

absl::Status Pool::RunPipeline(Pipeline& pipeline, const TxOptions& options) {
  const char* set_transaction = SetTransactionSql(options);
  return WithRetries(
      [&](bool* retry) -> absl::Status {
        absl::StatusOr<Lease> lease = Acquire();
        if (!lease.ok()) return lease.status();
        PipelineRunner::Outcome outcome;
        absl::Status status =
            PipelineRunner::RunOnce(lease->connection(), pipeline, set_transaction, &outcome);
        if (outcome.broken) lease->MarkBroken();
        *retry = outcome.retry;
        if (!status.ok() && !outcome.retry) {
          absl::MutexLock lock(&mu_);
          ++stats_.tx_failed;
        }
        return status;
      },
      options);
}

absl::Status Pool::WithRetries(const std::function<absl::Status(bool* retry)>& once,
                               const TxOptions& options) {
  absl::BitGen bitgen;
  const int attempts = std::max(1, options.max_attempts);
  absl::Duration backoff_cap = options.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    bool retry = false;
    absl::Status status = once(&retry);
    if (!retry || attempt >= attempts) {
      absl::MutexLock lock(&mu_);
      if (status.ok()) {
        ++stats_.tx_committed;
      } else if (retry) {
        ++stats_.tx_failed;
      }
      return status;
    }
    {
      absl::MutexLock lock(&mu_);
      ++stats_.tx_retried;
    }
    log::Debug("pg.tx_retry", {{"attempt", attempt}, {"status", status}});
    const absl::Duration sleep = absl::Microseconds(absl::Uniform<int64_t>(
        absl::IntervalClosed, bitgen, 0, absl::ToInt64Microseconds(backoff_cap)));
    clock_.SleepFor(sleep);
    backoff_cap = std::min(options.max_backoff, backoff_cap * 2);
  }
}

absl::Status Pool::TransactOnce(const TxFunction& fn, const TxOptions& options, bool* retry) {
  *retry = false;
  absl::StatusOr<Lease> lease = Acquire();
  if (!lease.ok()) return lease.status();
  Connection& conn = lease->connection();
  bool committing = false;
  try {
    pqxx::work tx(conn);
    if (const char* set = SetTransactionSql(options); set != nullptr) tx.exec(set);
    absl::Status status = fn(tx);
    if (!status.ok()) {
      tx.abort();
      absl::MutexLock lock(&mu_);
      ++stats_.tx_rolled_back;
      return status;
    }
    committing = true;
    tx.commit();
    return absl::OkStatus();
  } catch (const pqxx::in_doubt_error& e) {
    lease->MarkBroken();
    absl::MutexLock lock(&mu_);
    ++stats_.tx_failed;
    return ExceptionToStatus("pg transaction", e);
  } catch (const pqxx::broken_connection& e) {
    lease->MarkBroken();
    *retry = !committing;
    absl::Status status = ExceptionToStatus("pg transaction", e);
    if (!*retry) {
      absl::MutexLock lock(&mu_);
      ++stats_.tx_failed;
      return absl::UnknownError("pg transaction: connection lost during COMMIT; outcome unknown");
    }
    return status;
  } catch (const pqxx::failure& e) {
    // sql_error and transaction_rollback (serialization failure, deadlock).
    const std::string state = SqlStateOf(e);
    const bool lost = IsConnectionLossSqlState(state) || !conn.is_open();
    if (lost) lease->MarkBroken();
    *retry = IsRetryableSqlState(state) || (lost && !committing);
    absl::Status status = ExceptionToStatus("pg transaction", e);
    if (lost && committing) {
      status = absl::UnknownError("pg transaction: connection lost during COMMIT; outcome unknown");
    }
    if (!*retry) {
      absl::MutexLock lock(&mu_);
      ++stats_.tx_failed;
    }
    return status;
  } catch (const std::exception& e) {
    if (!conn.is_open()) lease->MarkBroken();
    absl::MutexLock lock(&mu_);
    ++stats_.tx_failed;
    return ExceptionToStatus("pg transaction", e);
  }
}

absl::Status Pool::WithConnection(const ConnFunction& fn) {
  absl::StatusOr<Lease> lease = Acquire();
  if (!lease.ok()) return lease.status();
  try {
    return fn(lease->connection());
  } catch (const pqxx::broken_connection& e) {
    lease->MarkBroken();
    return ExceptionToStatus("pg", e);
  } catch (const pqxx::in_doubt_error& e) {
    lease->MarkBroken();
    return ExceptionToStatus("pg", e);
  } catch (const std::exception& e) {
    if (!lease->connection().is_open()) lease->MarkBroken();
    return ExceptionToStatus("pg", e);
  }
}

}  // namespace crm::pg
