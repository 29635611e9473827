// BenchEnv: a private PostgreSQL 15 + Redis 7 (tools/testenv) for one run of
// an end-to-end benchmark binary, in a temp dir, stopped and removed when the
// object is destroyed. It points the test helpers at itself (CRMTEST_ENV_DIR,
// CRMTEST_SOURCE_DIR), so TestEnv::Load, PgTestDatabase and
// CreateMigratedDatabase work as they do under ctest:
//
//   CRM_ASSIGN_OR_RETURN(std::unique_ptr<crm::testing::BenchEnv> env,
//                        crm::testing::BenchEnv::Start("ingest_bench", CRM_SOURCE_DIR));
//   CRM_ASSIGN_OR_RETURN(crm::testing::MigratedDatabase db,
//                        crm::testing::CreateMigratedDatabase("audit", "ingest_bench"));
//   ...
//   db = {};      // pools and databases go first
//   env.reset();  // then the servers
//
// Also for such binaries: WithDefaultFlags (the binary's own defaults for
// Google Benchmark's flags) and SetDurableCommits (commits flushed to disk as
// in production, for the length of one benchmark).
//
// Header-only, for crm_cc_bench targets with DEPS crm_testing_pg; the target
// defines CRM_SOURCE_DIR (the source tree, for tools/testenv and the
// migrations). Not thread-safe: main sets it up and tears it down.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <pqxx/nontransaction>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/base/runtime.h"
#include "libs/base/status_macros.h"
#include "libs/log/log.h"
#include "libs/pg/pool.h"
#include "libs/testing/bench_ratio.h"
#include "libs/testing/private_testenv.h"
#include "libs/testing/subprocess.h"
#include "libs/testing/test_env.h"

namespace crm::testing {

// The private servers of an end-to-end benchmark binary (private_testenv.h).
using BenchEnv = PrivateTestEnv;

// argv with each of `defaults` (e.g. "--benchmark_repetitions=3") inserted
// after argv[0] unless the command line already gives that flag. The result
// points into argv and `defaults`, which must outlive it.
inline std::vector<char*> WithDefaultFlags(int argc, char** argv,
                                           std::vector<std::string>& defaults) {
  std::vector<char*> args(argv, argv + argc);
  for (std::string& flag : defaults) {
    const std::string name = flag.substr(0, flag.find('='));
    bool given = false;
    for (int i = 1; i < argc; ++i) {
      const absl::string_view arg = argv[i];
      given |= arg == name || absl::StartsWith(arg, name + "=");
    }
    if (!given) args.insert(args.begin() + 1, flag.data());
  }
  return args;
}

// Removes --<name>=<int> from args into *value. false if malformed or
// below `min`.
inline bool TakeIntFlag(std::vector<char*>& args, absl::string_view name, int64_t* value,
                        int64_t min) {
  const std::string prefix = absl::StrCat("--", name, "=");
  for (auto it = args.begin() + 1; it != args.end(); ++it) {
    if (!absl::StartsWith(*it, prefix)) continue;
    const bool ok =
        absl::SimpleAtoi(absl::string_view(*it).substr(prefix.size()), value) && *value >= min;
    args.erase(it);
    return ok;
  }
  return true;
}

// tools/testenv runs PostgreSQL for speed (fsync, synchronous_commit and
// full_page_writes off). SetDurableCommits(pool, true) turns them on for the
// whole cluster (ALTER SYSTEM + reload) and waits, 10 s at most, until a
// session of `pool` sees it; other sessions reload before their next
// command. false turns them off again. Errors: the database errors of
// crm::pg; DEADLINE_EXCEEDED if the setting did not apply in time.
inline absl::Status SetDurableCommits(pg::Pool& pool, bool durable) {
  const std::string value = durable ? "on" : "off";
  CRM_RETURN_IF_ERROR(pool.WithConnection([&](pqxx::connection_base& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    for (const char* name : {"fsync", "synchronous_commit", "full_page_writes"}) {
      tx.exec(absl::StrCat("ALTER SYSTEM SET ", name, " = ", value));
    }
    tx.exec("SELECT pg_reload_conf()");
    return absl::OkStatus();
  }));
  const bool applied = PollUntil(
      [&] {
        return pool
            .WithConnection([&](pqxx::connection_base& c) -> absl::Status {
              pqxx::nontransaction tx(c);
              if (tx.exec1("SHOW fsync")[0].as<std::string>() != value) {
                return absl::UnavailableError("not yet");
              }
              return absl::OkStatus();
            })
            .ok();
      },
      absl::Seconds(10));
  return applied ? absl::OkStatus() : absl::DeadlineExceededError("fsync setting not applied");
}

// The main() of a benchmark binary that builds its own world (a BenchEnv,
// servers, data): adds its `defaults` for Google Benchmark's flags
// (WithDefaultFlags), takes its integer flags (`--name=N`, at least `min`;
// the rest goes to Google Benchmark, `usage` names them when one is
// malformed), quiets logging to warnings, sets the process up as a service's
// main does (base::ConfigureServerRuntime: without it Abseil's deadlock
// detector, off in production, would cost the servers in process a few
// per cent), runs `setup` (on failure: its error, then `teardown`, exit 1),
// `register_all` (if given), the benchmarks with a RatioReporter,
// `print_ratios` and `teardown`.
struct BenchIntFlag {
  const char* name;
  int64_t* value;
  int64_t min;
};
struct BenchProgram {
  const char* name;                   // "erasure_bench"
  const char* usage;                  // "[--samples=N (>= 10)] [--queued=N]"
  std::vector<std::string> defaults;  // {"--benchmark_min_time=3"}
  std::vector<BenchIntFlag> flags;
  std::function<absl::Status()> setup;
  std::function<void()> register_all;
  std::function<void(const RatioReporter&)> print_ratios;
  std::function<void()> teardown;
};

inline int RunBenchProgram(int argc, char** argv, const BenchProgram& p) {
  std::vector<std::string> defaults = p.defaults;  // args point into it
  std::vector<char*> args = WithDefaultFlags(argc, argv, defaults);
  for (const BenchIntFlag& f : p.flags) {
    if (!TakeIntFlag(args, f.name, f.value, f.min)) {
      std::fprintf(stderr, "usage: %s %s [benchmark flags]\n", p.name, p.usage);
      return 2;
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  log::SetMinLevel(log::Level::kWarn);
  base::ConfigureServerRuntime();
  if (absl::Status s = p.setup(); !s.ok()) {
    std::fprintf(stderr, "%s: set-up failed: %s\n", p.name, s.ToString().c_str());
    p.teardown();
    return 1;
  }
  if (p.register_all) p.register_all();
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  p.print_ratios(reporter);
  p.teardown();
  benchmark::Shutdown();
  return 0;
}

}  // namespace crm::testing
