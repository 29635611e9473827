// crm-gateway: the HTTPS/JSON front, admin console and privacy portal (issue 9).
// Wiring only: settings -> server -> serve until SIGTERM/SIGINT, drain for
// drain_notice (or until a second signal), stop.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <string>

#include "absl/time/time.h"
#include "libs/base/runtime.h"
#include "libs/log/log.h"
#include "services/gateway/gateway_server.h"

int main(int argc, char** argv) {
  crm::base::ConfigureServerRuntime();
  crm::gateway::GatewayConfig config;
  crm::config::Settings settings("crm-gateway");
  crm::gateway::AddGatewaySettings(settings, &config);
  crm::config::ParseOrExit(settings, argc, argv, environ);
  // Setting errors exit 2 like ParseOrExit, naming the setting.
  for (absl::Status s : {crm::log::Configure("gateway", config.log_level),
                         crm::gateway::ValidateGatewayConfig(config)}) {
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", argv[0], std::string(s.message()).c_str());
      return 2;
    }
  }

  // A client that goes away mid-answer must not kill the process: TLS writes
  // to a closed socket raise SIGPIPE (OpenSSL does not ask the kernel not to).
  std::signal(SIGPIPE, SIG_IGN);
  // Block the signals in every thread; this one waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  crm::gateway::GatewayServer server(config);
  if (absl::Status s = server.Start(); !s.ok()) {
    crm::log::Error("service.failed", {{"status", s}});
    return 1;
  }
  crm::log::Info("service.started",
                 {{"https_port", server.port()}, {"metrics_port", server.metrics_port()}});
  int sig = 0;
  sigwait(&signals, &sig);
  // Drain: /healthz says NOT_SERVING so that load balancers move away, while
  // requests are still served; a second signal cuts the notice short.
  server.Drain();
  crm::log::Info("service.draining", {{"drain_notice", config.drain_notice}});
  const absl::Time until = absl::Now() + config.drain_notice;
  while (absl::Now() < until) {
    const timespec wait = absl::ToTimespec(until - absl::Now());
    if (sigtimedwait(&signals, nullptr, &wait) >= 0 || errno != EINTR) break;
  }
  crm::log::Info("service.stopping");
  server.Stop();
  crm::log::Info("service.stopped");
  return 0;
}
