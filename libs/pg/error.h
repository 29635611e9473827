// The one place where libpqxx exceptions become absl::Status. Pool::Transact,
// Pool::WithConnection and Migrate call ExceptionToStatus on everything they
// catch, so code above libs/pg never sees a pqxx exception.
//
// Messages never carry row data or query parameters: PostgreSQL's DETAIL lines
// (which quote key values) and the primary text of data errors are dropped;
// what remains is the SQLSTATE, a fixed description and schema names
// (constraint, column, table). Only for class 42 (syntax errors, unknown
// columns: mistakes in our own SQL text) is the primary message kept.
//
// Pure functions, thread-safe.
#pragma once

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crm::pg {

// The status code for a SQLSTATE (five characters):
//   23505 unique violation                 -> ALREADY_EXISTS
//   23502 not null, 23514 check, class 22  -> INVALID_ARGUMENT
//   23503 foreign key, 23001, 23P01, P0001 -> FAILED_PRECONDITION
//   class 40 (40001 serialization, 40P01 deadlock) -> ABORTED
//   57014 statement timeout / cancel       -> DEADLINE_EXCEEDED
//   class 08, 57P01-57P03, 53300           -> UNAVAILABLE
//   other class 53                         -> RESOURCE_EXHAUSTED
//   anything else                          -> INTERNAL
absl::StatusCode CodeForSqlState(absl::string_view sqlstate);

// True for the SQLSTATEs Pool::Transact retries: 40001 and 40P01.
bool IsRetryableSqlState(absl::string_view sqlstate);

// True for the SQLSTATEs of a lost connection reported as an SQL error:
// class 08 and 57P01-57P03 (the server shutting down or terminating us).
bool IsConnectionLossSqlState(absl::string_view sqlstate);

// A status for a failed statement, built from its SQLSTATE and the server's
// error text (`what`, as in pqxx::sql_error::what()), keeping only what the
// file comment allows. `context` (a fixed text such as "transaction") starts
// the message.
absl::Status SqlErrorToStatus(absl::string_view context, absl::string_view sqlstate,
                              absl::string_view what);

// The SQLSTATE carried by a libpqxx exception, or "" if none. libpqxx 6.4
// reports 40001/40P01/40003 as pqxx::transaction_rollback subclasses, which
// are not pqxx::sql_error and carry no SQLSTATE: they get theirs back here.
std::string SqlStateOf(const std::exception& e);

// Maps any exception caught around libpqxx calls:
//   pqxx::in_doubt_error     -> UNKNOWN (the connection broke during COMMIT)
//   pqxx::broken_connection  -> UNAVAILABLE, or FAILED_PRECONDITION when the
//                               server refused the password
//   pqxx::sql_error, pqxx::transaction_rollback -> SqlErrorToStatus
//   pqxx::usage_error        -> INTERNAL with libpqxx's text (misuse, no data)
//   anything else            -> INTERNAL with a fixed text (conversion errors
//                               may quote field values, so their text is dropped)
absl::Status ExceptionToStatus(absl::string_view context, const std::exception& e);

}  // namespace crm::pg
