#include "libs/config/config.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace crm::config {
namespace {

constexpr absl::string_view kEnvPrefix = "CRM_";

absl::Status Bad(absl::string_view source, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat("setting ", source, ": ", rule));
}

template <typename T>
absl::Status ParseInt(absl::string_view text, T min, T max, T* out) {
  int64_t v;
  if (!absl::SimpleAtoi(text, &v)) return absl::InvalidArgumentError("must be an integer");
  if (v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("must be between ", min, " and ", max));
  }
  *out = static_cast<T>(v);
  return absl::OkStatus();
}

}  // namespace

std::string Settings::EnvName(absl::string_view name) {
  return absl::StrCat(kEnvPrefix, absl::AsciiStrToUpper(name));
}

void Settings::AddEntry(Entry e) { entries_.push_back(std::move(e)); }

const Settings::Entry* Settings::Find(absl::string_view name) const {
  for (const Entry& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

void Settings::Add(std::string name, std::string* target, std::string help) {
  AddEntry({std::move(name), std::move(help), *target, false, [target](absl::string_view v) {
              *target = std::string(v);
              return absl::OkStatus();
            }});
}

void Settings::Add(std::string name, int* target, std::string help, int min, int max) {
  AddEntry({std::move(name), std::move(help), absl::StrCat(*target), false,
            [target, min, max](absl::string_view v) { return ParseInt(v, min, max, target); }});
}

void Settings::Add(std::string name, int64_t* target, std::string help, int64_t min, int64_t max) {
  AddEntry({std::move(name), std::move(help), absl::StrCat(*target), false,
            [target, min, max](absl::string_view v) { return ParseInt(v, min, max, target); }});
}

void Settings::Add(std::string name, bool* target, std::string help) {
  AddEntry({std::move(name), std::move(help), *target ? "true" : "false", true,
            [target](absl::string_view v) {
              const std::string l = absl::AsciiStrToLower(v);
              if (l == "true" || l == "1" || l == "yes" || l == "on") {
                *target = true;
              } else if (l == "false" || l == "0" || l == "no" || l == "off") {
                *target = false;
              } else {
                return absl::InvalidArgumentError("must be true or false");
              }
              return absl::OkStatus();
            }});
}

void Settings::Add(std::string name, absl::Duration* target, std::string help) {
  AddEntry({std::move(name), std::move(help), absl::FormatDuration(*target), false,
            [target](absl::string_view v) {
              absl::Duration d;
              if (!absl::ParseDuration(v, &d) || d < absl::ZeroDuration()) {
                return absl::InvalidArgumentError(
                    "must be a non-negative duration such as 250ms, 30s or 15m");
              }
              *target = d;
              return absl::OkStatus();
            }});
}

void Settings::Add(std::string name, std::vector<std::string>* target, std::string help) {
  AddEntry({std::move(name), std::move(help), absl::StrJoin(*target, ","), false,
            [target](absl::string_view v) {
              target->clear();
              for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
                target->emplace_back(absl::StripAsciiWhitespace(part));
              }
              return absl::OkStatus();
            }});
}

absl::Status Settings::Parse(int argc, const char* const* argv, const char* const* envp) {
  for (const char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
    const absl::string_view kv(*e);
    if (!absl::StartsWith(kv, kEnvPrefix)) continue;
    const size_t eq = kv.find('=');
    const absl::string_view var = kv.substr(0, eq);
    const absl::string_view value = eq == absl::string_view::npos ? "" : kv.substr(eq + 1);
    const std::string name = absl::AsciiStrToLower(var.substr(kEnvPrefix.size()));
    const Entry* entry = Find(name);
    if (entry == nullptr) return Bad(var, "unknown setting");
    if (absl::Status s = entry->set(value); !s.ok()) return Bad(var, s.message());
  }
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg(argv[i]);
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--"))
      return Bad(arg, "unexpected argument; settings are --name=value");
    arg.remove_prefix(2);
    const size_t eq = arg.find('=');
    const std::string name = absl::StrReplaceAll(arg.substr(0, eq), {{"-", "_"}});
    const Entry* entry = Find(name);
    const std::string flag = absl::StrCat("--", name);
    if (entry == nullptr) return Bad(flag, "unknown setting");
    absl::string_view value;
    if (eq != absl::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (entry->is_bool) {
      value = "true";
    } else {
      return Bad(flag, "needs a value (--name=value)");
    }
    if (absl::Status s = entry->set(value); !s.ok()) return Bad(flag, s.message());
  }
  return absl::OkStatus();
}

std::string Settings::Usage() const {
  std::string out = absl::StrCat("Usage: ", program_, " [--setting=value ...]\n\nSettings:\n");
  for (const Entry& e : entries_) {
    absl::StrAppend(&out, "  --", e.name, " (", EnvName(e.name), ", default \"", e.default_text,
                    "\")\n      ", e.help, "\n");
  }
  return out;
}

absl::Status ParseHostPort(absl::string_view setting, absl::string_view value, std::string* host,
                           int* port) {
  const size_t colon = value.rfind(':');
  int p = -1;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(value.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return Bad(setting, "must be host:port with a port 0..65535");
  }
  *host = std::string(value.substr(0, colon));
  *port = p;
  return absl::OkStatus();
}

void ParseOrExit(Settings& settings, int argc, const char* const* argv, const char* const* envp) {
  absl::Status s = settings.Parse(argc, argv, envp);
  if (settings.help_requested()) {
    std::fputs(settings.Usage().c_str(), stdout);
    std::exit(0);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(s.message()).c_str());
    std::exit(2);
  }
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseNamedAddresses(
    absl::string_view setting, absl::string_view value) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view entry : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    const std::vector<std::string> kv =
        absl::StrSplit(absl::StripAsciiWhitespace(entry), absl::MaxSplits('=', 1));
    std::string host;
    int port = 0;
    if (kv.size() != 2 || kv[0].empty() || !ParseHostPort(setting, kv[1], &host, &port).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting ", setting, ": name=host:port,... expected"));
    }
    for (const auto& [name, _] : out) {
      if (name == kv[0]) {
        return absl::InvalidArgumentError(absl::StrCat("setting ", setting, ": a name twice"));
      }
    }
    out.emplace_back(kv[0], kv[1]);
  }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat("setting ", setting, ": at least one"));
  return out;
}

}  // namespace crm::config
