// Latency at a given load for end-to-end benchmarks: the peak rate of a
// call with N closed-loop callers, then the call (and a baseline) paced at
// half of it, each latency measured from the call's scheduled start, so a
// stall delays every call scheduled behind it (no coordinated omission).
//
//   crm::testing::MeasureAtHalfPeak(state, GetPerson, SelectPersonRow,
//                                   {.population = n, .threads = 8,
//                                    .peak_phase = absl::Seconds(3),
//                                    .duration = absl::Seconds(10)});
//
// sets the counters peak_per_s, rate_per_s, p50_ms, p99_ms, p999_ms,
// base_p50_ms, base_p99_ms and the iteration's manual time (register with
// Iterations(1)->UseManualTime()). Each call of `.more` (further baselines,
// e.g. {"transport", the mTLS Echo on the same server}) is paced at the same
// rate too, after the baseline: <name>_p50_ms, <name>_p99_ms. Calls get
// random indexes in [0, population). Header-only, for crm_cc_bench targets.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/base/status_macros.h"

namespace crm::testing {

// One call about item `n` (a subject, a person, ...).
using IndexedCall = std::function<absl::Status(int64_t n)>;

// The value at quantile q of `sorted`.
inline double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size()));
  return sorted[std::min(i, sorted.size() - 1)];
}

// Calls per second of `threads` closed-loop callers over `phase`.
inline absl::StatusOr<double> PeakRate(const IndexedCall& call, int64_t population, int threads,
                                       absl::Duration phase) {
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  absl::Status failed;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      std::uniform_int_distribution<int64_t> pick(0, population - 1);
      while (!stop.load()) {
        if (absl::Status s = call(pick(rng)); !s.ok()) {
          std::lock_guard<std::mutex> l(mu);
          failed = s;
          stop = true;
          return;
        }
        done.fetch_add(1);
      }
    });
  }
  absl::SleepFor(phase);
  const int64_t count = done.load();
  stop = true;
  for (std::thread& t : pool) t.join();
  CRM_RETURN_IF_ERROR(failed);
  return static_cast<double>(count) / absl::ToDoubleSeconds(phase);
}

// `call` paced at `rate` per second for `duration` by `threads` callers;
// each call's latency from its scheduled start, in ms, sorted.
inline absl::StatusOr<std::vector<double>> PacedLatencies(const IndexedCall& call,
                                                          int64_t population, double rate,
                                                          int threads, absl::Duration duration) {
  const int64_t total = static_cast<int64_t>(rate * absl::ToDoubleSeconds(duration));
  std::vector<double> latency(total, 0);
  std::atomic<int64_t> next{0};
  absl::Status failed;
  std::mutex mu;
  const absl::Time start = absl::Now() + absl::Milliseconds(10);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      std::uniform_int_distribution<int64_t> pick(0, population - 1);
      for (int64_t i; (i = next.fetch_add(1)) < total;) {
        const absl::Time due = start + absl::Seconds(static_cast<double>(i) / rate);
        absl::SleepFor(due - absl::Now());
        if (absl::Status s = call(pick(rng)); !s.ok()) {
          std::lock_guard<std::mutex> l(mu);
          failed = s;
          return;
        }
        latency[i] = absl::ToDoubleMilliseconds(absl::Now() - due);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  CRM_RETURN_IF_ERROR(failed);
  std::sort(latency.begin(), latency.end());
  return latency;
}

struct HalfPeakOptions {
  int64_t population = 1;
  int threads = 8;
  absl::Duration peak_phase = absl::Seconds(3);
  absl::Duration duration = absl::Seconds(10);
  // Further baselines paced at the same rate, in this order (see the top).
  struct Named {
    std::string name;  // the counters' prefix
    IndexedCall call;
  };
  std::vector<Named> more;
};

// The peak of `call`, then `call` and `baseline` paced at half of it; the
// figures as counters of `state` (see the top of this file).
inline void MeasureAtHalfPeak(benchmark::State& state, const IndexedCall& call,
                              const IndexedCall& baseline, const HalfPeakOptions& o) {
  for (auto _ : state) {
    absl::StatusOr<double> peak = PeakRate(call, o.population, o.threads, o.peak_phase);
    absl::StatusOr<std::vector<double>> ms =
        peak.ok() ? PacedLatencies(call, o.population, *peak / 2, o.threads, o.duration)
                  : peak.status();
    absl::StatusOr<std::vector<double>> base =
        ms.ok() ? PacedLatencies(baseline, o.population, *peak / 2, o.threads, o.duration)
                : ms.status();
    absl::Status failed = base.status();
    std::vector<std::vector<double>> more;
    for (size_t i = 0; failed.ok() && i < o.more.size(); ++i) {
      absl::StatusOr<std::vector<double>> paced =
          PacedLatencies(o.more[i].call, o.population, *peak / 2, o.threads, o.duration);
      failed = paced.status();
      if (paced.ok()) more.push_back(*std::move(paced));
    }
    if (!failed.ok()) {
      state.SkipWithError(failed.ToString().c_str());
      break;
    }
    state.SetIterationTime(absl::ToDoubleSeconds(o.duration));
    state.counters["peak_per_s"] = *peak;
    state.counters["rate_per_s"] = *peak / 2;
    state.counters["p50_ms"] = Percentile(*ms, 0.50);
    state.counters["p99_ms"] = Percentile(*ms, 0.99);
    state.counters["p999_ms"] = Percentile(*ms, 0.999);
    state.counters["base_p50_ms"] = Percentile(*base, 0.50);
    state.counters["base_p99_ms"] = Percentile(*base, 0.99);
    for (size_t i = 0; i < more.size(); ++i) {
      state.counters[o.more[i].name + "_p50_ms"] = Percentile(more[i], 0.50);
      state.counters[o.more[i].name + "_p99_ms"] = Percentile(more[i], 0.99);
    }
    state.SetItemsProcessed(static_cast<int64_t>(ms->size()));
  }
}

}  // namespace crm::testing
