#include "libs/testing/private_redis.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/testing/loopback.h"

extern char** environ;

namespace crm::testing {
namespace {

// True if something on 127.0.0.1:port answers a RESP inline PING (with
// "+PONG" or, when a password is required, "-NOAUTH ...").
bool Answers(int port) {
  absl::StatusOr<int> fd = ConnectLoopback(port, absl::Seconds(1));
  if (!fd.ok()) return false;
  static constexpr char kPing[] = "PING\r\n";
  char buf[8];
  bool ok = false;
  if (::write(*fd, kPing, sizeof(kPing) - 1) == sizeof(kPing) - 1) {
    const ssize_t n = ::read(*fd, buf, sizeof(buf));
    ok = n > 0 && (buf[0] == '+' || buf[0] == '-');
  }
  ::close(*fd);
  return ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PrivateRedisServer>> PrivateRedisServer::Start(
    std::string password) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/crm-redis-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError("private redis: mkdtemp failed");
  }
  absl::Status last = absl::InternalError("private redis: not started");
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<int> port = PickFreePort();
    if (!port.ok()) return port.status();
    std::unique_ptr<PrivateRedisServer> server(new PrivateRedisServer(pattern, password, *port));
    last = server->Spawn();
    if (last.ok()) return server;
    // Most likely the port was taken in between: the destructor cleans up,
    // except the directory, which the next attempt reuses.
    server->dir_.clear();
  }
  std::error_code ec;
  std::filesystem::remove_all(pattern, ec);
  return last;
}

PrivateRedisServer::~PrivateRedisServer() {
  if (pid_ > 0) {
    if (paused_) ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

absl::Status PrivateRedisServer::Spawn() {
  const std::string port = absl::StrCat(port_);
  const std::string log = absl::StrCat(dir_, "/redis.log");
  std::vector<std::string> args = {
      "redis-server", "--port",      port, "--bind",       "127.0.0.1", "--requirepass",
      password_,      "--save",      "",   "--appendonly", "no",        "--dir",
      dir_,           "--daemonize", "no", "--logfile",    log,
  };
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (int rc = ::posix_spawnp(&pid, "redis-server", nullptr, nullptr, argv.data(), environ);
      rc != 0) {
    return absl::InternalError("private redis: cannot spawn redis-server (is it on PATH?)");
  }
  pid_ = pid;
  paused_ = false;
  // Bounded poll for start-up.
  for (int i = 0; i < 1000; ++i) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(
          absl::StrCat("private redis: redis-server exited at start-up (port ", port_, ")"));
    }
    if (Answers(port_)) return absl::OkStatus();
    ::usleep(10'000);
  }
  return absl::InternalError("private redis: redis-server did not answer within 10 s");
}

absl::Status PrivateRedisServer::WaitExit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      paused_ = false;
      return absl::OkStatus();
    }
    ::usleep(5'000);
  }
  return absl::DeadlineExceededError("private redis: server did not exit");
}

absl::Status PrivateRedisServer::Stop() {
  if (pid_ <= 0) return absl::OkStatus();
  if (paused_) ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  if (WaitExit(absl::Seconds(10)).ok()) return absl::OkStatus();
  return Kill();
}

absl::Status PrivateRedisServer::Kill() {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, SIGKILL);
  return WaitExit(absl::Seconds(10));
}

absl::Status PrivateRedisServer::Pause() {
  if (pid_ <= 0) return absl::FailedPreconditionError("private redis: not running");
  if (::kill(pid_, SIGSTOP) != 0) return absl::InternalError("private redis: SIGSTOP failed");
  paused_ = true;
  return absl::OkStatus();
}

absl::Status PrivateRedisServer::Resume() {
  if (pid_ <= 0) return absl::FailedPreconditionError("private redis: not running");
  if (::kill(pid_, SIGCONT) != 0) return absl::InternalError("private redis: SIGCONT failed");
  paused_ = false;
  return absl::OkStatus();
}

absl::Status PrivateRedisServer::Restart() {
  if (absl::Status s = Stop(); !s.ok()) return s;
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    last = Spawn();
    if (last.ok()) return last;
    ::usleep(100'000);  // the old socket may linger briefly
  }
  return last;
}

}  // namespace crm::testing
