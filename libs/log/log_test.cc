#include "libs/log/log.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace crm::log {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetSink([this](absl::string_view line) { lines_.emplace_back(line); });
    SetService("testsvc");
    SetMinLevel(Level::kDebug);
  }
  void TearDown() override {
    SetSink(nullptr);
    SetMinLevel(Level::kInfo);
  }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, WritesOneJsonObjectPerEvent) {
  Info("rpc.done", {{"method", Id("/crm.x.v1.X/Get")},
                    {"code", Literal("OK")},
                    {"ms", absl::Milliseconds(3)},
                    {"n", 42},
                    {"ok", true}});
  ASSERT_EQ(lines_.size(), 1u);
  const std::string& l = lines_[0];
  EXPECT_EQ(l.front(), '{');
  EXPECT_EQ(l.back(), '}');
  EXPECT_THAT(l, HasSubstr("\"level\":\"info\""));
  EXPECT_THAT(l, HasSubstr("\"svc\":\"testsvc\""));
  EXPECT_THAT(l, HasSubstr("\"event\":\"rpc.done\""));
  EXPECT_THAT(l, HasSubstr("\"method\":\"/crm.x.v1.X/Get\""));
  EXPECT_THAT(l, HasSubstr("\"ms\":3.000"));
  EXPECT_THAT(l, HasSubstr("\"n\":42"));
  EXPECT_THAT(l, HasSubstr("\"ok\":true"));
}

TEST_F(LogTest, IdRefusesValuesThatLookLikePersonalData) {
  const std::string email = "anna.kowalska@example.com";
  const std::string phone = "+48123456789";
  const std::string name = "Anna Kowalska";
  Warn("lookup", {{"a", Id(email)}, {"b", Id(phone)}, {"c", Id(name)}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], Not(HasSubstr("kowalska")));
  EXPECT_THAT(lines_[0], Not(HasSubstr("48123456789")));
  EXPECT_THAT(lines_[0], Not(HasSubstr("Kowalska")));
  EXPECT_THAT(lines_[0], HasSubstr("[not-an-id]"));
}

TEST_F(LogTest, StatusesAndEscapesAreValidJson) {
  Error("db.failed", {{"status", absl::UnavailableError("pool \"main\" exhausted\n")}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr("\"status\":\"UNAVAILABLE: pool \\\"main\\\" exhausted\\n\""));
}

TEST_F(LogTest, BelowMinLevelIsDropped) {
  SetMinLevel(Level::kWarn);
  Info("quiet");
  Debug("quieter");
  Warn("loud");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr("\"event\":\"loud\""));
}

TEST(LogLevelTest, ParsesNames) {
  Level l = Level::kInfo;
  EXPECT_TRUE(ParseLevel("debug", &l));
  EXPECT_EQ(l, Level::kDebug);
  EXPECT_TRUE(ParseLevel("error", &l));
  EXPECT_EQ(l, Level::kError);
  EXPECT_FALSE(ParseLevel("verbose", &l));
}

}  // namespace
}  // namespace crm::log

namespace crm::log {
namespace {

TEST(LogConfigureTest, RejectsUnknownLevelNamingTheSetting) {
  absl::Status s = Configure("svc", "loud");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("log_level"));
  EXPECT_TRUE(Configure("svc", "info").ok());
}

}  // namespace
}  // namespace crm::log
