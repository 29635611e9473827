#include "libs/log/log.h"

#include <cstdio>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "libs/json/json.h"

namespace crm::log {
namespace {

struct State {
  absl::Mutex mu;
  std::string service ABSL_GUARDED_BY(mu) = "crm";
  Level min_level ABSL_GUARDED_BY(mu) = Level::kInfo;
  std::function<void(absl::string_view)> sink ABSL_GUARDED_BY(mu);
};

State& GetState() {
  static State* state = new State();
  return *state;
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '/' || c == '-' || c == '=';
}

void AppendValue(std::string* out, const Value& v) {
  struct Visitor {
    std::string* out;
    void operator()(int64_t x) const { absl::StrAppend(out, x); }
    void operator()(double x) const { absl::StrAppendFormat(out, "%.6g", x); }
    void operator()(bool x) const { absl::StrAppend(out, x ? "true" : "false"); }
    void operator()(Literal x) const { json::AppendString(out, x.view()); }
    void operator()(Id x) const { json::AppendString(out, x.view()); }
    void operator()(absl::Duration x) const {
      absl::StrAppendFormat(out, "%.3f", absl::ToDoubleMilliseconds(x));
    }
    void operator()(absl::Time x) const {
      json::AppendString(out, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", x, absl::UTCTimeZone()));
    }
    void operator()(const absl::Status& x) const {
      json::AppendString(
          out, x.ok() ? std::string("OK")
                      : absl::StrCat(absl::StatusCodeToString(x.code()), ": ", x.message()));
    }
  };
  std::visit(Visitor{out}, v);
}

}  // namespace

Id::Id(absl::string_view v) : v_(v) {
  bool ok = !v.empty() && v.size() <= 200;
  for (char c : v) ok = ok && IsIdChar(c);
  if (!ok) v_ = "[not-an-id]";
}

void SetService(absl::string_view service) {
  State& s = GetState();
  absl::MutexLock lock(&s.mu);
  s.service = std::string(service);
}

void SetMinLevel(Level level) {
  State& s = GetState();
  absl::MutexLock lock(&s.mu);
  s.min_level = level;
}

bool ParseLevel(absl::string_view text, Level* level) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

absl::Status Configure(absl::string_view service, absl::string_view level) {
  Level parsed;
  if (!ParseLevel(level, &parsed)) {
    return absl::InvalidArgumentError("setting log_level: must be debug, info, warn or error");
  }
  SetService(service);
  SetMinLevel(parsed);
  return absl::OkStatus();
}

void SetSink(std::function<void(absl::string_view)> sink) {
  State& s = GetState();
  absl::MutexLock lock(&s.mu);
  s.sink = std::move(sink);
}

void Write(Level level, Literal event, std::initializer_list<Field> fields) {
  State& s = GetState();
  std::string line;
  line.reserve(160);
  {
    absl::MutexLock lock(&s.mu);
    if (level < s.min_level) return;
    line.append("{\"ts\":");
    json::AppendString(&line,
                       absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()));
    absl::StrAppend(&line, ",\"level\":\"", LevelName(level), "\",\"svc\":");
    json::AppendString(&line, s.service);
  }
  line.append(",\"event\":");
  json::AppendString(&line, event.view());
  for (const Field& f : fields) {
    line.push_back(',');
    json::AppendString(&line, f.key.view());
    line.push_back(':');
    AppendValue(&line, f.value);
  }
  line.push_back('}');

  absl::MutexLock lock(&s.mu);
  if (s.sink) {
    s.sink(line);
  } else {
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace crm::log
