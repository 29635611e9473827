// Who may call which RPC: the per-method allowlist of caller identities that
// every ServerRunner enforces before any handler runs (default deny).
//
// Methods are full gRPC names ("/crm.audit.v1.AuditIngest/AppendEvents").
// Internal methods name the service identities allowed to call them (short
// names like "erasure" or full SPIFFE ids); API methods are open to any
// authenticated peer of our CA, because they authorize by the token the call
// carries. A method without an entry is refused with PERMISSION_DENIED, and
// ServerRunner::Start refuses to serve a registered method without an entry.
// Health checking and reflection are always open to any peer of our CA.
//
// Built once in main.cc; immutable afterwards and then safe to read from any
// thread.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crm::rpc {

class AccessPolicy {
 public:
  AccessPolicy() = default;

  // Allows only `callers` (short names "erasure" or "spiffe://crm.local/erasure")
  // to call `full_method`. Adding to an existing entry widens it; an
  // AllowAnyPeer entry stays open to any peer.
  AccessPolicy& Allow(absl::string_view full_method,
                      std::initializer_list<absl::string_view> callers);
  AccessPolicy& Allow(absl::string_view full_method, const std::vector<std::string>& callers);
  // Allows any peer whose certificate chains to our CA (API methods).
  AccessPolicy& AllowAnyPeer(absl::string_view full_method);
  // Every method of the service `service_full_name` ("crm.contacts.v1.Contacts",
  // looked up in the generated descriptor pool): to `callers`, or to any
  // peer when `callers` is empty. A service that is not linked in is recorded
  // and reported by Validate().
  AccessPolicy& AllowService(absl::string_view service_full_name,
                             const std::vector<std::string>& callers = {});

  // OK if `peer_identity` (a SPIFFE id; may be empty) may call `full_method`.
  // PERMISSION_DENIED if the method has no entry ("no access policy") or the
  // caller is not on its list. The message never contains the caller.
  absl::Status Check(absl::string_view full_method, absl::string_view peer_identity) const;

  // True if `full_method` has an entry (or is always open, like health).
  bool Covers(absl::string_view full_method) const;

  // True for the methods open to any peer by default: grpc.health.v1.Health/*
  // and grpc.reflection.v1alpha.ServerReflection/*.
  static bool IsInfrastructureMethod(absl::string_view full_method);
  // True for the service names of the above ("grpc.health.v1.Health").
  static bool IsInfrastructureService(absl::string_view service_name);

  // OK if `full_method` looks like "/package.Service/Method";
  // INVALID_ARGUMENT otherwise. Allow* on a malformed name is recorded and
  // reported by Validate().
  static absl::Status ValidateMethodName(absl::string_view full_method);
  // The first error made while building the policy (a malformed method name
  // or caller), or OK.
  absl::Status Validate() const;

 private:
  struct Entry {
    bool any_peer = false;
    absl::flat_hash_set<std::string> callers;  // full SPIFFE ids
  };
  void AddCaller(Entry* entry, absl::string_view caller);

  absl::flat_hash_map<std::string, Entry> entries_;
  absl::Status error_;
};

}  // namespace crm::rpc
