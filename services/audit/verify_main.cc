// audit-verify: checks the audit log straight from its PostgreSQL database,
// independently of the running service: recomputes every leaf hash from the
// stored content, rebuilds the RFC 6962 tree, and checks every signed
// checkpoint (root and signature) and the stored subtree hashes. Prints one
// line and exits 0 when the log is intact, 1 when it is not (naming the first
// bad entry), 2 on usage or connection errors. See docs/audit.md.
//
//   audit-verify --db_url="host=... dbname=audit user=... password=..."
//                [--public_keys=<base64 raw Ed25519 key>,...]
#include <cstdio>

#include "absl/strings/escaping.h"
#include "libs/base/clock.h"
#include "libs/config/config.h"
#include "libs/pg/pool.h"
#include "services/audit/audit_log.h"

int main(int argc, char** argv) {
  std::string db_url;
  std::vector<std::string> public_keys_b64;
  crm::config::Settings settings("audit-verify");
  settings.Add("db_url", &db_url, "libpq connection string of the audit database");
  settings.Add("public_keys", &public_keys_b64,
               "pinned checkpoint public keys (base64 raw Ed25519), comma-separated; default: "
               "the keys stored in the database");
  crm::config::ParseOrExit(settings, argc, argv, environ);
  if (db_url.empty()) {
    std::fprintf(stderr, "audit-verify: setting db_url: required\n");
    return 2;
  }
  std::vector<std::string> pinned;
  for (const std::string& k : public_keys_b64) {
    std::string raw;
    if (!absl::Base64Unescape(k, &raw) || raw.size() != 32) {
      std::fprintf(stderr, "audit-verify: setting public_keys: not a base64 32-byte key\n");
      return 2;
    }
    pinned.push_back(raw);
  }
  auto pool =
      crm::pg::Pool::Create({.conninfo = db_url, .max_size = 1}, crm::base::RealClock::Get());
  if (!pool.ok()) {
    std::fprintf(stderr, "audit-verify: %s\n", std::string(pool.status().message()).c_str());
    return 2;
  }
  crm::audit::LogStore store(**pool);
  const absl::Time start = absl::Now();
  absl::StatusOr<crm::audit::VerifyReport> report = crm::audit::VerifyLog(store, pinned);
  if (!report.ok()) {
    std::fprintf(stderr, "audit-verify: %s\n", std::string(report.status().message()).c_str());
    return 2;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (report->ok) {
    std::printf("OK: %lld entries and %lld checkpoints verified in %.2f s\n",
                static_cast<long long>(report->entries_checked),
                static_cast<long long>(report->checkpoints_checked), seconds);
    return 0;
  }
  std::printf("TAMPERED: %s (first bad entry %lld; %lld entries checked before)\n",
              report->problem.c_str(), static_cast<long long>(report->first_bad_index),
              static_cast<long long>(report->entries_checked));
  return 1;
}
