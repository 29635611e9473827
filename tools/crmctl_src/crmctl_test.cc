// crmctl end to end: the real binary run as a subprocess against in-process
// servers over mutual TLS on loopback (an Echo ServerRunner, an HTTPS
// gateway stand-in, a fake Identity service for the identity commands, a
// fake Contacts service for the contacts commands, a fake Consent service
// for the consent commands, a fake Mailing service for the mailing
// commands, a fake Erasure service for the erasure commands), with a
// throwaway PKI. Plus unit tests of option parsing, method lookup, the
// identity, contacts, consent, mailing and erasure command tables and token
// expiry.
#include "tools/crmctl_src/crmctl.h"

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/erasure/v1/erasure.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/status_matchers.h"
#include "tools/crmctl_src/consent_commands.h"
#include "tools/crmctl_src/contacts_commands.h"
#include "tools/crmctl_src/csv.h"
#include "tools/crmctl_src/erasure_commands.h"
#include "tools/crmctl_src/identity_commands.h"
#include "tools/crmctl_src/mailing_commands.h"
#include "tools/crmctl_src/options.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/session.h"
#include "tools/crmctl_src/table_commands.h"

extern char** environ;

namespace crm::crmctl {
namespace {

using ::crm::rpc::AccessPolicy;
using ::crm::rpc::ServerConfig;
using ::crm::rpc::ServerRunner;
using ::crm::rpc::testing::EchoService;
using ::crm::rpc::testing::kEchoMethod;
using ::crm::rpc::testing::kSlowEchoMethod;
using ::crm::rpc::testing::TestPki;
using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

namespace cv1 = ::crm::contacts::v1;
namespace nv1 = ::crm::consent::v1;
namespace mv1 = ::crm::mailing::v1;
namespace ev1 = ::crm::erasure::v1;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the crmctl binary with `args`, `stdin_data` on its standard input and
// an environment of PATH, the sanitizer options and `env`.
Result RunCrmctl(const std::vector<std::string>& args, const std::string& stdin_data = "",
                 const std::vector<std::string>& env = {}) {
  static int counter = 0;
  const std::string base = absl::StrCat(::testing::TempDir(), "/crmctl_", getpid(), "_", counter++);
  const std::string in_path = base + ".in", out_path = base + ".out", err_path = base + ".err";
  std::ofstream(in_path) << stdin_data;

  std::vector<std::string> argv_strings = {CRMCTL_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<std::string> env_strings = {"PATH=/usr/bin:/bin"};
  for (const char* name : {"ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"}) {
    if (const char* v = getenv(name)) env_strings.push_back(absl::StrCat(name, "=", v));
  }
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> argv, envp;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = 0;
  Result result;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << strerror(rc);
    return result;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  for (const std::string& p : {in_path, out_path, err_path}) std::filesystem::remove(p);
  // Under CRM_SANITIZE the child is instrumented too: its reports fail here.
  EXPECT_THAT(result.err, AllOf(Not(HasSubstr("Sanitizer")), Not(HasSubstr("runtime error:"))));
  return result;
}

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.exit_code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

// A loopback TCP port that refuses connections: bound (so nobody else gets
// it) but not listening, for as long as the object lives.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~ClosedPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// An HTTPS server standing in for the gateway: GET /healthz answers
// `status`; client certificates of the test CA are required.
class FakeGateway {
 public:
  FakeGateway(const rpc::TlsFiles& files, int status)
      : server_(files.cert_file.c_str(), files.key_file.c_str(), files.ca_file.c_str()) {
    server_.Get("/healthz", [status](const httplib::Request&, httplib::Response& res) {
      res.status = status;
      res.set_content("ok", "text/plain");
    });
    // bind_to_any_port also listens: connections queue until the loop runs.
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeGateway() {
    server_.stop();
    thread_.join();
  }
  bool valid() const { return server_.is_valid() && port_ > 0; }
  int port() const { return port_; }

 private:
  httplib::SSLServer server_;
  int port_ = 0;
  std::thread thread_;
};

class CrmctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { log::SetMinLevel(log::Level::kError); }

  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(TestPki pki, TestPki::Create({"audit", "operator", "gateway"}));
    pki_ = std::make_unique<TestPki>(std::move(pki));
    AccessPolicy policy;
    policy.Allow(kEchoMethod, {"operator"}).AllowAnyPeer(kSlowEchoMethod);
    server_ = StartServer("audit", std::move(policy));
    ASSERT_NE(server_, nullptr);
  }

  std::unique_ptr<ServerRunner> StartServer(const std::string& name, AccessPolicy policy) {
    ServerConfig config;
    config.metrics_listen = "";  // civetweb is slow to stop and not tested here.
    config.service = name;
    config.tls = pki_->Files(name);
    config.handle_signals = false;
    config.shutdown_grace = absl::Seconds(1);
    auto runner = std::make_unique<ServerRunner>(config, std::move(policy));
    runner->RegisterService(&echo_);
    absl::Status s = runner->Start();
    EXPECT_THAT(s, IsOk());
    return s.ok() ? std::move(runner) : nullptr;
  }

  // --cert/--key/--ca of the operator.
  std::vector<std::string> Tls() const {
    rpc::TlsFiles f = pki_->Files("operator");
    return {"--cert", f.cert_file, "--key", f.key_file, "--ca=" + f.ca_file};
  }
  std::string Address() const { return absl::StrCat("127.0.0.1:", server_->port()); }

  // `call --addr <server> --server-identity spiffe://crm.local/audit args...`.
  Result CallEcho(const std::vector<std::string>& args, const std::string& stdin_data = "") {
    std::vector<std::string> all = {"call", "--addr", Address(), "--server-identity",
                                    "spiffe://crm.local/audit"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<std::string> tls = Tls();
    all.insert(all.end(), tls.begin(), tls.end());
    return RunCrmctl(all, stdin_data);
  }

  std::unique_ptr<TestPki> pki_;
  EchoService echo_;
  std::unique_ptr<ServerRunner> server_;
};

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(CrmctlTest, HealthOfServingServerExitsZeroAndPrintsTable) {
  Result r = RunCrmctl(Concat({"health", "audit", "--audit=" + Address()}, Tls()));
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, ContainsRegex("^SERVICE +ADDRESS +STATUS +LATENCY\n"));
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\naudit +", Address(), " +SERVING +[0-9.]+ms\n")));
}

TEST_F(CrmctlTest, HealthOfPortWithNothingListeningSaysUnavailableAndFails) {
  ClosedPort closed;
  ASSERT_GT(closed.port(), 0);
  const std::string closed_address = absl::StrCat("127.0.0.1:", closed.port());
  Result r = RunCrmctl(
      Concat({"health", "audit", "contacts", "--audit", Address(), "--contacts=" + closed_address},
             Tls()));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\naudit +", Address(), " +SERVING")));
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\ncontacts +", closed_address, " +UNAVAILABLE")));
}

TEST_F(CrmctlTest, HealthRefusesServerWithAnotherIdentity) {
  Result r = RunCrmctl(Concat(
      {"health", "--addr", Address(), "--server-identity", "spiffe://crm.local/identity"}, Tls()));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.out, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(r.out, Not(HasSubstr(" SERVING")));
}

TEST_F(CrmctlTest, HealthTakesAddressFromEnvironmentAndCertificatesFromPkiDir) {
  Result r = RunCrmctl({"health", "audit"}, "",
                       {"CRMCTL_AUDIT_ADDR=" + Address(), "CRM_PKI_DIR=" + pki_->dir()});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\naudit +", Address(), " +SERVING")));
}

TEST_F(CrmctlTest, FlagAddressWinsOverEnvironment) {
  ClosedPort closed;
  Result r = RunCrmctl(Concat({"health", "audit", "--audit=" + Address()}, Tls()), "",
                       {absl::StrCat("CRMCTL_AUDIT_ADDR=127.0.0.1:", closed.port())});
  EXPECT_EQ(r.exit_code, 0) << r;
}

TEST_F(CrmctlTest, GatewayHealthIsGetHealthzOverMutualTls) {
  FakeGateway gateway(pki_->Files("gateway"), 200);
  ASSERT_TRUE(gateway.valid());
  const std::string address = absl::StrCat("127.0.0.1:", gateway.port());
  Result r = RunCrmctl(Concat({"health", "gateway", "--gateway", address}, Tls()));
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\ngateway +", address, " +SERVING")));
}

TEST_F(CrmctlTest, GatewayHealthFailsOnErrorStatusAndOnWrongIdentity) {
  FakeGateway failing(pki_->Files("gateway"), 503);
  Result r = RunCrmctl(Concat(
      {"health", "gateway", "--gateway", absl::StrCat("127.0.0.1:", failing.port())}, Tls()));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.out, HasSubstr("HTTP 503"));

  FakeGateway impostor(pki_->Files("audit"), 200);  // Our CA, but not the gateway.
  r = RunCrmctl(Concat(
      {"health", "gateway", "--gateway", absl::StrCat("127.0.0.1:", impostor.port())}, Tls()));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.out, HasSubstr("UNAVAILABLE"));
}

TEST_F(CrmctlTest, CallEchoPrintsResponseAsJsonWithProtoFieldNames) {
  Result r = CallEcho({"crm.testing.v1.Echo/Echo", R"({"message": "hello"})"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr(R"("message": "hello")"));
  EXPECT_THAT(r.out, HasSubstr(R"("peer_identity": "spiffe://crm.local/operator")"));
  EXPECT_THAT(r.err, IsEmpty());
  EXPECT_EQ(echo_.handler_runs(), 1);
}

TEST_F(CrmctlTest, CallByServiceNameUsesItsAddressAndIdentity) {
  Result r = RunCrmctl(Concat(
      {"call", "audit", "Echo/Echo", R"({"message": "via name"})", "--audit", Address()}, Tls()));
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr(R"("message": "via name")"));
}

TEST_F(CrmctlTest, CallReadsJsonFromStdin) {
  Result r = CallEcho({"Echo", "-"}, R"({"message": "from stdin"})");
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr(R"("message": "from stdin")"));
}

TEST_F(CrmctlTest, CallSendsHeadersAsMetadata) {
  Result r = CallEcho({"Echo/Echo", "{}", "--header", "X-Request-Id=crmctl-test-7"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr(R"("request_id": "crmctl-test-7")"));
}

TEST_F(CrmctlTest, MalformedJsonExitsTwoNamingTheProblem) {
  Result r = CallEcho({"Echo/Echo", R"({"message": hello})"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("invalid JSON request for crm.testing.v1.EchoRequest"));

  r = CallEcho({"Echo/Echo", R"({"mesage": "hello"})"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("mesage"));
  EXPECT_EQ(echo_.handler_runs(), 0);
}

TEST_F(CrmctlTest, UnknownMethodListsCandidates) {
  Result r = CallEcho({"Echo/Ech", "{}"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, AllOf(HasSubstr("crm.testing.v1.Echo has no method \"Ech\""),
                           HasSubstr("Echo, SlowEcho")));

  r = CallEcho({"Ecko/Echo", "{}"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, AllOf(HasSubstr("unknown service \"Ecko\""), HasSubstr("crm.testing.v1.Echo"),
                           HasSubstr("crm.audit.v1.AuditIngest")));

  r = CallEcho({"Ech", "{}"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(
      r.err, AllOf(HasSubstr("unknown method \"Ech\""), HasSubstr("crm.testing.v1.Echo/SlowEcho")));
}

TEST_F(CrmctlTest, ServerSidePermissionDeniedIsAnErrorLineAndExitOne) {
  AccessPolicy erasure_only;
  erasure_only.Allow(kEchoMethod, {"erasure"}).Allow(kSlowEchoMethod, {"erasure"});
  std::unique_ptr<ServerRunner> strict = StartServer("audit", std::move(erasure_only));
  ASSERT_NE(strict, nullptr);
  Result r = RunCrmctl(Concat({"call", "--addr", absl::StrCat("127.0.0.1:", strict->port()),
                               "--server-identity", "audit", "Echo/Echo", "{}"},
                              Tls()));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR PERMISSION_DENIED: "));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(CrmctlTest, TimeoutGivesDeadlineExceeded) {
  Result r = CallEcho({"SlowEcho", R"({"delay_ms": 1500})", "--timeout", "200ms"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR DEADLINE_EXCEEDED: "));
}

TEST_F(CrmctlTest, CallToWrongServerIdentityFails) {
  Result r = RunCrmctl(Concat({"call", "--addr", Address(), "--server-identity", "identity",
                               "Echo/Echo", "{}", "--timeout=2s"},
                              Tls()));
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAVAILABLE: "));
  EXPECT_EQ(echo_.handler_runs(), 0);
}

TEST_F(CrmctlTest, UsageErrorsExitTwoAndNameTheFlag) {
  Result r = RunCrmctl({});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("Usage:"));

  r = RunCrmctl({"health", "--bogus"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("--bogus: unknown flag"));

  r = RunCrmctl({"call", "--timeout=soon", "audit", "Echo", "{}"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("--timeout: expected a positive duration"));

  r = RunCrmctl({"health", "--audit", "no-port"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("--audit: expected host:port"));

  r = RunCrmctl({"call", "audit", "Echo"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("call needs <service> <Method> <json>"));

  r = RunCrmctl({"health", "billing"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("unknown service \"billing\""));

  r = RunCrmctl({"health", "audit", "--audit", Address(), "--cert", pki_->dir() + "/nope.crt",
                 "--key", pki_->dir() + "/operator.key", "--ca", pki_->ca_file()});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("--cert"));
}

TEST_F(CrmctlTest, HelpExitsZero) {
  Result r = RunCrmctl({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, AllOf(HasSubstr("Usage:"), HasSubstr("--server-identity")));
  r = RunCrmctl({"call", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("ERROR <CODE>: <message>"));
  r = RunCrmctl({"help", "health"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("SERVICE  ADDRESS  STATUS  LATENCY"));
}

TEST_F(CrmctlTest, ListPrintsServicesAndMethods) {
  Result r = RunCrmctl({"list", "Echo"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out,
            "crm.testing.v1.Echo\n"
            "  Echo(crm.testing.v1.EchoRequest) returns (crm.testing.v1.EchoResponse)\n"
            "  SlowEcho(crm.testing.v1.EchoRequest) returns (crm.testing.v1.EchoResponse)\n");
  r = RunCrmctl({"list", "nothing"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("known services: "));
}

// A token shaped like our access tokens: crmctl only reads the exp of its
// payload.
std::string FakeJwt(absl::Time exp, absl::string_view tag) {
  return absl::StrCat(absl::WebSafeBase64Escape(R"({"alg":"EdDSA","kid":"k1"})"), ".",
                      absl::WebSafeBase64Escape(absl::StrCat(R"({"sub":")", tag, R"(","exp":)",
                                                             absl::ToUnixSeconds(exp), "}")),
                      ".c2ln");
}

// --- what the fakes of the command families and their fixtures share ---

// Records every call a fake service receives (method, authorization
// metadata, request) for the test to look at. Thread-safe.
class CallRecorder {
 public:
  struct Seen {
    std::string method;
    std::string authorization;  // Empty if none was sent.
    std::string request;        // Serialized.
  };

  // The calls of `method`, in order.
  std::vector<Seen> Calls(absl::string_view method) {
    absl::MutexLock lock(&mu_);
    std::vector<Seen> out;
    for (const Seen& s : seen_) {
      if (s.method == method) out.push_back(s);
    }
    return out;
  }
  size_t CallCount() {
    absl::MutexLock lock(&mu_);
    return seen_.size();
  }
  // The request of the last call of `method`; an empty T if there was none.
  template <typename T>
  T LastRequest(absl::string_view method) {
    std::vector<Seen> calls = Calls(method);
    T request;
    if (!calls.empty()) request.ParseFromString(calls.back().request);
    return request;
  }

 protected:
  // Records the call; returns its authorization metadata (empty if none).
  std::string Record(const char* method, grpc::ServerContext* ctx,
                     const google::protobuf::Message& req) {
    std::string authorization;
    auto it = ctx->client_metadata().find("authorization");
    if (it != ctx->client_metadata().end()) {
      authorization.assign(it->second.data(), it->second.size());
    }
    absl::MutexLock lock(&mu_);
    seen_.push_back({method, authorization, req.SerializeAsString()});
    return authorization;
  }

 private:
  absl::Mutex mu_;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
};

// A CallRecorder for a fake that accepts one access token, the one of the
// test's session.
class TokenCheckingRecorder : public CallRecorder {
 public:
  explicit TokenCheckingRecorder(std::string token) : token_(std::move(token)) {}

 protected:
  // Records the call; true if it carries the bearer token.
  bool Record(const char* method, grpc::ServerContext* ctx, const google::protobuf::Message& req) {
    return CallRecorder::Record(method, ctx, req) == absl::StrCat("Bearer ", token_);
  }
  static grpc::Status Unauthenticated() {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
  }

 private:
  const std::string token_;
};

// A fake service served by a ServerRunner over mutual TLS on a loopback
// port of its own, with a throwaway PKI of the service's certificate and
// the operator's, the one peer it lets call. The service must outlive it.
class FakeServer {
 public:
  // Serves `service` (gRPC full name `full_name`) as `name` ("contacts": the
  // identity spiffe://crm.local/contacts). Errors of the PKI, the policy and
  // the server's start.
  absl::Status Start(const std::string& name, const std::string& full_name,
                     grpc::Service* service) {
    absl::StatusOr<TestPki> pki = TestPki::Create({name, "operator"});
    if (!pki.ok()) return pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
    AccessPolicy policy;
    policy.AllowService(full_name, {"operator"});
    if (absl::Status s = policy.Validate(); !s.ok()) return s;
    ServerConfig config;
    config.metrics_listen = "";
    config.service = name;
    config.tls = pki_->Files(name);
    config.handle_signals = false;
    config.shutdown_grace = absl::Seconds(1);
    server_ = std::make_unique<ServerRunner>(config, std::move(policy));
    server_->RegisterService(service);
    return server_->Start();
  }

  std::string Address() const { return absl::StrCat("127.0.0.1:", server_->port()); }
  const TestPki& pki() const { return *pki_; }

 private:
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<ServerRunner> server_;
};

// The commands of one family against its fake `Fake` (made from the
// operator's token), as an operator with a fresh session in a directory of
// the test's own; the identity address refuses connections (nothing is
// renewed).
template <typename Fake>
class FamilyCommandsTest : public ::testing::Test {
 protected:
  // `name`: the service ("contacts"): its certificate, its --contacts flag
  // and $CRMCTL_CONTACTS_ADDR; `full_name`: its gRPC service.
  FamilyCommandsTest(std::string name, std::string full_name)
      : name_(std::move(name)), full_name_(std::move(full_name)) {}

  static void SetUpTestSuite() { log::SetMinLevel(log::Level::kError); }

  void SetUp() override {
    ASSERT_THAT(server_.Start(name_, full_name_, &fake_), IsOk());
    static int counter = 0;
    dir_ = absl::StrCat(::testing::TempDir(), "/crmctl_", name_, "_", getpid(), "_", counter++);
    session_path_ = dir_ + "/session";
    ASSERT_THAT(SaveSession(session_path_,
                            {.access_token = kToken, .refresh_token = "r-1", .user_id = "u-1"}),
                IsOk());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Address() const { return server_.Address(); }
  // crmctl `args` against the fake (its address from --<name>, or from
  // $CRMCTL_<NAME>_ADDR when `address_in_env`).
  Result Crmctl(const std::vector<std::string>& args, bool address_in_env = false,
                const std::string& stdin_data = "") {
    rpc::TlsFiles f = server_.pki().Files("operator");
    std::vector<std::string> flags = {"--identity", absl::StrCat("127.0.0.1:", identity_.port()),
                                      "--cert",     f.cert_file,
                                      "--key",      f.key_file,
                                      "--ca",       f.ca_file};
    std::vector<std::string> env = {"CRMCTL_SESSION_FILE=" + session_path_};
    if (address_in_env) {
      env.push_back(absl::StrCat("CRMCTL_", absl::AsciiStrToUpper(name_), "_ADDR=", Address()));
    } else {
      flags.push_back(absl::StrCat("--", name_, "=", Address()));
    }
    return RunCrmctl(Concat(args, flags), stdin_data, env);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // A file in the test's directory holding `bytes`.
  std::string WriteFile(const std::string& name, const std::string& bytes) {
    std::filesystem::create_directories(dir_);
    std::ofstream(Path(name), std::ios::binary) << bytes;
    return Path(name);
  }

  const std::string name_;
  const std::string full_name_;
  const std::string kToken = FakeJwt(absl::Now() + absl::Hours(1), name_ + "-operator");
  Fake fake_{kToken};
  FakeServer server_;  // After fake_: stops before the fake goes.
  ClosedPort identity_;
  std::string dir_;
  std::string session_path_;
};

// Success if `r` exited 0 and printed the JSON of a T, which is then in
// `*message`; else a failure showing the run.
template <typename T>
::testing::AssertionResult IsJsonOutput(const Result& r, T* message) {
  if (r.exit_code != 0) return ::testing::AssertionFailure() << "exit code is not 0: " << r;
  if (!google::protobuf::util::JsonStringToMessage(r.out, message).ok()) {
    return ::testing::AssertionFailure()
           << "not the JSON of a " << T::descriptor()->full_name() << ":\n"
           << r.out;
  }
  return ::testing::AssertionSuccess();
}

// A command line and (part of) what crmctl says of its bad usage.
struct UsageCase {
  std::vector<std::string> args;
  std::string message;
};

// Runs every case with `crmctl` (a fixture's Crmctl) and expects exit 2
// with the case's message on stderr.
template <typename Run>
void ExpectUsageErrors(Run crmctl, const std::vector<UsageCase>& cases) {
  for (const UsageCase& c : cases) {
    Result r = crmctl(c.args);
    EXPECT_EQ(r.exit_code, 2) << r;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << r;
  }
}

// --- identity commands against a fake Identity service ---

namespace v1 = ::crm::identity::v1;

constexpr char kPassword[] = "correct horse battery";
const absl::Time kGrantEnd = absl::FromUnixSeconds(1'900'000'000);

// A test double of the Identity RPC surface: records every call (method,
// authorization metadata, request) and answers from a tiny state: the one
// access token and the one refresh token it currently accepts.
class FakeIdentity final : public v1::Identity::Service, public CallRecorder {
 public:
  // The pair the fake accepts from now on.
  void Accept(std::string access, std::string refresh) {
    absl::MutexLock lock(&mu_);
    access_ = std::move(access);
    refresh_ = std::move(refresh);
  }
  std::string access() {
    absl::MutexLock lock(&mu_);
    return access_;
  }
  std::string refresh() {
    absl::MutexLock lock(&mu_);
    return refresh_;
  }
  grpc::Status Login(grpc::ServerContext* ctx, const v1::LoginRequest* req,
                     v1::LoginResponse* resp) override {
    Record("Login", ctx, *req);
    if (req->password() != kPassword) return Unauthenticated("invalid credentials");
    Issue(resp->mutable_tokens());
    resp->set_user_id("u-1");
    resp->set_session_id("s-1");
    resp->set_password_change_required(req->username() == "admin");
    return grpc::Status::OK;
  }
  grpc::Status RefreshSession(grpc::ServerContext* ctx, const v1::RefreshSessionRequest* req,
                              v1::RefreshSessionResponse* resp) override {
    Record("RefreshSession", ctx, *req);
    if (req->refresh_token() != refresh()) {
      return Unauthenticated("refresh token reused; session revoked");
    }
    Issue(resp->mutable_tokens());
    return grpc::Status::OK;
  }
  grpc::Status Logout(grpc::ServerContext* ctx, const v1::LogoutRequest* req,
                      v1::LogoutResponse*) override {
    return Record("Logout", ctx, *req) ? grpc::Status::OK : Unauthenticated("bad token");
  }
  grpc::Status ChangePassword(grpc::ServerContext* ctx, const v1::ChangePasswordRequest* req,
                              v1::ChangePasswordResponse* resp) override {
    if (!Record("ChangePassword", ctx, *req)) return Unauthenticated("bad token");
    if (req->current_password() != kPassword) {
      return Unauthenticated("current_password: does not match");
    }
    Issue(resp->mutable_tokens());
    return grpc::Status::OK;
  }
  grpc::Status GetUser(grpc::ServerContext* ctx, const v1::GetUserRequest* req,
                       v1::GetUserResponse* resp) override {
    if (!Record("GetUser", ctx, *req)) return Unauthenticated("access token expired");
    resp->mutable_user()->set_user_id(req->user_id());
    resp->mutable_user()->set_username("bob");
    resp->mutable_user()->set_status(v1::USER_STATUS_ACTIVE);
    resp->mutable_user()->mutable_created_at()->set_seconds(1'800'000'000);
    return grpc::Status::OK;
  }
  grpc::Status CreateUser(grpc::ServerContext* ctx, const v1::CreateUserRequest* req,
                          v1::CreateUserResponse* resp) override {
    if (!Record("CreateUser", ctx, *req)) return Unauthenticated("bad token");
    resp->mutable_user()->set_user_id("u-new");
    resp->mutable_user()->set_username(req->username());
    return grpc::Status::OK;
  }
  grpc::Status ListUsers(grpc::ServerContext* ctx, const v1::ListUsersRequest* req,
                         v1::ListUsersResponse* resp) override {
    if (!Record("ListUsers", ctx, *req)) return Unauthenticated("bad token");
    const bool first = req->page().page_token().empty();
    for (const char* id :
         first ? std::vector<const char*>{"u-1", "u-2"} : std::vector<const char*>{"u-3"}) {
      v1::User* user = resp->add_users();
      user->set_user_id(id);
      user->set_username(absl::StrCat("name-", id));
      user->set_status(v1::USER_STATUS_DISABLED);
    }
    if (first) resp->mutable_page()->set_next_page_token("page-2");
    return grpc::Status::OK;
  }
  // Grant g-2, ending at kGrantEnd, on the second page.
  grpc::Status ListGrants(grpc::ServerContext* ctx, const v1::ListGrantsRequest* req,
                          v1::ListGrantsResponse* resp) override {
    if (!Record("ListGrants", ctx, *req)) return Unauthenticated("bad token");
    v1::Grant* grant = resp->add_grants();
    if (req->page().page_token().empty()) {
      grant->set_grant_id("g-1");
      resp->mutable_page()->set_next_page_token("page-2");
    } else {
      grant->set_grant_id("g-2");
      grant->mutable_not_after()->set_seconds(absl::ToUnixSeconds(kGrantEnd));
    }
    return grpc::Status::OK;
  }
  grpc::Status ExtendGrant(grpc::ServerContext* ctx, const v1::ExtendGrantRequest* req,
                           v1::ExtendGrantResponse* resp) override {
    if (!Record("ExtendGrant", ctx, *req)) return Unauthenticated("bad token");
    resp->mutable_grant()->set_grant_id(req->grant_id());
    *resp->mutable_grant()->mutable_not_after() = req->new_not_after();
    return grpc::Status::OK;
  }
  grpc::Status GrantRole(grpc::ServerContext* ctx, const v1::GrantRoleRequest* req,
                         v1::GrantRoleResponse* resp) override {
    if (!Record("GrantRole", ctx, *req)) return Unauthenticated("bad token");
    resp->mutable_grant()->set_grant_id("g-1");
    resp->mutable_grant()->set_role(req->role());
    return grpc::Status::OK;
  }

 private:
  static grpc::Status Unauthenticated(const std::string& message) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, message);
  }
  // Records the call; true if it carries the accepted access token.
  bool Record(const char* method, grpc::ServerContext* ctx, const google::protobuf::Message& req) {
    const std::string authorization = CallRecorder::Record(method, ctx, req);
    absl::MutexLock lock(&mu_);
    return authorization == absl::StrCat("Bearer ", access_);
  }
  // A new pair, which becomes the accepted one.
  void Issue(v1::TokenPair* tokens) {
    absl::MutexLock lock(&mu_);
    ++issued_;
    access_ = FakeJwt(absl::Now() + absl::Hours(1), absl::StrCat("access-", issued_));
    refresh_ = absl::StrCat("refresh-", issued_);
    tokens->set_access_token(access_);
    tokens->set_refresh_token(refresh_);
  }

  absl::Mutex mu_;
  std::string access_ ABSL_GUARDED_BY(mu_) = "none";
  std::string refresh_ ABSL_GUARDED_BY(mu_) = "none";
  int issued_ ABSL_GUARDED_BY(mu_) = 0;
};

class IdentityCommandsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { log::SetMinLevel(log::Level::kError); }

  void SetUp() override {
    ASSERT_THAT(server_.Start("identity", v1::Identity::service_full_name(), &fake_), IsOk());
    static int counter = 0;
    dir_ = absl::StrCat(::testing::TempDir(), "/crmctl_session_", getpid(), "_", counter++);
    session_path_ = dir_ + "/config/crmctl/session";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // crmctl `args` against the fake, with the session file in the test's dir.
  Result Crmctl(const std::vector<std::string>& args, const std::string& stdin_data = "") {
    rpc::TlsFiles f = server_.pki().Files("operator");
    return RunCrmctl(Concat(args, {"--identity", server_.Address(), "--cert", f.cert_file, "--key",
                                   f.key_file, "--ca", f.ca_file}),
                     stdin_data, {"CRMCTL_SESSION_FILE=" + session_path_});
  }
  Result Login() {
    return Crmctl({"login", "alice", "--password-stdin"}, absl::StrCat(kPassword, "\n"));
  }
  Session StoredSession() {
    absl::StatusOr<std::optional<Session>> s = LoadSession(session_path_);
    EXPECT_TRUE(s.ok() && s->has_value()) << session_path_;
    return s.ok() && s->has_value() ? **s : Session{};
  }

  FakeIdentity fake_;
  FakeServer server_;  // After fake_: stops before the fake goes.
  std::string dir_;
  std::string session_path_;
};

TEST_F(IdentityCommandsTest, LoginSendsCredentialsAndStoresSessionPrivately) {
  Result r = Crmctl({"login", "alice", "--totp", "123456"}, absl::StrCat(kPassword, "\n"));
  ASSERT_EQ(r.exit_code, 0) << r;
  v1::LoginRequest sent = fake_.LastRequest<v1::LoginRequest>("Login");
  EXPECT_EQ(sent.username(), "alice");
  EXPECT_EQ(sent.password(), kPassword);
  EXPECT_EQ(sent.totp_code(), "123456");
  EXPECT_TRUE(fake_.Calls("Login")[0].authorization.empty());

  struct stat file = {}, dir = {};
  ASSERT_EQ(stat(session_path_.c_str(), &file), 0);
  ASSERT_EQ(stat((dir_ + "/config/crmctl").c_str(), &dir), 0);
  EXPECT_EQ(file.st_mode & 0777, 0600);
  EXPECT_EQ(dir.st_mode & 0777, 0700);
  Session stored = StoredSession();
  EXPECT_EQ(stored.access_token, fake_.access());
  EXPECT_EQ(stored.refresh_token, fake_.refresh());
  EXPECT_EQ(stored.user_id, "u-1");
  // Tokens never reach the terminal.
  EXPECT_THAT(r.out + r.err,
              AllOf(Not(HasSubstr(stored.access_token)), Not(HasSubstr(stored.refresh_token))));
  EXPECT_THAT(r.out, HasSubstr("Logged in"));
  EXPECT_THAT(r.out, Not(HasSubstr("crmctl passwd")));
}

TEST_F(IdentityCommandsTest, LoginTellsWhenThePasswordMustBeChanged) {
  Result r = Crmctl({"login", "admin", "--password-stdin"}, absl::StrCat(kPassword, "\n"));
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("run 'crmctl passwd'"));
}

TEST_F(IdentityCommandsTest, FailedLoginExitsOneAndStoresNothing) {
  Result r = Crmctl({"login", "alice"}, "wrong\n");
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAUTHENTICATED: invalid credentials"));
  EXPECT_FALSE(std::filesystem::exists(session_path_));

  r = Crmctl({"login", "alice"}, "");  // No password at all.
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("password: no input"));
}

TEST_F(IdentityCommandsTest, LaterCallsCarryTheBearerTokenAlsoGenericCall) {
  ASSERT_EQ(Login().exit_code, 0);
  Result r = Crmctl({"user", "get", "u-7"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("GetUser").back().authorization, "Bearer " + fake_.access());
  EXPECT_EQ(fake_.LastRequest<v1::GetUserRequest>("GetUser").user_id(), "u-7");
  EXPECT_THAT(r.out, ContainsRegex("user_id +u-7\n"));
  EXPECT_THAT(r.out, ContainsRegex("status +active\n"));
  EXPECT_THAT(r.out, ContainsRegex("created_at +2027-01-15T08:00:00Z\n"));

  r = Crmctl({"call", "identity", "GetUser", R"({"user_id": "u-8"})"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("GetUser").back().authorization, "Bearer " + fake_.access());
  EXPECT_THAT(r.out, HasSubstr(R"("user_id": "u-8")"));
}

TEST_F(IdentityCommandsTest, ExplicitAuthorizationHeaderWinsAndIsNotRefreshed) {
  ASSERT_EQ(Login().exit_code, 0);
  Result r = Crmctl({"user", "get", "u-7", "--header", "authorization=Bearer mine"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAUTHENTICATED: "));
  ASSERT_EQ(fake_.Calls("GetUser").size(), 1u);
  EXPECT_EQ(fake_.Calls("GetUser")[0].authorization, "Bearer mine");
  EXPECT_TRUE(fake_.Calls("RefreshSession").empty());
}

TEST_F(IdentityCommandsTest, ExpiredAccessTokenIsRenewedFirstAndTheRotatedPairStored) {
  ASSERT_THAT(SaveSession(session_path_,
                          {.access_token = FakeJwt(absl::Now() - absl::Minutes(1), "expired"),
                           .refresh_token = "refresh-old",
                           .user_id = "u-1"}),
              IsOk());
  fake_.Accept("unknown", "refresh-old");
  Result r = Crmctl({"user", "get", "u-7"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("RefreshSession").size(), 1u);
  EXPECT_EQ(fake_.LastRequest<v1::RefreshSessionRequest>("RefreshSession").refresh_token(),
            "refresh-old");
  // The expired token was never sent.
  ASSERT_EQ(fake_.Calls("GetUser").size(), 1u);
  EXPECT_EQ(fake_.Calls("GetUser")[0].authorization, "Bearer " + fake_.access());
  Session stored = StoredSession();
  EXPECT_EQ(stored.refresh_token, fake_.refresh());
  EXPECT_NE(stored.refresh_token, "refresh-old");
  EXPECT_EQ(stored.access_token, fake_.access());
  EXPECT_EQ(stored.user_id, "u-1");
}

TEST_F(IdentityCommandsTest, UnauthenticatedOnceRenewsAndRetriesOnce) {
  ASSERT_THAT(
      SaveSession(session_path_, {.access_token = FakeJwt(absl::Now() + absl::Hours(1), "revoked"),
                                  .refresh_token = "refresh-old"}),
      IsOk());
  fake_.Accept("something else", "refresh-old");
  Result r = Crmctl({"user", "get", "u-7"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("RefreshSession").size(), 1u);
  std::vector<FakeIdentity::Seen> calls = fake_.Calls("GetUser");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NE(calls[0].authorization, calls[1].authorization);
  EXPECT_EQ(calls[1].authorization, "Bearer " + fake_.access());
  EXPECT_EQ(StoredSession().refresh_token, fake_.refresh());
}

TEST_F(IdentityCommandsTest, EndedSessionSaysToLogInAgain) {
  ASSERT_THAT(
      SaveSession(session_path_, {.access_token = FakeJwt(absl::Now() - absl::Hours(1), "old"),
                                  .refresh_token = "refresh-spent"}),
      IsOk());
  fake_.Accept("a", "refresh-newer");
  Result r = Crmctl({"user", "get", "u-7"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAUTHENTICATED: refresh token reused"));
  EXPECT_THAT(r.err, HasSubstr("run 'crmctl login <username>'"));
  EXPECT_TRUE(fake_.Calls("GetUser").empty());

  // Without any session: not logged in.
  std::filesystem::remove(session_path_);
  r = Crmctl({"user", "get", "u-7"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, HasSubstr("not logged in"));
  EXPECT_TRUE(fake_.Calls("GetUser").back().authorization.empty());
}

TEST_F(IdentityCommandsTest, UserCreateMapsFlagsToFields) {
  ASSERT_EQ(Login().exit_code, 0);
  Result r = Crmctl({"user", "create", "bob", "--email", "bob@example.org", "--name=Bob Builder",
                     "--team", "t-1", "--team", "t-2", "--password-stdin"},
                    "Initial-password-1\n");
  ASSERT_EQ(r.exit_code, 0) << r;
  v1::CreateUserRequest sent = fake_.LastRequest<v1::CreateUserRequest>("CreateUser");
  EXPECT_EQ(sent.username(), "bob");
  EXPECT_EQ(sent.email(), "bob@example.org");
  EXPECT_EQ(sent.display_name(), "Bob Builder");
  EXPECT_EQ(sent.initial_password(), "Initial-password-1");
  EXPECT_THAT(sent.team_ids(), ::testing::ElementsAre("t-1", "t-2"));
  EXPECT_FALSE(sent.has_must_change_password());
  EXPECT_THAT(r.out, ContainsRegex("user_id +u-new\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("Initial-password-1")));
}

TEST_F(IdentityCommandsTest, BadUsageExitsTwoNamingTheArgumentWithoutCalling) {
  ASSERT_EQ(Login().exit_code, 0);
  const size_t calls = fake_.CallCount();
  ExpectUsageErrors(
      [this](const std::vector<std::string>& args) { return Crmctl(args); },
      {
          {{"user", "create", "bob", "--name", "B"}, "--email: required"},
          {{"user", "list", "--status", "gone"}, "--status: expected one of active, disabled"},
          {{"user", "get"}, "missing USER_ID"},
          {{"user", "get", "a", "b"}, "unexpected argument \"b\""},
          {{"user", "get", "a", "--status", "active"}, "--status: not a flag of 'crmctl user get'"},
          {{"user", "frob"}, "unknown command \"user frob\""},
          {{"user"}, "user needs a command: list, get, create"},
          {{"user", "login-history", "u", "--since", "yesterday"}, "--since: expected an RFC 3339"},
          {{"grant", "add", "u", "r", "--justification", "j", "--for", "8h", "--not-after",
            "2030-01-01T00:00:00Z"},
           "--for: give either --for or --not-after"},
          {{"grant", "add", "u", "r", "--justification", "j", "--for", "soon"},
           "--for: expected a positive duration"},
          {{"grant", "extend", "g", "--justification", "j"}, "--until or --by"},
          {{"role", "require-mfa", "admin", "maybe"}, "on|off: expected on or off"},
          {{"role", "list", "--all=yes"}, "--all: takes no value"},
          {{"health", "--reason", "x"}, "--reason: not a flag of health"},
      });
  EXPECT_EQ(fake_.CallCount(), calls);
}

TEST_F(IdentityCommandsTest, ListsFollowPagesIntoOneTableOrJson) {
  ASSERT_EQ(Login().exit_code, 0);
  Result r = Crmctl({"user", "list", "--status", "disabled", "--role", "admin"});
  ASSERT_EQ(r.exit_code, 0) << r;
  std::vector<FakeIdentity::Seen> calls = fake_.Calls("ListUsers");
  ASSERT_EQ(calls.size(), 2u);
  v1::ListUsersRequest second;
  ASSERT_TRUE(second.ParseFromString(calls[1].request));
  EXPECT_EQ(second.status(), v1::USER_STATUS_DISABLED);
  EXPECT_EQ(second.role(), "admin");
  EXPECT_EQ(second.page().page_token(), "page-2");
  EXPECT_THAT(r.out, ContainsRegex("^ID +USERNAME +NAME +EMAIL +STATUS"));
  EXPECT_THAT(r.out, ContainsRegex("\nu-1 +name-u-1 +- +- +disabled"));
  EXPECT_THAT(r.out, ContainsRegex("\nu-3 +name-u-3 "));

  r = Crmctl({"user", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out,
              AllOf(HasSubstr(R"("user_id": "u-1")"), HasSubstr(R"("user_id": "u-3")"),
                    HasSubstr(R"("status": "USER_STATUS_DISABLED")"), Not(HasSubstr("page-2"))));
}

TEST_F(IdentityCommandsTest, GrantForEightHoursEndsEightHoursFromNow) {
  ASSERT_EQ(Login().exit_code, 0);
  const absl::Time before = absl::Now();
  Result r =
      Crmctl({"grant", "add", "u-2", "admin", "--justification", "incident 42", "--for", "8h"});
  const absl::Time after = absl::Now();
  ASSERT_EQ(r.exit_code, 0) << r;
  v1::GrantRoleRequest sent = fake_.LastRequest<v1::GrantRoleRequest>("GrantRole");
  EXPECT_EQ(sent.user_id(), "u-2");
  EXPECT_EQ(sent.role(), "admin");
  EXPECT_EQ(sent.justification(), "incident 42");
  EXPECT_FALSE(sent.has_not_before());
  const absl::Time end = absl::FromUnixSeconds(sent.not_after().seconds());
  EXPECT_GE(end, absl::FromUnixSeconds(absl::ToUnixSeconds(before + absl::Hours(8))));
  EXPECT_LE(end, after + absl::Hours(8));

  Crmctl({"grant", "add", "u-2", "admin", "--justification", "j", "--not-before",
          "2030-01-01T00:00:00Z", "--for", "1d12h"});
  sent = fake_.LastRequest<v1::GrantRoleRequest>("GrantRole");
  EXPECT_EQ(sent.not_before().seconds(), absl::ToUnixSeconds(absl::FromCivil(
                                             absl::CivilSecond(2030, 1, 1), absl::UTCTimeZone())));
  EXPECT_EQ(sent.not_after().seconds() - sent.not_before().seconds(), 36 * 3600);
}

TEST_F(IdentityCommandsTest, GrantExtendByMovesTheCurrentEndLater) {
  ASSERT_EQ(Login().exit_code, 0);
  Result r = Crmctl({"grant", "extend", "g-2", "--by", "24h", "--justification", "still on it"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_TRUE(fake_.LastRequest<v1::ListGrantsRequest>("ListGrants").include_inactive());
  v1::ExtendGrantRequest sent = fake_.LastRequest<v1::ExtendGrantRequest>("ExtendGrant");
  EXPECT_EQ(sent.grant_id(), "g-2");
  EXPECT_EQ(sent.justification(), "still on it");
  EXPECT_EQ(absl::FromUnixSeconds(sent.new_not_after().seconds()), kGrantEnd + absl::Hours(24));
  EXPECT_THAT(r.out, ContainsRegex("not_after +2030-03-18T17:46:40Z\n"));

  r = Crmctl({"grant", "extend", "g-1", "--by", "1h", "--justification", "j"});  // Open-ended.
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR FAILED_PRECONDITION: "));
  r = Crmctl({"grant", "extend", "g-9", "--by", "1h", "--justification", "j"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR NOT_FOUND: "));
  EXPECT_EQ(fake_.Calls("ExtendGrant").size(), 1u);
}

TEST_F(IdentityCommandsTest, LoginReplacesAMalformedSessionFile) {
  std::filesystem::create_directories(dir_ + "/config/crmctl");
  std::ofstream(session_path_) << "garbage\n";
  Result r = Crmctl({"user", "get", "u-1"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("not a crmctl session file"));
  ASSERT_EQ(Login().exit_code, 0);
  EXPECT_EQ(StoredSession().refresh_token, fake_.refresh());
}

TEST_F(IdentityCommandsTest, PasswdSendsBothPasswordsAndStoresTheFreshPair) {
  ASSERT_EQ(Login().exit_code, 0);
  const std::string old_refresh = StoredSession().refresh_token;
  Result r = Crmctl({"passwd", "--password-stdin"},
                    absl::StrCat(kPassword, "\nA-much-better-passphrase\n"));
  ASSERT_EQ(r.exit_code, 0) << r;
  v1::ChangePasswordRequest sent = fake_.LastRequest<v1::ChangePasswordRequest>("ChangePassword");
  EXPECT_EQ(sent.current_password(), kPassword);
  EXPECT_EQ(sent.new_password(), "A-much-better-passphrase");
  EXPECT_NE(StoredSession().refresh_token, old_refresh);
  EXPECT_EQ(StoredSession().refresh_token, fake_.refresh());

  // A wrong current password is sent once: no renewal and retry.
  r = Crmctl({"passwd"}, "wrong\nAnother-passphrase-2\n");
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAUTHENTICATED: current_password"));
  EXPECT_EQ(fake_.Calls("ChangePassword").size(), 2u);
  EXPECT_TRUE(fake_.Calls("RefreshSession").empty());
}

TEST_F(IdentityCommandsTest, LogoutEndsTheSessionAndRemovesTheFile) {
  ASSERT_EQ(Login().exit_code, 0);
  const std::string access = fake_.access();
  Result r = Crmctl({"logout"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("Logout").size(), 1u);
  EXPECT_EQ(fake_.Calls("Logout")[0].authorization, "Bearer " + access);
  EXPECT_FALSE(std::filesystem::exists(session_path_));

  r = Crmctl({"logout"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, HasSubstr("Not logged in"));
  EXPECT_EQ(fake_.Calls("Logout").size(), 1u);
}

// A test double of the Contacts RPC surface: records every call (method,
// authorization metadata, request) and answers canned persons, companies,
// invoices, interactions and retention rows. Calls without the bearer
// token of the test's session are UNAUTHENTICATED.
class FakeContacts final : public cv1::Contacts::Service, public TokenCheckingRecorder {
 public:
  using TokenCheckingRecorder::TokenCheckingRecorder;

  // Ada Lovelace, a customer; her second e-mail address is the primary one.
  static cv1::Person Ada(const std::string& subject_id) {
    cv1::Person p;
    p.set_subject_id(subject_id);
    p.set_status(cv1::PERSON_STATUS_CUSTOMER);
    p.set_given_name("Ada");
    p.set_family_name("Lovelace");
    p.add_emails()->set_address("ada@home.example");
    cv1::EmailAddress* primary = p.add_emails();
    primary->set_address("ada@example.com");
    primary->set_primary(true);
    p.add_phones()->set_number("+48123456789");
    p.set_version(3);
    return p;
  }

  grpc::Status CreatePerson(grpc::ServerContext* ctx, const cv1::CreatePersonRequest* req,
                            cv1::CreatePersonResponse* resp) override {
    if (!Record("CreatePerson", ctx, *req)) return Unauthenticated();
    *resp->mutable_person() = req->person();
    resp->mutable_person()->set_subject_id("s-new");
    resp->mutable_person()->set_version(1);
    return grpc::Status::OK;
  }
  grpc::Status GetPerson(grpc::ServerContext* ctx, const cv1::GetPersonRequest* req,
                         cv1::GetPersonResponse* resp) override {
    if (!Record("GetPerson", ctx, *req)) return Unauthenticated();
    if (req->subject_id() == "s-missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "person not found");
    }
    *resp->mutable_person() = Ada(req->subject_id());
    resp->add_masked_fields("personal_id_number");
    return grpc::Status::OK;
  }
  grpc::Status UpdatePerson(grpc::ServerContext* ctx, const cv1::UpdatePersonRequest* req,
                            cv1::UpdatePersonResponse* resp) override {
    if (!Record("UpdatePerson", ctx, *req)) return Unauthenticated();
    *resp->mutable_person() = req->person();
    resp->mutable_person()->set_subject_id(req->subject_id());
    resp->mutable_person()->set_version(4);
    return grpc::Status::OK;
  }
  // s-1 and s-2 on the first page, s-3 on the second.
  grpc::Status ListPersons(grpc::ServerContext* ctx, const cv1::ListPersonsRequest* req,
                           cv1::ListPersonsResponse* resp) override {
    if (!Record("ListPersons", ctx, *req)) return Unauthenticated();
    const bool first = req->page().page_token().empty();
    for (const char* id :
         first ? std::vector<const char*>{"s-1", "s-2"} : std::vector<const char*>{"s-3"}) {
      *resp->add_persons() = Ada(id);
    }
    resp->add_masked_fields("notes");
    if (first) resp->mutable_page()->set_next_page_token("page-2");
    return grpc::Status::OK;
  }
  grpc::Status LookupPersons(grpc::ServerContext* ctx, const cv1::LookupPersonsRequest* req,
                             cv1::LookupPersonsResponse* resp) override {
    if (!Record("LookupPersons", ctx, *req)) return Unauthenticated();
    *resp->add_persons() = Ada("s-1");
    return grpc::Status::OK;
  }
  grpc::Status SetRestriction(grpc::ServerContext* ctx, const cv1::SetRestrictionRequest* req,
                              cv1::SetRestrictionResponse* resp) override {
    if (!Record("SetRestriction", ctx, *req)) return Unauthenticated();
    resp->set_changed(true);
    return grpc::Status::OK;
  }
  grpc::Status AssignPerson(grpc::ServerContext* ctx, const cv1::AssignPersonRequest* req,
                            cv1::AssignPersonResponse* resp) override {
    if (!Record("AssignPerson", ctx, *req)) return Unauthenticated();
    *resp->mutable_assignment() = req->assignment();
    return grpc::Status::OK;
  }
  // Records every row as a call "ImportPersons"; the row at stream position
  // `import_error_row` (0: none) fails as a duplicate of s-9.
  grpc::Status ImportPersons(grpc::ServerContext* ctx,
                             grpc::ServerReader<cv1::ImportPersonsRequest>* reader,
                             cv1::ImportPersonsResponse* resp) override {
    cv1::ImportPersonsRequest req;
    bool authenticated = true;
    int64_t row = 0;
    while (reader->Read(&req)) {
      ++row;
      if (!Record("ImportPersons", ctx, req)) authenticated = false;
      if (row == import_error_row) {
        cv1::ImportRowError* e = resp->add_errors();
        e->set_row(row);
        e->set_field("person.emails[0].address");
        e->set_reason("already registered");
        e->set_existing_subject_id("s-9");
        resp->set_errors_total(resp->errors_total() + 1);
      } else {
        resp->set_imported(resp->imported() + 1);
        resp->add_subject_ids(absl::StrCat("s-new-", row));
      }
    }
    if (!authenticated) return Unauthenticated();
    resp->set_received(row);
    return grpc::Status::OK;
  }
  std::atomic<int64_t> import_error_row{0};

  // Acme, a company with two tax ids and billing data (the IBAN masked
  // when `mask_iban`), version 7.
  static cv1::Company Acme(const std::string& company_id) {
    cv1::Company c;
    c.set_company_id(company_id);
    c.set_name("Acme");
    cv1::TaxId* nip = c.add_tax_ids();
    nip->set_kind(cv1::TAX_ID_KIND_NIP);
    nip->set_value("5260250274");
    cv1::TaxId* vat = c.add_tax_ids();
    vat->set_kind(cv1::TAX_ID_KIND_EU_VAT);
    vat->set_value("PL5260250274");
    cv1::Billing* b = c.mutable_billing();
    b->mutable_billing_address()->set_city("Warszawa");
    b->mutable_billing_address()->set_country_code("PL");
    b->set_invoice_email("invoices@acme.example");
    b->set_bank_account("PL61109010140000071219812874");
    c.mutable_assignment()->set_team_id("t-1");
    c.set_version(7);
    return c;
  }
  std::atomic<bool> mask_iban{false};
  void MaskIban(cv1::Company& c, google::protobuf::RepeatedPtrField<std::string>* masked) {
    if (!mask_iban) return;
    c.mutable_billing()->clear_bank_account();
    if (masked->empty()) *masked->Add() = "company.billing.bank_account";
  }

  grpc::Status CreateCompany(grpc::ServerContext* ctx, const cv1::CreateCompanyRequest* req,
                             cv1::CreateCompanyResponse* resp) override {
    if (!Record("CreateCompany", ctx, *req)) return Unauthenticated();
    *resp->mutable_company() = req->company();
    resp->mutable_company()->set_company_id("c-new");
    resp->mutable_company()->set_version(1);
    return grpc::Status::OK;
  }
  grpc::Status GetCompany(grpc::ServerContext* ctx, const cv1::GetCompanyRequest* req,
                          cv1::GetCompanyResponse* resp) override {
    if (!Record("GetCompany", ctx, *req)) return Unauthenticated();
    if (req->company_id() == "c-missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "company not found");
    }
    *resp->mutable_company() = Acme(req->company_id());
    MaskIban(*resp->mutable_company(), resp->mutable_masked_fields());
    return grpc::Status::OK;
  }
  grpc::Status UpdateCompany(grpc::ServerContext* ctx, const cv1::UpdateCompanyRequest* req,
                             cv1::UpdateCompanyResponse* resp) override {
    if (!Record("UpdateCompany", ctx, *req)) return Unauthenticated();
    *resp->mutable_company() = req->company();
    resp->mutable_company()->set_company_id(req->company_id());
    resp->mutable_company()->set_version(8);
    return grpc::Status::OK;
  }
  // c-1 and c-2 (without tax ids and billing), one page.
  grpc::Status ListCompanies(grpc::ServerContext* ctx, const cv1::ListCompaniesRequest* req,
                             cv1::ListCompaniesResponse* resp) override {
    if (!Record("ListCompanies", ctx, *req)) return Unauthenticated();
    *resp->add_companies() = Acme("c-1");
    cv1::Company* bare = resp->add_companies();
    bare->set_company_id("c-2");
    bare->set_name("Bare Ltd");
    bare->set_version(1);
    MaskIban(*resp->mutable_companies(0), resp->mutable_masked_fields());
    return grpc::Status::OK;
  }
  grpc::Status RecordInvoice(grpc::ServerContext* ctx, const cv1::RecordInvoiceRequest* req,
                             cv1::RecordInvoiceResponse* resp) override {
    if (!Record("RecordInvoice", ctx, *req)) return Unauthenticated();
    *resp->mutable_invoice() = req->invoice();
    resp->mutable_invoice()->set_invoice_id("inv-new");
    resp->mutable_invoice()->set_retain_until("2031-12-31");
    return grpc::Status::OK;
  }
  grpc::Status ListInvoices(grpc::ServerContext* ctx, const cv1::ListInvoicesRequest* req,
                            cv1::ListInvoicesResponse* resp) override {
    if (!Record("ListInvoices", ctx, *req)) return Unauthenticated();
    for (const char* id : {"inv-2", "inv-1"}) {
      cv1::Invoice* i = resp->add_invoices();
      i->set_invoice_id(id);
      i->set_subject_id(req->subject_id());
      i->set_company_id(req->company_id());
      i->set_number(absl::StrCat("FV/2026/", id));
      i->set_issue_date("2026-01-31");
      i->set_currency("PLN");
      i->set_net_minor(10000);
      i->set_tax_minor(2300);
      i->set_gross_minor(12300);
      i->set_retain_until("2031-12-31");
    }
    return grpc::Status::OK;
  }
  grpc::Status AddInteraction(grpc::ServerContext* ctx, const cv1::AddInteractionRequest* req,
                              cv1::AddInteractionResponse* resp) override {
    if (!Record("AddInteraction", ctx, *req)) return Unauthenticated();
    *resp->mutable_interaction() = req->interaction();
    resp->mutable_interaction()->set_interaction_id("i-new");
    resp->mutable_interaction()->set_operator_user_id("u-1");
    return grpc::Status::OK;
  }
  // A call, and a sensitive note whose summary is masked.
  grpc::Status ListInteractions(grpc::ServerContext* ctx, const cv1::ListInteractionsRequest* req,
                                cv1::ListInteractionsResponse* resp) override {
    if (!Record("ListInteractions", ctx, *req)) return Unauthenticated();
    cv1::Interaction* call = resp->add_interactions();
    call->set_interaction_id("i-2");
    call->set_subject_id(req->subject_id());
    call->set_kind(cv1::INTERACTION_KIND_CALL);
    call->mutable_occurred_at()->set_seconds(1772359200);  // 2026-03-01T10:00:00Z
    call->set_operator_user_id("u-1");
    call->set_summary("asked for a quote");
    cv1::Interaction* note = resp->add_interactions();
    note->set_interaction_id("i-1");
    note->set_subject_id(req->subject_id());
    note->set_kind(cv1::INTERACTION_KIND_NOTE);
    note->mutable_occurred_at()->set_seconds(1772272800);  // 2026-02-28T10:00:00Z
    note->set_operator_user_id("u-2");
    note->set_sensitive(true);
    resp->add_masked_fields("interaction.summary");
    return grpc::Status::OK;
  }
  // s-1 on the first page, s-2 on the second.
  grpc::Status ListRetentionDue(grpc::ServerContext* ctx, const cv1::ListRetentionDueRequest* req,
                                cv1::ListRetentionDueResponse* resp) override {
    if (!Record("ListRetentionDue", ctx, *req)) return Unauthenticated();
    const bool first = req->page().page_token().empty();
    cv1::RetentionDue* due = resp->add_due();
    due->set_subject_id(first ? "s-1" : "s-2");
    due->set_rule("lead inactive 730 days");
    due->mutable_due_since()->set_seconds(first ? 1772272800 : 1772359200);
    due->set_state(first ? "due" : "erasure_requested");
    if (first) resp->mutable_page()->set_next_page_token("due-2");
    return grpc::Status::OK;
  }

  grpc::Status GetFieldCatalogue(grpc::ServerContext* ctx, const cv1::GetFieldCatalogueRequest* req,
                                 cv1::GetFieldCatalogueResponse* resp) override {
    if (!Record("GetFieldCatalogue", ctx, *req)) return Unauthenticated();
    cv1::FieldDescriptor* f = resp->add_fields();
    f->set_path("person.emails.address");
    f->set_data_category("contact");
    f->set_sensitivity(cv1::SENSITIVITY_PERSONAL);
    f->add_purposes("customer_relationship");
    f->add_purposes("marketing");
    f->set_retention("until erased");
    f = resp->add_fields();
    f->set_path("person.personal_id_number");
    f->set_data_category("identity");
    f->set_sensitivity(cv1::SENSITIVITY_SENSITIVE);
    f->add_purposes("invoicing");
    f->set_retention("accounting period");
    resp->set_version(1);
    return grpc::Status::OK;
  }
};

class ContactsCommandsTest : public FamilyCommandsTest<FakeContacts> {
 protected:
  ContactsCommandsTest() : FamilyCommandsTest("contacts", cv1::Contacts::service_full_name()) {}
};

TEST_F(ContactsCommandsTest, PersonCreateMapsFlagsToTheRequest) {
  Result r = Crmctl({"person",
                     "create",
                     "--family-name",
                     "Lovelace",
                     "--given-name=Ada",
                     "--email",
                     "ada@example.com",
                     "--email",
                     "ada@home.example",
                     "--phone",
                     "+48123456789",
                     "--status",
                     "former-customer",
                     "--job-title",
                     "Analyst",
                     "--owner",
                     "u-1",
                     "--owner",
                     "u-2",
                     "--team",
                     "t-1",
                     "--channel",
                     "web_form",
                     "--source",
                     "spring-campaign"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("CreatePerson").size(), 1u);
  EXPECT_EQ(fake_.Calls("CreatePerson")[0].authorization, "Bearer " + kToken);
  cv1::Person sent = fake_.LastRequest<cv1::CreatePersonRequest>("CreatePerson").person();
  EXPECT_EQ(sent.family_name(), "Lovelace");
  EXPECT_EQ(sent.given_name(), "Ada");
  ASSERT_EQ(sent.emails_size(), 2);
  EXPECT_EQ(sent.emails(0).address(), "ada@example.com");
  EXPECT_EQ(sent.emails(1).address(), "ada@home.example");
  EXPECT_FALSE(sent.emails(0).primary());  // The server picks the first.
  ASSERT_EQ(sent.phones_size(), 1);
  EXPECT_EQ(sent.phones(0).number(), "+48123456789");
  EXPECT_EQ(sent.status(), cv1::PERSON_STATUS_FORMER_CUSTOMER);
  EXPECT_EQ(sent.job_title(), "Analyst");
  EXPECT_THAT(sent.assignment().owner_user_ids(), ::testing::ElementsAre("u-1", "u-2"));
  EXPECT_EQ(sent.assignment().team_id(), "t-1");
  EXPECT_EQ(sent.registration().channel(), "web_form");
  EXPECT_EQ(sent.registration().source(), "spring-campaign");
  EXPECT_TRUE(sent.subject_id().empty());
  EXPECT_THAT(r.out, ContainsRegex("(^|\n)subject_id +s-new\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nstatus +former-customer\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nemails\\[1\\]\\.address +ada@home\\.example\n"));
  // CreatePersonResponse has no masked_fields: no such line.
  EXPECT_THAT(r.out, Not(HasSubstr("masked_fields")));
}

TEST_F(ContactsCommandsTest, PersonUpdateMasksExactlyTheFlagsGiven) {
  Result r = Crmctl({"person", "update", "s-1", "--given-name", "Augusta", "--email", "a@x.example",
                     "--email", "b@x.example", "--version", "3"});
  ASSERT_EQ(r.exit_code, 0) << r;
  cv1::UpdatePersonRequest sent = fake_.LastRequest<cv1::UpdatePersonRequest>("UpdatePerson");
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_THAT(sent.update_mask().paths(), ::testing::UnorderedElementsAre("given_name", "emails"));
  EXPECT_EQ(sent.expected_version(), 3);
  EXPECT_EQ(sent.person().given_name(), "Augusta");
  ASSERT_EQ(sent.person().emails_size(), 2);
  EXPECT_EQ(sent.person().emails(1).address(), "b@x.example");
  EXPECT_TRUE(sent.person().family_name().empty());
  EXPECT_THAT(r.out, ContainsRegex("\nversion +4\n"));

  r = Crmctl({"person", "update", "s-2", "--status", "customer"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<cv1::UpdatePersonRequest>("UpdatePerson");
  EXPECT_EQ(sent.subject_id(), "s-2");
  EXPECT_THAT(sent.update_mask().paths(), ::testing::ElementsAre("status"));
  EXPECT_EQ(sent.person().status(), cv1::PERSON_STATUS_CUSTOMER);
  EXPECT_EQ(sent.expected_version(), 0);
}

TEST_F(ContactsCommandsTest, PersonListFollowsPagesIntoOneTable) {
  Result r =
      Crmctl({"person", "list", "--status", "lead", "--team", "t-1", "--include-restricted"});
  ASSERT_EQ(r.exit_code, 0) << r;
  std::vector<FakeContacts::Seen> calls = fake_.Calls("ListPersons");
  ASSERT_EQ(calls.size(), 2u);
  cv1::ListPersonsRequest second;
  ASSERT_TRUE(second.ParseFromString(calls[1].request));
  EXPECT_EQ(second.page().page_token(), "page-2");
  EXPECT_EQ(second.status(), cv1::PERSON_STATUS_LEAD);
  EXPECT_EQ(second.team_id(), "t-1");
  EXPECT_TRUE(second.include_restricted());
  EXPECT_THAT(r.out,
              ContainsRegex("^SUBJECT_ID +STATUS +NAME +EMAIL +PHONE +RESTRICTED +VERSION\n"));
  // The primary e-mail address, not the first.
  EXPECT_THAT(r.out, ContainsRegex("\ns-1 +customer +Ada Lovelace +ada@example\\.com +"
                                   "\\+48123456789 +no +3\n"));
  EXPECT_THAT(r.out, ContainsRegex("\ns-2 "));
  EXPECT_THAT(r.out, ContainsRegex("\ns-3 "));
  EXPECT_THAT(r.out, Not(HasSubstr("page-2")));
  // Masked fields once, on stderr, though both pages named them.
  EXPECT_EQ(r.err, "masked_fields: notes\n");
}

TEST_F(ContactsCommandsTest, PersonGetPrintsFieldLinesWithMaskedFields) {
  Result r = Crmctl({"person", "get", "s-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<cv1::GetPersonRequest>("GetPerson").subject_id(), "s-1");
  EXPECT_THAT(r.out, ContainsRegex("^subject_id +s-1\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nfamily_name +Lovelace\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nemails\\[1\\]\\.primary +yes\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nmasked_fields +personal_id_number\n$"));
}

TEST_F(ContactsCommandsTest, LookupByEmailSendsThatKeyOnly) {
  Result r = Crmctl({"person", "lookup", "--email", "ADA@example.com"});
  ASSERT_EQ(r.exit_code, 0) << r;
  cv1::LookupPersonsRequest sent = fake_.LastRequest<cv1::LookupPersonsRequest>("LookupPersons");
  EXPECT_EQ(sent.key_case(), cv1::LookupPersonsRequest::kEmail);
  EXPECT_EQ(sent.email(), "ADA@example.com");
  EXPECT_THAT(r.out, ContainsRegex("\ns-1 +customer +Ada Lovelace "));

  r = Crmctl({"person", "lookup", "--phone", "+48123456789"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<cv1::LookupPersonsRequest>("LookupPersons");
  EXPECT_EQ(sent.key_case(), cv1::LookupPersonsRequest::kPhone);
  EXPECT_EQ(sent.phone(), "+48123456789");
}

TEST_F(ContactsCommandsTest, RestrictAndUnrestrictSetTheFlag) {
  Result r = Crmctl({"person", "restrict", "s-1", "--reason", "accuracy contested"});
  ASSERT_EQ(r.exit_code, 0) << r;
  cv1::SetRestrictionRequest sent = fake_.LastRequest<cv1::SetRestrictionRequest>("SetRestriction");
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_TRUE(sent.restricted());
  EXPECT_EQ(sent.reason(), "accuracy contested");
  EXPECT_THAT(r.out, ContainsRegex("^changed +yes\n"));

  r = Crmctl({"person", "unrestrict", "s-2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("SetRestriction").size(), 2u);
  sent = fake_.LastRequest<cv1::SetRestrictionRequest>("SetRestriction");
  EXPECT_EQ(sent.subject_id(), "s-2");
  EXPECT_FALSE(sent.restricted());
  EXPECT_TRUE(sent.reason().empty());
}

TEST_F(ContactsCommandsTest, AssignReplacesOwnersAndTeam) {
  Result r =
      Crmctl({"person", "assign", "s-1", "--owner", "u-7", "--owner", "u-8", "--team", "t-2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  cv1::AssignPersonRequest sent = fake_.LastRequest<cv1::AssignPersonRequest>("AssignPerson");
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_THAT(sent.assignment().owner_user_ids(), ::testing::ElementsAre("u-7", "u-8"));
  EXPECT_EQ(sent.assignment().team_id(), "t-2");
  EXPECT_THAT(r.out, ContainsRegex("^owner_user_ids +u-7,u-8\nteam_id +t-2\n$"));
}

TEST_F(ContactsCommandsTest, CatalogueIsATableAndTheAddressMayComeFromTheEnvironment) {
  Result r = Crmctl({"catalogue"}, /*address_in_env=*/true);
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("GetFieldCatalogue").size(), 1u);
  EXPECT_THAT(r.out, ContainsRegex("^PATH +CATEGORY +SENSITIVITY +PURPOSES +RETENTION\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nperson\\.emails\\.address +contact +personal +"
                                   "customer_relationship,marketing +until erased\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nperson\\.personal_id_number +identity +sensitive +"));
}

TEST_F(ContactsCommandsTest, RpcErrorPrintsTheCodeAndExitsOne) {
  Result r = Crmctl({"person", "get", "s-missing"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR NOT_FOUND: person not found\n"));
  EXPECT_THAT(r.out, IsEmpty());

  // An explicit authorization header is sent as it is (nothing renewed):
  // the fake refuses it.
  r = Crmctl({"person", "get", "s-1", "--header", "authorization=Bearer other"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAUTHENTICATED: bad token\n"));
}

TEST_F(ContactsCommandsTest, BadUsageExitsTwoNamingTheArgumentWithoutCalling) {
  ExpectUsageErrors(
      [this](const std::vector<std::string>& args) { return Crmctl(args); },
      {
          {{"person", "get"}, "missing SUBJECT_ID"},
          {{"person", "restrict", "--reason", "r"}, "missing SUBJECT_ID"},
          {{"person", "get", "s-1", "--frob", "x"}, "--frob: unknown flag"},
          {{"person", "get", "s-1", "--status", "lead"},
           "--status: not a flag of 'crmctl person get'"},
          {{"person", "get", "s-1", "s-2"}, "unexpected argument \"s-2\""},
          {{"person", "restrict", "s-1"}, "--reason: required"},
          {{"person", "create", "--status", "vip"},
           "--status: expected one of lead, prospect, customer, former-customer, partner, "
           "supplier-contact"},
          {{"person", "create", "--family-name", "A", "--family-name", "B"},
           "--family-name: given twice"},
          {{"person", "update", "s-1", "--version", "new"}, "--version: expected a number"},
          {{"person", "update", "s-1"}, "nothing to change: give at least one of --family-name"},
          {{"person", "lookup"}, "--email or --phone or --tax-id: give one of them"},
          {{"person", "lookup", "--email", "a@b.example", "--phone", "+481"},
           "--email or --phone or --tax-id: give one of them"},
          {{"person", "assign", "s-1"}, "--owner or --team: give at least one of them"},
          {{"person", "list", "--include-restricted=yes"}, "--include-restricted: takes no value"},
          {{"person", "frob"}, "unknown command \"person frob\""},
          {{"person"}, "person needs a command: create, get, update, list, lookup"},
      });
  EXPECT_EQ(fake_.CallCount(), 0u);
}

// Header columns in another case and order; row 2 is ragged (not sent), so
// the fake's stream position 2 is CSV row 3.
constexpr char kImportCsv[] =
    "Given_Name,family_name,email,status,phone,notes\r\n"
    "Ada,Lovelace,\"ada@example.com; ada@home.example\",former_customer,+48123456789,\"met at\n"
    "the \"\"engine\"\" talk\"\r\n"
    "Bad,Row\r\n"
    "Alan,Turing,alan@example.com,lead,,\r\n"
    "Grace,Hopper,grace@example.com,CUSTOMER,,\r\n";

TEST_F(ContactsCommandsTest, PersonImportMapsColumnsAndReportsErrorsByCsvRow) {
  fake_.import_error_row = 2;
  Result r = Crmctl({"person", "import", WriteFile("p.csv", kImportCsv), "--source", "fair-2026",
                     "--channel", "import"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.out,
            "received 4, imported 2, errors 2\n"
            "row 2: 2 fields, the header has 6\n"
            "row 3: person.emails[0].address: already registered (existing subject s-9)\n")
      << r;
  std::vector<FakeContacts::Seen> calls = fake_.Calls("ImportPersons");
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].authorization, "Bearer " + kToken);
  cv1::ImportPersonsRequest first, second;
  ASSERT_TRUE(first.ParseFromString(calls[0].request));
  ASSERT_TRUE(second.ParseFromString(calls[1].request));
  EXPECT_EQ(first.source(), "fair-2026");
  EXPECT_EQ(first.channel(), "import");
  const cv1::Person& ada = first.person();
  EXPECT_EQ(ada.given_name(), "Ada");
  EXPECT_EQ(ada.family_name(), "Lovelace");
  ASSERT_EQ(ada.emails_size(), 2);
  EXPECT_EQ(ada.emails(0).address(), "ada@example.com");
  EXPECT_EQ(ada.emails(1).address(), "ada@home.example");
  ASSERT_EQ(ada.phones_size(), 1);
  EXPECT_EQ(ada.phones(0).number(), "+48123456789");
  EXPECT_EQ(ada.status(), cv1::PERSON_STATUS_FORMER_CUSTOMER);
  EXPECT_EQ(ada.notes(), "met at\nthe \"engine\" talk");
  EXPECT_EQ(second.person().family_name(), "Turing");
  EXPECT_EQ(second.person().status(), cv1::PERSON_STATUS_LEAD);
  EXPECT_EQ(second.person().phones_size(), 0);
  cv1::ImportPersonsRequest third;
  ASSERT_TRUE(third.ParseFromString(calls[2].request));
  EXPECT_EQ(third.person().status(), cv1::PERSON_STATUS_CUSTOMER);

  // --json: the response with CSV rows and the local error merged in.
  r = Crmctl({"person", "import", WriteFile("p.csv", kImportCsv), "--json"});
  EXPECT_EQ(r.exit_code, 1) << r;
  cv1::ImportPersonsResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &response).ok()) << r.out;
  EXPECT_EQ(response.received(), 4);
  EXPECT_EQ(response.imported(), 2);
  EXPECT_EQ(response.errors_total(), 2);
  ASSERT_EQ(response.errors_size(), 2);
  EXPECT_EQ(response.errors(0).row(), 2);
  EXPECT_EQ(response.errors(1).row(), 3);
  EXPECT_EQ(response.errors(1).existing_subject_id(), "s-9");
}

TEST_F(ContactsCommandsTest, PersonImportOfGoodRowsFromStdinExitsZero) {
  Result r = Crmctl({"person", "import", "-"}, false,
                    "email,family_name\na@example.com,A\n\nb@example.com;c@example.com,B\n"
                    "d@example.com,D");
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "received 3, imported 3, errors 0\n") << r;
  std::vector<FakeContacts::Seen> calls = fake_.Calls("ImportPersons");
  ASSERT_EQ(calls.size(), 3u);
  cv1::ImportPersonsRequest last;
  ASSERT_TRUE(last.ParseFromString(calls[2].request));
  EXPECT_EQ(last.person().family_name(), "D");
  EXPECT_EQ(last.person().emails(0).address(), "d@example.com");
}

TEST_F(ContactsCommandsTest, PersonImportBadHeaderOrFileExitsTwoSendingNothing) {
  struct Case {
    std::string csv;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"given_name,nickname\nAda,Countess\n", "unknown column \"nickname\""},
           {"email,Email\na@example.com,b@example.com\n", "duplicate column \"Email\""},
           {"", "no header row"},
       }) {
    Result r = Crmctl({"person", "import", WriteFile("bad.csv", c.csv)});
    EXPECT_EQ(r.exit_code, 2) << r;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << r;
  }
  Result r = Crmctl({"person", "import", dir_ + "/missing.csv"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("cannot read " + dir_ + "/missing.csv")) << r;
  r = Crmctl({"person", "import"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("missing FILE")) << r;
  EXPECT_EQ(fake_.CallCount(), 0u);
}

TEST_F(ContactsCommandsTest, PersonImportDryRunReportsLocalProblemsAndSendsNothing) {
  const std::string bad = WriteFile("dry.csv", "family_name,status\nA,lead\nB,vip\nC\n");
  Result r = Crmctl({"person", "import", bad, "--dry-run"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.out,
            "read 3, errors 2 (dry run: nothing sent)\n"
            "row 2: status: \"vip\": expected one of lead, prospect, customer, former_customer, "
            "partner, supplier_contact\n"
            "row 3: 1 fields, the header has 2\n")
      << r;
  r = Crmctl({"person", "import", WriteFile("good.csv", kImportCsv + std::string()), "--dry-run"});
  EXPECT_EQ(r.exit_code, 1) << r;  // Its row 2 is ragged.
  r = Crmctl({"person", "import", WriteFile("ok.csv", "family_name\nA\n"), "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "read 1, errors 0 (dry run: nothing sent)\n") << r;
  EXPECT_EQ(fake_.CallCount(), 0u);
}

TEST_F(ContactsCommandsTest, PersonImportRpcErrorExitsOne) {
  Result r = Crmctl({"person", "import", WriteFile("p.csv", "family_name\nA\n"), "--header",
                     "authorization=Bearer other"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAUTHENTICATED: bad token\n"));
}

TEST_F(ContactsCommandsTest, JsonOutputIsTheResponseAsJson) {
  Result r = Crmctl({"person", "list", "--json"});
  cv1::ListPersonsResponse list;
  ASSERT_TRUE(IsJsonOutput(r, &list));
  ASSERT_EQ(list.persons_size(), 3);
  EXPECT_EQ(list.persons(2).subject_id(), "s-3");
  EXPECT_EQ(list.persons(0).status(), cv1::PERSON_STATUS_CUSTOMER);
  EXPECT_FALSE(list.has_page());
  EXPECT_THAT(r.out, HasSubstr(R"("subject_id": "s-1")"));

  r = Crmctl({"person", "get", "s-1", "--json"});
  cv1::GetPersonResponse get;
  ASSERT_TRUE(IsJsonOutput(r, &get));
  EXPECT_EQ(get.person().family_name(), "Lovelace");
  EXPECT_THAT(get.masked_fields(), ::testing::ElementsAre("personal_id_number"));
}

TEST_F(ContactsCommandsTest, CompanyCreateMapsFlagsAndSplitsTaxIdsIntoKindAndValue) {
  Result r = Crmctl({"company", "create", "--name", "Acme", "--tax-id", "nip:526-025-02-74",
                     "--tax-id", "EU-VAT:PL5260250274", "--invoice-email", "invoices@acme.example",
                     "--iban", "PL61 1090 1014 0000 0712 1981 2874", "--team", "t-1", "--owner",
                     "u-1", "--owner", "u-2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("CreateCompany").size(), 1u);
  EXPECT_EQ(fake_.Calls("CreateCompany")[0].authorization, "Bearer " + kToken);
  cv1::Company sent = fake_.LastRequest<cv1::CreateCompanyRequest>("CreateCompany").company();
  EXPECT_EQ(sent.name(), "Acme");
  ASSERT_EQ(sent.tax_ids_size(), 2);
  EXPECT_EQ(sent.tax_ids(0).kind(), cv1::TAX_ID_KIND_NIP);
  EXPECT_EQ(sent.tax_ids(0).value(), "526-025-02-74");  // The server normalises.
  EXPECT_EQ(sent.tax_ids(1).kind(), cv1::TAX_ID_KIND_EU_VAT);
  EXPECT_EQ(sent.tax_ids(1).value(), "PL5260250274");
  EXPECT_EQ(sent.billing().invoice_email(), "invoices@acme.example");
  EXPECT_EQ(sent.billing().bank_account(), "PL61 1090 1014 0000 0712 1981 2874");
  EXPECT_FALSE(sent.billing().has_billing_address());
  EXPECT_EQ(sent.assignment().team_id(), "t-1");
  EXPECT_THAT(sent.assignment().owner_user_ids(), ::testing::ElementsAre("u-1", "u-2"));
  EXPECT_TRUE(sent.company_id().empty());
  EXPECT_THAT(r.out, ContainsRegex("(^|\n)company_id +c-new\n"));
  EXPECT_THAT(r.out, ContainsRegex("\ntax_ids\\[1\\]\\.kind +eu-vat\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nbilling\\.invoice_email +invoices@acme\\.example\n"));
  EXPECT_EQ(fake_.Calls("GetCompany").size(), 0u);  // Create reads nothing first.
}

TEST_F(ContactsCommandsTest, CompanyUpdateMasksTheFlagsGivenAndKeepsTheRestOfTheBilling) {
  // No billing flag: the mask of the flags, nothing read first.
  Result r = Crmctl({"company", "update", "c-1", "--name", "Acme Sp. z o.o.", "--tax-id",
                     "regon:012345678", "--version", "5"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("GetCompany").size(), 0u);
  cv1::UpdateCompanyRequest sent = fake_.LastRequest<cv1::UpdateCompanyRequest>("UpdateCompany");
  EXPECT_EQ(sent.company_id(), "c-1");
  EXPECT_THAT(sent.update_mask().paths(), ::testing::UnorderedElementsAre("name", "tax_ids"));
  EXPECT_EQ(sent.expected_version(), 5);
  EXPECT_EQ(sent.company().name(), "Acme Sp. z o.o.");
  ASSERT_EQ(sent.company().tax_ids_size(), 1);
  EXPECT_EQ(sent.company().tax_ids(0).kind(), cv1::TAX_ID_KIND_REGON);
  EXPECT_EQ(sent.company().tax_ids(0).value(), "012345678");
  EXPECT_FALSE(sent.company().has_billing());
  EXPECT_THAT(r.out, ContainsRegex("\nversion +8\n"));

  // --invoice-email: billing is replaced whole, so the current one is read
  // and sent with the new address, checked against the version read.
  r = Crmctl({"company", "update", "c-1", "--invoice-email", "billing@acme.example"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("GetCompany").size(), 1u);
  EXPECT_EQ(fake_.LastRequest<cv1::GetCompanyRequest>("GetCompany").company_id(), "c-1");
  sent = fake_.LastRequest<cv1::UpdateCompanyRequest>("UpdateCompany");
  EXPECT_THAT(sent.update_mask().paths(), ::testing::ElementsAre("billing"));
  EXPECT_EQ(sent.expected_version(), 7);
  EXPECT_EQ(sent.company().billing().invoice_email(), "billing@acme.example");
  EXPECT_EQ(sent.company().billing().bank_account(), "PL61109010140000071219812874");
  EXPECT_EQ(sent.company().billing().billing_address().city(), "Warszawa");
  EXPECT_TRUE(sent.company().name().empty());

  // --iban with --version: that version is checked.
  r = Crmctl({"company", "update", "c-1", "--iban", "DE89370400440532013000", "--version", "9"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<cv1::UpdateCompanyRequest>("UpdateCompany");
  EXPECT_THAT(sent.update_mask().paths(), ::testing::ElementsAre("billing"));
  EXPECT_EQ(sent.expected_version(), 9);
  EXPECT_EQ(sent.company().billing().bank_account(), "DE89370400440532013000");
  EXPECT_EQ(sent.company().billing().invoice_email(), "invoices@acme.example");

  // An IBAN masked for the caller cannot be kept: refused, nothing updated.
  fake_.mask_iban = true;
  const size_t updates = fake_.Calls("UpdateCompany").size();
  r = Crmctl({"company", "update", "c-1", "--invoice-email", "billing@acme.example"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr("--iban: required with --invoice-email"));
  EXPECT_EQ(fake_.Calls("UpdateCompany").size(), updates);
  r = Crmctl({"company", "update", "c-1", "--invoice-email", "billing@acme.example", "--iban",
              "DE89370400440532013000"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<cv1::UpdateCompanyRequest>("UpdateCompany");
  EXPECT_EQ(sent.company().billing().invoice_email(), "billing@acme.example");
  EXPECT_EQ(sent.company().billing().bank_account(), "DE89370400440532013000");

  // The company cannot be read: its error, nothing updated.
  r = Crmctl({"company", "update", "c-missing", "--iban", "DE89370400440532013000"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR NOT_FOUND: company not found\n"));
  EXPECT_EQ(fake_.Calls("UpdateCompany").size(), updates + 1);
}

TEST_F(ContactsCommandsTest, CompanyGetPrintsFieldLinesAndListATable) {
  fake_.mask_iban = true;
  Result r = Crmctl({"company", "get", "c-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<cv1::GetCompanyRequest>("GetCompany").company_id(), "c-1");
  EXPECT_THAT(r.out, ContainsRegex("^company_id +c-1\nname +Acme\n"));
  EXPECT_THAT(r.out, ContainsRegex("\ntax_ids\\[0\\]\\.kind +nip\ntax_ids\\[0\\]\\.value +"
                                   "5260250274\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nbilling\\.billing_address\\.city +Warszawa\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nbilling\\.bank_account +-\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nmasked_fields +company\\.billing\\.bank_account\n$"));

  r = Crmctl({"company", "list"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("ListCompanies").size(), 1u);
  EXPECT_THAT(r.out, ContainsRegex("^COMPANY_ID +NAME +TAX_ID +INVOICE_EMAIL +TEAM +VERSION\n"
                                   "c-1 +Acme +nip 5260250274 +invoices@acme\\.example +t-1 +7\n"
                                   "c-2 +Bare Ltd +- +- +- +1\n$"));
  EXPECT_EQ(r.err, "masked_fields: company.billing.bank_account\n");
}

TEST_F(ContactsCommandsTest, HistoryAddMapsFlagsAndListIsATable) {
  Result r = Crmctl({"history", "add", "s-1", "--kind", "email", "--summary",
                     "sent the offer, see thread", "--at", "2026-03-01T10:00:00Z", "--sensitive"});
  ASSERT_EQ(r.exit_code, 0) << r;
  cv1::Interaction sent =
      fake_.LastRequest<cv1::AddInteractionRequest>("AddInteraction").interaction();
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_EQ(sent.kind(), cv1::INTERACTION_KIND_EMAIL);
  EXPECT_EQ(sent.summary(), "sent the offer, see thread");
  EXPECT_EQ(sent.occurred_at().seconds(), 1772359200);
  EXPECT_TRUE(sent.sensitive());
  EXPECT_TRUE(sent.interaction_id().empty());
  EXPECT_TRUE(sent.operator_user_id().empty());
  EXPECT_THAT(r.out, ContainsRegex("^interaction_id +i-new\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nkind +email\n"));

  // Without --at and --sensitive: the server's now, not sensitive.
  r = Crmctl({"history", "add", "s-2", "--kind", "call", "--summary", "no answer"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<cv1::AddInteractionRequest>("AddInteraction").interaction();
  EXPECT_EQ(sent.kind(), cv1::INTERACTION_KIND_CALL);
  EXPECT_FALSE(sent.has_occurred_at());
  EXPECT_FALSE(sent.sensitive());

  r = Crmctl({"history", "list", "s-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<cv1::ListInteractionsRequest>("ListInteractions").subject_id(),
            "s-1");
  EXPECT_THAT(r.out, ContainsRegex("^WHEN +KIND +OPERATOR +SENSITIVE +SUMMARY\n"
                                   "2026-03-01T10:00:00Z +call +u-1 +no +asked for a quote\n"
                                   "2026-02-28T10:00:00Z +note +u-2 +yes +-\n$"));
  EXPECT_EQ(r.err, "masked_fields: interaction.summary\n");
}

TEST_F(ContactsCommandsTest, InvoiceRecordMapsFlagsAndListIsATable) {
  Result r =
      Crmctl({"invoice", "record", "--company", "c-1", "--number", "FV/2026/01/7", "--issue-date",
              "2026-01-31", "--currency", "pln", "--net-minor", "10000", "--tax-minor", "2300"});
  ASSERT_EQ(r.exit_code, 0) << r;
  cv1::Invoice sent = fake_.LastRequest<cv1::RecordInvoiceRequest>("RecordInvoice").invoice();
  EXPECT_EQ(sent.company_id(), "c-1");
  EXPECT_TRUE(sent.subject_id().empty());
  EXPECT_EQ(sent.number(), "FV/2026/01/7");
  EXPECT_EQ(sent.issue_date(), "2026-01-31");
  EXPECT_EQ(sent.currency(), "pln");  // The server upper-cases.
  EXPECT_EQ(sent.net_minor(), 10000);
  EXPECT_EQ(sent.tax_minor(), 2300);
  EXPECT_EQ(sent.gross_minor(), 12300);  // net + tax when not given.
  EXPECT_THAT(r.out, ContainsRegex("^invoice_id +inv-new\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nretain_until +2031-12-31\n"));

  // A person's invoice; a gross given is sent as it is (the server checks it).
  r = Crmctl({"invoice", "record", "--subject", "s-1", "--number", "R/1", "--issue-date",
              "2026-02-01", "--currency", "EUR", "--net-minor", "-500", "--gross-minor", "-499"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<cv1::RecordInvoiceRequest>("RecordInvoice").invoice();
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_TRUE(sent.company_id().empty());
  EXPECT_EQ(sent.net_minor(), -500);
  EXPECT_EQ(sent.tax_minor(), 0);
  EXPECT_EQ(sent.gross_minor(), -499);

  r = Crmctl({"invoice", "list", "--subject", "s-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  cv1::ListInvoicesRequest list = fake_.LastRequest<cv1::ListInvoicesRequest>("ListInvoices");
  EXPECT_EQ(list.owner_case(), cv1::ListInvoicesRequest::kSubjectId);
  EXPECT_EQ(list.subject_id(), "s-1");
  EXPECT_THAT(r.out, ContainsRegex("^INVOICE_ID +NUMBER +ISSUED +CURRENCY +NET +TAX +GROSS +"
                                   "RETAIN_UNTIL\n"
                                   "inv-2 +FV/2026/inv-2 +2026-01-31 +PLN +10000 +2300 +12300 +"
                                   "2031-12-31\n"
                                   "inv-1 "));

  r = Crmctl({"invoice", "list", "--company", "c-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  list = fake_.LastRequest<cv1::ListInvoicesRequest>("ListInvoices");
  EXPECT_EQ(list.owner_case(), cv1::ListInvoicesRequest::kCompanyId);
  EXPECT_EQ(list.company_id(), "c-1");
}

TEST_F(ContactsCommandsTest, RetentionDueFollowsPagesIntoOneTable) {
  Result r = Crmctl({"retention", "due"});
  ASSERT_EQ(r.exit_code, 0) << r;
  std::vector<FakeContacts::Seen> calls = fake_.Calls("ListRetentionDue");
  ASSERT_EQ(calls.size(), 2u);
  cv1::ListRetentionDueRequest second;
  ASSERT_TRUE(second.ParseFromString(calls[1].request));
  EXPECT_EQ(second.page().page_token(), "due-2");
  EXPECT_EQ(r.out,
            "SUBJECT_ID  DUE_SINCE             RULE                    STATE\n"
            "s-1         2026-02-28T10:00:00Z  lead inactive 730 days  due\n"
            "s-2         2026-03-01T10:00:00Z  lead inactive 730 days  erasure_requested\n");
}

TEST_F(ContactsCommandsTest, CompanyHistoryInvoiceRetentionBadUsageExitsTwoWithoutCalling) {
  const std::vector<std::string> invoice = {"invoice",      "record",     "--number",   "FV/1",
                                            "--issue-date", "2026-01-31", "--currency", "PLN"};
  ExpectUsageErrors(
      [this](const std::vector<std::string>& args) { return Crmctl(args); },
      {
          {{"company", "get"}, "missing COMPANY_ID"},
          {{"company", "create", "--tax-id", "nip:5260250274"}, "--name: required"},
          {{"company", "create", "--name", "A", "--tax-id", "5260250274"},
           "--tax-id: expected KIND:VALUE with KIND nip, regon, krs or eu-vat"},
          {{"company", "create", "--name", "A", "--tax-id", "vat:PL5260250274"},
           "--tax-id: expected KIND:VALUE"},
          {{"company", "create", "--name", "A", "--tax-id", "nip:"}, "--tax-id: expected"},
          {{"company", "update", "c-1"}, "nothing to change: give at least one of --name"},
          {{"company", "update", "--name", "A"}, "missing COMPANY_ID"},
          {{"company", "update", "c-1", "--team", "t-1"},
           "--team: not a flag of 'crmctl company update'"},
          {{"company", "list", "c-1"}, "unexpected argument \"c-1\""},
          {{"history", "add", "s-1", "--summary", "x"}, "--kind: required"},
          {{"history", "add", "s-1", "--kind", "call"}, "--summary: required"},
          {{"history", "add", "--kind", "call", "--summary", "x"}, "missing SUBJECT_ID"},
          {{"history", "add", "s-1", "--kind", "visit", "--summary", "x"},
           "--kind: expected one of call, meeting, email, note"},
          {{"history", "add", "s-1", "--kind", "call", "--summary", "x", "--at", "yesterday"},
           "--at: expected an RFC 3339 time"},
          {{"history", "list"}, "missing SUBJECT_ID"},
          {Concat(invoice, {"--net-minor", "100"}), "--subject or --company: give one of them"},
          {Concat(invoice, {"--net-minor", "100", "--subject", "s-1", "--company", "c-1"}),
           "--subject or --company: give one of them"},
          {Concat(invoice, {"--subject", "s-1"}), "--net-minor: required"},
          {Concat(invoice, {"--subject", "s-1", "--net-minor", "12.30"}),
           "--net-minor: expected a number"},
          {{"invoice", "record", "--subject", "s-1", "--net-minor", "1"}, "--number: required"},
          {{"invoice", "list"}, "--subject or --company: give one of them"},
          {{"invoice", "list", "--subject", "s-1", "--company", "c-1"},
           "--subject or --company: give one of them"},
          {{"retention"}, "retention needs a command: due"},
          {{"retention", "due", "--status", "lead"},
           "--status: not a flag of 'crmctl retention due'"},
      });
  EXPECT_EQ(fake_.CallCount(), 0u);
}

// A fake crm.consent.v1.Consent service: records every call (method,
// authorization metadata, request) and answers canned purposes, statements,
// decisions and ledgers. Calls without the bearer token of the test's
// session are UNAUTHENTICATED.
class FakeConsent final : public nv1::Consent::Service, public TokenCheckingRecorder {
 public:
  using TokenCheckingRecorder::TokenCheckingRecorder;

  // Notice versions: 64 hex digits each.
  static std::string Version(char digit) { return std::string(64, digit); }
  static google::protobuf::Timestamp Time(absl::string_view rfc3339) {
    absl::Time t;
    std::string error;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, std::string(rfc3339), &t, &error)) << error;
    google::protobuf::Timestamp ts;
    ts.set_seconds(absl::ToUnixSeconds(t));
    return ts;
  }
  // The ledger entry a statement would make.
  static nv1::LedgerEntry Entry(const nv1::Statement& s, nv1::Action action, int64_t sequence) {
    nv1::LedgerEntry e;
    e.set_sequence(sequence);
    e.set_subject_id(s.subject_id());
    e.set_purpose_id(s.purpose_id());
    e.set_action(action);
    e.set_notice_version(s.notice_version());
    e.set_method(s.method());
    e.set_source(s.source());
    e.set_actor("u-1");
    *e.mutable_given_at() = s.has_given_at() ? s.given_at() : Time("2026-11-29T12:00:00Z");
    *e.mutable_recorded_at() = Time("2026-11-29T12:00:01Z");
    e.set_entry_hash(Version('e'));
    return e;
  }

  grpc::Status ListPurposes(grpc::ServerContext* ctx, const nv1::ListPurposesRequest* req,
                            nv1::ListPurposesResponse* resp) override {
    if (!Record("ListPurposes", ctx, *req)) return Unauthenticated();
    nv1::Purpose* p = resp->add_purposes();
    p->set_purpose_id("newsletter");
    p->set_basis(nv1::LAWFUL_BASIS_CONSENT);
    p->set_direct_marketing(true);
    p->set_validity_days(730);
    (*p->mutable_current_notice_versions())["pl"] = Version('b');
    (*p->mutable_current_notice_versions())["en"] = Version('a');
    p = resp->add_purposes();
    p->set_purpose_id("fraud.prevention");
    p->set_basis(nv1::LAWFUL_BASIS_LEGITIMATE_INTEREST);
    return grpc::Status::OK;
  }
  grpc::Status DefinePurpose(grpc::ServerContext* ctx, const nv1::DefinePurposeRequest* req,
                             nv1::DefinePurposeResponse* resp) override {
    if (!Record("DefinePurpose", ctx, *req)) return Unauthenticated();
    resp->set_created(true);
    return grpc::Status::OK;
  }
  grpc::Status PublishNotice(grpc::ServerContext* ctx, const nv1::PublishNoticeRequest* req,
                             nv1::PublishNoticeResponse* resp) override {
    if (!Record("PublishNotice", ctx, *req)) return Unauthenticated();
    resp->set_version(Version('c'));
    resp->set_created(true);
    return grpc::Status::OK;
  }
  grpc::Status Grant(grpc::ServerContext* ctx, const nv1::GrantRequest* req,
                     nv1::GrantResponse* resp) override {
    if (!Record("Grant", ctx, *req)) return Unauthenticated();
    if (req->statement().notice_version() == Version('0')) {
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          "statement.notice_version: superseded; the current one is " + Version('a'));
    }
    resp->set_changed(true);
    *resp->mutable_entry() = Entry(req->statement(), nv1::ACTION_GRANT, 3);
    return grpc::Status::OK;
  }
  // Nothing in force: nothing recorded.
  grpc::Status Withdraw(grpc::ServerContext* ctx, const nv1::WithdrawRequest* req,
                        nv1::WithdrawResponse* resp) override {
    if (!Record("Withdraw", ctx, *req)) return Unauthenticated();
    resp->set_changed(false);
    return grpc::Status::OK;
  }
  grpc::Status Object(grpc::ServerContext* ctx, const nv1::ObjectRequest* req,
                      nv1::ObjectResponse* resp) override {
    if (!Record("Object", ctx, *req)) return Unauthenticated();
    resp->set_changed(true);
    *resp->mutable_entry() = Entry(req->statement(), nv1::ACTION_OBJECT, 4);
    return grpc::Status::OK;
  }
  // "newsletter": granted; anything else: objected.
  grpc::Status Check(grpc::ServerContext* ctx, const nv1::CheckRequest* req,
                     nv1::CheckResponse* resp) override {
    if (!Record("Check", ctx, *req)) return Unauthenticated();
    nv1::Decision* d = resp->mutable_decision();
    d->set_subject_id(req->subject_id());
    const bool granted = req->purpose_id() == "newsletter";
    d->set_allowed(granted);
    d->set_reason(granted ? nv1::REASON_GRANTED : nv1::REASON_OBJECTED);
    return grpc::Status::OK;
  }
  // A grant then a withdrawal; "s-tampered": the chain breaks at 2.
  grpc::Status GetHistory(grpc::ServerContext* ctx, const nv1::GetHistoryRequest* req,
                          nv1::GetHistoryResponse* resp) override {
    if (!Record("GetHistory", ctx, *req)) return Unauthenticated();
    nv1::Statement s;
    s.set_subject_id(req->subject_id());
    s.set_purpose_id("newsletter");
    s.set_notice_version(Version('a'));
    s.set_method(nv1::METHOD_WEB_FORM);
    s.set_source("shop.web");
    *s.mutable_given_at() = Time("2026-11-01T09:30:00Z");
    *resp->add_entries() = Entry(s, nv1::ACTION_GRANT, 1);
    s.clear_notice_version();
    s.set_method(nv1::METHOD_PAPER);
    s.set_source("back-office");
    *s.mutable_given_at() = Time("2026-11-20T14:00:00Z");
    *resp->add_entries() = Entry(s, nv1::ACTION_WITHDRAW, 2);
    const bool tampered = req->subject_id() == "s-tampered";
    resp->set_chain_intact(!tampered);
    resp->set_first_broken_sequence(tampered ? 2 : 0);
    return grpc::Status::OK;
  }
  grpc::Status SetRestriction(grpc::ServerContext* ctx, const nv1::SetRestrictionRequest* req,
                              nv1::SetRestrictionResponse* resp) override {
    if (!Record("SetRestriction", ctx, *req)) return Unauthenticated();
    resp->set_changed(true);
    return grpc::Status::OK;
  }
};

class ConsentCommandsTest : public FamilyCommandsTest<FakeConsent> {
 protected:
  ConsentCommandsTest() : FamilyCommandsTest("consent", nv1::Consent::service_full_name()) {}
};

TEST_F(ConsentCommandsTest, GrantSendsTheStatementWithEnumsByTheirWords) {
  const std::string version = FakeConsent::Version('a');
  Result r = Crmctl({"consent", "grant", "s-1", "newsletter", "--notice", version, "--method",
                     "email-link", "--source", "shop.web", "--language", "pl", "--given-at",
                     "2026-11-01T09:30:00Z"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("Grant").size(), 1u);
  EXPECT_EQ(fake_.Calls("Grant")[0].authorization, "Bearer " + kToken);
  const nv1::Statement sent = fake_.LastRequest<nv1::GrantRequest>("Grant").statement();
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_EQ(sent.purpose_id(), "newsletter");
  EXPECT_EQ(sent.notice_version(), version);
  EXPECT_EQ(sent.method(), nv1::METHOD_EMAIL_LINK);
  EXPECT_EQ(sent.source(), "shop.web");
  EXPECT_EQ(sent.language(), "pl");
  EXPECT_EQ(sent.given_at().seconds(), FakeConsent::Time("2026-11-01T09:30:00Z").seconds());
  EXPECT_TRUE(sent.source_address().empty());
  EXPECT_TRUE(sent.user_agent().empty());
  EXPECT_THAT(r.out, ContainsRegex("^changed +yes\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nentry\\.sequence +3\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nentry\\.action +grant\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nentry\\.method +email-link\n"));
  // The full version in field lines.
  EXPECT_THAT(r.out, ContainsRegex("\nentry\\.notice_version +" + version + "\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nentry\\.given_at +2026-11-01T09:30:00Z\n"));

  // Without --given-at and --language: unset (the server's now and "en").
  r = Crmctl({"consent", "grant", "s-2", "newsletter", "--notice", version, "--method", "web-form",
              "--source", "shop.web"});
  ASSERT_EQ(r.exit_code, 0) << r;
  const nv1::GrantRequest second = fake_.LastRequest<nv1::GrantRequest>("Grant");
  EXPECT_EQ(second.statement().method(), nv1::METHOD_WEB_FORM);
  EXPECT_FALSE(second.statement().has_given_at());
  EXPECT_TRUE(second.statement().language().empty());
}

TEST_F(ConsentCommandsTest, GrantOfASupersededNoticeIsTheServersErrorAndExitOne) {
  Result r = Crmctl({"consent", "grant", "s-1", "newsletter", "--notice", FakeConsent::Version('0'),
                     "--method", "paper", "--source", "back-office"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR FAILED_PRECONDITION: statement.notice_version: superseded; "
                                "the current one is " +
                                FakeConsent::Version('a') + "\n"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(ConsentCommandsTest, WithdrawAndObjectSendTheStatementWithoutANotice) {
  Result r = Crmctl(
      {"consent", "withdraw", "s-1", "newsletter", "--method", "phone", "--source", "call-center"});
  ASSERT_EQ(r.exit_code, 0) << r;
  nv1::Statement sent = fake_.LastRequest<nv1::WithdrawRequest>("Withdraw").statement();
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_EQ(sent.purpose_id(), "newsletter");
  EXPECT_TRUE(sent.notice_version().empty());
  EXPECT_EQ(sent.method(), nv1::METHOD_PHONE);
  EXPECT_EQ(sent.source(), "call-center");
  // Nothing recorded: no entry, not one of default values.
  EXPECT_EQ(r.out, "changed  no\n");

  r = Crmctl({"consent", "object", "s-1", "profiling", "--method", "api", "--source", "portal",
              "--notice", FakeConsent::Version('b')});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<nv1::ObjectRequest>("Object").statement();
  EXPECT_EQ(sent.purpose_id(), "profiling");
  EXPECT_EQ(sent.method(), nv1::METHOD_API);
  EXPECT_EQ(sent.notice_version(), FakeConsent::Version('b'));
  EXPECT_THAT(r.out, ContainsRegex("\nentry\\.action +object\n"));
}

TEST_F(ConsentCommandsTest, CheckPrintsTheDecision) {
  Result r = Crmctl({"consent", "check", "s-1", "newsletter"});
  ASSERT_EQ(r.exit_code, 0) << r;
  const nv1::CheckRequest sent = fake_.LastRequest<nv1::CheckRequest>("Check");
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_EQ(sent.purpose_id(), "newsletter");
  EXPECT_THAT(r.out, ContainsRegex("^subject_id +s-1\nallowed +yes\nreason +granted\n$"));

  // A denial is an answer, not a failure.
  r = Crmctl({"consent", "check", "s-1", "profiling"}, /*address_in_env=*/true);
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, ContainsRegex("^subject_id +s-1\nallowed +no\nreason +objected\n$"));
}

TEST_F(ConsentCommandsTest, HistoryIsATableWithShortNoticeVersionsAndTheChainState) {
  Result r = Crmctl({"consent", "history", "s-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<nv1::GetHistoryRequest>("GetHistory").subject_id(), "s-1");
  EXPECT_EQ(r.out,
            "SEQ  PURPOSE     ACTION    NOTICE        METHOD    SOURCE       GIVEN_AT\n"
            "1    newsletter  grant     aaaaaaaaaaaa  web-form  shop.web     2026-11-01T09:30:00Z\n"
            "2    newsletter  withdraw  -             paper     back-office  "
            "2026-11-20T14:00:00Z\n");
  EXPECT_EQ(r.err, "chain_intact: yes\n");

  // --json: every field, the versions whole.
  r = Crmctl({"consent", "history", "s-1", "--json"});
  nv1::GetHistoryResponse history;
  ASSERT_TRUE(IsJsonOutput(r, &history));
  ASSERT_EQ(history.entries_size(), 2);
  EXPECT_EQ(history.entries(0).notice_version(), FakeConsent::Version('a'));
  EXPECT_EQ(history.entries(0).actor(), "u-1");
  EXPECT_TRUE(history.chain_intact());
  EXPECT_THAT(r.err, IsEmpty());

  // A broken chain: the table, then where it broke, and exit 1.
  r = Crmctl({"consent", "history", "s-tampered"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.out, StartsWith("SEQ  PURPOSE "));
  EXPECT_THAT(r.err, StartsWith("chain_intact: no, broken at sequence 2: "));
}

TEST_F(ConsentCommandsTest, PurposeListIsATableAndDefineMapsTheBasis) {
  Result r = Crmctl({"purpose", "list"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out,
            "PURPOSE           BASIS                DIRECT_MARKETING  VALIDITY_DAYS  NOTICES\n"
            "newsletter        consent              yes               730            "
            "en=aaaaaaaaaaaa,pl=bbbbbbbbbbbb\n"
            "fraud.prevention  legitimate-interest  no                0              -\n");

  r = Crmctl({"purpose", "define", "marketing.email", "--basis", "legitimate-interest",
              "--description", "Offers by e-mail", "--category", "contact", "--category",
              "identity", "--direct-marketing", "--validity-days", "365"});
  ASSERT_EQ(r.exit_code, 0) << r;
  const nv1::Purpose sent = fake_.LastRequest<nv1::DefinePurposeRequest>("DefinePurpose").purpose();
  EXPECT_EQ(sent.purpose_id(), "marketing.email");
  EXPECT_EQ(sent.basis(), nv1::LAWFUL_BASIS_LEGITIMATE_INTEREST);
  EXPECT_EQ(sent.description(), "Offers by e-mail");
  EXPECT_THAT(sent.data_categories(), ::testing::ElementsAre("contact", "identity"));
  EXPECT_TRUE(sent.direct_marketing());
  EXPECT_EQ(sent.validity_days(), 365);
  EXPECT_THAT(sent.current_notice_versions(), IsEmpty());
  EXPECT_EQ(r.out, "created  yes\n");

  r = Crmctl({"purpose", "define", "contract.delivery", "--basis", "contract", "--description",
              "Delivering orders"});
  ASSERT_EQ(r.exit_code, 0) << r;
  const nv1::Purpose plain =
      fake_.LastRequest<nv1::DefinePurposeRequest>("DefinePurpose").purpose();
  EXPECT_EQ(plain.basis(), nv1::LAWFUL_BASIS_CONTRACT);
  EXPECT_FALSE(plain.direct_marketing());
  EXPECT_EQ(plain.validity_days(), 0);
}

TEST_F(ConsentCommandsTest, NoticePublishSendsTheFileBytesUnchangedOrTheText) {
  const std::string text = "We send a monthly newsletter.\r\nZa\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87\n";
  Result r = Crmctl({"notice", "publish", "newsletter", "--language", "pl", "--file",
                     WriteFile("notice.txt", text)});
  ASSERT_EQ(r.exit_code, 0) << r;
  nv1::PublishNoticeRequest sent = fake_.LastRequest<nv1::PublishNoticeRequest>("PublishNotice");
  EXPECT_EQ(sent.purpose_id(), "newsletter");
  EXPECT_EQ(sent.language(), "pl");
  EXPECT_EQ(sent.text(), text);
  EXPECT_EQ(r.out, "version  " + FakeConsent::Version('c') + "\ncreated  yes\n");

  r = Crmctl({"notice", "publish", "newsletter", "--language", "en", "--file", "-"},
             /*address_in_env=*/false, "from stdin");
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<nv1::PublishNoticeRequest>("PublishNotice").text(), "from stdin");

  r = Crmctl({"notice", "publish", "newsletter", "--language", "en", "--text", "Short text"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<nv1::PublishNoticeRequest>("PublishNotice");
  EXPECT_EQ(sent.text(), "Short text");
  EXPECT_EQ(sent.language(), "en");
}

TEST_F(ConsentCommandsTest, RestrictAndUnrestrictSetTheFlag) {
  Result r = Crmctl({"consent", "restrict", "s-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  nv1::SetRestrictionRequest sent = fake_.LastRequest<nv1::SetRestrictionRequest>("SetRestriction");
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_TRUE(sent.restricted());
  EXPECT_EQ(r.out, "changed  yes\n");

  r = Crmctl({"consent", "unrestrict", "s-2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("SetRestriction").size(), 2u);
  sent = fake_.LastRequest<nv1::SetRestrictionRequest>("SetRestriction");
  EXPECT_EQ(sent.subject_id(), "s-2");
  EXPECT_FALSE(sent.restricted());
}

TEST_F(ConsentCommandsTest, BadUsageExitsTwoNamingTheArgumentWithoutCalling) {
  const std::string v = FakeConsent::Version('a');
  const std::vector<std::string> source = {"--source", "shop.web"};
  const std::string big(100001, 'x');
  ExpectUsageErrors(
      [this](const std::vector<std::string>& args) { return Crmctl(args); },
      {
          {Concat({"consent", "grant", "s-1", "--notice", v, "--method", "web-form"}, source),
           "missing PURPOSE_ID"},
          {Concat({"consent", "grant", "s-1", "newsletter", "--method", "web-form"}, source),
           "--notice: required"},
          {{"consent", "grant", "s-1", "newsletter", "--notice", v, "--method", "web-form"},
           "--source: required"},
          {Concat({"consent", "withdraw", "s-1", "newsletter"}, source), "--method: required"},
          {Concat({"consent", "grant", "s-1", "newsletter", "--notice", v, "--method", "fax"},
                  source),
           "--method: expected one of web-form, email-link, phone, paper, api, got \"fax\""},
          {Concat({"consent", "object", "s-1", "p", "--method", "api", "--given-at", "today"},
                  source),
           "--given-at: expected an RFC 3339 time"},
          {Concat({"consent", "grant", "s-1", "p", "x", "--notice", v, "--method", "api"}, source),
           "unexpected argument \"x\""},
          {{"consent", "check", "s-1"}, "missing PURPOSE_ID"},
          {{"consent", "check", "s-1", "p", "--method", "api"},
           "--method: not a flag of 'crmctl consent check'"},
          {{"consent", "history"}, "missing SUBJECT_ID"},
          {{"consent", "restrict"}, "missing SUBJECT_ID"},
          {{"consent", "restrict", "s-1", "--reason", "r"},
           "--reason: not a flag of 'crmctl consent restrict'"},
          {{"consent", "frob"}, "unknown command \"consent frob\""},
          {{"consent"}, "consent needs a command: grant, withdraw, object, check, history"},
          {{"purpose", "define", "p", "--description", "d"}, "--basis: required"},
          {{"purpose", "define", "p", "--basis", "consent"}, "--description: required"},
          {{"purpose", "define", "p", "--basis", "opt-in", "--description", "d"},
           "--basis: expected one of consent, contract, legal-obligation, vital-interest, "
           "public-task, legitimate-interest"},
          {{"purpose", "define", "p", "--basis", "consent", "--description", "d", "--validity-days",
            "two years"},
           "--validity-days: expected a number"},
          {{"purpose", "define", "p", "--basis", "consent", "--description", "d",
            "--direct-marketing=yes"},
           "--direct-marketing: takes no value"},
          {{"notice", "publish", "p", "--language", "en"}, "--file or --text: give one of them"},
          {{"notice", "publish", "p", "--language", "en", "--text", "t", "--file", "f"},
           "--file or --text: give one of them"},
          {{"notice", "publish", "p", "--text", "t"}, "--language: required"},
          {{"notice", "publish", "p", "--language", "en", "--file", dir_ + "/missing.txt"},
           "--file: cannot read " + dir_ + "/missing.txt: No such file or directory"},
          {{"notice", "publish", "p", "--language", "en", "--file", WriteFile("empty.txt", "")},
           "is empty"},
          {{"notice", "publish", "p", "--language", "en", "--file", WriteFile("big.txt", big)},
           "has more than 100,000 bytes"},
      });
  EXPECT_EQ(fake_.CallCount(), 0u);
}

// A fake crm.mailing.v1.Mailing service: records every call (method,
// authorization metadata, request) and answers canned lists, subscriptions
// (two pages), templates and campaigns. Calls without the bearer token of
// the test's session are UNAUTHENTICATED.
class FakeMailing final : public mv1::Mailing::Service, public TokenCheckingRecorder {
 public:
  using TokenCheckingRecorder::TokenCheckingRecorder;

  static constexpr char kCampaignId[] = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
  // Campaign `id`: sending, with counts.
  static mv1::Campaign Campaign(const std::string& id) {
    mv1::Campaign c;
    c.set_campaign_id(id);
    c.set_name("May news");
    c.set_list_id("news");
    c.set_template_id("may");
    c.set_template_version(2);
    c.set_state(mv1::CAMPAIGN_STATE_SENDING);
    *c.mutable_send_at() = FakeConsent::Time("2026-05-04T09:00:00Z");
    mv1::CampaignCounts* n = c.mutable_counts();
    n->set_queued(10);
    n->set_sent(120);
    n->set_skipped_consent(7);
    n->set_skipped_no_address(2);
    n->set_failed(1);
    n->set_unsubscribed(3);
    *c.mutable_created_at() = FakeConsent::Time("2026-05-01T08:00:00Z");
    return c;
  }

  grpc::Status CreateList(grpc::ServerContext* ctx, const mv1::CreateListRequest* req,
                          mv1::CreateListResponse* resp) override {
    if (!Record("CreateList", ctx, *req)) return Unauthenticated();
    *resp->mutable_list() = req->list();
    *resp->mutable_list()->mutable_created_at() = FakeConsent::Time("2026-05-01T08:00:00Z");
    return grpc::Status::OK;
  }
  grpc::Status ListLists(grpc::ServerContext* ctx, const mv1::ListListsRequest* req,
                         mv1::ListListsResponse* resp) override {
    if (!Record("ListLists", ctx, *req)) return Unauthenticated();
    mv1::MailingList* l = resp->add_lists();
    l->set_list_id("news");
    l->set_description("Monthly news");
    l->set_purpose_id("newsletter");
    l->set_opt_in(mv1::OPT_IN_DOUBLE);
    l->set_active_subscribers(1200);
    l->set_pending_subscribers(35);
    *l->mutable_created_at() = FakeConsent::Time("2026-05-01T08:00:00Z");
    l = resp->add_lists();
    l->set_list_id("offers");
    l->set_purpose_id("marketing.email");
    l->set_opt_in(mv1::OPT_IN_SINGLE);
    *l->mutable_created_at() = FakeConsent::Time("2026-05-02T10:30:00Z");
    return grpc::Status::OK;
  }
  // "s-active": already subscribed, nothing changes.
  grpc::Status Subscribe(grpc::ServerContext* ctx, const mv1::SubscribeRequest* req,
                         mv1::SubscribeResponse* resp) override {
    if (!Record("Subscribe", ctx, *req)) return Unauthenticated();
    mv1::Subscription* s = resp->mutable_subscription();
    s->set_list_id(req->list_id());
    s->set_subject_id(req->subject_id());
    s->set_source(req->source());
    s->set_state(mv1::SUBSCRIPTION_STATE_PENDING);
    *s->mutable_created_at() = FakeConsent::Time("2026-05-03T12:00:00Z");
    resp->set_changed(req->subject_id() != "s-active");
    return grpc::Status::OK;
  }
  // Two pages: s-1 and s-2, then s-3; list "gone" is NOT_FOUND.
  grpc::Status ListSubscriptions(grpc::ServerContext* ctx, const mv1::ListSubscriptionsRequest* req,
                                 mv1::ListSubscriptionsResponse* resp) override {
    if (!Record("ListSubscriptions", ctx, *req)) return Unauthenticated();
    if (req->list_id() == "gone") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "list_id: not found");
    }
    const bool first = req->page_token().empty();
    for (const char* subject :
         first ? std::vector<const char*>{"s-1", "s-2"} : std::vector<const char*>{"s-3"}) {
      mv1::Subscription* s = resp->add_subscriptions();
      s->set_list_id(req->list_id());
      s->set_subject_id(subject);
      s->set_state(absl::string_view(subject) == "s-2" ? mv1::SUBSCRIPTION_STATE_PENDING
                                                       : mv1::SUBSCRIPTION_STATE_ACTIVE);
      s->set_source("shop.web");
      *s->mutable_created_at() = FakeConsent::Time("2026-05-03T12:00:00Z");
      if (s->state() == mv1::SUBSCRIPTION_STATE_ACTIVE) {
        *s->mutable_confirmed_at() = FakeConsent::Time("2026-05-03T12:05:00Z");
      }
    }
    if (first) resp->set_next_page_token("s-2");
    return grpc::Status::OK;
  }
  grpc::Status PutTemplate(grpc::ServerContext* ctx, const mv1::PutTemplateRequest* req,
                           mv1::PutTemplateResponse* resp) override {
    if (!Record("PutTemplate", ctx, *req)) return Unauthenticated();
    *resp->mutable_template_() = req->template_();
    resp->mutable_template_()->set_version(3);
    *resp->mutable_template_()->mutable_created_at() = FakeConsent::Time("2026-05-01T08:00:00Z");
    return grpc::Status::OK;
  }
  // Version 0: the newest, 3.
  grpc::Status GetTemplate(grpc::ServerContext* ctx, const mv1::GetTemplateRequest* req,
                           mv1::GetTemplateResponse* resp) override {
    if (!Record("GetTemplate", ctx, *req)) return Unauthenticated();
    mv1::Template* t = resp->mutable_template_();
    t->set_template_id(req->template_id());
    t->set_version(req->version() == 0 ? 3 : req->version());
    t->set_subject("News for {{first_name}}");
    t->set_text_body("Hello {{first_name}}");
    *t->mutable_created_at() = FakeConsent::Time("2026-05-01T08:00:00Z");
    return grpc::Status::OK;
  }
  grpc::Status CreateCampaign(grpc::ServerContext* ctx, const mv1::CreateCampaignRequest* req,
                              mv1::CreateCampaignResponse* resp) override {
    if (!Record("CreateCampaign", ctx, *req)) return Unauthenticated();
    mv1::Campaign* c = resp->mutable_campaign();
    *c = req->campaign();
    c->set_campaign_id(kCampaignId);
    c->set_state(mv1::CAMPAIGN_STATE_DRAFT);
    if (c->template_version() == 0) c->set_template_version(3);
    return grpc::Status::OK;
  }
  grpc::Status ScheduleCampaign(grpc::ServerContext* ctx, const mv1::ScheduleCampaignRequest* req,
                                mv1::ScheduleCampaignResponse* resp) override {
    if (!Record("ScheduleCampaign", ctx, *req)) return Unauthenticated();
    mv1::Campaign* c = resp->mutable_campaign();
    *c = Campaign(req->campaign_id());
    c->set_state(mv1::CAMPAIGN_STATE_SCHEDULED);
    c->clear_counts();
    *c->mutable_send_at() =
        req->has_send_at() ? req->send_at() : FakeConsent::Time("2026-05-01T08:30:00Z");
    return grpc::Status::OK;
  }
  grpc::Status PauseCampaign(grpc::ServerContext* ctx, const mv1::CampaignRequest* req,
                             mv1::CampaignResponse* resp) override {
    return Change("PauseCampaign", ctx, *req, mv1::CAMPAIGN_STATE_PAUSED, resp);
  }
  grpc::Status ResumeCampaign(grpc::ServerContext* ctx, const mv1::CampaignRequest* req,
                              mv1::CampaignResponse* resp) override {
    return Change("ResumeCampaign", ctx, *req, mv1::CAMPAIGN_STATE_SCHEDULED, resp);
  }
  grpc::Status CancelCampaign(grpc::ServerContext* ctx, const mv1::CampaignRequest* req,
                              mv1::CampaignResponse* resp) override {
    return Change("CancelCampaign", ctx, *req, mv1::CAMPAIGN_STATE_CANCELLED, resp);
  }
  grpc::Status GetCampaign(grpc::ServerContext* ctx, const mv1::CampaignRequest* req,
                           mv1::CampaignResponse* resp) override {
    return Change("GetCampaign", ctx, *req, mv1::CAMPAIGN_STATE_SENDING, resp);
  }

 private:
  // The campaign in state `to`; "c-done" is done: FAILED_PRECONDITION.
  grpc::Status Change(const char* method, grpc::ServerContext* ctx, const mv1::CampaignRequest& req,
                      mv1::CampaignState to, mv1::CampaignResponse* resp) {
    if (!Record(method, ctx, req)) return Unauthenticated();
    if (req.campaign_id() == "c-done") {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "campaign_id: the campaign is CAMPAIGN_STATE_DONE; cannot pause");
    }
    *resp->mutable_campaign() = Campaign(req.campaign_id());
    resp->mutable_campaign()->set_state(to);
    return grpc::Status::OK;
  }
};

class MailingCommandsTest : public FamilyCommandsTest<FakeMailing> {
 protected:
  MailingCommandsTest() : FamilyCommandsTest("mailing", mv1::Mailing::service_full_name()) {}
};

TEST_F(MailingCommandsTest, ListCreateMapsFlagsAndLsIsATable) {
  Result r = Crmctl({"mailing", "list", "create", "news", "--purpose", "newsletter", "--opt-in",
                     "double", "--description", "Monthly news"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("CreateList").size(), 1u);
  EXPECT_EQ(fake_.Calls("CreateList")[0].authorization, "Bearer " + kToken);
  mv1::MailingList sent = fake_.LastRequest<mv1::CreateListRequest>("CreateList").list();
  EXPECT_EQ(sent.list_id(), "news");
  EXPECT_EQ(sent.purpose_id(), "newsletter");
  EXPECT_EQ(sent.opt_in(), mv1::OPT_IN_DOUBLE);
  EXPECT_EQ(sent.description(), "Monthly news");
  EXPECT_THAT(r.out, ContainsRegex("^list_id +news\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nopt_in +double\n"));
  EXPECT_THAT(r.out, ContainsRegex("\ncreated_at +2026-05-01T08:00:00Z\n"));

  r = Crmctl({"mailing", "list", "create", "offers", "--purpose", "marketing.email", "--opt-in",
              "single"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<mv1::CreateListRequest>("CreateList").list();
  EXPECT_EQ(sent.opt_in(), mv1::OPT_IN_SINGLE);
  EXPECT_TRUE(sent.description().empty());

  r = Crmctl({"mailing", "list", "ls"}, /*address_in_env=*/true);
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("ListLists").size(), 1u);
  EXPECT_EQ(r.out,
            "LIST    PURPOSE          OPT_IN  ACTIVE  PENDING  CREATED               DESCRIPTION\n"
            "news    newsletter       double  1200    35       2026-05-01T08:00:00Z  Monthly news\n"
            "offers  marketing.email  single  0       0        2026-05-02T10:30:00Z  -\n");
}

TEST_F(MailingCommandsTest, SubscribeSendsTheNoticeSourceAndLanguage) {
  const std::string version = FakeConsent::Version('a');
  Result r = Crmctl({"mailing", "subscribe", "news", "s-1", "--notice", version, "--source",
                     "shop.web", "--language", "pl"});
  ASSERT_EQ(r.exit_code, 0) << r;
  mv1::SubscribeRequest sent = fake_.LastRequest<mv1::SubscribeRequest>("Subscribe");
  EXPECT_EQ(sent.list_id(), "news");
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_EQ(sent.notice_version(), version);
  EXPECT_EQ(sent.source(), "shop.web");
  EXPECT_EQ(sent.language(), "pl");
  EXPECT_TRUE(sent.source_address().empty());
  EXPECT_TRUE(sent.user_agent().empty());
  EXPECT_THAT(r.out, ContainsRegex("(^|\n)subscription\\.state +pending\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nchanged +yes\n$"));

  // Without --language: unset (the server's "en"). Already subscribed:
  // changed no.
  r = Crmctl(
      {"mailing", "subscribe", "news", "s-active", "--notice", version, "--source", "back-office"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<mv1::SubscribeRequest>("Subscribe");
  EXPECT_TRUE(sent.language().empty());
  EXPECT_EQ(sent.source(), "back-office");
  EXPECT_THAT(r.out, ContainsRegex("\nchanged +no\n$"));
}

TEST_F(MailingCommandsTest, SubscriptionsFollowPagesIntoOneTableOrJson) {
  Result r = Crmctl({"mailing", "subscriptions", "news", "--state", "active"});
  ASSERT_EQ(r.exit_code, 0) << r;
  std::vector<FakeMailing::Seen> calls = fake_.Calls("ListSubscriptions");
  ASSERT_EQ(calls.size(), 2u);
  mv1::ListSubscriptionsRequest first, second;
  ASSERT_TRUE(first.ParseFromString(calls[0].request));
  ASSERT_TRUE(second.ParseFromString(calls[1].request));
  EXPECT_EQ(first.list_id(), "news");
  EXPECT_EQ(first.state(), mv1::SUBSCRIPTION_STATE_ACTIVE);
  EXPECT_EQ(first.page_size(), 1000);
  EXPECT_TRUE(first.page_token().empty());
  EXPECT_EQ(second.list_id(), "news");
  EXPECT_EQ(second.state(), mv1::SUBSCRIPTION_STATE_ACTIVE);
  EXPECT_EQ(second.page_token(), "s-2");
  EXPECT_EQ(r.out,
            "SUBJECT  STATE    SOURCE    CREATED               CONFIRMED             ENDED\n"
            "s-1      active   shop.web  2026-05-03T12:00:00Z  2026-05-03T12:05:00Z  -\n"
            "s-2      pending  shop.web  2026-05-03T12:00:00Z  -                     -\n"
            "s-3      active   shop.web  2026-05-03T12:00:00Z  2026-05-03T12:05:00Z  -\n");
  EXPECT_THAT(r.err, IsEmpty());

  // Without --state: every state. --json: one response, no page token.
  r = Crmctl({"mailing", "subscriptions", "news", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<mv1::ListSubscriptionsRequest>("ListSubscriptions").state(),
            mv1::SUBSCRIPTION_STATE_UNSPECIFIED);
  mv1::ListSubscriptionsResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
  ASSERT_EQ(list.subscriptions_size(), 3);
  EXPECT_EQ(list.subscriptions(2).subject_id(), "s-3");
  EXPECT_TRUE(list.next_page_token().empty());
}

TEST_F(MailingCommandsTest, TemplatePutSendsTheFilesBytesUnchangedAndPrintsTheirSizes) {
  const std::string text = "Hello {{first_name}},\r\nZa\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87\n";
  const std::string html = "<p>Hello {{first_name}}</p>\n";
  Result r = Crmctl({"mailing", "template", "put", "may", "--subject", "News for {{first_name}}",
                     "--text", WriteFile("may.txt", text), "--html", WriteFile("may.html", html)});
  ASSERT_EQ(r.exit_code, 0) << r;
  mv1::Template sent = fake_.LastRequest<mv1::PutTemplateRequest>("PutTemplate").template_();
  EXPECT_EQ(sent.template_id(), "may");
  EXPECT_EQ(sent.subject(), "News for {{first_name}}");
  EXPECT_EQ(sent.text_body(), text);
  EXPECT_EQ(sent.html_body(), html);
  EXPECT_EQ(sent.version(), 0);
  EXPECT_THAT(r.out, ContainsRegex("^template_id +may\nversion +3\n"));
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\ntext_body +", text.size(), " bytes\n")));
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\nhtml_body +", html.size(), " bytes\n")));

  // The text from stdin; no HTML.
  r = Crmctl({"mailing", "template", "put", "may", "--subject", "S", "--text", "-"},
             /*address_in_env=*/false, "from stdin");
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<mv1::PutTemplateRequest>("PutTemplate").template_();
  EXPECT_EQ(sent.text_body(), "from stdin");
  EXPECT_TRUE(sent.html_body().empty());
  EXPECT_THAT(r.out, ContainsRegex("\nhtml_body +-\n"));

  // --json: the bodies whole.
  r = Crmctl({"mailing", "template", "put", "may", "--subject", "S", "--text",
              WriteFile("t.txt", "T {{unsubscribe_url}}"), "--html", "-", "--json"},
             /*address_in_env=*/false, "<p>H</p>");
  mv1::PutTemplateResponse stored;
  ASSERT_TRUE(IsJsonOutput(r, &stored));
  EXPECT_EQ(stored.template_().text_body(), "T {{unsubscribe_url}}");
  EXPECT_EQ(stored.template_().html_body(), "<p>H</p>");
}

TEST_F(MailingCommandsTest, TemplateGetAsksForTheNewestOrTheVersionGiven) {
  Result r = Crmctl({"mailing", "template", "get", "may"});
  ASSERT_EQ(r.exit_code, 0) << r;
  mv1::GetTemplateRequest sent = fake_.LastRequest<mv1::GetTemplateRequest>("GetTemplate");
  EXPECT_EQ(sent.template_id(), "may");
  EXPECT_EQ(sent.version(), 0);
  EXPECT_THAT(r.out, ContainsRegex("^template_id +may\nversion +3\nsubject +News for "
                                   "\\{\\{first_name\\}\\}\ntext_body +Hello "
                                   "\\{\\{first_name\\}\\}\nhtml_body +-\n"));

  r = Crmctl({"mailing", "template", "get", "may", "--version", "2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<mv1::GetTemplateRequest>("GetTemplate").version(), 2);
  EXPECT_THAT(r.out, ContainsRegex("\nversion +2\n"));
}

TEST_F(MailingCommandsTest, CampaignCreateMapsFlagsAndPrintsTheCampaignId) {
  Result r = Crmctl({"mailing", "campaign", "create", "--name", "May news", "--list", "news",
                     "--template", "may", "--template-version", "2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  mv1::Campaign sent = fake_.LastRequest<mv1::CreateCampaignRequest>("CreateCampaign").campaign();
  EXPECT_EQ(sent.name(), "May news");
  EXPECT_EQ(sent.list_id(), "news");
  EXPECT_EQ(sent.template_id(), "may");
  EXPECT_EQ(sent.template_version(), 2);
  EXPECT_TRUE(sent.campaign_id().empty());
  EXPECT_FALSE(sent.has_send_at());
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("^campaign_id +", FakeMailing::kCampaignId, "\n")));
  EXPECT_THAT(r.out, ContainsRegex("\nstate +draft\n"));

  // Without --template-version: 0, the newest (the server pins it).
  r = Crmctl(
      {"mailing", "campaign", "create", "--name", "June", "--list", "news", "--template", "june"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<mv1::CreateCampaignRequest>("CreateCampaign").campaign();
  EXPECT_EQ(sent.template_version(), 0);
  EXPECT_THAT(r.out, ContainsRegex("\ntemplate_version +3\n"));
}

TEST_F(MailingCommandsTest, CampaignScheduleAtATimeOrNow) {
  const std::string id = FakeMailing::kCampaignId;
  Result r = Crmctl({"mailing", "campaign", "schedule", id, "--at", "2026-05-04T09:00:00+02:00"});
  ASSERT_EQ(r.exit_code, 0) << r;
  mv1::ScheduleCampaignRequest sent =
      fake_.LastRequest<mv1::ScheduleCampaignRequest>("ScheduleCampaign");
  EXPECT_EQ(sent.campaign_id(), id);
  ASSERT_TRUE(sent.has_send_at());
  EXPECT_EQ(sent.send_at().seconds(), FakeConsent::Time("2026-05-04T07:00:00Z").seconds());
  EXPECT_THAT(r.out, ContainsRegex("\nstate +scheduled\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nsend_at +2026-05-04T07:00:00Z\n"));

  // "now" and no --at: send_at unset (the server's now).
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"mailing", "campaign", "schedule", id, "--at", "now"},
        std::vector<std::string>{"mailing", "campaign", "schedule", id}}) {
    r = Crmctl(args);
    ASSERT_EQ(r.exit_code, 0) << r;
    sent = fake_.LastRequest<mv1::ScheduleCampaignRequest>("ScheduleCampaign");
    EXPECT_EQ(sent.campaign_id(), id);
    EXPECT_FALSE(sent.has_send_at());
  }
  EXPECT_EQ(fake_.Calls("ScheduleCampaign").size(), 3u);
}

TEST_F(MailingCommandsTest, PauseResumeCancelSendTheCampaignAndPrintItsState) {
  const std::string id = FakeMailing::kCampaignId;
  for (const auto& [word, method, state] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"pause", "PauseCampaign", "paused"},
           {"resume", "ResumeCampaign", "scheduled"},
           {"cancel", "CancelCampaign", "cancelled"}}) {
    Result r = Crmctl({"mailing", "campaign", word, id});
    ASSERT_EQ(r.exit_code, 0) << r;
    ASSERT_EQ(fake_.Calls(method).size(), 1u) << word;
    EXPECT_EQ(fake_.LastRequest<mv1::CampaignRequest>(method).campaign_id(), id);
    EXPECT_THAT(r.out, ContainsRegex("\nstate +" + state + "\n")) << word;
  }
  EXPECT_EQ(fake_.CallCount(), 3u);
}

TEST_F(MailingCommandsTest, ShowPrintsTheStateAndTheCounts) {
  Result r = Crmctl({"mailing", "campaign", "show", FakeMailing::kCampaignId});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<mv1::CampaignRequest>("GetCampaign").campaign_id(),
            FakeMailing::kCampaignId);
  EXPECT_EQ(r.out, absl::StrCat("campaign_id                ", FakeMailing::kCampaignId,
                                "\n"
                                "name                       May news\n"
                                "list_id                    news\n"
                                "template_id                may\n"
                                "template_version           2\n"
                                "state                      sending\n"
                                "send_at                    2026-05-04T09:00:00Z\n"
                                "counts.queued              10\n"
                                "counts.sent                120\n"
                                "counts.skipped_consent     7\n"
                                "counts.skipped_no_address  2\n"
                                "counts.failed              1\n"
                                "counts.unsubscribed        3\n"
                                "created_at                 2026-05-01T08:00:00Z\n"));
}

TEST_F(MailingCommandsTest, RpcErrorPrintsTheCodeAndExitsOne) {
  Result r = Crmctl({"mailing", "campaign", "pause", "c-done"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR FAILED_PRECONDITION: campaign_id: the campaign is "
                                "CAMPAIGN_STATE_DONE; cannot pause\n"));
  EXPECT_THAT(r.out, IsEmpty());

  // A list's pages: the error of the first ends it.
  r = Crmctl({"mailing", "subscriptions", "gone"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR NOT_FOUND: list_id: not found\n"));
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_EQ(fake_.Calls("ListSubscriptions").size(), 1u);

  // An explicit authorization header is sent as it is: the fake refuses it.
  r = Crmctl({"mailing", "list", "ls", "--header", "authorization=Bearer other"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("ERROR UNAUTHENTICATED: bad token\n"));
}

TEST_F(MailingCommandsTest, JsonOutputIsTheResponseAsJson) {
  Result r = Crmctl({"mailing", "campaign", "show", FakeMailing::kCampaignId, "--json"});
  mv1::CampaignResponse shown;
  ASSERT_TRUE(IsJsonOutput(r, &shown));
  EXPECT_EQ(shown.campaign().state(), mv1::CAMPAIGN_STATE_SENDING);
  EXPECT_EQ(shown.campaign().counts().skipped_consent(), 7);
  EXPECT_THAT(r.out, HasSubstr(R"("skipped_consent": "7")"));

  r = Crmctl({"mailing", "list", "ls", "--json"});
  mv1::ListListsResponse lists;
  ASSERT_TRUE(IsJsonOutput(r, &lists));
  ASSERT_EQ(lists.lists_size(), 2);
  EXPECT_EQ(lists.lists(0).opt_in(), mv1::OPT_IN_DOUBLE);
  EXPECT_THAT(r.out, HasSubstr(R"("opt_in": "OPT_IN_DOUBLE")"));
}

TEST_F(MailingCommandsTest, BadUsageExitsTwoNamingTheArgumentWithoutCalling) {
  const std::string v = FakeConsent::Version('a');
  const std::string id = FakeMailing::kCampaignId;
  const std::vector<std::string> body = {"--subject", "S", "--text", WriteFile("t.txt", "T")};
  ExpectUsageErrors(
      [this](const std::vector<std::string>& args) { return Crmctl(args); },
      {
          {{"mailing", "list", "create", "--purpose", "p", "--opt-in", "single"},
           "missing LIST_ID"},
          {{"mailing", "list", "create", "news", "--opt-in", "single"}, "--purpose: required"},
          {{"mailing", "list", "create", "news", "--purpose", "p"}, "--opt-in: required"},
          {{"mailing", "list", "create", "news", "--purpose", "p", "--opt-in", "triple"},
           "--opt-in: expected one of single, double, got \"triple\""},
          {{"mailing", "list", "ls", "extra"}, "unexpected argument \"extra\""},
          {{"mailing", "list"}, "mailing list needs a command: create, ls"},
          {{"mailing", "list", "frob"},
           "unknown command \"mailing list frob\"; mailing list commands: create, ls"},
          {{"mailing"},
           "mailing needs a command: list, subscribe, subscriptions, template, campaign"},
          {{"mailing", "frob"}, "unknown command \"mailing frob\""},
          {{"mailing", "subscribe", "news", "--notice", v, "--source", "s"}, "missing SUBJECT_ID"},
          {{"mailing", "subscribe", "news", "s-1", "--source", "s"}, "--notice: required"},
          {{"mailing", "subscribe", "news", "s-1", "--notice", v}, "--source: required"},
          {{"mailing", "subscribe", "news", "s-1", "--notice", v, "--source", "s", "--method",
            "api"},
           "--method: not a flag of 'crmctl mailing subscribe'"},
          {{"mailing", "subscriptions"}, "missing LIST_ID"},
          {{"mailing", "subscriptions", "news", "--state", "bounced"},
           "--state: expected one of pending, active, unsubscribed, got \"bounced\""},
          {Concat({"mailing", "template", "put"}, body), "missing TEMPLATE_ID"},
          {{"mailing", "template", "put", "may", "--text", WriteFile("u.txt", "T")},
           "--subject: required"},
          {{"mailing", "template", "put", "may", "--subject", "S"}, "--text: required"},
          {{"mailing", "template", "put", "may", "--subject", "S", "--text", dir_ + "/missing.txt"},
           "--text: cannot read " + dir_ + "/missing.txt: No such file or directory"},
          {Concat({"mailing", "template", "put", "may", "--html", dir_ + "/missing.html"}, body),
           "--html: cannot read " + dir_ + "/missing.html: No such file or directory"},
          {{"mailing", "template", "put", "may", "--subject", "S", "--text",
            WriteFile("empty.txt", "")},
           "--text: " + dir_ + "/empty.txt is empty"},
          {{"mailing", "template", "put", "may", "--subject", "S", "--text", "-", "--html", "-"},
           "--html: stdin (-) is already read for --text"},
          {{"mailing", "template", "get", "may", "--version", "newest"},
           "--version: expected a number, got \"newest\""},
          {{"mailing", "template", "get"}, "missing TEMPLATE_ID"},
          {{"mailing", "campaign", "create", "--list", "news", "--template", "may"},
           "--name: required"},
          {{"mailing", "campaign", "create", "--name", "N", "--template", "may"},
           "--list: required"},
          {{"mailing", "campaign", "create", "--name", "N", "--list", "news"},
           "--template: required"},
          {{"mailing", "campaign", "create", "--name", "N", "--list", "news", "--template", "may",
            "--template-version", "2.5"},
           "--template-version: expected a number, got \"2.5\""},
          {{"mailing", "campaign", "schedule", id, "--at", "tomorrow"},
           "--at: expected an RFC 3339 time like 2026-11-01T00:00:00Z or now, got \"tomorrow\""},
          {{"mailing", "campaign", "schedule", "--at", "now"}, "missing CAMPAIGN_ID"},
          {{"mailing", "campaign", "pause"}, "missing CAMPAIGN_ID"},
          {{"mailing", "campaign", "show", id, id}, "unexpected argument"},
          {{"mailing", "campaign", "cancel", id, "--at", "now"},
           "--at: not a flag of 'crmctl mailing campaign cancel'"},
          {{"mailing", "campaign"},
           "mailing campaign needs a command: create, schedule, pause, resume, cancel, show"},
      });
  EXPECT_EQ(fake_.CallCount(), 0u);
}

// A fake crm.erasure.v1.Erasure service: records every call (method,
// authorization metadata, request) and answers canned requests (one with
// two targets), a list of two pages (one page of one access request for
// kind access), certificates signed with a key of its own, whose public key
// GetVerificationKey gives, and an access export streamed in three chunks.
// Calls without the bearer token of the test's session are
// UNAUTHENTICATED.
class FakeErasure final : public ev1::Erasure::Service, public TokenCheckingRecorder {
 public:
  using TokenCheckingRecorder::TokenCheckingRecorder;

  // The key the certificates are signed with.
  const crypto::Ed25519PrivateKey& key() const { return key_; }

  static constexpr char kRequestId[] = "3b241101-e2bb-4255-8caf-4136c566a962";
  // Request `id`: erasing; audit erased (one category erased, one
  // retained), contacts failing.
  static ev1::ErasureRequest Request(const std::string& id) {
    ev1::ErasureRequest r;
    r.set_request_id(id);
    r.set_subject_id("s-1");
    r.set_kind(ev1::KIND_ERASURE);
    r.set_reason(ev1::ERASURE_REASON_SUBJECT_REQUEST);
    r.set_requester("u-1");
    r.set_state(ev1::STATE_ERASING);
    *r.mutable_received_at() = FakeConsent::Time("2026-05-01T08:00:00Z");
    *r.mutable_not_before() = FakeConsent::Time("2026-05-01T08:00:00Z");
    *r.mutable_due_at() = FakeConsent::Time("2026-06-01T08:00:00Z");
    r.set_rounds(1);
    ev1::Target* t = r.add_targets();
    t->set_service("audit");
    t->set_state(ev1::TARGET_STATE_ERASED);
    t->add_planned()->set_category("audit_events");
    t->add_erased()->set_category("audit_payloads");
    t->add_retained()->set_category("audit_events");
    *t->mutable_erased_at() = FakeConsent::Time("2026-05-01T08:01:00Z");
    t = r.add_targets();
    t->set_service("contacts");
    t->set_state(ev1::TARGET_STATE_PLANNED);
    t->set_failures(3);
    t->set_last_error("UNAVAILABLE: connection refused");
    *t->mutable_next_attempt_at() = FakeConsent::Time("2026-05-01T08:05:00Z");
    t->add_planned()->set_category("person");
    t->add_planned()->set_category("contact_history");
    return r;
  }
  // The certificate GetCertificate gives.
  std::string Certificate() const {
    return absl::StrCat(
        R"({"format":"crm.erasure.certificate.v1","issuer":"crm-erasure","key_id":")",
        KeyIdOf(key_.PublicKey()), R"(","request_id":")", kRequestId,
        R"(","reason":"subject_request","outcome":"completed"})");
  }
  static std::string KeyIdOf(const crypto::Ed25519PublicKey& key) {
    return absl::BytesToHexString(crypto::Sha256(key.Raw())).substr(0, 16);
  }
  // An access request: completed, its export kept until expires_at, the
  // subject not yet told of its extension.
  static ev1::ErasureRequest AccessRequest(const std::string& id) {
    ev1::ErasureRequest r = Request(id);
    r.set_kind(ev1::KIND_ACCESS);
    r.set_state(ev1::STATE_COMPLETED);
    r.set_extended_months(1);
    r.set_extension_reason("seven systems to search");
    r.set_extension_notice_pending(true);
    *r.mutable_due_at() = FakeConsent::Time("2026-07-01T08:00:00Z");
    *r.mutable_completed_at() = FakeConsent::Time("2026-05-03T08:00:00Z");
    *r.mutable_expires_at() = FakeConsent::Time("2026-05-17T08:00:00Z");
    r.clear_targets();
    ev1::Target* t = r.add_targets();
    t->set_service("contacts");
    t->set_state(ev1::TARGET_STATE_EXPORTED);
    return r;
  }
  // The chunks GetAccessExport streams: the head, 256 KiB of one service's
  // part (personal data: an address, a name in UTF-8, a line break), the
  // rest and the tail. Concatenated, one JSON document.
  static std::vector<std::string> ExportChunks() {
    return {R"({"format":"crm.access.v1","subject":{"email":"ann@example.com"},"services":{)",
            absl::StrCat(R"("contacts":{"name":"Zoë
","notes":")",
                         std::string(256 * 1024 - 40, 'x')),
            R"("}}})"};
  }
  static std::string ExportDocument() { return absl::StrJoin(ExportChunks(), ""); }

  // "s-open": the subject has an open request (created false).
  grpc::Status SubmitErasure(grpc::ServerContext* ctx, const ev1::SubmitErasureRequest* req,
                             ev1::SubmitErasureResponse* resp) override {
    if (!Record("SubmitErasure", ctx, *req)) return Unauthenticated();
    const bool open = req->subject_id() == "s-open";
    ev1::ErasureRequest* r = resp->mutable_request();
    *r = Request(kRequestId);
    r->set_subject_id(req->subject_id());
    r->set_reason(open ? ev1::ERASURE_REASON_RETENTION : req->reason());
    r->set_state(open ? ev1::STATE_ERASING : ev1::STATE_RECEIVED);
    r->clear_targets();
    resp->set_created(!open);
    return grpc::Status::OK;
  }
  // "s-open": the subject has an open access request (created false).
  grpc::Status SubmitAccess(grpc::ServerContext* ctx, const ev1::SubmitAccessRequest* req,
                            ev1::SubmitErasureResponse* resp) override {
    if (!Record("SubmitAccess", ctx, *req)) return Unauthenticated();
    const bool open = req->subject_id() == "s-open";
    ev1::ErasureRequest* r = resp->mutable_request();
    *r = AccessRequest(kRequestId);
    r->set_subject_id(req->subject_id());
    r->set_state(open ? ev1::STATE_EXPORTING : ev1::STATE_RECEIVED);
    r->set_extended_months(0);
    r->clear_extension_reason();
    r->clear_extension_notice_pending();
    *r->mutable_due_at() = FakeConsent::Time("2026-06-01T08:00:00Z");
    r->clear_completed_at();
    r->clear_expires_at();
    r->clear_targets();
    resp->set_created(!open);
    return grpc::Status::OK;
  }
  // kRequestId: ExportChunks. "r-broken": the first two, then UNAVAILABLE.
  // "r-open": FAILED_PRECONDITION before any.
  grpc::Status GetAccessExport(grpc::ServerContext* ctx, const ev1::GetAccessExportRequest* req,
                               grpc::ServerWriter<ev1::AccessExportChunk>* writer) override {
    if (!Record("GetAccessExport", ctx, *req)) return Unauthenticated();
    if (req->request_id() == "r-open") {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "request_id: the export is not ready yet");
    }
    const bool broken = req->request_id() == "r-broken";
    std::vector<std::string> chunks = ExportChunks();
    if (broken) chunks.pop_back();
    for (const std::string& data : chunks) {
      ev1::AccessExportChunk chunk;
      chunk.set_data(data);
      if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
    }
    if (broken) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "erasure: the database went away");
    }
    return grpc::Status::OK;
  }
  // "gone": NOT_FOUND. "r-access": AccessRequest.
  grpc::Status GetErasure(grpc::ServerContext* ctx, const ev1::GetErasureRequest* req,
                          ev1::GetErasureResponse* resp) override {
    if (!Record("GetErasure", ctx, *req)) return Unauthenticated();
    if (req->request_id() == "gone") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "request_id: no such request");
    }
    *resp->mutable_request() =
        req->request_id() == "r-access" ? AccessRequest("r-access") : Request(req->request_id());
    return grpc::Status::OK;
  }
  // Two pages: r-1 and r-2, then r-3. Kind access: one page, a-1.
  grpc::Status ListErasures(grpc::ServerContext* ctx, const ev1::ListErasuresRequest* req,
                            ev1::ListErasuresResponse* resp) override {
    if (!Record("ListErasures", ctx, *req)) return Unauthenticated();
    if (req->kind() == ev1::KIND_ACCESS) {
      ev1::ErasureRequest* r = resp->add_requests();
      *r = AccessRequest("a-1");
      r->clear_targets();
      return grpc::Status::OK;
    }
    const bool first = req->page_token().empty();
    for (const char* id :
         first ? std::vector<const char*>{"r-1", "r-2"} : std::vector<const char*>{"r-3"}) {
      ev1::ErasureRequest* r = resp->add_requests();
      *r = Request(id);
      r->clear_targets();
      if (absl::string_view(id) == "r-1") {
        r->set_state(ev1::STATE_COMPLETED_WITH_RETENTION);
        *r->mutable_completed_at() = FakeConsent::Time("2026-05-02T09:00:00Z");
      } else if (absl::string_view(id) == "r-3") {
        r->set_reason(ev1::ERASURE_REASON_RETENTION);
        r->set_state(ev1::STATE_NEEDS_ATTENTION);
        *r->mutable_due_at() = FakeConsent::Time("2026-06-03T10:00:00Z");
      }
    }
    if (first) resp->set_next_page_token("t-2");
    return grpc::Status::OK;
  }
  // "r-erasing": FAILED_PRECONDITION.
  grpc::Status CancelErasure(grpc::ServerContext* ctx, const ev1::CancelErasureRequest* req,
                             ev1::CancelErasureResponse* resp) override {
    if (!Record("CancelErasure", ctx, *req)) return Unauthenticated();
    if (req->request_id() == "r-erasing") {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "request_id: the request is STATE_ERASING; only a received one can be "
                          "cancelled");
    }
    *resp->mutable_request() = Request(req->request_id());
    resp->mutable_request()->set_state(ev1::STATE_CANCELLED);
    return grpc::Status::OK;
  }
  grpc::Status ExtendErasure(grpc::ServerContext* ctx, const ev1::ExtendErasureRequest* req,
                             ev1::ExtendErasureResponse* resp) override {
    if (!Record("ExtendErasure", ctx, *req)) return Unauthenticated();
    ev1::ErasureRequest* r = resp->mutable_request();
    *r = Request(req->request_id());
    r->set_extended_months(req->months());
    r->set_extension_reason(req->reason());
    *r->mutable_due_at() =
        FakeConsent::Time(req->months() == 1 ? "2026-07-01T08:00:00Z" : "2026-08-01T08:00:00Z");
    return grpc::Status::OK;
  }
  // "r-open": FAILED_PRECONDITION.
  grpc::Status GetCertificate(grpc::ServerContext* ctx, const ev1::GetCertificateRequest* req,
                              ev1::GetCertificateResponse* resp) override {
    if (!Record("GetCertificate", ctx, *req)) return Unauthenticated();
    if (req->request_id() == "r-open") {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "request_id: no certificate until the request is completed");
    }
    const std::string certificate = Certificate();
    absl::StatusOr<std::string> signature = key_.Sign(certificate);
    if (!signature.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "sign");
    resp->set_certificate(certificate);
    resp->set_signature(*signature);
    return grpc::Status::OK;
  }
  grpc::Status ReapplyErasures(grpc::ServerContext* ctx, const ev1::ReapplyErasuresRequest* req,
                               ev1::ReapplyErasuresResponse* resp) override {
    if (!Record("ReapplyErasures", ctx, *req)) return Unauthenticated();
    resp->set_submitted(12);
    resp->set_already_open(1);
    return grpc::Status::OK;
  }
  grpc::Status GetVerificationKey(grpc::ServerContext* ctx,
                                  const ev1::GetVerificationKeyRequest* req,
                                  ev1::GetVerificationKeyResponse* resp) override {
    if (!Record("GetVerificationKey", ctx, *req)) return Unauthenticated();
    resp->set_public_key_pem(key_.PublicKey().ToPem());
    return grpc::Status::OK;
  }

 private:
  const crypto::Ed25519PrivateKey key_ = crypto::Ed25519PrivateKey::Generate().value();
};

// The operator's certificate comes from $CRM_PKI_DIR, since --key is the
// public key for erasure verify.
class ErasureCommandsTest : public FamilyCommandsTest<FakeErasure> {
 protected:
  ErasureCommandsTest() : FamilyCommandsTest("erasure", ev1::Erasure::service_full_name()) {}

  // crmctl `args` against the fake (--erasure), the operator's certificate
  // from $CRM_PKI_DIR, or from nowhere unless `pki` (then only flags in
  // `args` give it).
  Result Crmctl(const std::vector<std::string>& args, bool pki = true) {
    std::vector<std::string> env = {
        "CRMCTL_SESSION_FILE=" + session_path_,
        "CRM_PKI_DIR=" + (pki ? server_.pki().dir() : dir_ + "/no-pki")};
    return RunCrmctl(Concat(args, {"--identity", absl::StrCat("127.0.0.1:", identity_.port()),
                                   "--erasure=" + Address()}),
                     "", env);
  }
  static int Mode(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
  }
};

TEST_F(ErasureCommandsTest, SubmitSendsTheReasonAndTellsWhetherItWasCreated) {
  Result r = Crmctl({"erasure", "submit", "s-1", "--reason", "subject-request"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("SubmitErasure").size(), 1u);
  EXPECT_EQ(fake_.Calls("SubmitErasure")[0].authorization, "Bearer " + kToken);
  ev1::SubmitErasureRequest sent = fake_.LastRequest<ev1::SubmitErasureRequest>("SubmitErasure");
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_EQ(sent.reason(), ev1::ERASURE_REASON_SUBJECT_REQUEST);
  EXPECT_EQ(r.out, absl::StrCat("request_id  ", FakeErasure::kRequestId,
                                "\n"
                                "state       received\n"
                                "due_at      2026-06-01T08:00:00Z\n"
                                "created     yes\n"));
  EXPECT_THAT(r.err, IsEmpty());

  for (const auto& [word, reason] : std::vector<std::pair<std::string, ev1::ErasureReason>>{
           {"retention", ev1::ERASURE_REASON_RETENTION},
           {"administrator", ev1::ERASURE_REASON_ADMINISTRATOR}}) {
    r = Crmctl({"erasure", "submit", "s-2", "--reason", word});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(fake_.LastRequest<ev1::SubmitErasureRequest>("SubmitErasure").reason(), reason);
  }

  // An open request of the subject: that one, created no, and a note.
  r = Crmctl({"erasure", "submit", "s-open", "--reason", "subject-request"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, ContainsRegex("\nstate +erasing\n"));
  EXPECT_THAT(r.out, ContainsRegex("\ncreated +no\n$"));
  EXPECT_THAT(r.err, HasSubstr("already has an open erasure request"));

  // By e-mail address: the address goes in `email`, no subject id.
  r = Crmctl({"erasure", "submit-email", "ann@example.com", "--reason", "subject-request"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<ev1::SubmitErasureRequest>("SubmitErasure");
  EXPECT_EQ(sent.email(), "ann@example.com");
  EXPECT_THAT(sent.subject_id(), IsEmpty());
  EXPECT_EQ(sent.reason(), ev1::ERASURE_REASON_SUBJECT_REQUEST);
}

TEST_F(ErasureCommandsTest, ShowPrintsTheRequestThenATableOfItsTargets) {
  Result r = Crmctl({"erasure", "show", FakeErasure::kRequestId});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<ev1::GetErasureRequest>("GetErasure").request_id(),
            FakeErasure::kRequestId);
  EXPECT_EQ(r.out, absl::StrCat("request_id        ", FakeErasure::kRequestId,
                                "\n"
                                "kind              erasure\n"
                                "subject_id        s-1\n"
                                "reason            subject-request\n"
                                "requester         u-1\n"
                                "state             erasing\n"
                                "received_at       2026-05-01T08:00:00Z\n"
                                "not_before        2026-05-01T08:00:00Z\n"
                                "due_at            2026-06-01T08:00:00Z\n"
                                "extended_months   0\n"
                                "extension_reason  -\n"
                                "completed_at      -\n"
                                "rounds            1\n"
                                "attention         -\n"
                                "\n"
                                "SERVICE   STATE    FAILURES  LAST_ERROR                       "
                                "NEXT_ATTEMPT          ERASED  RETAINED\n"
                                "audit     erased   0         -                                "
                                "-                     1       1\n"
                                "contacts  planned  3         UNAVAILABLE: connection refused  "
                                "2026-05-01T08:05:00Z  0       0\n"));
  // No export expiry, no pending extension notice: neither line, no note.
  EXPECT_THAT(r.out, Not(HasSubstr("expires_at")));
  EXPECT_THAT(r.out, Not(HasSubstr("extension_notice_pending")));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(ErasureCommandsTest, ShowOfAnAccessRequestShowsItsExpiryAndNotesAPendingExtensionNotice) {
  Result r = Crmctl({"erasure", "show", "r-access"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out,
            "request_id                r-access\n"
            "kind                      access\n"
            "subject_id                s-1\n"
            "reason                    subject-request\n"
            "requester                 u-1\n"
            "state                     completed\n"
            "received_at               2026-05-01T08:00:00Z\n"
            "not_before                2026-05-01T08:00:00Z\n"
            "due_at                    2026-07-01T08:00:00Z\n"
            "extended_months           1\n"
            "extension_reason          seven systems to search\n"
            "completed_at              2026-05-03T08:00:00Z\n"
            "expires_at                2026-05-17T08:00:00Z\n"
            "rounds                    1\n"
            "attention                 -\n"
            "extension_notice_pending  yes\n"
            "\n"
            "SERVICE   STATE     FAILURES  LAST_ERROR  NEXT_ATTEMPT  ERASED  RETAINED\n"
            "contacts  exported  0         -           -             0       0\n");
  EXPECT_EQ(r.err,
            "crmctl: the subject is still to be told of the extension: the notice goes out when "
            "the request is planned\n");

  // --json: the response alone, the note too is left out.
  r = Crmctl({"erasure", "show", "r-access", "--json"});
  ev1::GetErasureResponse shown;
  ASSERT_TRUE(IsJsonOutput(r, &shown));
  EXPECT_EQ(shown.request().kind(), ev1::KIND_ACCESS);
  EXPECT_TRUE(shown.request().extension_notice_pending());
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(ErasureCommandsTest, LsFollowsPagesIntoOneTableWithTheFiltersOnEveryPage) {
  const absl::Time before = absl::Now();
  Result r = Crmctl({"erasure", "ls", "--state", "needs-attention", "--due-within", "7d"});
  const absl::Time after = absl::Now();
  ASSERT_EQ(r.exit_code, 0) << r;
  std::vector<FakeErasure::Seen> calls = fake_.Calls("ListErasures");
  ASSERT_EQ(calls.size(), 2u);
  ev1::ListErasuresRequest first;
  ev1::ListErasuresRequest second;
  ASSERT_TRUE(first.ParseFromString(calls[0].request));
  ASSERT_TRUE(second.ParseFromString(calls[1].request));
  for (const ev1::ListErasuresRequest* sent : {&first, &second}) {
    EXPECT_EQ(sent->state(), ev1::STATE_NEEDS_ATTENTION);
    EXPECT_EQ(sent->page_size(), 500);
    ASSERT_TRUE(sent->has_due_before());
    EXPECT_GE(sent->due_before().seconds(), absl::ToUnixSeconds(before + absl::Hours(7 * 24)));
    EXPECT_LE(sent->due_before().seconds(), absl::ToUnixSeconds(after + absl::Hours(7 * 24)));
  }
  EXPECT_TRUE(first.page_token().empty());
  EXPECT_EQ(second.page_token(), "t-2");
  EXPECT_EQ(r.out,
            "REQUEST  KIND     STATE                     REASON           RECEIVED              "
            "DUE                   COMPLETED\n"
            "r-1      erasure  completed-with-retention  subject-request  2026-05-01T08:00:00Z  "
            "2026-06-01T08:00:00Z  2026-05-02T09:00:00Z\n"
            "r-2      erasure  erasing                   subject-request  2026-05-01T08:00:00Z  "
            "2026-06-01T08:00:00Z  -\n"
            "r-3      erasure  needs-attention           retention        2026-05-01T08:00:00Z  "
            "2026-06-03T10:00:00Z  -\n");
  EXPECT_THAT(r.err, IsEmpty());

  // No filters: every state, any due date. --json: one response, no token.
  r = Crmctl({"erasure", "ls", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ev1::ListErasuresRequest sent = fake_.LastRequest<ev1::ListErasuresRequest>("ListErasures");
  EXPECT_EQ(sent.state(), ev1::STATE_UNSPECIFIED);
  EXPECT_EQ(sent.kind(), ev1::KIND_UNSPECIFIED);
  EXPECT_FALSE(sent.has_due_before());
  ev1::ListErasuresResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
  ASSERT_EQ(list.requests_size(), 3);
  EXPECT_EQ(list.requests(2).state(), ev1::STATE_NEEDS_ATTENTION);
  EXPECT_TRUE(list.next_page_token().empty());
}

TEST_F(ErasureCommandsTest, LsKindSendsTheKindOnEveryPageAndTheTableShowsIt) {
  Result r = Crmctl({"erasure", "ls", "--kind", "access"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("ListErasures").size(), 1u);
  EXPECT_EQ(fake_.LastRequest<ev1::ListErasuresRequest>("ListErasures").kind(), ev1::KIND_ACCESS);
  EXPECT_EQ(
      r.out,
      "REQUEST  KIND    STATE      REASON           RECEIVED              DUE                   "
      "COMPLETED\n"
      "a-1      access  completed  subject-request  2026-05-01T08:00:00Z  2026-07-01T08:00:00Z  "
      "2026-05-03T08:00:00Z\n");
  EXPECT_THAT(r.err, IsEmpty());

  // With the other filters, on both pages.
  r = Crmctl({"erasure", "ls", "--kind=erasure", "--state", "exporting"});
  ASSERT_EQ(r.exit_code, 0) << r;
  std::vector<FakeErasure::Seen> calls = fake_.Calls("ListErasures");
  ASSERT_EQ(calls.size(), 3u);
  for (size_t i = 1; i < calls.size(); ++i) {
    ev1::ListErasuresRequest sent;
    ASSERT_TRUE(sent.ParseFromString(calls[i].request));
    EXPECT_EQ(sent.kind(), ev1::KIND_ERASURE);
    EXPECT_EQ(sent.state(), ev1::STATE_EXPORTING);
  }
}

TEST_F(ErasureCommandsTest, AccessSendsTheSubjectOrTheAddressAndTellsWhetherItWasCreated) {
  Result r = Crmctl({"erasure", "access", "s-1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("SubmitAccess").size(), 1u);
  EXPECT_EQ(fake_.Calls("SubmitAccess")[0].authorization, "Bearer " + kToken);
  EXPECT_THAT(fake_.Calls("SubmitErasure"), IsEmpty());
  ev1::SubmitAccessRequest sent = fake_.LastRequest<ev1::SubmitAccessRequest>("SubmitAccess");
  EXPECT_EQ(sent.subject_case(), ev1::SubmitAccessRequest::kSubjectId);
  EXPECT_EQ(sent.subject_id(), "s-1");
  EXPECT_EQ(r.out, absl::StrCat("request_id  ", FakeErasure::kRequestId,
                                "\n"
                                "state       received\n"
                                "due_at      2026-06-01T08:00:00Z\n"
                                "created     yes\n"));
  EXPECT_THAT(r.err, IsEmpty());

  // An open access request of the subject: that one, created no, and a
  // note naming the kind.
  r = Crmctl({"erasure", "access", "s-open"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, ContainsRegex("\nstate +exporting\n"));
  EXPECT_THAT(r.out, ContainsRegex("\ncreated +no\n$"));
  EXPECT_EQ(r.err,
            "crmctl: the subject already has an open access request: the one shown; nothing new "
            "was submitted\n");

  // By e-mail address: the address goes in `email`, no subject id.
  r = Crmctl({"erasure", "access-email", "ann@example.com"});
  ASSERT_EQ(r.exit_code, 0) << r;
  sent = fake_.LastRequest<ev1::SubmitAccessRequest>("SubmitAccess");
  EXPECT_EQ(sent.subject_case(), ev1::SubmitAccessRequest::kEmail);
  EXPECT_EQ(sent.email(), "ann@example.com");
  EXPECT_THAT(sent.subject_id(), IsEmpty());

  // --json: the response.
  r = Crmctl({"erasure", "access", "s-1", "--json"});
  ev1::SubmitErasureResponse submitted;
  ASSERT_TRUE(IsJsonOutput(r, &submitted));
  EXPECT_TRUE(submitted.created());
  EXPECT_EQ(submitted.request().kind(), ev1::KIND_ACCESS);
  EXPECT_EQ(fake_.Calls("SubmitAccess").size(), 4u);
}

TEST_F(ErasureCommandsTest, ExportWritesTheStreamedDocumentToAFileOfMode0600OrToStdout) {
  std::filesystem::create_directories(dir_);
  const std::string path = Path("access.json");
  const std::string document = FakeErasure::ExportDocument();
  Result r = Crmctl({"erasure", "export", FakeErasure::kRequestId, "--out", path});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(fake_.Calls("GetAccessExport").size(), 1u);
  EXPECT_EQ(fake_.Calls("GetAccessExport")[0].authorization, "Bearer " + kToken);
  EXPECT_EQ(fake_.LastRequest<ev1::GetAccessExportRequest>("GetAccessExport").request_id(),
            FakeErasure::kRequestId);
  EXPECT_EQ(ReadAll(path), document);
  EXPECT_EQ(Mode(path), 0600);
  EXPECT_EQ(r.out, absl::StrCat("export  ", path, " (", document.size(), " bytes)\n"));
  EXPECT_THAT(r.err, IsEmpty());
  // Nothing else is left in the directory (no temporary file).
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 2);  // session, the export.

  // An existing file: exit 2, nothing asked, the file as it was; --force
  // replaces it, mode 0600 whatever its mode was.
  WriteFile("access.json", "mine");
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  r = Crmctl({"erasure", "export", FakeErasure::kRequestId, "--out", path});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("--out: ", path, " exists (--force replaces it)")));
  EXPECT_EQ(ReadAll(path), "mine");
  EXPECT_EQ(fake_.Calls("GetAccessExport").size(), 1u);
  r = Crmctl({"erasure", "export", FakeErasure::kRequestId, "--out", path, "--force"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(ReadAll(path), document);
  EXPECT_EQ(Mode(path), 0600);

  // Without --out: the document on stdout, byte for byte, nothing else;
  // --json changes nothing.
  for (bool json : {false, true}) {
    r = Crmctl(
        json ? std::vector<std::string>{"erasure", "export", FakeErasure::kRequestId, "--json"}
             : std::vector<std::string>{"erasure", "export", FakeErasure::kRequestId});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(r.out == document)
        << "stdout is not the document (" << r.out.size() << " of " << document.size() << " bytes)";
    EXPECT_THAT(r.err, IsEmpty());
  }
}

TEST_F(ErasureCommandsTest, ExportThatFailsLeavesNoFileAndExitsOne) {
  std::filesystem::create_directories(dir_);
  const std::string path = Path("access.json");
  const std::vector<std::string> chunks = FakeErasure::ExportChunks();
  const std::string personal = "ann@example.com";

  // Broken off after two chunks: no file, no temporary file, exit 1.
  Result r = Crmctl({"erasure", "export", "r-broken", "--out", path});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.err, "ERROR UNAVAILABLE: erasure: the database went away\n");
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(path));
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    left.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"session"});

  // With --force over an existing file: that file is left as it was.
  WriteFile("access.json", "mine");
  r = Crmctl({"erasure", "export", "r-broken", "--out", path, "--force"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(ReadAll(path), "mine");
  std::filesystem::remove(path);

  // Not ready: the server's error before any byte, no file.
  r = Crmctl({"erasure", "export", "r-open", "--out", path});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.err, "ERROR FAILED_PRECONDITION: request_id: the export is not ready yet\n");
  EXPECT_FALSE(std::filesystem::exists(path));

  // A directory that does not exist: exit 1 before anything is asked (a
  // download is audited).
  const size_t asked = fake_.Calls("GetAccessExport").size();
  r = Crmctl({"erasure", "export", FakeErasure::kRequestId, "--out", Path("no/access.json")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("cannot write ", Path("no/access.json"))));
  EXPECT_EQ(fake_.Calls("GetAccessExport").size(), asked);

  // To stdout: what came, and the error saying it is incomplete.
  r = Crmctl({"erasure", "export", "r-broken"});
  EXPECT_EQ(r.exit_code, 1) << r;
  const std::string came = chunks[0] + chunks[1];
  EXPECT_TRUE(r.out == came) << "stdout is not the first two chunks (" << r.out.size() << " of "
                             << came.size() << " bytes)";
  EXPECT_EQ(r.err, absl::StrCat("ERROR UNAVAILABLE: erasure: the database went away\n"
                                "crmctl: the export on stdout is incomplete (",
                                came.size(), " bytes)\n"));
  EXPECT_THAT(r.err, Not(HasSubstr(personal)));
}

TEST_F(ErasureCommandsTest, CancelAndExtendSendTheRequestAndPrintItLikeShow) {
  Result r = Crmctl({"erasure", "cancel", FakeErasure::kRequestId});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<ev1::CancelErasureRequest>("CancelErasure").request_id(),
            FakeErasure::kRequestId);
  EXPECT_THAT(r.out, ContainsRegex("\nstate +cancelled\n"));
  EXPECT_THAT(r.out, ContainsRegex("\n\nSERVICE +STATE +FAILURES"));

  r = Crmctl({"erasure", "extend", FakeErasure::kRequestId, "--months", "2", "--reason",
              "complex request: many systems"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ev1::ExtendErasureRequest sent = fake_.LastRequest<ev1::ExtendErasureRequest>("ExtendErasure");
  EXPECT_EQ(sent.request_id(), FakeErasure::kRequestId);
  EXPECT_EQ(sent.months(), 2);
  EXPECT_EQ(sent.reason(), "complex request: many systems");
  EXPECT_THAT(r.out, ContainsRegex("\ndue_at +2026-08-01T08:00:00Z\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nextended_months +2\n"));
  EXPECT_THAT(r.out, ContainsRegex("\nextension_reason +complex request: many systems\n"));

  r = Crmctl({"erasure", "extend", FakeErasure::kRequestId, "--months=1", "--reason", "r"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<ev1::ExtendErasureRequest>("ExtendErasure").months(), 1);
}

TEST_F(ErasureCommandsTest, CertificateWritesBothFilesAndRefusesToOverwrite) {
  std::filesystem::create_directories(dir_);
  const std::string path = Path("certificate.json");
  Result r = Crmctl({"erasure", "certificate", FakeErasure::kRequestId, "--out", path});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.LastRequest<ev1::GetCertificateRequest>("GetCertificate").request_id(),
            FakeErasure::kRequestId);
  const std::string certificate = fake_.Certificate();
  EXPECT_EQ(ReadAll(path), certificate);
  const std::string signature = ReadAll(path + ".sig");
  EXPECT_EQ(signature.size(), crypto::kEd25519SignatureSize);
  EXPECT_TRUE(fake_.key().PublicKey().Verify(certificate, signature));
  EXPECT_EQ(Mode(path), 0644);
  EXPECT_EQ(Mode(path + ".sig"), 0644);
  EXPECT_THAT(r.out, StartsWith(absl::StrCat("certificate  ", path, " (", certificate.size(),
                                             " bytes)\nsignature    ", path, ".sig (64 bytes)\n")));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("openssl pkeyutl -verify -pubin -inkey erasure.pub.pem "
                                            "-rawin -in ",
                                            path, " -sigfile ", path, ".sig\n")));
  EXPECT_THAT(r.out,
              HasSubstr(absl::StrCat("crmctl erasure verify ", path, " --key erasure.pub.pem\n")));
  // Nothing else is left in the directory (no temporary files).
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 3);  // session, the certificate, its signature.

  // Either file existing: exit 2, nothing asked, nothing written.
  WriteFile("certificate.json", "mine");
  std::filesystem::remove(path + ".sig");
  r = Crmctl({"erasure", "certificate", FakeErasure::kRequestId, "--out", path});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("--out: ", path, " exists (--force replaces it)")));
  WriteFile("other.json.sig", "mine");
  r = Crmctl({"erasure", "certificate", FakeErasure::kRequestId, "--out", Path("other.json")});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("--out: ", Path("other.json.sig"), " exists")));
  EXPECT_EQ(fake_.Calls("GetCertificate").size(), 1u);
  EXPECT_EQ(ReadAll(path), "mine");
  EXPECT_FALSE(std::filesystem::exists(path + ".sig"));

  // --force replaces them.
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  r = Crmctl({"erasure", "certificate", FakeErasure::kRequestId, "--out", path, "--force"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(ReadAll(path), certificate);
  EXPECT_TRUE(fake_.key().PublicKey().Verify(certificate, ReadAll(path + ".sig")));
  EXPECT_EQ(Mode(path), 0644);

  // A directory that does not exist: the write fails, exit 1.
  r = Crmctl({"erasure", "certificate", FakeErasure::kRequestId, "--out", Path("no/c.json")});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("cannot write ", Path("no/c.json"))));
  // The signature cannot be written (a directory is in the way): no
  // certificate without it is left.
  std::filesystem::create_directories(Path("d.json.sig"));
  r = Crmctl(
      {"erasure", "certificate", FakeErasure::kRequestId, "--out", Path("d.json"), "--force"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("cannot write ", Path("d.json.sig"))));
  EXPECT_FALSE(std::filesystem::exists(Path("d.json")));
}

TEST_F(ErasureCommandsTest, VerifyPassesForTheSignedFileAndFailsForAModifiedOne) {
  std::filesystem::create_directories(dir_);
  const std::string path = Path("certificate.json");
  ASSERT_EQ(Crmctl({"erasure", "certificate", FakeErasure::kRequestId, "--out", path}).exit_code,
            0);
  const std::string id = FakeErasure::KeyIdOf(fake_.key().PublicKey());

  // With the service's key.
  Result r = Crmctl({"erasure", "verify", path});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("GetVerificationKey").size(), 1u);
  EXPECT_EQ(r.out, absl::StrCat("certificate verified: ", path, " is signed by key_id ", id, "\n"));

  // Offline with --key: no operator certificate, no call.
  const std::string pem = WriteFile("erasure.pub.pem", fake_.key().PublicKey().ToPem());
  const size_t calls = fake_.CallCount();
  r = Crmctl({"erasure", "verify", path, "--key", pem}, /*pki=*/false);
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_THAT(r.out, StartsWith("certificate verified: "));
  EXPECT_EQ(fake_.CallCount(), calls);

  // One byte changed: NOT valid, exit 1, with either key.
  std::string forged = fake_.Certificate();
  forged.replace(forged.find("completed"), 9, "cancelled");
  WriteFile("certificate.json", forged);
  r = Crmctl({"erasure", "verify", path, "--key", pem}, /*pki=*/false);
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_EQ(r.err, absl::StrCat("certificate NOT valid: ", path, ".sig is not a signature of ",
                                path, " by key_id ", id, "\n"));
  r = Crmctl({"erasure", "verify", path});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, StartsWith("certificate NOT valid: "));

  // Another key (e.g. the certificate was signed before a key rotation):
  // NOT valid, naming both key ids.
  CRM_ASSERT_OK_AND_ASSIGN(crypto::Ed25519PrivateKey other, crypto::Ed25519PrivateKey::Generate());
  WriteFile("certificate.json", fake_.Certificate());
  const std::string other_pem = WriteFile("other.pub.pem", other.PublicKey().ToPem());
  r = Crmctl({"erasure", "verify", path, "--key", other_pem}, /*pki=*/false);
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("by key_id ", FakeErasure::KeyIdOf(other.PublicKey()),
                                            " (the certificate names key_id ", id, ")\n")));

  // --json: the verdict and the key id.
  r = Crmctl({"erasure", "verify", path, "--key", pem, "--json"}, /*pki=*/false);
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, absl::StrCat("{\n  \"verified\": true,\n  \"key_id\": \"", id, "\"\n}\n"));
}

TEST_F(ErasureCommandsTest, KeyPrintsThePemOrWritesItWithItsKeyId) {
  const std::string pem = fake_.key().PublicKey().ToPem();
  Result r = Crmctl({"erasure", "key"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, pem);

  std::filesystem::create_directories(dir_);
  const std::string path = Path("erasure.pub.pem");
  r = Crmctl({"erasure", "key", "--out", path});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(ReadAll(path), pem);
  EXPECT_EQ(Mode(path), 0644);
  EXPECT_EQ(r.out, absl::StrCat("public_key  ", path, "\nkey_id      ",
                                FakeErasure::KeyIdOf(fake_.key().PublicKey()), "\n"));

  // An existing file only with --force.
  WriteFile("erasure.pub.pem", "old");
  r = Crmctl({"erasure", "key", "--out", path});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_EQ(ReadAll(path), "old");
  r = Crmctl({"erasure", "key", "--out", path, "--force"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(ReadAll(path), pem);
  EXPECT_EQ(fake_.Calls("GetVerificationKey").size(), 3u);
}

TEST_F(ErasureCommandsTest, ReapplySendsTheTimeAndPrintsTheCounts) {
  Result r = Crmctl({"erasure", "reapply", "--since", "2026-05-01T00:00:00+02:00"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ev1::ReapplyErasuresRequest sent =
      fake_.LastRequest<ev1::ReapplyErasuresRequest>("ReapplyErasures");
  ASSERT_TRUE(sent.has_completed_since());
  EXPECT_EQ(sent.completed_since().seconds(), FakeConsent::Time("2026-04-30T22:00:00Z").seconds());
  EXPECT_EQ(r.out, "submitted     12\nalready_open  1\n");
}

TEST_F(ErasureCommandsTest, TheOperatorKeyFlagStillWorksForTheOtherCommands) {
  rpc::TlsFiles f = server_.pki().Files("operator");
  Result r =
      Crmctl({"erasure", "ls", "--cert", f.cert_file, "--key", f.key_file, "--ca", f.ca_file},
             /*pki=*/false);
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(fake_.Calls("ListErasures").size(), 2u);
}

TEST_F(ErasureCommandsTest, RpcErrorPrintsTheCodeAndExitsOne) {
  for (const auto& [args, error] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"erasure", "show", "gone"}, "ERROR NOT_FOUND: request_id: no such request\n"},
           {{"erasure", "cancel", "r-erasing"},
            "ERROR FAILED_PRECONDITION: request_id: the request is STATE_ERASING; only a "
            "received one can be cancelled\n"},
           {{"erasure", "certificate", "r-open", "--out", Path("open.json")},
            "ERROR FAILED_PRECONDITION: request_id: no certificate until the request is "
            "completed\n"},
           {{"erasure", "ls", "--header", "authorization=Bearer other"},
            "ERROR UNAUTHENTICATED: bad token\n"},
           {{"erasure", "key", "--header", "authorization=Bearer other"},
            "ERROR UNAUTHENTICATED: bad token\n"},
       }) {
    Result r = Crmctl(args);
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_THAT(r.err, StartsWith(error)) << r;
    EXPECT_THAT(r.out, IsEmpty());
  }
  // A certificate that could not be had writes nothing.
  EXPECT_FALSE(std::filesystem::exists(Path("open.json")));
  EXPECT_FALSE(std::filesystem::exists(Path("open.json.sig")));
  // A list's pages: the error of the first ends it.
  EXPECT_EQ(fake_.Calls("ListErasures").size(), 1u);

  // verify with the service's key: its error, and no verdict.
  WriteFile("c.json", "{}");
  WriteFile("c.json.sig", "x");
  Result r = Crmctl({"erasure", "verify", Path("c.json"), "--header", "authorization=Bearer x"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_EQ(r.err, "ERROR UNAUTHENTICATED: bad token\n");
}

TEST_F(ErasureCommandsTest, JsonOutputIsTheResponseAsJson) {
  Result r = Crmctl({"erasure", "show", FakeErasure::kRequestId, "--json"});
  ev1::GetErasureResponse shown;
  ASSERT_TRUE(IsJsonOutput(r, &shown));
  EXPECT_EQ(shown.request().state(), ev1::STATE_ERASING);
  ASSERT_EQ(shown.request().targets_size(), 2);
  EXPECT_EQ(shown.request().targets(1).last_error(), "UNAVAILABLE: connection refused");
  EXPECT_THAT(r.out, HasSubstr(R"("state": "STATE_ERASING")"));

  r = Crmctl({"erasure", "submit", "s-open", "--reason", "retention", "--json"});
  ev1::SubmitErasureResponse submitted;
  ASSERT_TRUE(IsJsonOutput(r, &submitted));
  EXPECT_FALSE(submitted.created());
  EXPECT_EQ(submitted.request().request_id(), FakeErasure::kRequestId);

  r = Crmctl({"erasure", "reapply", "--since", "2026-05-01T00:00:00Z", "--json"});
  ev1::ReapplyErasuresResponse reapplied;
  ASSERT_TRUE(IsJsonOutput(r, &reapplied));
  EXPECT_EQ(reapplied.submitted(), 12);
  EXPECT_EQ(reapplied.already_open(), 1);

  // certificate --json: the files are written all the same.
  std::filesystem::create_directories(dir_);
  r = Crmctl(
      {"erasure", "certificate", FakeErasure::kRequestId, "--out", Path("c.json"), "--json"});
  ev1::GetCertificateResponse certificate;
  ASSERT_TRUE(IsJsonOutput(r, &certificate));
  EXPECT_EQ(certificate.certificate(), ReadAll(Path("c.json")));
  EXPECT_EQ(certificate.signature(), ReadAll(Path("c.json.sig")));
}

TEST_F(ErasureCommandsTest, BadUsageExitsTwoNamingTheArgumentWithoutCalling) {
  const std::string id = FakeErasure::kRequestId;
  const std::string signed_file = WriteFile("signed.json", "{}");
  WriteFile("signed.json.sig", "x");
  const std::string unsigned_file = WriteFile("unsigned.json", "{}");
  ExpectUsageErrors(
      [this](const std::vector<std::string>& args) { return Crmctl(args); },
      {
          {{"erasure"},
           "erasure needs a command: submit, submit-email, access, access-email, show, ls, "
           "cancel, extend, certificate, export, key, verify, reapply"},
          {{"erasure", "access"}, "missing SUBJECT_ID"},
          {{"erasure", "access", "s-1", "--reason", "retention"},
           "--reason: not a flag of 'crmctl erasure access'"},
          {{"erasure", "access-email"}, "missing EMAIL"},
          {{"erasure", "ls", "--kind", "both"},
           "--kind: expected one of erasure, access, got \"both\""},
          {{"erasure", "ls", "--kind", "unspecified"},
           "--kind: expected one of erasure, access, got \"unspecified\""},
          {{"erasure", "export"}, "missing REQUEST_ID"},
          {{"erasure", "export", id, "--force"}, "--force: only with --out"},
          {{"erasure", "export", id, "--out", signed_file},
           "--out: " + signed_file + " exists (--force replaces it)"},
          {{"erasure", "submit-email", "--reason", "retention"}, "missing EMAIL"},
          {{"erasure", "frob"}, "unknown command \"erasure frob\""},
          {{"erasure", "submit", "--reason", "retention"}, "missing SUBJECT_ID"},
          {{"erasure", "submit", "s-1"}, "--reason: required"},
          {{"erasure", "submit", "s-1", "--reason", "whim"},
           "--reason: expected one of subject-request, retention, administrator, got \"whim\""},
          {{"erasure", "submit", "s-1", "s-2", "--reason", "retention"},
           "unexpected argument \"s-2\""},
          {{"erasure", "show"}, "missing REQUEST_ID"},
          {{"erasure", "show", id, "--state", "received"},
           "--state: not a flag of 'crmctl erasure show'"},
          {{"erasure", "ls", "--state", "done"},
           "--state: expected one of received, planned, erasing, verifying, completed, "
           "completed-with-retention, needs-attention, cancelled, exporting, expired, got "
           "\"done\""},
          {{"erasure", "ls", "--due-within", "a week"},
           "--due-within: expected a positive duration like 8h, 90m or 7d, got \"a week\""},
          {{"erasure", "ls", "--due-within", "-7d"}, "--due-within: expected a positive duration"},
          {{"erasure", "cancel"}, "missing REQUEST_ID"},
          {{"erasure", "extend", id, "--reason", "r"}, "--months: required"},
          {{"erasure", "extend", id, "--months", "1"}, "--reason: required"},
          {{"erasure", "extend", "--months", "1", "--reason", "r"}, "missing REQUEST_ID"},
          {{"erasure", "extend", id, "--months", "3", "--reason", "r"},
           "--months: expected 1 or 2, got \"3\""},
          {{"erasure", "extend", id, "--months", "0", "--reason", "r"},
           "--months: expected 1 or 2, got \"0\""},
          {{"erasure", "extend", id, "--months", "two", "--reason", "r"},
           "--months: expected a number, got \"two\""},
          {{"erasure", "certificate", id}, "--out: required"},
          {{"erasure", "certificate", "--out", Path("c.json")}, "missing REQUEST_ID"},
          {{"erasure", "key", "--force"}, "--force: only with --out"},
          {{"erasure", "verify"}, "missing FILE"},
          {{"erasure", "verify", Path("missing.json")},
           "FILE: cannot read " + Path("missing.json") + ": No such file or directory"},
          {{"erasure", "verify", unsigned_file},
           "FILE: cannot read " + unsigned_file + ".sig: No such file or directory"},
          {{"erasure", "verify", signed_file, "--key", Path("missing.pem")},
           "--key: cannot read " + Path("missing.pem")},
          {{"erasure", "verify", signed_file, "--key", signed_file},
           "--key: " + signed_file + " is not an Ed25519 public key in PEM"},
          {{"erasure", "reapply"}, "--since: required"},
          {{"erasure", "reapply", "--since", "yesterday"},
           "--since: expected an RFC 3339 time like 2026-11-01T00:00:00Z, got \"yesterday\""},
      });
  EXPECT_EQ(fake_.CallCount(), 0u);
}

// --- in-process unit tests ---

TEST(ParseOptionsTest, DefaultsComeFromPkiDirAndDevelopmentPorts) {
  CRM_ASSERT_OK_AND_ASSIGN(Options o, ParseOptions({"health"}, {}, "/repo"));
  EXPECT_EQ(o.command, "health");
  EXPECT_EQ(o.cert_file, "/repo/.run/pki/operator.crt");
  EXPECT_EQ(o.key_file, "/repo/.run/pki/operator.key");
  EXPECT_EQ(o.ca_file, "/repo/.run/pki/ca.crt");
  EXPECT_EQ(o.addresses.at("identity"), "127.0.0.1:50051");
  EXPECT_EQ(o.addresses.at("erasure"), "127.0.0.1:50056");
  EXPECT_EQ(o.addresses.at("gateway"), "127.0.0.1:8443");
  EXPECT_EQ(o.timeout, absl::Seconds(10));

  CRM_ASSERT_OK_AND_ASSIGN(o, ParseOptions({"health"}, {{"CRM_PKI_DIR", "/p"}}, "/repo"));
  EXPECT_EQ(o.cert_file, "/p/operator.crt");
}

TEST(ParseOptionsTest, FlagBeatsEnvironmentBeatsDefault) {
  std::map<std::string, std::string> env = {{"CRMCTL_AUDIT_ADDR", "audit.svc:1"},
                                            {"CRMCTL_CONSENT_ADDR", "consent.svc:2"}};
  CRM_ASSERT_OK_AND_ASSIGN(Options o, ParseOptions({"--audit", "a:3", "health"}, env, "/r"));
  EXPECT_EQ(o.addresses.at("audit"), "a:3");
  EXPECT_EQ(o.addresses.at("consent"), "consent.svc:2");
  EXPECT_EQ(o.addresses.at("mailing"), "127.0.0.1:50055");

  EXPECT_THAT(ParseOptions({"health"}, {{"CRMCTL_AUDIT_ADDR", "nope"}}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRMCTL_AUDIT_ADDR")));
}

TEST(ParseOptionsTest, ParsesCallFlagsAnywhere) {
  CRM_ASSERT_OK_AND_ASSIGN(
      Options o,
      ParseOptions({"call", "--header", "Authorization: Bearer t", "audit", "M", "--timeout=1500ms",
                    "{}", "--server-identity", "spiffe://crm.local/audit", "--", "--x"},
                   {}, "/r"));
  EXPECT_EQ(o.command, "call");
  EXPECT_EQ(o.args, (std::vector<std::string>{"audit", "M", "{}", "--x"}));
  ASSERT_EQ(o.headers.size(), 1u);
  EXPECT_EQ(o.headers[0].first, "authorization");
  EXPECT_EQ(o.headers[0].second, "Bearer t");
  EXPECT_EQ(o.timeout, absl::Milliseconds(1500));
  EXPECT_EQ(o.server_identity, "audit");
}

TEST(ParseOptionsTest, BadFlagsAreNamed) {
  EXPECT_THAT(ParseOptions({"--cert"}, {}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--cert: needs a value")));
  EXPECT_THAT(ParseOptions({"-x"}, {}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-x: unknown flag")));
  EXPECT_THAT(ParseOptions({"--header=novalue"}, {}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--header")));
  EXPECT_THAT(ParseOptions({"--server-identity=spiffe://other.org/x"}, {}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--server-identity")));
  EXPECT_THAT(ParseOptions({"--addr=host"}, {}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--addr")));
}

TEST(ParseOptionsTest, ACommandsOwnFlagTakesTheGlobalFlagOfItsName) {
  // erasure verify --key: the public key; the operator's key stays the default.
  CRM_ASSERT_OK_AND_ASSIGN(Options o, ParseOptions({"--key", "pub.pem", "erasure", "verify",
                                                    "c.json", "--cert", "op.crt"},
                                                   {}, "/r"));
  EXPECT_EQ(o.key_file, "/r/.run/pki/operator.key");
  EXPECT_EQ(o.cert_file, "op.crt");
  EXPECT_EQ(o.command_flags,
            (std::vector<std::pair<std::string, std::string>>{{"key", "pub.pem"}}));
  // Any other command: the operator's key.
  CRM_ASSERT_OK_AND_ASSIGN(o, ParseOptions({"erasure", "ls", "--key", "op.key"}, {}, "/r"));
  EXPECT_EQ(o.key_file, "op.key");
  EXPECT_THAT(o.command_flags, IsEmpty());
  CRM_ASSERT_OK_AND_ASSIGN(o, ParseOptions({"--key=op.key", "health"}, {}, "/r"));
  EXPECT_EQ(o.key_file, "op.key");
}

// A set with two packages that both have service Svc with method Do.
std::string TwoPackageSet() {
  google::protobuf::FileDescriptorSet set;
  for (const char* package : {"crm.alpha.v1", "crm.beta.v1"}) {
    google::protobuf::FileDescriptorProto* file = set.add_file();
    file->set_name(absl::StrCat(package, ".proto"));
    file->set_package(package);
    file->set_syntax("proto3");
    file->add_message_type()->set_name("Req");
    google::protobuf::MethodDescriptorProto* m = file->add_service()->add_method();
    file->mutable_service(0)->set_name("Svc");
    m->set_name("Do");
    m->set_input_type(absl::StrCat(".", package, ".Req"));
    m->set_output_type(absl::StrCat(".", package, ".Req"));
  }
  return set.SerializeAsString();
}

TEST(ProtoRegistryTest, AmbiguousNamesListCandidatesUnlessTheServiceHintDecides) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::FromDescriptorSet(TwoPackageSet()));
  EXPECT_THAT(registry->FindMethod("Do", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("ambiguous"), HasSubstr("crm.alpha.v1.Svc/Do"),
                             HasSubstr("crm.beta.v1.Svc/Do"))));
  EXPECT_THAT(registry->FindMethod("Svc/Do", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("crm.beta.v1.Svc")));
  CRM_ASSERT_OK_AND_ASSIGN(auto* m, registry->FindMethod("Do", "beta"));
  EXPECT_EQ(m->full_name(), "crm.beta.v1.Svc.Do");
  CRM_ASSERT_OK_AND_ASSIGN(m, registry->FindMethod("Svc/Do", "alpha"));
  EXPECT_EQ(m->full_name(), "crm.alpha.v1.Svc.Do");
  CRM_ASSERT_OK_AND_ASSIGN(m, registry->FindMethod("/crm.beta.v1.Svc/Do", "alpha"));
  EXPECT_EQ(m->full_name(), "crm.beta.v1.Svc.Do");
  CRM_ASSERT_OK_AND_ASSIGN(m, registry->FindMethod("crm.alpha.v1.Svc.Do", ""));
  EXPECT_EQ(m->full_name(), "crm.alpha.v1.Svc.Do");
}

TEST(ProtoRegistryTest, GarbageIsRejected) {
  EXPECT_THAT(ProtoRegistry::FromDescriptorSet("\xff\xff not a descriptor set"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Every .proto under proto/ must be compiled into crmctl without anyone
// editing crmctl: crm_proto_library registers it (CRM_ALL_PROTOS).
TEST(ProtoRegistryTest, EmbeddedSetHasEveryProtoOfTheRepository) {
  const char* source_dir = getenv("CRMTEST_SOURCE_DIR");  // Set by ctest.
  if (source_dir == nullptr) source_dir = CRMCTL_TEST_SOURCE_DIR;
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  const std::filesystem::path root = std::filesystem::path(source_dir) / "proto";
  int count = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".proto") continue;
    ++count;
    const std::string name = std::filesystem::relative(entry.path(), root).string();
    EXPECT_NE(registry->pool().FindFileByName(name), nullptr)
        << name << " is not in crmctl's descriptor set (not built by crm_proto_library?)";
  }
  EXPECT_GE(count, 4);
  EXPECT_NE(registry->pool().FindServiceByName("crm.testing.v1.Echo"), nullptr);
}

TEST(IdentityCommandTableTest, EveryCommandFitsTheIdentityProto) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  EXPECT_THAT(CheckIdentityCommands(*registry), IsOk());
}

TEST(ContactsCommandTableTest, EveryCommandFitsTheContactsProto) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  EXPECT_THAT(CheckContactsCommands(*registry), IsOk());
}

TEST(ConsentCommandTableTest, EveryCommandFitsTheConsentProto) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  EXPECT_THAT(CheckConsentCommands(*registry), IsOk());
}

TEST(MailingCommandTableTest, EveryCommandFitsTheMailingProto) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  EXPECT_THAT(CheckMailingCommands(*registry), IsOk());
}

TEST(ErasureCommandTableTest, EveryCommandFitsTheErasureProto) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  EXPECT_THAT(CheckErasureCommands(*registry), IsOk());
}

TEST(CommandTableTest, ACommandWhoseWordsBeginAnothersIsRefused) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  const std::vector<Command> commands = {
      {.words = {"mailing", "list"}, .rpc = "ListLists", .summary = ""},
      {.words = {"mailing", "list", "ls"}, .rpc = "ListLists", .summary = ""}};
  const CommandTable table = {.service = "crm.mailing.v1.Mailing",
                              .service_name = "mailing",
                              .commands = &commands,
                              .usage_title = "",
                              .usage_footer = ""};
  EXPECT_THAT(
      CheckCommandTable(*registry, table),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("mailing list: begins \"mailing list ls\"")));
}

TEST(CommandTableTest, AServerStreamNeedsARowWithItsOwnRunner) {
  CRM_ASSERT_OK_AND_ASSIGN(auto registry, ProtoRegistry::Embedded());
  const std::vector<Command> commands = {{.words = {"erasure", "export"},
                                          .rpc = "GetAccessExport",
                                          .args = {Positional("REQUEST_ID", "request_id")},
                                          .summary = ""}};
  const CommandTable table = {.service = "crm.erasure.v1.Erasure",
                              .service_name = "erasure",
                              .commands = &commands,
                              .usage_title = "",
                              .usage_footer = ""};
  EXPECT_THAT(CheckCommandTable(*registry, table),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("erasure export: GetAccessExport is a server stream: the row "
                                 "needs its own Runner")));
}

TEST(IdentityCommandTableTest, CommandFlagsParseAnywhereAndSwitchesTakeNoValue) {
  CRM_ASSERT_OK_AND_ASSIGN(
      Options o,
      ParseOptions({"--json", "grant", "--all", "list", "--reason", "--x", "u"}, {}, "/r"));
  EXPECT_EQ(o.command, "grant");
  EXPECT_EQ(o.args, (std::vector<std::string>{"list", "u"}));
  EXPECT_TRUE(o.json);
  ASSERT_EQ(o.command_flags.size(), 2u);
  EXPECT_EQ(o.command_flags[0], (std::pair<std::string, std::string>{"all", ""}));
  EXPECT_EQ(o.command_flags[1], (std::pair<std::string, std::string>{"reason", "--x"}));
  EXPECT_THAT(ParseOptions({"--json=1"}, {}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--json: takes no value")));
  EXPECT_THAT(ParseOptions({"user", "list", "--status"}, {}, "/r"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--status: needs a value")));
}

// Every record of `text`, or the reader's error as a last record "ERROR: ...".
std::vector<std::vector<std::string>> ReadCsv(const std::string& text) {
  std::istringstream in(text);
  CsvReader reader(in);
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> fields;
  for (;;) {
    absl::StatusOr<bool> got = reader.Next(&fields);
    if (!got.ok()) {
      records.push_back({absl::StrCat("ERROR: ", got.status().message())});
      break;
    }
    if (!*got) break;
    records.push_back(fields);
  }
  return records;
}

using Records = std::vector<std::vector<std::string>>;

TEST(CsvReaderTest, QuotesEscapedQuotesAndEmbeddedNewlines) {
  EXPECT_EQ(ReadCsv("a,\"b,c\",\"say \"\"hi\"\"\"\n\"two\nlines\",\"\",x\n"),
            (Records{{"a", "b,c", "say \"hi\""}, {"two\nlines", "", "x"}}));
  // A quote inside an unquoted field is data.
  EXPECT_EQ(ReadCsv("5\" disk,b\n"), (Records{{"5\" disk", "b"}}));
}

TEST(CsvReaderTest, CrlfAndLfEndRecordsAndTheLastLineBreakIsOptional) {
  EXPECT_EQ(ReadCsv("a,b\r\nc,d\r\n"), (Records{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(ReadCsv("a,b\nc,d"), (Records{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(ReadCsv("\"x\r\ny\"\r\n"), (Records{{"x\r\ny"}}));
  EXPECT_EQ(ReadCsv(""), Records{});
  EXPECT_EQ(ReadCsv("a\n\n"), (Records{{"a"}, {""}}));
}

TEST(CsvReaderTest, EmptyFieldsAndRaggedRowsAreKept) {
  EXPECT_EQ(ReadCsv(",,\n,\n"), (Records{{"", "", ""}, {"", ""}}));
  EXPECT_EQ(ReadCsv("a,b,c\nd\ne,f,g,h\n"),
            (Records{{"a", "b", "c"}, {"d"}, {"e", "f", "g", "h"}}));
}

TEST(CsvReaderTest, MalformedQuotingIsAnErrorNamingTheLine) {
  EXPECT_EQ(ReadCsv("a\n\"open\nstill"),
            (Records{{"a"},
                     {"ERROR: line 2: a quoted field is not closed before the end of the "
                      "input"}}));
  EXPECT_EQ(ReadCsv("a\nb\n\"x\"y,z\n"),
            (Records{{"a"}, {"b"}, {"ERROR: line 3: text after the closing quote of a field"}}));
}

TEST(CsvReaderTest, RecordLineCountsEmbeddedNewlines) {
  std::istringstream in("h\n\"a\nb\"\nc\n");
  CsvReader reader(in);
  std::vector<std::string> fields;
  ASSERT_TRUE(*reader.Next(&fields));
  EXPECT_EQ(reader.record_line(), 1);
  ASSERT_TRUE(*reader.Next(&fields));
  EXPECT_EQ(reader.record_line(), 2);
  ASSERT_TRUE(*reader.Next(&fields));
  EXPECT_EQ(reader.record_line(), 4);
  EXPECT_FALSE(*reader.Next(&fields));
}

TEST(CsvReaderTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("Zoë Łukasz 東京 😀"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("caf\xc3"));       // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // A surrogate.
}

TEST(SessionTest, TokenExpiryReadsTheExpClaim) {
  const absl::Time exp = absl::FromUnixSeconds(1'900'000'000);
  EXPECT_EQ(TokenExpiry(FakeJwt(exp, "x")), exp);
  EXPECT_EQ(TokenExpiry("not a token"), std::nullopt);
  EXPECT_EQ(TokenExpiry(absl::StrCat("a.", absl::WebSafeBase64Escape(R"({"sub":"x"})"), ".c")),
            std::nullopt);
}

TEST(SessionTest, SessionFileLocation) {
  EXPECT_EQ(SessionFilePath({{"CRMCTL_SESSION_FILE", "/s"}, {"HOME", "/h"}}), "/s");
  EXPECT_EQ(SessionFilePath({{"XDG_CONFIG_HOME", "/x"}, {"HOME", "/h"}}), "/x/crmctl/session");
  EXPECT_EQ(SessionFilePath({{"HOME", "/h"}}), "/h/.config/crmctl/session");
  EXPECT_EQ(SessionFilePath({}), "");
}

}  // namespace
}  // namespace crm::crmctl
