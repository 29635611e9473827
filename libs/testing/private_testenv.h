// PrivateTestEnv: a PostgreSQL 15 + Redis 7 of one process's own
// (tools/testenv), in a temp dir, stopped and removed when the object is
// destroyed: for end-to-end benchmarks (bench_env.h calls it BenchEnv) and
// for fault tests that restart or stop the servers (tests/faults), which must
// never break the test run's shared ones. It points the test helpers at
// itself (CRMTEST_ENV_DIR, CRMTEST_SOURCE_DIR), so TestEnv::Load,
// PgTestDatabase and CreateMigratedDatabase work as they do under ctest.
//
// Header-only (DEPS crm_testing). Not thread-safe: one thread sets it up,
// breaks it and tears it down.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/base/status_macros.h"
#include "libs/testing/subprocess.h"
#include "libs/testing/test_env.h"

namespace crm::testing {

class PrivateTestEnv {
 public:
  // Makes "$TMPDIR/<name>_XXXXXX" (mode 0755: PostgreSQL runs as its own
  // user), runs `tools/testenv start` in it (3 minutes at most) and sets
  // CRMTEST_ENV_DIR and CRMTEST_SOURCE_DIR for this process. Call once per
  // process. INTERNAL (with the script's output) if anything fails; what did
  // start is stopped again.
  static absl::StatusOr<std::unique_ptr<PrivateTestEnv>> Start(absl::string_view name,
                                                               const std::string& source_dir) {
    const char* tmp = getenv("TMPDIR");
    std::string dir =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/", name, "_XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    std::unique_ptr<PrivateTestEnv> env(new PrivateTestEnv(std::move(dir), source_dir));
    if (chmod(env->dir_.c_str(), 0755) != 0) {
      return absl::InternalError("chmod of the temp dir failed");
    }
    env->started_ = true;  // stop even a half-started one
    CRM_RETURN_IF_ERROR(env->RunTestenv("start"));
    setenv("CRMTEST_ENV_DIR", env->testenv_dir().c_str(), 1);
    setenv("CRMTEST_SOURCE_DIR", source_dir.c_str(), 1);
    CRM_ASSIGN_OR_RETURN(env->env_, TestEnv::Load());
    return env;
  }

  // Stops the servers and removes the temp dir (problems go to stderr).
  // Destroy every pool and PgTestDatabase on them first.
  ~PrivateTestEnv() {
    if (started_) {
      if (absl::Status s = RunTestenv("stop"); !s.ok()) {
        std::fprintf(stderr, "PrivateTestEnv: %s\n", s.ToString().c_str());
      }
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  PrivateTestEnv(const PrivateTestEnv&) = delete;
  PrivateTestEnv& operator=(const PrivateTestEnv&) = delete;

  // The temp dir: a place for key files and logs.
  const std::string& dir() const { return dir_; }
  // The servers' addresses and credentials.
  const TestEnv& env() const { return env_; }
  // tools/testenv's directory (dir()/testenv): pg/ holds the cluster, e.g.
  // pg/postmaster.pid.
  std::string testenv_dir() const { return dir_ + "/testenv"; }

  // Writes `content` to dir()/<name> with mode 0600 and returns the path.
  // INTERNAL if it cannot.
  absl::StatusOr<std::string> WriteSecretFile(absl::string_view name,
                                              absl::string_view content) const {
    const std::string path = absl::StrCat(dir_, "/", name);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", path));
    const bool ok =
        write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    close(fd);
    if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path));
    return path;
  }

  // `tools/testenv COMMAND` on these servers, for tests that break them:
  // "restart-pg" (PostgreSQL stopped and started again with its data, same
  // port), "stop-redis", "start-redis" (same port, empty). INTERNAL with the
  // script's output if it fails.
  absl::Status RunTestenv(const char* command) const {
    Subprocess::Options options;
    options.args = {source_dir_ + "/tools/testenv", command, testenv_dir()};
    options.output_file = absl::StrCat(dir_, "/testenv-", command, ".log");
    CRM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Subprocess::Start(options));
    CRM_ASSIGN_OR_RETURN(ExitStatus exit, p->WaitForExit(absl::Seconds(180)));
    if (!exit.exited_with(0)) {
      return absl::InternalError(
          absl::StrCat("tools/testenv ", command, " failed:\n", p->Output()));
    }
    return absl::OkStatus();
  }

 private:
  PrivateTestEnv(std::string dir, std::string source_dir)
      : dir_(std::move(dir)), source_dir_(std::move(source_dir)) {}

  std::string dir_;
  std::string source_dir_;
  bool started_ = false;
  TestEnv env_;
};

}  // namespace crm::testing
