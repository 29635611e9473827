// System test of the real service binaries (issue 2): identity, contacts,
// consent, audit, mailing, erasure and gateway each run as a process
// configured by CRM_* variables, against a fresh database on the shared test
// PostgreSQL, with mutual TLS on loopback from a throwaway PKI. Each must load
// its config (stopping on a bad setting with exit code 2), apply its
// migrations (stopping on an edited one), serve health over mTLS (the gateway:
// HTTPS /healthz), export metrics and exit 0 on SIGTERM.
//
// Waits are bounded polls for a process to come up or exit; ports are free
// ports of 127.0.0.1 picked by the test, so the test also sees the binary
// honour its listen settings.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/nontransaction>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "libs/base/clock.h"
#include "libs/pg/pool.h"
#include "libs/pki/pki.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/grpc_call.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/subprocess.h"
#include "libs/testing/test_env.h"
#include "tests/system/service_processes.h"

namespace crm::system_test {
namespace {

using ::crm::rpc::testing::TestPki;
using ::crm::testing::ExitStatus;
using ::crm::testing::GrpcHealthCheck;
using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::kHealthServing;
using ::crm::testing::PgTestDatabase;
using ::crm::testing::PollUntil;
using ::crm::testing::RedisTestServer;
using ::crm::testing::StatusIs;
using ::crm::testing::Subprocess;
using ::crm::testing::TestEnv;
using ::testing::HasSubstr;
using ::testing::Not;

// shutdown_grace given to every service; nothing is in flight at SIGTERM, so
// the exit comes well within it (plus civetweb's up to 2 s to stop).
constexpr absl::Duration kShutdownGrace = absl::Seconds(10);

// A process of a sanitizer build reports what it found on stderr.
void ExpectNoSanitizerReport(const std::string& output) {
  EXPECT_THAT(output, Not(HasSubstr("Sanitizer"))) << output;
  EXPECT_THAT(output, Not(HasSubstr("runtime error:"))) << output;
}

// Polls until `process` has logged `event` or exited; true for the former.
bool WaitForLog(Subprocess& process, absl::string_view event) {
  bool logged = false;
  PollUntil(
      [&] {
        logged = LogLine(process.Output(), event).has_value();
        return logged || !process.Running();
      },
      kProcessBound);
  return logged;
}

std::string MigrationsSql(absl::string_view table) {
  return absl::StrCat("CREATE TABLE ", table, " (id bigint PRIMARY KEY);\n");
}

// A throwaway PKI with every service, an operator client, shared by a suite.
TestPki* g_pki = nullptr;

class SystemTestBase : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (g_pki != nullptr) return;
    auto pki = TestPki::Create(
        {"identity", "contacts", "consent", "audit", "mailing", "erasure", "gateway", "operator"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    g_pki = new TestPki(std::move(*pki));
  }

  void SetUp() override {
    ASSERT_NE(g_pki, nullptr);
    ASSERT_FALSE(dir_.path().empty());
  }

  std::unique_ptr<Subprocess> Start(const std::string& service,
                                    const std::map<std::string, std::string>& env,
                                    const std::vector<std::string>& flags = {}) {
    Subprocess::Options options;
    options.args = {Binary(service)};
    options.args.insert(options.args.end(), flags.begin(), flags.end());
    options.env = env;
    options.output_file = absl::StrCat(dir_.path(), "/", service, "_", ++starts_, ".log");
    absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(options);
    EXPECT_THAT(process, IsOk());
    return process.ok() ? std::move(*process) : nullptr;
  }

  // SIGTERM, then the process must exit 0 having logged service.stopped.
  static void StopCleanly(Subprocess& process) {
    ASSERT_THAT(process.Signal(SIGTERM), IsOk());
    absl::StatusOr<ExitStatus> exit = process.WaitForExit(kShutdownGrace + absl::Seconds(5));
    ASSERT_THAT(exit, IsOk()) << process.Output();
    EXPECT_TRUE(exit->exited_with(0)) << *exit << "\n" << process.Output();
    const std::optional<std::string> stopped = LogLine(process.Output(), "service.stopped");
    ASSERT_TRUE(stopped.has_value()) << process.Output();
    EXPECT_TRUE(absl::StartsWith(*stopped, "{") && absl::EndsWith(*stopped, "}")) << *stopped;
    ExpectNoSanitizerReport(process.Output());
  }

  // Waits (bounded) for a process expected to fail at start-up; returns how
  // it ended.
  static ExitStatus WaitForFailedStart(Subprocess& process) {
    absl::StatusOr<ExitStatus> exit = process.WaitForExit(kProcessBound);
    EXPECT_THAT(exit, IsOk()) << process.Output();
    return exit.ok() ? *exit : ExitStatus{};
  }

  TempDir dir_;
  int starts_ = 0;
};

// ---------------------------------------------------------------------------
// The six gRPC services.

class GrpcServiceTest : public SystemTestBase, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    SystemTestBase::SetUp();
    migrations_dir_ = dir_.path() + "/migrations";
    ASSERT_TRUE(std::filesystem::create_directory(migrations_dir_));
    // The service's own migrations (its code needs its tables), then a probe
    // migration this test can see applied and edit.
    const char* src = std::getenv("CRMTEST_SOURCE_DIR");
    ASSERT_NE(src, nullptr) << "run through ctest";
    const std::filesystem::path own =
        std::filesystem::path(src) / "services" / service() / "migrations";
    for (const auto& entry : std::filesystem::directory_iterator(own)) {
      if (entry.path().extension() != ".sql") continue;
      std::filesystem::copy_file(entry.path(),
                                 std::filesystem::path(migrations_dir_) / entry.path().filename());
      ++own_migrations_;
    }
    probe_file_ = absl::StrFormat("%04d_system_probe.sql", own_migrations_ + 1);
    ASSERT_THAT(WriteFile(migrations_dir_ + "/" + probe_file_, MigrationsSql("system_probe")),
                IsOk());
    if (NeedsKeysAndRedis(service())) {
      CRM_ASSERT_OK_AND_ASSIGN(TestEnv test_env, TestEnv::Load());
      redis_ = test_env.redis();
      ASSERT_THAT(WriteServiceSecrets(dir_.path(), redis_), IsOk());
    }
    grpc_port_ = FreePort();
    metrics_port_ = FreePort();
    ASSERT_GT(grpc_port_, 0);
    ASSERT_GT(metrics_port_, 0);
  }

  const std::string& service() const { return GetParam(); }

  // A complete, valid configuration but for db_url.
  std::map<std::string, std::string> Env(const std::string& db_url) const {
    return ServiceEnv({.service = service(),
                       .tls = g_pki->Files(service()),
                       .grpc_port = grpc_port_,
                       .metrics_port = metrics_port_,
                       .db_url = db_url,
                       .migrations_dir = migrations_dir_,
                       .secrets_dir = dir_.path(),
                       .redis = redis_,
                       .shutdown_grace = kShutdownGrace});
  }

  // A db_url to a port nobody listens on, with a password the output must
  // never show.
  std::string UnreachableDbUrl() const {
    return absl::StrCat("host=127.0.0.1 port=", FreePort(), " dbname=", service(),
                        " user=", service(), " password=", password_);
  }

  std::shared_ptr<grpc::Channel> Channel(const rpc::TlsFiles& client) const {
    rpc::ChannelConfig config;
    config.target = absl::StrCat("127.0.0.1:", grpc_port_);
    config.tls = client;
    config.expected_server = service();  // The server must present its own identity.
    config.max_attempts = 1;             // Refusals must surface, not be retried.
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
    EXPECT_THAT(channel, IsOk());
    return channel.ok() ? *channel : nullptr;
  }

  // Starts the service on `db` (with `extra` settings) and waits until it
  // reports SERVING to the operator over mTLS.
  std::unique_ptr<Subprocess> StartServing(const PgTestDatabase& db,
                                           const std::map<std::string, std::string>& extra = {}) {
    std::map<std::string, std::string> env = Env(db.conninfo());
    for (const auto& [name, value] : extra) env[name] = value;
    std::unique_ptr<Subprocess> process = Start(service(), env);
    if (process == nullptr) return nullptr;
    EXPECT_TRUE(WaitForLog(*process, "service.started")) << process->Output();
    EXPECT_THAT(WaitUntilServing(*process, Channel(g_pki->Files("operator"))), IsOk());
    return process;
  }

  std::string migrations_dir_;
  int own_migrations_ = 0;
  std::string probe_file_;
  RedisTestServer redis_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  const std::string password_ =
      absl::StrCat("pw-not-for-logs-", absl::Uniform<uint32_t>(absl::BitGen(), 0, 1u << 30));
};

TEST_P(GrpcServiceTest, StartsMigratesServesHealthAndMetricsThenStopsCleanlyOnSigterm) {
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgTestDatabase> db, PgTestDatabase::Create(service()));
  const int health_port = FreePort();
  ASSERT_GT(health_port, 0);
  std::unique_ptr<Subprocess> process =
      StartServing(*db, {{"CRM_HEALTH_LISTEN", absl::StrCat("127.0.0.1:", health_port)}});
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(process->Running()) << process->Output();

  // It listens where it was told to.
  const std::optional<std::string> started = LogLine(process->Output(), "service.started");
  ASSERT_TRUE(started.has_value());
  EXPECT_THAT(*started, HasSubstr(absl::StrCat("\"grpc_port\":", grpc_port_)));
  EXPECT_THAT(*started, HasSubstr(absl::StrCat("\"metrics_port\":", metrics_port_)));
  EXPECT_THAT(*started, HasSubstr(absl::StrCat("\"health_port\":", health_port)));

  // Kubernetes' probes: plaintext health on its own port.
  auto probe = grpc::CreateChannel(absl::StrCat("127.0.0.1:", health_port),
                                   grpc::InsecureChannelCredentials());
  EXPECT_THAT(GrpcHealthCheck(probe), IsOkAndHolds(kHealthServing));
  EXPECT_THAT(GrpcHealthCheck(probe, "liveness"), IsOkAndHolds(kHealthServing));

  // The migration is applied and recorded.
  CRM_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<pg::Pool> pool,
      pg::Pool::Create({.conninfo = db->conninfo(), .max_size = 1}, base::RealClock::Get()));
  ASSERT_THAT(pool->WithConnection([&](pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    pqxx::result rows = tx.exec("SELECT version, name FROM schema_migrations ORDER BY version");
    const size_t expected = static_cast<size_t>(own_migrations_) + 1;
    EXPECT_EQ(rows.size(), expected);
    if (rows.size() == expected) {
      EXPECT_EQ(rows[expected - 1][0].as<int>(), own_migrations_ + 1);
      EXPECT_EQ(rows[expected - 1][1].as<std::string>(), probe_file_);
    }
    EXPECT_FALSE(tx.exec1("SELECT to_regclass('system_probe')")[0].is_null());
    return absl::OkStatus();
  }),
              IsOk());
  pool.reset();

  // Metrics over plain HTTP, with the health checks counted.
  httplib::Client metrics("127.0.0.1", metrics_port_);
  httplib::Result response = metrics.Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->body, HasSubstr("crm_rpc_server_calls_total{"));
  EXPECT_THAT(response->body, HasSubstr("method=\"/grpc.health.v1.Health/Check\""));
  CRM_ASSERT_OK_AND_ASSIGN(std::string cert, pki::ReadFile(g_pki->Files(service()).cert_file));
  CRM_ASSERT_OK_AND_ASSIGN(absl::Time not_after, pki::NotAfter(cert));
  EXPECT_THAT(response->body, HasSubstr(absl::StrCat(
                                  "crm_tls_certificate_expiry_timestamp_seconds{file=\"server\"} ",
                                  absl::ToUnixSeconds(not_after), "\n")));

  StopCleanly(*process);
}

TEST_P(GrpcServiceTest, BadSettingStopsStartupWithExitCode2NamingIt) {
  struct Case {
    std::map<std::string, std::string> env;
    std::vector<std::string> flags;
    std::string named;
  };
  std::vector<Case> cases = {
      {{{"CRM_GRPC_PROT", "50051"}}, {}, "CRM_GRPC_PROT"},
      {{}, {"--grpc_listen=nonsense"}, "grpc_listen"},
      {{}, {"--metrics_listen=127.0.0.1:http"}, "metrics_listen"},
      {{{"CRM_SHUTDOWN_GRACE", "soon"}}, {}, "CRM_SHUTDOWN_GRACE"},
      {{{"CRM_SHUTDOWN_GRACE", "-5s"}}, {}, "CRM_SHUTDOWN_GRACE"},
      {{{"CRM_LOG_LEVEL", "chatty"}}, {}, "log_level"},
      {{{"CRM_DB_URL", ""}}, {}, "db_url"},
      {{}, {"--no_such_flag=1"}, "--no_such_flag"},
  };
  if (NeedsKeysAndRedis(service())) {
    cases.push_back({{{"CRM_KEK_FILE", ""}}, {}, "kek_file"});
    cases.push_back({{{"CRM_REDIS_ADDR", "redis"}}, {}, "redis_addr"});
  }
  if (service() == "erasure") {
    cases.push_back({{{"CRM_CERTIFICATE_KEY_FILE", ""}}, {}, "certificate_key_file"});
    cases.push_back({{{"CRM_TARGETS", "contacts"}}, {}, "targets"});
    cases.push_back({{{"CRM_TARGETS", "a=127.0.0.1:1,a=127.0.0.1:2"}}, {}, "targets"});
  }
  if (service() == "mailing") {
    cases.push_back({{{"CRM_LINK_KEY_FILE", ""}}, {}, "link_key_file"});
    cases.push_back({{{"CRM_SMTP_TLS", "none"}}, {}, "smtp_tls"});
  }
  if (service() == "contacts" || service() == "consent") {
    cases.push_back({{{"CRM_BLIND_INDEX_KEY_FILE", ""}}, {}, "blind_index_key_file"});
  }
  if (service() == "contacts" || service() == "consent") {
    cases.push_back({{{"CRM_AUDIT_ADDR", "audit"}}, {}, "audit_addr"});
  }
  if (service() == "identity") {
    cases.push_back({{{"CRM_ACCESS_TOKEN_TTL", "2h"}}, {}, "access_token_ttl"});
    cases.push_back({{{"CRM_PASSWORD_REMINDER_DAYS", "14,soon"}}, {}, "password_reminder_days"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.named);
    // The database is unreachable and db_wait long: a setting checked only
    // after connecting would keep the process waiting past kProcessBound.
    std::map<std::string, std::string> env = Env(UnreachableDbUrl());
    env["CRM_DB_WAIT"] = "10m";
    for (const auto& [name, value] : c.env) env[name] = value;
    std::unique_ptr<Subprocess> process = Start(service(), env, c.flags);
    ASSERT_NE(process, nullptr);
    const ExitStatus exit = WaitForFailedStart(*process);
    EXPECT_TRUE(exit.exited_with(2)) << exit << "\n" << process->Output();
    EXPECT_THAT(process->Output(), HasSubstr(c.named));
    EXPECT_FALSE(LogLine(process->Output(), "service.started").has_value());
    ExpectNoSanitizerReport(process->Output());
  }
}

TEST_P(GrpcServiceTest, UnreachableDatabaseFailsPromptlyWithoutShowingThePassword) {
  std::map<std::string, std::string> env = Env(UnreachableDbUrl());
  env["CRM_DB_WAIT"] = "1s";
  std::unique_ptr<Subprocess> process = Start(service(), env);
  ASSERT_NE(process, nullptr);
  const ExitStatus exit = WaitForFailedStart(*process);
  EXPECT_EQ(exit.signal, 0) << exit;
  EXPECT_NE(exit.code, 0) << exit;
  const std::string output = process->Output();
  const std::optional<std::string> failed = LogLine(output, "service.failed");
  ASSERT_TRUE(failed.has_value()) << output;
  EXPECT_THAT(*failed, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(output, Not(HasSubstr(password_))) << output;
  EXPECT_FALSE(LogLine(output, "service.started").has_value());
  ExpectNoSanitizerReport(output);
}

INSTANTIATE_TEST_SUITE_P(Services, GrpcServiceTest,
                         ::testing::Values("identity", "contacts", "consent", "audit", "mailing",
                                           "erasure"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// Behaviour shared by every gRPC binary through libs/service, shown on one.
class ContactsServiceTest : public GrpcServiceTest {};

TEST_P(ContactsServiceTest, EditedAppliedMigrationStopsStartupNamingTheFile) {
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgTestDatabase> db, PgTestDatabase::Create(service()));
  std::unique_ptr<Subprocess> first = StartServing(*db);
  ASSERT_NE(first, nullptr);
  StopCleanly(*first);

  ASSERT_THAT(WriteFile(migrations_dir_ + "/" + probe_file_, MigrationsSql("system_probe_edited")),
              IsOk());
  std::unique_ptr<Subprocess> second = Start(service(), Env(db->conninfo()));
  ASSERT_NE(second, nullptr);
  const ExitStatus exit = WaitForFailedStart(*second);
  EXPECT_EQ(exit.signal, 0) << exit;
  EXPECT_NE(exit.code, 0) << exit;
  const std::optional<std::string> failed = LogLine(second->Output(), "service.failed");
  ASSERT_TRUE(failed.has_value()) << second->Output();
  EXPECT_THAT(*failed, HasSubstr(probe_file_));
  EXPECT_FALSE(LogLine(second->Output(), "service.started").has_value());
  ExpectNoSanitizerReport(second->Output());
}

TEST_P(ContactsServiceTest, ClientsWithoutCertificateOrFromAnotherCaAreRefused) {
  CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgTestDatabase> db, PgTestDatabase::Create(service()));
  std::unique_ptr<Subprocess> process = StartServing(*db);  // The operator is served.
  ASSERT_NE(process, nullptr);

  CRM_ASSERT_OK_AND_ASSIGN(rpc::TlsFiles foreign, g_pki->IssueForeign("operator"));
  EXPECT_THAT(GrpcHealthCheck(Channel(foreign)), StatusIs(absl::StatusCode::kUnavailable));

  // Verifies the server against our CA but presents no certificate.
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(g_pki->ca_file(), 60);
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  auto no_cert = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_),
                                     grpc::experimental::TlsCredentials(options));
  EXPECT_THAT(GrpcHealthCheck(no_cert), StatusIs(absl::StatusCode::kUnavailable));

  // Still serving its own CA's clients after the refusals.
  EXPECT_THAT(GrpcHealthCheck(Channel(g_pki->Files("operator"))), IsOkAndHolds(kHealthServing));
  StopCleanly(*process);
}

INSTANTIATE_TEST_SUITE_P(Shared, ContactsServiceTest, ::testing::Values("contacts"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---------------------------------------------------------------------------
// The gateway.

class GatewayTest : public SystemTestBase {
 protected:
  void SetUp() override {
    SystemTestBase::SetUp();
    https_port_ = FreePort();
    metrics_port_ = FreePort();
    ASSERT_GT(https_port_, 0);
    ASSERT_GT(metrics_port_, 0);
  }

  std::map<std::string, std::string> Env() const {
    const rpc::TlsFiles tls = g_pki->Files("gateway");
    return {
        {"CRM_HTTPS_LISTEN", absl::StrCat("127.0.0.1:", https_port_)},
        {"CRM_METRICS_LISTEN", absl::StrCat("127.0.0.1:", metrics_port_)},
        {"CRM_TLS_CERT", tls.cert_file},
        {"CRM_TLS_KEY", tls.key_file},
        {"CRM_TLS_CA", tls.ca_file},
        {"CRM_LOG_LEVEL", "info"},
    };
  }

  std::unique_ptr<httplib::SSLClient> HttpsClient() const {
    auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", https_port_);
    client->set_ca_cert_path(g_pki->ca_file().c_str());
    client->enable_server_certificate_verification(true);
    return client;
  }

  int https_port_ = 0;
  int metrics_port_ = 0;
};

TEST_F(GatewayTest, ServesHealthzAndJson404OverHttpsAndStopsCleanlyOnSigterm) {
  std::unique_ptr<Subprocess> process = Start("gateway", Env());
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(WaitForLog(*process, "service.started")) << process->Output();
  const std::optional<std::string> started = LogLine(process->Output(), "service.started");
  EXPECT_THAT(*started, HasSubstr(absl::StrCat("\"https_port\":", https_port_)));

  std::unique_ptr<httplib::SSLClient> https = HttpsClient();
  httplib::Result healthz = https->Get("/healthz");
  ASSERT_TRUE(healthz) << httplib::to_string(healthz.error());
  EXPECT_EQ(healthz->status, 200);
  EXPECT_THAT(healthz->body, HasSubstr("SERVING"));

  httplib::Result unknown = https->Get("/no/such/page");
  ASSERT_TRUE(unknown) << httplib::to_string(unknown.error());
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(unknown->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(unknown->body,
            R"({"error":{"code":"NOT_FOUND","message":"path: not found","field":"path"}})");
  // Every answer carries the security headers.
  EXPECT_THAT(unknown->get_header_value("Strict-Transport-Security"), HasSubstr("max-age="));
  EXPECT_THAT(unknown->get_header_value("Content-Security-Policy"),
              HasSubstr("default-src 'self'"));

  httplib::Client metrics("127.0.0.1", metrics_port_);
  httplib::Result scraped = metrics.Get("/metrics");
  ASSERT_TRUE(scraped) << httplib::to_string(scraped.error());
  EXPECT_EQ(scraped->status, 200);
  EXPECT_THAT(scraped->body,
              HasSubstr("crm_gateway_http_requests_total{route=\"/healthz\",status=\"200\"} 1"));
  EXPECT_THAT(scraped->body,
              HasSubstr("crm_gateway_http_requests_total{route=\"other\",status=\"404\"} 1"));

  StopCleanly(*process);
}

// Kubernetes sends SIGTERM and goes on routing to the pod until its readiness
// probe fails: /healthz turns 503 for drain_notice while requests are still
// served; a second signal ends the notice.
TEST_F(GatewayTest, SigtermWithDrainNoticeTurnsHealthz503WhileStillServing) {
  std::map<std::string, std::string> env = Env();
  env["CRM_DRAIN_NOTICE"] = "1h";
  std::unique_ptr<Subprocess> process = Start("gateway", env);
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(WaitForLog(*process, "service.started")) << process->Output();
  std::unique_ptr<httplib::SSLClient> https = HttpsClient();
  httplib::Result healthz = https->Get("/healthz");
  ASSERT_TRUE(healthz) << httplib::to_string(healthz.error());
  EXPECT_EQ(healthz->status, 200);

  ASSERT_THAT(process->Signal(SIGTERM), IsOk());
  EXPECT_TRUE(PollUntil([&] {
    httplib::Result h = HttpsClient()->Get("/healthz");
    return h && h->status == 503 && h->body == R"({"status":"NOT_SERVING"})";
  })) << process->Output();
  EXPECT_TRUE(LogLine(process->Output(), "service.draining").has_value()) << process->Output();
  httplib::Result unknown = HttpsClient()->Get("/no/such/page");
  ASSERT_TRUE(unknown) << httplib::to_string(unknown.error());
  EXPECT_EQ(unknown->status, 404);  // Still answered, by the routes as usual.
  EXPECT_TRUE(process->Running());

  StopCleanly(*process);  // The second SIGTERM.
}

TEST_F(GatewayTest, MissingTlsCertStopsStartupNamingIt) {
  std::map<std::string, std::string> env = Env();
  env.erase("CRM_TLS_CERT");
  std::unique_ptr<Subprocess> process = Start("gateway", env);
  ASSERT_NE(process, nullptr);
  const ExitStatus exit = WaitForFailedStart(*process);
  EXPECT_EQ(exit.signal, 0) << exit;
  EXPECT_NE(exit.code, 0) << exit;
  EXPECT_THAT(process->Output(), HasSubstr("tls_cert"));
  EXPECT_FALSE(LogLine(process->Output(), "service.started").has_value());
  ExpectNoSanitizerReport(process->Output());
}

TEST_F(GatewayTest, UnknownOrMalformedSettingStopsStartupNamingIt) {
  {
    std::map<std::string, std::string> env = Env();
    env["CRM_HTTPS_PROT"] = "8443";
    std::unique_ptr<Subprocess> process = Start("gateway", env);
    ASSERT_NE(process, nullptr);
    const ExitStatus exit = WaitForFailedStart(*process);
    EXPECT_TRUE(exit.exited_with(2)) << exit << "\n" << process->Output();
    EXPECT_THAT(process->Output(), HasSubstr("CRM_HTTPS_PROT"));
    ExpectNoSanitizerReport(process->Output());
  }
  {
    std::map<std::string, std::string> env = Env();
    env["CRM_HTTPS_LISTEN"] = "nonsense";
    std::unique_ptr<Subprocess> process = Start("gateway", env);
    ASSERT_NE(process, nullptr);
    const ExitStatus exit = WaitForFailedStart(*process);
    EXPECT_TRUE(exit.exited_with(2)) << exit << "\n" << process->Output();
    EXPECT_THAT(process->Output(), HasSubstr("https_listen"));
    EXPECT_FALSE(LogLine(process->Output(), "service.started").has_value());
    ExpectNoSanitizerReport(process->Output());
  }
}

}  // namespace
}  // namespace crm::system_test
