// The consent rules, without storage: how a subject's ledger entries for one
// purpose fold into a state, what a check decides from that state, and what
// a new grant, withdrawal or objection means against it (record it, answer
// "nothing changed", or refuse it with a defined error). The service runs
// these over the entries it reads; the decision table is in
// proto/crm/consent/v1/consent.proto.
//
// Pure functions over the contract's messages: thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "crm/consent/v1/consent.pb.h"

namespace crm::consent {

// How far in the future a statement's given_at may lie (clock skew between
// the collecting system and this service).
inline constexpr absl::Duration kMaxClockSkew = absl::Minutes(5);

// Where one subject stands on one purpose after its entries.
struct PurposeState {
  enum class Kind { kNone, kGranted, kWithdrawn, kObjected };
  Kind kind = Kind::kNone;
  std::string notice_version;                       // of the grant in force
  absl::Time expires_at = absl::InfiniteFuture();   // of the grant in force
  absl::Time last_given_at = absl::InfinitePast();  // of the latest entry
};

// `state` after `entry` (of the same subject and purpose). An objection
// stays in force until a grant: a withdrawal after it changes nothing.
void Apply(PurposeState& state, const v1::LedgerEntry& entry);

// The state of `purpose_id` after `entries` (oldest first; entries of other
// purposes are skipped).
PurposeState Fold(absl::Span<const v1::LedgerEntry> entries, absl::string_view purpose_id);

// The decision for a subject in `state` on `purpose` at `now`.
v1::Decision Decide(const v1::Purpose& purpose, const PurposeState& state, bool restricted,
                    absl::Time now);

// Whether an objection (Art. 21) applies to `purpose`: bases legitimate
// interest and public task, and every direct-marketing purpose.
bool ObjectionApplies(const v1::Purpose& purpose);

// Checks a statement's own fields (not against the ledger): subject_id a
// UUID, purpose_id and source names, method given, language, given_at not
// in the future (beyond kMaxClockSkew), evidence within its limits.
// INVALID_ARGUMENT naming the field ("statement.source: ...").
absl::Status ValidateStatement(const v1::Statement& s, absl::Time now);

// What recording `action` means against `state`:
//   record = true: append an entry (expires_at set for a grant of a purpose
//     with a validity period, counted from given_at);
//   record = false: nothing changes (a grant in force with the same notice;
//     a withdrawal with no grant in force; an objection already in force);
//   an error: INVALID_ARGUMENT for a grant without notice_version, a notice
//     version never published for the purpose and language, or a given_at
//     before the latest entry; FAILED_PRECONDITION for a superseded notice
//     version (naming the current one), a grant for a purpose not based on
//     consent, an objection that does not apply.
// `given_at` is the statement's time (its given_at, or now);
// `current_notice` the purpose's current version in the statement's
// language ("" if none), `known_notice` whether the cited version was ever
// published for it.
struct Plan {
  bool record = false;
  absl::Time expires_at = absl::InfiniteFuture();
};
absl::StatusOr<Plan> PlanStatement(const v1::Purpose& purpose, const PurposeState& state,
                                   v1::Action action, const v1::Statement& statement,
                                   absl::Time given_at, absl::string_view current_notice,
                                   bool known_notice);

}  // namespace crm::consent
