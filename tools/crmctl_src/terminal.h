// Reading passwords in crmctl: from the terminal without echo, or one line
// of standard input when it is not a terminal (or with --password-stdin).
//
// Thread-safety: one prompt at a time (the terminal is process-wide).
#pragma once

#include <iosfwd>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::crmctl {

// Whether `in` is the process's standard input and that is a terminal.
bool IsTerminal(const std::istream& in);

// Reads one line of `in` (without the line end). When `terminal`, first
// writes `prompt` to `err` and turns echo off while reading (restored
// afterwards, also when interrupted by SIGINT). INVALID_ARGUMENT naming
// `what` at end of input or for an empty line.
absl::StatusOr<std::string> ReadSecret(std::istream& in, std::ostream& err, bool terminal,
                                       absl::string_view prompt, absl::string_view what);

}  // namespace crm::crmctl
