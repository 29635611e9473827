// The load generator (load.h) and crm-loadgen against the Echo service over
// real mutual TLS on loopback: what it counts, how it paces, what it refuses.
#include "tools/bench_src/load.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "crm/testing/v1/echo.pb.h"
#include "libs/rpc/channel.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/subprocess.h"

namespace crm::bench {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Le;

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(rpc::testing::TestPki pki,
                             rpc::testing::TestPki::Create({"echo", "client"}));
    pki_ = std::make_unique<rpc::testing::TestPki>(std::move(pki));
    rpc::ServerConfig config;
    config.service = "echo";
    config.tls = pki_->Files("echo");
    config.handle_signals = false;
    rpc::AccessPolicy policy;
    policy.Allow(rpc::testing::kEchoMethod, {"client"})
        .Allow(rpc::testing::kSlowEchoMethod, {"client"});
    server_ = std::make_unique<rpc::ServerRunner>(config, std::move(policy));
    server_->RegisterService(&service_);
    ASSERT_THAT(server_->Start(), IsOk());
    channel_config_.target = absl::StrCat("127.0.0.1:", server_->port());
    channel_config_.tls = pki_->Files("client");
    channel_config_.expected_server = "echo";
    channel_config_.max_attempts = 1;
    CRM_ASSERT_OK_AND_ASSIGN(channel_, rpc::MakeChannel(channel_config_));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  static Workload Echo(int delay_ms = 0) {
    crm::testing::v1::EchoRequest request;
    request.set_message("ping");
    request.set_delay_ms(delay_ms);
    return {.method = delay_ms > 0 ? rpc::testing::kSlowEchoMethod : rpc::testing::kEchoMethod,
            .requests = {request.SerializeAsString()}};
  }

  std::unique_ptr<rpc::testing::TestPki> pki_;
  rpc::testing::EchoService service_;
  std::unique_ptr<rpc::ServerRunner> server_;
  rpc::ChannelConfig channel_config_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(LoadTest, ClosedLoopCountsEveryCallOfTheWindowAndWatchesTheServer) {
  const int runs_before = service_.handler_runs();
  CRM_ASSERT_OK_AND_ASSIGN(LoadResult r, RunLoad(channel_, Echo(),
                                                 {.concurrency = 4,
                                                  .warmup = absl::Milliseconds(200),
                                                  .duration = absl::Milliseconds(500),
                                                  .watch = {getpid()}}));
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_GT(r.calls, 0);
  // Warm-up calls and calls finishing after the window ran but are not counted.
  EXPECT_GE(service_.handler_runs() - runs_before, r.calls);
  EXPECT_DOUBLE_EQ(r.calls_per_s, static_cast<double>(r.calls) / 0.5);
  EXPECT_GT(r.p50_ms, 0);
  EXPECT_LE(r.p50_ms, r.p90_ms);
  EXPECT_LE(r.p90_ms, r.p99_ms);
  EXPECT_LE(r.p99_ms, r.p999_ms);
  EXPECT_LE(r.p999_ms, r.max_ms);
  ASSERT_EQ(r.servers.size(), 1u);
  EXPECT_EQ(r.servers[0].pid, getpid());
  EXPECT_GT(r.servers[0].cpu_seconds, 0);  // the server runs in this process
  EXPECT_GT(r.servers[0].peak_rss_bytes, 0);
  EXPECT_GE(r.servers[0].lifetime_peak_rss_bytes, r.servers[0].peak_rss_bytes);
  EXPECT_EQ(r.late_starts, 0);
}

TEST_F(LoadTest, LatencyIsThatOfTheCall) {
  CRM_ASSERT_OK_AND_ASSIGN(LoadResult r, RunLoad(channel_, Echo(/*delay_ms=*/50),
                                                 {.concurrency = 2,
                                                  .warmup = absl::ZeroDuration(),
                                                  .duration = absl::Milliseconds(400)}));
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_GT(r.calls, 0);
  EXPECT_GE(r.p50_ms, 50);  // SlowEcho sleeps 50 ms before it answers
}

TEST_F(LoadTest, FixedRateStartsNoMoreCallsThanScheduledAndChargesTheQueue) {
  // 100 calls/s for 0.5 s: at most the 50 due in the window finish in it.
  CRM_ASSERT_OK_AND_ASSIGN(LoadResult r, RunLoad(channel_, Echo(),
                                                 {.concurrency = 4,
                                                  .rate = 100,
                                                  .warmup = absl::Milliseconds(100),
                                                  .duration = absl::Milliseconds(500)}));
  EXPECT_EQ(r.errors, 0) << r.first_error;
  EXPECT_THAT(r.calls, AllOf(Ge(1), Le(50 + 4)));
  // One slot for calls of 40 ms due every 10 ms: most wait for the slot, and
  // their latency counts from when they were due, so it grows past 40 ms.
  CRM_ASSERT_OK_AND_ASSIGN(LoadResult queued, RunLoad(channel_, Echo(/*delay_ms=*/40),
                                                      {.concurrency = 1,
                                                       .rate = 100,
                                                       .warmup = absl::ZeroDuration(),
                                                       .duration = absl::Milliseconds(500)}));
  EXPECT_GT(queued.late_starts, 0);
  EXPECT_GT(queued.max_ms, 80);
}

TEST_F(LoadTest, FailedCallsAreCountedByCode) {
  Workload w = Echo();
  w.method = "/crm.testing.v1.Echo/NoSuchMethod";
  CRM_ASSERT_OK_AND_ASSIGN(LoadResult r, RunLoad(channel_, w,
                                                 {.concurrency = 2,
                                                  .warmup = absl::ZeroDuration(),
                                                  .duration = absl::Milliseconds(200)}));
  EXPECT_GT(r.errors, 0);
  EXPECT_EQ(r.errors, r.calls);
  EXPECT_EQ(r.calls_per_s, 0);
  // The access policy refuses a method it does not list.
  EXPECT_EQ(r.errors_by_code.size(), 1u);
  EXPECT_EQ(r.errors_by_code.begin()->second, r.errors);
  EXPECT_THAT(r.first_error, HasSubstr(r.errors_by_code.begin()->first));
  EXPECT_THAT(ToJson(r), HasSubstr(absl::StrCat("\"errors\": ", r.errors)));
}

TEST_F(LoadTest, BadOptionsAreRefusedNamingTheField) {
  Workload w = Echo();
  EXPECT_THAT(RunLoad(channel_, w, {.concurrency = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("concurrency")));
  EXPECT_THAT(RunLoad(channel_, w, {.rate = -1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rate")));
  EXPECT_THAT(RunLoad(channel_, w, {.duration = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duration")));
  w.requests.clear();
  EXPECT_THAT(RunLoad(channel_, w, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("requests")));
  w = Echo();
  w.method = "Echo";
  EXPECT_THAT(RunLoad(channel_, w, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("method")));
}

TEST_F(LoadTest, AGoneWatchedProcessIsAnError) {
  EXPECT_THAT(RunLoad(channel_, Echo(),
                      {.warmup = absl::ZeroDuration(),
                       .duration = absl::Milliseconds(100),
                       .watch = {999999999}}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("gone")));
}

TEST(QuantileTest, NearestRank) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(Quantile(v, 0.50), 50);
  EXPECT_EQ(Quantile(v, 0.99), 99);
  EXPECT_EQ(Quantile(v, 0.999), 100);
  EXPECT_EQ(Quantile(v, 0), 1);
  EXPECT_EQ(Quantile({7}, 0.5), 7);
  EXPECT_EQ(Quantile({}, 0.5), 0);
}

TEST(SampleProcessTest, ReadsThisProcess) {
  CRM_ASSERT_OK_AND_ASSIGN(ProcessSample s, SampleProcess(getpid()));
  EXPECT_GT(s.rss_bytes, 0);
  EXPECT_GE(s.peak_rss_bytes, s.rss_bytes);
  EXPECT_GE(s.cpu_seconds, 0);
  EXPECT_THAT(SampleProcess(999999999), StatusIs(absl::StatusCode::kNotFound));
}

// crm-loadgen, the command line over the same engine.
class LoadgenTest : public LoadTest {
 protected:
  // Runs crm-loadgen with the client's certificate and `flags`.
  testing::ExitStatus Run(std::vector<std::string> flags, std::string* output) {
    const rpc::TlsFiles tls = pki_->Files("client");
    std::vector<std::string> args = {CRM_LOADGEN_BINARY,
                                     "--target=" + channel_config_.target,
                                     "--server=echo",
                                     "--tls_cert=" + tls.cert_file,
                                     "--tls_key=" + tls.key_file,
                                     "--tls_ca=" + tls.ca_file};
    args.insert(args.end(), flags.begin(), flags.end());
    auto process =
        testing::Subprocess::Start({.args = args, .output_file = pki_->dir() + "/loadgen.out"});
    EXPECT_THAT(process.status(), IsOk());
    if (!process.ok()) return {};
    auto exit = (*process)->WaitForExit(absl::Seconds(60));
    EXPECT_THAT(exit.status(), IsOk());
    *output = (*process)->Output();
    return exit.ok() ? *exit : testing::ExitStatus{};
  }

  std::string RequestsFile(const std::string& content) {
    const std::string path = pki_->dir() + "/requests.jsonl";
    std::ofstream(path) << content;
    return path;
  }
};

TEST_F(LoadgenTest, RunsJsonRequestsAndPrintsTheResult) {
  const int runs_before = service_.handler_runs();
  std::string output;
  const testing::ExitStatus exit =
      Run({"--method=/crm.testing.v1.Echo/Echo",
           "--requests=" + RequestsFile("{\"message\": \"a\"}\n{\"message\": \"b\"}\n"),
           "--concurrency=2", "--warmup=0s", "--duration=300ms",
           absl::StrCat("--watch_pid=", getpid())},
          &output);
  EXPECT_TRUE(exit.exited_with(0)) << output;
  EXPECT_THAT(output, HasSubstr("\"errors\": 0,"));
  EXPECT_THAT(output, HasSubstr(absl::StrCat("\"pid\": ", getpid())));
  EXPECT_GT(service_.handler_runs(), runs_before);
}

TEST_F(LoadgenTest, BadSettingsAndRequestsAreRefusedNamingThem) {
  std::string output;
  const std::string good = RequestsFile("{\"message\": \"a\"}\n");
  EXPECT_TRUE(
      Run({"--method=/crm.testing.v1.Echo/Nope", "--requests=" + good}, &output).exited_with(2));
  EXPECT_THAT(output, HasSubstr("method: no method"));
  EXPECT_TRUE(Run({"--method=Echo", "--requests=" + good}, &output).exited_with(2));
  EXPECT_THAT(output, HasSubstr("method:"));
  const std::string bad = RequestsFile("{\"message\": \"a\"}\n{\"mesage\": 1}\n");
  EXPECT_TRUE(
      Run({"--method=/crm.testing.v1.Echo/Echo", "--requests=" + bad}, &output).exited_with(2));
  EXPECT_THAT(output, HasSubstr("requests: line 2 is not a crm.testing.v1.EchoRequest"));
  EXPECT_TRUE(
      Run({"--method=/crm.testing.v1.Echo/Echo", "--requests=" + good, "--rate=-3"}, &output)
          .exited_with(2));
  EXPECT_THAT(output, HasSubstr("rate:"));
  EXPECT_TRUE(Run({"--method=/crm.testing.v1.Echo/Echo", "--requests=/nonexistent"}, &output)
                  .exited_with(2));
  EXPECT_THAT(output, HasSubstr("requests: cannot read"));
}

}  // namespace
}  // namespace crm::bench
