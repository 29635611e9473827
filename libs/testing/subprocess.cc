#include "libs/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

extern char** environ;

namespace crm::testing {

bool PollUntil(const std::function<bool()>& predicate, absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (true) {
    if (predicate()) return true;
    if (absl::Now() >= until) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

std::ostream& operator<<(std::ostream& os, const ExitStatus& status) {
  if (status.signal != 0) return os << "killed by signal " << status.signal;
  return os << "exit code " << status.code;
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const Options& options) {
  if (options.args.empty()) return absl::InvalidArgumentError("Subprocess: args is empty");
  const std::string& binary = options.args[0];
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("Subprocess: not an executable: ", binary));
  }

  // Everything the child needs is prepared here: between fork and exec only
  // async-signal-safe calls are allowed (the test has threads).
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const absl::string_view kv(*e);
    const absl::string_view name = kv.substr(0, kv.find('='));
    if (absl::StartsWith(name, "CRM_") || options.env.count(std::string(name)) > 0) continue;
    env_strings.emplace_back(kv);
  }
  for (const auto& [name, value] : options.env)
    env_strings.push_back(absl::StrCat(name, "=", value));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options.args;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_fd = -1;
  if (!options.output_file.empty()) {
    out_fd = open(options.output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out_fd < 0) {
      return absl::InternalError(
          absl::StrCat("Subprocess: cannot open ", options.output_file, ": ", strerror(errno)));
    }
  }
  const pid_t pid = fork();
  if (pid < 0) {
    if (out_fd >= 0) close(out_fd);
    return absl::InternalError(absl::StrCat("Subprocess: fork failed: ", strerror(errno)));
  }
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    if (out_fd >= 0) {
      dup2(out_fd, STDOUT_FILENO);
      dup2(out_fd, STDERR_FILENO);
    }
    execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  if (out_fd >= 0) close(out_fd);
  return std::unique_ptr<Subprocess>(new Subprocess(pid, options.output_file));
}

Subprocess::~Subprocess() {
  if (!TryReap()) {
    kill(pid_, SIGKILL);
    int wstatus = 0;
    while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
}

bool Subprocess::TryReap() {
  if (reaped_) return true;
  int wstatus = 0;
  const pid_t r = waitpid(pid_, &wstatus, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return false;
  reaped_ = true;
  if (r == pid_ && WIFEXITED(wstatus)) {
    exit_.code = WEXITSTATUS(wstatus);
  } else if (r == pid_ && WIFSIGNALED(wstatus)) {
    exit_.signal = WTERMSIG(wstatus);
  }
  return true;
}

absl::Status Subprocess::Signal(int signal) {
  if (TryReap()) {
    return absl::FailedPreconditionError(absl::StrCat("Subprocess: ", pid_, " has exited"));
  }
  if (kill(pid_, signal) != 0) {
    return absl::InternalError(absl::StrCat("Subprocess: kill failed: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> Subprocess::WaitForExit(absl::Duration timeout) {
  if (!PollUntil([this] { return TryReap(); }, timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("Subprocess: ", pid_, " still running after ", absl::FormatDuration(timeout)));
  }
  return exit_;
}

bool Subprocess::Running() { return !TryReap(); }

std::string Subprocess::Output() const {
  if (output_file_.empty()) return "";
  std::ifstream in(output_file_);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace crm::testing
