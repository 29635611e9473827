#include "libs/service/service_main.h"

#include <prometheus/registry.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/base/runtime.h"
#include "libs/base/status_macros.h"
#include "libs/log/log.h"
#include "libs/pg/migrate.h"

namespace crm::service {

namespace {

// The suite's standard gRPC ports (README "Ports"); 0 for a service not listed.
int DefaultPort(absl::string_view service) {
  static constexpr std::pair<const char*, int> kPorts[] = {{"identity", 50051}, {"contacts", 50052},
                                                           {"consent", 50053},  {"audit", 50054},
                                                           {"mailing", 50055},  {"erasure", 50056}};
  for (const auto& [name, port] : kPorts) {
    if (service == name) return port;
  }
  return 0;
}

}  // namespace

CommonConfig::CommonConfig(std::string service_name) {
  server.service = std::move(service_name);
  server.listen = absl::StrCat("0.0.0.0:", DefaultPort(server.service));
  server.metrics_listen = "0.0.0.0:9100";
#ifdef CRM_SOURCE_DIR
  migrations_dir = absl::StrCat(CRM_SOURCE_DIR, "/services/", server.service, "/migrations");
#endif
}

void AddCommonSettings(config::Settings& settings, CommonConfig* config) {
  rpc::AddServerSettings(settings, &config->server);
  settings.Add("db_url", &config->db_url, "libpq connection string of this service's database");
  settings.Add("db_pool_size", &config->db_pool_size, "PostgreSQL connections at most", 1, 256);
  settings.Add("db_wait", &config->db_wait, "how long start-up waits for PostgreSQL");
  settings.Add("migrations_dir", &config->migrations_dir, "folder of NNNN_name.sql migrations");
  settings.Add("log_level", &config->log_level, "debug, info, warn or error");
}

absl::Status ValidateCommonConfig(const CommonConfig& config) {
  std::string host;
  int port;
  CRM_RETURN_IF_ERROR(config::ParseHostPort("grpc_listen", config.server.listen, &host, &port));
  if (!config.server.metrics_listen.empty()) {
    CRM_RETURN_IF_ERROR(
        config::ParseHostPort("metrics_listen", config.server.metrics_listen, &host, &port));
  }
  log::Level level;
  if (!log::ParseLevel(config.log_level, &level)) {
    return absl::InvalidArgumentError("setting log_level: must be debug, info, warn or error");
  }
  if (config.db_url.empty()) return absl::InvalidArgumentError("setting db_url: required");
  return absl::OkStatus();
}

int Main(const std::string& service_name, int argc, char** argv, const SetupFunction& setup) {
  CommonConfig config(service_name);
  config::Settings settings(absl::StrCat("crm-", service_name));
  AddCommonSettings(settings, &config);
  config::ParseOrExit(settings, argc, argv, environ);
  // Exits like ParseOrExit, before anything waits for PostgreSQL.
  if (absl::Status s = ValidateCommonConfig(config); !s.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(s.message()).c_str());
    return 2;
  }
  return Run(config, setup);
}

namespace {

absl::StatusOr<std::unique_ptr<pg::Pool>> ConnectWithRetry(const CommonConfig& config,
                                                           base::Clock& clock) {
  if (config.db_url.empty()) return absl::InvalidArgumentError("setting db_url: required");
  const absl::Time give_up = clock.Now() + config.db_wait;
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    auto pool =
        pg::Pool::Create({.conninfo = config.db_url, .max_size = config.db_pool_size}, clock);
    if (pool.ok() || pool.status().code() != absl::StatusCode::kUnavailable ||
        clock.Now() + backoff > give_up) {
      return pool;
    }
    log::Warn("db.waiting", {{"status", pool.status()}, {"retry_in", backoff}});
    clock.SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

absl::Status Serve(const CommonConfig& config, const SetupFunction& setup) {
  base::Clock& clock = base::RealClock::Get();
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<pg::Pool> db, ConnectWithRetry(config, clock));
  CRM_ASSIGN_OR_RETURN(pg::MigrationReport report, pg::Migrate(*db, config.migrations_dir));
  log::Info("db.migrated",
            {{"version_before", report.version_before}, {"version_after", report.version_after}});

  // Handlers register their metrics before the runner (which takes the
  // finished policy) exists, so the registry is made here and handed over.
  auto registry = std::make_shared<prometheus::Registry>();
  rpc::AccessPolicy policy;
  std::vector<grpc::Service*> services;
  // The stop hooks run before `ctx`, `registry` and `db` go: they end the
  // services' threads (workers, relays, key refreshers) while the context
  // those threads were handed, the metrics they update and the pool they use
  // still live. (With the registry declared after them, erasure's worker
  // could set a freed gauge between the server's stop and its join:
  // "malloc_consolidate(): unaligned fastbin chunk" at exit, and services
  // that now and then did not exit with 0 under ASan.)
  std::vector<std::function<void()>> stop_fns;
  Context ctx{config, clock, *db, *registry, policy, services, stop_fns};
  struct StopHooks {
    std::vector<std::function<void()>>& fns;
    ~StopHooks() {
      for (auto it = fns.rbegin(); it != fns.rend(); ++it) (*it)();
    }
  } stop_hooks{stop_fns};
  CRM_RETURN_IF_ERROR(setup(ctx));

  rpc::ServerRunner runner(config.server, std::move(policy), registry);
  for (grpc::Service* s : services) runner.RegisterService(s);
  CRM_RETURN_IF_ERROR(runner.Start());
  log::Info("service.started", {{"grpc_port", runner.port()},
                                {"metrics_port", runner.metrics_port()},
                                {"health_port", runner.health_port()}});
  CRM_RETURN_IF_ERROR(runner.Wait());
  log::Info("service.stopped");
  return absl::OkStatus();
}

}  // namespace

int Run(const CommonConfig& config, const SetupFunction& setup) {
  base::ConfigureServerRuntime();
  if (absl::Status s = log::Configure(config.server.service, config.log_level); !s.ok()) {
    log::Error("service.config_invalid", {{"status", s}});
    return 1;
  }
  absl::Status s = Serve(config, setup);
  if (!s.ok()) {
    log::Error("service.failed", {{"status", s}});
    return 1;
  }
  return 0;
}

}  // namespace crm::service
