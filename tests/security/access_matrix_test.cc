// The security matrix of issue 12 on the whole suite as processes (Stack):
//  - mutual TLS: every RPC of every service refuses a client without a
//    certificate, with one of another CA, with an expired one, and over
//    plaintext; a caller off a method's allowlist gets PERMISSION_DENIED;
//  - access tokens: every RPC that needs one refuses tampered, expired,
//    not-yet-valid, wrong-audience, wrong-issuer, alg=none, HS256, unknown-kid
//    and revoked-session tokens, while the same call with a valid token
//    passes authentication (so each refusal can be told from a broken call);
//  - lockout under concurrency: 50 parallel wrong passwords lock the account
//    exactly once, as the lockout policy says.
//
// What each RPC should do is declared in served_rpcs.h (CallerOnly, NoToken),
// not read from the services' own AccessPolicy, so that a service that opens
// a method by mistake fails this test instead of agreeing with itself. Every
// method of every served gRPC service is covered: a new RPC defaults to
// "needs a token".
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "libs/auth/base64url.h"
#include "libs/auth/token_signer.h"
#include "libs/base/clock.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/key_ring.h"
#include "libs/json/json.h"
#include "libs/pg/pool.h"
#include "libs/rpc/channel.h"
#include "libs/testing/grpc_call.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/unary_call.h"
#include "services/identity/signing_keys.h"
#include "tests/security/served_rpcs.h"
#include "tests/system/stack.h"

namespace crm::security_test {
namespace {

using ::crm::system_test::Stack;
using ::crm::testing::RawUnaryCall;
using ::crm::testing::UnaryCall;
using ::testing::IsEmpty;
using Code = ::grpc::StatusCode;

// ---- Tokens ------------------------------------------------------------------

// The claims of a real access token (its payload segment decoded).
absl::StatusOr<auth::AccessTokenClaims> ClaimsOf(const std::string& token) {
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return absl::InvalidArgumentError("token: not three segments");
  std::optional<std::string> payload = auth::Base64UrlDecode(parts[1]);
  if (!payload) return absl::InvalidArgumentError("token: payload not base64url");
  CRM_ASSIGN_OR_RETURN(json::Value v, json::Parse(*payload));
  auth::AccessTokenClaims c;
  auto str = [&](const char* key) {
    const json::Value* f = v.Find(key);
    return f != nullptr && f->is_string() ? f->string_value() : std::string();
  };
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    if (const json::Value* f = v.Find(key); f != nullptr && f->is_array()) {
      for (const json::Value& e : f->array()) out.push_back(e.string_value());
    }
    return out;
  };
  c.issuer = str("iss");
  c.audience = strings("aud");
  if (c.audience.empty() && !str("aud").empty()) c.audience = {str("aud")};
  c.subject = str("sub");
  c.session_id = str("sid");
  c.permissions = strings("permissions");
  c.teams = strings("teams");
  c.token_id = str("jti");
  if (const json::Value* cnf = v.Find("cnf"); cnf != nullptr) {
    if (const json::Value* t = cnf->Find("x5t#S256"); t != nullptr)
      c.cert_thumbprint = t->string_value();
  }
  c.issued_at = absl::Now() - absl::Seconds(5);
  c.expires_at = absl::Now() + absl::Minutes(10);
  return c;
}

std::string Segment(absl::string_view json_text) { return auth::Base64UrlEncode(json_text); }

std::string PayloadSegment(const std::string& token) {
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  return parts.size() == 3 ? parts[1] : "";
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[32];
  unsigned int len = sizeof(out);
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// ---- The fixture ---------------------------------------------------------------

class AccessMatrixTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Per-source login throttling (tested by identity's own tests) would
    // answer most of the parallel logins of the lockout test with
    // RESOURCE_EXHAUSTED before the account rules see them.
    absl::StatusOr<std::unique_ptr<Stack>> st =
        Stack::Create({.service_env = {{"identity", {{"CRM_LOGIN_THROTTLE_ATTEMPTS", "1000"}}}}});
    ASSERT_TRUE(st.ok()) << st.status();
    stack_ = st->release();
  }
  static void TearDownTestSuite() {
    if (stack_ != nullptr) {
      EXPECT_THAT(stack_->Shutdown(), ::crm::testing::IsOk());
    }
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(stack_, nullptr) << "the stack did not start"; }

  static Stack& st() { return *stack_; }

  // A channel to `process` presenting `files`; no retries (a refusal must surface).
  static std::shared_ptr<grpc::Channel> ChannelWith(const std::string& process,
                                                    const rpc::TlsFiles& files) {
    rpc::ChannelConfig config;
    config.target = st().Addr(process);
    config.tls = files;
    config.expected_server = process;
    config.max_attempts = 1;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return channel.ok() ? *channel : nullptr;
  }
  static std::shared_ptr<grpc::Channel> ChannelAs(const std::string& process,
                                                  const std::string& who) {
    return ChannelWith(process, st().pki->Files(who));
  }

  // Logs `username` in over identity's RPC (as any client would).
  static absl::StatusOr<identity::v1::LoginResponse> Login(const std::string& username,
                                                           const std::string& password) {
    auto stub = identity::v1::Identity::NewStub(ChannelAs("identity", "operator"));
    identity::v1::LoginRequest request;
    request.set_username(username);
    request.set_password(password);
    return UnaryCall(*stub, &identity::v1::Identity::Stub::Login, request);
  }

  static Stack* stack_;
};

Stack* AccessMatrixTest::stack_ = nullptr;

TEST_F(AccessMatrixTest, TheDeclaredPolicyNamesOnlyServedMethodsAndEveryProcessServesItsServices) {
  for (const auto& [process, services] : Served()) {
    for (const auto* service : services) EXPECT_NE(service, nullptr) << process;
  }
  std::set<std::string> served;
  for (const Rpc& rpc : AllRpcs()) served.insert(rpc.method);
  for (const auto& [method, callers] : CallerOnly()) EXPECT_TRUE(served.contains(method)) << method;
  for (const std::string& method : NoToken()) EXPECT_TRUE(served.contains(method)) << method;
  EXPECT_GT(served.size(), 100u);  // the suite has ~110 RPCs; a lost service shows here
}

TEST_F(AccessMatrixTest, EveryRpcRefusesClientsWithoutAValidCertificateOfOurCa) {
  CRM_ASSERT_OK_AND_ASSIGN(rpc::TlsFiles foreign, st().pki->IssueForeign("operator"));
  CRM_ASSERT_OK_AND_ASSIGN(rpc::TlsFiles expired, st().pki->IssueExpired("operator"));
  std::vector<std::string> wrong;
  for (const auto& [process, services] : Served()) {
    // Verifies the server but presents no certificate of its own.
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        st().pki->ca_file(), 60);
    grpc::experimental::TlsChannelCredentialsOptions no_cert;
    no_cert.set_certificate_provider(provider);
    no_cert.watch_root_certs();
    const std::map<std::string, std::shared_ptr<grpc::Channel>> channels = {
        {"no certificate",
         grpc::CreateChannel(st().Addr(process), grpc::experimental::TlsCredentials(no_cert))},
        {"another CA's certificate", ChannelWith(process, foreign)},
        {"an expired certificate", ChannelWith(process, expired)},
        {"plaintext", grpc::CreateChannel(st().Addr(process), grpc::InsecureChannelCredentials())},
    };
    for (const Rpc& rpc : AllRpcs()) {
      if (rpc.process != process) continue;
      for (const auto& [how, channel] : channels) {
        const grpc::Status s = RawUnaryCall(channel, rpc.method, "", nullptr, absl::Seconds(10));
        if (s.error_code() != Code::UNAVAILABLE) {
          wrong.push_back(absl::StrCat(process, rpc.method, " with ", how, ": ",
                                       CodeName(s.error_code()), " ", s.error_message()));
        }
      }
    }
  }
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");
}

TEST_F(AccessMatrixTest, EveryRpcAnswersCallersByItsAllowlistBeforeLookingAtTheRequest) {
  const std::vector<std::string> identities = {"identity", "contacts", "consent", "mailing",
                                               "audit",    "erasure",  "gateway", "operator",
                                               "shop",     "stranger"};
  std::vector<std::string> wrong;
  int allowed_calls = 0;
  for (const auto& [process, services] : Served()) {
    std::map<std::string, std::shared_ptr<grpc::Channel>> as;
    for (const std::string& who : identities) as[who] = ChannelAs(process, who);
    for (const Rpc& rpc : AllRpcs()) {
      if (rpc.process != process) continue;
      const Access access = AccessOf(rpc.method);
      for (const std::string& who : identities) {
        // No token: an empty request of the caller `who`.
        const grpc::Status s = RawUnaryCall(as[who], rpc.method, "");
        std::optional<Code> want;  // the code required; nullopt: anything but a refusal
        switch (access) {
          case Access::kCallerOnly:
            if (!CallerOnly().at(rpc.method).contains(who)) want = Code::PERMISSION_DENIED;
            break;
          case Access::kToken:
            want = Code::UNAUTHENTICATED;
            break;
          case Access::kNoToken:
            break;
        }
        if (want.has_value() ? s.error_code() != *want
                             : s.error_code() == Code::PERMISSION_DENIED ||
                                   s.error_code() == Code::UNAVAILABLE) {
          wrong.push_back(absl::StrCat(process, rpc.method, " as ", who, ": ",
                                       CodeName(s.error_code()), " ", s.error_message(),
                                       want ? absl::StrCat(" (want ", CodeName(*want), ")") : ""));
        }
        if (!want.has_value()) ++allowed_calls;
      }
    }
  }
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");
  EXPECT_GT(allowed_calls, 0);
}

TEST_F(AccessMatrixTest, EveryTokenRpcRefusesForgedExpiredMisaddressedAndRevokedTokens) {
  // Two sessions of the administrator: the matrix's valid token belongs to
  // the second (its Logout in the matrix ends it), the first is ended last.
  CRM_ASSERT_OK_AND_ASSIGN(identity::v1::LoginResponse admin,
                           Login("admin", system_test::kAdminPassword));
  const std::string real = admin.tokens().access_token();
  CRM_ASSERT_OK_AND_ASSIGN(identity::v1::LoginResponse second,
                           Login("admin", system_test::kAdminPassword));
  CRM_ASSERT_OK_AND_ASSIGN(auth::AccessTokenClaims claims,
                           ClaimsOf(second.tokens().access_token()));
  ASSERT_FALSE(claims.session_id.empty());

  // identity's own signing key, read as another identity replica reads it:
  // from its database, unwrapped with its KEK ring. Tokens it signs differ
  // from identity's only in the claims this test chooses.
  const std::map<std::string, std::string>& env = st().launched["identity"].env;
  CRM_ASSERT_OK_AND_ASSIGN(crypto::KeyRing ring,
                           crypto::KeyRing::LoadFromFile(env.at("CRM_KEK_FILE")));
  base::RealClock& clock = base::RealClock::Get();
  CRM_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<pg::Pool> pool,
      pg::Pool::Create({.conninfo = env.at("CRM_DB_URL"), .max_size = 1}, clock));
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<identity::SigningKeys> keys,
                           identity::SigningKeys::Create(*pool, ring, clock));
  ASSERT_THAT(keys->Refresh(), testing::IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const auth::TokenSigner> signer, keys->CurrentSigner());
  auto sign = [&](const auth::AccessTokenClaims& c) {
    absl::StatusOr<std::string> t = signer->Sign(c);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.value_or("");
  };
  // Without permissions: a valid token then reaches each handler, which
  // refuses it (PERMISSION_DENIED) or the empty request, but changes nothing.
  auth::AccessTokenClaims valid = claims;
  valid.permissions.clear();
  const std::string valid_token = sign(valid);

  CRM_ASSERT_OK_AND_ASSIGN(crypto::Ed25519PrivateKey stranger_key,
                           crypto::Ed25519PrivateKey::Generate());
  const std::string payload = PayloadSegment(valid_token);
  const std::string header_none =
      Segment(absl::StrCat(R"({"alg":"none","typ":"JWT","kid":")", signer->kid(), R"("})"));
  const std::string header_hs256 =
      Segment(absl::StrCat(R"({"alg":"HS256","typ":"JWT","kid":")", signer->kid(), R"("})"));

  std::map<std::string, std::string> bad;
  {
    auth::AccessTokenClaims c = valid;
    c.issued_at = absl::Now() - absl::Minutes(20);
    c.expires_at = absl::Now() - absl::Minutes(2);  // beyond the 30 s leeway
    bad["expired"] = sign(c);
    c = valid;
    c.not_before = absl::Now() + absl::Minutes(5);
    bad["not yet valid"] = sign(c);
    c = valid;
    c.audience = {"another-deployment"};
    bad["wrong audience"] = sign(c);
    c = valid;
    c.issuer = "https://issuer.invalid";
    bad["wrong issuer"] = sign(c);
    c = claims;
    c.permissions.push_back("identity.admin");
    c.permissions.push_back("contacts.person.read");
    // The real token's signature over a payload the attacker widened.
    bad["tampered payload"] =
        absl::StrCat(real.substr(0, real.find('.')), ".", PayloadSegment(sign(c)), ".",
                     real.substr(real.rfind('.') + 1));
  }
  {
    std::string flipped = real;
    char& last = flipped[flipped.rfind('.') + 5];
    last = last == 'A' ? 'B' : 'A';
    bad["tampered signature"] = flipped;
  }
  bad["alg none, no signature"] = absl::StrCat(header_none, ".", payload, ".");
  bad["alg none, some signature"] = absl::StrCat(header_none, ".", payload, ".", Segment("x"));
  bad["alg HS256 keyed with the public key"] = absl::StrCat(
      header_hs256, ".", payload, ".",
      Segment(HmacSha256(signer->public_key().Raw(), absl::StrCat(header_hs256, ".", payload))));
  {
    absl::StatusOr<std::string> t =
        auth::SignCompactJws(stranger_key, R"({"alg":"EdDSA","typ":"JWT","kid":"no-such-key"})",
                             *auth::Base64UrlDecode(payload));
    ASSERT_TRUE(t.ok()) << t.status();
    bad["unknown kid"] = *t;
    t = auth::SignCompactJws(
        stranger_key, absl::StrCat(R"({"alg":"EdDSA","typ":"JWT","kid":")", signer->kid(), R"("})"),
        *auth::Base64UrlDecode(payload));
    ASSERT_TRUE(t.ok()) << t.status();
    bad["known kid, another key"] = *t;
  }
  bad["not a token"] = "not-a-token";

  std::vector<Rpc> token_rpcs;
  for (const Rpc& rpc : AllRpcs()) {
    if (AccessOf(rpc.method) == Access::kToken) token_rpcs.push_back(rpc);
  }
  // Logout ends the session of the token it is called with: last.
  std::stable_partition(token_rpcs.begin(), token_rpcs.end(),
                        [](const Rpc& r) { return !absl::EndsWith(r.method, "/Logout"); });

  std::map<std::string, std::shared_ptr<grpc::Channel>> channels;
  for (const auto& [process, services] : Served())
    channels[process] = ChannelAs(process, "operator");
  std::vector<std::string> wrong;
  for (const Rpc& rpc : token_rpcs) {
    for (const auto& [what, token] : bad) {
      const grpc::Status s =
          RawUnaryCall(channels[rpc.process], rpc.method, "", nullptr, absl::Seconds(10), token);
      if (s.error_code() != Code::UNAUTHENTICATED) {
        wrong.push_back(absl::StrCat(rpc.process, rpc.method, " with a token ", what, ": ",
                                     CodeName(s.error_code()), " ", s.error_message()));
      }
    }
    // The control: a valid token passes authentication.
    const grpc::Status s = RawUnaryCall(channels[rpc.process], rpc.method, "", nullptr,
                                        absl::Seconds(10), valid_token);
    if (s.error_code() == Code::UNAUTHENTICATED || s.error_code() == Code::UNAVAILABLE) {
      wrong.push_back(absl::StrCat(rpc.process, rpc.method, " with a valid token: ",
                                   CodeName(s.error_code()), " ", s.error_message()));
    }
  }
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");

  // The session ends: every RPC refuses its token, once each service has
  // seen the revocation (its checker caches an answer for at most a second).
  auto identity_stub = identity::v1::Identity::NewStub(channels["identity"]);
  ASSERT_THAT(UnaryCall(*identity_stub, &identity::v1::Identity::Stub::Logout,
                        identity::v1::LogoutRequest(), real)
                  .status(),
              testing::IsOk());
  wrong.clear();
  for (const Rpc& rpc : token_rpcs) {
    grpc::Status s;
    for (absl::Time end = absl::Now() + absl::Seconds(5); absl::Now() < end;
         absl::SleepFor(absl::Milliseconds(100))) {
      s = RawUnaryCall(channels[rpc.process], rpc.method, "", nullptr, absl::Seconds(10), real);
      if (s.error_code() == Code::UNAUTHENTICATED) break;
    }
    if (s.error_code() != Code::UNAUTHENTICATED) {
      wrong.push_back(absl::StrCat(rpc.process, rpc.method, " with a revoked session's token: ",
                                   CodeName(s.error_code()), " ", s.error_message()));
    }
  }
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");
}

TEST_F(AccessMatrixTest, FiftyParallelWrongPasswordsLockTheAccountOnceAsThePolicySays) {
  CRM_ASSERT_OK_AND_ASSIGN(identity::v1::LoginResponse admin,
                           Login("admin", system_test::kAdminPassword));
  auto stub = identity::v1::Identity::NewStub(ChannelAs("identity", "operator"));
  const std::string password = "lockout matrix: seven quiet herons";
  identity::v1::CreateUserRequest create;
  create.set_username("lockout.target");
  create.set_display_name("Lockout Target");
  create.set_email("lockout.target@staff.example");
  create.set_initial_password(password);
  create.set_must_change_password(false);
  CRM_ASSERT_OK_AND_ASSIGN(identity::v1::CreateUserResponse created,
                           UnaryCall(*stub, &identity::v1::Identity::Stub::CreateUser, create,
                                     admin.tokens().access_token()));
  // The password works (so the refusal below is the lock's).
  ASSERT_THAT(Login("lockout.target", password).status(), testing::IsOk());

  constexpr int kAttempts = 50;
  std::vector<absl::StatusCode> codes(kAttempts);
  std::vector<std::thread> callers;
  for (int i = 0; i < kAttempts; ++i) {
    callers.emplace_back([&, i] {
      codes[i] = Login("lockout.target", absl::StrCat("wrong password number ", i)).status().code();
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(std::count(codes.begin(), codes.end(), absl::StatusCode::kUnauthenticated), kAttempts);

  // Locked: the right password is refused too.
  EXPECT_EQ(Login("lockout.target", password).status().code(), absl::StatusCode::kUnauthenticated);
  identity::v1::GetUserRequest get;
  get.set_user_id(created.user().user_id());
  CRM_ASSERT_OK_AND_ASSIGN(
      identity::v1::GetUserResponse user,
      UnaryCall(*stub, &identity::v1::Identity::Stub::GetUser, get, admin.tokens().access_token()));
  // One lockout: the first lock's 15 minutes (lockout_base), not the 30 min
  // of a second or the permanent lock of a third, however the 50 failures
  // raced.
  EXPECT_FALSE(user.user().locked_permanently());
  ASSERT_TRUE(user.user().has_locked_until());
  const absl::Time until = absl::FromUnixSeconds(user.user().locked_until().seconds());
  EXPECT_GT(until, absl::Now() + absl::Minutes(14));
  EXPECT_LT(until, absl::Now() + absl::Minutes(16));
}

}  // namespace
}  // namespace crm::security_test
