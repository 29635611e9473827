#include "libs/base/runtime.h"

#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "absl/debugging/symbolize.h"
#include "absl/synchronization/mutex.h"

namespace crm::base {
namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGILL:
      return "SIGILL";
    case SIGFPE:
      return "SIGFPE";
    case SIGABRT:
      return "SIGABRT";
    default:
      return "signal";
  }
}

// Everything below runs inside a signal handler: write(2), no allocation, no
// stdio, no locks.
void Put(const char* s) {
  size_t left = std::strlen(s);
  while (left > 0) {
    const ssize_t n = write(STDERR_FILENO, s, left);
    if (n <= 0) return;
    s += n;
    left -= static_cast<size_t>(n);
  }
}

void PutHex(uintptr_t v) {
  char buf[2 + 2 * sizeof(v) + 1];
  char* p = buf + sizeof(buf) - 1;
  *p = '\0';
  do {
    *--p = "0123456789abcdef"[v & 0xf];
    v >>= 4;
  } while (v != 0);
  *--p = 'x';
  *--p = '0';
  Put(p);
}

// The program counter at the signal, or 0 where this build does not know
// the machine's context layout.
uintptr_t FaultPc(void* ucontext) {
#if defined(__x86_64__)
  return static_cast<uintptr_t>(static_cast<ucontext_t*>(ucontext)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(static_cast<ucontext_t*>(ucontext)->uc_mcontext.pc);
#else
  (void)ucontext;
  return 0;
#endif
}

void OnFatalSignal(int sig, siginfo_t* info, void* ucontext) {
  // A second fault (in this handler, or in another thread meanwhile) dies
  // at once: SA_RESETHAND put the default action back.
  static std::atomic<bool> entered{false};
  if (!entered.exchange(true)) {
    Put("*** crashed: ");
    Put(SignalName(sig));
    if (sig == SIGSEGV || sig == SIGBUS) {
      Put(" at address ");
      PutHex(reinterpret_cast<uintptr_t>(info->si_addr));
    }
    Put("; stack of the failing thread:\n");
    void* frames[64];
    // glibc's backtrace unwinds by the tables every Debian library carries,
    // through the signal frame. Frame 0 is this handler, then the kernel's
    // trampoline; the stack proper starts at the faulting instruction.
    const int n = backtrace(frames, 64);
    const uintptr_t fault_pc = FaultPc(ucontext);
    int first = 1;
    for (int i = 1; i < n; ++i) {
      if (reinterpret_cast<uintptr_t>(frames[i]) == fault_pc) first = i;
    }
    for (int i = first; i < n; ++i) {
      const uintptr_t pc = reinterpret_cast<uintptr_t>(frames[i]);
      // Return addresses point after their call: look up the call itself.
      // The faulting instruction is where it is.
      const uintptr_t lookup = pc == fault_pc ? pc : pc - 1;
      char name[512];
      Put("    @ ");
      PutHex(pc);
      if (absl::Symbolize(reinterpret_cast<void*>(lookup), name, sizeof(name))) {
        Put("  ");
        Put(name);
      }
      Put("\n");
    }
  }
  raise(sig);  // The default action again: the process dies of `sig`.
}

void InstallFatalSignalTraces() {
  absl::InitializeSymbolizer("/proc/self/exe");
  void* warm[1];
  backtrace(warm, 1);  // Loads the unwinder now, not inside the handler.
  struct sigaction sa = {};
  sa.sa_sigaction = OnFatalSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
  for (int sig : kFatalSignals) sigaction(sig, &sa, nullptr);
}

}  // namespace

// The sanitizers install better reports of their own.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

void ConfigureServerRuntime() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (!kSanitized) InstallFatalSignalTraces();
}

}  // namespace crm::base
