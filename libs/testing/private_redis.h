// A redis-server of a test's own, for tests that break things: stop it, kill
// it, freeze it (SIGSTOP) to make calls time out, restart it on the same port.
// The shared Redis of the test run (TestEnv::redis()) must never be broken.
//
//   CRM_ASSERT_OK_AND_ASSIGN(auto server, PrivateRedisServer::Start("pw"));
//   ... server->Pause(); ... server->Resume();
//
// Runs `redis-server` from PATH, bound to 127.0.0.1 on a free port, with
// requirepass, no persistence, in a fresh directory under $TMPDIR (or /tmp)
// that the destructor removes after killing the server.
//
// Not thread-safe: one test thread controls it (clients in other threads may
// talk to the server, of course).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/testing/test_env.h"

namespace crm::testing {

class PrivateRedisServer {
 public:
  // Starts the server and waits (bounded poll, 10 s) until it answers.
  // INTERNAL if it cannot be started.
  static absl::StatusOr<std::unique_ptr<PrivateRedisServer>> Start(std::string password);
  ~PrivateRedisServer();
  PrivateRedisServer(const PrivateRedisServer&) = delete;
  PrivateRedisServer& operator=(const PrivateRedisServer&) = delete;

  RedisTestServer info() const { return {"127.0.0.1", port_, password_}; }
  int port() const { return port_; }
  bool running() const { return pid_ > 0; }

  // SIGTERM and wait for exit (SIGKILL after 10 s). OK if not running.
  absl::Status Stop();
  // SIGKILL and wait for exit. OK if not running.
  absl::Status Kill();
  // SIGSTOP / SIGCONT: the server keeps accepting TCP connections (the kernel
  // does) but answers nothing while paused. FAILED_PRECONDITION if not running.
  absl::Status Pause();
  absl::Status Resume();
  // Stops the server if running, then starts it again on the same port (empty
  // data) and waits until it answers. INTERNAL if it cannot be started.
  absl::Status Restart();

 private:
  PrivateRedisServer(std::string dir, std::string password, int port)
      : dir_(std::move(dir)), password_(std::move(password)), port_(port) {}
  // Spawns the server and polls until it answers or exits.
  absl::Status Spawn();
  absl::Status WaitExit(absl::Duration timeout);

  std::string dir_;
  std::string password_;
  int port_;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace crm::testing
