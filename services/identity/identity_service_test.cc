// Service tests of crm.identity.v1.Identity through the whole stack: an
// in-process ServerRunner over mutual TLS (TestPki certificates), IdentityApp
// on a database migrated with services/identity/migrations, a private
// redis-server the tests stop and restart, and a FakeClock for everything
// time-based (lockouts, password age, token and grant expiry, TOTP steps).
//
// Every test gets a fresh Harness (database, Redis, PKI, key files, app and
// server). Clients call as "operator" unless a test needs another certificate
// ("shop" and "billing" for service accounts).
#include <grpcpp/grpcpp.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/auth/principal.h"
#include "libs/auth/token_minter.h"
#include "libs/auth/token_signer.h"
#include "libs/base/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/primitives.h"
#include "libs/json/json.h"
#include "libs/redis/client.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/private_redis.h"
#include "libs/testing/status_matchers.h"
#include "services/identity/credential_store.h"
#include "services/identity/identity_app.h"
#include "services/identity/identity_config.h"
#include "services/identity/permissions.h"
#include "services/identity/service_util.h"
#include "services/identity/totp.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

using Stub = v1::Identity::Stub;
template <typename Req, typename Resp>
using Rpc = grpc::Status (Stub::*)(grpc::ClientContext*, const Req&, Resp*);

constexpr absl::StatusCode kInvalidArgument = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kUnauthenticated = absl::StatusCode::kUnauthenticated;
constexpr absl::StatusCode kPermissionDenied = absl::StatusCode::kPermissionDenied;
constexpr absl::StatusCode kFailedPrecondition = absl::StatusCode::kFailedPrecondition;
constexpr absl::StatusCode kNotFound = absl::StatusCode::kNotFound;
constexpr absl::StatusCode kAlreadyExists = absl::StatusCode::kAlreadyExists;
constexpr absl::StatusCode kResourceExhausted = absl::StatusCode::kResourceExhausted;
constexpr absl::StatusCode kUnavailable = absl::StatusCode::kUnavailable;

constexpr char kAdminPassword[] = "Granite-Orchard-Compass-71";
constexpr char kWrongPassword[] = "Not-The-Right-One-Sorry-3";

// A policy-conforming password of each test user (never contains the name).
std::string PasswordOf(absl::string_view username) {
  return absl::StrCat("Quiet-Meadow-",
                      absl::BytesToHexString(crypto::Sha256(username)).substr(0, 10));
}
// Distinct policy-conforming passwords for change sequences.
std::string Password(int n) { return absl::StrCat("Velvet-Harbor-Lantern-", n); }

absl::Status WriteSecretFile(const std::string& path, absl::string_view content) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << content;
    if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (chmod(path.c_str(), 0600) != 0) return absl::InternalError(absl::StrCat("chmod ", path));
  return absl::OkStatus();
}

std::string KeyLine() {
  return absl::StrCat("1 ", absl::Base64Escape(crypto::RandomBytes(32)), "\n");
}

absl::Time TimeOf(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp out;
  SetTime(t, &out);
  return out;
}

// The DER form of the first certificate in a PEM file ("" if unreadable).
std::string CertificateDer(const std::string& pem_file) {
  std::ifstream in(pem_file);
  std::stringstream pem;
  pem << in.rdbuf();
  const std::string text = pem.str();
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return "";
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  std::string out = len > 0 ? std::string(reinterpret_cast<char*>(der), len) : "";
  OPENSSL_free(der);
  X509_free(cert);
  return out;
}

// ---- Access tokens as the tests read them -------------------------------------------------------

struct JwtParts {
  std::string header, payload, signature;  // base64url segments
};

JwtParts Split(absl::string_view jwt) {
  std::vector<std::string> parts = absl::StrSplit(jwt, '.');
  parts.resize(3);
  return {parts[0], parts[1], parts[2]};
}

std::string Join(const JwtParts& p) {
  return absl::StrCat(p.header, ".", p.payload, ".", p.signature);
}

struct Claims {
  std::string kid;
  std::string subject;
  std::string session_id;
  std::vector<std::string> permissions;
  std::vector<std::string> teams;
  absl::Time expires_at;
  std::string cert_thumbprint;  // cnf x5t#S256
};

std::vector<std::string> Strings(const json::Value* array) {
  std::vector<std::string> out;
  if (array == nullptr || !array->is_array()) return out;
  for (const json::Value& v : array->array()) {
    if (v.is_string()) out.push_back(v.string_value());
  }
  return out;
}

absl::StatusOr<json::Value> DecodeSegment(absl::string_view segment) {
  std::optional<std::string> raw = auth::Base64UrlDecode(segment);
  if (!raw.has_value()) return absl::InvalidArgumentError("segment is not base64url");
  return json::Parse(*raw);
}

absl::StatusOr<Claims> Decode(absl::string_view jwt) {
  const JwtParts parts = Split(jwt);
  CRM_ASSIGN_OR_RETURN(json::Value header, DecodeSegment(parts.header));
  CRM_ASSIGN_OR_RETURN(json::Value payload, DecodeSegment(parts.payload));
  Claims c;
  if (const json::Value* kid = header.Find("kid"); kid != nullptr && kid->is_string()) {
    c.kid = kid->string_value();
  }
  if (const json::Value* sub = payload.Find("sub"); sub != nullptr && sub->is_string()) {
    c.subject = sub->string_value();
  }
  if (const json::Value* sid = payload.Find("sid"); sid != nullptr && sid->is_string()) {
    c.session_id = sid->string_value();
  }
  c.permissions = Strings(payload.Find("permissions"));
  c.teams = Strings(payload.Find("teams"));
  if (const json::Value* exp = payload.Find("exp"); exp != nullptr && exp->AsInt64()) {
    c.expires_at = absl::FromUnixSeconds(*exp->AsInt64());
  }
  if (const json::Value* cnf = payload.Find("cnf"); cnf != nullptr) {
    if (const json::Value* x5t = cnf->Find("x5t#S256"); x5t != nullptr && x5t->is_string()) {
      c.cert_thumbprint = x5t->string_value();
    }
  }
  return c;
}

// ---- Harness ------------------------------------------------------------------------------------

// One identity service as main.cc builds it, with its server and clients.
class Harness {
 public:
  using Tweak = std::function<void(IdentityConfig&)>;

  static absl::StatusOr<std::unique_ptr<Harness>> Start(const Tweak& tweak) {
    std::unique_ptr<Harness> h(new Harness());
    CRM_RETURN_IF_ERROR(h->Init(tweak));
    return h;
  }

  ~Harness() {
    stubs_.clear();
    runner_.reset();  // in-flight calls end before the app goes
    app_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Calls `rpc` as `peer` (a TestPki name) with `token` as bearer token.
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(Rpc<Req, Resp> rpc, const Req& request, absl::string_view token = "",
                            const std::string& peer = "operator") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    Resp response;
    auto stub = stubs_.find(peer);
    if (stub == stubs_.end()) return absl::InvalidArgumentError("no such peer");
    grpc::Status status = (stub->second.get()->*rpc)(&context, request, &response);
    if (!status.ok()) return base::FromGrpcStatus(status);
    return response;
  }

  base::FakeClock& clock() { return clock_; }
  IdentityApp& app() { return *app_; }
  const IdentityConfig& config() const { return config_; }
  CredentialStore& credentials() { return *credentials_; }
  crm::testing::PrivateRedisServer& redis() { return *redis_; }
  pg::Pool& pool() { return *db_.pool; }
  rpc::testing::TestPki& pki() { return *pki_; }
  const std::string& dir() const { return dir_; }

  absl::StatusOr<std::string> BootstrapPassword() const {
    std::ifstream in(config_.bootstrap_admin_password_file);
    std::string line;
    if (!std::getline(in, line) || line.empty()) {
      return absl::NotFoundError("no bootstrap password written");
    }
    return line;
  }

 private:
  Harness() = default;

  absl::Status Init(const Tweak& tweak) {
    CRM_ASSIGN_OR_RETURN(db_, crm::testing::CreateMigratedDatabase("identity", "identity_svc", 12));
    const std::string redis_password = "identity-service-test";
    CRM_ASSIGN_OR_RETURN(redis_, crm::testing::PrivateRedisServer::Start(redis_password));
    CRM_ASSIGN_OR_RETURN(
        rpc::testing::TestPki pki,
        rpc::testing::TestPki::Create({"identity", "operator", "shop", "billing"}));
    pki_ = std::make_unique<rpc::testing::TestPki>(std::move(pki));
    const char* tmp = getenv("TMPDIR");
    std::string tmpl = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/idsvc_XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    dir_ = tmpl;

    config_.redis_addr = absl::StrCat("127.0.0.1:", redis_->port());
    config_.redis_password_file = dir_ + "/redis_password";
    config_.redis_wait = absl::Seconds(5);
    config_.kek_file = dir_ + "/kek";
    config_.blind_index_key_file = dir_ + "/blind_index_key";
    config_.audit_addr = "";
    config_.argon2_memory_kib = 256;
    config_.argon2_iterations = 1;
    // Tests log in often from one (empty) source on a clock that stands
    // still; the throttling tests lower this.
    config_.login_throttle_attempts = 1000;
    config_.bootstrap_admin_password_file = dir_ + "/admin_password";
    if (tweak) tweak(config_);
    CRM_RETURN_IF_ERROR(WriteSecretFile(config_.redis_password_file, redis_password));
    CRM_RETURN_IF_ERROR(WriteSecretFile(config_.kek_file, KeyLine()));
    CRM_RETURN_IF_ERROR(WriteSecretFile(config_.blind_index_key_file, KeyLine()));
    CRM_RETURN_IF_ERROR(ValidateIdentityConfig(config_));

    CRM_ASSIGN_OR_RETURN(
        app_, IdentityApp::Create(config_, pki_->Files("identity"), *db_.pool, clock_, nullptr));
    credentials_ = std::make_unique<CredentialStore>(*db_.pool);

    rpc::AccessPolicy policy;
    CRM_RETURN_IF_ERROR(app_->AllowMethods(policy));
    rpc::ServerConfig server;
    server.service = "identity";
    server.tls = pki_->Files("identity");
    server.metrics_listen = "";
    server.handle_signals = false;
    server.shutdown_grace = absl::Seconds(1);
    runner_ = std::make_unique<rpc::ServerRunner>(server, std::move(policy));
    runner_->RegisterService(&app_->service());
    CRM_RETURN_IF_ERROR(runner_->Start());

    for (const std::string peer : {"operator", "shop", "billing"}) {
      rpc::ChannelConfig channel;
      channel.target = absl::StrCat("127.0.0.1:", runner_->port());
      channel.tls = pki_->Files(peer);
      channel.expected_server = "identity";
      channel.max_attempts = 1;  // UNAVAILABLE must surface, not be retried
      CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> ch, rpc::MakeChannel(channel));
      stubs_[peer] = v1::Identity::NewStub(ch);
    }
    return absl::OkStatus();
  }

  crm::testing::MigratedDatabase db_;
  std::unique_ptr<crm::testing::PrivateRedisServer> redis_;
  std::unique_ptr<rpc::testing::TestPki> pki_;
  std::string dir_;
  base::FakeClock clock_;
  IdentityConfig config_;
  std::unique_ptr<IdentityApp> app_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<rpc::ServerRunner> runner_;
  // Filled in Init, read-only afterwards (tests call from several threads).
  std::map<std::string, std::unique_ptr<Stub>> stubs_;
};

// ---- Fixture with the helpers every test uses ---------------------------------------------------

struct From {
  std::string source_address;
  std::string user_agent;
  std::string totp_code;
};

class IdentityServiceTest : public ::testing::Test {
 protected:
  // Settings of the fixture beyond the Harness defaults.
  virtual void Configure(IdentityConfig& config) {}

  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(h_, Harness::Start([this](IdentityConfig& c) { Configure(c); }));
  }

  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(Rpc<Req, Resp> rpc, const Req& request, absl::string_view token = "",
                            const std::string& peer = "operator") {
    return h_->Call(rpc, request, token, peer);
  }

  absl::StatusOr<v1::LoginResponse> Login(absl::string_view username, absl::string_view password,
                                          const From& from = {}) {
    v1::LoginRequest req;
    req.set_username(std::string(username));
    req.set_password(std::string(password));
    req.set_totp_code(from.totp_code);
    req.set_source_address(from.source_address);
    req.set_user_agent(from.user_agent);
    return Call(&Stub::Login, req);
  }
  absl::StatusOr<v1::LoginResponse> LoginAs(absl::string_view username, const From& from = {}) {
    return Login(username, PasswordOf(username), from);
  }

  // A full access token of `username` (who must not need a password change
  // or MFA enrolment).
  absl::StatusOr<std::string> TokenOf(absl::string_view username) {
    CRM_ASSIGN_OR_RETURN(v1::LoginResponse login, LoginAs(username));
    if (login.password_change_required() || login.mfa_enrollment_required()) {
      return absl::FailedPreconditionError("login gave a restricted token");
    }
    return login.tokens().access_token();
  }

  // The first administrator's full token. The first call logs in with the
  // bootstrap password and changes it; later calls reuse the token while the
  // fake clock leaves it a minute, else log in again.
  absl::StatusOr<std::string> AdminToken() {
    if (!admin_token_.empty() && h_->clock().Now() + absl::Minutes(1) < admin_expires_) {
      return admin_token_;
    }
    v1::TokenPair tokens;
    if (admin_id_.empty()) {
      CRM_ASSIGN_OR_RETURN(std::string bootstrap, h_->BootstrapPassword());
      CRM_ASSIGN_OR_RETURN(v1::LoginResponse first, Login("admin", bootstrap));
      v1::ChangePasswordRequest change;
      change.set_current_password(bootstrap);
      change.set_new_password(kAdminPassword);
      CRM_ASSIGN_OR_RETURN(v1::ChangePasswordResponse changed,
                           Call(&Stub::ChangePassword, change, first.tokens().access_token()));
      admin_id_ = first.user_id();
      tokens = changed.tokens();
    } else {
      CRM_ASSIGN_OR_RETURN(v1::LoginResponse login, Login("admin", kAdminPassword));
      if (login.password_change_required()) {
        return absl::FailedPreconditionError("the admin's password needs changing");
      }
      tokens = login.tokens();
    }
    admin_token_ = tokens.access_token();
    admin_expires_ = TimeOf(tokens.access_expires_at());
    return admin_token_;
  }

  static v1::CreateUserRequest UserRequest(absl::string_view username) {
    v1::CreateUserRequest req;
    req.set_username(std::string(username));
    req.set_display_name("Test Operator");
    req.set_email(absl::StrCat(username, "@example.com"));
    req.set_initial_password(PasswordOf(username));
    req.set_must_change_password(false);
    return req;
  }
  absl::StatusOr<v1::CreateUserResponse> Create(const v1::CreateUserRequest& req) {
    CRM_ASSIGN_OR_RETURN(std::string admin, AdminToken());
    return Call(&Stub::CreateUser, req, admin);
  }
  // A person with PasswordOf(username), no forced change, in `team_ids`.
  absl::StatusOr<v1::User> CreateUser(absl::string_view username,
                                      const std::vector<std::string>& team_ids = {}) {
    v1::CreateUserRequest req = UserRequest(username);
    for (const std::string& t : team_ids) req.add_team_ids(t);
    CRM_ASSIGN_OR_RETURN(v1::CreateUserResponse resp, Create(req));
    return resp.user();
  }

  absl::StatusOr<v1::Team> CreateTeam(absl::string_view name) {
    CRM_ASSIGN_OR_RETURN(std::string admin, AdminToken());
    v1::CreateTeamRequest req;
    req.set_name(std::string(name));
    CRM_ASSIGN_OR_RETURN(v1::CreateTeamResponse resp, Call(&Stub::CreateTeam, req, admin));
    return resp.team();
  }

  // Grants `role` to `user_id` as `token` (default: the admin).
  absl::StatusOr<v1::Grant> GrantRole(absl::string_view user_id, absl::string_view role,
                                      std::optional<absl::Time> not_after = std::nullopt,
                                      std::string token = "") {
    if (token.empty()) {
      CRM_ASSIGN_OR_RETURN(token, AdminToken());
    }
    v1::GrantRoleRequest req;
    req.set_user_id(std::string(user_id));
    req.set_role(std::string(role));
    req.set_justification("service test");
    if (not_after.has_value()) *req.mutable_not_after() = Ts(*not_after);
    CRM_ASSIGN_OR_RETURN(v1::GrantRoleResponse resp, Call(&Stub::GrantRole, req, token));
    return resp.grant();
  }

  absl::StatusOr<v1::Role> CreateRole(absl::string_view name,
                                      const std::vector<std::string>& permissions) {
    CRM_ASSIGN_OR_RETURN(std::string admin, AdminToken());
    v1::CreateRoleRequest req;
    req.set_name(std::string(name));
    for (const std::string& p : permissions) req.add_permissions(p);
    CRM_ASSIGN_OR_RETURN(v1::CreateRoleResponse resp, Call(&Stub::CreateRole, req, admin));
    return resp.role();
  }

  // GetUser of `user_id` with `token`: what "is this token accepted" means here.
  absl::StatusOr<v1::User> GetUser(absl::string_view user_id, absl::string_view token) {
    v1::GetUserRequest req;
    req.set_user_id(std::string(user_id));
    CRM_ASSIGN_OR_RETURN(v1::GetUserResponse resp, Call(&Stub::GetUser, req, token));
    return resp.user();
  }
  absl::StatusOr<v1::User> AdminGetUser(absl::string_view user_id) {
    CRM_ASSIGN_OR_RETURN(std::string admin, AdminToken());
    return GetUser(user_id, admin);
  }

  absl::StatusOr<v1::ListUsersResponse> ListUsers(v1::ListUsersRequest req) {
    CRM_ASSIGN_OR_RETURN(std::string admin, AdminToken());
    return Call(&Stub::ListUsers, req, admin);
  }

  absl::StatusOr<v1::ChangePasswordResponse> ChangePassword(absl::string_view token,
                                                            absl::string_view current,
                                                            absl::string_view next) {
    v1::ChangePasswordRequest req;
    req.set_current_password(std::string(current));
    req.set_new_password(std::string(next));
    return Call(&Stub::ChangePassword, req, token);
  }

  absl::StatusOr<v1::RefreshSessionResponse> Refresh(absl::string_view refresh_token) {
    v1::RefreshSessionRequest req;
    req.set_refresh_token(std::string(refresh_token));
    return Call(&Stub::RefreshSession, req);
  }

  // Admin call taking only a user id (DisableUser, UnlockUser, ...).
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> OnUser(Rpc<Req, Resp> rpc, absl::string_view user_id,
                              absl::string_view token = "") {
    std::string bearer(token);
    if (bearer.empty()) {
      CRM_ASSIGN_OR_RETURN(bearer, AdminToken());
    }
    Req req;
    req.set_user_id(std::string(user_id));
    return Call(rpc, req, bearer);
  }

  std::vector<NoticeRecord> NoticesOf(absl::string_view user_id, NoticeKind kind) {
    absl::StatusOr<std::vector<NoticeRecord>> all = h_->credentials().NoticesOfUser(user_id);
    EXPECT_THAT(all, IsOk());
    std::vector<NoticeRecord> out;
    if (!all.ok()) return out;
    for (const NoticeRecord& n : *all) {
      if (n.kind == kind) out.push_back(n);
    }
    return out;
  }

  // Enrols TOTP for the holder of `token` and returns the secret; the
  // confirming code used up the current step.
  absl::StatusOr<crypto::SecretBytes> EnrollTotp(absl::string_view token,
                                                 std::vector<std::string>* recovery_codes) {
    CRM_ASSIGN_OR_RETURN(v1::EnrollTotpResponse enrolled,
                         Call(&Stub::EnrollTotp, v1::EnrollTotpRequest(), token));
    CRM_ASSIGN_OR_RETURN(crypto::SecretBytes secret,
                         Base32Decode("secret", enrolled.secret_base32()));
    v1::ConfirmTotpRequest confirm;
    CRM_ASSIGN_OR_RETURN(*confirm.mutable_code(), TotpCode(secret, h_->clock().Now()));
    CRM_ASSIGN_OR_RETURN(v1::ConfirmTotpResponse confirmed,
                         Call(&Stub::ConfirmTotp, confirm, token));
    if (recovery_codes != nullptr) {
      recovery_codes->assign(confirmed.recovery_codes().begin(), confirmed.recovery_codes().end());
    }
    return secret;
  }
  std::string CodeNow(const crypto::SecretBytes& secret) {
    absl::StatusOr<std::string> code = TotpCode(secret, h_->clock().Now());
    EXPECT_THAT(code, IsOk());
    return code.value_or("");
  }

  // Five wrong passwords: the default lockout threshold.
  void FailFiveTimes(absl::string_view username, const From& from = {}) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_THAT(Login(username, kWrongPassword, from), StatusIs(kUnauthenticated));
    }
  }

  std::unique_ptr<Harness> h_;
  std::string admin_id_;
  std::string admin_token_;
  absl::Time admin_expires_;
};

// ---- Bootstrap ----------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, BootstrapCreatesOneAdminAndASecondStartCreatesNone) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListUsersResponse users, ListUsers({}));
  ASSERT_THAT(users.users(), SizeIs(1));
  EXPECT_EQ(users.users(0).username(), "admin");
  EXPECT_EQ(users.users(0).user_id(), admin_id_);

  // A second replica starting on the same database (with its own password
  // file) finds a user and creates none.
  IdentityConfig second = h_->config();
  second.bootstrap_admin_password_file = h_->dir() + "/second_admin_password";
  CRM_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<IdentityApp> replica,
      IdentityApp::Create(second, h_->pki().Files("identity"), h_->pool(), h_->clock(), nullptr));
  replica->Stop();
  EXPECT_FALSE(std::filesystem::exists(second.bootstrap_admin_password_file));
  CRM_ASSERT_OK_AND_ASSIGN(users, ListUsers({}));
  EXPECT_THAT(users.users(), SizeIs(1));
}

TEST_F(IdentityServiceTest, FirstAdminLoginIsRestrictedToChangingThePassword) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string bootstrap, h_->BootstrapPassword());
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse first, Login("admin", bootstrap));
  EXPECT_TRUE(first.password_change_required());
  const std::string restricted = first.tokens().access_token();
  EXPECT_THAT(Call(&Stub::ListUsers, v1::ListUsersRequest(), restricted),
              StatusIs(kPermissionDenied));
  EXPECT_THAT(GetUser(first.user_id(), restricted), StatusIs(kPermissionDenied));

  CRM_ASSERT_OK_AND_ASSIGN(v1::ChangePasswordResponse changed,
                           ChangePassword(restricted, bootstrap, kAdminPassword));
  EXPECT_THAT(Call(&Stub::ListUsers, v1::ListUsersRequest(), changed.tokens().access_token()),
              IsOk());
  // The restricted session ended with the change.
  EXPECT_THAT(ChangePassword(restricted, kAdminPassword, Password(1)), StatusIs(kUnauthenticated));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse again, Login("admin", kAdminPassword));
  EXPECT_FALSE(again.password_change_required());
  EXPECT_THAT(Login("admin", bootstrap), StatusIs(kUnauthenticated));
}

// The first administrator's initial password from a file (a Kubernetes Secret)
// instead of a generated one written out.
constexpr char kInitialPassword[] = "Quiet-Meadow-Compass-42";

class InitialPasswordTest : public IdentityServiceTest {
 protected:
  void Configure(IdentityConfig& c) override {
    c.bootstrap_admin_password_file.clear();
    c.bootstrap_admin_initial_password_file =
        (std::filesystem::path(c.kek_file).parent_path() / "initial").string();
    EXPECT_THAT(WriteSecretFile(c.bootstrap_admin_initial_password_file,
                                absl::StrCat(kInitialPassword, "\n")),
                IsOk());
  }
};

TEST_F(InitialPasswordTest, FirstAdminSignsInWithItAndMustChangeIt) {
  EXPECT_THAT(Login("admin", "Quiet-Meadow-Compass-41"), StatusIs(kUnauthenticated));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse first, Login("admin", kInitialPassword));
  EXPECT_TRUE(first.password_change_required());
  CRM_ASSERT_OK_AND_ASSIGN(
      v1::ChangePasswordResponse changed,
      ChangePassword(first.tokens().access_token(), kInitialPassword, kAdminPassword));
  EXPECT_THAT(Call(&Stub::ListUsers, v1::ListUsersRequest(), changed.tokens().access_token()),
              IsOk());
  // Nothing was written where a generated password would go.
  EXPECT_THAT(h_->config().bootstrap_admin_password_file, IsEmpty());
}

TEST(InitialPasswordStartTest, AWeakOneOrAnOpenFileOrBothSettingsStopTheStart) {
  auto start = [](absl::string_view content, mode_t mode, bool both) {
    return Harness::Start([&](IdentityConfig& c) {
      const std::string path =
          (std::filesystem::path(c.kek_file).parent_path() / "initial").string();
      if (!both) c.bootstrap_admin_password_file.clear();
      c.bootstrap_admin_initial_password_file = path;
      EXPECT_THAT(WriteSecretFile(path, content), IsOk());
      EXPECT_EQ(chmod(path.c_str(), mode), 0);
    });
  };
  absl::StatusOr<std::unique_ptr<Harness>> weak = start("short", 0400, false);
  EXPECT_THAT(weak.status(), StatusIs(kInvalidArgument));
  EXPECT_THAT(std::string(weak.status().message()),
              HasSubstr("bootstrap_admin_initial_password_file"));
  EXPECT_THAT(start(kInitialPassword, 0644, false).status(), StatusIs(kFailedPrecondition));
  absl::StatusOr<std::unique_ptr<Harness>> both = start(kInitialPassword, 0400, true);
  EXPECT_THAT(both.status(), StatusIs(kInvalidArgument));
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("set one"));
  EXPECT_THAT(start(kInitialPassword, 0440, false), IsOk());
}

// ---- Users --------------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, CreateGetAndPageThroughUsers) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  h_->clock().Advance(absl::Seconds(1));  // after the bootstrap admin
  const absl::Time created = h_->clock().Now();
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  EXPECT_EQ(alice.kind(), v1::USER_KIND_PERSON);
  EXPECT_EQ(alice.username(), "alice");
  EXPECT_EQ(alice.email(), "alice@example.com");
  EXPECT_EQ(alice.display_name(), "Test Operator");
  EXPECT_EQ(alice.status(), v1::USER_STATUS_ACTIVE);
  EXPECT_FALSE(alice.must_change_password());
  EXPECT_EQ(TimeOf(alice.password_expires_at()), created + absl::Hours(24 * 90));

  CRM_ASSERT_OK_AND_ASSIGN(v1::User got, GetUser(alice.user_id(), admin));
  EXPECT_EQ(got.username(), "alice");
  EXPECT_EQ(got.email(), "alice@example.com");
  // Self may read itself, not others.
  CRM_ASSERT_OK_AND_ASSIGN(std::string alice_token, TokenOf("alice"));
  EXPECT_THAT(GetUser(alice.user_id(), alice_token), IsOk());
  EXPECT_THAT(GetUser(admin_id_, alice_token), StatusIs(kPermissionDenied));
  EXPECT_THAT(GetUser("8b0f7c2e-64a5-4c47-9d3e-1f2a3b4c5d6e", admin), StatusIs(kNotFound));
  EXPECT_THAT(GetUser("not-a-uuid", admin), StatusIs(kInvalidArgument, StartsWith("user_id")));
  // Without a token nothing but the open RPCs answers.
  EXPECT_THAT(GetUser(alice.user_id(), ""), StatusIs(kUnauthenticated));

  // Unless told otherwise, a new user must choose its own password first.
  h_->clock().Advance(absl::Seconds(1));
  v1::CreateUserRequest defaulted = UserRequest("erin");
  defaulted.clear_must_change_password();
  CRM_ASSERT_OK_AND_ASSIGN(v1::CreateUserResponse erin, Create(defaulted));
  EXPECT_TRUE(erin.user().must_change_password());
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse first_login, LoginAs("erin"));
  EXPECT_TRUE(first_login.password_change_required());

  // Oldest first, across pages.
  for (absl::string_view name : {"bob", "carol", "dave"}) {
    h_->clock().Advance(absl::Seconds(1));
    ASSERT_THAT(CreateUser(name), IsOk());
  }
  std::vector<std::string> names;
  v1::ListUsersRequest list;
  list.mutable_page()->set_page_size(2);
  int pages = 0;
  do {
    CRM_ASSERT_OK_AND_ASSIGN(v1::ListUsersResponse page, ListUsers(list));
    ASSERT_LE(page.users_size(), 2);
    for (const v1::User& u : page.users()) names.push_back(u.username());
    list.mutable_page()->set_page_token(page.page().next_page_token());
    ASSERT_LT(++pages, 10);
  } while (!list.page().page_token().empty());
  EXPECT_THAT(names, ElementsAre("admin", "alice", "erin", "bob", "carol", "dave"));
  EXPECT_EQ(pages, 3);

  // A page token only works with the filters it was issued for.
  list.mutable_page()->set_page_token("");
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListUsersResponse first, ListUsers(list));
  list.mutable_page()->set_page_token(first.page().next_page_token());
  list.set_status(v1::USER_STATUS_DISABLED);
  EXPECT_THAT(ListUsers(list), StatusIs(kInvalidArgument, HasSubstr("page_token")));
}

TEST_F(IdentityServiceTest, ListUsersFiltersByStatusRoleAndTeam) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::Team team, CreateTeam("Sales North"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice", {team.team_id()}));
  EXPECT_THAT(alice.team_ids(), ElementsAre(team.team_id()));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User bob, CreateUser("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User carol, CreateUser("carol"));
  ASSERT_THAT(GrantRole(bob.user_id(), "sales"), IsOk());
  ASSERT_THAT(GrantRole(carol.user_id(), "sales"), IsOk());
  ASSERT_THAT(OnUser(&Stub::DisableUser, carol.user_id()), IsOk());

  auto usernames = [&](v1::ListUsersRequest req) {
    std::vector<std::string> out;
    absl::StatusOr<v1::ListUsersResponse> resp = ListUsers(req);
    EXPECT_THAT(resp, IsOk());
    if (resp.ok()) {
      for (const v1::User& u : resp->users()) out.push_back(u.username());
    }
    return out;
  };
  v1::ListUsersRequest req;
  req.set_status(v1::USER_STATUS_DISABLED);
  EXPECT_THAT(usernames(req), ElementsAre("carol"));
  req.set_status(v1::USER_STATUS_ACTIVE);
  EXPECT_THAT(usernames(req), UnorderedElementsAre("admin", "alice", "bob"));

  req.Clear();
  req.set_role("sales");
  EXPECT_THAT(usernames(req), UnorderedElementsAre("bob", "carol"));
  req.set_status(v1::USER_STATUS_ACTIVE);
  EXPECT_THAT(usernames(req), ElementsAre("bob"));
  req.Clear();
  req.set_role("admin");
  EXPECT_THAT(usernames(req), ElementsAre("admin"));

  req.Clear();
  req.set_team_id(team.team_id());
  EXPECT_THAT(usernames(req), ElementsAre("alice"));

  // Role listings page too.
  req.Clear();
  req.set_role("sales");
  req.mutable_page()->set_page_size(1);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListUsersResponse first, ListUsers(req));
  ASSERT_THAT(first.users(), SizeIs(1));
  ASSERT_FALSE(first.page().next_page_token().empty());
  req.mutable_page()->set_page_token(first.page().next_page_token());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListUsersResponse second, ListUsers(req));
  ASSERT_THAT(second.users(), SizeIs(1));
  EXPECT_NE(first.users(0).user_id(), second.users(0).user_id());
}

TEST_F(IdentityServiceTest, DisableEnableAndDeleteUser) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string token, TokenOf("alice"));

  CRM_ASSERT_OK_AND_ASSIGN(v1::DisableUserResponse disabled,
                           OnUser(&Stub::DisableUser, alice.user_id()));
  EXPECT_EQ(disabled.user().status(), v1::USER_STATUS_DISABLED);
  EXPECT_THAT(GetUser(alice.user_id(), token), StatusIs(kUnauthenticated));  // sessions revoked
  EXPECT_THAT(LoginAs("alice"), StatusIs(kUnauthenticated));
  EXPECT_THAT(OnUser(&Stub::DisableUser, alice.user_id()), IsOk());  // idempotent

  CRM_ASSERT_OK_AND_ASSIGN(v1::EnableUserResponse enabled,
                           OnUser(&Stub::EnableUser, alice.user_id()));
  EXPECT_EQ(enabled.user().status(), v1::USER_STATUS_ACTIVE);
  EXPECT_THAT(LoginAs("alice"), IsOk());

  ASSERT_THAT(OnUser(&Stub::DeleteUser, alice.user_id()), IsOk());
  EXPECT_THAT(AdminGetUser(alice.user_id()), StatusIs(kNotFound));
  EXPECT_THAT(OnUser(&Stub::DeleteUser, alice.user_id()), IsOk());  // already gone
  EXPECT_THAT(LoginAs("alice"), StatusIs(kUnauthenticated));
  EXPECT_THAT(OnUser(&Stub::DisableUser, alice.user_id()), StatusIs(kNotFound));
  EXPECT_THAT(OnUser(&Stub::EnableUser, alice.user_id()), StatusIs(kNotFound));
}

TEST_F(IdentityServiceTest, UsernamesAreUniqueIgnoringCase) {
  ASSERT_THAT(CreateUser("dora"), IsOk());
  v1::CreateUserRequest req = UserRequest("DoRa");
  req.set_email("other.dora@example.com");
  EXPECT_THAT(Create(req), StatusIs(kAlreadyExists, HasSubstr("username")));
  // The stored name is lower case.
  CRM_ASSERT_OK_AND_ASSIGN(v1::User upper, CreateUser("ERIK"));
  EXPECT_EQ(upper.username(), "erik");
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, Login("Erik", PasswordOf("ERIK")));
  EXPECT_EQ(login.user_id(), upper.user_id());
}

TEST_F(IdentityServiceTest, MalformedUserFieldsAreInvalidArgumentNamingTheField) {
  struct Case {
    std::string what;
    std::function<void(v1::CreateUserRequest&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"short username", [](auto& r) { r.set_username("ab"); }, "username:"},
      {"space in username", [](auto& r) { r.set_username("bad name"); }, "username:"},
      {"username starting with a dot", [](auto& r) { r.set_username(".hidden"); }, "username:"},
      {"username too long", [](auto& r) { r.set_username(std::string(65, 'u')); }, "username:"},
      {"email without domain", [](auto& r) { r.set_email("frank@"); }, "email:"},
      {"email without at", [](auto& r) { r.set_email("frank.example.com"); }, "email:"},
      {"empty display name", [](auto& r) { r.set_display_name(""); }, "display_name:"},
      {"long display name", [](auto& r) { r.set_display_name(std::string(201, 'd')); },
       "display_name:"},
      {"control character in display name", [](auto& r) { r.set_display_name("Fr\x01nk"); },
       "display_name:"},
      {"empty password", [](auto& r) { r.set_initial_password(""); }, "initial_password:"},
      {"bad team id", [](auto& r) { r.add_team_ids("team-1"); }, "team_ids[0]:"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    v1::CreateUserRequest req = UserRequest("frank");
    c.edit(req);
    EXPECT_THAT(Create(req), StatusIs(kInvalidArgument, StartsWith(c.field)));
  }
  // Nothing was created along the way.
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListUsersResponse users, ListUsers({}));
  EXPECT_THAT(users.users(), SizeIs(1));
}

TEST_F(IdentityServiceTest, EachPasswordPolicyViolationIsReported) {
  auto create_with = [&](absl::string_view username, absl::string_view password) {
    v1::CreateUserRequest req = UserRequest(username);
    req.set_initial_password(std::string(password));
    return Create(req);
  };
  EXPECT_THAT(
      create_with("grace", "Sh0rt-pw"),
      StatusIs(kInvalidArgument, AllOf(StartsWith("initial_password:"), HasSubstr("too_short"))));
  EXPECT_THAT(create_with("mallory", "My-Name-Is-Mallory-42"),
              StatusIs(kInvalidArgument, HasSubstr("contains_username")));
  EXPECT_THAT(create_with("grace", "password12345678"),
              StatusIs(kInvalidArgument, HasSubstr("common_password")));
  // Several at once, each its own reason.
  EXPECT_THAT(
      create_with("mallory", "mallory1"),
      StatusIs(kInvalidArgument, AllOf(HasSubstr("too_short"), HasSubstr("contains_username"))));

  // Reuse: the last 5 passwords (the current one included) are refused.
  ASSERT_THAT(CreateUser("grace"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string token, TokenOf("grace"));
  std::string current = PasswordOf("grace");
  for (int n = 1; n <= 4; ++n) {
    CRM_ASSERT_OK_AND_ASSIGN(v1::ChangePasswordResponse changed,
                             ChangePassword(token, current, Password(n)));
    token = changed.tokens().access_token();
    current = Password(n);
  }
  EXPECT_THAT(ChangePassword(token, current, current),
              StatusIs(kInvalidArgument, AllOf(StartsWith("new_password:"), HasSubstr("reused"))));
  EXPECT_THAT(ChangePassword(token, current, PasswordOf("grace")),
              StatusIs(kInvalidArgument, HasSubstr("reused")));
  EXPECT_THAT(
      ChangePassword(token, current, "tiny"),
      StatusIs(kInvalidArgument, AllOf(StartsWith("new_password:"), HasSubstr("too_short"))));
  EXPECT_THAT(ChangePassword(token, kWrongPassword, Password(9)),
              StatusIs(kUnauthenticated, HasSubstr("current_password")));
  // One more change pushes the initial password out of the last 5.
  CRM_ASSERT_OK_AND_ASSIGN(v1::ChangePasswordResponse fifth,
                           ChangePassword(token, current, Password(5)));
  EXPECT_THAT(ChangePassword(fifth.tokens().access_token(), Password(5), PasswordOf("grace")),
              IsOk());
}

TEST_F(IdentityServiceTest, PasswordsThatAreNotTextOrTooLongAreRefused) {
  const std::string control = "Valid-Start-\x01-Then-More";
  const std::string too_many_chars(129, 'q');
  const std::string too_many_bytes(600, 'q');
  for (const std::string& bad : {control, too_many_chars, too_many_bytes}) {
    v1::CreateUserRequest req = UserRequest("heidi");
    req.set_initial_password(bad);
    EXPECT_THAT(Create(req), StatusIs(kInvalidArgument, StartsWith("initial_password:")));
    EXPECT_THAT(Login("admin", bad), StatusIs(kInvalidArgument, StartsWith("password:")));
  }
  // 128 characters are fine.
  v1::CreateUserRequest longest = UserRequest("heidi");
  longest.set_initial_password(absl::StrCat("Zq-", std::string(125, 'z')));
  ASSERT_THAT(Create(longest), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, Login("heidi", longest.initial_password()));
  for (const std::string& bad : {control, too_many_chars}) {
    EXPECT_THAT(ChangePassword(login.tokens().access_token(), longest.initial_password(), bad),
                StatusIs(kInvalidArgument, StartsWith("new_password:")));
  }

  // Bytes that are not UTF-8 do not even parse as a request (proto3 string
  // fields): refused before any handler (today with INTERNAL, not the
  // INVALID_ARGUMENT the contract names), so they neither create anything
  // nor count as failed logins.
  const std::string not_utf8 = "Valid-Start-\xff\xfe-Then-Junk";
  v1::CreateUserRequest garbled = UserRequest("ivan");
  garbled.set_initial_password(not_utf8);
  EXPECT_THAT(Create(garbled), Not(IsOk()));
  for (int i = 0; i < 6; ++i) EXPECT_THAT(Login("heidi", not_utf8), Not(IsOk()));
  EXPECT_THAT(Login("heidi", longest.initial_password()), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListUsersResponse users, ListUsers({}));
  EXPECT_THAT(users.users(), SizeIs(2));
}

TEST_F(IdentityServiceTest, AdminCannotDisableOrDeleteItself) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  EXPECT_THAT(OnUser(&Stub::DisableUser, admin_id_),
              StatusIs(kFailedPrecondition, HasSubstr("itself")));
  EXPECT_THAT(OnUser(&Stub::DeleteUser, admin_id_),
              StatusIs(kFailedPrecondition, HasSubstr("itself")));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User self, GetUser(admin_id_, admin));
  EXPECT_EQ(self.status(), v1::USER_STATUS_ACTIVE);
}

TEST_F(IdentityServiceTest, TheLastActiveAdminStays) {
  // carol administers users without holding the admin role.
  ASSERT_THAT(CreateRole("useradmin", {"identity.admin"}), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::User carol, CreateUser("carol"));
  ASSERT_THAT(GrantRole(carol.user_id(), "useradmin"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string carol_token, TokenOf("carol"));

  EXPECT_THAT(OnUser(&Stub::DisableUser, admin_id_, carol_token),
              StatusIs(kFailedPrecondition, HasSubstr("last active administrator")));
  EXPECT_THAT(OnUser(&Stub::DeleteUser, admin_id_, carol_token),
              StatusIs(kFailedPrecondition, HasSubstr("last active administrator")));

  CRM_ASSERT_OK_AND_ASSIGN(v1::User dave, CreateUser("dave"));
  ASSERT_THAT(GrantRole(dave.user_id(), "admin"), IsOk());
  EXPECT_THAT(OnUser(&Stub::DisableUser, admin_id_, carol_token), IsOk());
  // Now dave is the only active admin.
  EXPECT_THAT(OnUser(&Stub::DisableUser, dave.user_id(), carol_token),
              StatusIs(kFailedPrecondition, HasSubstr("last active administrator")));
  EXPECT_THAT(OnUser(&Stub::DeleteUser, dave.user_id(), carol_token),
              StatusIs(kFailedPrecondition));
}

TEST_F(IdentityServiceTest, ErrorMessagesCarryNoPersonalData) {
  const std::string name = "priscilla.private";
  const std::string email = "priscilla.private@example.org";
  v1::CreateUserRequest req = UserRequest(name);
  req.set_email(email);
  req.set_display_name("Priscilla Private");
  ASSERT_THAT(Create(req), IsOk());

  std::vector<absl::Status> errors;
  errors.push_back(Create(req).status());  // username taken
  v1::CreateUserRequest same_email = UserRequest("someone.else");
  same_email.set_email(email);
  errors.push_back(Create(same_email).status());
  v1::CreateUserRequest named = UserRequest("priscilla.other");
  named.set_initial_password("X-priscilla.other-Y-1");
  errors.push_back(Create(named).status());
  v1::CreateUserRequest bad_email = UserRequest("priscilla.third");
  bad_email.set_email("priscilla.third@@example.org");
  errors.push_back(Create(bad_email).status());
  errors.push_back(Login(name, kWrongPassword).status());
  errors.push_back(Login("priscilla.nobody", kWrongPassword).status());
  CRM_ASSERT_OK_AND_ASSIGN(std::string token, TokenOf(name));
  errors.push_back(ChangePassword(token, kWrongPassword, Password(1)).status());
  errors.push_back(ChangePassword(token, PasswordOf(name), "Priscilla.Private-2030").status());

  for (const absl::Status& s : errors) {
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("priscilla"))) << s;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("Priscilla"))) << s;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("example.org"))) << s;
  }
}

// ---- Login --------------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, EveryRefusedLoginLooksTheSame) {
  ASSERT_THAT(CreateUser("alice"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::User bob, CreateUser("bob"));
  ASSERT_THAT(CreateUser("carol"), IsOk());
  ASSERT_THAT(OnUser(&Stub::DisableUser, bob.user_id()), IsOk());
  FailFiveTimes("carol");

  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse ok, LoginAs("alice"));
  EXPECT_FALSE(ok.tokens().access_token().empty());
  EXPECT_FALSE(ok.tokens().refresh_token().empty());
  EXPECT_FALSE(ok.password_change_required());

  const absl::Status wrong = Login("alice", kWrongPassword).status();
  ASSERT_THAT(wrong, StatusIs(kUnauthenticated));
  EXPECT_EQ(Login("nobody", kWrongPassword).status(), wrong);  // unknown user
  EXPECT_EQ(LoginAs("bob").status(), wrong);                   // disabled
  EXPECT_EQ(LoginAs("carol").status(), wrong);                 // locked
}

TEST_F(IdentityServiceTest, LockoutEscalatesFromFifteenToThirtyMinutesThenUntilUnlocked) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  base::FakeClock& clock = h_->clock();

  // First lockout: 15 minutes, even for the right password.
  absl::Time locked_at = clock.Now();
  FailFiveTimes("alice");
  EXPECT_THAT(LoginAs("alice"), StatusIs(kUnauthenticated));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User locked, AdminGetUser(alice.user_id()));
  EXPECT_EQ(TimeOf(locked.locked_until()), locked_at + absl::Minutes(15));
  EXPECT_FALSE(locked.locked_permanently());
  clock.Advance(absl::Minutes(15) - absl::Seconds(1));
  EXPECT_THAT(LoginAs("alice"), StatusIs(kUnauthenticated));
  clock.Advance(absl::Seconds(2));
  EXPECT_THAT(LoginAs("alice"), IsOk());

  // Second lockout: 30 minutes.
  FailFiveTimes("alice");
  clock.Advance(absl::Minutes(15) + absl::Seconds(1));
  EXPECT_THAT(LoginAs("alice"), StatusIs(kUnauthenticated));
  clock.Advance(absl::Minutes(15));
  EXPECT_THAT(LoginAs("alice"), IsOk());

  // Third lockout: until an admin unlocks.
  FailFiveTimes("alice");
  clock.Advance(absl::Hours(48));
  EXPECT_THAT(LoginAs("alice"), StatusIs(kUnauthenticated));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User permanent, AdminGetUser(alice.user_id()));
  EXPECT_TRUE(permanent.locked_permanently());
  CRM_ASSERT_OK_AND_ASSIGN(Credentials creds, h_->credentials().Get(alice.user_id()));
  EXPECT_EQ(creds.lockout.lockouts, 3);

  CRM_ASSERT_OK_AND_ASSIGN(v1::UnlockUserResponse unlocked,
                           OnUser(&Stub::UnlockUser, alice.user_id()));
  EXPECT_FALSE(unlocked.user().locked_permanently());
  EXPECT_FALSE(unlocked.user().has_locked_until());
  EXPECT_THAT(LoginAs("alice"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(creds, h_->credentials().Get(alice.user_id()));
  EXPECT_EQ(creds.lockout.lockouts, 0);
}

TEST_F(IdentityServiceTest, RacingWrongPasswordsLockTheAccountOnce) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  constexpr int kThreads = 10;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Login("alice", kWrongPassword).status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_THAT(s, StatusIs(kUnauthenticated));

  CRM_ASSERT_OK_AND_ASSIGN(Credentials creds, h_->credentials().Get(alice.user_id()));
  EXPECT_EQ(creds.lockout.lockouts, 1);
  EXPECT_EQ(creds.lockout.locked_until, h_->clock().Now() + absl::Minutes(15));
  EXPECT_THAT(LoginAs("alice"), StatusIs(kUnauthenticated));
}

TEST_F(IdentityServiceTest, LoginHistoryListsAttemptsForAdminsOnly) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  ASSERT_THAT(Login("alice", kWrongPassword, {"192.0.2.10", "HistoryAgent/1.0"}),
              StatusIs(kUnauthenticated));
  h_->clock().Advance(absl::Seconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login,
                           LoginAs("alice", {"192.0.2.11", "HistoryAgent/2.0"}));

  v1::ListLoginHistoryRequest req;
  req.set_user_id(alice.user_id());
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListLoginHistoryResponse history,
                           Call(&Stub::ListLoginHistory, req, admin));
  ASSERT_THAT(history.attempts(), SizeIs(2));
  const v1::LoginAttempt& newest = history.attempts(0);
  EXPECT_EQ(newest.result(), v1::LOGIN_RESULT_SUCCESS);
  EXPECT_EQ(newest.user_id(), alice.user_id());
  EXPECT_EQ(newest.source_address(), "192.0.2.11");
  EXPECT_EQ(newest.user_agent(), "HistoryAgent/2.0");
  const v1::LoginAttempt& oldest = history.attempts(1);
  EXPECT_EQ(oldest.result(), v1::LOGIN_RESULT_BAD_PASSWORD);
  EXPECT_EQ(oldest.source_address(), "192.0.2.10");
  EXPECT_EQ(oldest.user_agent(), "HistoryAgent/1.0");
  EXPECT_LT(TimeOf(oldest.at()), TimeOf(newest.at()));

  EXPECT_THAT(Call(&Stub::ListLoginHistory, req, login.tokens().access_token()),
              StatusIs(kPermissionDenied));
  // audit.read is enough.
  CRM_ASSERT_OK_AND_ASSIGN(v1::User bob, CreateUser("bob"));
  ASSERT_THAT(GrantRole(bob.user_id(), "auditor"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string auditor, TokenOf("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(history, Call(&Stub::ListLoginHistory, req, auditor));
  EXPECT_THAT(history.attempts(), SizeIs(2));
  req.set_user_id("8b0f7c2e-64a5-4c47-9d3e-1f2a3b4c5d6e");
  EXPECT_THAT(Call(&Stub::ListLoginHistory, req, admin), StatusIs(kNotFound));
}

class ThrottledLoginTest : public IdentityServiceTest {
 protected:
  void Configure(IdentityConfig& config) override { config.login_throttle_attempts = 5; }
};

TEST_F(ThrottledLoginTest, OneSourceIsThrottledOthersAreNot) {
  ASSERT_THAT(CreateUser("alice"), IsOk());
  const From busy{"198.51.100.7", "", ""};
  ASSERT_THAT(Login("alice", kWrongPassword, busy), StatusIs(kUnauthenticated));
  for (int i = 0; i < 4; ++i) ASSERT_THAT(LoginAs("alice", busy), IsOk());
  EXPECT_THAT(LoginAs("alice", busy), StatusIs(kResourceExhausted, HasSubstr("retry in")));
  EXPECT_THAT(Login("nobody", kWrongPassword, busy), StatusIs(kResourceExhausted));
  EXPECT_THAT(LoginAs("alice", {"198.51.100.8", "", ""}), IsOk());
  // The window slides on.
  h_->clock().Advance(absl::Minutes(2));
  EXPECT_THAT(LoginAs("alice", busy), IsOk());
}

// ---- Password expiry and forced change ----------------------------------------------------------

TEST_F(IdentityServiceTest, ExpiredPasswordGivesARestrictedToken) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  h_->clock().Advance(absl::Hours(24 * 80));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse reminded, LoginAs("alice"));
  EXPECT_FALSE(reminded.password_change_required());
  EXPECT_EQ(reminded.password_expires_in_days(), 10);

  h_->clock().Advance(absl::Hours(24 * 11));  // 91 days
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse expired, LoginAs("alice"));
  EXPECT_TRUE(expired.password_change_required());
  EXPECT_THAT(GetUser(alice.user_id(), expired.tokens().access_token()),
              StatusIs(kPermissionDenied));
  CRM_ASSERT_OK_AND_ASSIGN(
      v1::ChangePasswordResponse changed,
      ChangePassword(expired.tokens().access_token(), PasswordOf("alice"), Password(1)));
  EXPECT_THAT(GetUser(alice.user_id(), changed.tokens().access_token()), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse after, Login("alice", Password(1)));
  EXPECT_FALSE(after.password_change_required());
}

TEST_F(IdentityServiceTest, SweepRemindsOfExpiringPasswordsOncePerReminderDay) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  const absl::Time expires = TimeOf(alice.password_expires_at());
  h_->clock().Set(expires - absl::Hours(24 * 20));
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  EXPECT_THAT(NoticesOf(alice.user_id(), NoticeKind::kPasswordExpiryReminder), IsEmpty());

  h_->clock().Set(expires - absl::Hours(24 * 13));
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  std::vector<NoticeRecord> reminders =
      NoticesOf(alice.user_id(), NoticeKind::kPasswordExpiryReminder);
  ASSERT_THAT(reminders, SizeIs(1));
  EXPECT_THAT(reminders[0].params_json, HasSubstr("14"));

  h_->clock().Set(expires - absl::Hours(12));
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  EXPECT_THAT(NoticesOf(alice.user_id(), NoticeKind::kPasswordExpiryReminder), SizeIs(2));
  // A new password starts over: no reminder for it yet.
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  ASSERT_THAT(ChangePassword(login.tokens().access_token(), PasswordOf("alice"), Password(1)),
              IsOk());
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  EXPECT_THAT(NoticesOf(alice.user_id(), NoticeKind::kPasswordExpiryReminder), SizeIs(2));
}

TEST_F(IdentityServiceTest, RequirePasswordChangeQueuesANoticeAndForcesTheChange) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::RequirePasswordChangeResponse required,
                           OnUser(&Stub::RequirePasswordChange, alice.user_id()));
  EXPECT_TRUE(required.user().must_change_password());
  EXPECT_THAT(NoticesOf(alice.user_id(), NoticeKind::kPasswordChangeRequired), SizeIs(1));

  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  EXPECT_TRUE(login.password_change_required());
  EXPECT_THAT(GetUser(alice.user_id(), login.tokens().access_token()), StatusIs(kPermissionDenied));
  ASSERT_THAT(ChangePassword(login.tokens().access_token(), PasswordOf("alice"), Password(1)),
              IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse after, Login("alice", Password(1)));
  EXPECT_FALSE(after.password_change_required());

  v1::CreateServiceAccountRequest sa;
  sa.set_name("shop");
  sa.set_spiffe_id("spiffe://crm.local/shop");
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  CRM_ASSERT_OK_AND_ASSIGN(v1::CreateServiceAccountResponse shop,
                           Call(&Stub::CreateServiceAccount, sa, admin));
  EXPECT_THAT(OnUser(&Stub::RequirePasswordChange, shop.account().user().user_id()),
              StatusIs(kFailedPrecondition));
}

TEST_F(IdentityServiceTest, ChangePasswordEndsEveryOtherSession) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse one, LoginAs("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse two, LoginAs("alice"));
  ASSERT_THAT(GetUser(alice.user_id(), two.tokens().access_token()), IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(
      v1::ChangePasswordResponse changed,
      ChangePassword(one.tokens().access_token(), PasswordOf("alice"), Password(1)));
  EXPECT_THAT(GetUser(alice.user_id(), two.tokens().access_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), one.tokens().access_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(Refresh(two.tokens().refresh_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), changed.tokens().access_token()), IsOk());
  EXPECT_THAT(Refresh(changed.tokens().refresh_token()), IsOk());
}

// ---- Tokens -------------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, RefreshRotatesAndAReplayRevokesTheSession) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  const v1::TokenPair first = login.tokens();

  CRM_ASSERT_OK_AND_ASSIGN(v1::RefreshSessionResponse rotated, Refresh(first.refresh_token()));
  const v1::TokenPair second = rotated.tokens();
  EXPECT_NE(second.refresh_token(), first.refresh_token());
  EXPECT_NE(second.access_token(), first.access_token());
  CRM_ASSERT_OK_AND_ASSIGN(Claims claims, Decode(second.access_token()));
  EXPECT_EQ(claims.session_id, login.session_id());
  EXPECT_THAT(GetUser(alice.user_id(), second.access_token()), IsOk());

  // The rotated token comes back: somebody holds a copy.
  EXPECT_THAT(Refresh(first.refresh_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(Refresh(second.refresh_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), second.access_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), first.access_token()), StatusIs(kUnauthenticated));

  EXPECT_THAT(Refresh("not-a-refresh-token"), StatusIs(kUnauthenticated));
  EXPECT_THAT(Refresh(""), StatusIs(kUnauthenticated));
}

TEST_F(IdentityServiceTest, ForgedTamperedUnsignedAndExpiredTokensAreRefused) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  const std::string token = login.tokens().access_token();
  ASSERT_THAT(GetUser(alice.user_id(), token), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(Claims real, Decode(token));
  const JwtParts parts = Split(token);
  const absl::Time now = h_->clock().Now();

  auto claims = [&] {
    auth::AccessTokenClaims c;
    c.issuer = h_->config().token_issuer;
    c.audience = {h_->config().token_audience};
    c.subject = alice.user_id();
    c.session_id = login.session_id();
    c.permissions = {"identity.admin"};
    c.issued_at = now;
    c.expires_at = now + absl::Minutes(10);
    return c;
  };
  auto refused = [&](const std::string& bad) {
    EXPECT_THAT(GetUser(admin_id_, bad), StatusIs(kUnauthenticated));
  };

  // Signed by identity's own key with the right claims: accepted (so the
  // refusals below are about the one thing each changes).
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const auth::TokenSigner> signer,
                           h_->app().keys().CurrentSigner());
  CRM_ASSERT_OK_AND_ASSIGN(std::string genuine, signer->Sign(claims()));
  EXPECT_THAT(GetUser(admin_id_, genuine), IsOk());

  // A key identity does not hold, even under its key id.
  refused(auth::testing::TokenMinter(real.kid).Mint(claims()));
  refused(auth::testing::TokenMinter("unknown-kid").Mint(claims()));
  // Payload edited after signing.
  std::optional<std::string> raw_payload = auth::Base64UrlDecode(parts.payload);
  ASSERT_TRUE(raw_payload.has_value());
  std::string widened = absl::StrReplaceAll(
      *raw_payload, {{"\"permissions\":[", "\"permissions\":[\"identity.admin\","}});
  ASSERT_NE(widened, *raw_payload);
  refused(Join({parts.header, auth::Base64UrlEncode(widened), parts.signature}));
  // Signature bytes edited.
  std::string flipped = parts.signature;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  refused(Join({parts.header, parts.payload, flipped}));
  // alg "none", with and without a signature.
  const std::string none_header = auth::Base64UrlEncode(
      absl::StrCat(R"({"alg":"none","typ":"JWT","kid":")", real.kid, R"("})"));
  refused(Join({none_header, parts.payload, ""}));
  refused(Join({none_header, parts.payload, parts.signature}));
  // Identity's key, but expired, or for another audience or issuer.
  auth::AccessTokenClaims expired = claims();
  expired.issued_at = now - absl::Hours(1);
  expired.expires_at = now - absl::Minutes(5);
  CRM_ASSERT_OK_AND_ASSIGN(std::string expired_token, signer->Sign(expired));
  refused(expired_token);
  auth::AccessTokenClaims elsewhere = claims();
  elsewhere.audience = {"another-deployment"};
  CRM_ASSERT_OK_AND_ASSIGN(std::string elsewhere_token, signer->Sign(elsewhere));
  refused(elsewhere_token);
  auth::AccessTokenClaims impostor = claims();
  impostor.issuer = "not-identity";
  CRM_ASSERT_OK_AND_ASSIGN(std::string impostor_token, signer->Sign(impostor));
  refused(impostor_token);
  refused("not.a.jwt");

  // The real token dies with its exp (+30 s leeway).
  h_->clock().Advance(absl::Minutes(15) + absl::Seconds(31));
  EXPECT_THAT(GetUser(alice.user_id(), token), StatusIs(kUnauthenticated, HasSubstr("expired")));
}

TEST_F(IdentityServiceTest, LogoutEndsTheSession) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse other, LoginAs("alice"));
  ASSERT_THAT(Call(&Stub::Logout, v1::LogoutRequest(), login.tokens().access_token()), IsOk());
  EXPECT_THAT(GetUser(alice.user_id(), login.tokens().access_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(Refresh(login.tokens().refresh_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), other.tokens().access_token()), IsOk());
  EXPECT_THAT(Call(&Stub::Logout, v1::LogoutRequest(), ""), StatusIs(kUnauthenticated));
}

TEST_F(IdentityServiceTest, TokensCarryTeamsAndRefreshRecomputesPermissions) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::Team north, CreateTeam("Support North"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Team south, CreateTeam("Support South"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice", {north.team_id()}));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Grant grant, GrantRole(alice.user_id(), "support"));

  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(Claims before, Decode(login.tokens().access_token()));
  EXPECT_EQ(before.subject, alice.user_id());
  EXPECT_EQ(before.session_id, login.session_id());
  EXPECT_THAT(before.teams, ElementsAre(north.team_id()));
  EXPECT_THAT(before.permissions, Contains("contacts.write"));

  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  v1::RevokeGrantRequest revoke;
  revoke.set_grant_id(grant.grant_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::RevokeGrantResponse revoked,
                           Call(&Stub::RevokeGrant, revoke, admin));
  EXPECT_EQ(revoked.grant().state(), v1::GRANT_STATE_REVOKED);
  v1::AddTeamMemberRequest join;
  join.set_team_id(south.team_id());
  join.set_user_id(alice.user_id());
  ASSERT_THAT(Call(&Stub::AddTeamMember, join, admin), IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(v1::RefreshSessionResponse refreshed,
                           Refresh(login.tokens().refresh_token()));
  CRM_ASSERT_OK_AND_ASSIGN(Claims after, Decode(refreshed.tokens().access_token()));
  EXPECT_THAT(after.permissions, IsEmpty());
  EXPECT_THAT(after.teams, UnorderedElementsAre(north.team_id(), south.team_id()));
}

// ---- Grants -------------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, GrantListExtendAndRevoke) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  const absl::Time now = h_->clock().Now();
  const absl::Duration day = absl::Hours(24);

  v1::GrantRoleRequest req;
  req.set_user_id(alice.user_id());
  req.set_role("support");
  req.set_justification("covering the hotline, ticket 4711");
  *req.mutable_not_before() = Ts(now);
  *req.mutable_not_after() = Ts(now + 10 * day);
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantRoleResponse support, Call(&Stub::GrantRole, req, admin));
  EXPECT_EQ(support.grant().state(), v1::GRANT_STATE_ACTIVE);
  EXPECT_EQ(support.grant().granted_by(), admin_id_);
  EXPECT_EQ(support.grant().justification(), "covering the hotline, ticket 4711");
  EXPECT_EQ(TimeOf(support.grant().not_after()), now + 10 * day);

  req.set_role("marketing");
  *req.mutable_not_before() = Ts(now + day);
  *req.mutable_not_after() = Ts(now + 20 * day);
  CRM_ASSERT_OK_AND_ASSIGN(v1::GrantRoleResponse marketing, Call(&Stub::GrantRole, req, admin));
  EXPECT_EQ(marketing.grant().state(), v1::GRANT_STATE_PENDING);

  auto grant_ids = [&](const auto& resp) {
    std::vector<std::string> ids;
    for (const v1::Grant& g : resp.grants()) ids.push_back(g.grant_id());
    return ids;
  };
  v1::ListGrantsRequest list;
  list.set_user_id(alice.user_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListGrantsResponse listed, Call(&Stub::ListGrants, list, admin));
  EXPECT_THAT(grant_ids(listed),
              UnorderedElementsAre(support.grant().grant_id(), marketing.grant().grant_id()));

  v1::ListExpiringGrantsRequest expiring;
  expiring.mutable_within()->set_seconds(absl::ToInt64Seconds(15 * day));
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListExpiringGrantsResponse soon,
                           Call(&Stub::ListExpiringGrants, expiring, admin));
  EXPECT_THAT(grant_ids(soon), ElementsAre(support.grant().grant_id()));

  v1::ExtendGrantRequest extend;
  extend.set_grant_id(support.grant().grant_id());
  *extend.mutable_new_not_after() = Ts(now + 30 * day);
  extend.set_justification("hotline cover extended");
  CRM_ASSERT_OK_AND_ASSIGN(v1::ExtendGrantResponse extended,
                           Call(&Stub::ExtendGrant, extend, admin));
  EXPECT_EQ(TimeOf(extended.grant().not_after()), now + 30 * day);
  *extend.mutable_new_not_after() = Ts(now + 5 * day);
  EXPECT_THAT(Call(&Stub::ExtendGrant, extend, admin),
              StatusIs(kInvalidArgument, StartsWith("new_not_after")));
  extend.clear_justification();
  *extend.mutable_new_not_after() = Ts(now + 40 * day);
  EXPECT_THAT(Call(&Stub::ExtendGrant, extend, admin),
              StatusIs(kInvalidArgument, StartsWith("justification")));
  CRM_ASSERT_OK_AND_ASSIGN(soon, Call(&Stub::ListExpiringGrants, expiring, admin));
  EXPECT_THAT(grant_ids(soon), IsEmpty());

  v1::RevokeGrantRequest revoke;
  revoke.set_grant_id(support.grant().grant_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::RevokeGrantResponse revoked,
                           Call(&Stub::RevokeGrant, revoke, admin));
  EXPECT_EQ(revoked.grant().state(), v1::GRANT_STATE_REVOKED);
  EXPECT_EQ(revoked.grant().revoked_by(), admin_id_);
  EXPECT_THAT(Call(&Stub::RevokeGrant, revoke, admin), IsOk());  // idempotent
  *extend.mutable_new_not_after() = Ts(now + 40 * day);
  extend.set_justification("too late: revoked");
  EXPECT_THAT(Call(&Stub::ExtendGrant, extend, admin), StatusIs(kFailedPrecondition));

  CRM_ASSERT_OK_AND_ASSIGN(listed, Call(&Stub::ListGrants, list, admin));
  EXPECT_THAT(grant_ids(listed), ElementsAre(marketing.grant().grant_id()));
  list.set_include_inactive(true);
  CRM_ASSERT_OK_AND_ASSIGN(listed, Call(&Stub::ListGrants, list, admin));
  EXPECT_THAT(listed.grants(), SizeIs(2));

  // Self may list its own grants only.
  CRM_ASSERT_OK_AND_ASSIGN(std::string alice_token, TokenOf("alice"));
  EXPECT_THAT(Call(&Stub::ListGrants, list, alice_token), IsOk());
  list.set_user_id(admin_id_);
  EXPECT_THAT(Call(&Stub::ListGrants, list, alice_token), StatusIs(kPermissionDenied));

  // Malformed requests.
  v1::GrantRoleRequest bad = req;
  bad.clear_not_before();
  *bad.mutable_not_after() = Ts(now - day);
  EXPECT_THAT(Call(&Stub::GrantRole, bad, admin),
              StatusIs(kInvalidArgument, HasSubstr("not_after")));
  bad = req;
  bad.set_justification("");
  EXPECT_THAT(Call(&Stub::GrantRole, bad, admin),
              StatusIs(kInvalidArgument, HasSubstr("justification")));
  bad = req;
  bad.set_role("no-such-role");
  EXPECT_THAT(Call(&Stub::GrantRole, bad, admin), StatusIs(kNotFound));
  bad = req;
  bad.set_user_id("8b0f7c2e-64a5-4c47-9d3e-1f2a3b4c5d6e");
  EXPECT_THAT(Call(&Stub::GrantRole, bad, admin), StatusIs(kNotFound));
  expiring.mutable_within()->set_seconds(0);
  EXPECT_THAT(Call(&Stub::ListExpiringGrants, expiring, admin),
              StatusIs(kInvalidArgument, StartsWith("within")));
  expiring.mutable_within()->set_seconds(absl::ToInt64Seconds(400 * day));
  EXPECT_THAT(Call(&Stub::ListExpiringGrants, expiring, admin),
              StatusIs(kInvalidArgument, StartsWith("within")));
}

TEST_F(IdentityServiceTest, NoEscalationAndNoSelfGrant) {
  // carol holds identity.admin through a custom role, but nothing else.
  ASSERT_THAT(CreateRole("useradmin", {"identity.admin"}), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::User carol, CreateUser("carol"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Grant carols, GrantRole(carol.user_id(), "useradmin"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User dave, CreateUser("dave"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string carol_token, TokenOf("carol"));

  EXPECT_THAT(GrantRole(dave.user_id(), "sales", std::nullopt, carol_token),
              StatusIs(kPermissionDenied, HasSubstr("contacts.")));
  EXPECT_THAT(GrantRole(dave.user_id(), "useradmin", std::nullopt, carol_token), IsOk());
  EXPECT_THAT(GrantRole(carol.user_id(), "useradmin", std::nullopt, carol_token),
              StatusIs(kPermissionDenied));
  EXPECT_THAT(GrantRole(admin_id_, "auditor"), StatusIs(kPermissionDenied));  // the admin, itself

  v1::CreateRoleRequest role;
  role.set_name("reader");
  role.add_permissions("contacts.read");
  EXPECT_THAT(Call(&Stub::CreateRole, role, carol_token), StatusIs(kPermissionDenied));
  v1::RevokeGrantRequest revoke;
  revoke.set_grant_id(carols.grant_id());
  EXPECT_THAT(Call(&Stub::RevokeGrant, revoke, carol_token), StatusIs(kPermissionDenied));
  v1::ExtendGrantRequest extend;
  extend.set_grant_id(carols.grant_id());
  *extend.mutable_new_not_after() = Ts(h_->clock().Now() + absl::Hours(24 * 365));
  extend.set_justification("more time for myself");
  EXPECT_THAT(Call(&Stub::ExtendGrant, extend, carol_token), StatusIs(kPermissionDenied));
  // Without identity.admin nothing at all.
  ASSERT_THAT(CreateUser("erik"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string erik_token, TokenOf("erik"));
  EXPECT_THAT(GrantRole(dave.user_id(), "useradmin", std::nullopt, erik_token),
              StatusIs(kPermissionDenied));
}

TEST_F(IdentityServiceTest, AccessTokensNeverOutliveTheEarliestGrant) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  const absl::Time end = h_->clock().Now() + absl::Minutes(5);
  ASSERT_THAT(GrantRole(alice.user_id(), "sales", end), IsOk());
  ASSERT_THAT(GrantRole(alice.user_id(), "support"), IsOk());  // open-ended

  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  EXPECT_EQ(TimeOf(login.tokens().access_expires_at()), end);
  CRM_ASSERT_OK_AND_ASSIGN(Claims claims, Decode(login.tokens().access_token()));
  EXPECT_LE(claims.expires_at, end);
  EXPECT_THAT(claims.permissions, Contains("mailing.send"));  // from sales

  // Past the grant's end, a refresh drops its permissions and the full
  // lifetime applies again.
  h_->clock().Advance(absl::Minutes(6));
  EXPECT_THAT(GetUser(alice.user_id(), login.tokens().access_token()), StatusIs(kUnauthenticated));
  CRM_ASSERT_OK_AND_ASSIGN(v1::RefreshSessionResponse refreshed,
                           Refresh(login.tokens().refresh_token()));
  CRM_ASSERT_OK_AND_ASSIGN(claims, Decode(refreshed.tokens().access_token()));
  EXPECT_THAT(claims.permissions, Not(Contains("mailing.send")));
  EXPECT_THAT(claims.permissions, Contains("consent.write"));  // support stays
  EXPECT_EQ(TimeOf(refreshed.tokens().access_expires_at()),
            h_->clock().Now() + h_->config().access_token_ttl);
}

TEST_F(IdentityServiceTest, SweepQueuesEachGrantExpiryNoticeOnce) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  const absl::Time end = h_->clock().Now() + absl::Hours(24 * 10);
  CRM_ASSERT_OK_AND_ASSIGN(v1::Grant grant, GrantRole(alice.user_id(), "support", end));

  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  EXPECT_THAT(NoticesOf(alice.user_id(), NoticeKind::kGrantExpiry), IsEmpty());

  h_->clock().Set(end - absl::Hours(24 * 6));
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  std::vector<NoticeRecord> user_notices = NoticesOf(alice.user_id(), NoticeKind::kGrantExpiry);
  ASSERT_THAT(user_notices, SizeIs(1));
  EXPECT_THAT(user_notices[0].params_json, HasSubstr(grant.grant_id()));
  EXPECT_THAT(NoticesOf(admin_id_, NoticeKind::kGrantExpiry), SizeIs(1));

  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  EXPECT_THAT(NoticesOf(alice.user_id(), NoticeKind::kGrantExpiry), SizeIs(1));
  EXPECT_THAT(NoticesOf(admin_id_, NoticeKind::kGrantExpiry), SizeIs(1));

  // The last day brings the final notice, once.
  h_->clock().Set(end - absl::Hours(12));
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  EXPECT_THAT(NoticesOf(alice.user_id(), NoticeKind::kGrantExpiry), SizeIs(2));
  EXPECT_THAT(NoticesOf(admin_id_, NoticeKind::kGrantExpiry), SizeIs(2));
}

TEST_F(IdentityServiceTest, RolesListBuiltInsAndCustomRolesWithUniqueNames) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  CRM_ASSERT_OK_AND_ASSIGN(v1::Role custom,
                           CreateRole("hotline", {"contacts.read", "consent.read"}));
  EXPECT_FALSE(custom.built_in());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListRolesResponse roles,
                           Call(&Stub::ListRoles, v1::ListRolesRequest(), admin));
  std::map<std::string, std::vector<std::string>> by_name;
  for (const v1::Role& r : roles.roles()) {
    by_name[r.name()].assign(r.permissions().begin(), r.permissions().end());
  }
  for (absl::string_view builtin : {"admin", "dpo", "sales", "marketing", "support", "auditor"}) {
    EXPECT_TRUE(by_name.contains(std::string(builtin))) << builtin;
  }
  EXPECT_THAT(by_name["hotline"], UnorderedElementsAre("contacts.read", "consent.read"));
  EXPECT_THAT(by_name["admin"], Contains("identity.admin"));

  v1::CreateRoleRequest req;
  req.set_name("hotline");
  req.add_permissions("contacts.read");
  EXPECT_THAT(Call(&Stub::CreateRole, req, admin), StatusIs(kAlreadyExists, StartsWith("name")));
  req.set_name("sales");  // taken by a built-in role
  EXPECT_THAT(Call(&Stub::CreateRole, req, admin), StatusIs(kAlreadyExists, StartsWith("name")));
  req.set_name("Bad Name");
  EXPECT_THAT(Call(&Stub::CreateRole, req, admin), StatusIs(kInvalidArgument, StartsWith("name")));
  req.set_name("night-shift");
  req.add_permissions("contacts.teleport");
  EXPECT_THAT(Call(&Stub::CreateRole, req, admin),
              StatusIs(kInvalidArgument, StartsWith("permissions[1]")));
  ASSERT_THAT(CreateUser("alice"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string alice, TokenOf("alice"));
  EXPECT_THAT(Call(&Stub::ListRoles, v1::ListRolesRequest(), alice), StatusIs(kPermissionDenied));
}

// ---- Teams --------------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, TeamsAndTheirMembers) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  CRM_ASSERT_OK_AND_ASSIGN(v1::Team north, CreateTeam("North"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::Team south, CreateTeam("South"));
  EXPECT_THAT(CreateTeam("NORTH"), StatusIs(kAlreadyExists));
  EXPECT_THAT(CreateTeam(""), StatusIs(kInvalidArgument, StartsWith("name")));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice", {north.team_id()}));
  CRM_ASSERT_OK_AND_ASSIGN(std::string alice_token, TokenOf("alice"));

  CRM_ASSERT_OK_AND_ASSIGN(v1::ListTeamsResponse all,
                           Call(&Stub::ListTeams, v1::ListTeamsRequest(), admin));
  ASSERT_THAT(all.teams(), SizeIs(2));
  EXPECT_EQ(all.teams(0).name(), "North");
  EXPECT_EQ(all.teams(0).member_count(), 1);
  EXPECT_EQ(all.teams(1).member_count(), 0);

  v1::ListTeamsRequest mine;
  mine.set_member_id(alice.user_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListTeamsResponse own, Call(&Stub::ListTeams, mine, alice_token));
  ASSERT_THAT(own.teams(), SizeIs(1));
  EXPECT_EQ(own.teams(0).team_id(), north.team_id());
  EXPECT_THAT(Call(&Stub::ListTeams, v1::ListTeamsRequest(), alice_token),
              StatusIs(kPermissionDenied));

  v1::AddTeamMemberRequest add;
  add.set_team_id(south.team_id());
  add.set_user_id(alice.user_id());
  ASSERT_THAT(Call(&Stub::AddTeamMember, add, admin), IsOk());
  ASSERT_THAT(Call(&Stub::AddTeamMember, add, admin), IsOk());  // idempotent
  EXPECT_THAT(Call(&Stub::AddTeamMember, add, alice_token), StatusIs(kPermissionDenied));
  v1::RemoveTeamMemberRequest remove;
  remove.set_team_id(north.team_id());
  remove.set_user_id(alice.user_id());
  ASSERT_THAT(Call(&Stub::RemoveTeamMember, remove, admin), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::User after, AdminGetUser(alice.user_id()));
  EXPECT_THAT(after.team_ids(), ElementsAre(south.team_id()));
  CRM_ASSERT_OK_AND_ASSIGN(std::string fresh, TokenOf("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(Claims claims, Decode(fresh));
  EXPECT_THAT(claims.teams, ElementsAre(south.team_id()));

  add.set_team_id("8b0f7c2e-64a5-4c47-9d3e-1f2a3b4c5d6e");
  EXPECT_THAT(Call(&Stub::AddTeamMember, add, admin), StatusIs(kNotFound));
  add.set_team_id(south.team_id());
  add.set_user_id("8b0f7c2e-64a5-4c47-9d3e-1f2a3b4c5d6e");
  EXPECT_THAT(Call(&Stub::AddTeamMember, add, admin), StatusIs(kNotFound));
}

// ---- MFA ----------------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, TotpLoginNeedsAFreshCodeAndRecoveryCodesWorkOnce) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string token, TokenOf("alice"));

  CRM_ASSERT_OK_AND_ASSIGN(v1::EnrollTotpResponse enrolled,
                           Call(&Stub::EnrollTotp, v1::EnrollTotpRequest(), token));
  EXPECT_THAT(enrolled.provisioning_uri(), StartsWith("otpauth://totp/"));
  EXPECT_THAT(enrolled.provisioning_uri(), Not(HasSubstr("alice")));
  CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes secret,
                           Base32Decode("secret", enrolled.secret_base32()));
  const std::string code = CodeNow(secret);
  v1::ConfirmTotpRequest confirm;
  confirm.set_code(code == "123456" ? "654321" : "123456");
  EXPECT_THAT(Call(&Stub::ConfirmTotp, confirm, token),
              StatusIs(kInvalidArgument, StartsWith("code")));
  confirm.set_code(code);
  CRM_ASSERT_OK_AND_ASSIGN(v1::ConfirmTotpResponse confirmed,
                           Call(&Stub::ConfirmTotp, confirm, token));
  ASSERT_THAT(confirmed.recovery_codes(), Not(IsEmpty()));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User user, GetUser(alice.user_id(), token));
  EXPECT_TRUE(user.totp_enabled());
  EXPECT_THAT(Call(&Stub::EnrollTotp, v1::EnrollTotpRequest(), token),
              StatusIs(kFailedPrecondition));

  EXPECT_THAT(LoginAs("alice"), StatusIs(kFailedPrecondition, HasSubstr("totp required")));
  // The confirming code's step is used up.
  EXPECT_THAT(LoginAs("alice", {"", "", code}), StatusIs(kUnauthenticated));
  h_->clock().Advance(kTotpPeriod);
  const std::string next = CodeNow(secret);
  EXPECT_THAT(LoginAs("alice", {"", "", next == "000000" ? "999999" : "000000"}),
              StatusIs(kUnauthenticated));
  EXPECT_THAT(Login("alice", kWrongPassword, {"", "", next}), StatusIs(kUnauthenticated));
  EXPECT_THAT(LoginAs("alice", {"", "", next}), IsOk());
  EXPECT_THAT(LoginAs("alice", {"", "", next}), StatusIs(kUnauthenticated));  // replay

  const std::string recovery = confirmed.recovery_codes(0);
  EXPECT_THAT(LoginAs("alice", {"", "", recovery}), IsOk());
  EXPECT_THAT(LoginAs("alice", {"", "", recovery}), StatusIs(kUnauthenticated));
  EXPECT_THAT(LoginAs("alice", {"", "", confirmed.recovery_codes(1)}), IsOk());
}

TEST_F(IdentityServiceTest, ARoleRequiringMfaRestrictsItsHoldersUntilTheyEnrol) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  ASSERT_THAT(GrantRole(alice.user_id(), "sales"), IsOk());
  v1::SetRoleRequiresMfaRequest mfa;
  mfa.set_role("sales");
  mfa.set_requires_mfa(true);
  CRM_ASSERT_OK_AND_ASSIGN(v1::SetRoleRequiresMfaResponse set,
                           Call(&Stub::SetRoleRequiresMfa, mfa, admin));
  EXPECT_TRUE(set.role().requires_mfa());
  EXPECT_TRUE(set.role().built_in());

  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse login, LoginAs("alice"));
  EXPECT_TRUE(login.mfa_enrollment_required());
  EXPECT_FALSE(login.password_change_required());
  const std::string restricted = login.tokens().access_token();
  EXPECT_THAT(GetUser(alice.user_id(), restricted), StatusIs(kPermissionDenied));

  CRM_ASSERT_OK_AND_ASSIGN(crypto::SecretBytes secret, EnrollTotp(restricted, nullptr));
  h_->clock().Advance(kTotpPeriod);
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse enrolled, LoginAs("alice", {"", "", CodeNow(secret)}));
  EXPECT_FALSE(enrolled.mfa_enrollment_required());
  EXPECT_THAT(GetUser(alice.user_id(), enrolled.tokens().access_token()), IsOk());

  // While the role requires it, TOTP stays on.
  h_->clock().Advance(kTotpPeriod);
  v1::DisableTotpRequest off;
  off.set_code(CodeNow(secret));
  EXPECT_THAT(Call(&Stub::DisableTotp, off, enrolled.tokens().access_token()),
              StatusIs(kFailedPrecondition));

  mfa.set_role("no-such-role");
  EXPECT_THAT(Call(&Stub::SetRoleRequiresMfa, mfa, admin), StatusIs(kNotFound));
}

TEST_F(IdentityServiceTest, DisableTotpNeedsACodeFromSelfButNotFromAnAdmin) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User bob, CreateUser("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string alice_token, TokenOf("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string bob_token, TokenOf("bob"));
  std::vector<std::string> recovery;
  ASSERT_THAT(EnrollTotp(alice_token, &recovery), IsOk());
  ASSERT_THAT(EnrollTotp(bob_token, nullptr), IsOk());

  v1::DisableTotpRequest off;
  EXPECT_THAT(Call(&Stub::DisableTotp, off, alice_token),
              StatusIs(kInvalidArgument, StartsWith("code")));
  off.set_code("not-a-recovery-code");
  EXPECT_THAT(Call(&Stub::DisableTotp, off, alice_token),
              StatusIs(kInvalidArgument, StartsWith("code")));
  off.set_user_id(bob.user_id());
  off.set_code("");
  EXPECT_THAT(Call(&Stub::DisableTotp, off, alice_token), StatusIs(kPermissionDenied));
  off.set_user_id("");
  off.set_code(recovery.at(0));
  ASSERT_THAT(Call(&Stub::DisableTotp, off, alice_token), IsOk());
  EXPECT_THAT(LoginAs("alice"), IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  v1::DisableTotpRequest for_bob;
  for_bob.set_user_id(bob.user_id());
  ASSERT_THAT(Call(&Stub::DisableTotp, for_bob, admin), IsOk());
  EXPECT_THAT(LoginAs("bob"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::User after, AdminGetUser(bob.user_id()));
  EXPECT_FALSE(after.totp_enabled());
}

// ---- Service accounts ---------------------------------------------------------------------------

TEST_F(IdentityServiceTest, ServiceTokensAreBoundToTheCallersCertificate) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  v1::CreateServiceAccountRequest req;
  req.set_name("shop");
  req.set_display_name("Web shop backend");
  req.set_spiffe_id("spiffe://crm.local/shop");
  CRM_ASSERT_OK_AND_ASSIGN(v1::CreateServiceAccountResponse created,
                           Call(&Stub::CreateServiceAccount, req, admin));
  const v1::User& account = created.account().user();
  EXPECT_EQ(account.kind(), v1::USER_KIND_SERVICE_ACCOUNT);
  EXPECT_EQ(created.account().spiffe_id(), "spiffe://crm.local/shop");
  ASSERT_THAT(GrantRole(account.user_id(), "sales"), IsOk());

  CRM_ASSERT_OK_AND_ASSIGN(
      v1::IssueServiceTokenResponse issued,
      Call(&Stub::IssueServiceToken, v1::IssueServiceTokenRequest(), "", "shop"));
  CRM_ASSERT_OK_AND_ASSIGN(Claims claims, Decode(issued.access_token()));
  const std::string shop_der = CertificateDer(h_->pki().Files("shop").cert_file);
  ASSERT_FALSE(shop_der.empty());
  EXPECT_EQ(claims.cert_thumbprint, auth::CertificateThumbprint(shop_der));
  EXPECT_EQ(claims.subject, account.user_id());
  EXPECT_THAT(claims.permissions, Contains("contacts.read"));
  EXPECT_LE(TimeOf(issued.expires_at()), h_->clock().Now() + h_->config().service_token_ttl);

  v1::GetUserRequest self;
  self.set_user_id(account.user_id());
  EXPECT_THAT(Call(&Stub::GetUser, self, issued.access_token(), "shop"), IsOk());
  EXPECT_THAT(Call(&Stub::GetUser, self, issued.access_token(), "billing"),
              StatusIs(kUnauthenticated));
  EXPECT_THAT(Call(&Stub::GetUser, self, issued.access_token(), "operator"),
              StatusIs(kUnauthenticated));

  // A service account has no password.
  EXPECT_THAT(Login("shop", kWrongPassword), StatusIs(kUnauthenticated));
  // Names and SPIFFE ids are taken once.
  req.set_name("shop2");
  EXPECT_THAT(Call(&Stub::CreateServiceAccount, req, admin),
              StatusIs(kAlreadyExists, StartsWith("spiffe_id")));
  req.set_spiffe_id("spiffe://elsewhere/shop");
  EXPECT_THAT(Call(&Stub::CreateServiceAccount, req, admin),
              StatusIs(kInvalidArgument, StartsWith("spiffe_id")));
}

TEST_F(IdentityServiceTest, UnboundOrDisabledCertificatesGetNoServiceToken) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  EXPECT_THAT(Call(&Stub::IssueServiceToken, v1::IssueServiceTokenRequest(), "", "billing"),
              StatusIs(kUnauthenticated));
  v1::CreateServiceAccountRequest req;
  req.set_name("shop");
  req.set_spiffe_id("spiffe://crm.local/shop");
  CRM_ASSERT_OK_AND_ASSIGN(v1::CreateServiceAccountResponse created,
                           Call(&Stub::CreateServiceAccount, req, admin));
  CRM_ASSERT_OK_AND_ASSIGN(
      v1::IssueServiceTokenResponse issued,
      Call(&Stub::IssueServiceToken, v1::IssueServiceTokenRequest(), "", "shop"));
  const std::string shop_id = created.account().user().user_id();
  v1::GetUserRequest self;
  self.set_user_id(shop_id);
  ASSERT_THAT(Call(&Stub::GetUser, self, issued.access_token(), "shop"), IsOk());

  // Disabling stops new tokens and revokes the issued ones at once.
  ASSERT_THAT(OnUser(&Stub::DisableUser, shop_id), IsOk());
  EXPECT_THAT(Call(&Stub::IssueServiceToken, v1::IssueServiceTokenRequest(), "", "shop"),
              StatusIs(kUnauthenticated));
  EXPECT_THAT(Call(&Stub::GetUser, self, issued.access_token(), "shop"),
              StatusIs(kUnauthenticated));

  // Enabled again, it gets tokens that work (a fresh token session id).
  ASSERT_THAT(OnUser(&Stub::EnableUser, shop_id), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(
      v1::IssueServiceTokenResponse again,
      Call(&Stub::IssueServiceToken, v1::IssueServiceTokenRequest(), "", "shop"));
  EXPECT_THAT(Call(&Stub::GetUser, self, again.access_token(), "shop"), IsOk());
  EXPECT_THAT(Call(&Stub::GetUser, self, issued.access_token(), "shop"),
              StatusIs(kUnauthenticated));
}

// ---- Sessions -----------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, ListSessionsMarksTheCurrentOneAndRevokeEndsOneOrAll) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse one, LoginAs("alice", {"192.0.2.1", "Laptop/1", ""}));
  h_->clock().Advance(absl::Seconds(1));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse two, LoginAs("alice", {"192.0.2.2", "Phone/2", ""}));
  const std::string token = two.tokens().access_token();

  v1::ListSessionsRequest list;
  list.set_user_id(alice.user_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::ListSessionsResponse sessions,
                           Call(&Stub::ListSessions, list, token));
  ASSERT_THAT(sessions.sessions(), SizeIs(2));
  EXPECT_EQ(sessions.sessions(0).session_id(), two.session_id());
  EXPECT_TRUE(sessions.sessions(0).current());
  EXPECT_EQ(sessions.sessions(0).source_address(), "192.0.2.2");
  EXPECT_EQ(sessions.sessions(0).user_agent(), "Phone/2");
  EXPECT_EQ(sessions.sessions(1).session_id(), one.session_id());
  EXPECT_FALSE(sessions.sessions(1).current());

  v1::RevokeSessionRequest revoke;
  revoke.set_user_id(alice.user_id());
  revoke.set_session_id(one.session_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::RevokeSessionResponse revoked,
                           Call(&Stub::RevokeSession, revoke, token));
  EXPECT_EQ(revoked.revoked(), 1);
  EXPECT_THAT(GetUser(alice.user_id(), one.tokens().access_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(Refresh(one.tokens().refresh_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), token), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(revoked, Call(&Stub::RevokeSession, revoke, token));
  EXPECT_EQ(revoked.revoked(), 0);  // idempotent

  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse three, LoginAs("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  revoke.clear_session_id();
  CRM_ASSERT_OK_AND_ASSIGN(revoked, Call(&Stub::RevokeSession, revoke, admin));
  EXPECT_EQ(revoked.revoked(), 2);
  EXPECT_THAT(GetUser(alice.user_id(), token), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), three.tokens().access_token()), StatusIs(kUnauthenticated));
}

TEST_F(IdentityServiceTest, UsersCannotSeeOrEndAnothersSessions) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User bob, CreateUser("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse alices, LoginAs("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string bob_token, TokenOf("bob"));

  v1::ListSessionsRequest list;
  list.set_user_id(alice.user_id());
  EXPECT_THAT(Call(&Stub::ListSessions, list, bob_token), StatusIs(kPermissionDenied));
  v1::RevokeSessionRequest revoke;
  revoke.set_user_id(alice.user_id());
  EXPECT_THAT(Call(&Stub::RevokeSession, revoke, bob_token), StatusIs(kPermissionDenied));
  // Naming alice's session as one of his own revokes nothing (the contract:
  // not a live session of the user -> revoked = 0) and does not touch it.
  revoke.set_user_id(bob.user_id());
  revoke.set_session_id(alices.session_id());
  CRM_ASSERT_OK_AND_ASSIGN(v1::RevokeSessionResponse foreign,
                           Call(&Stub::RevokeSession, revoke, bob_token));
  EXPECT_EQ(foreign.revoked(), 0);
  EXPECT_THAT(GetUser(alice.user_id(), alices.tokens().access_token()), IsOk());
}

// ---- Keys ---------------------------------------------------------------------------------------

TEST_F(IdentityServiceTest, SigningKeysPublishTheKeyTokensName) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  CRM_ASSERT_OK_AND_ASSIGN(Claims claims, Decode(admin));
  // No token needed.
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetSigningKeysResponse keys,
                           Call(&Stub::GetSigningKeys, v1::GetSigningKeysRequest()));
  const v1::SigningKey* named = nullptr;
  for (const v1::SigningKey& k : keys.keys()) {
    if (k.kid() == claims.kid) named = &k;
  }
  ASSERT_NE(named, nullptr);
  EXPECT_EQ(named->algorithm(), "EdDSA");
  EXPECT_FALSE(named->has_retired_at());
  CRM_ASSERT_OK_AND_ASSIGN(crypto::Ed25519PublicKey key,
                           crypto::Ed25519PublicKey::FromRaw(named->public_key()));
  const JwtParts parts = Split(admin);
  std::optional<std::string> signature = auth::Base64UrlDecode(parts.signature);
  ASSERT_TRUE(signature.has_value());
  EXPECT_TRUE(key.Verify(absl::StrCat(parts.header, ".", parts.payload), *signature));
}

TEST_F(IdentityServiceTest, RotatedKeysKeepEarlierTokensValidUntilTheyExpire) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User bob, CreateUser("bob"));
  h_->clock().Advance(h_->config().signing_key_rotation + absl::Hours(1));
  CRM_ASSERT_OK_AND_ASSIGN(std::string before, TokenOf("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(Claims old_claims, Decode(before));

  // The sweep publishes a successor ahead of use; tokens keep the old key.
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::GetSigningKeysResponse keys,
                           Call(&Stub::GetSigningKeys, v1::GetSigningKeysRequest()));
  EXPECT_THAT(keys.keys(), SizeIs(2));
  CRM_ASSERT_OK_AND_ASSIGN(std::string still_old, TokenOf("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(Claims claims, Decode(still_old));
  EXPECT_EQ(claims.kid, old_claims.kid);

  // Once the successor is active, new tokens name it; earlier ones verify
  // while they live.
  h_->clock().Advance(absl::Minutes(11));
  ASSERT_THAT(h_->app().service().Sweep(), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string after, TokenOf("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(Claims new_claims, Decode(after));
  EXPECT_NE(new_claims.kid, old_claims.kid);
  EXPECT_THAT(GetUser(bob.user_id(), after), IsOk());
  EXPECT_THAT(GetUser(bob.user_id(), still_old), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(keys, Call(&Stub::GetSigningKeys, v1::GetSigningKeysRequest()));
  bool old_retired = false;
  for (const v1::SigningKey& k : keys.keys()) {
    if (k.kid() == old_claims.kid) old_retired = k.has_retired_at();
  }
  EXPECT_TRUE(old_retired);
}

// ---- Redis outage -------------------------------------------------------------------------------

class RedisOutageTest : public IdentityServiceTest {
 protected:
  void Configure(IdentityConfig& config) override { config.login_throttle_attempts = 6; }
};

TEST_F(RedisOutageTest, LoginLockoutAndTokensGoOnAndNoRevocationIsLost) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::User bob, CreateUser("bob"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string token, TokenOf("alice"));
  ASSERT_THAT(GetUser(alice.user_id(), token), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse ended, LoginAs("alice"));
  ASSERT_THAT(Call(&Stub::Logout, v1::LogoutRequest(), ended.tokens().access_token()), IsOk());
  auto revoked_in_redis = [&](const std::string& session_id) -> absl::StatusOr<bool> {
    const crm::testing::RedisTestServer r = h_->redis().info();
    CRM_ASSIGN_OR_RETURN(
        std::unique_ptr<redis::Client> client,
        redis::Client::Create({.host = r.host, .port = r.port, .password = r.password}));
    CRM_ASSIGN_OR_RETURN(
        redis::Reply exists,
        client->Command("EXISTS", absl::StrCat(auth::kRevokedKeyPrefix, session_id)));
    return exists.integer == 1;
  };
  ASSERT_THAT(revoked_in_redis(ended.session_id()), IsOkAndHolds(true));

  ASSERT_THAT(h_->redis().Stop(), IsOk());
  // Past the revocation checker's memory of "not revoked" (at most 1 s).
  h_->clock().Advance(absl::Seconds(2));
  // Tokens are checked against identity's own record instead: they work, and
  // the session logged out before the outage stays refused.
  EXPECT_THAT(GetUser(alice.user_id(), token), IsOk());
  EXPECT_THAT(GetUser(alice.user_id(), ended.tokens().access_token()), StatusIs(kUnauthenticated));

  // Logging in needs no Redis, and the new token works.
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse during, LoginAs("alice", {"203.0.113.1", "", ""}));
  EXPECT_THAT(GetUser(alice.user_id(), during.tokens().access_token()), IsOk());
  // A logout during the outage is recorded and takes effect at once; another
  // one is not presented again until Redis is back.
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse gone, LoginAs("alice", {"203.0.113.6", "", ""}));
  ASSERT_THAT(Call(&Stub::Logout, v1::LogoutRequest(), gone.tokens().access_token()), IsOk());
  EXPECT_THAT(GetUser(alice.user_id(), gone.tokens().access_token()), StatusIs(kUnauthenticated));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse later, LoginAs("alice", {"203.0.113.7", "", ""}));
  ASSERT_THAT(Call(&Stub::Logout, v1::LogoutRequest(), later.tokens().access_token()), IsOk());

  // Failures are counted in PostgreSQL: five lock the account.
  FailFiveTimes("bob", {"203.0.113.2", "", ""});
  EXPECT_THAT(LoginAs("bob", {"203.0.113.3", "", ""}), StatusIs(kUnauthenticated));
  CRM_ASSERT_OK_AND_ASSIGN(Credentials creds, h_->credentials().Get(bob.user_id()));
  EXPECT_EQ(creds.lockout.lockouts, 1);

  // Throttling falls back to this replica's memory.
  const From busy{"203.0.113.4", "", ""};
  for (int i = 0; i < 6; ++i) ASSERT_THAT(LoginAs("alice", busy), IsOk());
  EXPECT_THAT(LoginAs("alice", busy), StatusIs(kResourceExhausted));
  EXPECT_THAT(LoginAs("alice", {"203.0.113.5", "", ""}), IsOk());
  EXPECT_THAT(h_->app().revocations().Watch(), StatusIs(kUnavailable));

  ASSERT_THAT(h_->redis().Restart(), IsOk());
  // Restarted empty: the set and its complete mark are gone. Until identity
  // republishes, a "not revoked" from Redis is not believed.
  EXPECT_THAT(revoked_in_redis(ended.session_id()), IsOkAndHolds(false));
  h_->clock().Advance(absl::Seconds(2));
  EXPECT_THAT(GetUser(alice.user_id(), later.tokens().access_token()), StatusIs(kUnauthenticated));
  EXPECT_THAT(GetUser(alice.user_id(), token), IsOk());
  // The watch (every second in the running service) writes the set back.
  ASSERT_THAT(h_->app().revocations().Watch(), IsOk());
  for (const v1::LoginResponse* revoked : {&ended, &gone, &later}) {
    EXPECT_THAT(revoked_in_redis(revoked->session_id()), IsOkAndHolds(true));
  }
  EXPECT_THAT(revoked_in_redis(during.session_id()), IsOkAndHolds(false));
  EXPECT_THAT(GetUser(alice.user_id(), token), IsOk());
  EXPECT_THAT(GetUser(alice.user_id(), during.tokens().access_token()), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::string fresh, TokenOf("alice"));
  EXPECT_THAT(GetUser(alice.user_id(), fresh), IsOk());
  EXPECT_THAT(LoginAs("bob"), StatusIs(kUnauthenticated));  // still locked
}

// CheckSession: identity's record, for the services that verify tokens only.
class CheckSessionTest : public IdentityServiceTest {
 protected:
  void Configure(IdentityConfig& config) override {
    config.session_check_callers = {"billing", "spiffe://crm.local/shop"};
  }
};

TEST_F(CheckSessionTest, AnswersFromTheRecordForTheListedCallersOnly) {
  CRM_ASSERT_OK_AND_ASSIGN(v1::User alice, CreateUser("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse live, LoginAs("alice"));
  CRM_ASSERT_OK_AND_ASSIGN(v1::LoginResponse ended, LoginAs("alice"));
  ASSERT_THAT(Call(&Stub::Logout, v1::LogoutRequest(), ended.tokens().access_token()), IsOk());
  auto check = [&](const std::string& peer, const std::string& session_id) -> absl::StatusOr<bool> {
    v1::CheckSessionRequest req;
    req.set_session_id(session_id);
    CRM_ASSIGN_OR_RETURN(v1::CheckSessionResponse resp,
                         h_->Call(&Stub::CheckSession, req, "", peer));
    return resp.revoked();
  };
  for (const char* peer : {"billing", "shop"}) {
    SCOPED_TRACE(peer);
    EXPECT_THAT(check(peer, live.session_id()), IsOkAndHolds(false));
    EXPECT_THAT(check(peer, ended.session_id()), IsOkAndHolds(true));
    EXPECT_THAT(check(peer, absl::AsciiStrToUpper(ended.session_id())), IsOkAndHolds(true));
  }
  // Unknown ids are not revoked: every revocation is recorded.
  EXPECT_THAT(check("billing", base::NewUuid()), IsOkAndHolds(false));
  for (const char* bad : {"", "not-a-uuid", "' OR 1=1 --"}) {
    EXPECT_THAT(check("billing", bad), StatusIs(kInvalidArgument, HasSubstr("session_id")));
  }
  // Any other certificate, with or without a token, is refused.
  EXPECT_THAT(check("operator", live.session_id()), StatusIs(kPermissionDenied));
  v1::CheckSessionRequest req;
  req.set_session_id(live.session_id());
  EXPECT_THAT(h_->Call(&Stub::CheckSession, req, live.tokens().access_token(), "operator"),
              StatusIs(kPermissionDenied));
  (void)alice;
}

// The service account's old token session, replaced when the account is
// disabled, is in the record like a login session.
TEST_F(CheckSessionTest, AServiceAccountsReplacedTokenSessionIsRecorded) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string admin, AdminToken());
  v1::CreateServiceAccountRequest create;
  create.set_name("billing-system");
  create.set_spiffe_id("spiffe://crm.local/billing");
  CRM_ASSERT_OK_AND_ASSIGN(v1::CreateServiceAccountResponse account,
                           Call(&Stub::CreateServiceAccount, create, admin));
  CRM_ASSERT_OK_AND_ASSIGN(
      v1::IssueServiceTokenResponse issued,
      h_->Call(&Stub::IssueServiceToken, v1::IssueServiceTokenRequest(), "", "billing"));
  CRM_ASSERT_OK_AND_ASSIGN(Claims claims, Decode(issued.access_token()));
  auto revoked = [&]() -> absl::StatusOr<bool> {
    v1::CheckSessionRequest req;
    req.set_session_id(claims.session_id);
    CRM_ASSIGN_OR_RETURN(v1::CheckSessionResponse resp,
                         h_->Call(&Stub::CheckSession, req, "", "billing"));
    return resp.revoked();
  };
  EXPECT_THAT(revoked(), IsOkAndHolds(false));
  v1::DisableUserRequest disable;
  disable.set_user_id(account.account().user().user_id());
  ASSERT_THAT(Call(&Stub::DisableUser, disable, admin), IsOk());
  EXPECT_THAT(revoked(), IsOkAndHolds(true));
}

}  // namespace
}  // namespace crm::identity
