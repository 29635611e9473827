// Structured logging: one JSON object per line on stderr (or a sink set by
// tests), e.g.
//   {"ts":"2026-11-29T10:00:00.123Z","level":"info","svc":"contacts",
//    "event":"rpc.done","method":"/crm.contacts.v1.Contacts/GetPerson","code":"OK","ms":3.1}
//
// Made to keep personal data out of logs: event names and field keys must be
// string literals, and free text can only get in as a literal (`Literal`), as
// an opaque identifier that is checked character by character (`Id`, which
// refuses '@', '+', spaces and the like, so e-mail addresses, phone numbers
// and names do not pass), or as a status whose messages never carry personal
// data by project rule. There is deliberately no field type for an arbitrary
// std::string.
//
// Thread-safe: lines are written whole under a mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// A compile-time string: constructible from a string literal only.
class Literal {
 public:
  template <size_t N>
  consteval Literal(const char (&s)[N]) : s_(s, N - 1) {}  // NOLINT: implicit by design
  absl::string_view view() const { return s_; }

 private:
  absl::string_view s_;
};

// An opaque identifier (UUID, method name, service name, key id, SPIFFE id).
// Characters outside [A-Za-z0-9._:/=-] or over 200 bytes make it log as
// "[not-an-id]" instead of the value.
class Id {
 public:
  explicit Id(absl::string_view v);
  absl::string_view view() const { return v_; }

 private:
  absl::string_view v_;
};

using Value =
    std::variant<int64_t, double, bool, Literal, Id, absl::Duration, absl::Time, absl::Status>;

struct Field {
  Literal key;
  Value value;
  Field(Literal k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(Literal k, int64_t v) : key(k), value(v) {}
  Field(Literal k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(Literal k, double v) : key(k), value(v) {}
  Field(Literal k, bool v) : key(k), value(v) {}
  Field(Literal k, Literal v) : key(k), value(v) {}
  Field(Literal k, Id v) : key(k), value(v) {}
  Field(Literal k, absl::Duration v) : key(k), value(v) {}
  Field(Literal k, absl::Time v) : key(k), value(v) {}
  Field(Literal k, const absl::Status& v) : key(k), value(v) {}
};

// Process-wide settings, set once from main.cc before threads start.
void SetService(absl::string_view service);
void SetMinLevel(Level level);
// Parses "debug", "info", "warn" or "error".
bool ParseLevel(absl::string_view text, Level* level);
// SetService + SetMinLevel from settings; INVALID_ARGUMENT naming the
// setting log_level if `level` is not a level name.
absl::Status Configure(absl::string_view service, absl::string_view level);
// Replaces stderr as the destination of whole lines (without the newline).
// Pass nullptr to restore stderr. For tests.
void SetSink(std::function<void(absl::string_view line)> sink);

void Write(Level level, Literal event, std::initializer_list<Field> fields);

inline void Debug(Literal event, std::initializer_list<Field> fields = {}) {
  Write(Level::kDebug, event, fields);
}
inline void Info(Literal event, std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, event, fields);
}
inline void Warn(Literal event, std::initializer_list<Field> fields = {}) {
  Write(Level::kWarn, event, fields);
}
inline void Error(Literal event, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, event, fields);
}

}  // namespace crm::log
