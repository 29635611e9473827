// What the system tests share to run our service binaries as processes: the
// binaries of this build, free ports, temp dirs, the CRM_* environment of a
// gRPC service on the shared test PostgreSQL and Redis (with its key files
// and Redis password), its JSON log lines, and waiting until it serves.
// Used by service_binaries_test.cc (each binary alone) and
// example_shop_test.cc (identity, contacts and consent together).
//
// Not thread-safe: test set-up code, one thread.
#pragma once

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/rpc/tls_files.h"
#include "libs/testing/subprocess.h"
#include "libs/testing/test_env.h"

namespace crm::system_test {

// How long a process may take to come up or to exit. Generous for the
// sanitizer build; never waited for in full unless something is wrong.
inline constexpr absl::Duration kProcessBound = absl::Seconds(30);

// The path of crm-<service> ("identity", ..., "gateway") of this build.
const std::string& Binary(const std::string& service);

// A port of 127.0.0.1 for a service about to start, kept from other test
// processes (testing::PickFreePort); -1 if none is left.
int FreePort();

// A fresh directory under $TMPDIR, removed with everything in it by the
// destructor. path() is empty if it could not be made.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `content` to `path` (created or truncated) with `mode`. INTERNAL
// naming the path on failure.
absl::Status WriteFile(const std::string& path, absl::string_view content, mode_t mode = 0644);

// The log line (one JSON object) of `output` whose event is `event`, if any.
std::optional<std::string> LogLine(const std::string& output, absl::string_view event);

// The services that hold keys and verify tokens (Redis revocation set):
// identity, contacts, consent, audit, mailing, erasure.
bool NeedsKeysAndRedis(absl::string_view service);

// Everything a gRPC service binary needs but its database, as ServiceEnv
// turns it into CRM_* variables.
struct ServiceSetup {
  std::string service;
  rpc::TlsFiles tls;
  int grpc_port = 0;
  int metrics_port = 0;
  std::string db_url;
  std::string migrations_dir;
  // For NeedsKeysAndRedis services: a dir WriteServiceSecrets wrote to, and
  // the Redis they use.
  std::string secrets_dir;
  testing::RedisTestServer redis;
  // Where identity serves, for services that verify tokens (contacts,
  // consent, audit). Empty: they do not wait for identity's keys.
  std::string identity_addr;
  absl::Duration shutdown_grace = absl::Seconds(10);
};

// Writes kek.keys and index.key (fixed test keys), certificates.pem (a new
// Ed25519 key: erasure signs certificates with it) and redis_password (that
// of `redis`) into `dir`, each mode 0600.
absl::Status WriteServiceSecrets(const std::string& dir, const testing::RedisTestServer& redis);

// A complete, valid configuration of `setup.service` as CRM_* variables
// (identity with cheap Argon2 settings).
std::map<std::string, std::string> ServiceEnv(const ServiceSetup& setup);

// Polls grpc.health.v1 over `channel` until the whole server is SERVING (OK)
// or `process` exits or kProcessBound passes (the last error, with the
// process's output).
absl::Status WaitUntilServing(testing::Subprocess& process,
                              const std::shared_ptr<grpc::Channel>& channel);

}  // namespace crm::system_test
