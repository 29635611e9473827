#include "libs/pg/connection.h"

namespace crm::pg {
namespace internal {
namespace {

// The slot of the Connection being constructed on this thread.
thread_local RawHandle* t_constructing = nullptr;

}  // namespace

RawHandleScope::RawHandleScope() { t_constructing = &raw_; }

CapturingConnect::CapturingConnect(const std::string& options)
    : connect_direct(options), slot_(t_constructing) {}

CapturingConnect::handle CapturingConnect::do_startconnect(handle orig) {
  handle h = connect_direct::do_startconnect(orig);
  if (slot_ != nullptr && h != slot_->conn) {
    slot_->conn = h;
    slot_->prepared.clear();
  }
  return h;
}

CapturingConnect::handle CapturingConnect::do_dropconnect(handle orig) noexcept {
  if (slot_ != nullptr) {
    slot_->conn = nullptr;
    slot_->prepared.clear();
  }
  return connect_direct::do_dropconnect(orig);
}

CapturingConnect::handle CapturingConnect::do_disconnect(handle orig) noexcept {
  if (slot_ != nullptr) {
    slot_->conn = nullptr;
    slot_->prepared.clear();
  }
  return connect_direct::do_disconnect(orig);
}

}  // namespace internal

Connection::Connection(const std::string& conninfo)
    : basic_connection_base<internal::CapturingConnect>(conninfo) {
  internal::t_constructing = nullptr;
}

Connection::~Connection() = default;

}  // namespace crm::pg
