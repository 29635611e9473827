// TcpProxy: a TCP forwarder on 127.0.0.1 that a test puts between two
// processes to cut the link between them without touching either: a
// network partition (packets dropped: connections hang, new ones are
// accepted and then hear nothing), a refusal (every connection reset), and
// healing. The upstream can be changed at any time (e.g. a server restarted
// on another port, or another kind of server behind the same address).
//
//   CRM_ASSIGN_OR_RETURN(auto proxy, TcpProxy::Start(upstream_port));
//   ... point the client at 127.0.0.1:proxy->port() ...
//   proxy->SetMode(TcpProxy::Mode::kDrop);     // partition
//   proxy->SetMode(TcpProxy::Mode::kForward);  // healed
//
// One thread accepts; each connection has a thread that shuttles bytes both
// ways with poll(). In kDrop, bytes are read and thrown away in both
// directions (a black hole: the peers see no error, only silence). Leaving
// kDrop, switching to kRefuse or setting a new upstream closes every open
// connection (their streams lost bytes), so the peers reconnect.
//
// Thread-safe. The destructor stops the threads and closes every socket.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace crm::testing {

class TcpProxy {
 public:
  enum class Mode {
    kForward,  // pass bytes both ways
    kDrop,     // accept and read, deliver nothing (a partition)
    kRefuse,   // close every connection at once (a reset)
  };

  // Listens on an ephemeral port of 127.0.0.1 and forwards to
  // 127.0.0.1:`upstream_port`. INTERNAL if the socket cannot be made.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int upstream_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void SetMode(Mode mode);
  // Later connections go to `port`; open ones are closed.
  void SetUpstream(int port);
  // Connections accepted so far.
  int accepted() const { return accepted_.load(); }

 private:
  TcpProxy(int listen_fd, int port, int upstream_port);
  void AcceptLoop();
  void Shuttle(int client_fd);
  // Closes the sockets of every open connection (their threads then end).
  void CloseConnections() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int listen_fd_;
  const int port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  mutable absl::Mutex mu_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kForward;
  int upstream_port_ ABSL_GUARDED_BY(mu_);
  // Open connections' sockets (client, upstream), shut down to end them.
  std::vector<int> open_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> shuttles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::testing
