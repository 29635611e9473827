// CapturingSink: an outbox Sink for tests that keeps every event the relay
// ships, so a test can check what a service audited. Header-only; link
// crm_outbox.
//
// Thread-safe.
#pragma once

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/outbox/sink.h"

namespace crm::outbox {

class CapturingSink final : public Sink {
 public:
  absl::Status Append(const std::vector<crm::audit::v1::Event>& events) override {
    absl::MutexLock l(&mu_);
    events_.insert(events_.end(), events.begin(), events.end());
    return absl::OkStatus();
  }
  std::vector<crm::audit::v1::Event> Events() {
    absl::MutexLock l(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<crm::audit::v1::Event> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::outbox
