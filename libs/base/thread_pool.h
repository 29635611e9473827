// ThreadPool: a fixed set of threads running queued tasks in the order
// queued. For work that may block (PostgreSQL, a blocking Redis call) handed
// off by threads that must not (gRPC callback handlers, redis::Client's
// async thread).
//
//   base::ThreadPool pool(4);
//   pool.Run([=] { ... });
//
// The destructor runs every task already queued, then joins the threads.
// Thread-safe; Run must not be called once the destructor has begun.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace crm::base {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Run(std::function<void()> task);

 private:
  void Work();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);  // oldest first
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace crm::base
