// An audit event as the log stores it, and its canonical leaf encoding.
//
// An incoming crm.audit.v1.Event is split in three:
//  - the record: who, what, about whom, when, outcome, request id (columns of
//    audit_log, in clear: ids, names of actions and services, no personal data);
//  - the clear part: details marked personal = false (serialized Event);
//  - the personal part: details marked personal, field changes (old and new
//    values), source address and user agent (serialized Event), sealed under
//    the data key of the event's key scope with the event id as associated data.
//
// Leaf encoding, version 1 (docs/audit.md), every string as a 4-byte
// big-endian length followed by its bytes, integers big-endian:
//   0x01 | str event_id | i64 event_time (Unix microseconds) | str service |
//   str actor_user_id | str actor_service | str actor_session | str action |
//   str resource | str subject_id | u8 outcome | str request_id | str key_scope |
//   u8 has_changes | str clear_part | str sealed
// (absent parts are empty strings). The Merkle leaf hash is
// SHA-256(0x00 || leaf).
//
// Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "crm/audit/v1/ingest.pb.h"

namespace crm::audit {

inline constexpr uint8_t kLeafFormatV1 = 0x01;

// One row of audit_log's leaf content.
struct LeafRecord {
  std::string event_id;  // canonical lower-case UUID
  absl::Time event_time;
  std::string service;
  std::string actor_user_id;
  std::string actor_service;
  std::string actor_session;
  std::string action;
  std::string resource;
  std::string subject_id;
  int outcome = 0;
  std::string request_id;
  std::string key_scope;
  bool has_changes = false;
  std::string clear_part;  // serialized Event of non-personal details; empty if none
  std::string sealed;      // sealed personal part; empty if none

  friend bool operator==(const LeafRecord&, const LeafRecord&) = default;
};

// The canonical leaf bytes of `record`.
std::string EncodeLeaf(const LeafRecord& record);

// OK if `event` (position `index` of a batch) can be logged; otherwise
// INVALID_ARGUMENT naming the field as "events[<index>].<field>": event_id
// (UUID), time (set, within year 2000..9999), service (1..63 of [a-z0-9-]),
// action (1..128 of [a-z0-9._-]), resource/request_id/actor ids (at most 256
// bytes of text), subject_id (empty or UUID), outcome (a known value), each
// detail key (1..64) and value (at most 4096 bytes), at most 100 details and
// 200 changes, source address/user agent (at most 512 bytes). Messages never
// contain values.
absl::Status ValidateEvent(const crm::audit::v1::Event& event, size_t index);

// The scope whose data key seals the event's personal part: "subject:<id>",
// else "actor:<user id>", else "day:<YYYY-MM-DD>" of the event time (UTC).
std::string KeyScopeOf(const crm::audit::v1::Event& event);

// True if the event has a personal part: details marked personal, field
// changes, a source address or a user agent.
bool HasPersonalPart(const crm::audit::v1::Event& event);

struct SplitResult {
  LeafRecord record;  // everything but `sealed`
  // The personal part to seal, if the event has any.
  std::optional<std::string> personal_plaintext;
};
// Splits a validated event (see the header comment).
SplitResult Split(const crm::audit::v1::Event& event);

// The event again, from a record and its opened personal part (empty when
// none, erased or expired).
crm::audit::v1::Event Join(const LeafRecord& record, const std::string& personal_plaintext);

// The associated data binding a sealed personal part to its event.
std::string SealAad(const std::string& event_id);

}  // namespace crm::audit
