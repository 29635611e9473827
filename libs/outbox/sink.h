// Sink: where the Relay (relay.h) delivers batches of audit events. In
// production a GrpcSink (grpc_sink.h) calls the audit service; tests use fakes.
//
// Implementations must be safe to call from the relay's thread while other
// threads use them, and should bound how long Append can take (the relay's
// Stop waits for an Append in progress).
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "crm/audit/v1/ingest.pb.h"

namespace crm::outbox {

class Sink {
 public:
  virtual ~Sink() = default;

  // Delivers `events` (oldest first, at most RelayOptions::batch_size). OK
  // means every event is durably recorded by the receiver; then the relay
  // deletes them from the outbox. Any error means "not known to be
  // recorded": the relay keeps the rows and retries the same events later
  // (after backoff), so the receiver must deduplicate by event_id.
  virtual absl::Status Append(const std::vector<crm::audit::v1::Event>& events) = 0;
};

}  // namespace crm::outbox
