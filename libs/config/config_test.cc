#include "libs/config/config.h"

#include <vector>

#include "libs/testing/status_matchers.h"

namespace crm::config {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

struct Cfg {
  std::string db_url = "postgresql:///crm";
  int grpc_port = 50051;
  bool debug = false;
  absl::Duration grace = absl::Seconds(10);
  std::vector<std::string> peers = {"a"};
};

class SettingsTest : public ::testing::Test {
 protected:
  SettingsTest() : s_("crm-test") {
    s_.Add("db_url", &cfg_.db_url, "PostgreSQL URL");
    s_.Add("grpc_port", &cfg_.grpc_port, "gRPC port", 0, 65535);
    s_.Add("debug", &cfg_.debug, "debug logging");
    s_.Add("grace", &cfg_.grace, "shutdown grace");
    s_.Add("peers", &cfg_.peers, "peer list");
  }
  absl::Status Parse(std::vector<const char*> args, std::vector<const char*> env) {
    args.insert(args.begin(), "crm-test");
    env.push_back(nullptr);
    return s_.Parse(static_cast<int>(args.size()), args.data(), env.data());
  }
  Cfg cfg_;
  Settings s_;
};

TEST_F(SettingsTest, DefaultsStayWhenNothingIsGiven) {
  EXPECT_THAT(Parse({}, {"PATH=/bin", "HOME=/root"}), IsOk());
  EXPECT_EQ(cfg_.grpc_port, 50051);
  EXPECT_EQ(cfg_.db_url, "postgresql:///crm");
}

TEST_F(SettingsTest, EnvironmentThenFlagsWithFlagsWinning) {
  EXPECT_THAT(Parse({"--grpc-port=7000", "--debug", "--peers=x, y"},
                    {"CRM_GRPC_PORT=6000", "CRM_DB_URL=postgresql://h/db", "CRM_GRACE=250ms"}),
              IsOk());
  EXPECT_EQ(cfg_.grpc_port, 7000);
  EXPECT_EQ(cfg_.db_url, "postgresql://h/db");
  EXPECT_TRUE(cfg_.debug);
  EXPECT_EQ(cfg_.grace, absl::Milliseconds(250));
  EXPECT_EQ(cfg_.peers, (std::vector<std::string>{"x", "y"}));
}

TEST_F(SettingsTest, UnknownFlagIsNamed) {
  EXPECT_THAT(Parse({"--grpc_prot=1"}, {}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                     HasSubstr("--grpc_prot: unknown setting")));
}

TEST_F(SettingsTest, UnknownCrmVariableIsNamedButOthersIgnored) {
  EXPECT_THAT(
      Parse({}, {"CRMTEST_ENV_DIR=/tmp", "CRM_GRPC_PROT=1"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRM_GRPC_PROT: unknown setting")));
}

TEST_F(SettingsTest, MalformedValuesAreNamed) {
  EXPECT_THAT(
      Parse({"--grpc_port=abc"}, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--grpc_port: must be an integer")));
  EXPECT_THAT(Parse({"--grpc_port=70000"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("between 0 and 65535")));
  EXPECT_THAT(Parse({}, {"CRM_DEBUG=maybe"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRM_DEBUG")));
  EXPECT_THAT(Parse({"--grace=-5s"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--grace")));
  EXPECT_THAT(Parse({"--grace=soon"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--grace")));
  EXPECT_THAT(Parse({"--db_url"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  EXPECT_THAT(Parse({"positional"}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected argument")));
}

TEST_F(SettingsTest, HelpListsSettingsWithEnvNamesAndDefaults) {
  EXPECT_THAT(Parse({"--help"}, {}), IsOk());
  EXPECT_TRUE(s_.help_requested());
  const std::string usage = s_.Usage();
  EXPECT_THAT(usage, HasSubstr("--grpc_port (CRM_GRPC_PORT, default \"50051\")"));
  EXPECT_THAT(usage, HasSubstr("--grace (CRM_GRACE, default \"10s\")"));
}

TEST(EnvNameTest, UpperCasesWithPrefix) { EXPECT_EQ(Settings::EnvName("tls_ca"), "CRM_TLS_CA"); }

}  // namespace
}  // namespace crm::config

namespace crm::config {
namespace {

TEST(ParseHostPortTest, SplitsHostAndPort) {
  std::string host;
  int port = -1;
  EXPECT_TRUE(ParseHostPort("grpc_listen", "0.0.0.0:50052", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 50052);
  EXPECT_TRUE(ParseHostPort("grpc_listen", "[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "[::1]");
  EXPECT_EQ(port, 0);
}

TEST(ParseHostPortTest, RejectsMalformedNamingTheSetting) {
  std::string host;
  int port;
  for (const char* bad : {"", "nonsense", ":80", "host:", "host:http", "host:65536", "host:-1"}) {
    absl::Status s = ParseHostPort("https_listen", bad, &host, &port);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("https_listen")) << bad;
  }
}

TEST(ParseNamedAddressesTest, KeepsTheOrderOfTheEntries) {
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> parsed =
      ParseNamedAddresses("services", "identity=127.0.0.1:50051, contacts=contacts.crm.svc:50052");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0], std::make_pair(std::string("identity"), std::string("127.0.0.1:50051")));
  EXPECT_EQ((*parsed)[1].first, "contacts");
  EXPECT_EQ((*parsed)[1].second, "contacts.crm.svc:50052");
}

TEST(ParseNamedAddressesTest, RejectsMalformedNamingTheSetting) {
  for (const char* bad :
       {"", ",", "identity", "=host:1", "identity=host", "a=h:1,a=h:2", "a=h:1,b=h:http"}) {
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> parsed =
        ParseNamedAddresses("services", bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), ::testing::HasSubstr("services")) << bad;
  }
}

}  // namespace
}  // namespace crm::config
