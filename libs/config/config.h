// Settings from command-line flags and CRM_* environment variables.
//
// A service declares each setting once, bound to a field of its config struct
// (whose initial value is the default), then parses:
//
//   Settings s("crm-contacts");
//   s.Add("grpc_port", &cfg.grpc_port, "gRPC port", 0, 65535);
//   s.Add("db_url", &cfg.db_url, "PostgreSQL connection string");
//   ParseOrExit(s, argc, argv, environ);
//
// The setting "grpc_port" is read from `--grpc_port=N` (or `--grpc-port=N`) and
// from the environment variable CRM_GRPC_PORT; the flag wins. An unknown flag,
// an unknown CRM_* variable (CRMTEST_* and other prefixes are not ours), or a
// malformed value is an error naming the setting, and start-up stops.
// `--help` prints every setting with its default and its environment name.
//
// Not thread-safe; used from main.cc before threads start.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::config {

class Settings {
 public:
  explicit Settings(std::string program) : program_(std::move(program)) {}

  // Each Add binds `name` to `*target`; the target's current value is the
  // default shown by --help. Names are lower_snake_case.
  void Add(std::string name, std::string* target, std::string help);
  void Add(std::string name, int* target, std::string help, int min, int max);
  void Add(std::string name, int64_t* target, std::string help, int64_t min, int64_t max);
  // Accepts true/false/1/0/yes/no/on/off; a bare `--name` flag means true.
  void Add(std::string name, bool* target, std::string help);
  // Accepts absl durations: "250ms", "15m", "1h30m".
  void Add(std::string name, absl::Duration* target, std::string help);
  // A comma-separated list.
  void Add(std::string name, std::vector<std::string>* target, std::string help);

  // Applies environment variables, then flags. On error returns
  // INVALID_ARGUMENT naming the flag or variable; targets may be partly set.
  // `envp` is a NULL-terminated array like `environ`.
  absl::Status Parse(int argc, const char* const* argv, const char* const* envp);

  bool help_requested() const { return help_requested_; }
  std::string Usage() const;

  // "grpc_port" -> "CRM_GRPC_PORT".
  static std::string EnvName(absl::string_view name);

 private:
  struct Entry {
    std::string name;
    std::string help;
    std::string default_text;
    bool is_bool = false;
    std::function<absl::Status(absl::string_view)> set;
  };
  void AddEntry(Entry e);
  const Entry* Find(absl::string_view name) const;

  std::string program_;
  std::vector<Entry> entries_;
  bool help_requested_ = false;
};

// Splits a "host:port" setting value (port 0..65535; host non-empty, may be
// a bracketed IPv6 literal). INVALID_ARGUMENT naming `setting` otherwise.
absl::Status ParseHostPort(absl::string_view setting, absl::string_view value, std::string* host,
                           int* port);

// A list of named addresses, "name=host:port,..." (e.g. erasure's `targets`,
// the gateway's `services`), in order. INVALID_ARGUMENT naming `setting` for
// an empty list, a malformed entry or a name given twice.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseNamedAddresses(
    absl::string_view setting, absl::string_view value);

// Parse, or print the error (or --help) to stderr and exit: 2 on error, 0 for help.
void ParseOrExit(Settings& settings, int argc, const char* const* argv, const char* const* envp);

}  // namespace crm::config
