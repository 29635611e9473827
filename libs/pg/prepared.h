// ExecPrepared: a statement run as a prepared statement of the transaction's
// connection, so PostgreSQL parses and plans it once per connection rather
// than at every call. For a point read through a visibility query that
// parsing and planning is most of the server's CPU; hot store queries go
// through here.
//
//   pqxx::result r = pg::ExecPrepared(tx, kGetPersonSql, subject_id);
//
// The statement is named after a hash of its text and declared on the
// connection at every call (a map look-up once known); libpqxx prepares it at
// first use and again after a reconnect. Two texts with the same hash would
// make libpqxx throw (an "inconsistent redefinition", a loud INTERNAL), never
// run the wrong statement. Parameters as for exec_params.
#pragma once

#include <pqxx/connection_base>
#include <pqxx/transaction_base>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

namespace crm::pg {

inline std::string StatementName(std::string_view sql, absl::string_view prefix = "crm_") {
  return absl::StrCat(prefix, absl::Hex(std::hash<std::string_view>()(sql), absl::kZeroPad16));
}

template <typename... Args>
pqxx::result ExecPrepared(pqxx::transaction_base& tx, const std::string& sql, Args&&... args) {
  const std::string name = StatementName(sql);
  tx.conn().prepare(name, sql);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

template <typename... Args>
pqxx::row ExecPrepared1(pqxx::transaction_base& tx, const std::string& sql, Args&&... args) {
  const std::string name = StatementName(sql);
  tx.conn().prepare(name, sql);
  return tx.exec_prepared1(name, std::forward<Args>(args)...);
}

}  // namespace crm::pg
