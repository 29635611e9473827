// What every server process of the suite sets up first, before it starts
// threads (services' Run, the gateway's main, crm-echo-server).
//
// Debian builds Abseil without NDEBUG, so absl::Mutex runs its deadlock
// detector (a graph of every lock order seen, updated on each acquisition)
// unless told not to; in production that is pure cost (measured: 2-4% of the
// consent service's CPU under Check load, docs/benchmarks.md). Tests keep it:
// they do not call this.
#pragma once

namespace crm::base {

void ConfigureServerRuntime();

}  // namespace crm::base
