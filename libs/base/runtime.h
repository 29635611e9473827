// What every server process of the suite sets up first, before it starts
// threads (services' Run, the gateway's main, crm-echo-server).
//
// Debian builds Abseil without NDEBUG, so absl::Mutex runs its deadlock
// detector (a graph of every lock order seen, updated on each acquisition)
// unless told not to; in production that is pure cost (measured: 2-4% of the
// consent service's CPU under Check load, docs/benchmarks.md). Tests keep it:
// they do not call this.
//
// It also makes crashes say where they happened: SIGSEGV, SIGBUS, SIGILL,
// SIGFPE and SIGABRT print "*** crashed: SIG..." and the failing thread's
// symbolized stack to stderr (next to the logs, so `kubectl logs --previous`
// shows it), then the process dies of the same signal as before. SIGTERM
// and SIGINT stay the server's to handle.
#pragma once

namespace crm::base {

void ConfigureServerRuntime();

}  // namespace crm::base
