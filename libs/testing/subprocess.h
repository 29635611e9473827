// Real child processes for tests of process-level behaviour (start-up, exit
// codes, signals, logs): a binary started with fork/execve, its stdout and
// stderr captured in a file, killed and reaped when the object goes away.
//
//   Subprocess::Options options;
//   options.args = {binary, "--grpc_listen=127.0.0.1:0"};
//   options.env = {{"CRM_TLS_CERT", cert}};
//   options.output_file = dir + "/identity.log";
//   CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> p, Subprocess::Start(options));
//   ASSERT_TRUE(PollUntil([&] { return absl::StrContains(p->Output(), "service.started"); }));
//   ASSERT_THAT(p->Signal(SIGTERM), IsOk());
//   CRM_ASSERT_OK_AND_ASSIGN(ExitStatus exit, p->WaitForExit(absl::Seconds(20)));
//   EXPECT_EQ(exit.code, 0);
//
// Waiting is a bounded poll (for a process to come up or go away), never a
// sleep for time to pass.
//
// Thread-compatible: use one Subprocess from one thread at a time.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace crm::testing {

// Calls `predicate` every 20 ms until it returns true (then returns true) or
// `timeout` has passed (then returns false).
bool PollUntil(const std::function<bool()>& predicate, absl::Duration timeout = absl::Seconds(20));

// How a process ended: exactly one of `code` (>= 0, it exited) and `signal`
// (> 0, a signal killed it) is set.
struct ExitStatus {
  int code = -1;
  int signal = 0;
  bool exited_with(int expected) const { return signal == 0 && code == expected; }
};
std::ostream& operator<<(std::ostream& os, const ExitStatus& status);

class Subprocess {
 public:
  struct Options {
    // args[0] is the path of the binary (no PATH look-up). Required.
    std::vector<std::string> args;
    // Added to (and overriding) the test's environment. Variables of the test
    // starting with CRM_ are not passed on, so only `env` configures the
    // child's settings; others (ASAN_OPTIONS, CRMTEST_*, ...) are.
    std::map<std::string, std::string> env;
    // The child's stdout and stderr go to this file (created or truncated).
    // Empty: they go to the test's own.
    std::string output_file;
  };

  // Forks and execs. INVALID_ARGUMENT without args; NOT_FOUND if args[0] is
  // not an executable file; INTERNAL if the output file cannot be opened or
  // fork fails.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const Options& options);

  // Kills (SIGKILL) and reaps the child if it is still running.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Sends `signal`. FAILED_PRECONDITION once the child has been reaped;
  // INTERNAL if kill(2) fails.
  absl::Status Signal(int signal);

  // Waits up to `timeout` for the child to exit and reaps it. Returns how it
  // ended (also on later calls). DEADLINE_EXCEEDED if it is still running
  // (it is left running).
  absl::StatusOr<ExitStatus> WaitForExit(absl::Duration timeout);

  // True until the child has exited (reaps it if it has).
  bool Running();

  // Everything the child has written to output_file so far ("" without one).
  std::string Output() const;

 private:
  Subprocess(pid_t pid, std::string output_file)
      : pid_(pid), output_file_(std::move(output_file)) {}
  // Reaps the child without blocking; true if it has exited.
  bool TryReap();

  pid_t pid_;
  std::string output_file_;
  bool reaped_ = false;
  ExitStatus exit_;
};

}  // namespace crm::testing
