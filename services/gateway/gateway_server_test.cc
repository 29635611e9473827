// The gateway's HTTPS server in-process, on port 0 with real TLS:
//  - the certificate files re-read while serving (through a Kubernetes-style
//    symlink swap), and the certificate expiry gauge
//  - X-Forwarded-For from trusted proxies in the per-client limit
//  - /healthz while draining
#include "services/gateway/gateway_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/status_macros.h"
#include "libs/log/log.h"
#include "libs/pki/pki.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/loopback.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/subprocess.h"

namespace crm::gateway {
namespace {

using ::crm::rpc::testing::TestPki;
using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::PollUntil;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// The serial number (hex) of the first certificate of `pem`.
std::string SerialOfPem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return "";
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  X509_free(cert);
  return out;
}

// A new TLS connection to 127.0.0.1:port; the serial number (hex) of the
// certificate the server presented.
absl::StatusOr<std::string> ServedSerial(int port) {
  CRM_ASSIGN_OR_RETURN(const int fd, crm::testing::ConnectLoopback(port));
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  absl::StatusOr<std::string> serial = absl::UnavailableError("handshake failed");
  if (SSL_connect(ssl) == 1) {
    X509* peer = SSL_get1_peer_certificate(ssl);
    if (peer != nullptr) {
      BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(peer), nullptr);
      char* hex = BN_bn2hex(bn);
      serial = std::string(hex);
      OPENSSL_free(hex);
      BN_free(bn);
      X509_free(peer);
    }
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  return serial;
}

class GatewayServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(TestPki pki, TestPki::Create({}));
    pki_ = std::make_unique<TestPki>(std::move(pki));
    crm::log::SetSink([this](absl::string_view line) {
      absl::MutexLock lock(&log_mu_);
      log_.push_back(std::string(line));
    });
  }
  void TearDown() override {
    server_.reset();
    crm::log::SetSink(nullptr);
  }

  // A new certificate of "gateway" valid until `not_after`.
  pki::CertAndKey Issue(absl::Time not_after = absl::Now() + absl::Hours(24)) {
    pki::LeafOptions leaf;
    leaf.name = "gateway";
    leaf.not_before = absl::Now() - absl::Hours(1);
    leaf.not_after = not_after;
    absl::StatusOr<pki::CertAndKey> pair = pki_->Issue(leaf);
    EXPECT_THAT(pair.status(), IsOk());
    return pair.ok() ? *pair : pki::CertAndKey{};
  }

  // Publishes a certificate and key as a Kubernetes Secret volume does:
  // tls.crt and tls.key are symlinks into ..data, itself a symlink to a
  // fresh directory, replaced in one rename.
  void Publish(const std::string& cert_pem, const std::string& key_pem) {
    namespace fs = std::filesystem;
    const fs::path volume = fs::path(pki_->dir()) / "volume";
    const fs::path version = volume / absl::StrCat("..v", ++versions_);
    fs::create_directories(version);
    std::ofstream(version / "tls.crt") << cert_pem;
    std::ofstream(version / "tls.key") << key_pem;
    fs::create_directory_symlink(version.filename(), volume / "..data_tmp");
    fs::rename(volume / "..data_tmp", volume / "..data");
    if (!fs::is_symlink(volume / "tls.crt")) {
      fs::create_symlink("..data/tls.crt", volume / "tls.crt");
      fs::create_symlink("..data/tls.key", volume / "tls.key");
    }
  }

  GatewayConfig Config() const {
    GatewayConfig c;
    c.https_listen = "127.0.0.1:0";
    c.metrics_listen = "";  // civetweb takes up to 2 s to stop: only where tested.
    c.tls_cert = pki_->dir() + "/volume/tls.crt";
    c.tls_key = pki_->dir() + "/volume/tls.key";
    c.tls_ca = pki_->ca_file();
    c.tls_refresh = absl::Seconds(1);
    return c;
  }

  GatewayServer* Start(const GatewayConfig& config) {
    // The per-client limit's sliding window on a clock that stands still: a
    // fixed window's end during a test would let one more request through.
    server_ = std::make_unique<GatewayServer>(config, clock_);
    absl::Status s = server_->Start();
    EXPECT_THAT(s, IsOk());
    return s.ok() ? server_.get() : nullptr;
  }

  std::unique_ptr<httplib::SSLClient> Client() const {
    auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port());
    client->set_ca_cert_path(pki_->ca_file().c_str());
    client->enable_server_certificate_verification(true);
    return client;
  }

  // Number of log lines with event `event`.
  int Logged(absl::string_view event) {
    absl::MutexLock lock(&log_mu_);
    int n = 0;
    for (const std::string& line : log_) {
      if (absl::StrContains(line, absl::StrCat("\"event\":\"", event, "\""))) ++n;
    }
    return n;
  }
  std::string AllLogs() {
    absl::MutexLock lock(&log_mu_);
    return absl::StrJoin(log_, "\n");
  }

  std::unique_ptr<TestPki> pki_;
  base::FakeClock clock_;
  std::unique_ptr<GatewayServer> server_;
  int versions_ = 0;
  absl::Mutex log_mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(log_mu_);
};

TEST_F(GatewayServerTest, ServesARotatedCertificateWithoutRestartAndKeepsItOverABadPair) {
  const pki::CertAndKey a = Issue();
  Publish(a.cert_pem, a.key_pem);
  GatewayServer* server = Start(Config());
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(ServedSerial(server->port()), IsOkAndHolds(SerialOfPem(a.cert_pem)));
  EXPECT_EQ(server->certificate_serial(), SerialOfPem(a.cert_pem));
  httplib::Result healthz = Client()->Get("/healthz");
  ASSERT_TRUE(healthz) << httplib::to_string(healthz.error());
  EXPECT_EQ(healthz->status, 200);

  // cert-manager renews: new connections get B within a refresh.
  const pki::CertAndKey b = Issue();
  ASSERT_NE(SerialOfPem(a.cert_pem), SerialOfPem(b.cert_pem));
  Publish(b.cert_pem, b.key_pem);
  EXPECT_TRUE(PollUntil([&] {
    absl::StatusOr<std::string> served = ServedSerial(server->port());
    return served.ok() && *served == SerialOfPem(b.cert_pem);
  }));
  EXPECT_EQ(Logged("tls.reloaded"), 1);
  healthz = Client()->Get("/healthz");  // B verifies against the CA too.
  ASSERT_TRUE(healthz) << httplib::to_string(healthz.error());
  EXPECT_EQ(healthz->status, 200);

  // A key that does not match the certificate: B stays.
  const pki::CertAndKey c = Issue();
  Publish(b.cert_pem, c.key_pem);
  EXPECT_TRUE(PollUntil([&] { return Logged("tls.reload_failed") == 1; }));
  EXPECT_THAT(ServedSerial(server->port()), IsOkAndHolds(SerialOfPem(b.cert_pem)));
  // A certificate that does not parse, the same.
  Publish("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n", b.key_pem);
  EXPECT_TRUE(PollUntil([&] { return Logged("tls.reload_failed") == 2; }));
  EXPECT_THAT(ServedSerial(server->port()), IsOkAndHolds(SerialOfPem(b.cert_pem)));
  EXPECT_EQ(server->certificate_serial(), SerialOfPem(b.cert_pem));
  // The log says why, never what the files hold.
  const std::string logs = AllLogs();
  EXPECT_THAT(logs, HasSubstr("does not match"));
  EXPECT_THAT(logs, Not(HasSubstr("PRIVATE KEY")));
  EXPECT_THAT(logs, Not(HasSubstr("broken")));
  // A bad state is logged once, not at every refresh.
  EXPECT_EQ(Logged("tls.reload_failed"), 2);

  // A good pair again is taken.
  Publish(c.cert_pem, c.key_pem);
  EXPECT_TRUE(PollUntil([&] {
    absl::StatusOr<std::string> served = ServedSerial(server->port());
    return served.ok() && *served == SerialOfPem(c.cert_pem);
  }));
  EXPECT_EQ(Logged("tls.reloaded"), 2);
}

TEST_F(GatewayServerTest, StartRefusesAKeyOfAnotherCertificateNamingIt) {
  const pki::CertAndKey a = Issue();
  const pki::CertAndKey b = Issue();
  Publish(a.cert_pem, b.key_pem);
  GatewayServer server(Config());
  EXPECT_THAT(server.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("tls_key")));
}

TEST_F(GatewayServerTest, TheLimitCountsTheForwardedClientOfATrustedProxyOnly) {
  const pki::CertAndKey a = Issue();
  Publish(a.cert_pem, a.key_pem);
  GatewayConfig config = Config();
  config.rate_limit_per_minute = 2;
  config.trusted_proxies = {"127.0.0.0/8", "fd00::/8"};  // The test's connections come from here.
  ASSERT_NE(Start(config), nullptr);
  auto post = [&](const std::string& forwarded_for) {
    httplib::Headers headers;
    if (!forwarded_for.empty()) headers.emplace("X-Forwarded-For", forwarded_for);
    httplib::Result r = Client()->Post("/api/v1/crm.x.v1.X/Y", headers, "{}", "application/json");
    EXPECT_TRUE(r) << httplib::to_string(r.error());
    return r ? r->status : -1;
  };
  // Two clients behind the same proxy each have their own limit.
  EXPECT_NE(post("198.51.100.1"), 429);
  EXPECT_NE(post("198.51.100.1"), 429);
  EXPECT_EQ(post("198.51.100.1"), 429);
  EXPECT_NE(post("198.51.100.2"), 429);
  // A client cannot escape by putting another address in front: the entry
  // our proxy appended counts.
  EXPECT_EQ(post("203.0.113.9, 198.51.100.1"), 429);
  // Without a usable header, the proxy's own address is the client.
  EXPECT_NE(post(""), 429);
  EXPECT_NE(post("garbage"), 429);
  EXPECT_EQ(post("also garbage"), 429);
}

TEST_F(GatewayServerTest, AnUntrustedPeersForwardedForIsIgnored) {
  const pki::CertAndKey a = Issue();
  Publish(a.cert_pem, a.key_pem);
  GatewayConfig config = Config();
  config.rate_limit_per_minute = 2;
  config.trusted_proxies = {"10.0.0.0/8"};  // Not the test's 127.0.0.1.
  ASSERT_NE(Start(config), nullptr);
  int statuses[3];
  const char* forwarded[3] = {"198.51.100.1", "198.51.100.2", "198.51.100.3"};
  for (int i = 0; i < 3; ++i) {
    httplib::Headers headers = {{"X-Forwarded-For", forwarded[i]}};
    httplib::Result r = Client()->Post("/api/v1/crm.x.v1.X/Y", headers, "{}", "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    statuses[i] = r->status;
  }
  EXPECT_NE(statuses[0], 429);
  EXPECT_NE(statuses[1], 429);
  EXPECT_EQ(statuses[2], 429);  // All three were 127.0.0.1.
}

TEST_F(GatewayServerTest, ABadTrustedProxiesSettingIsRefusedNamingIt) {
  GatewayConfig config = Config();
  config.trusted_proxies = {"10.0.0.0/33"};
  EXPECT_THAT(ValidateGatewayConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trusted_proxies")));
  GatewayServer server(config);
  EXPECT_THAT(server.Start(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trusted_proxies")));
  config.trusted_proxies = {};
  config.tls_refresh = absl::Milliseconds(500);
  EXPECT_THAT(ValidateGatewayConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_refresh")));
}

TEST_F(GatewayServerTest, DrainingTurnsHealthzNotServingWhileRequestsAreServed) {
  const pki::CertAndKey a = Issue();
  Publish(a.cert_pem, a.key_pem);
  const std::string static_dir = pki_->dir() + "/static";
  std::filesystem::create_directories(static_dir + "/console");
  std::ofstream(static_dir + "/console/index.html") << "<!doctype html><title>console</title>";
  GatewayConfig config = Config();
  config.static_dir = static_dir;
  GatewayServer* server = Start(config);
  ASSERT_NE(server, nullptr);
  auto client = Client();
  httplib::Result healthz = client->Get("/healthz");
  ASSERT_TRUE(healthz) << httplib::to_string(healthz.error());
  EXPECT_EQ(healthz->status, 200);
  EXPECT_EQ(healthz->body, R"({"status":"SERVING"})");

  server->Drain();
  healthz = client->Get("/healthz");
  ASSERT_TRUE(healthz) << httplib::to_string(healthz.error());
  EXPECT_EQ(healthz->status, 503);
  EXPECT_EQ(healthz->body, R"({"status":"NOT_SERVING"})");
  EXPECT_EQ(healthz->get_header_value("Content-Type"), "application/json");
  httplib::Result page = Client()->Get("/console");  // A new connection too.
  ASSERT_TRUE(page) << httplib::to_string(page.error());
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("console"));
  server->Stop();
  EXPECT_FALSE(Client()->Get("/healthz"));
}

TEST_F(GatewayServerTest, MetricsReportTheCertificateExpiryOfTheFileNow) {
  const absl::Time a_expiry = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 86400);
  const pki::CertAndKey a = Issue(a_expiry);
  Publish(a.cert_pem, a.key_pem);
  GatewayConfig config = Config();
  config.metrics_listen = "127.0.0.1:0";
  GatewayServer* server = Start(config);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->metrics_port(), 0);
  auto scrape = [&] {
    httplib::Client metrics("127.0.0.1", server->metrics_port());
    httplib::Result r = metrics.Get("/metrics");
    return r && r->status == 200 ? r->body : std::string();
  };
  auto line = [](absl::Time t) {
    return absl::StrCat("crm_tls_certificate_expiry_timestamp_seconds{file=\"server\"} ",
                        absl::ToUnixSeconds(t), "\n");
  };
  EXPECT_THAT(scrape(), HasSubstr(line(a_expiry)));
  // At once after the files change (read at each scrape, not at refresh).
  const absl::Time b_expiry = a_expiry + absl::Hours(24 * 60);
  const pki::CertAndKey b = Issue(b_expiry);
  Publish(b.cert_pem, b.key_pem);
  EXPECT_THAT(scrape(), HasSubstr(line(b_expiry)));
  std::filesystem::remove(std::filesystem::path(pki_->dir()) / "volume" / "tls.crt");
  EXPECT_THAT(scrape(),
              HasSubstr("crm_tls_certificate_expiry_timestamp_seconds{file=\"server\"} 0\n"));
}

}  // namespace
}  // namespace crm::gateway
