// Time as a dependency. Production code takes a `Clock&` and asks it for the
// time; tests pass a FakeClock and move it explicitly, so nothing time-based
// (lockout windows, expiry, deadlines, backoff) needs a sleep to be tested.
// Both implementations are thread-safe.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace crm::base {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Blocks the caller for `d` (real clock) or until the fake clock has been
  // advanced past now + d (fake clock).
  virtual void SleepFor(absl::Duration d) = 0;
};

// The wall clock. Use RealClock::Get() from main.cc only; pass it on by reference.
class RealClock final : public Clock {
 public:
  static RealClock& Get();
  absl::Time Now() const override { return absl::Now(); }
  void SleepFor(absl::Duration d) override { absl::SleepFor(d); }
};

// A clock that moves only when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}
  absl::Time Now() const override;
  void SleepFor(absl::Duration d) override;
  void Advance(absl::Duration d);
  void Set(absl::Time t);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::base
