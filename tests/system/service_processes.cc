#include "tests/system/service_processes.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/primitives.h"
#include "libs/testing/grpc_call.h"
#include "libs/testing/loopback.h"

namespace crm::system_test {

const std::string& Binary(const std::string& service) {
  static const auto* binaries = new std::map<std::string, std::string>{
      {"identity", CRM_IDENTITY_BINARY}, {"contacts", CRM_CONTACTS_BINARY},
      {"consent", CRM_CONSENT_BINARY},   {"audit", CRM_AUDIT_BINARY},
      {"mailing", CRM_MAILING_BINARY},   {"erasure", CRM_ERASURE_BINARY},
      {"gateway", CRM_GATEWAY_BINARY},
  };
  return binaries->at(service);
}

int FreePort() { return testing::PickFreePort().value_or(-1); }

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "crm_system.XXXXXX").string();
  if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

absl::Status WriteFile(const std::string& path, absl::string_view content, mode_t mode) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << content;
    if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (chmod(path.c_str(), mode) != 0) return absl::InternalError(absl::StrCat("chmod ", path));
  return absl::OkStatus();
}

std::optional<std::string> LogLine(const std::string& output, absl::string_view event) {
  const std::string needle = absl::StrCat("\"event\":\"", event, "\"");
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StrContains(line, needle)) return std::string(line);
  }
  return std::nullopt;
}

bool NeedsKeysAndRedis(absl::string_view service) {
  return service == "identity" || service == "audit" || service == "contacts" ||
         service == "consent" || service == "mailing" || service == "erasure";
}

absl::Status WriteServiceSecrets(const std::string& dir, const testing::RedisTestServer& redis) {
  // Fresh keys for every suite: the blind-index key also names identity's
  // login-throttle counters in Redis (an HMAC of the source address), which
  // suites running in parallel on the shared Redis must not share.
  const std::string key_line =
      absl::StrCat("1 ", absl::Base64Escape(crypto::RandomBytes(32)), "\n");
  const std::string index_line =
      absl::StrCat("1 ", absl::Base64Escape(crypto::RandomBytes(32)), "\n");
  for (const auto& [name, content] : std::vector<std::pair<std::string, std::string>>{
           {"kek.keys", key_line}, {"index.key", index_line}, {"redis_password", redis.password}}) {
    if (absl::Status s = WriteFile(dir + "/" + name, content, 0600); !s.ok()) return s;
  }
  // erasure's certificate signing key.
  absl::StatusOr<crypto::Ed25519PrivateKey> certificates = crypto::Ed25519PrivateKey::Generate();
  if (!certificates.ok()) return certificates.status();
  return certificates->SavePemFile(dir + "/certificates.pem");
}

std::map<std::string, std::string> ServiceEnv(const ServiceSetup& setup) {
  const std::string& service = setup.service;
  std::map<std::string, std::string> env = {
      {"CRM_GRPC_LISTEN", absl::StrCat("127.0.0.1:", setup.grpc_port)},
      {"CRM_METRICS_LISTEN", absl::StrCat("127.0.0.1:", setup.metrics_port)},
      {"CRM_TLS_CERT", setup.tls.cert_file},
      {"CRM_TLS_KEY", setup.tls.key_file},
      {"CRM_TLS_CA", setup.tls.ca_file},
      {"CRM_DB_URL", setup.db_url},
      {"CRM_MIGRATIONS_DIR", setup.migrations_dir},
      {"CRM_LOG_LEVEL", "info"},
      {"CRM_SHUTDOWN_GRACE", absl::FormatDuration(setup.shutdown_grace)},
  };
  if (NeedsKeysAndRedis(service)) {
    env.insert({{"CRM_REDIS_ADDR", absl::StrCat(setup.redis.host, ":", setup.redis.port)},
                {"CRM_REDIS_PASSWORD_FILE", setup.secrets_dir + "/redis_password"},
                {"CRM_KEK_FILE", setup.secrets_dir + "/kek.keys"}});
  }
  if (service == "identity" || service == "contacts" || service == "consent") {
    env.insert({"CRM_BLIND_INDEX_KEY_FILE", setup.secrets_dir + "/index.key"});
  }
  if (service == "erasure") {
    env.insert({"CRM_CERTIFICATE_KEY_FILE", setup.secrets_dir + "/certificates.pem"});
  }
  if (service == "mailing") {  // the link key has the index key's format
    env.insert({"CRM_LINK_KEY_FILE", setup.secrets_dir + "/index.key"});
  }
  if (service == "audit" || service == "contacts" || service == "consent" || service == "mailing" ||
      service == "erasure") {
    if (setup.identity_addr.empty()) {
      env.insert({"CRM_KEY_WAIT", "0s"});  // no identity runs
    } else {
      env.insert({"CRM_IDENTITY_ADDR", setup.identity_addr});
    }
  }
  if (service == "identity") {
    env.insert({{"CRM_ARGON2_MEMORY_KIB", "1024"}, {"CRM_ARGON2_ITERATIONS", "1"}});
  }
  return env;
}

absl::Status WaitUntilServing(testing::Subprocess& process,
                              const std::shared_ptr<grpc::Channel>& channel) {
  absl::StatusOr<int> health = absl::UnavailableError("not checked");
  testing::PollUntil(
      [&] {
        health = testing::GrpcHealthCheck(channel);
        return (health.ok() && *health == testing::kHealthServing) || !process.Running();
      },
      kProcessBound);
  if (health.ok() && *health == testing::kHealthServing) return absl::OkStatus();
  const absl::Status last =
      health.ok() ? absl::UnavailableError(absl::StrCat("health ", *health)) : health.status();
  return absl::Status(last.code(), absl::StrCat(last.message(), "; output:\n", process.Output()));
}

}  // namespace crm::system_test
