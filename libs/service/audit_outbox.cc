#include "libs/service/audit_outbox.h"

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/outbox/schema.h"
#include "libs/rpc/channel.h"

namespace crm::service {

absl::Status StartupStep(absl::string_view step, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(step, ": ", s.message()));
}

absl::StatusOr<std::unique_ptr<AuditOutbox>> AuditOutbox::Start(Context& ctx,
                                                                const crypto::KeyRing& ring,
                                                                const std::string& audit_addr) {
  CRM_RETURN_IF_ERROR(StartupStep("outbox", outbox::EnsureSchema(ctx.db)));
  absl::StatusOr<crypto::SecretBytes> key = outbox::LoadOrCreateKey(ctx.db, ring);
  CRM_RETURN_IF_ERROR(StartupStep("outbox key", key.status()));
  std::unique_ptr<AuditOutbox> out(new AuditOutbox());
  out->writer_ =
      std::make_unique<outbox::Writer>(ctx.config.server.service, key->Copy(), ctx.clock);
  if (audit_addr.empty()) return out;
  CRM_ASSIGN_OR_RETURN(
      std::shared_ptr<grpc::Channel> channel,
      rpc::MakeChannel(
          {.target = audit_addr, .tls = ctx.config.server.tls, .expected_server = "audit"}));
  out->sink_ = std::make_unique<outbox::GrpcSink>(channel);
  out->relay_ = std::make_unique<outbox::Relay>(ctx.db, key->Copy(), *out->sink_, ctx.clock,
                                                outbox::RelayOptions{}, &ctx.metrics);
  CRM_RETURN_IF_ERROR(StartupStep("outbox relay", out->relay_->Start()));
  outbox::Relay* relay = out->relay_.get();
  ctx.on_stop.push_back([relay] { relay->Stop(); });
  return out;
}

}  // namespace crm::service
