#include "tools/crmctl_src/options.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/pki/pki.h"
#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {
namespace {

absl::Status FlagError(absl::string_view flag, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", problem));
}

std::string EnvAddressName(absl::string_view service) {
  return absl::StrCat("CRMCTL_", absl::AsciiStrToUpper(service), "_ADDR");
}

// Metadata keys gRPC accepts: lower-case [a-z0-9_.-], not starting with ':'.
bool IsMetadataKey(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

const std::vector<ServiceInfo>& KnownServices() {
  static const auto* services = new std::vector<ServiceInfo>{
      {"identity", 50051, false}, {"contacts", 50052, false}, {"consent", 50053, false},
      {"audit", 50054, false},    {"mailing", 50055, false},  {"erasure", 50056, false},
      {"gateway", 8443, true},
  };
  return *services;
}

const ServiceInfo* FindService(absl::string_view name) {
  for (const ServiceInfo& s : KnownServices()) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

bool IsHostPort(absl::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  absl::string_view host = address.substr(0, colon);
  if (absl::StrContains(host, ':') && !(host.front() == '[' && host.back() == ']')) return false;
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port)) return false;
  return port >= 1 && port <= 65535 && !absl::StrContains(address, ' ');
}

absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args,
                                     const std::map<std::string, std::string>& env,
                                     absl::string_view repo_root) {
  Options options;
  auto env_value = [&](const std::string& name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? "" : it->second;
  };

  for (const ServiceInfo& s : KnownServices()) {
    std::string address = env_value(EnvAddressName(s.name));
    if (address.empty()) {
      address = absl::StrCat("127.0.0.1:", s.default_port);
    } else if (!IsHostPort(address)) {
      return FlagError(EnvAddressName(s.name),
                       absl::StrCat("expected host:port, got \"", address, "\""));
    }
    options.addresses[s.name] = address;
  }

  std::vector<std::string> positionals;
  // --cert, --key and --ca, applied once the command is known: a table
  // command with a flag of the same name takes it (erasure verify --key).
  std::vector<std::pair<std::string, std::string>> tls_flags;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg == "-" || !absl::StartsWith(arg, "-")) {
      positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      options.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) return FlagError(arg, "unknown flag (see crmctl --help)");
    std::string name = arg;
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    const std::string bare = name.substr(2);
    const std::optional<bool> command_flag = CommandFlagTakesValue(bare);
    if (bare == "json" || bare == "password-stdin" || command_flag == false) {
      if (has_value) return FlagError(name, "takes no value");
      if (bare == "json") {
        options.json = true;
      } else if (bare == "password-stdin") {
        options.password_stdin = true;
      } else {
        options.command_flags.emplace_back(bare, "");
      }
      continue;
    }
    const bool known = bare == "cert" || bare == "key" || bare == "ca" || bare == "addr" ||
                       bare == "server-identity" || bare == "header" || bare == "timeout" ||
                       FindService(bare) != nullptr || command_flag.has_value();
    if (!known) return FlagError(name, "unknown flag (see crmctl --help)");
    if (!has_value) {
      if (i + 1 >= args.size()) return FlagError(name, "needs a value");
      value = args[++i];
    }
    if (value.empty()) return FlagError(name, "needs a value");

    if (bare == "cert" || bare == "key" || bare == "ca") {
      tls_flags.emplace_back(bare, value);
    } else if (bare == "addr") {
      if (!IsHostPort(value)) {
        return FlagError(name, absl::StrCat("expected host:port, got \"", value, "\""));
      }
      options.addr = value;
    } else if (bare == "server-identity") {
      std::string short_name = pki::NameFromSpiffeId(value);
      if (short_name.empty() && pki::IsValidName(value)) short_name = value;
      if (short_name.empty()) {
        return FlagError(name, absl::StrCat("expected spiffe://", pki::kTrustDomain,
                                            "/<name> or <name>, got \"", value, "\""));
      }
      options.server_identity = short_name;
    } else if (bare == "header") {
      size_t sep = value.find_first_of("=:");
      if (sep == std::string::npos) return FlagError(name, "expected key=value");
      std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value.substr(0, sep)));
      std::string val(absl::StripLeadingAsciiWhitespace(value.substr(sep + 1)));
      if (!IsMetadataKey(key)) {
        return FlagError(name, absl::StrCat("bad metadata key \"", key,
                                            "\" (use lower-case letters, digits, - _ .)"));
      }
      options.headers.emplace_back(std::move(key), std::move(val));
    } else if (bare == "timeout") {
      absl::Duration d;
      if (!absl::ParseDuration(value, &d) || d <= absl::ZeroDuration()) {
        return FlagError(name, absl::StrCat("expected a positive duration like 5s or 500ms, got \"",
                                            value, "\""));
      }
      options.timeout = d;
    } else if (command_flag.has_value()) {
      options.command_flags.emplace_back(bare, value);
    } else {  // --<service>
      if (!IsHostPort(value)) {
        return FlagError(name, absl::StrCat("expected host:port, got \"", value, "\""));
      }
      options.addresses[bare] = value;
    }
  }

  if (!positionals.empty()) {
    options.command = positionals[0];
    options.args.assign(positionals.begin() + 1, positionals.end());
  }
  for (auto& [bare, value] : tls_flags) {
    if (CommandHasFlag(positionals, bare)) {
      options.command_flags.emplace_back(bare, std::move(value));
    } else if (bare == "cert") {
      options.cert_file = std::move(value);
    } else if (bare == "key") {
      options.key_file = std::move(value);
    } else {
      options.ca_file = std::move(value);
    }
  }

  std::string pki_dir = env_value("CRM_PKI_DIR");
  if (pki_dir.empty()) pki_dir = absl::StrCat(repo_root, "/.run/pki");
  if (options.cert_file.empty()) options.cert_file = absl::StrCat(pki_dir, "/operator.crt");
  if (options.key_file.empty()) options.key_file = absl::StrCat(pki_dir, "/operator.key");
  if (options.ca_file.empty()) options.ca_file = absl::StrCat(pki_dir, "/ca.crt");
  return options;
}

}  // namespace crm::crmctl
