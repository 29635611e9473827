#include "libs/base/thread_pool.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace crm::base {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskOnItsOwnThreads) {
  std::atomic<int> ran{0};
  absl::Mutex mu;
  std::set<std::thread::id> threads;
  {
    ThreadPool pool(3);
    for (int i = 0; i < 1000; ++i) {
      pool.Run([&] {
        absl::MutexLock l(&mu);
        threads.insert(std::this_thread::get_id());
        ++ran;
      });
    }
  }  // the destructor runs what is queued
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
  EXPECT_LE(threads.size(), 3u);
}

TEST(ThreadPoolTest, ABlockedTaskDoesNotHoldUpTheOthers) {
  ThreadPool pool(2);
  absl::Notification release, other_ran;
  pool.Run([&] { release.WaitForNotification(); });
  pool.Run([&] { other_ran.Notify(); });
  EXPECT_TRUE(other_ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  release.Notify();
}

TEST(ThreadPoolTest, OneThreadRunsTasksInTheOrderQueued) {
  std::vector<int> order;
  {
    ThreadPool pool(1);
    for (int i = 0; i < 100; ++i) pool.Run([&order, i] { order.push_back(i); });
  }
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
}

}  // namespace
}  // namespace crm::base
