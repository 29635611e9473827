#include "libs/pg/error.h"

#include <pqxx/except>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace crm::pg {
namespace {

// The first line of a server or libpq message, without "ERROR:  " and the like.
absl::string_view PrimaryLine(absl::string_view what) {
  absl::string_view line = what.substr(0, what.find('\n'));
  for (absl::string_view prefix : {"ERROR:", "FATAL:", "PANIC:"}) {
    if (absl::ConsumePrefix(&line, prefix)) break;
  }
  return absl::StripAsciiWhitespace(line);
}

// The quoted identifier after `marker` (e.g. `constraint "`), or empty.
absl::string_view QuotedAfter(absl::string_view text, absl::string_view marker) {
  size_t start = text.find(marker);
  if (start == absl::string_view::npos) return {};
  start += marker.size();
  size_t end = text.find('"', start);
  if (end == absl::string_view::npos) return {};
  return text.substr(start, end - start);
}

absl::string_view Describe(absl::string_view sqlstate) {
  struct Entry {
    absl::string_view state;
    absl::string_view text;
  };
  static constexpr Entry kEntries[] = {
      {"23505", "unique violation"},
      {"23502", "not-null violation"},
      {"23514", "check violation"},
      {"23503", "foreign key violation"},
      {"23001", "restrict violation"},
      {"23P01", "exclusion violation"},
      {"40001", "serialization failure"},
      {"40P01", "deadlock detected"},
      {"57014", "statement canceled (timeout)"},
      {"55P03", "lock not available"},
      {"53300", "too many connections"},
      {"P0001", "raised by a database function"},
      {"25006", "write in a read-only transaction"},
  };
  for (const Entry& e : kEntries) {
    if (e.state == sqlstate) return e.text;
  }
  if (absl::StartsWith(sqlstate, "22")) return "data exception";
  if (absl::StartsWith(sqlstate, "23")) return "integrity constraint violation";
  if (absl::StartsWith(sqlstate, "40")) return "transaction rollback";
  if (absl::StartsWith(sqlstate, "08")) return "connection exception";
  if (absl::StartsWith(sqlstate, "42")) return "syntax error or access rule violation";
  if (absl::StartsWith(sqlstate, "53")) return "insufficient resources";
  if (absl::StartsWith(sqlstate, "57")) return "operator intervention";
  return "database error";
}

}  // namespace

absl::StatusCode CodeForSqlState(absl::string_view s) {
  if (s == "23505") return absl::StatusCode::kAlreadyExists;
  if (s == "23502" || s == "23514" || absl::StartsWith(s, "22")) {
    return absl::StatusCode::kInvalidArgument;
  }
  if (s == "23503" || s == "23001" || s == "23P01" || s == "P0001") {
    return absl::StatusCode::kFailedPrecondition;
  }
  if (absl::StartsWith(s, "40")) return absl::StatusCode::kAborted;
  if (s == "57014") return absl::StatusCode::kDeadlineExceeded;
  if (absl::StartsWith(s, "08") || s == "57P01" || s == "57P02" || s == "57P03" || s == "53300") {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(s, "53")) return absl::StatusCode::kResourceExhausted;
  return absl::StatusCode::kInternal;
}

bool IsRetryableSqlState(absl::string_view sqlstate) {
  return sqlstate == "40001" || sqlstate == "40P01";
}

bool IsConnectionLossSqlState(absl::string_view sqlstate) {
  return absl::StartsWith(sqlstate, "08") || sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03";
}

absl::Status SqlErrorToStatus(absl::string_view context, absl::string_view sqlstate,
                              absl::string_view what) {
  const absl::string_view primary = PrimaryLine(what);
  std::string msg = absl::StrCat(context, ": ", Describe(sqlstate), " (SQLSTATE ",
                                 sqlstate.empty() ? "unknown" : sqlstate);
  if (absl::StartsWith(sqlstate, "23")) {
    // Schema names only; the values are in DETAIL, which is never read.
    absl::string_view constraint = QuotedAfter(primary, "constraint \"");
    absl::string_view column = QuotedAfter(primary, "column \"");
    absl::string_view table = QuotedAfter(primary, "relation \"");
    if (table.empty()) table = QuotedAfter(primary, "table \"");
    if (!constraint.empty()) absl::StrAppend(&msg, ", constraint ", constraint);
    if (!column.empty()) absl::StrAppend(&msg, ", column ", column);
    if (!table.empty()) absl::StrAppend(&msg, ", table ", table);
  }
  absl::StrAppend(&msg, ")");
  if (absl::StartsWith(sqlstate, "42")) absl::StrAppend(&msg, ": ", primary);
  return absl::Status(CodeForSqlState(sqlstate), msg);
}

std::string SqlStateOf(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    return sql->sqlstate();
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr) return "40001";
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) return "40P01";
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) return "40003";
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) return "40000";
  return "";
}

absl::Status ExceptionToStatus(absl::string_view context, const std::exception& e) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return absl::UnknownError(
        absl::StrCat(context, ": connection lost during COMMIT; the outcome is unknown"));
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    absl::string_view primary = PrimaryLine(e.what());
    if (absl::StrContains(primary, "password authentication failed")) {
      return absl::FailedPreconditionError(
          absl::StrCat(context, ": PostgreSQL refused the credentials: ", primary));
    }
    return absl::UnavailableError(absl::StrCat(
        context, ": PostgreSQL connection failed: ", primary.empty() ? "no message" : primary));
  }
  if (dynamic_cast<const pqxx::sql_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return SqlErrorToStatus(context, SqlStateOf(e), e.what());
  }
  if (dynamic_cast<const pqxx::usage_error*>(&e) != nullptr) {
    return absl::InternalError(absl::StrCat(context, ": libpqxx usage error: ", e.what()));
  }
  return absl::InternalError(
      absl::StrCat(context, ": unexpected exception (text withheld: it may quote data)"));
}

}  // namespace crm::pg
