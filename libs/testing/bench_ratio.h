// RatioReporter: Google Benchmark's console output plus each run's figures,
// kept so that a benchmark binary can end by printing its results as ratios
// to a baseline it measured in the same run (docs/benchmarks.md: the noise of
// the shared machine then weighs on both sides alike).
//
//   crm::testing::RatioReporter reporter;
//   benchmark::RunSpecifiedBenchmarks(&reporter);
//   reporter.PrintCostRatio("BM_Login", "BM_Login/real_time/threads:1",
//                           "BM_RawArgon2idBaseline/real_time/threads:1");
//
// Runs are named as Google Benchmark names them ("BM_X/real_time/threads:2").
// With --benchmark_repetitions the median of the repetitions is used,
// otherwise the single run's figures.
//
// Header-only, for crm_cc_bench targets (which link benchmark::benchmark); no
// CMake target needed. Not thread-safe: Google Benchmark reports from its
// main thread.
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace crm::testing {

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  // Colours only on a terminal (logs and pipes get plain text).
  RatioReporter() : ConsoleReporter(isatty(fileno(stdout)) ? OO_ColorTabular : OO_Tabular) {}

  struct Figures {
    // items_per_second (0 unless the benchmark calls SetItemsProcessed):
    // over all threads, so ratios of rates hold for any thread count.
    double items_per_second = 0;
    // Real time per iteration as the console shows it, in seconds.
    double seconds_per_iteration = 0;
    // Every counter of the run (items_per_second included), as reported.
    std::map<std::string, double> counters;
  };

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type != Run::RT_Iteration && !median) continue;
      const std::string key = run.run_name.str();
      if (!median && medians_.contains(key)) continue;
      if (median) medians_.insert(key);
      Figures& f = figures_[key];
      f.counters.clear();
      for (const auto& [name, counter] : run.counters) f.counters[name] = counter.value;
      auto rate = f.counters.find("items_per_second");
      f.items_per_second = rate == f.counters.end() ? 0 : rate->second;
      f.seconds_per_iteration =
          run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
    }
    ConsoleReporter::ReportRuns(runs);
  }

  // The figures of run `name`, or nullptr if it did not run (or failed).
  const Figures* Find(const std::string& name) const {
    auto it = figures_.find(name);
    return it == figures_.end() ? nullptr : &it->second;
  }

  // The cost of one item of `name` against one of `baseline` (the inverse
  // ratio of their rates):
  //   "    <label> <rate> /s  cost <r>x baseline (overhead +x%)"
  // Prints nothing and returns false if either lacks a rate.
  bool PrintCostRatio(const char* label, const std::string& name,
                      const std::string& baseline) const {
    const Figures* f = Find(name);
    const Figures* b = Find(baseline);
    if (f == nullptr || b == nullptr || f->items_per_second <= 0 || b->items_per_second <= 0) {
      return false;
    }
    const double ratio = b->items_per_second / f->items_per_second;
    std::printf("    %-40s %8.1f /s  cost %.3fx baseline (overhead %+.1f%%)\n", label,
                f->items_per_second, ratio, (ratio - 1) * 100);
    return true;
  }

  // Real time per iteration of `name` against `baseline`, in microseconds:
  //   "    <label> <t> us  <r>x <baseline_label> (<tb> us)"
  // Prints nothing and returns false if either did not run.
  bool PrintTimeRatio(const char* label, const std::string& name, const std::string& baseline,
                      const char* baseline_label) const {
    const Figures* f = Find(name);
    const Figures* b = Find(baseline);
    if (f == nullptr || b == nullptr || b->seconds_per_iteration <= 0) return false;
    std::printf("    %-40s %10.2f us  %8.3fx %s (%.2f us)\n", label, f->seconds_per_iteration * 1e6,
                f->seconds_per_iteration / b->seconds_per_iteration, baseline_label,
                b->seconds_per_iteration * 1e6);
    return true;
  }

 private:
  std::map<std::string, Figures> figures_;
  std::set<std::string> medians_;
};

}  // namespace crm::testing
