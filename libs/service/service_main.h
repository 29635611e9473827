// The start-up sequence every gRPC service shares, so each main.cc is wiring
// only:
//
//   int main(int argc, char** argv) {
//     crm::service::CommonConfig cfg("identity");
//     crm::config::Settings settings("crm-identity");
//     crm::service::AddCommonSettings(settings, &cfg);
//     crm::config::ParseOrExit(settings, argc, argv, environ);
//     return crm::service::Run(cfg, [&](crm::service::Context& ctx) -> absl::Status {
//       ... build stores and handlers from ctx.db, ctx.clock, ctx.metrics ...
//       ctx.policy.Allow("/crm.identity.v1.Identity/Login", ...);
//       ctx.services.push_back(&handler);
//       return absl::OkStatus();
//     });
//   }
//
// Run() sets up logging, connects to PostgreSQL (waiting up to db_wait for it
// to come up), applies the service's migrations (stopping on an edited or
// missing one), lets the service register its handlers and access policy,
// serves over mutual TLS until SIGTERM/SIGINT, drains, and returns the exit
// code. Failures are logged as one JSON line naming the step and the status.
//
// Not thread-safe; call from main() once.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "libs/base/clock.h"
#include "libs/config/config.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/server.h"

namespace prometheus {
class Registry;
}

namespace crm::service {

struct CommonConfig {
  explicit CommonConfig(std::string service_name);

  // gRPC serving: settings grpc_listen (default 0.0.0.0:<the service's
  // standard port>, e.g. 50052 for contacts), tls_*, metrics_listen (default
  // 0.0.0.0:9100), ... (libs/rpc).
  rpc::ServerConfig server;
  // Setting db_url: libpq connection string of the service's own database,
  // e.g. "host=db port=5432 dbname=contacts user=contacts password=...".
  // Required.
  std::string db_url;
  // Setting db_pool_size: connections to PostgreSQL at most. Default 8.
  int db_pool_size = 8;
  // Setting db_wait: how long start-up waits for PostgreSQL to accept
  // connections before giving up. Default 60 s.
  absl::Duration db_wait = absl::Seconds(60);
  // Setting migrations_dir: folder of NNNN_name.sql files applied at start.
  // Default: the service's folder in the source tree (set at build time);
  // images set /usr/share/crm/<service>/migrations.
  std::string migrations_dir;
  // Setting log_level: debug, info, warn or error. Default info.
  std::string log_level = "info";
};

void AddCommonSettings(config::Settings& settings, CommonConfig* config);

// Checks what parsing a setting alone cannot, so a bad value stops start-up
// before it waits for PostgreSQL: grpc_listen and metrics_listen (unless
// empty) are host:port with a port 0..65535, log_level is a level name and
// db_url is set. INVALID_ARGUMENT naming the setting.
absl::Status ValidateCommonConfig(const CommonConfig& config);

// What a service's setup function gets to build its handlers with.
struct Context {
  const CommonConfig& config;
  base::Clock& clock;
  pg::Pool& db;
  prometheus::Registry& metrics;
  // Add an entry for every method of every service registered below.
  rpc::AccessPolicy& policy;
  // Handlers to serve; they must outlive Run() (keep them in the setup lambda's owner).
  std::vector<grpc::Service*>& services;
  // Run once serving has stopped (or start-up failed after setup), newest
  // first, while the database pool still exists: stop background threads here.
  std::vector<std::function<void()>>& on_stop;
};

using SetupFunction = std::function<absl::Status(Context& ctx)>;

// Runs the service until it is told to stop. Returns 0 after a clean
// shutdown, 1 if any start-up step failed.
int Run(const CommonConfig& config, const SetupFunction& setup);

// The whole of a main.cc for a service without settings of its own: declares
// the common settings, parses flags and CRM_* variables and validates them
// (an unknown or malformed one prints a message naming it and returns 2),
// then Run()s.
int Main(const std::string& service_name, int argc, char** argv, const SetupFunction& setup);

}  // namespace crm::service
