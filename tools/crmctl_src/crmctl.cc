#include "tools/crmctl_src/crmctl.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <istream>
#include <iterator>
#include <ostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/tls_files.h"
#include "tools/crmctl_src/client.h"
#include "tools/crmctl_src/options.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {
namespace {

constexpr char kGeneralUsage[] = R"(crmctl: the operator's client of the CRM services (mutual TLS)

Usage:
  crmctl [flags] health [service...]            health of every (or the named) service
  crmctl [flags] call <service> <Method> <json> call a unary method; <json> '-' reads stdin
  crmctl [flags] call --addr host:port <Method> <json>
  crmctl [flags] list [service]                 services and methods crmctl knows
  crmctl help [command]                         this text, or a command's

Identity administration (as the user of 'crmctl login'; 'crmctl help <command>'):
  login USERNAME, logout, passwd                your session
  user, role, grant, team, totp, service-account, keys
                                                e.g. 'crmctl user list', 'crmctl grant
                                                add USER_ID ROLE --for 8h --justification J'

Contacts (crm.contacts.v1.Contacts, as the user of 'crmctl login'):
  person create|get|update|list|lookup|restrict|unrestrict|assign
                                                e.g. 'crmctl person create --family-name
                                                Lovelace --email ada@example.com'
  person import FILE.csv [--source S] [--channel C] [--dry-run]
                                                persons from a CSV file with a header row
  company create|get|update|list                companies, e.g. 'crmctl company create
                                                --name Acme --tax-id nip:5260250274'
  history add|list SUBJECT_ID                   a person's contact history
  invoice record|list                           invoices of a person or a company
  retention due                                 subjects due for erasure
  catalogue                                     the field catalogue of contacts

Consent (crm.consent.v1.Consent, as the user of 'crmctl login'):
  purpose list|define                           purposes and their lawful basis, e.g.
                                                'crmctl purpose define newsletter --basis
                                                consent --description "Monthly news"'
  notice publish PURPOSE_ID --language LANG (--file FILE | --text TEXT)
                                                a notice text; prints its version
  consent grant|withdraw|object SUBJECT_ID PURPOSE_ID --method M --source S
                                                a subject's statement (grant: --notice V)
  consent check|history|restrict|unrestrict SUBJECT_ID ...
                                                the decision, the ledger, Art. 18

Mailing (crm.mailing.v1.Mailing, as the user of 'crmctl login'):
  mailing list create|ls                        lists, each for one consent purpose
  mailing subscribe LIST_ID SUBJECT_ID --notice V --source S
                                                subscribe a subject (single or double
                                                opt-in, as the list says)
  mailing subscriptions LIST_ID [--state S]     a list's subscriptions
  mailing template put|get TEMPLATE_ID          template versions, bodies from files
  mailing campaign create|schedule|pause|resume|cancel|show
                                                campaigns and their counts, e.g.
                                                'crmctl mailing campaign create --name
                                                "May news" --list news --template may'

Erasure (crm.erasure.v1.Erasure, as the user of 'crmctl login'; all but key and
verify need dsr.manage):
  erasure submit SUBJECT_ID --reason R          open an erasure request (Art. 17)
  erasure access SUBJECT_ID                     open an access request (Art. 15)
  erasure show|cancel REQUEST_ID                a request and its targets; cancel it
  erasure ls [--state S] [--kind K] [--due-within 7d]
                                                requests, oldest due first
  erasure extend REQUEST_ID --months 1|2 --reason TEXT
                                                move the due date (Art. 12(3))
  erasure certificate REQUEST_ID --out FILE     the signed certificate (FILE, FILE.sig)
  erasure export REQUEST_ID [--out FILE]        an access request's JSON document
  erasure key [--out FILE]                      the public key certificates verify with
  erasure verify FILE [--key PEM_FILE]          check FILE.sig offline (exit 1: not valid)
  erasure reapply --since TIME                  after a database restore

Services: identity contacts consent audit mailing erasure (gRPC), gateway (HTTPS).

Flags (anywhere on the line; --flag value or --flag=value):
  --cert FILE        operator certificate (default $CRM_PKI_DIR/operator.crt,
                     else <repo>/.run/pki/operator.crt)
  --key FILE         its private key (default .../operator.key); for 'erasure
                     verify' the public key to verify with instead
  --ca FILE          CA bundle the servers must chain to (default .../ca.crt)
  --<service> H:P    address of a service, e.g. --audit=10.0.0.5:50054; also
                     $CRMCTL_<SERVICE>_ADDR; default 127.0.0.1:<development port>
  --addr H:P         talk to this address instead of a named service
  --server-identity ID
                     expected server identity, spiffe://crm.local/<name> or
                     <name> (default: the named service's; with --addr and no
                     service, the host name is checked instead)
  --header K=V       request metadata, repeatable (e.g. "authorization=Bearer ...")
  --timeout D        deadline of each call, e.g. 5s, 500ms (default 10s)
  --json             identity, contacts, consent, mailing and erasure commands:
                     print the JSON response
  --password-stdin   read passwords as lines of stdin
  -h, --help         help

Calls (also 'call') carry "authorization: Bearer <token>" of the session of
'crmctl login' unless --header authorization=... is given.

Exit codes: 0 success, 1 an RPC failed or a service is not serving, 2 usage error.
)";

constexpr char kHealthUsage[] = R"(crmctl health [service...] [flags]

Calls grpc.health.v1.Health/Check on each gRPC service (GET /healthz on the
HTTPS gateway) with the operator certificate and prints
  SERVICE  ADDRESS  STATUS  LATENCY  [DETAIL]
Exit 0 only if every one is SERVING, 1 otherwise. Without services: all of them.
With --addr H:P: that address only (identity from --server-identity).
Other flags: --cert --key --ca --<service> --timeout (see crmctl --help).
)";

constexpr char kCallUsage[] = R"(crmctl call <service> <Method> <json|-> [flags]
crmctl call --addr H:P [--server-identity ID] [<service>] <Method> <json|->

Calls a unary method with a JSON request (proto3 JSON mapping; '-' reads it
from stdin) and prints the response as JSON with the proto field names.
<Method> is pkg.Service/Method, Service/Method or just Method (looked up in
crm.<service>.v1 first). Errors of the call are printed as
  ERROR <CODE>: <message>
on stderr with exit 1; a bad method name or bad JSON exits 2.
Flags: --header K=V (repeatable), --timeout D, --cert --key --ca,
--<service> H:P, --addr, --server-identity (see crmctl --help).

Example:
  crmctl call audit AuditIngest/AppendEvents - < events.json
  crmctl call --addr 127.0.0.1:7000 --server-identity spiffe://crm.local/echo \
      crm.testing.v1.Echo/Echo '{"message": "hi"}'
)";

constexpr char kListUsage[] = R"(crmctl list [service]

Prints the services and methods compiled into crmctl (every proto of the
repository). [service] is a service name (audit: package crm.audit.v1), a
simple (Echo) or full (crm.testing.v1.Echo) service name.
)";

std::string JoinServiceNames() {
  std::vector<std::string> names;
  for (const ServiceInfo& s : KnownServices()) names.push_back(s.name);
  return absl::StrJoin(names, ", ");
}

int UsageError(std::ostream& err, absl::string_view message, absl::string_view command) {
  err << "crmctl: " << message << "\n";
  err << "Run 'crmctl " << (command.empty() ? "" : absl::StrCat("help ", command))
      << (command.empty() ? "--help" : "") << "' for usage.\n";
  return kExitUsage;
}

// Unusable certificate files: usually the development PKI is missing.
int TlsError(std::ostream& err, const absl::Status& status) {
  err << "crmctl: " << status.message() << "\n"
      << "The operator certificate comes from --cert/--key/--ca, else $CRM_PKI_DIR, else\n"
      << "<repo>/.run/pki (made by tools/dev up).\n";
  return kExitUsage;
}

std::string PieceToString(google::protobuf::StringPiece piece) {
  return std::string(piece.data(), piece.size());
}

rpc::TlsFiles TlsOf(const Options& options) {
  rpc::TlsFiles tls;
  tls.cert_file = options.cert_file;
  tls.key_file = options.key_file;
  tls.ca_file = options.ca_file;
  return tls;
}

std::string FormatLatency(absl::Duration d) {
  if (d == absl::ZeroDuration()) return "-";
  return absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d));
}

int Health(const Options& options, std::ostream& out, std::ostream& err) {
  struct Row {
    std::string name;
    std::string address;
    std::string identity;
    bool https = false;
    HealthResult result;
  };
  std::vector<Row> rows;
  if (!options.addr.empty()) {
    if (options.args.size() > 1)
      return UsageError(err, "health --addr takes no services", "health");
    const ServiceInfo* info = options.args.empty() ? nullptr : FindService(options.args[0]);
    if (!options.args.empty() && info == nullptr) {
      return UsageError(err,
                        absl::StrCat("unknown service \"", options.args[0],
                                     "\"; known services: ", JoinServiceNames()),
                        "health");
    }
    rows.push_back({.name = info != nullptr ? info->name : "-",
                    .address = options.addr,
                    .identity = !options.server_identity.empty() ? options.server_identity
                                : info != nullptr                ? info->name
                                                                 : "",
                    .https = info != nullptr && info->https});
  } else {
    std::vector<std::string> names = options.args;
    if (names.empty()) {
      for (const ServiceInfo& s : KnownServices()) names.push_back(s.name);
    }
    for (const std::string& name : names) {
      const ServiceInfo* info = FindService(name);
      if (info == nullptr) {
        return UsageError(
            err,
            absl::StrCat("unknown service \"", name, "\"; known services: ", JoinServiceNames()),
            "health");
      }
      rows.push_back({.name = name,
                      .address = options.addresses.at(name),
                      .identity = options.server_identity.empty() ? name : options.server_identity,
                      .https = info->https});
    }
  }
  const rpc::TlsFiles tls = TlsOf(options);
  if (absl::Status s = rpc::CheckTlsFiles(tls, "--"); !s.ok()) return TlsError(err, s);

  std::vector<std::thread> threads;
  for (Row& row : rows) {
    threads.emplace_back([&row, &tls, &options] {
      if (row.https) {
        row.result = CheckHttpsHealth(row.address, tls, row.identity, options.timeout);
      } else {
        rpc::ChannelConfig config;
        config.target = row.address;
        config.tls = tls;
        config.expected_server = row.identity;
        row.result = CheckGrpcHealth(config, options.timeout);
      }
    });
  }
  for (std::thread& t : threads) t.join();

  std::vector<std::vector<std::string>> table = {{"SERVICE", "ADDRESS", "STATUS", "LATENCY"}};
  bool all_serving = true;
  for (const Row& row : rows) {
    all_serving = all_serving && row.result.serving;
    std::vector<std::string> line = {row.name, row.address, row.result.status,
                                     FormatLatency(row.result.latency)};
    if (!row.result.detail.empty()) line.push_back(row.result.detail);
    table.push_back(std::move(line));
  }
  std::vector<size_t> widths(4, 0);
  for (const auto& line : table) {
    for (size_t i = 0; i < 4; ++i) widths[i] = std::max(widths[i], line[i].size());
  }
  for (const auto& line : table) {
    std::string text;
    for (size_t i = 0; i < line.size(); ++i) {
      if (i > 0) text += "  ";
      text += line[i];
      if (i < 3 && i + 1 < line.size()) text.append(widths[i] - line[i].size(), ' ');
    }
    out << text << "\n";
  }
  return all_serving ? kExitOk : kExitFailure;
}

int Call(const Options& options, const std::map<std::string, std::string>& env, std::istream& in,
         std::ostream& out, std::ostream& err) {
  std::string service;
  std::string method_name;
  std::string json;
  if (!options.addr.empty() && options.args.size() == 2) {
    method_name = options.args[0];
    json = options.args[1];
  } else if (options.args.size() == 3) {
    service = options.args[0];
    method_name = options.args[1];
    json = options.args[2];
  } else {
    return UsageError(err,
                      options.addr.empty() ? "call needs <service> <Method> <json>"
                                           : "call --addr needs [<service>] <Method> <json>",
                      "call");
  }
  const ServiceInfo* info = service.empty() ? nullptr : FindService(service);
  if (options.addr.empty() && info == nullptr) {
    return UsageError(err,
                      absl::StrCat("unknown service \"", service, "\"; known services: ",
                                   JoinServiceNames(), " (or use --addr host:port)"),
                      "call");
  }
  if (info != nullptr && info->https) {
    return UsageError(err, "the gateway speaks HTTPS, not gRPC; call the service behind it",
                      "call");
  }
  if (json == "-") {
    json.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  absl::StatusOr<std::unique_ptr<ProtoRegistry>> registry = ProtoRegistry::Embedded();
  if (!registry.ok()) {
    err << "crmctl: " << registry.status().message() << "\n";
    return kExitFailure;
  }
  absl::StatusOr<const google::protobuf::MethodDescriptor*> method =
      (*registry)->FindMethod(method_name, service);
  if (!method.ok()) return UsageError(err, method.status().message(), "call");

  std::unique_ptr<google::protobuf::Message> request =
      (*registry)->NewMessage((*method)->input_type());
  google::protobuf::util::JsonParseOptions parse_options;
  parse_options.ignore_unknown_fields = false;
  google::protobuf::util::Status parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), request.get(), parse_options);
  if (!parsed.ok()) {
    return UsageError(
        err,
        absl::StrCat("invalid JSON request for ", (*method)->input_type()->full_name(), ": ",
                     PieceToString(parsed.message())),
        "call");
  }

  rpc::ChannelConfig config;
  config.target = options.addr.empty() ? options.addresses.at(service) : options.addr;
  config.tls = TlsOf(options);
  config.expected_server = options.server_identity.empty() ? service : options.server_identity;
  if (absl::Status s = rpc::CheckTlsFiles(config.tls, "--"); !s.ok()) return TlsError(err, s);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
  if (!channel.ok()) return UsageError(err, channel.status().message(), "call");

  // RefreshSession goes to the identity service: the --addr server when
  // that is what is called.
  absl::StatusOr<std::unique_ptr<SessionCaller>> caller =
      NewSessionCaller(options, env,
                       IdentityChannelConfig(options,
                                             /*use_addr=*/(*method)->service()->file()->package() ==
                                                 "crm.identity.v1"),
                       **registry);
  if (!caller.ok()) return UsageError(err, caller.status().message(), "call");
  const std::string full_method =
      absl::StrCat("/", (*method)->service()->full_name(), "/", (*method)->name());
  std::string reply;
  grpc::Status status =
      (*caller)->Call(*channel, full_method, request->SerializeAsString(), &reply);
  if (!status.ok()) {
    err << "ERROR " << CodeName(status.error_code()) << ": " << status.error_message() << "\n";
    if (std::string hint = (*caller)->Hint(status); !hint.empty()) {
      err << "crmctl: " << hint << "\n";
    }
    return kExitFailure;
  }
  std::unique_ptr<google::protobuf::Message> response =
      (*registry)->NewMessage((*method)->output_type());
  if (!response->ParseFromString(reply)) {
    err << "ERROR INTERNAL: the response is not a " << (*method)->output_type()->full_name()
        << "\n";
    return kExitFailure;
  }
  absl::StatusOr<std::string> text = ToJson(*response);
  if (!text.ok()) {
    err << "ERROR INTERNAL: " << text.status().message() << "\n";
    return kExitFailure;
  }
  out << *text;
  return kExitOk;
}

int List(const Options& options, std::ostream& out, std::ostream& err) {
  if (options.args.size() > 1) return UsageError(err, "list takes at most one service", "list");
  absl::StatusOr<std::unique_ptr<ProtoRegistry>> registry = ProtoRegistry::Embedded();
  if (!registry.ok()) {
    err << "crmctl: " << registry.status().message() << "\n";
    return kExitFailure;
  }
  const std::string filter = options.args.empty() ? "" : options.args[0];
  std::vector<const google::protobuf::ServiceDescriptor*> services =
      (*registry)->ServicesMatching(filter);
  if (services.empty()) {
    std::vector<std::string> all;
    for (const auto* s : (*registry)->Services()) all.push_back(s->full_name());
    return UsageError(err,
                      absl::StrCat("no service matches \"", filter,
                                   "\"; known services: ", absl::StrJoin(all, ", ")),
                      "list");
  }
  for (const google::protobuf::ServiceDescriptor* s : services) {
    out << s->full_name() << "\n";
    for (int i = 0; i < s->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* m = s->method(i);
      out << "  " << m->name() << "(" << (m->client_streaming() ? "stream " : "")
          << m->input_type()->full_name() << ") returns ("
          << (m->server_streaming() ? "stream " : "") << m->output_type()->full_name() << ")\n";
    }
  }
  return kExitOk;
}

}  // namespace

std::string Usage(const std::string& command) {
  if (command == "health") return kHealthUsage;
  if (command == "call") return kCallUsage;
  if (command == "list") return kListUsage;
  if (std::string group = CommandGroupUsage(command); !group.empty()) return group;
  return kGeneralUsage;
}

int Run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
        const std::string& repo_root, std::istream& in, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Options> options = ParseOptions(args, env, repo_root);
  if (!options.ok()) return UsageError(err, options.status().message(), "");
  const std::string& command = options->command;
  if (command == "help") {
    const std::string topic = options->args.empty() ? "" : options->args[0];
    if (!topic.empty() && Usage(topic) == kGeneralUsage) {
      return UsageError(err, absl::StrCat("unknown command \"", topic, "\""), "");
    }
    out << Usage(topic);
    return kExitOk;
  }
  if (options->help) {
    if (!command.empty() && Usage(command) == kGeneralUsage) {
      return UsageError(err, absl::StrCat("unknown command \"", command, "\""), "");
    }
    out << Usage(command);
    return kExitOk;
  }
  if (command.empty()) {
    err << Usage("");
    return kExitUsage;
  }
  if (!options->command_flags.empty() && FindCommandTable(command) == nullptr) {
    return UsageError(
        err, absl::StrCat("--", options->command_flags[0].first, ": not a flag of ", command),
        command);
  }
  if (command == "health") return Health(*options, out, err);
  if (command == "call") return Call(*options, env, in, out, err);
  if (command == "list") return List(*options, out, err);
  if (FindCommandTable(command) != nullptr) return RunTableCommand(*options, env, in, out, err);
  return UsageError(err,
                    absl::StrCat("unknown command \"", command,
                                 "\" (health, call, list, login, logout, passwd, user, role, "
                                 "grant, team, totp, service-account, keys, person, company, "
                                 "history, invoice, retention, catalogue, purpose, notice, "
                                 "consent, mailing, erasure, help)"),
                    "");
}

}  // namespace crm::crmctl
