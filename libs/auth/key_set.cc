#include "libs/auth/key_set.h"

#include <utility>

namespace crm::auth {

KeySet::KeySet() : current_(std::make_shared<const Snapshot>()) {}

KeySet::KeySet(KeyMap keys)
    : current_(std::make_shared<const Snapshot>(Snapshot{1, std::move(keys)})) {}

void KeySet::Replace(KeyMap keys) {
  absl::MutexLock lock(&mu_);
  current_ = std::make_shared<const Snapshot>(Snapshot{current_->generation + 1, std::move(keys)});
}

std::shared_ptr<const KeySet::Snapshot> KeySet::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

}  // namespace crm::auth
