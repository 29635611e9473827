#include "libs/testing/loopback.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "libs/testing/status_matchers.h"

namespace crm::testing {
namespace {

// Each port is new, below the ephemeral range, and claimed: its lock file
// (loopback.h) cannot be locked by anyone else while this process lives.
TEST(PickFreePortTest, PortsAreBelowTheEphemeralRangeAndClaimed) {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  ASSERT_TRUE(range >> low);
  ASSERT_GT(low, 11000) << "this test assumes the default ephemeral range";
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/crm-test-ports-", ::getuid());
  std::set<int> seen;
  for (int i = 0; i < 20; ++i) {
    CRM_ASSERT_OK_AND_ASSIGN(int port, PickFreePort());
    EXPECT_GE(port, 10000);
    EXPECT_LT(port, low);
    EXPECT_TRUE(seen.insert(port).second) << port << " given twice";
    const int fd = ::open(absl::StrCat(dir, "/", port).c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << port;
    EXPECT_EQ(::flock(fd, LOCK_EX | LOCK_NB), -1) << port << " is not claimed";
    EXPECT_EQ(errno, EWOULDBLOCK);
    ::close(fd);
  }
}

}  // namespace
}  // namespace crm::testing
