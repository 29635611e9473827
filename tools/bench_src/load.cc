#include "tools/bench_src/load.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace crm::bench {
namespace {

// "INVALID_ARGUMENT" for grpc::StatusCode::INVALID_ARGUMENT (gRPC's codes
// are absl's, number for number).
std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

double ClientCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

class Runner {
 public:
  Runner(const std::shared_ptr<grpc::Channel>& channel, const Workload& workload,
         const LoadOptions& options)
      : stub_(channel), workload_(workload), options_(options) {
    for (const std::string& r : workload.requests) {
      grpc::Slice slice(r);
      requests_.emplace_back(&slice, 1);
    }
  }

  absl::StatusOr<LoadResult> Run() {
    const absl::Time t0 = absl::Now();
    window_start_ = t0 + options_.warmup;
    window_end_ = window_start_ + options_.duration;

    std::vector<ServerUsage> usage(options_.watch.size());
    std::vector<ProcessSample> before(options_.watch.size());
    // Written by the monitor thread only, read once it has been joined.
    std::vector<int64_t> seen_peak(options_.watch.size(), 0);
    std::atomic<bool> monitoring{true};
    // Memory is sampled through the window; CPU is read at its two ends.
    std::thread monitor([&] {
      while (monitoring.load()) {
        const absl::Time now = absl::Now();
        if (now >= window_start_ && now < window_end_) {
          for (size_t i = 0; i < seen_peak.size(); ++i) {
            absl::StatusOr<ProcessSample> s = SampleProcess(options_.watch[i]);
            if (s.ok()) seen_peak[i] = std::max(seen_peak[i], s->rss_bytes);
          }
        }
        absl::SleepFor(absl::Milliseconds(50));
      }
    });

    std::thread pacer;
    if (options_.rate > 0) {
      pacer = std::thread([this, t0] { Pace(t0); });
    } else {
      for (int i = 0; i < options_.concurrency; ++i) {
        {
          absl::MutexLock lock(&mu_);
          ++in_flight_;
        }
        Start(absl::Now());
      }
    }

    absl::Status watch_status;
    absl::SleepFor(window_start_ - absl::Now());
    double client_before = ClientCpuSeconds();
    for (size_t i = 0; i < before.size(); ++i) {
      absl::StatusOr<ProcessSample> s = SampleProcess(options_.watch[i]);
      if (!s.ok())
        watch_status = s.status();
      else
        before[i] = *s;
    }
    absl::SleepFor(window_end_ - absl::Now());
    LoadResult result;
    result.client_cpu_seconds = ClientCpuSeconds() - client_before;
    const double window = absl::ToDoubleSeconds(options_.duration);
    for (size_t i = 0; i < usage.size() && watch_status.ok(); ++i) {
      absl::StatusOr<ProcessSample> s = SampleProcess(options_.watch[i]);
      if (!s.ok()) {
        watch_status = s.status();
        break;
      }
      usage[i].pid = options_.watch[i];
      usage[i].cpu_seconds = s->cpu_seconds - before[i].cpu_seconds;
      usage[i].cpu_cores = usage[i].cpu_seconds / window;
      usage[i].lifetime_peak_rss_bytes = s->peak_rss_bytes;
      usage[i].peak_rss_bytes = s->rss_bytes;
    }

    if (pacer.joinable()) pacer.join();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* n) { return *n == 0; }, &in_flight_));
    }
    monitoring = false;
    monitor.join();
    for (size_t i = 0; i < usage.size(); ++i) {
      usage[i].peak_rss_bytes = std::max(usage[i].peak_rss_bytes, seen_peak[i]);
    }
    if (!watch_status.ok()) {
      return absl::InternalError(
          absl::StrCat("a watched server process is gone: ", watch_status.message()));
    }

    absl::MutexLock lock(&mu_);
    std::sort(latencies_.begin(), latencies_.end());
    result.seconds = window;
    result.calls = static_cast<int64_t>(latencies_.size()) + errors_;
    result.errors = errors_;
    result.errors_by_code = errors_by_code_;
    result.first_error = first_error_;
    result.calls_per_s = static_cast<double>(latencies_.size()) / window;
    result.p50_ms = Quantile(latencies_, 0.50);
    result.p90_ms = Quantile(latencies_, 0.90);
    result.p99_ms = Quantile(latencies_, 0.99);
    result.p999_ms = Quantile(latencies_, 0.999);
    result.max_ms = latencies_.empty() ? 0 : latencies_.back();
    result.late_starts = late_starts_;
    result.servers = std::move(usage);
    return result;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    absl::Time start;  // scheduled start (fixed rate) or actual start
  };

  // Fixed rate: call k is due at t0 + k / rate; it waits for a free slot
  // when `concurrency` calls are in flight (and counts as a late start).
  void Pace(absl::Time t0) {
    const absl::Duration interval = absl::Seconds(1.0 / options_.rate);
    for (int64_t k = 0;; ++k) {
      const absl::Time due = t0 + interval * k;
      if (due >= window_end_) break;
      absl::SleepFor(due - absl::Now());
      {
        absl::MutexLock lock(&mu_);
        if (in_flight_ >= options_.concurrency) {
          if (due >= window_start_) ++late_starts_;
          mu_.Await(absl::Condition(this, &Runner::HasFreeSlot));
        }
        ++in_flight_;
      }
      Start(due);
    }
  }

  bool HasFreeSlot() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return in_flight_ < options_.concurrency;
  }

  void Start(absl::Time start) {
    auto* call = new Call;
    call->start = start;
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + workload_.deadline));
    for (const auto& [key, value] : workload_.metadata) call->context.AddMetadata(key, value);
    const size_t i = next_request_.fetch_add(1) % requests_.size();
    stub_.UnaryCall(&call->context, workload_.method, grpc::StubOptions(), &requests_[i],
                    &call->response, [this, call](grpc::Status status) { Done(call, status); });
  }

  void Done(Call* call, const grpc::Status& status) {
    const absl::Time now = absl::Now();
    const absl::Time start = call->start;
    delete call;
    bool again = false;
    {
      absl::MutexLock lock(&mu_);
      if (now >= window_start_ && now < window_end_) {
        if (status.ok()) {
          latencies_.push_back(absl::ToDoubleMilliseconds(now - start));
        } else {
          ++errors_;
          ++errors_by_code_[CodeName(status.error_code())];
          if (first_error_.empty()) {
            first_error_ =
                absl::StrCat(CodeName(status.error_code()), ": ", status.error_message());
          }
        }
      }
      again = options_.rate <= 0 && now < window_end_;
      if (!again) --in_flight_;
    }
    if (again) Start(absl::Now());
  }

  grpc::GenericStub stub_;
  const Workload& workload_;
  const LoadOptions options_;
  std::vector<grpc::ByteBuffer> requests_;
  std::atomic<uint64_t> next_request_{0};
  absl::Time window_start_;
  absl::Time window_end_;

  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<double> latencies_ ABSL_GUARDED_BY(mu_);
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> errors_by_code_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  int64_t late_starts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(i, sorted.size() - 1)];
}

absl::StatusOr<ProcessSample> SampleProcess(pid_t pid) {
  const std::string dir = absl::StrCat("/proc/", pid);
  std::ifstream stat_file(dir + "/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: count from after its ')'.
  const size_t close = stat.rfind(')');
  if (!stat_file || close == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("no process ", pid));
  }
  const std::vector<std::string> fields =
      absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return absl::InternalError(absl::StrCat("cannot read ", dir, "/stat"));
  }
  ProcessSample sample;
  sample.cpu_seconds = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status(dir + "/status");
  std::string line;
  while (std::getline(status, line)) {
    int64_t* target = nullptr;
    if (line.rfind("VmRSS:", 0) == 0) target = &sample.rss_bytes;
    if (line.rfind("VmHWM:", 0) == 0) target = &sample.peak_rss_bytes;
    if (target == nullptr) continue;
    std::istringstream in(line.substr(6));
    int64_t kib = 0;
    in >> kib;
    *target = kib * 1024;
  }
  return sample;
}

absl::StatusOr<LoadResult> RunLoad(const std::shared_ptr<grpc::Channel>& channel,
                                   const Workload& workload, const LoadOptions& options) {
  if (workload.method.empty() || workload.method[0] != '/') {
    return absl::InvalidArgumentError("method: must be /package.Service/Method");
  }
  if (workload.requests.empty()) return absl::InvalidArgumentError("requests: none given");
  if (options.concurrency < 1) return absl::InvalidArgumentError("concurrency: must be >= 1");
  if (options.rate < 0 || !std::isfinite(options.rate)) {
    return absl::InvalidArgumentError("rate: must be >= 0");
  }
  if (options.duration <= absl::ZeroDuration() || options.warmup < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("duration: must be > 0 (and warmup >= 0)");
  }
  Runner runner(channel, workload, options);
  return runner.Run();
}

std::string ToJson(const LoadResult& r) {
  std::string errors;
  for (const auto& [code, n] : r.errors_by_code) {
    absl::StrAppend(&errors, errors.empty() ? "" : ", ", "\"", code, "\": ", n);
  }
  std::string servers;
  for (const ServerUsage& s : r.servers) {
    absl::StrAppendFormat(&servers,
                          "%s{\"pid\": %d, \"cpu_seconds\": %.3f, \"cpu_cores\": %.3f, "
                          "\"peak_rss_bytes\": %d, \"lifetime_peak_rss_bytes\": %d}",
                          servers.empty() ? "" : ", ", s.pid, s.cpu_seconds, s.cpu_cores,
                          s.peak_rss_bytes, s.lifetime_peak_rss_bytes);
  }
  // first_error comes from the server: escape it as JSON.
  std::string first_error;
  for (const char c : r.first_error) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&first_error, "\\", std::string(1, c));
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&first_error, "\\u%04x", c);
    } else {
      first_error.push_back(c);
    }
  }
  return absl::StrFormat(
      "{\"seconds\": %.3f, \"calls\": %d, \"errors\": %d, \"errors_by_code\": {%s}, "
      "\"first_error\": \"%s\", \"calls_per_s\": %.1f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
      "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, \"late_starts\": %d, "
      "\"client_cpu_seconds\": %.3f, \"servers\": [%s]}",
      r.seconds, r.calls, r.errors, errors, first_error, r.calls_per_s, r.p50_ms, r.p90_ms,
      r.p99_ms, r.p999_ms, r.max_ms, r.late_starts, r.client_cpu_seconds, servers);
}

}  // namespace crm::bench
