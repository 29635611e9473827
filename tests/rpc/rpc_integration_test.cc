// libs/rpc over real mutual TLS on loopback. Two in-process Echo servers (A
// forwards Echo to B) and clients with certificates from a throwaway PKI;
// plus a real crm-echo-server process for SIGTERM.
#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/request_id.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/grpc_call.h"
#include "libs/testing/loopback.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/subprocess.h"

namespace crm::rpc {
namespace {

using ::crm::rpc::testing::EchoService;
using ::crm::rpc::testing::kEchoMethod;
using ::crm::rpc::testing::kSlowEchoMethod;
using ::crm::rpc::testing::TestPki;
using ::crm::testing::ExitStatus;
using ::crm::testing::IsOk;
using ::crm::testing::PollUntil;
using ::crm::testing::RawUnaryCall;
using ::crm::testing::StatusIs;
using ::crm::testing::Subprocess;
using ::crm::testing::v1::Echo;
using ::crm::testing::v1::EchoRequest;
using ::crm::testing::v1::EchoResponse;
using ::testing::HasSubstr;

// grpc.health.v1.Health/Check for the overall server ("").
absl::StatusOr<int> HealthStatus(const std::shared_ptr<grpc::Channel>& channel) {
  return crm::testing::GrpcHealthCheck(channel);
}
constexpr int kServing = crm::testing::kHealthServing;
constexpr int kNotServing = crm::testing::kHealthNotServing;

// GET http://127.0.0.1:port/metrics with a plain socket.
absl::StatusOr<std::string> HttpGetMetrics(int port) {
  CRM_ASSIGN_OR_RETURN(const int fd, crm::testing::ConnectLoopback(port));
  const std::string request =
      "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::InternalError("write");
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

class RpcIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(TestPki pki, TestPki::Create({"a", "b", "client", "intruder"}));
    pki_ = std::make_unique<TestPki>(std::move(pki));

    // B: Echo for a and client only; SlowEcho for any peer of the CA.
    AccessPolicy policy_b;
    policy_b.Allow(kEchoMethod, {"a", "client"}).AllowAnyPeer(kSlowEchoMethod);
    runner_b_ = StartServer("b", std::move(policy_b), &service_b_);
    ASSERT_NE(runner_b_, nullptr);

    // A: Echo and SlowEcho for client; Echo forwards to B as identity a.
    ChannelConfig to_b = ClientConfig("a", runner_b_->port());
    to_b.expected_server = "b";
    CRM_ASSERT_OK_AND_ASSIGN(auto channel_to_b, MakeChannel(to_b));
    service_a_ = std::make_unique<EchoService>(channel_to_b, to_b);
    AccessPolicy policy_a;
    policy_a.Allow(kEchoMethod, {"client"}).Allow(kSlowEchoMethod, {"client"});
    runner_a_ = StartServer("a", std::move(policy_a), service_a_.get());
    ASSERT_NE(runner_a_, nullptr);
  }

  std::unique_ptr<ServerRunner> StartServer(const std::string& name, AccessPolicy policy,
                                            grpc::Service* service,
                                            absl::Duration drain_notice = absl::ZeroDuration(),
                                            bool metrics = false) {
    ServerConfig config;
    // civetweb takes up to 2 s to stop its listener: only where it is tested.
    if (!metrics) config.metrics_listen = "";
    config.service = name;
    config.tls = pki_->Files(name);
    config.handle_signals = false;
    config.drain_notice = drain_notice;
    auto runner = std::make_unique<ServerRunner>(config, std::move(policy));
    runner->RegisterService(service);
    absl::Status s = runner->Start();
    EXPECT_THAT(s, IsOk());
    return s.ok() ? std::move(runner) : nullptr;
  }

  ChannelConfig ClientConfig(const std::string& name, int port) const {
    ChannelConfig c;
    c.target = absl::StrCat("127.0.0.1:", port);
    c.tls = pki_->Files(name);
    c.max_attempts = 1;  // Refusals must surface, not be retried.
    return c;
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& name, int port) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> c = MakeChannel(ClientConfig(name, port));
    EXPECT_THAT(c, IsOk());
    return c.ok() ? *c : nullptr;
  }

  static std::shared_ptr<grpc::Channel> ChannelWithFiles(const TlsFiles& files, int port) {
    ChannelConfig c;
    c.target = absl::StrCat("127.0.0.1:", port);
    c.tls = files;
    c.max_attempts = 1;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = MakeChannel(c);
    EXPECT_THAT(ch, IsOk());
    return ch.ok() ? *ch : nullptr;
  }

  static grpc::Status CallEcho(const std::shared_ptr<grpc::Channel>& channel,
                               EchoResponse* response = nullptr,
                               const std::string& request_id = "") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!request_id.empty()) context.AddMetadata("x-request-id", request_id);
    EchoRequest request;
    request.set_message("hello");
    EchoResponse ignored;
    return Echo::NewStub(channel)->Echo(&context, request, response ? response : &ignored);
  }

  std::unique_ptr<TestPki> pki_;
  EchoService service_b_;
  std::unique_ptr<EchoService> service_a_;
  std::unique_ptr<ServerRunner> runner_b_;
  std::unique_ptr<ServerRunner> runner_a_;
};

TEST_F(RpcIntegrationTest, ClientCallsAWhichCallsBWithItsOwnIdentityAndTheSameRequestId) {
  grpc::ClientContext context;
  context.AddMetadata("x-request-id", "req-123");
  EchoRequest request;
  request.set_message("hi");
  EchoResponse response;
  grpc::Status s =
      Echo::NewStub(Channel("client", runner_a_->port()))->Echo(&context, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.message(), "hi");
  EXPECT_EQ(response.peer_identity(), "spiffe://crm.local/a");  // As B saw the caller.
  EXPECT_EQ(response.request_id(), "req-123");                  // Propagated A -> B.
  auto echoed = context.GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(echoed, context.GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(echoed->second.data(), echoed->second.size()), "req-123");
  EXPECT_EQ(service_a_->handler_runs(), 1);
  EXPECT_EQ(service_b_.handler_runs(), 1);
}

TEST_F(RpcIntegrationTest, DirectCallSeesClientIdentity) {
  EchoResponse response;
  ASSERT_TRUE(CallEcho(Channel("client", runner_b_->port()), &response).ok());
  EXPECT_EQ(response.peer_identity(), "spiffe://crm.local/client");
}

TEST_F(RpcIntegrationTest, MissingOrMalformedRequestIdIsReplacedByAUuid) {
  auto channel = Channel("client", runner_b_->port());
  for (const std::string& sent : {std::string(), std::string("bad id@example.com")}) {
    grpc::ClientContext context;
    if (!sent.empty()) context.AddMetadata("x-request-id", sent);
    EchoResponse response;
    ASSERT_TRUE(Echo::NewStub(channel)->Echo(&context, EchoRequest(), &response).ok());
    EXPECT_TRUE(crm::base::IsUuid(response.request_id())) << response.request_id();
    auto echoed = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(echoed, context.GetServerInitialMetadata().end());
    EXPECT_EQ(std::string(echoed->second.data(), echoed->second.size()), response.request_id());
  }
}

TEST_F(RpcIntegrationTest, RequestIdScopeAttachesIdToCallsOfOurChannels) {
  RequestIdScope scope("scoped-id");
  ChannelConfig config = ClientConfig("client", runner_b_->port());
  CRM_ASSERT_OK_AND_ASSIGN(auto channel, MakeChannel(config));
  // Through the channel's interceptor, with a plain context...
  EchoResponse response;
  ASSERT_TRUE(CallEcho(channel, &response).ok());
  EXPECT_EQ(response.request_id(), "scoped-id");
  // ...and through NewClientContext.
  std::unique_ptr<grpc::ClientContext> context = NewClientContext(config);
  ASSERT_TRUE(Echo::NewStub(channel)->Echo(context.get(), EchoRequest(), &response).ok());
  EXPECT_EQ(response.request_id(), "scoped-id");
}

TEST_F(RpcIntegrationTest, ClientWithoutCertificateIsRefused) {
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(pki_->ca_file(), 60);
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();  // Verifies the server, but presents no certificate.
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", runner_b_->port()),
                                     grpc::experimental::TlsCredentials(options));
  grpc::Status s = CallEcho(channel);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(service_b_.handler_runs(), 0);
}

TEST_F(RpcIntegrationTest, CertificateOfAnotherCaIsRefused) {
  CRM_ASSERT_OK_AND_ASSIGN(TlsFiles foreign, pki_->IssueForeign("client"));
  grpc::Status s = CallEcho(ChannelWithFiles(foreign, runner_b_->port()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(service_b_.handler_runs(), 0);
}

TEST_F(RpcIntegrationTest, ExpiredCertificateIsRefused) {
  CRM_ASSERT_OK_AND_ASSIGN(TlsFiles expired, pki_->IssueExpired("client"));
  grpc::Status s = CallEcho(ChannelWithFiles(expired, runner_b_->port()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(service_b_.handler_runs(), 0);
}

TEST_F(RpcIntegrationTest, PlaintextConnectionIsRefused) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", runner_b_->port()),
                                     grpc::InsecureChannelCredentials());
  grpc::Status s = CallEcho(channel);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(service_b_.handler_runs(), 0);
}

TEST_F(RpcIntegrationTest, CallerNotOnAllowlistIsDeniedBeforeTheHandler) {
  grpc::Status s = CallEcho(Channel("intruder", runner_b_->port()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(service_b_.handler_runs(), 0);
  // b itself is not on A's list either.
  s = CallEcho(Channel("b", runner_a_->port()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(service_a_->handler_runs(), 0);
  // The same intruder may call the any-peer method.
  grpc::ClientContext context;
  EchoResponse response;
  EXPECT_TRUE(Echo::NewStub(Channel("intruder", runner_b_->port()))
                  ->SlowEcho(&context, EchoRequest(), &response)
                  .ok());
  EXPECT_EQ(service_b_.handler_runs(), 1);
}

TEST_F(RpcIntegrationTest, MethodWithoutPolicyIsDeniedNotUnimplemented) {
  grpc::Status s =
      RawUnaryCall(Channel("client", runner_b_->port()), "/crm.testing.v1.Echo/Unlisted", "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  s = RawUnaryCall(Channel("a", runner_b_->port()), "/crm.audit.v1.AuditIngest/AppendEvents", "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
}

TEST_F(RpcIntegrationTest, StartRefusesARegisteredMethodWithoutPolicy) {
  AccessPolicy partial;
  partial.Allow(kEchoMethod, {"client"});  // SlowEcho has no entry.
  EchoService service;
  ServerConfig config;
  config.tls = pki_->Files("b");
  config.handle_signals = false;
  config.metrics_listen = "";
  ServerRunner runner(config, std::move(partial));
  runner.RegisterService(&service);
  EXPECT_THAT(runner.Start(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("/crm.testing.v1.Echo/SlowEcho")));
}

TEST_F(RpcIntegrationTest, StartRefusesACertificateOfAnotherIdentity) {
  ServerConfig config;
  config.service = "b";
  config.tls = pki_->Files("a");
  config.handle_signals = false;
  ServerRunner runner(config, AccessPolicy());
  EXPECT_THAT(runner.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("spiffe://crm.local/b")));
}

TEST_F(RpcIntegrationTest, ExpectedServerIdentityIsChecked) {
  ChannelConfig config = ClientConfig("client", runner_b_->port());
  config.expected_server = "b";
  CRM_ASSERT_OK_AND_ASSIGN(auto right, MakeChannel(config));
  EXPECT_TRUE(CallEcho(right).ok());
  config.expected_server = "a";  // B's certificate says b.
  CRM_ASSERT_OK_AND_ASSIGN(auto wrong, MakeChannel(config));
  grpc::Status s = CallEcho(wrong);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

// Two replicas of b behind one target (as a headless Kubernetes Service
// resolves to every pod): the channel spreads calls over both, where gRPC's
// default (pick_first) would send all of them to one.
TEST_F(RpcIntegrationTest, CallsAreSpreadOverEveryAddressOfTheTarget) {
  EchoService second_b;
  AccessPolicy policy;
  policy.Allow(kEchoMethod, {"a", "client"}).AllowAnyPeer(kSlowEchoMethod);
  std::unique_ptr<ServerRunner> replica = StartServer("b", std::move(policy), &second_b);
  ASSERT_NE(replica, nullptr);
  ChannelConfig config = ClientConfig("client", runner_b_->port());
  config.target =
      absl::StrCat("ipv4:127.0.0.1:", runner_b_->port(), ",127.0.0.1:", replica->port());
  config.expected_server = "b";
  CRM_ASSERT_OK_AND_ASSIGN(auto channel, MakeChannel(config));
  // Both connect in the background; until then calls go to the ready one.
  const int start = service_b_.handler_runs();
  for (int i = 0; i < 500 && (second_b.handler_runs() == 0 || service_b_.handler_runs() == start);
       ++i) {
    ASSERT_TRUE(CallEcho(channel).ok());
  }
  ASSERT_GT(second_b.handler_runs(), 0);
  ASSERT_GT(service_b_.handler_runs(), start);
  const int first_before = service_b_.handler_runs();
  const int second_before = second_b.handler_runs();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(CallEcho(channel).ok());
  EXPECT_EQ(service_b_.handler_runs() - first_before, 10);
  EXPECT_EQ(second_b.handler_runs() - second_before, 10);
}

// A server that ends every connection after a second (max_connection_age):
// the caller reconnects (new connections are seen) and no call fails.
TEST_F(RpcIntegrationTest, ConnectionsEndingWithAgeFailNoCall) {
  EchoService aged;
  AccessPolicy policy;
  policy.Allow(kEchoMethod, {"client"}).Allow(kSlowEchoMethod, {"client"});
  ServerConfig config;
  config.metrics_listen = "";
  config.service = "b";
  config.tls = pki_->Files("b");
  config.handle_signals = false;
  config.max_connection_age = absl::Seconds(1);
  ServerRunner runner(config, std::move(policy));
  runner.RegisterService(&aged);
  ASSERT_THAT(runner.Start(), IsOk());
  // As the services' channels are: retries on, so gRPC may also retry a call
  // that raced the server's GOAWAY transparently.
  ChannelConfig client = ClientConfig("client", runner.port());
  client.max_attempts = ChannelConfig().max_attempts;
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel, MakeChannel(client));
  const absl::Time until = absl::Now() + absl::Seconds(4);
  int calls = 0;
  std::set<std::string> connections;
  while (absl::Now() < until) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    EchoRequest request;
    request.set_delay_ms(200);
    EchoResponse response;
    grpc::Status s = Echo::NewStub(channel)->SlowEcho(&context, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message() << " after " << calls << " calls";
    connections.insert(response.peer_address());
    ++calls;
  }
  EXPECT_GE(calls, 10);
  EXPECT_GE(connections.size(), 3u);
}

TEST_F(RpcIntegrationTest, HealthServingThenNotServingWhileDraining) {
  EchoService service;
  AccessPolicy policy;
  policy.AllowAnyPeer(kEchoMethod).AllowAnyPeer(kSlowEchoMethod);
  auto runner = StartServer("b", std::move(policy), &service, /*drain_notice=*/absl::Hours(1));
  ASSERT_NE(runner, nullptr);
  auto channel = Channel("intruder", runner->port());  // Health is open to any peer.
  EXPECT_THAT(HealthStatus(channel), crm::testing::IsOkAndHolds(kServing));

  std::thread waiter([&] { EXPECT_THAT(runner->Wait(), IsOk()); });
  runner->Shutdown();
  EXPECT_TRUE(PollUntil([&] {
    absl::StatusOr<int> h = HealthStatus(channel);
    return h.ok() && *h == kNotServing;
  }));
  // Still accepting calls during the drain notice.
  EXPECT_TRUE(CallEcho(channel).ok());
  runner->Shutdown();  // Cuts the notice short.
  waiter.join();
  EXPECT_FALSE(CallEcho(channel).ok());
}

// The plaintext health port (health_listen) for Kubernetes' gRPC probes.
class HealthPortTest : public RpcIntegrationTest {
 protected:
  std::unique_ptr<ServerRunner> StartWithHealthPort(absl::Duration drain_notice) {
    AccessPolicy policy;
    policy.AllowAnyPeer(kEchoMethod).AllowAnyPeer(kSlowEchoMethod);
    ServerConfig config;
    config.metrics_listen = "";
    config.health_listen = "127.0.0.1:0";
    config.service = "b";
    config.tls = pki_->Files("b");
    config.handle_signals = false;
    config.drain_notice = drain_notice;
    auto runner = std::make_unique<ServerRunner>(config, std::move(policy));
    runner->RegisterService(&service_);
    absl::Status s = runner->Start();
    EXPECT_THAT(s, IsOk());
    if (!s.ok()) return nullptr;
    EXPECT_GT(runner->health_port(), 0);
    EXPECT_NE(runner->health_port(), runner->port());
    return runner;
  }

  static std::shared_ptr<grpc::Channel> Plaintext(int port) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                               grpc::InsecureChannelCredentials());
  }

  // grpc.reflection.v1alpha ServerReflectionRequest{list_services: "*"}.
  static constexpr char kListServices[] = "\x3a\x01*";
  static constexpr char kReflectionMethod[] =
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

  EchoService service_;
};

TEST_F(HealthPortTest, PlaintextChecksSeeServingAndLiveness) {
  auto runner = StartWithHealthPort(absl::ZeroDuration());
  ASSERT_NE(runner, nullptr);
  auto health = Plaintext(runner->health_port());
  EXPECT_THAT(HealthStatus(health), crm::testing::IsOkAndHolds(kServing));
  EXPECT_THAT(crm::testing::GrpcHealthCheck(health, kLivenessService),
              crm::testing::IsOkAndHolds(kServing));
  EXPECT_THAT(crm::testing::GrpcHealthCheck(health, "crm.testing.v1.Echo"),
              crm::testing::IsOkAndHolds(kServing));
  // Not a name the main server has.
  EXPECT_THAT(crm::testing::GrpcHealthCheck(health, "crm.other.v1.Nothing"),
              StatusIs(absl::StatusCode::kNotFound));
  // The gRPC port stays mutual-TLS only.
  grpc::Status s = CallEcho(Plaintext(runner->port()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(service_.handler_runs(), 0);
  // SetServing reaches the health port, and leaves liveness alone.
  runner->SetServing(false);
  EXPECT_THAT(HealthStatus(health), crm::testing::IsOkAndHolds(kNotServing));
  EXPECT_THAT(crm::testing::GrpcHealthCheck(health, "crm.testing.v1.Echo"),
              crm::testing::IsOkAndHolds(kNotServing));
  EXPECT_THAT(crm::testing::GrpcHealthCheck(health, kLivenessService),
              crm::testing::IsOkAndHolds(kServing));
  runner->SetServing(true);
  EXPECT_THAT(HealthStatus(health), crm::testing::IsOkAndHolds(kServing));
}

TEST_F(HealthPortTest, ServesNothingButHealth) {
  auto runner = StartWithHealthPort(absl::ZeroDuration());
  ASSERT_NE(runner, nullptr);
  auto health = Plaintext(runner->health_port());
  grpc::Status s = RawUnaryCall(health, kEchoMethod, "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  s = RawUnaryCall(health, kReflectionMethod, std::string(kListServices, 3));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  EXPECT_EQ(service_.handler_runs(), 0);
  // The same calls over mutual TLS on the gRPC port work: the refusals above
  // are the health port's, not the requests'.
  auto mtls = Channel("client", runner->port());
  std::string reply;
  s = RawUnaryCall(mtls, kReflectionMethod, std::string(kListServices, 3), &reply);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(reply, HasSubstr("crm.testing.v1.Echo"));
  EXPECT_TRUE(CallEcho(mtls).ok());
}

TEST_F(HealthPortTest, DrainNoticeTurnsReadinessNotServingButNotLiveness) {
  auto runner = StartWithHealthPort(/*drain_notice=*/absl::Hours(1));
  ASSERT_NE(runner, nullptr);
  auto health = Plaintext(runner->health_port());
  std::thread waiter([&] { EXPECT_THAT(runner->Wait(), IsOk()); });
  runner->Shutdown();
  EXPECT_TRUE(PollUntil([&] {
    absl::StatusOr<int> h = HealthStatus(health);
    return h.ok() && *h == kNotServing;
  }));
  EXPECT_THAT(crm::testing::GrpcHealthCheck(health, "crm.testing.v1.Echo"),
              crm::testing::IsOkAndHolds(kNotServing));
  EXPECT_THAT(crm::testing::GrpcHealthCheck(health, kLivenessService),
              crm::testing::IsOkAndHolds(kServing));
  // Calls are still accepted during the notice.
  EXPECT_TRUE(CallEcho(Channel("client", runner->port())).ok());
  runner->Shutdown();  // Cuts the notice short.
  waiter.join();
  // Stopped last, but stopped: nothing answers any more.
  EXPECT_FALSE(crm::testing::GrpcHealthCheck(health, kLivenessService).ok());
}

TEST_F(RpcIntegrationTest, MetricsEndpointServesCallCountersAndDenials) {
  EchoService service;
  AccessPolicy policy;
  policy.Allow(kEchoMethod, {"client"}).AllowAnyPeer(kSlowEchoMethod);
  auto runner = StartServer("b", std::move(policy), &service, absl::ZeroDuration(),
                            /*metrics=*/true);
  ASSERT_NE(runner, nullptr);
  ASSERT_GT(runner->metrics_port(), 0);
  ASSERT_TRUE(CallEcho(Channel("client", runner->port())).ok());
  ASSERT_TRUE(CallEcho(Channel("client", runner->port())).ok());
  ASSERT_FALSE(CallEcho(Channel("intruder", runner->port())).ok());
  CRM_ASSERT_OK_AND_ASSIGN(std::string body, HttpGetMetrics(runner->metrics_port()));
  EXPECT_THAT(body, HasSubstr("200 OK"));
  EXPECT_THAT(
      body,
      HasSubstr(R"(crm_rpc_server_calls_total{code="OK",method="/crm.testing.v1.Echo/Echo"} 2)"));
  EXPECT_THAT(body, HasSubstr(R"(crm_rpc_server_denied_total{reason="caller"} 1)"));
  EXPECT_THAT(
      body,
      HasSubstr(R"(crm_rpc_server_latency_seconds_count{method="/crm.testing.v1.Echo/Echo"} 2)"));
  EXPECT_THAT(body, HasSubstr(R"(crm_rpc_server_in_flight{method="/crm.testing.v1.Echo/Echo"} 0)"));
  // When tls_cert expires, read from the file.
  CRM_ASSERT_OK_AND_ASSIGN(std::string pem, pki::ReadFile(pki_->Files("b").cert_file));
  CRM_ASSERT_OK_AND_ASSIGN(absl::Time not_after, pki::NotAfter(pem));
  EXPECT_THAT(
      body, HasSubstr(absl::StrCat("crm_tls_certificate_expiry_timestamp_seconds{file=\"server\"} ",
                                   absl::ToUnixSeconds(not_after), "\n")));
}

TEST(RpcEd25519Test, Ed25519CertificatesWorkForMutualTls) {
  CRM_ASSERT_OK_AND_ASSIGN(TestPki pki,
                           TestPki::Create({"b", "client"}, pki::KeyAlgorithm::kEd25519));
  AccessPolicy policy;
  policy.Allow(kEchoMethod, {"client"}).Allow(kSlowEchoMethod, {"client"});
  ServerConfig config;
  config.service = "b";
  config.tls = pki.Files("b");
  config.handle_signals = false;
  config.metrics_listen = "";
  EchoService service;
  ServerRunner runner(config, std::move(policy));
  runner.RegisterService(&service);
  ASSERT_THAT(runner.Start(), IsOk());
  ChannelConfig c;
  c.target = absl::StrCat("127.0.0.1:", runner.port());
  c.tls = pki.Files("client");
  CRM_ASSERT_OK_AND_ASSIGN(auto channel, MakeChannel(c));
  grpc::ClientContext context;
  EchoResponse response;
  grpc::Status s = Echo::NewStub(channel)->Echo(&context, EchoRequest(), &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.peer_identity(), "spiffe://crm.local/client");
}

// A real process: SIGTERM while SlowEcho is in flight; the call completes OK
// and the process exits 0.
TEST(EchoServerProcessTest, SigtermLetsInFlightCallFinishAndExitsZero) {
  CRM_ASSERT_OK_AND_ASSIGN(TestPki pki, TestPki::Create({"b", "client"}));
  const std::string binary =
      (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "crm-echo-server").string();
  ASSERT_TRUE(std::filesystem::exists(binary)) << binary;
  const std::string port_file = pki.dir() + "/ports";
  const TlsFiles files = pki.Files("b");
  std::vector<std::string> args = {binary,
                                   "--identity=b",
                                   "--tls_cert=" + files.cert_file,
                                   "--tls_key=" + files.key_file,
                                   "--tls_ca=" + files.ca_file,
                                   "--port_file=" + port_file,
                                   "--shutdown_grace=30s"};
  Subprocess::Options options;
  options.args = std::move(args);
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> server, Subprocess::Start(options));
  int grpc_port = 0;
  int metrics_port = 0;
  ASSERT_TRUE(PollUntil([&] {
    std::ifstream in(port_file);
    return static_cast<bool>(in >> grpc_port >> metrics_port);
  }));

  ChannelConfig c;
  c.target = absl::StrCat("127.0.0.1:", grpc_port);
  c.tls = pki.Files("client");
  c.max_attempts = 1;
  c.default_deadline = absl::Seconds(60);
  CRM_ASSERT_OK_AND_ASSIGN(auto channel, MakeChannel(c));
  std::atomic<bool> done{false};
  grpc::Status status;
  EchoResponse response;
  std::thread caller([&] {
    std::unique_ptr<grpc::ClientContext> context = NewClientContext(c);
    EchoRequest request;
    request.set_message("slow");
    request.set_delay_ms(3000);
    status = Echo::NewStub(channel)->SlowEcho(context.get(), request, &response);
    done = true;
  });
  // The call is in flight once the server's gauge says so.
  ASSERT_TRUE(PollUntil([&] {
    absl::StatusOr<std::string> body = HttpGetMetrics(metrics_port);
    return body.ok() &&
           absl::StrContains(
               *body, R"(crm_rpc_server_in_flight{method="/crm.testing.v1.Echo/SlowEcho"} 1)");
  }));
  ASSERT_THAT(server->Signal(SIGTERM), IsOk());
  const bool done_before_sigterm = done.load();
  caller.join();
  CRM_ASSERT_OK_AND_ASSIGN(ExitStatus exit, server->WaitForExit(absl::Seconds(60)));
  EXPECT_FALSE(done_before_sigterm) << "the call must still be in flight at SIGTERM";
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.message(), "slow");
  EXPECT_TRUE(exit.exited_with(0)) << exit;
}

}  // namespace
}  // namespace crm::rpc
