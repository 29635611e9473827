// Request ids: one id per external request, carried between our services in
// the `x-request-id` metadata so that log lines and audit events of one
// request can be joined.
//
// ServerRunner guarantees every call has one: a valid incoming id is kept, a
// missing or malformed one is replaced by a fresh UUID, and the id is echoed
// in the response's initial metadata. Handlers read it with RequestId(ctx)
// and, before calling other services, open a RequestIdScope so that channels
// made by MakeChannel (and NewClientContext) attach it to outgoing calls.
//
// Thread-safety: RequestIdScope is thread-local state of the calling thread;
// the functions are thread-safe.
#pragma once

#include <grpcpp/server_context.h>

#include <string>

#include "absl/strings/string_view.h"

namespace crm::rpc {

inline constexpr char kRequestIdHeader[] = "x-request-id";

// True for a UUID or a short token: 1..64 characters of [A-Za-z0-9._-].
bool IsValidRequestId(absl::string_view id);

// The request id of a call served by ServerRunner. Empty only for a context
// not served by ServerRunner that lacks a valid x-request-id.
std::string RequestId(const grpc::ServerContextBase& context);

// The request id of the innermost RequestIdScope on this thread, or empty.
absl::string_view CurrentRequestId();

// Makes `id` the current request id of this thread until destroyed; scopes
// nest. An invalid id makes the scope empty (nothing is propagated).
class RequestIdScope {
 public:
  explicit RequestIdScope(std::string id);
  explicit RequestIdScope(const grpc::ServerContextBase& context)
      : RequestIdScope(RequestId(context)) {}
  ~RequestIdScope();
  RequestIdScope(const RequestIdScope&) = delete;
  RequestIdScope& operator=(const RequestIdScope&) = delete;

 private:
  std::string id_;
  const std::string* previous_;
};

}  // namespace crm::rpc
