#include "tools/crmctl_src/identity_commands.h"

#include <algorithm>
#include <istream>
#include <ostream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tools/crmctl_src/client.h"
#include "tools/crmctl_src/crmctl.h"
#include "tools/crmctl_src/terminal.h"

namespace crm::crmctl {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

// ---- Special commands --------------------------------------------------------

int ReadPassword(Invocation& inv, const char* prompt, const char* what, std::string* password) {
  absl::StatusOr<std::string> line = ReadSecret(inv.in, inv.err, inv.terminal, prompt, what);
  if (!line.ok()) return TableUsageError(inv.err, line.status().message(), inv.Topic());
  *password = *std::move(line);
  return kContinue;
}

// A new password: on a terminal typed twice.
int ReadNewPassword(Invocation& inv, const char* prompt, const char* what, std::string* password) {
  if (int rc = ReadPassword(inv, prompt, what, password); rc != kContinue) return rc;
  if (!inv.terminal) return kContinue;
  std::string again;
  if (int rc = ReadPassword(inv, "Again: ", what, &again); rc != kContinue) return rc;
  if (again != *password) {
    return TableUsageError(inv.err, absl::StrCat(what, ": the two entries differ"), inv.Topic());
  }
  return kContinue;
}

int ReadInitialPassword(Invocation& inv) {
  std::string password;
  if (int rc =
          ReadNewPassword(inv, "Initial password of the new user: ", "initial password", &password);
      rc != kContinue) {
    return rc;
  }
  SetString(inv.request.get(), "initial_password", password);
  return kContinue;
}

// grant add --for D: not_after = (not_before or now) + D.
int GrantWindow(Invocation& inv) {
  auto it = inv.flags.find("for");
  if (it == inv.flags.end()) return kContinue;
  if (inv.flags.count("not-after") > 0) {
    return TableUsageError(inv.err, "--for: give either --for or --not-after", inv.Topic());
  }
  absl::Duration d;
  if (absl::Status s = ParseDurationArg(it->second[0], &d); !s.ok()) {
    return TableUsageError(inv.err, absl::StrCat("--for: ", s.message()), inv.Topic());
  }
  Message* request = inv.request.get();
  const Descriptor* desc = request->GetDescriptor();
  const FieldDescriptor* not_before = desc->FindFieldByName("not_before");
  const absl::Time start = request->GetReflection()->HasField(*request, not_before)
                               ? GetTime(request->GetReflection()->GetMessage(*request, not_before))
                               : absl::Now();
  SetTime(request->GetReflection()->MutableMessage(request, desc->FindFieldByName("not_after")),
          start + d);
  return kContinue;
}

// grant extend --by D: new_not_after = the grant's not_after + D.
int ExtendBy(Invocation& inv) {
  const bool until = inv.flags.count("until") > 0;
  auto by = inv.flags.find("by");
  if (until == (by != inv.flags.end())) {
    return TableUsageError(inv.err, "--until or --by: give one of them", inv.Topic());
  }
  if (until) return kContinue;
  absl::Duration d;
  if (absl::Status s = ParseDurationArg(by->second[0], &d); !s.ok()) {
    return TableUsageError(inv.err, absl::StrCat("--by: ", s.message()), inv.Topic());
  }
  // No GetGrant: the grant is looked up among all of them.
  const MethodDescriptor* list = inv.Method("ListGrants");
  if (list == nullptr) return TableUsageError(inv.err, "ListGrants is unknown", inv.Topic());
  std::unique_ptr<Message> request = inv.registry.NewMessage(list->input_type());
  request->GetReflection()->SetBool(
      request.get(), request->GetDescriptor()->FindFieldByName("include_inactive"), true);
  std::unique_ptr<Message> response = inv.registry.NewMessage(list->output_type());
  if (grpc::Status s = inv.Call(list, *request, response.get()); !s.ok())
    return TableRpcError(inv, s);
  const std::string grant_id = GetString(*inv.request, "grant_id");
  const FieldDescriptor* grants = response->GetDescriptor()->FindFieldByName("grants");
  for (int i = 0; i < response->GetReflection()->FieldSize(*response, grants); ++i) {
    const Message& grant = response->GetReflection()->GetRepeatedMessage(*response, grants, i);
    if (GetString(grant, "grant_id") != grant_id) continue;
    const FieldDescriptor* not_after = grant.GetDescriptor()->FindFieldByName("not_after");
    if (!grant.GetReflection()->HasField(grant, not_after)) {
      return TableRpcError(inv, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                             "the grant is open-ended: it has no end to move"));
    }
    Message* request_end = inv.request->GetReflection()->MutableMessage(
        inv.request.get(), inv.request->GetDescriptor()->FindFieldByName("new_not_after"));
    SetTime(request_end, GetTime(grant.GetReflection()->GetMessage(grant, not_after)) + d);
    return kContinue;
  }
  return TableRpcError(inv, grpc::Status(grpc::StatusCode::NOT_FOUND, "grant not found"));
}

int StoreTokens(Invocation& inv, const Message& tokens, const std::string& user_id) {
  Session session{.access_token = GetString(tokens, "access_token"),
                  .refresh_token = GetString(tokens, "refresh_token"),
                  .user_id = user_id};
  if (session.access_token.empty() || session.refresh_token.empty()) {
    return TableRpcError(inv,
                         grpc::Status(grpc::StatusCode::INTERNAL, "no tokens in the response"));
  }
  if (absl::Status s = SaveSession(inv.caller->session_path(), session); !s.ok()) {
    inv.err << "crmctl: " << s.message() << "\n";
    return kExitFailure;
  }
  return kContinue;
}

int RunLogin(Invocation& inv) {
  if (inv.caller->session_path().empty()) {
    return TableUsageError(inv.err, "nowhere to keep the session: set CRMCTL_SESSION_FILE or HOME",
                           inv.Topic());
  }
  std::string password;
  if (int rc = ReadPassword(inv, "Password: ", "password", &password); rc != kContinue) return rc;
  SetString(inv.request.get(), "password", password);
  // Login takes no token: it is how one gets one.
  std::string reply;
  grpc::Status status =
      UnaryCall(inv.channel, FullName(inv.method), inv.request->SerializeAsString(),
                inv.options.headers, inv.options.timeout, &reply);
  if (!status.ok()) {
    TableRpcError(inv, status);
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
        inv.flags.count("totp") == 0) {
      inv.err << "crmctl: add --totp CODE (a code of your authenticator app, or a recovery code)\n";
    }
    return kExitFailure;
  }
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (!response->ParseFromString(reply)) {
    return TableRpcError(inv, grpc::Status(grpc::StatusCode::INTERNAL, "malformed LoginResponse"));
  }
  const std::string user_id = GetString(*response, "user_id");
  if (int rc = StoreTokens(inv, GetMessage(*response, "tokens"), user_id); rc != kContinue) {
    return rc;
  }
  inv.out << "Logged in (user " << user_id << "); session stored in " << inv.caller->session_path()
          << "\n";
  if (GetBool(*response, "password_change_required")) {
    inv.out << "Your password must be changed first: run 'crmctl passwd'.\n";
  }
  if (GetBool(*response, "mfa_enrollment_required")) {
    inv.out << "A role of yours requires a second factor: run 'crmctl totp enroll', then "
               "'crmctl totp confirm CODE'.\n";
  }
  if (int32_t days = GetInt32(*response, "password_expires_in_days"); days > 0) {
    inv.out << "Your password expires in " << days << " day(s): 'crmctl passwd' changes it.\n";
  }
  return kExitOk;
}

bool ExplicitAuthorization(const Options& options) {
  return std::any_of(options.headers.begin(), options.headers.end(),
                     [](const auto& h) { return h.first == "authorization"; });
}

int RunPasswd(Invocation& inv) {
  if (!inv.caller->uses_session() && !ExplicitAuthorization(inv.options)) {
    inv.err << "crmctl: not logged in: run 'crmctl login <username>' first\n";
    return kExitFailure;
  }
  std::string current;
  std::string next;
  if (int rc = ReadPassword(inv, "Current password: ", "current password", &current);
      rc != kContinue) {
    return rc;
  }
  if (int rc = ReadNewPassword(inv, "New password: ", "new password", &next); rc != kContinue) {
    return rc;
  }
  SetString(inv.request.get(), "current_password", current);
  SetString(inv.request.get(), "new_password", next);
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  // No retry on UNAUTHENTICATED: that is also the answer to a wrong current
  // password, and each attempt counts towards the lockout.
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get(), false); !s.ok()) {
    return TableRpcError(inv, s);
  }
  if (inv.caller->uses_session()) {
    if (int rc = StoreTokens(inv, GetMessage(*response, "tokens"), inv.caller->session()->user_id);
        rc != kContinue) {
      return rc;
    }
  }
  inv.out << "Password changed; your other sessions have ended.\n";
  return kExitOk;
}

int RunLogout(Invocation& inv) {
  if (!inv.caller->uses_session() && !ExplicitAuthorization(inv.options)) {
    inv.out << "Not logged in.\n";
    return kExitOk;
  }
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  grpc::Status status = inv.Call(inv.method, *inv.request, response.get());
  // UNAUTHENTICATED: the session had ended already; the file is useless.
  // Any other error keeps it, so that logout can be tried again.
  if (!status.ok() && status.error_code() != grpc::StatusCode::UNAUTHENTICATED) {
    return TableRpcError(inv, status);
  }
  if (inv.caller->uses_session()) {
    if (absl::Status s = RemoveSession(inv.caller->session_path()); !s.ok()) {
      inv.err << "crmctl: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  inv.out << (status.ok() ? "Logged out.\n" : "The session had already ended.\n");
  return kExitOk;
}

// ---- The table ---------------------------------------------------------------

constexpr char kGrantColumns[] =
    "grant_id:ID user_id:USER role state not_before:FROM not_after:UNTIL justification";

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {.words = {"login"},
       .rpc = "Login",
       .args = {Positional("USERNAME", "username"), Flag("totp", "totp_code", "CODE")},
       .summary = "log in and keep the session for the next commands; the password is read "
                  "from the terminal (or a line of stdin, --password-stdin)",
       .run = RunLogin,
       .fresh_session = true},
      {.words = {"logout"},
       .rpc = "Logout",
       .summary = "end the session and delete the session file",
       .run = RunLogout},
      {.words = {"passwd"},
       .rpc = "ChangePassword",
       .summary = "change your password: current, then new (twice on a terminal; "
                  "--password-stdin: two lines)",
       .run = RunPasswd},

      {.words = {"user", "list"},
       .rpc = "ListUsers",
       .args = {Flag("status", "status", "active|disabled"),
                Flag("kind", "kind", "person|service-account"), Flag("role", "role", "ROLE"),
                Flag("team", "team_id", "TEAM_ID")},
       .summary = "users, oldest first",
       .show = "users",
       .columns = "user_id:ID username display_name:NAME email status kind "
                  "locked_until:LOCKED_UNTIL totp_enabled:MFA last_login_at:LAST_LOGIN"},
      {.words = {"user", "get"},
       .rpc = "GetUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "one user",
       .show = "user"},
      {.words = {"user", "create"},
       .rpc = "CreateUser",
       .args = {Positional("USERNAME", "username"), RequiredFlag("email", "email", "EMAIL"),
                RequiredFlag("name", "display_name", "\"DISPLAY NAME\""),
                Repeated("team", "team_ids", "TEAM_ID")},
       .summary = "create a person; the initial password is prompted for (twice) or read "
                  "from stdin (--password-stdin) and must be changed at first login",
       .show = "user",
       .prepare = ReadInitialPassword},
      {.words = {"user", "disable"},
       .rpc = "DisableUser",
       .args = {Positional("USER_ID", "user_id"), Flag("reason", "reason", "REASON")},
       .summary = "disable a user or service account and end its sessions",
       .show = "user"},
      {.words = {"user", "enable"},
       .rpc = "EnableUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "enable a disabled user again",
       .show = "user"},
      {.words = {"user", "delete"},
       .rpc = "DeleteUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "delete a user (its login history stays under the retention policy)",
       .done = "Deleted."},
      {.words = {"user", "unlock"},
       .rpc = "UnlockUser",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "clear a lockout and the failure counters",
       .show = "user"},
      {.words = {"user", "require-password-change"},
       .rpc = "RequirePasswordChange",
       .args = {Positional("USER_ID", "user_id")},
       .summary = "force a password change at the next login",
       .show = "user"},
      {.words = {"user", "sessions"},
       .rpc = "ListSessions",
       .args = {Positional("USER_ID", "user_id"), Switch("include-revoked", "include_revoked")},
       .summary = "a user's sessions, newest first",
       .show = "sessions",
       .columns = "session_id:SESSION created_at:CREATED last_used_at:LAST_USED "
                  "expires_at:EXPIRES revoked_at:REVOKED source_address:SOURCE current"},
      {.words = {"user", "revoke-sessions"},
       .rpc = "RevokeSession",
       .args = {Positional("USER_ID", "user_id"), OptionalPositional("SESSION_ID", "session_id")},
       .summary = "revoke one session of a user, or all of them"},
      {.words = {"user", "login-history"},
       .rpc = "ListLoginHistory",
       .args = {Positional("USER_ID", "user_id"), Flag("since", "range.start", "TIME"),
                Flag("until", "range.end", "TIME")},
       .summary = "login attempts of a user, newest first (TIME: 2026-11-01T00:00:00Z)",
       .show = "attempts",
       .columns = "at result source_address:SOURCE user_agent"},

      {.words = {"role", "list"},
       .rpc = "ListRoles",
       .summary = "built-in and custom roles",
       .show = "roles",
       .columns = "name built_in requires_mfa:MFA permissions description"},
      {.words = {"role", "create"},
       .rpc = "CreateRole",
       .args = {Positional("NAME", "name"),
                Repeated("permission", "permissions", "PERMISSION", /*required=*/true),
                Switch("require-mfa", "requires_mfa"), Flag("description", "description", "TEXT")},
       .summary = "create a custom role bundling permissions",
       .show = "role"},
      {.words = {"role", "require-mfa"},
       .rpc = "SetRoleRequiresMfa",
       .args = {Positional("ROLE", "role"), Positional("on|off", "requires_mfa")},
       .summary = "require a second factor of a role's holders, or stop requiring it",
       .show = "role"},

      {.words = {"grant", "add"},
       .rpc = "GrantRole",
       .args = {Positional("USER_ID", "user_id"), Positional("ROLE", "role"),
                RequiredFlag("justification", "justification", "TEXT"),
                Flag("not-before", "not_before", "TIME"), Flag("not-after", "not_after", "TIME"),
                Flag("for", nullptr, "DURATION")},
       .summary = "grant a role, optionally for a window; --for 8h ends it 8h after its start",
       .show = "grant",
       .prepare = GrantWindow},
      {.words = {"grant", "list"},
       .rpc = "ListGrants",
       .args = {OptionalPositional("USER_ID", "user_id"), Switch("all", "include_inactive")},
       .summary = "grants in force, of everyone or one user; --all: also pending, ended and "
                  "revoked ones",
       .show = "grants",
       .columns = kGrantColumns},
      {.words = {"grant", "revoke"},
       .rpc = "RevokeGrant",
       .args = {Positional("GRANT_ID", "grant_id"), Flag("reason", "reason", "REASON")},
       .summary = "revoke a grant now",
       .show = "grant"},
      {.words = {"grant", "extend"},
       .rpc = "ExtendGrant",
       .args = {Positional("GRANT_ID", "grant_id"),
                RequiredFlag("justification", "justification", "TEXT"),
                Flag("until", "new_not_after", "TIME"), Flag("by", nullptr, "DURATION")},
       .summary = "move the end of a grant to --until TIME, or --by DURATION later",
       .show = "grant",
       .prepare = ExtendBy},
      {.words = {"grant", "expiring"},
       .rpc = "ListExpiringGrants",
       .args = {{Arg::kFlag, "within", "within", "DURATION", false, "7d"}},
       .summary = "grants in force that end within DURATION (default 7d), soonest first",
       .show = "grants",
       .columns = kGrantColumns},

      {.words = {"team", "create"},
       .rpc = "CreateTeam",
       .args = {Positional("NAME", "name"), Flag("description", "description", "TEXT")},
       .summary = "create a team",
       .show = "team"},
      {.words = {"team", "list"},
       .rpc = "ListTeams",
       .args = {Flag("member", "member_id", "USER_ID")},
       .summary = "teams by name (--member: those of a user)",
       .show = "teams",
       .columns = "team_id:ID name member_count:MEMBERS description"},
      {.words = {"team", "add-member"},
       .rpc = "AddTeamMember",
       .args = {Positional("TEAM_ID", "team_id"), Positional("USER_ID", "user_id")},
       .summary = "add a user to a team",
       .done = "Added."},
      {.words = {"team", "remove-member"},
       .rpc = "RemoveTeamMember",
       .args = {Positional("TEAM_ID", "team_id"), Positional("USER_ID", "user_id")},
       .summary = "remove a user from a team",
       .done = "Removed."},

      {.words = {"totp", "enroll"},
       .rpc = "EnrollTotp",
       .summary = "start TOTP enrolment: prints the otpauth URI and the secret",
       .note = "Add it to an authenticator app, then run 'crmctl totp confirm CODE'."},
      {.words = {"totp", "confirm"},
       .rpc = "ConfirmTotp",
       .args = {Positional("CODE", "code")},
       .summary = "activate TOTP with a current code; prints the recovery codes",
       .show = "recovery_codes",
       .note = "These recovery codes are shown only now: store them safely."},
      {.words = {"totp", "disable"},
       .rpc = "DisableTotp",
       .args = {Flag("user", "user_id", "USER_ID"), Flag("code", "code", "CODE")},
       .summary = "turn TOTP off: your own with --code (TOTP or recovery code), or another "
                  "user's with --user",
       .done = "TOTP disabled."},

      {.words = {"service-account", "create"},
       .rpc = "CreateServiceAccount",
       .args = {Positional("NAME", "name"),
                RequiredFlag("spiffe-id", "spiffe_id", "spiffe://crm.local/NAME"),
                Flag("name", "display_name", "\"DISPLAY NAME\"")},
       .summary = "create a service account bound to a certificate identity",
       .show = "account"},
      {.words = {"keys"},
       .rpc = "GetSigningKeys",
       .summary = "the keys access tokens are verified with",
       .show = "keys",
       .columns = "kid algorithm created_at:CREATED retired_at:RETIRED"},
  };
  return *commands;
}

}  // namespace

const CommandTable& IdentityCommandTable() {
  static const auto* table = new CommandTable{
      .service = "crm.identity.v1.Identity",
      .service_name = "identity",
      .commands = &Commands(),
      .usage_title = "Identity administration",
      .usage_footer =
          "Calls carry the session of 'crmctl login' (renewed when it expires), unless\n"
          "--header authorization=... is given. Output: a table or \"field value\" lines;\n"
          "--json prints the response as JSON. Lists are fetched page by page, all pages.\n"
          "Other flags: --identity H:P (or --addr/--server-identity), --timeout, --cert --key "
          "--ca\n"
          "(see crmctl --help). Session file: $CRMCTL_SESSION_FILE, else\n"
          "$XDG_CONFIG_HOME/crmctl/session, else ~/.config/crmctl/session.\n"};
  return *table;
}

absl::Status CheckIdentityCommands(const ProtoRegistry& registry) {
  return CheckCommandTable(registry, IdentityCommandTable());
}

}  // namespace crm::crmctl
