// Parsing of the ServerRunner and channel settings.
#include <vector>

#include "libs/rpc/channel.h"
#include "libs/rpc/server.h"
#include "libs/testing/status_matchers.h"

namespace crm::rpc {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

absl::Status Parse(crm::config::Settings& s, std::vector<const char*> args,
                   std::vector<const char*> env = {}) {
  args.insert(args.begin(), "prog");
  env.push_back(nullptr);
  return s.Parse(static_cast<int>(args.size()), args.data(), env.data());
}

TEST(ServerSettingsTest, DefaultsAreDocumentedValues) {
  ServerConfig c;
  EXPECT_EQ(c.listen, "127.0.0.1:0");
  EXPECT_EQ(c.metrics_listen, "127.0.0.1:0");
  EXPECT_EQ(c.health_listen, "");
  EXPECT_EQ(c.max_message_bytes, 4 * 1024 * 1024);
  EXPECT_EQ(c.shutdown_grace, absl::Seconds(10));
  EXPECT_EQ(c.drain_notice, absl::ZeroDuration());
  EXPECT_EQ(c.max_connection_age, absl::Minutes(5));
  EXPECT_EQ(c.tls.refresh_interval, absl::Seconds(60));
}

TEST(ServerSettingsTest, FlagsAndEnvironmentFillTheConfig) {
  ServerConfig c;
  crm::config::Settings s("crm-test");
  AddServerSettings(s, &c);
  ASSERT_THAT(
      Parse(s,
            {"--grpc_listen=0.0.0.0:50054", "--tls_cert=/p/audit.crt", "--tls_key=/p/audit.key",
             "--shutdown_grace=3s", "--max_message_bytes=1048576", "--metrics_listen="},
            {"CRM_TLS_CA=/p/ca.crt", "CRM_TLS_REFRESH=5m", "CRM_DRAIN_NOTICE=2s",
             "CRM_HEALTH_LISTEN=0.0.0.0:8081", "CRM_MAX_CONNECTION_AGE=30m"}),
      IsOk());
  EXPECT_EQ(c.listen, "0.0.0.0:50054");
  EXPECT_EQ(c.tls.cert_file, "/p/audit.crt");
  EXPECT_EQ(c.tls.key_file, "/p/audit.key");
  EXPECT_EQ(c.tls.ca_file, "/p/ca.crt");
  EXPECT_EQ(c.tls.refresh_interval, absl::Minutes(5));
  EXPECT_EQ(c.shutdown_grace, absl::Seconds(3));
  EXPECT_EQ(c.drain_notice, absl::Seconds(2));
  EXPECT_EQ(c.max_message_bytes, 1048576);
  EXPECT_EQ(c.metrics_listen, "");
  EXPECT_EQ(c.health_listen, "0.0.0.0:8081");
  EXPECT_EQ(c.max_connection_age, absl::Minutes(30));
}

TEST(ServerSettingsTest, MalformedValuesNameTheSetting) {
  ServerConfig c;
  crm::config::Settings s("crm-test");
  AddServerSettings(s, &c);
  EXPECT_THAT(Parse(s, {"--max_message_bytes=12"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_message_bytes")));
  EXPECT_THAT(Parse(s, {"--shutdown_grace=soon"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("shutdown_grace")));
}

TEST(ServerRunnerConfigTest, StartRefusesMissingTlsFilesNamingTheSetting) {
  ServerConfig c;
  c.handle_signals = false;
  c.metrics_listen = "";
  ServerRunner runner(c, AccessPolicy());
  EXPECT_THAT(runner.Start(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_cert")));
  c.tls = {"/nonexistent/a.crt", "/nonexistent/a.key", "/nonexistent/ca.crt"};
  ServerRunner runner2(c, AccessPolicy());
  EXPECT_THAT(runner2.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("tls_cert")));
}

TEST(ServerRunnerConfigTest, StartRefusesMalformedListenAddress) {
  ServerConfig c;
  c.listen = "nocolon";
  ServerRunner runner(c, AccessPolicy());
  EXPECT_THAT(runner.Start(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("grpc_listen")));
}

TEST(ServerRunnerConfigTest, StartRefusesMalformedHealthListenNamingIt) {
  for (const char* bad : {"nocolon", ":8081", "127.0.0.1:"}) {
    ServerConfig c;
    c.metrics_listen = "";
    c.health_listen = bad;
    ServerRunner runner(c, AccessPolicy());
    EXPECT_THAT(runner.Start(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("health_listen")))
        << bad;
  }
}

TEST(ServerRunnerConfigTest, StartRefusesAMaxConnectionAgeOutOfRange) {
  for (absl::Duration bad : {absl::Milliseconds(500), absl::Hours(24 * 30), -absl::Seconds(1)}) {
    ServerConfig c;
    c.metrics_listen = "";
    c.max_connection_age = bad;
    ServerRunner runner(c, AccessPolicy());
    EXPECT_THAT(runner.Start(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_connection_age")))
        << bad;
  }
}

TEST(ChannelSettingsTest, PrefixedSettings) {
  ChannelConfig c;
  crm::config::Settings s("crm-test");
  AddChannelSettings(s, "audit", &c);
  ASSERT_THAT(Parse(s, {"--audit_target=localhost:50054", "--audit_deadline=250ms",
                        "--audit_identity=audit"}),
              IsOk());
  EXPECT_EQ(c.target, "localhost:50054");
  EXPECT_EQ(c.default_deadline, absl::Milliseconds(250));
  EXPECT_EQ(c.expected_server, "audit");
}

TEST(ChannelSettingsTest, ServiceConfigBalancesAndRetries) {
  ChannelConfig c;
  EXPECT_EQ(ServiceConfigJson(c),
            R"({"loadBalancingConfig":[{"round_robin":{}}],)"
            R"("methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":4,)"
            R"("initialBackoff":"0.100s","maxBackoff":"2.000s","backoffMultiplier":2.000,)"
            R"("retryableStatusCodes":["UNAVAILABLE"]}}]})");
  c.max_attempts = 1;
  EXPECT_EQ(ServiceConfigJson(c),
            R"({"loadBalancingConfig":[{"round_robin":{}}],"methodConfig":[{"name":[{}]}]})");
}

TEST(ChannelSettingsTest, MakeChannelValidates) {
  ChannelConfig c;
  EXPECT_THAT(MakeChannel(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("target")));
  c.target = "localhost:1";
  c.max_attempts = 9;
  EXPECT_THAT(MakeChannel(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_attempts")));
  c.max_attempts = 2;
  EXPECT_THAT(MakeChannel(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_cert")));
}

}  // namespace
}  // namespace crm::rpc
