// crmctl, the operator's command-line client, as a function of its
// arguments, environment and standard streams (main.cc only forwards), so
// its behaviour is the same in tests and in the binary:
//
//   crmctl health [service...]                 health of every (or the named) service
//   crmctl call <service> <Method> '<json>'|-  a unary call with a JSON request
//   crmctl list [service]                      the services and methods crmctl knows
//   crmctl login|logout|passwd|user|role|grant|team|totp|service-account|keys ...
//                                              identity administration
//                                              (identity_commands.h)
//   crmctl person ...|catalogue                 contacts (contacts_commands.h)
//   crmctl purpose|notice|consent ...          consent (consent_commands.h)
//   crmctl mailing ...                         mailing (mailing_commands.h)
//   crmctl erasure ...                         erasure (erasure_commands.h)
//
// See Usage() and docs/crmctl.md for the flags.
//
// Thread-safety: Run may be called from one thread at a time.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

namespace crm::crmctl {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // An RPC failed or a service is not serving.
inline constexpr int kExitUsage = 2;    // Bad flags, arguments, JSON or method name.

// Runs one crmctl command. `args` is argv without the program name; `env` the
// environment; `repo_root` where the development PKI (.run/pki) is looked
// for. Results go to `out`, errors and prompts to `err`. Passwords are
// prompted for without echo when `in` is std::cin and a terminal, else read
// as lines of `in`. Returns the exit code.
int Run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
        const std::string& repo_root, std::istream& in, std::ostream& out, std::ostream& err);

// The help text of `command` ("" for the general help).
std::string Usage(const std::string& command);

}  // namespace crm::crmctl
