#include "libs/base/runtime.h"

#include <csignal>

#include "gtest/gtest.h"

namespace crm::base {
namespace {

// Not inlined, so the frame is its own and the trace can name it.
[[gnu::noinline]] void CrashInsideCrmCode() {
  std::raise(SIGSEGV);
  std::abort();  // Unreachable once the signal kills the process.
}

TEST(ConfigureServerRuntimeDeathTest, CrashPrintsTheFailingStackThenDiesOfTheSignal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  EXPECT_EXIT(
      {
        ConfigureServerRuntime();
        CrashInsideCrmCode();
      },
      testing::KilledBySignal(SIGSEGV), "crashed: SIGSEGV.*\n.*@ 0x[0-9a-f]+ .*CrashInsideCrmCode");
#else
  // The sanitizer's own report names the frame (and ends the process its
  // way).
  EXPECT_DEATH(
      {
        ConfigureServerRuntime();
        CrashInsideCrmCode();
      },
      "CrashInsideCrmCode");
#endif
}

}  // namespace
}  // namespace crm::base
