#include "libs/testing/private_redis.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::testing {
namespace {

TEST(PrivateRedisServerTest, StartsStopsAndRestartsOnTheSamePort) {
  CRM_ASSERT_OK_AND_ASSIGN(auto server, PrivateRedisServer::Start("pw"));
  EXPECT_TRUE(server->running());
  const int port = server->port();
  EXPECT_THAT(server->Pause(), IsOk());
  EXPECT_THAT(server->Resume(), IsOk());
  EXPECT_THAT(server->Kill(), IsOk());
  EXPECT_FALSE(server->running());
  EXPECT_THAT(server->Pause(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(server->Restart(), IsOk());
  EXPECT_TRUE(server->running());
  EXPECT_EQ(server->port(), port);
  EXPECT_THAT(server->Stop(), IsOk());
  EXPECT_FALSE(server->running());
}

}  // namespace
}  // namespace crm::testing
