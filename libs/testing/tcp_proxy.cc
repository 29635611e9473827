#include "libs/testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"

namespace crm::testing {
namespace {

int ConnectTo(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int upstream_port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("tcp proxy: socket failed");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("tcp proxy: cannot listen: errno ", errno));
  }
  std::unique_ptr<TcpProxy> proxy(new TcpProxy(fd, ntohs(addr.sin_port), upstream_port));
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->AcceptLoop(); });
  return proxy;
}

TcpProxy::TcpProxy(int listen_fd, int port, int upstream_port)
    : listen_fd_(listen_fd), port_(port), upstream_port_(upstream_port) {}

TcpProxy::~TcpProxy() {
  stop_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  close(listen_fd_);
  std::vector<std::thread> shuttles;
  {
    absl::MutexLock l(&mu_);
    CloseConnections();
    shuttles.swap(shuttles_);
  }
  for (std::thread& t : shuttles) t.join();
}

void TcpProxy::SetMode(Mode mode) {
  absl::MutexLock l(&mu_);
  // Streams that lost bytes in a partition are broken: healing resets them,
  // and the peers reconnect (as they would after a real partition's timeouts).
  if (mode != Mode::kDrop && mode != mode_) CloseConnections();
  mode_ = mode;
}

void TcpProxy::SetUpstream(int port) {
  absl::MutexLock l(&mu_);
  upstream_port_ = port;
  CloseConnections();
}

void TcpProxy::CloseConnections() {
  for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  open_fds_.clear();
}

void TcpProxy::AcceptLoop() {
  while (!stop_) {
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (stop_ || (errno != EINTR && errno != ECONNABORTED)) return;
      continue;
    }
    ++accepted_;
    absl::MutexLock l(&mu_);
    if (mode_ == Mode::kRefuse) {
      close(client);
      continue;
    }
    open_fds_.push_back(client);
    shuttles_.emplace_back([this, client] { Shuttle(client); });
  }
}

void TcpProxy::Shuttle(int client) {
  int upstream = -1;
  {
    absl::MutexLock l(&mu_);
    if (mode_ == Mode::kForward) upstream = ConnectTo(upstream_port_);
    if (mode_ == Mode::kForward && upstream < 0) {
      // Nothing behind us: the client sees what it would see directly.
      shutdown(client, SHUT_RDWR);
    }
    if (upstream >= 0) open_fds_.push_back(upstream);
  }
  char buffer[16384];
  while (!stop_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
    const int n = poll(fds, upstream >= 0 ? 2 : 1, 100);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    bool done = false;
    for (int i = 0; i < 2 && !done; ++i) {
      if (i == 1 && upstream < 0) break;
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t got = read(fds[i].fd, buffer, sizeof(buffer));
      if (got <= 0) {
        done = true;
        break;
      }
      Mode mode;
      {
        absl::MutexLock l(&mu_);
        mode = mode_;
      }
      if (mode != Mode::kForward || upstream < 0) continue;  // dropped
      const int to = i == 0 ? upstream : client;
      for (ssize_t sent = 0; sent < got;) {
        const ssize_t w = write(to, buffer + sent, static_cast<size_t>(got - sent));
        if (w <= 0) {
          done = true;
          break;
        }
        sent += w;
      }
    }
    if (done) break;
  }
  absl::MutexLock l(&mu_);
  for (int fd : {client, upstream}) {
    if (fd < 0) continue;
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
    close(fd);
  }
}

}  // namespace crm::testing
