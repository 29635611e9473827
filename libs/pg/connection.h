// pg::Connection: the libpqxx connection every Pool holds, which also exposes
// its libpq handle, so that Pool::RunPipeline can use libpq's pipeline mode
// (libpqxx 6.4 has none: its pqxx::pipeline joins statements into one simple
// query, without parameters or prepared statements).
//
// libpqxx opens and closes the handle through its connection policy; ours is
// connect_direct that also records the handle it opened (and forgets it when
// closing), so raw() is always the live handle or null. Statements prepared
// through raw() are tracked here and forgotten when the handle changes.
//
// Thread-compatible, like pqxx::connection: one thread at a time.
#pragma once

#include <libpq-fe.h>

#include <pqxx/basic_connection>
#include <pqxx/connection>
#include <string>

#include "absl/container/flat_hash_set.h"

namespace crm::pg {

namespace internal {

// What the policy writes: the handle libpqxx opened and the names of the
// statements prepared on it by RunPipeline.
struct RawHandle {
  PGconn* conn = nullptr;
  absl::flat_hash_set<std::string> prepared;
};

// Set while a Connection is being constructed, so its policy finds its slot.
class RawHandleScope {
 protected:
  RawHandleScope();
  RawHandle raw_;
};

class CapturingConnect : public pqxx::connect_direct {
 public:
  explicit CapturingConnect(const std::string& options);
  handle do_startconnect(handle orig) override;
  handle do_dropconnect(handle orig) noexcept override;
  handle do_disconnect(handle orig) noexcept override;

 private:
  RawHandle* slot_;
};

}  // namespace internal

class Connection : private internal::RawHandleScope,
                   public pqxx::basic_connection_base<internal::CapturingConnect> {
 public:
  // Connects at once (as pqxx::connection); throws what it throws.
  explicit Connection(const std::string& conninfo);
  ~Connection();

  // The libpq handle, or null while closed. Only for RunPipeline: anything
  // else goes through libpqxx.
  PGconn* raw() const { return raw_.conn; }
  // Statement names RunPipeline prepared on raw().
  absl::flat_hash_set<std::string>& pipeline_statements() { return raw_.prepared; }
};

}  // namespace crm::pg
