// Authorization on the whole suite as processes (issue 12): every RPC that
// takes an access token, called by a user of each built-in role (and by one
// with no role at all), answers as the policy table below says; and the
// record-level rules of contacts (own vs other persons, sensitive fields)
// hold for each role.
//
// The policy is declared here from the contracts' "Permission: ..." comments
// and docs/*.md (contacts.md "Access", mailing.md, audit.md, erasure.md,
// consent.md, the role list of permissions.h's header), never read from the
// services' code, so that a service that grants too much or too little fails
// this test instead of agreeing with itself. The table must name every token
// RPC the descriptors list (served_rpcs.h): a new RPC fails until declared.
//
// What the matrix can tell: PERMISSION_DENIED exactly where the table
// forbids the call; where it allows it, anything but PERMISSION_DENIED and
// UNAUTHENTICATED (a minimal request may well be INVALID_ARGUMENT or
// NOT_FOUND). Requests name real objects where a handler validates them
// before it authorizes (kRequests).
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/base/status_macros.h"
#include "libs/rpc/channel.h"
#include "libs/testing/grpc_call.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/unary_call.h"
#include "tests/security/served_rpcs.h"
#include "tests/system/stack.h"

namespace crm::security_test {
namespace {

using ::crm::system_test::Stack;
using ::crm::testing::RawUnaryCall;
using ::crm::testing::UnaryCall;
using ::testing::IsEmpty;
using Code = ::grpc::StatusCode;
namespace idv1 = ::crm::identity::v1;
namespace ctv1 = ::crm::contacts::v1;

// ---- The declared policy ------------------------------------------------------

// The built-in roles, as permissions.h's header and docs/identity.md list them.
const std::map<std::string, std::set<std::string>>& RolePermissions() {
  static const auto* table = new std::map<std::string, std::set<std::string>>{
      {"admin",
       {"contacts.read", "contacts.read.all", "contacts.read.sensitive", "contacts.write",
        "consent.read", "consent.write", "consent.check", "consent.admin", "mailing.send",
        "mailing.manage", "audit.read", "dsr.manage", "identity.admin"}},
      {"dpo",
       {"audit.read", "dsr.manage", "contacts.read", "contacts.read.all", "contacts.read.sensitive",
        "consent.read"}},
      {"sales", {"contacts.read", "contacts.write", "consent.read", "mailing.send"}},
      // consent.check: docs/consent.md ("The built-in marketing role holds
      // consent.check").
      {"marketing",
       {"contacts.read", "consent.read", "consent.check", "mailing.send", "mailing.manage"}},
      {"support", {"contacts.read", "contacts.write", "consent.read", "consent.write"}},
      {"auditor", {"audit.read", "contacts.read", "contacts.read.all"}},
      // A user holding no role: only what any authenticated user may do.
      {"none", {}},
  };
  return *table;
}

// One way of calling a method and who may make that call.
struct Case {
  // Permissions of which any one allows the call; empty with `self`: any
  // authenticated user (acting on themselves).
  std::vector<std::string> any_of;
  bool self = false;
  // The request as JSON (proto3 mapping). $SELF is the caller's user id,
  // $OTHER another user's (the bootstrap admin), $VICTIM a throwaway user,
  // $PASSWORD the caller's password, $SUBJECT a person visible to every
  // role user (assigned to their team), $UUID an id of nothing.
  std::string request = "{}";
  // What this case is, when a method has several.
  std::string label;
};

Case Needs(std::vector<std::string> any_of, std::string request = "{}", std::string label = "") {
  return {std::move(any_of), false, std::move(request), std::move(label)};
}
Case Self(std::string request = "{}", std::string label = "self") {
  return {{}, true, std::move(request), std::move(label)};
}

constexpr char kIdentityAdmin[] = "identity.admin";

// Every token RPC and its cases. Sources: identity.proto, contacts.proto and
// docs/contacts.md "Access" (the reads without a Permission line need
// contacts.read, the file's Authorization paragraph; record-level rules are
// tested by OwnAndOtherPersons), consent.proto, audit.proto's Authorization
// paragraph and docs/audit.md, mailing.proto and docs/mailing.md
// ("mailing.manage (lists, templates, campaigns), mailing.send (subscribe,
// transactional mail)"), erasure.proto.
const std::map<std::string, std::vector<Case>>& Policy() {
  static const auto* table = [] {
    auto* t = new std::map<std::string, std::vector<Case>>;
    auto add = [t](const std::string& service, const std::string& method, std::vector<Case> c) {
      (*t)[absl::StrCat("/", service, "/", method)] = std::move(c);
    };
    const std::string id = "crm.identity.v1.Identity";
    const std::vector<std::string> admin = {kIdentityAdmin};
    add(id, "CreateUser", {Needs(admin)});
    add(id, "GetUser",
        {Self(R"({"userId":"$SELF"})"), Needs(admin, R"({"userId":"$OTHER"})", "other")});
    add(id, "ListUsers", {Needs(admin)});
    add(id, "DisableUser", {Needs(admin, R"({"userId":"$VICTIM"})")});
    add(id, "EnableUser", {Needs(admin, R"({"userId":"$VICTIM"})")});
    add(id, "DeleteUser", {Needs(admin, R"({"userId":"$VICTIM"})")});
    // Called with a session of its own (it ends the session).
    add(id, "Logout", {Self()});
    add(id, "ListSessions",
        {Self(R"({"userId":"$SELF"})"), Needs(admin, R"({"userId":"$OTHER"})", "other")});
    // A session id that is no live session: revokes nothing.
    add(id, "RevokeSession",
        {Self(R"({"userId":"$SELF","sessionId":"$UUID"})"),
         Needs(admin, R"({"userId":"$OTHER","sessionId":"$UUID"})", "other")});
    add(id, "ListLoginHistory", {Needs({kIdentityAdmin, "audit.read"}, R"({"userId":"$OTHER"})")});
    // The right password and a new one the policy refuses: changes nothing.
    add(id, "ChangePassword", {Self(R"({"currentPassword":"$PASSWORD","newPassword":"short"})")});
    add(id, "RequirePasswordChange", {Needs(admin, R"({"userId":"$VICTIM"})")});
    add(id, "UnlockUser", {Needs(admin, R"({"userId":"$VICTIM"})")});
    add(id, "ListRoles", {Needs(admin)});
    add(id, "CreateRole", {Needs(admin)});
    // An unknown role: never flips a real role's flag.
    add(id, "SetRoleRequiresMfa", {Needs(admin, R"({"role":"no-such-role"})")});
    add(id, "GrantRole", {Needs(admin)});
    add(id, "RevokeGrant", {Needs(admin)});
    add(id, "ExtendGrant", {Needs(admin)});
    add(id, "ListGrants",
        {Self(R"({"userId":"$SELF"})"), Needs(admin, R"({"userId":"$OTHER"})", "other")});
    add(id, "ListExpiringGrants", {Needs(admin, R"({"within":"86400s"})")});
    add(id, "EnrollTotp", {Self()});
    add(id, "ConfirmTotp", {Self(R"({"code":"000000"})")});
    add(id, "DisableTotp",
        {Self(R"({"code":"000000"})"), Needs(admin, R"({"userId":"$VICTIM"})", "other")});
    add(id, "CreateServiceAccount", {Needs(admin)});
    add(id, "CreateTeam", {Needs(admin)});
    add(id, "ListTeams",
        {Self(R"({"memberId":"$SELF"})"), Needs(admin, R"({"memberId":"$OTHER"})", "other")});
    add(id, "AddTeamMember", {Needs(admin)});
    add(id, "RemoveTeamMember", {Needs(admin)});

    const std::string ct = "crm.contacts.v1.Contacts";
    const std::vector<std::string> read = {"contacts.read"}, write = {"contacts.write"};
    add(ct, "CreatePerson", {Needs(write)});
    add(ct, "GetPerson", {Needs(read, R"({"subjectId":"$SUBJECT"})")});
    // Writes name an unknown person here: allowed, they are NOT_FOUND and
    // change nothing (an empty assignment would unassign $SUBJECT). The
    // own/other test writes to real persons.
    add(ct, "UpdatePerson", {Needs(write, R"({"subjectId":"$UUID"})")});
    add(ct, "ListPersons", {Needs(read)});
    add(ct, "LookupPersons", {Needs(read)});
    add(ct, "SetRestriction", {Needs(write, R"({"subjectId":"$UUID"})")});
    add(ct, "AssignPerson", {Needs(write, R"({"subjectId":"$UUID"})")});
    add(ct, "ImportPersons", {Needs(write)});
    add(ct, "CreateCompany", {Needs(write)});
    add(ct, "GetCompany", {Needs(read, R"({"companyId":"$UUID"})")});
    add(ct, "UpdateCompany", {Needs(write, R"({"companyId":"$UUID"})")});
    add(ct, "ListCompanies", {Needs(read)});
    add(ct, "RecordInvoice", {Needs(write)});
    add(ct, "ListInvoices", {Needs(read, R"({"subjectId":"$SUBJECT"})")});
    add(ct, "AddInteraction", {Needs(write, R"({"interaction":{"subjectId":"$UUID"}})")});
    add(ct, "ListInteractions", {Needs(read, R"({"subjectId":"$SUBJECT"})")});
    add(ct, "GetFieldCatalogue", {Needs(read)});
    add(ct, "ListRetentionDue", {Needs({"contacts.read.all"})});

    const std::string cs = "crm.consent.v1.Consent";
    for (const char* m : {"ListPurposes", "ListReconsent"}) add(cs, m, {Needs({"consent.read"})});
    for (const char* m : {"GetHistory", "GetReceipt"}) {
      add(cs, m, {Needs({"consent.read"}, R"({"subjectId":"$SUBJECT"})")});
    }
    for (const char* m : {"DefinePurpose", "PublishNotice"}) add(cs, m, {Needs({"consent.admin"})});
    for (const char* m : {"Grant", "Withdraw", "Object", "SetRestriction"}) {
      add(cs, m, {Needs({"consent.write"})});
    }
    for (const char* m : {"Check", "BatchCheck", "CheckSuppression"}) {
      add(cs, m, {Needs({"consent.check"})});
    }

    for (const char* m :
         {"QueryEvents", "LoginReport", "EditReport", "SubjectReport", "VerifyLog"}) {
      add("crm.audit.v1.Audit", m, {Needs({"audit.read"})});
    }

    const std::string ml = "crm.mailing.v1.Mailing";
    for (const char* m : {"CreateList", "ListLists", "ListSubscriptions", "PutTemplate",
                          "GetTemplate", "CreateCampaign", "ScheduleCampaign", "PauseCampaign",
                          "ResumeCampaign", "CancelCampaign", "GetCampaign"}) {
      add(ml, m, {Needs({"mailing.manage"})});
    }
    for (const char* m : {"Subscribe", "SendTransactional"}) add(ml, m, {Needs({"mailing.send"})});

    for (const char* m :
         {"SubmitErasure", "GetErasure", "ListErasures", "CancelErasure", "ExtendErasure",
          "GetCertificate", "ReapplyErasures", "SubmitAccess", "GetAccessExport"}) {
      add("crm.erasure.v1.Erasure", m, {Needs({"dsr.manage"})});
    }
    return t;
  }();
  return *table;
}

bool Allowed(const Case& c, const std::set<std::string>& held) {
  if (c.self && c.any_of.empty()) return true;
  return std::any_of(c.any_of.begin(), c.any_of.end(),
                     [&](const std::string& p) { return held.contains(p); });
}

// The request bytes of `json` for `method` ("/pkg.Service/Method").
absl::StatusOr<std::string> RequestBytes(const std::string& method, const std::string& json) {
  std::string full = method.substr(1);
  std::replace(full.begin(), full.end(), '/', '.');
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full);
  if (m == nullptr) return absl::NotFoundError(absl::StrCat("no descriptor for ", method));
  std::unique_ptr<google::protobuf::Message> message(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(m->input_type())->New());
  const auto status = google::protobuf::util::JsonStringToMessage(json, message.get());
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(method, ": ", status.ToString()));
  }
  return message->SerializeAsString();
}

// ---- TOTP (RFC 6238: HMAC-SHA1, 30 s, 6 digits) ---------------------------------

std::optional<std::string> Base32Decode(absl::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char ch : text) {
    if (ch == '=') break;
    const char c = absl::ascii_toupper(ch);
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= '2' && c <= '7') {
      v = c - '2' + 26;
    } else {
      return std::nullopt;
    }
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string TotpCode(const std::string& key, int64_t step) {
  unsigned char counter[8];
  for (int i = 7; i >= 0; --i, step >>= 8) counter[i] = static_cast<unsigned char>(step & 0xff);
  unsigned char mac[20];
  unsigned int len = sizeof(mac);
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), counter, sizeof(counter), mac, &len);
  const int offset = mac[19] & 0x0f;
  const uint32_t binary = (static_cast<uint32_t>(mac[offset] & 0x7f) << 24) |
                          (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                          (static_cast<uint32_t>(mac[offset + 2]) << 8) | mac[offset + 3];
  std::string code = absl::StrCat(binary % 1000000);
  return std::string(6 - code.size(), '0') + code;
}

// ---- The fixture ----------------------------------------------------------------

// A user of one role, logged in.
struct RoleUser {
  std::string role;
  std::string user_id;
  std::string password;
  std::string token;         // for every call but Logout
  std::string logout_token;  // a second session, for Logout
  bool enrolled_totp = false;
  std::vector<std::string> recovery_codes;  // once enrolled
};

class AuthorizationMatrixTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<Stack>> st = Stack::Create({});
    ASSERT_TRUE(st.ok()) << st.status();
    stack_ = st->release();
    const absl::Status s = SetUpUsersAndPersons();
    ASSERT_TRUE(s.ok()) << s;
    ready_ = true;
  }
  static void TearDownTestSuite() {
    if (stack_ != nullptr) {
      EXPECT_THAT(stack_->Shutdown(), ::crm::testing::IsOk());
    }
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(ready_) << "the stack or its users did not start"; }

  static Stack& st() { return *stack_; }

  static std::shared_ptr<grpc::Channel> Channel(const std::string& process) {
    auto it = channels_->find(process);
    if (it != channels_->end()) return it->second;
    rpc::ChannelConfig config;
    config.target = st().Addr(process);
    config.tls = st().pki->Files("operator");
    config.expected_server = process;
    config.max_attempts = 1;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return (*channels_)[process] = channel.value_or(nullptr);
  }
  static std::unique_ptr<idv1::Identity::Stub> IdentityStub() {
    return idv1::Identity::NewStub(Channel("identity"));
  }

  // Logs in; when a role of the user requires MFA and none is enrolled,
  // enrols TOTP over EnrollTotp/ConfirmTotp with the restricted token and
  // logs in again with a code, as a user would. Later logins of an enrolled
  // user use a recovery code (a TOTP step is accepted once).
  static absl::StatusOr<std::string> LogIn(RoleUser& user, const std::string& username) {
    auto stub = IdentityStub();
    idv1::LoginRequest login;
    login.set_username(username);
    login.set_password(user.password);
    if (!user.recovery_codes.empty()) {
      login.set_totp_code(user.recovery_codes.back());
      user.recovery_codes.pop_back();
    }
    CRM_ASSIGN_OR_RETURN(idv1::LoginResponse r,
                         UnaryCall(*stub, &idv1::Identity::Stub::Login, login));
    if (r.password_change_required()) {
      return absl::FailedPreconditionError(absl::StrCat(username, ": password change required"));
    }
    if (!r.mfa_enrollment_required()) return r.tokens().access_token();
    CRM_ASSIGN_OR_RETURN(idv1::EnrollTotpResponse enrolled,
                         UnaryCall(*stub, &idv1::Identity::Stub::EnrollTotp,
                                   idv1::EnrollTotpRequest(), r.tokens().access_token()));
    std::optional<std::string> key = Base32Decode(enrolled.secret_base32());
    if (!key) return absl::InternalError("TOTP secret is not base32");
    const int64_t step = absl::ToUnixSeconds(absl::Now()) / 30;
    idv1::ConfirmTotpRequest confirm;
    confirm.set_code(TotpCode(*key, step));
    CRM_ASSIGN_OR_RETURN(
        idv1::ConfirmTotpResponse confirmed,
        UnaryCall(*stub, &idv1::Identity::Stub::ConfirmTotp, confirm, r.tokens().access_token()));
    user.recovery_codes.assign(confirmed.recovery_codes().begin(),
                               confirmed.recovery_codes().end());
    user.enrolled_totp = true;
    // The next step's code (codes are accepted one step either side).
    login.set_totp_code(TotpCode(*key, step + 1));
    CRM_ASSIGN_OR_RETURN(idv1::LoginResponse again,
                         UnaryCall(*stub, &idv1::Identity::Stub::Login, login));
    if (again.mfa_enrollment_required()) return absl::InternalError("still not enrolled");
    return again.tokens().access_token();
  }

  static absl::Status SetUpUsersAndPersons() {
    channels_ = new std::map<std::string, std::shared_ptr<grpc::Channel>>;
    auto stub = IdentityStub();
    idv1::LoginRequest login;
    login.set_username("admin");
    login.set_password(system_test::kAdminPassword);
    CRM_ASSIGN_OR_RETURN(idv1::LoginResponse admin,
                         UnaryCall(*stub, &idv1::Identity::Stub::Login, login));
    admin_token_ = new std::string(admin.tokens().access_token());
    admin_id_ = new std::string(admin.user_id());

    // The role the docs say should carry MFA (permissions.h: "admins should
    // require MFA for roles carrying" a sensitive one): dpo's users enrol
    // TOTP before they get a full token, as any deployment that sets it.
    idv1::SetRoleRequiresMfaRequest mfa;
    mfa.set_role("dpo");
    mfa.set_requires_mfa(true);
    CRM_RETURN_IF_ERROR(
        UnaryCall(*stub, &idv1::Identity::Stub::SetRoleRequiresMfa, mfa, *admin_token_).status());

    idv1::CreateTeamRequest team;
    team.set_name("authz floor");
    CRM_ASSIGN_OR_RETURN(idv1::CreateTeamResponse created_team,
                         UnaryCall(*stub, &idv1::Identity::Stub::CreateTeam, team, *admin_token_));
    team_id_ = new std::string(created_team.team().team_id());

    auto create_user = [&](const std::string& username,
                           const std::string& password) -> absl::StatusOr<std::string> {
      idv1::CreateUserRequest create;
      create.set_username(username);
      create.set_display_name(absl::StrCat("Authz ", username));
      create.set_email(absl::StrCat(username, "@staff.example"));
      create.set_initial_password(password);
      create.set_must_change_password(false);
      CRM_ASSIGN_OR_RETURN(
          idv1::CreateUserResponse created,
          UnaryCall(*stub, &idv1::Identity::Stub::CreateUser, create, *admin_token_));
      return created.user().user_id();
    };
    CRM_ASSIGN_OR_RETURN(std::string victim,
                         create_user("authz.victim", "authz matrix: a throwaway account 1"));
    victim_id_ = new std::string(victim);

    users_ = new std::vector<RoleUser>;
    for (const auto& [role, permissions] : RolePermissions()) {
      RoleUser u;
      u.role = role;
      u.password = absl::StrCat("authz matrix: seven quiet herons of ", role);
      const std::string username = absl::StrCat("authz.", role);
      CRM_ASSIGN_OR_RETURN(u.user_id, create_user(username, u.password));
      if (role != "none") {
        idv1::GrantRoleRequest grant;
        grant.set_user_id(u.user_id);
        grant.set_role(role);
        grant.set_justification("authorization matrix test");
        CRM_RETURN_IF_ERROR(
            UnaryCall(*stub, &idv1::Identity::Stub::GrantRole, grant, *admin_token_).status());
      }
      idv1::AddTeamMemberRequest member;
      member.set_team_id(*team_id_);
      member.set_user_id(u.user_id);
      CRM_RETURN_IF_ERROR(
          UnaryCall(*stub, &idv1::Identity::Stub::AddTeamMember, member, *admin_token_).status());
      CRM_ASSIGN_OR_RETURN(u.token, LogIn(u, username));
      CRM_ASSIGN_OR_RETURN(u.logout_token, LogIn(u, username));
      users_->push_back(std::move(u));
    }

    // Two persons, each with a sensitive value and a sensitive note: "own"
    // is assigned to the sales user and to the team every role user is in;
    // "other" to the bootstrap admin only.
    auto contacts = ctv1::Contacts::NewStub(Channel("contacts"));
    own_assignment_ = new ctv1::Assignment;
    other_assignment_ = new ctv1::Assignment;
    auto create_person = [&](const std::string& name, const std::string& owner,
                             const std::string& team) -> absl::StatusOr<std::string> {
      ctv1::CreatePersonRequest create;
      ctv1::Person& p = *create.mutable_person();
      p.set_given_name(name);
      p.set_family_name("Matrix");
      auto* email = p.add_emails();
      email->set_address(absl::StrCat(absl::AsciiStrToLower(name), ".matrix@customer.example"));
      email->set_primary(true);
      p.set_personal_id_number("ID00000000");
      p.set_notes("a sensitive note");
      p.set_notes_sensitive(true);
      p.mutable_assignment()->add_owner_user_ids(owner);
      if (!team.empty()) p.mutable_assignment()->set_team_id(team);
      *(team.empty() ? other_assignment_ : own_assignment_) = p.assignment();
      CRM_ASSIGN_OR_RETURN(
          ctv1::CreatePersonResponse created,
          UnaryCall(*contacts, &ctv1::Contacts::Stub::CreatePerson, create, *admin_token_));
      ctv1::AddInteractionRequest note;
      note.mutable_interaction()->set_subject_id(created.person().subject_id());
      note.mutable_interaction()->set_kind(ctv1::INTERACTION_KIND_NOTE);
      note.mutable_interaction()->set_summary("a sensitive call summary");
      note.mutable_interaction()->set_sensitive(true);
      CRM_RETURN_IF_ERROR(
          UnaryCall(*contacts, &ctv1::Contacts::Stub::AddInteraction, note, *admin_token_)
              .status());
      return created.person().subject_id();
    };
    const std::string sales_id =
        std::find_if(users_->begin(), users_->end(), [](const RoleUser& u) {
          return u.role == "sales";
        })->user_id;
    CRM_ASSIGN_OR_RETURN(std::string own, create_person("Owned", sales_id, *team_id_));
    CRM_ASSIGN_OR_RETURN(std::string other, create_person("Other", *admin_id_, ""));
    own_subject_ = new std::string(own);
    other_subject_ = new std::string(other);
    return absl::OkStatus();
  }

  static std::string Fill(const std::string& json, const RoleUser& u) {
    return absl::StrReplaceAll(json, {{"$SELF", u.user_id},
                                      {"$OTHER", *admin_id_},
                                      {"$VICTIM", *victim_id_},
                                      {"$PASSWORD", u.password},
                                      {"$SUBJECT", *own_subject_},
                                      {"$UUID", "00000000-0000-4000-8000-000000000000"}});
  }

  static Stack* stack_;
  static bool ready_;
  static std::map<std::string, std::shared_ptr<grpc::Channel>>* channels_;
  static std::string* admin_token_;
  static std::string* admin_id_;
  static std::string* team_id_;
  static std::string* victim_id_;
  static std::vector<RoleUser>* users_;
  static std::string* own_subject_;
  static std::string* other_subject_;
  static ctv1::Assignment* own_assignment_;
  static ctv1::Assignment* other_assignment_;
};

Stack* AuthorizationMatrixTest::stack_ = nullptr;
bool AuthorizationMatrixTest::ready_ = false;
std::map<std::string, std::shared_ptr<grpc::Channel>>* AuthorizationMatrixTest::channels_ = nullptr;
std::string* AuthorizationMatrixTest::admin_token_ = nullptr;
std::string* AuthorizationMatrixTest::admin_id_ = nullptr;
std::string* AuthorizationMatrixTest::team_id_ = nullptr;
std::string* AuthorizationMatrixTest::victim_id_ = nullptr;
std::vector<RoleUser>* AuthorizationMatrixTest::users_ = nullptr;
std::string* AuthorizationMatrixTest::own_subject_ = nullptr;
std::string* AuthorizationMatrixTest::other_subject_ = nullptr;
ctv1::Assignment* AuthorizationMatrixTest::own_assignment_ = nullptr;
ctv1::Assignment* AuthorizationMatrixTest::other_assignment_ = nullptr;

TEST_F(AuthorizationMatrixTest, ThePolicyTableDeclaresExactlyTheTokenRpcs) {
  std::set<std::string> token_rpcs;
  for (const Rpc& rpc : AllRpcs()) {
    if (AccessOf(rpc.method) == Access::kToken) token_rpcs.insert(rpc.method);
  }
  std::vector<std::string> wrong;
  for (const std::string& m : token_rpcs) {
    if (!Policy().contains(m)) wrong.push_back(absl::StrCat(m, ": not declared"));
  }
  for (const auto& [m, cases] : Policy()) {
    if (!token_rpcs.contains(m)) wrong.push_back(absl::StrCat(m, ": declared, not a token RPC"));
    for (const Case& c : cases) {
      for (const std::string& p : c.any_of) {
        if (!RolePermissions().at("admin").contains(p)) {
          wrong.push_back(absl::StrCat(m, ": unknown permission ", p));
        }
      }
      if (!RequestBytes(m, c.request).ok()) {
        wrong.push_back(absl::StrCat(m, ": ", RequestBytes(m, c.request).status().ToString()));
      }
    }
  }
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");
  EXPECT_GT(token_rpcs.size(), 80u);
  EXPECT_EQ(users_->size(), RolePermissions().size());
  // The MFA path ran: dpo's user enrolled TOTP before it got its tokens.
  for (const RoleUser& u : *users_) EXPECT_EQ(u.enrolled_totp, u.role == "dpo") << u.role;
}

// contacts.md "Access": contacts.read sees the persons assigned to the caller
// or the caller's team, contacts.read.all every person; a person the caller
// cannot see is NOT_FOUND for every RPC; writes need contacts.write on a
// visible person; SENSITIVE fields are cleared (and listed in masked_fields)
// without contacts.read.sensitive. PERMISSION_DENIED when the permission
// itself is missing (contacts.proto, errors common to every RPC).
TEST_F(AuthorizationMatrixTest, OwnAndOtherPersonsAnswerEachRoleAsContactsAccessSays) {
  auto contacts = ctv1::Contacts::NewStub(Channel("contacts"));
  std::vector<std::string> wrong;
  auto expect = [&](const std::string& what, const RoleUser& u, absl::StatusCode got,
                    absl::StatusCode want, const std::string& message) {
    if (got != want) {
      wrong.push_back(absl::StrCat(what, " as ", u.role, ": ", absl::StatusCodeToString(got), " ",
                                   message, " (want ", absl::StatusCodeToString(want), ")"));
    }
  };
  for (const RoleUser& u : *users_) {
    const std::set<std::string>& held = RolePermissions().at(u.role);
    const bool read = held.contains("contacts.read"), all = held.contains("contacts.read.all");
    const bool sensitive = held.contains("contacts.read.sensitive");
    const bool write = held.contains("contacts.write");
    for (const bool own : {true, false}) {
      const std::string& subject = own ? *own_subject_ : *other_subject_;
      const std::string which = own ? "own person" : "other person";
      const bool visible = read && (own || all);
      const absl::StatusCode read_want = !read     ? absl::StatusCode::kPermissionDenied
                                         : visible ? absl::StatusCode::kOk
                                                   : absl::StatusCode::kNotFound;
      const absl::StatusCode write_want = !write    ? absl::StatusCode::kPermissionDenied
                                          : visible ? absl::StatusCode::kOk
                                                    : absl::StatusCode::kNotFound;

      ctv1::GetPersonRequest get;
      get.set_subject_id(subject);
      absl::StatusOr<ctv1::GetPersonResponse> person =
          UnaryCall(*contacts, &ctv1::Contacts::Stub::GetPerson, get, u.token);
      expect("GetPerson " + which, u, person.status().code(), read_want,
             person.status().ToString());
      if (person.ok()) {
        const bool shown =
            !person->person().personal_id_number().empty() && !person->person().notes().empty();
        const bool masked = person->person().personal_id_number().empty() &&
                            person->person().notes().empty() && person->masked_fields_size() > 0;
        if (sensitive ? !shown : !masked) {
          wrong.push_back(absl::StrCat("GetPerson ", which, " as ", u.role, ": sensitive fields ",
                                       sensitive ? "masked" : "shown", " (masked_fields: ",
                                       absl::StrJoin(person->masked_fields(), ","), ")"));
        }
      }

      ctv1::ListInteractionsRequest history;
      history.set_subject_id(subject);
      absl::StatusOr<ctv1::ListInteractionsResponse> notes =
          UnaryCall(*contacts, &ctv1::Contacts::Stub::ListInteractions, history, u.token);
      expect("ListInteractions " + which, u, notes.status().code(), read_want,
             notes.status().ToString());
      if (notes.ok()) {
        bool sensitive_shown = false;
        for (const ctv1::Interaction& i : notes->interactions()) {
          if (i.sensitive() && !i.summary().empty()) sensitive_shown = true;
        }
        if (sensitive_shown != sensitive || (!sensitive && notes->masked_fields_size() == 0)) {
          wrong.push_back(absl::StrCat("ListInteractions ", which, " as ", u.role,
                                       ": the sensitive note ",
                                       sensitive_shown ? "shown" : "masked"));
        }
      }

      ctv1::ListInvoicesRequest invoices;
      invoices.set_subject_id(subject);
      expect("ListInvoices " + which, u,
             UnaryCall(*contacts, &ctv1::Contacts::Stub::ListInvoices, invoices, u.token)
                 .status()
                 .code(),
             read_want, "");

      // Writes that change nothing a later call depends on.
      ctv1::UpdatePersonRequest update;
      update.set_subject_id(subject);
      update.mutable_person()->set_job_title(absl::StrCat("title by ", u.role));
      update.mutable_update_mask()->add_paths("job_title");
      absl::Status s =
          UnaryCall(*contacts, &ctv1::Contacts::Stub::UpdatePerson, update, u.token).status();
      expect("UpdatePerson " + which, u, s.code(), write_want, s.ToString());

      ctv1::AddInteractionRequest add;
      add.mutable_interaction()->set_subject_id(subject);
      add.mutable_interaction()->set_kind(ctv1::INTERACTION_KIND_CALL);
      add.mutable_interaction()->set_summary("a call");
      s = UnaryCall(*contacts, &ctv1::Contacts::Stub::AddInteraction, add, u.token).status();
      expect("AddInteraction " + which, u, s.code(), write_want, s.ToString());

      ctv1::SetRestrictionRequest lift;  // not restricted: lifting is a no-op
      lift.set_subject_id(subject);
      lift.set_restricted(false);
      s = UnaryCall(*contacts, &ctv1::Contacts::Stub::SetRestriction, lift, u.token).status();
      expect("SetRestriction " + which, u, s.code(), write_want, s.ToString());

      ctv1::AssignPersonRequest assign;  // the assignment it has
      assign.set_subject_id(subject);
      *assign.mutable_assignment() = own ? *own_assignment_ : *other_assignment_;
      s = UnaryCall(*contacts, &ctv1::Contacts::Stub::AssignPerson, assign, u.token).status();
      expect("AssignPerson " + which, u, s.code(), write_want, s.ToString());

      ctv1::LookupPersonsRequest lookup;
      lookup.set_email(own ? "owned.matrix@customer.example" : "other.matrix@customer.example");
      absl::StatusOr<ctv1::LookupPersonsResponse> found =
          UnaryCall(*contacts, &ctv1::Contacts::Stub::LookupPersons, lookup, u.token);
      expect("LookupPersons " + which, u, found.status().code(),
             read ? absl::StatusCode::kOk : absl::StatusCode::kPermissionDenied,
             found.status().ToString());
      if (found.ok() && (found->persons_size() == 1) != visible) {
        wrong.push_back(absl::StrCat("LookupPersons ", which, " as ", u.role, ": ",
                                     found->persons_size(), " found"));
      }
    }

    ctv1::ListPersonsRequest list;
    list.mutable_page()->set_page_size(100);
    absl::StatusOr<ctv1::ListPersonsResponse> listed =
        UnaryCall(*contacts, &ctv1::Contacts::Stub::ListPersons, list, u.token);
    expect("ListPersons", u, listed.status().code(),
           read ? absl::StatusCode::kOk : absl::StatusCode::kPermissionDenied,
           listed.status().ToString());
    if (listed.ok()) {
      std::set<std::string> ids;
      for (const ctv1::Person& p : listed->persons()) ids.insert(p.subject_id());
      if (!ids.contains(*own_subject_) || ids.contains(*other_subject_) != all) {
        wrong.push_back(absl::StrCat("ListPersons as ", u.role, ": own ",
                                     ids.contains(*own_subject_) ? "listed" : "missing", ", other ",
                                     ids.contains(*other_subject_) ? "listed" : "missing"));
      }
    }
    list.set_include_restricted(true);
    expect("ListPersons include_restricted", u,
           UnaryCall(*contacts, &ctv1::Contacts::Stub::ListPersons, list, u.token).status().code(),
           all ? absl::StatusCode::kOk : absl::StatusCode::kPermissionDenied, "");
  }
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");
}

TEST_F(AuthorizationMatrixTest, EveryTokenRpcAnswersEachRoleAsThePolicyTableSays) {
  std::vector<std::string> wrong;
  int calls = 0, denied = 0;
  for (const RoleUser& u : *users_) {
    const std::set<std::string>& held = RolePermissions().at(u.role);
    for (const Rpc& rpc : AllRpcs()) {
      if (AccessOf(rpc.method) != Access::kToken) continue;
      auto policy = Policy().find(rpc.method);
      if (policy == Policy().end()) continue;  // reported by the table test
      for (const Case& c : policy->second) {
        absl::StatusOr<std::string> request = RequestBytes(rpc.method, Fill(c.request, u));
        if (!request.ok()) continue;  // reported by the table test
        const std::string& token = absl::EndsWith(rpc.method, "/Logout") ? u.logout_token : u.token;
        const grpc::Status s = RawUnaryCall(Channel(rpc.process), rpc.method, *request, nullptr,
                                            absl::Seconds(10), token);
        ++calls;
        const bool allowed = Allowed(c, held);
        if (!allowed) ++denied;
        const bool ok = allowed ? s.error_code() != Code::PERMISSION_DENIED &&
                                      s.error_code() != Code::UNAUTHENTICATED &&
                                      s.error_code() != Code::UNAVAILABLE
                                : s.error_code() == Code::PERMISSION_DENIED;
        if (!ok) {
          wrong.push_back(absl::StrCat(rpc.method, c.label.empty() ? "" : " (", c.label,
                                       c.label.empty() ? "" : ")", " as ", u.role, ": ",
                                       CodeName(s.error_code()), " ", s.error_message(),
                                       allowed ? " (want allowed)" : " (want PERMISSION_DENIED)"));
        }
      }
    }
  }
  EXPECT_THAT(wrong, IsEmpty()) << wrong.size() << " of " << calls << " calls:\n"
                                << absl::StrJoin(wrong, "\n");
  EXPECT_GT(denied, 0);
  EXPECT_GT(calls - denied, 0);
}

}  // namespace
}  // namespace crm::security_test
