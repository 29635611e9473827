#include "libs/testing/loopback.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"

namespace crm::testing {
namespace {

// Binds 127.0.0.1:port (0: any) as a server would (SO_REUSEADDR, so a
// previous run's TIME_WAIT does not count); the bound port, or -1.
int TryBind(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int bound = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    bound = ntohs(addr.sin_port);
  }
  ::close(fd);
  return bound;
}

// The first port of the kernel's ephemeral range (32768 if unreadable).
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768;
  return in >> low ? low : 32768;
}

}  // namespace

absl::StatusOr<int> ConnectLoopback(int port, absl::Duration timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket");
  const timeval tv = absl::ToTimeval(timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError("connect");
  }
  return fd;
}

absl::StatusOr<int> PickFreePort() {
  constexpr int kFirst = 10000;
  const int end = EphemeralLow();
  if (end - kFirst < 1000) {
    const int port = TryBind(0);
    if (port <= 0) return absl::InternalError("cannot bind a free port");
    return port;
  }
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/crm-test-ports-", ::getuid());
  ::mkdir(dir.c_str(), 0700);
  const int span = end - kFirst;
  const int start = static_cast<int>(std::random_device{}() % static_cast<unsigned>(span));
  for (int i = 0; i < span; ++i) {
    const int port = kFirst + (start + i) % span;
    const std::string lock = absl::StrCat(dir, "/", port);
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", lock));
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && TryBind(port) == port) {
      return port;  // fd stays open: the claim lasts until the process exits
    }
    ::close(fd);
  }
  return absl::InternalError(absl::StrCat("no free port in ", kFirst, "-", end - 1));
}

}  // namespace crm::testing
