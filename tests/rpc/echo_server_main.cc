// crm-echo-server: the Echo service on ServerRunner as a real process, for
// tests of process-level behaviour (SIGTERM drains in-flight calls, exit 0).
//
//   crm-echo-server --identity=b --tls_cert=... --tls_key=... --tls_ca=...
//                   [--port_file=PATH] [other ServerRunner settings]
//
// Allows Echo and SlowEcho to any peer of the CA. Writes "<grpc port>
// <metrics port>\n" to port_file (via a rename) once listening.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"

extern char** environ;

int main(int argc, char** argv) {
  crm::rpc::ServerConfig config;
  std::string identity;
  std::string port_file;
  std::string log_level = "info";
  crm::config::Settings settings("crm-echo-server");
  settings.Add("identity", &identity, "expected identity of tls_cert (short name)");
  settings.Add("port_file", &port_file, "where to write '<grpc port> <metrics port>'");
  settings.Add("log_level", &log_level, "debug, info, warn or error");
  crm::rpc::AddServerSettings(settings, &config);
  crm::config::ParseOrExit(settings, argc, argv, environ);
  config.service = identity;
  crm::log::SetService("echo");
  crm::log::Level level;
  if (!crm::log::ParseLevel(log_level, &level)) {
    std::fprintf(stderr, "log_level: must be debug, info, warn or error\n");
    return 2;
  }
  crm::log::SetMinLevel(level);

  crm::rpc::AccessPolicy policy;
  policy.AllowAnyPeer(crm::rpc::testing::kEchoMethod)
      .AllowAnyPeer(crm::rpc::testing::kSlowEchoMethod);
  crm::rpc::testing::EchoService service;
  crm::rpc::ServerRunner runner(config, std::move(policy));
  runner.RegisterService(&service);
  if (absl::Status s = runner.Start(); !s.ok()) {
    crm::log::Error("server.start_failed", {{"status", s}});
    return 1;
  }
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << runner.port() << " " << runner.metrics_port() << "\n";
    }
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) return 1;
  }
  return runner.Wait().ok() ? 0 : 1;
}
