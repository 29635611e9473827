#include "services/consent/rules.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/rpc/handler.h"

namespace crm::consent {
namespace {

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

v1::Decision Answer(bool allowed, v1::Reason reason) {
  v1::Decision d;
  d.set_allowed(allowed);
  d.set_reason(reason);
  return d;
}

}  // namespace

void Apply(PurposeState& state, const v1::LedgerEntry& entry) {
  state.last_given_at = TimeOf(entry.given_at());
  switch (entry.action()) {
    case v1::ACTION_GRANT:
      state.kind = PurposeState::Kind::kGranted;
      state.notice_version = entry.notice_version();
      state.expires_at =
          entry.has_expires_at() ? TimeOf(entry.expires_at()) : absl::InfiniteFuture();
      return;
    case v1::ACTION_WITHDRAW:
      if (state.kind == PurposeState::Kind::kObjected) return;  // only a grant lifts it
      state.kind = PurposeState::Kind::kWithdrawn;
      break;
    case v1::ACTION_OBJECT:
      state.kind = PurposeState::Kind::kObjected;
      break;
    default:
      return;  // never stored
  }
  state.notice_version.clear();
  state.expires_at = absl::InfiniteFuture();
}

PurposeState Fold(absl::Span<const v1::LedgerEntry> entries, absl::string_view purpose_id) {
  PurposeState state;
  for (const v1::LedgerEntry& e : entries) {
    if (e.purpose_id() == purpose_id) Apply(state, e);
  }
  return state;
}

bool ObjectionApplies(const v1::Purpose& purpose) {
  return purpose.direct_marketing() || purpose.basis() == v1::LAWFUL_BASIS_LEGITIMATE_INTEREST ||
         purpose.basis() == v1::LAWFUL_BASIS_PUBLIC_TASK;
}

v1::Decision Decide(const v1::Purpose& purpose, const PurposeState& state, bool restricted,
                    absl::Time now) {
  if (restricted) return Answer(false, v1::REASON_RESTRICTED);
  if (state.kind == PurposeState::Kind::kObjected) return Answer(false, v1::REASON_OBJECTED);
  if (purpose.basis() != v1::LAWFUL_BASIS_CONSENT) {
    return Answer(true, v1::REASON_BASIS_NOT_CONSENT);
  }
  switch (state.kind) {
    case PurposeState::Kind::kNone:
      return Answer(false, v1::REASON_NO_RECORD);
    case PurposeState::Kind::kWithdrawn:
      return Answer(false, v1::REASON_WITHDRAWN);
    case PurposeState::Kind::kGranted:
      return now < state.expires_at ? Answer(true, v1::REASON_GRANTED)
                                    : Answer(false, v1::REASON_EXPIRED);
    case PurposeState::Kind::kObjected:
      break;  // answered above
  }
  return Answer(false, v1::REASON_OBJECTED);
}

absl::Status ValidateStatement(const v1::Statement& s, absl::Time now) {
  if (!base::IsUuid(s.subject_id())) {
    return absl::InvalidArgumentError("statement.subject_id: must be a UUID");
  }
  CRM_RETURN_IF_ERROR(base::ValidateName("statement.purpose_id", s.purpose_id(), 64));
  CRM_RETURN_IF_ERROR(base::ValidateName("statement.source", s.source(), 64));
  if (s.method() == v1::METHOD_UNSPECIFIED || !v1::Method_IsValid(s.method())) {
    return absl::InvalidArgumentError("statement.method: required (web form, e-mail link, ...)");
  }
  if (!s.language().empty() && (s.language().size() < 2 || s.language().size() > 3 ||
                                !std::all_of(s.language().begin(), s.language().end(),
                                             [](char c) { return c >= 'a' && c <= 'z'; }))) {
    return absl::InvalidArgumentError("statement.language: a 2- or 3-letter lower-case code");
  }
  if (!s.notice_version().empty() &&
      (s.notice_version().size() != 64 ||
       !std::all_of(s.notice_version().begin(), s.notice_version().end(),
                    [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))) {
    return absl::InvalidArgumentError("statement.notice_version: 64 lower-case hex digits");
  }
  if (s.has_given_at()) {
    CRM_ASSIGN_OR_RETURN(const absl::Time given_at,
                         rpc::GetTime("statement.given_at", s.given_at()));
    if (given_at > now + kMaxClockSkew) {
      return absl::InvalidArgumentError("statement.given_at: in the future");
    }
  }
  CRM_RETURN_IF_ERROR(base::ValidateText("statement.source_address", s.source_address(), 0, 64));
  CRM_RETURN_IF_ERROR(base::ValidateText("statement.user_agent", s.user_agent(), 0, 512));
  return absl::OkStatus();
}

absl::StatusOr<Plan> PlanStatement(const v1::Purpose& purpose, const PurposeState& state,
                                   v1::Action action, const v1::Statement& statement,
                                   absl::Time given_at, absl::string_view current_notice,
                                   bool known_notice) {
  if (given_at < state.last_given_at) {
    return absl::InvalidArgumentError(
        "statement.given_at: before the subject's latest entry for this purpose");
  }
  Plan plan;
  switch (action) {
    case v1::ACTION_GRANT: {
      if (purpose.basis() != v1::LAWFUL_BASIS_CONSENT) {
        return absl::FailedPreconditionError(
            "statement.purpose_id: its lawful basis is not consent; there is nothing to grant");
      }
      if (statement.notice_version().empty()) {
        return absl::InvalidArgumentError("statement.notice_version: required for a grant");
      }
      if (!known_notice) {
        return absl::InvalidArgumentError(
            "statement.notice_version: not a notice of this purpose and language");
      }
      if (statement.notice_version() != current_notice) {
        return absl::FailedPreconditionError(absl::StrCat(
            "statement.notice_version: superseded; the current notice is ", current_notice));
      }
      if (purpose.validity_days() > 0) {
        plan.expires_at = given_at + absl::Hours(24) * purpose.validity_days();
      }
      // A grant in force on the same notice changes nothing (an expired one
      // is renewed).
      plan.record =
          !(state.kind == PurposeState::Kind::kGranted &&
            state.notice_version == statement.notice_version() && given_at < state.expires_at);
      return plan;
    }
    case v1::ACTION_WITHDRAW:
      plan.record = state.kind == PurposeState::Kind::kGranted;
      return plan;
    case v1::ACTION_OBJECT:
      if (!ObjectionApplies(purpose)) {
        return absl::FailedPreconditionError(
            "statement.purpose_id: an objection (Art. 21) applies to legitimate interest, "
            "public task or direct marketing");
      }
      plan.record = state.kind != PurposeState::Kind::kObjected;
      return plan;
    default:
      return absl::InvalidArgumentError("action: grant, withdraw or object");
  }
}

}  // namespace crm::consent
