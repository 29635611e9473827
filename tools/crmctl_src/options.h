// Command-line and environment parsing of crmctl: which command, its
// arguments, the operator's TLS files, the address of every service, the
// per-call settings and the flags of the table commands (identity,
// contacts). Pure (no files are opened here), so it is unit-tested directly.
//
// Precedence for a service address: flag --<service>=host:port, then the
// environment CRMCTL_<SERVICE>_ADDR, then 127.0.0.1:<development port>. TLS
// files: --cert/--key/--ca, then $CRM_PKI_DIR/operator.{crt,key} and ca.crt,
// then <repo>/.run/pki/.
//
// Not thread-safe (plain data).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::crmctl {

// A service of the deployment and its development port.
struct ServiceInfo {
  const char* name;
  int default_port;
  bool https;  // The gateway: HTTPS with GET /healthz instead of gRPC health.
};

// identity, contacts, consent, audit, mailing, erasure, gateway.
const std::vector<ServiceInfo>& KnownServices();
// The entry of `name`, or null.
const ServiceInfo* FindService(absl::string_view name);

struct Options {
  // "health", "call", "list" or "help"; empty if none was given.
  std::string command;
  // Positional arguments after the command.
  std::vector<std::string> args;
  // --help / -h anywhere.
  bool help = false;

  // Operator certificate, key and CA (PEM files). A table command with a
  // flag of the same name takes that flag instead (erasure verify --key is
  // the public key to verify with): the file then comes from $CRM_PKI_DIR
  // or <repo>/.run/pki.
  std::string cert_file;
  std::string key_file;
  std::string ca_file;

  // host:port of every known service (all present after parsing).
  std::map<std::string, std::string> addresses;

  // --addr host:port: call or check this address instead of a named service.
  std::string addr;
  // --server-identity: expected identity of the server (short name; the flag
  // also takes spiffe://crm.local/<name>). Empty: the named service's.
  std::string server_identity;
  // --header key=value (or "key: value"), repeatable; keys lower-cased.
  std::vector<std::pair<std::string, std::string>> headers;
  // --timeout: deadline of each call. Default 10 s.
  absl::Duration timeout = absl::Seconds(10);

  // --json: table commands print the response as JSON instead of a table.
  bool json = false;
  // --password-stdin: passwords are lines of stdin (no prompt, no echo
  // control), also when it is a terminal.
  bool password_stdin = false;
  // The flags of the table commands (table_commands.h), in order, by
  // name without "--"; a switch has the value "". Which command they belong
  // to is checked when it runs.
  std::vector<std::pair<std::string, std::string>> command_flags;
};

// Parses `args` (argv without the program name) and `env`. Flags may come
// before or after the command; "--" ends the flags. INVALID_ARGUMENT naming
// the bad flag or variable (unknown flag, missing or malformed value).
// `repo_root` is where .run/pki is looked for.
absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args,
                                     const std::map<std::string, std::string>& env,
                                     absl::string_view repo_root);

// OK if `address` is host:port with a port in 1..65535 ("[::1]:50051" too).
bool IsHostPort(absl::string_view address);

}  // namespace crm::crmctl
