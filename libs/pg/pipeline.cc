#include "libs/pg/pipeline.h"

#include <libpq-fe.h>

#include "absl/container/flat_hash_set.h"
#include "libs/pg/error.h"
#include "libs/pg/pipeline_runner.h"
#include "libs/pg/prepared.h"

namespace crm::pg {
namespace {

constexpr const char kContext[] = "pg pipeline";

// The libpq text of a connection-level failure: libpq's own words about the
// socket or protocol, never row data.
absl::Status ConnectionError(absl::string_view what, PGconn* conn) {
  std::string message = conn != nullptr ? PQerrorMessage(conn) : "";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return absl::UnavailableError(
      absl::StrCat(kContext, ": ", what, message.empty() ? "" : ": ", message));
}

}  // namespace

absl::Status PipelineRunner::RunOnce(Connection& conn, Pipeline& p, const char* set_transaction,
                                     Outcome* out) {
  *out = Outcome();
  for (Pipeline::Statement& s : p.statements_) {
    s.ran = false;
    s.rows.clear();
  }
  PGconn* pc = conn.raw();
  if (pc == nullptr || PQstatus(pc) != CONNECTION_OK) {
    out->broken = true;
    out->retry = true;
    return ConnectionError("connection closed", pc);
  }
  if (PQenterPipelineMode(pc) != 1) {
    out->broken = true;
    return ConnectionError("cannot enter pipeline mode", pc);
  }

  // Queue everything, then one sync: BEGIN, [SET TRANSACTION], the
  // statements (each prepared first if this connection has not seen it),
  // COMMIT. libpq flushes as its buffer fills and at the sync. The answers
  // are a few short rows, so neither side can block the other with a full
  // socket buffer, and blocking mode is safe.
  enum class Kind { kControl, kPrepare, kExecute, kCommit };
  struct Sent {
    Kind kind;
    size_t index = 0;
    std::string name;
  };
  std::vector<Sent> sent;
  absl::flat_hash_set<std::string>& prepared = conn.pipeline_statements();
  absl::flat_hash_set<std::string> preparing;
  bool queued = true;
  auto control = [&](const char* sql, Kind kind) {
    queued = queued && PQsendQueryParams(pc, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
    sent.push_back({kind});
  };
  control("BEGIN", Kind::kControl);
  if (set_transaction != nullptr) control(set_transaction, Kind::kControl);
  std::vector<const char*> values;
  std::vector<int> lengths;
  for (size_t i = 0; i < p.statements_.size() && queued; ++i) {
    const Pipeline::Statement& s = p.statements_[i];
    std::string name = StatementName(s.sql, "crmp_");
    if (!prepared.contains(name) && preparing.insert(name).second) {
      queued = PQsendPrepare(pc, name.c_str(), s.sql.c_str(), 0, nullptr) == 1;
      sent.push_back({Kind::kPrepare, i, name});
    }
    values.clear();
    lengths.clear();
    for (const std::optional<std::string>& v : s.values) {
      values.push_back(v.has_value() ? v->data() : nullptr);
      lengths.push_back(v.has_value() ? static_cast<int>(v->size()) : 0);
    }
    queued = queued && PQsendQueryPrepared(pc, name.c_str(), static_cast<int>(values.size()),
                                           values.data(), lengths.data(), s.formats.data(),
                                           /*resultFormat=*/0) == 1;
    sent.push_back({Kind::kExecute, i, std::move(name)});
  }
  const size_t commit_queued_before = sent.size();
  if (queued) control("COMMIT", Kind::kCommit);
  queued = queued && PQpipelineSync(pc) == 1;
  if (!queued) {
    // The socket failed while sending. Once COMMIT was queued it may have
    // reached the server.
    out->broken = true;
    const bool commit_may_run = sent.size() > commit_queued_before;
    out->retry = !commit_may_run;
    if (commit_may_run) {
      return absl::UnknownError(
          absl::StrCat(kContext, ": connection lost while sending COMMIT; outcome unknown"));
    }
    return ConnectionError("connection lost while sending", pc);
  }

  // One result per queued command, each followed by a null, then the sync.
  absl::Status first_error;
  std::string first_state;
  bool committed = false;
  bool lost = false;
  for (const Sent& s : sent) {
    PGresult* r = PQgetResult(pc);
    if (r == nullptr) {
      lost = true;
      break;
    }
    const ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      if (s.kind == Kind::kPrepare) prepared.insert(s.name);
      if (s.kind == Kind::kCommit) committed = true;
      if (s.kind == Kind::kExecute) {
        Pipeline::Statement& st = p.statements_[s.index];
        const int rows = PQntuples(r);
        const int fields = PQnfields(r);
        st.rows.reserve(rows);
        for (int row = 0; row < rows; ++row) {
          Pipeline::Row& out_row = st.rows.emplace_back();
          out_row.reserve(fields);
          for (int f = 0; f < fields; ++f) {
            if (PQgetisnull(r, row, f)) {
              out_row.emplace_back(std::nullopt);
            } else {
              out_row.emplace_back(std::string(PQgetvalue(r, row, f), PQgetlength(r, row, f)));
            }
          }
        }
        st.ran = true;
      }
    } else if (status != PGRES_PIPELINE_ABORTED && first_error.ok()) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      first_state = state != nullptr ? state : "";
      first_error = SqlErrorToStatus(kContext, first_state, PQresultErrorMessage(r));
    }
    PQclear(r);
    PGresult* end = PQgetResult(pc);
    if (end != nullptr) {
      // Not the end of this command's results: the stream is out of step.
      PQclear(end);
      lost = true;
      break;
    }
  }
  if (!lost) {
    PGresult* sync = PQgetResult(pc);
    lost = sync == nullptr || PQresultStatus(sync) != PGRES_PIPELINE_SYNC;
    PQclear(sync);
  }
  if (lost || PQexitPipelineMode(pc) != 1 || PQstatus(pc) != CONNECTION_OK) {
    out->broken = true;
    if (committed) return absl::OkStatus();
    // A statement the server refused (it has a SQLSTATE, not one of a lost
    // connection): COMMIT did not run. libpq's own errors carry no SQLSTATE.
    if (!first_error.ok() && !first_state.empty() && !IsConnectionLossSqlState(first_state)) {
      return first_error;
    }
    return absl::UnknownError(
        absl::StrCat(kContext, ": connection lost before COMMIT's answer; outcome unknown"));
  }
  if (committed) return absl::OkStatus();
  // A statement failed: the transaction is aborted and still open.
  PGresult* rollback = PQexec(pc, "ROLLBACK");
  if (PQresultStatus(rollback) != PGRES_COMMAND_OK) out->broken = true;
  PQclear(rollback);
  if (first_state == "26000") {
    // A statement prepared here was deallocated behind our back (DISCARD
    // ALL, DEALLOCATE): prepare them all again.
    prepared.clear();
    out->retry = true;
  } else {
    out->retry = IsRetryableSqlState(first_state);
  }
  if (first_error.ok())
    first_error = absl::InternalError(absl::StrCat(kContext, ": not committed"));
  return first_error;
}

}  // namespace crm::pg
