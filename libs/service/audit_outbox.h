// The audit outbox of a service, as every service with API methods starts
// it: the outbox table and key in the service's own database (the key
// wrapped by the service's KEK ring), a Writer for its handlers, and, unless
// `audit_addr` is empty, a Relay shipping the events to audit over mTLS with
// the service's certificate, stopped with the service.
//
//   CRM_ASSIGN_OR_RETURN(app.outbox, service::AuditOutbox::Start(ctx, *app.ring, cfg.audit_addr));
//   ... ContactsDeps{.audit = app.outbox->writer(), ...}
//
// Start-up errors name the step ("outbox key: ..."). Thread-safe after Start.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/grpc_sink.h"
#include "libs/outbox/relay.h"
#include "libs/outbox/writer.h"
#include "libs/service/service_main.h"

namespace crm::service {

class AuditOutbox {
 public:
  // For the service named by ctx.config; registers the relay's stop in
  // ctx.on_stop.
  static absl::StatusOr<std::unique_ptr<AuditOutbox>> Start(Context& ctx,
                                                            const crypto::KeyRing& ring,
                                                            const std::string& audit_addr);

  outbox::Writer& writer() { return *writer_; }

 private:
  AuditOutbox() = default;
  std::unique_ptr<outbox::Writer> writer_;
  std::unique_ptr<outbox::GrpcSink> sink_;
  std::unique_ptr<outbox::Relay> relay_;
};

// `s` with its message prefixed by the start-up step that failed.
absl::Status StartupStep(absl::string_view step, const absl::Status& s);

}  // namespace crm::service
