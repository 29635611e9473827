#include "libs/testing/api_test_bed.h"

#include <google/protobuf/descriptor.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/redis_revocation.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/channel.h"

namespace crm::testing {

// Identity as an API service sees it: GetSigningKeys, serving the minter's
// public key, and CheckSession, which knows no revocation: tests revoke in
// Redis, which the service believes first (redis_revocation.h), so with or
// without identity's complete mark Redis alone decides, as before.
class ApiTestBed::FakeIdentity final : public crm::identity::v1::Identity::Service {
 public:
  explicit FakeIdentity(const auth::testing::TokenMinter& minter) : minter_(minter) {}
  grpc::Status GetSigningKeys(grpc::ServerContext*, const crm::identity::v1::GetSigningKeysRequest*,
                              crm::identity::v1::GetSigningKeysResponse* resp) override {
    crm::identity::v1::SigningKey* k = resp->add_keys();
    k->set_kid(minter_.kid());
    k->set_algorithm("EdDSA");
    k->set_public_key(minter_.public_key().Raw());
    return grpc::Status::OK;
  }
  grpc::Status CheckSession(grpc::ServerContext*, const crm::identity::v1::CheckSessionRequest*,
                            crm::identity::v1::CheckSessionResponse* resp) override {
    resp->set_revoked(false);
    return grpc::Status::OK;
  }

 private:
  const auth::testing::TokenMinter& minter_;
};

absl::StatusOr<std::unique_ptr<ApiTestBed>> ApiTestBed::Create(
    const std::string& service, const std::vector<std::string>& peers) {
  std::unique_ptr<ApiTestBed> bed(new ApiTestBed());
  CRM_RETURN_IF_ERROR(bed->Init(service, peers));
  return bed;
}

ApiTestBed::~ApiTestBed() {
  if (auth_ != nullptr) auth_->Stop();
  identity_server_.reset();
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

absl::Status ApiTestBed::Init(const std::string& service, const std::vector<std::string>& peers) {
  CRM_ASSIGN_OR_RETURN(env_, TestEnv::Load());
  std::vector<std::string> names = {service, "identity"};
  names.insert(names.end(), peers.begin(), peers.end());
  CRM_ASSIGN_OR_RETURN(rpc::testing::TestPki pki, rpc::testing::TestPki::Create(names));
  pki_ = std::make_unique<rpc::testing::TestPki>(std::move(pki));
  std::string tmpl = absl::StrCat(::testing::TempDir(), "/apibed_XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  dir_ = tmpl;

  // Every identity method needs a policy entry; only the service calls.
  rpc::AccessPolicy policy;
  policy.AllowService(crm::identity::v1::Identity::service_full_name(), {service});
  identity_ = std::make_unique<FakeIdentity>(minter_);
  CRM_ASSIGN_OR_RETURN(identity_server_, Serve("identity", std::move(policy), {identity_.get()}));

  service::ApiAuthConfig auth;
  auth.identity_addr = absl::StrCat("127.0.0.1:", identity_server_->port());
  auth.redis_addr = absl::StrCat(env_.redis().host, ":", env_.redis().port);
  if (!env_.redis().password.empty()) {
    CRM_ASSIGN_OR_RETURN(auth.redis_password_file,
                         SecretFile("redis_password", env_.redis().password));
  }
  auth.redis_wait = absl::Seconds(5);
  auth.token_issuer = auth::testing::kTestIssuer;
  auth.token_audience = auth::testing::kTestAudience;
  CRM_ASSIGN_OR_RETURN(auth_, service::ApiAuth::Create(auth, pki_->Files(service), clock_));
  return auth_->FetchKeys();
}

std::string ApiTestBed::Token(const std::string& user_id, std::vector<std::string> permissions,
                              std::vector<std::string> teams) {
  auth::AccessTokenClaims c = minter_.DefaultClaims(clock_.Now());
  c.subject = user_id;
  // Unique: the shared Redis may hold revocations of other tests' sessions.
  c.session_id = base::NewUuid();
  c.permissions = std::move(permissions);
  c.teams = std::move(teams);
  return minter_.Mint(c);
}

rpc::ServerConfig ApiTestBed::ServerConfig(const std::string& name) const {
  rpc::ServerConfig config;
  config.service = name;
  config.tls = pki_->Files(name);
  config.metrics_listen = "";
  config.handle_signals = false;
  config.shutdown_grace = absl::Seconds(1);
  return config;
}

absl::StatusOr<std::unique_ptr<rpc::ServerRunner>> ApiTestBed::Serve(
    const std::string& name, rpc::AccessPolicy policy,
    std::initializer_list<grpc::Service*> services) const {
  auto server = std::make_unique<rpc::ServerRunner>(ServerConfig(name), std::move(policy));
  for (grpc::Service* service : services) server->RegisterService(service);
  CRM_RETURN_IF_ERROR(server->Start());
  return server;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ApiTestBed::Channel(
    const std::string& peer, int port, const std::string& server) const {
  rpc::ChannelConfig channel;
  channel.target = absl::StrCat("127.0.0.1:", port);
  channel.tls = pki_->Files(peer);
  channel.expected_server = server;
  channel.max_attempts = 1;
  return rpc::MakeChannel(channel);
}

absl::Status ApiTestBed::MarkRevocationsComplete() {
  return auth_->redis().Set(auth::kRevocationsCompleteKey, "1");
}

absl::StatusOr<std::string> ApiTestBed::SecretFile(const std::string& name,
                                                   absl::string_view content) {
  const std::string path = absl::StrCat(dir_, "/", name);
  {
    std::ofstream out(path, std::ios::trunc);
    out << content;
    if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (chmod(path.c_str(), 0600) != 0) return absl::InternalError(absl::StrCat("chmod ", path));
  return path;
}

}  // namespace crm::testing
