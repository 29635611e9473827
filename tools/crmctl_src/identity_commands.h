// The identity administration commands of crmctl: login, logout, passwd,
// user, role, grant, team, totp, service-account and keys. All but the
// first three are one table (identity_commands.cc) mapping command words,
// positional arguments and flags to the fields of a crm.identity.v1.Identity
// request, run by one generic implementation over dynamic messages: build
// the request, call with the operator's session (session.h), follow page
// tokens, print a table, the "field value" lines of one message, or the
// JSON response (--json). See docs/crmctl.md, "Identity administration".
//
// Thread-safety: like Run (crmctl.h), one call at a time.
#pragma once

#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/rpc/channel.h"
#include "tools/crmctl_src/options.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/session.h"

namespace crm::crmctl {

// Whether `command` (the first word) is an identity command.
bool IsIdentityCommand(absl::string_view command);

// For a flag of an identity command (name without "--"): whether it takes a
// value (true) or is a switch (false); nullopt if no command has it.
std::optional<bool> IdentityFlagTakesValue(absl::string_view flag);

// The help of the identity command group `command` ("user": every user
// command); empty if it is not one.
std::string IdentityUsage(absl::string_view command);

// Runs the identity command of `options`: exit 0 on success, 1 when the RPC
// fails ("ERROR <CODE>: <message>" on `err`, plus what to do when the
// session is missing or has ended), 2 for bad usage naming the argument.
int RunIdentityCommand(const Options& options, const std::map<std::string, std::string>& env,
                       std::istream& in, std::ostream& out, std::ostream& err);

// The channel settings of the identity service: --addr/--server-identity
// when `use_addr`, else the address of "identity" and its identity.
rpc::ChannelConfig IdentityChannelConfig(const Options& options, bool use_addr);

// A SessionCaller for `options` (headers, timeout) with the session file of
// `env`, renewing at the identity service of `identity` (over a channel
// without retries: a RefreshSession whose answer was lost must not be sent
// again, its token is spent). `load`: read the session file now (login does
// not: it replaces whatever is there). Errors of MakeChannel and LoadSession.
absl::StatusOr<std::unique_ptr<SessionCaller>> NewSessionCaller(
    const Options& options, const std::map<std::string, std::string>& env,
    rpc::ChannelConfig identity, const ProtoRegistry& registry, bool load = true);

// OK if every command of the table names an existing method of
// crm.identity.v1.Identity and existing request and response fields of the
// right shape; otherwise INTERNAL naming the command (a proto change broke
// the table). For tests.
absl::Status CheckIdentityCommands(const ProtoRegistry& registry);

}  // namespace crm::crmctl
