// The suite's load generator: unary calls of one method kept in flight over
// one gRPC channel (mutual TLS when the channel is MakeChannel's), either a
// fixed number at a time (closed loop: each finished call starts the next) or
// started at a fixed rate (open loop), for a warm-up and then a measured
// window. It reports calls/s, latency percentiles, errors by status code, the
// client's own CPU, and the CPU and memory of the server processes it is
// told to watch (read from /proc).
//
//   Workload w{.method = "/crm.consent.v1.Consent/Check", .requests = {...}};
//   w.metadata.emplace_back("authorization", "Bearer " + token);
//   CRM_ASSIGN_OR_RETURN(LoadResult r, RunLoad(channel, w, {.concurrency = 8,
//                                                         .watch = {consent_pid}}));
//
// Requests are serialized once, before the run, and used in turn, so the
// client spends its share of the (shared) cores on gRPC, not on protobuf.
// At a fixed rate, latency is counted from each call's scheduled start: a
// server that falls behind is charged for the queue it causes (no
// coordinated omission). Used by crm-loadgen (loadgen_main.cc) and
// stack_bench.cc. Not thread-safe: one RunLoad at a time per Workload.
#pragma once

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace crm::bench {

struct Workload {
  // Full method name, "/package.Service/Method".
  std::string method;
  // Serialized request messages, used in turn; at least one.
  std::vector<std::string> requests;
  // Sent with every call (e.g. "authorization": "Bearer ...").
  std::vector<std::pair<std::string, std::string>> metadata;
  // Deadline of each call.
  absl::Duration deadline = absl::Seconds(10);
};

struct LoadOptions {
  // Most calls in flight (closed loop: exactly this many). At least 1.
  int concurrency = 8;
  // Calls started per second; 0 for the closed loop.
  double rate = 0;
  // Calls before the measured window; not counted.
  absl::Duration warmup = absl::Seconds(1);
  // The measured window.
  absl::Duration duration = absl::Seconds(5);
  // Server processes whose CPU and memory are reported.
  std::vector<pid_t> watch;
};

// What /proc says about one process at one moment.
struct ProcessSample {
  double cpu_seconds = 0;      // user + system, since the process started
  int64_t rss_bytes = 0;       // VmRSS
  int64_t peak_rss_bytes = 0;  // VmHWM: the most it has ever held
};
// NOT_FOUND if the process is gone.
absl::StatusOr<ProcessSample> SampleProcess(pid_t pid);

struct ServerUsage {
  pid_t pid = 0;
  double cpu_seconds = 0;      // used during the measured window
  double cpu_cores = 0;        // cpu_seconds / window
  int64_t peak_rss_bytes = 0;  // the most VmRSS seen during the window (sampled every 50 ms)
  int64_t lifetime_peak_rss_bytes = 0;  // VmHWM at the end
};

struct LoadResult {
  double seconds = 0;  // length of the measured window
  int64_t calls = 0;   // calls finished in the window, failed ones included
  int64_t errors = 0;
  std::map<std::string, int64_t> errors_by_code;  // "UNAVAILABLE" -> 3
  std::string first_error;                        // "<CODE>: <message>" of the first failure
  double calls_per_s = 0;                         // successful calls per second
  // Latency of the successful calls of the window, milliseconds.
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  // Fixed rate only: calls that could not start on time because
  // `concurrency` calls were already in flight.
  int64_t late_starts = 0;
  double client_cpu_seconds = 0;  // this process, during the window
  std::vector<ServerUsage> servers;
};

// INVALID_ARGUMENT for a workload without requests or a bad option; INTERNAL
// if a watched process is gone. Failed calls are counted, not returned.
absl::StatusOr<LoadResult> RunLoad(const std::shared_ptr<grpc::Channel>& channel,
                                   const Workload& workload, const LoadOptions& options);

// The value at quantile q (0..1) of ascending `sorted`: the smallest with at
// least q of the values at or below it (nearest rank); 0 when empty.
double Quantile(const std::vector<double>& sorted, double q);

// The result as one JSON object (keys as the fields above).
std::string ToJson(const LoadResult& result);

}  // namespace crm::bench
