// crm-pki: creates the development PKI for mutual TLS between our services.
//
//   crm-pki init --dir DIR --services identity,contacts --clients operator
//                [--days 365] [--force] [--algorithm p256|ed25519]
//
// Writes DIR/ca.{crt,key} and DIR/<name>.{crt,key} for every service and
// client. Idempotent: files that are still valid are kept (--force reissues).
// Exit codes: 0 done, 2 usage error, 1 failure.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "libs/pki/pki.h"

namespace {

constexpr char kUsage[] =
    "usage: crm-pki init --dir DIR --services a,b,... [--clients c,...] [--days N]\n"
    "                    [--force] [--algorithm p256|ed25519]\n"
    "Creates DIR/ca.crt, DIR/ca.key and DIR/<name>.crt, DIR/<name>.key (keys mode 0600)\n"
    "for every service and client, each with identity spiffe://crm.local/<name>.\n"
    "Existing valid files are kept unless --force.\n";

int Usage(const char* error) {
  if (error != nullptr) std::fprintf(stderr, "crm-pki: %s\n", error);
  std::fputs(kUsage, stderr);
  return 2;
}

void AppendList(absl::string_view csv, std::vector<std::string>* out) {
  for (absl::string_view s : absl::StrSplit(csv, ',', absl::SkipWhitespace())) {
    out->emplace_back(s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage(nullptr);
  const absl::string_view command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command != "init") return Usage("unknown command");
  crm::pki::InitOptions options;
  bool have_services = false;
  for (int i = 2; i < argc; ++i) {
    absl::string_view arg = argv[i];
    std::string value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); eq != absl::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto next = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (arg == "--force") {
      options.force = true;
    } else if (arg == "--dir") {
      if (!next()) return Usage("--dir needs a value");
      options.dir = value;
    } else if (arg == "--services") {
      if (!next()) return Usage("--services needs a value");
      AppendList(value, &options.names);
      have_services = true;
    } else if (arg == "--clients") {
      if (!next()) return Usage("--clients needs a value");
      AppendList(value, &options.names);
    } else if (arg == "--days") {
      int days = 0;
      if (!next() || !absl::SimpleAtoi(value, &days) || days < 1 || days > 3650) {
        return Usage("--days must be 1..3650");
      }
      options.validity = absl::Hours(24) * days;
    } else if (arg == "--algorithm") {
      if (!next()) return Usage("--algorithm needs a value");
      if (value == "p256") {
        options.algorithm = crm::pki::KeyAlgorithm::kEcdsaP256;
      } else if (value == "ed25519") {
        options.algorithm = crm::pki::KeyAlgorithm::kEd25519;
      } else {
        return Usage("--algorithm must be p256 or ed25519");
      }
    } else {
      return Usage("unknown flag");
    }
  }
  if (options.dir.empty()) return Usage("--dir is required");
  if (!have_services) return Usage("--services is required");
  absl::StatusOr<crm::pki::InitReport> report = crm::pki::InitDirectory(options);
  if (!report.ok()) {
    std::fprintf(stderr, "crm-pki: %s\n", report.status().ToString().c_str());
    return 1;
  }
  std::printf("crm-pki: %s: created [%s], kept [%s]\n", options.dir.c_str(),
              absl::StrJoin(report->created, ",").c_str(),
              absl::StrJoin(report->kept, ",").c_str());
  return 0;
}
