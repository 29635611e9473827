// RawConnection: a libpq connection without libpqxx, for benchmarks that
// need what libpqxx 6.4 lacks or hides: COPY FROM STDIN fed with prepared
// text in pieces (bulk loads and the COPY floors that service figures are
// compared with) and COPY TO STDOUT drained without parsing.
//
//   CRM_ASSIGN_OR_RETURN(std::unique_ptr<RawConnection> c, RawConnection::Open(conninfo));
//   CRM_RETURN_IF_ERROR(c->Exec("BEGIN"));
//   CRM_RETURN_IF_ERROR(c->BeginCopy("persons", "subject_id, status"));
//   CRM_RETURN_IF_ERROR(c->Put(rows));  // COPY text rows, any number of Puts
//   CRM_RETURN_IF_ERROR(c->EndCopy());
//   CRM_RETURN_IF_ERROR(c->Exec("COMMIT"));
//
// Header-only, for crm_cc_bench targets that link PkgConfig::LIBPQ. Errors
// are INTERNAL with libpq's message (never the connection string, which
// holds a password). One thread at a time per connection.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "libs/base/status_macros.h"

namespace crm::testing {

class RawConnection {
 public:
  // UNAVAILABLE (without the connection string, which holds a password) if
  // the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<RawConnection>> Open(const std::string& conninfo) {
    std::unique_ptr<RawConnection> c(new RawConnection(PQconnectdb(conninfo.c_str())));
    if (c->conn_ == nullptr || PQstatus(c->conn_) != CONNECTION_OK) {
      return absl::UnavailableError("libpq: cannot connect to the benchmark database");
    }
    return c;
  }
  ~RawConnection() { PQfinish(conn_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  absl::Status Exec(const char* sql) { return Result(PQexec(conn_, sql), PGRES_COMMAND_OK); }

  // COPY <table> (<columns>) FROM STDIN (all columns if `columns` is
  // empty), then Put the data, then EndCopy.
  absl::Status BeginCopy(absl::string_view table, absl::string_view columns) {
    const std::string sql = columns.empty()
                                ? absl::StrCat("COPY ", table, " FROM STDIN")
                                : absl::StrCat("COPY ", table, " (", columns, ") FROM STDIN");
    return Result(PQexec(conn_, sql.c_str()), PGRES_COPY_IN);
  }
  absl::Status Put(absl::string_view data) {
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1) {
      return absl::InternalError(absl::StrCat("libpq: ", PQerrorMessage(conn_)));
    }
    return absl::OkStatus();
  }
  absl::Status EndCopy() {
    if (PQputCopyEnd(conn_, nullptr) != 1) {
      return absl::InternalError(absl::StrCat("libpq: ", PQerrorMessage(conn_)));
    }
    absl::Status s = Result(PQgetResult(conn_), PGRES_COMMAND_OK);
    while (PGresult* more = PQgetResult(conn_)) PQclear(more);
    return s;
  }

  // Runs a COPY ... TO STDOUT, appending the data to *data if given (else
  // discarding it). Returns the number of CopyData messages received (one
  // per row, plus the binary format's header and trailer where they come on
  // their own).
  absl::StatusOr<int64_t> CopyOut(const std::string& sql, std::string* data = nullptr) {
    CRM_RETURN_IF_ERROR(Result(PQexec(conn_, sql.c_str()), PGRES_COPY_OUT));
    int64_t messages = 0;
    char* buf = nullptr;
    int n = 0;
    while ((n = PQgetCopyData(conn_, &buf, 0)) > 0) {
      if (data != nullptr) data->append(buf, static_cast<size_t>(n));
      PQfreemem(buf);
      ++messages;
    }
    absl::Status s = n == -1 ? Result(PQgetResult(conn_), PGRES_COMMAND_OK)
                             : absl::InternalError(absl::StrCat("libpq: ", PQerrorMessage(conn_)));
    while (PGresult* more = PQgetResult(conn_)) PQclear(more);
    CRM_RETURN_IF_ERROR(s);
    return messages;
  }

 private:
  explicit RawConnection(PGconn* conn) : conn_(conn) {}

  absl::Status Result(PGresult* r, ExecStatusType want) {
    const bool ok = r != nullptr && PQresultStatus(r) == want;
    absl::Status s =
        ok ? absl::OkStatus() : absl::InternalError(absl::StrCat("libpq: ", PQerrorMessage(conn_)));
    PQclear(r);
    return s;
  }

  PGconn* conn_;
};

}  // namespace crm::testing
