#include "libs/base/runtime.h"

#include "absl/synchronization/mutex.h"

namespace crm::base {

void ConfigureServerRuntime() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace crm::base
