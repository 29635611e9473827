#include "services/audit/leaf.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"

namespace crm::audit {

namespace {

using crm::audit::v1::Event;

void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void PutStr(std::string& out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

void PutI64(std::string& out, int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v);
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((u >> shift) & 0xff));
}

absl::Status Bad(size_t index, absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat("events[", index, "].", field, ": ", rule));
}

bool NameChars(absl::string_view s, bool allow_dot) {
  for (char c : s) {
    const bool ok = absl::ascii_islower(static_cast<unsigned char>(c)) ||
                    absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                    (allow_dot && c == '.');
    if (!ok) return false;
  }
  return true;
}

absl::Status Text(size_t index, absl::string_view field, absl::string_view value, size_t max) {
  if (value.size() > max || !base::IsValidUtf8Text(value)) {
    return Bad(index, field, absl::StrCat("must be text of at most ", max, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeLeaf(const LeafRecord& r) {
  std::string out;
  out.reserve(128 + r.clear_part.size() + r.sealed.size());
  out.push_back(static_cast<char>(kLeafFormatV1));
  PutStr(out, r.event_id);
  PutI64(out, absl::ToUnixMicros(r.event_time));
  PutStr(out, r.service);
  PutStr(out, r.actor_user_id);
  PutStr(out, r.actor_service);
  PutStr(out, r.actor_session);
  PutStr(out, r.action);
  PutStr(out, r.resource);
  PutStr(out, r.subject_id);
  out.push_back(static_cast<char>(r.outcome & 0xff));
  PutStr(out, r.request_id);
  PutStr(out, r.key_scope);
  out.push_back(r.has_changes ? 1 : 0);
  PutStr(out, r.clear_part);
  PutStr(out, r.sealed);
  return out;
}

absl::Status ValidateEvent(const Event& e, size_t i) {
  if (!base::IsUuid(e.event_id())) return Bad(i, "event_id", "must be a UUID");
  if (!e.has_time()) return Bad(i, "time", "required");
  // 2000-01-01 .. 9999-12-31.
  if (e.time().seconds() < 946684800 || e.time().seconds() > 253402300799 || e.time().nanos() < 0 ||
      e.time().nanos() > 999'999'999) {
    return Bad(i, "time", "must be between the years 2000 and 9999");
  }
  if (e.service().empty() || e.service().size() > 63 || !NameChars(e.service(), false)) {
    return Bad(i, "service", "must be 1..63 of a-z 0-9 - _");
  }
  if (e.action().empty() || e.action().size() > 128 || !NameChars(e.action(), true)) {
    return Bad(i, "action", "must be 1..128 of a-z 0-9 . - _");
  }
  if (absl::Status s = Text(i, "resource", e.resource(), 256); !s.ok()) return s;
  if (absl::Status s = Text(i, "request_id", e.request_id(), 256); !s.ok()) return s;
  if (absl::Status s = Text(i, "actor.user_id", e.actor().user_id(), 256); !s.ok()) return s;
  if (absl::Status s = Text(i, "actor.service_identity", e.actor().service_identity(), 256);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Text(i, "actor.session_id", e.actor().session_id(), 256); !s.ok()) return s;
  if (!e.subject_id().empty() && !base::IsUuid(e.subject_id())) {
    return Bad(i, "subject_id", "must be empty or a UUID");
  }
  if (!crm::audit::v1::Outcome_IsValid(e.outcome())) return Bad(i, "outcome", "unknown value");
  if (e.details_size() > 100) return Bad(i, "details", "at most 100");
  if (e.changes_size() > 200) return Bad(i, "changes", "at most 200");
  for (int d = 0; d < e.details_size(); ++d) {
    const std::string field = absl::StrCat("details[", d, "]");
    if (e.details(d).key().empty() || e.details(d).key().size() > 64 ||
        !base::IsValidUtf8Text(e.details(d).key())) {
      return Bad(i, absl::StrCat(field, ".key"), "must be 1..64 bytes of text");
    }
    if (absl::Status s = Text(i, absl::StrCat(field, ".value"), e.details(d).value(), 4096);
        !s.ok()) {
      return s;
    }
  }
  for (int c = 0; c < e.changes_size(); ++c) {
    const std::string field = absl::StrCat("changes[", c, "]");
    if (e.changes(c).field().empty() || e.changes(c).field().size() > 128 ||
        !base::IsValidUtf8Text(e.changes(c).field())) {
      return Bad(i, absl::StrCat(field, ".field"), "must be 1..128 bytes of text");
    }
    if (absl::Status s = Text(i, absl::StrCat(field, ".old_value"), e.changes(c).old_value(), 4096);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Text(i, absl::StrCat(field, ".new_value"), e.changes(c).new_value(), 4096);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = Text(i, "source_address", e.source_address(), 512); !s.ok()) return s;
  return Text(i, "user_agent", e.user_agent(), 512);
}

std::string KeyScopeOf(const Event& e) {
  if (!e.subject_id().empty())
    return absl::StrCat("subject:", absl::AsciiStrToLower(e.subject_id()));
  if (!e.actor().user_id().empty()) return absl::StrCat("actor:", e.actor().user_id());
  const absl::Time t = absl::FromUnixSeconds(e.time().seconds());
  return absl::StrCat("day:", absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()));
}

bool HasPersonalPart(const Event& e) {
  return e.changes_size() > 0 || !e.source_address().empty() || !e.user_agent().empty() ||
         std::any_of(e.details().begin(), e.details().end(),
                     [](const crm::audit::v1::Detail& d) { return d.personal(); });
}

SplitResult Split(const Event& e) {
  SplitResult out;
  LeafRecord& r = out.record;
  r.event_id = absl::AsciiStrToLower(e.event_id());
  r.event_time = absl::FromUnixSeconds(e.time().seconds()) + absl::Nanoseconds(e.time().nanos());
  r.event_time = absl::FromUnixMicros(absl::ToUnixMicros(r.event_time));  // PostgreSQL precision
  r.service = e.service();
  r.actor_user_id = e.actor().user_id();
  r.actor_service = e.actor().service_identity();
  r.actor_session = e.actor().session_id();
  r.action = e.action();
  r.resource = e.resource();
  r.subject_id = absl::AsciiStrToLower(e.subject_id());
  r.outcome = static_cast<int>(e.outcome());
  r.request_id = e.request_id();
  r.key_scope = KeyScopeOf(e);
  r.has_changes = e.changes_size() > 0;

  Event clear;
  Event personal;
  for (const auto& d : e.details())
    *(d.personal() ? personal.add_details() : clear.add_details()) = d;
  *personal.mutable_changes() = e.changes();
  personal.set_source_address(e.source_address());
  personal.set_user_agent(e.user_agent());
  if (clear.details_size() > 0) clear.SerializeToString(&r.clear_part);
  if (HasPersonalPart(e)) {
    out.personal_plaintext.emplace();
    personal.SerializeToString(&*out.personal_plaintext);
  }
  return out;
}

Event Join(const LeafRecord& r, const std::string& personal_plaintext) {
  Event e;
  e.set_event_id(r.event_id);
  const int64_t micros = absl::ToUnixMicros(r.event_time);
  e.mutable_time()->set_seconds(micros / 1'000'000 - (micros % 1'000'000 < 0 ? 1 : 0));
  e.mutable_time()->set_nanos(
      static_cast<int32_t>(((micros % 1'000'000) + 1'000'000) % 1'000'000 * 1000));
  e.set_service(r.service);
  e.mutable_actor()->set_user_id(r.actor_user_id);
  e.mutable_actor()->set_service_identity(r.actor_service);
  e.mutable_actor()->set_session_id(r.actor_session);
  e.set_action(r.action);
  e.set_resource(r.resource);
  e.set_subject_id(r.subject_id);
  e.set_outcome(static_cast<crm::audit::v1::Outcome>(r.outcome));
  e.set_request_id(r.request_id);
  Event part;
  if (!r.clear_part.empty() && part.ParseFromString(r.clear_part)) {
    for (const auto& d : part.details()) *e.add_details() = d;
  }
  part.Clear();
  if (!personal_plaintext.empty() && part.ParseFromString(personal_plaintext)) {
    for (const auto& d : part.details()) *e.add_details() = d;
    *e.mutable_changes() = part.changes();
    e.set_source_address(part.source_address());
    e.set_user_agent(part.user_agent());
  }
  return e;
}

std::string SealAad(const std::string& event_id) {
  return absl::StrCat("crm.audit.personal.v1:", event_id);
}

}  // namespace crm::audit
