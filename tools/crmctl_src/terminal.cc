#include "tools/crmctl_src/terminal.h"

#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <istream>
#include <ostream>

#include "absl/strings/str_cat.h"

namespace crm::crmctl {
namespace {

// The terminal settings to restore if SIGINT arrives while echo is off.
struct termios saved_termios;

extern "C" void RestoreEchoAndDie(int signal) {
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

}  // namespace

bool IsTerminal(const std::istream& in) { return &in == &std::cin && isatty(STDIN_FILENO) == 1; }

absl::StatusOr<std::string> ReadSecret(std::istream& in, std::ostream& err, bool terminal,
                                       absl::string_view prompt, absl::string_view what) {
  std::string line;
  bool got = false;
  if (terminal && tcgetattr(STDIN_FILENO, &saved_termios) == 0) {
    err << prompt << std::flush;
    struct termios quiet = saved_termios;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    auto previous = std::signal(SIGINT, RestoreEchoAndDie);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    got = static_cast<bool>(std::getline(in, line));
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    std::signal(SIGINT, previous);
  } else {
    got = static_cast<bool>(std::getline(in, line));
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (!got) return absl::InvalidArgumentError(absl::StrCat(what, ": no input"));
  if (line.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty"));
  return line;
}

}  // namespace crm::crmctl
