// crmctl end to end: the real binary run as a subprocess against in-process
// servers over mutual TLS on loopback (an Echo ServerRunner, an HTTPS
// gateway stand-in), with a throwaway PKI. Plus unit tests of option parsing
// and method lookup.
#include "tools/crmctl_src/crmctl.h"

#include <google/protobuf/descriptor.pb.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/status_matchers.h"
#include "tools/crmctl_src/options.h"
#include "tools/crmctl_src/proto_registry.h"

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

}  // namespace
}  // namespace crm::crmctl
