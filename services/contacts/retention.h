// Retention rules per person status: a person in a status with a rule who has
// had no activity (a change or a contact-history entry) for the rule's period
// is due for erasure. The sweeper records such subjects in retention_due
// ("due"), drops the ones active again, and submits an erasure request
// (reason retention) to the erasure orchestrator for each one due, which
// then shows "erasure_requested" (ListRetentionDue). Without an orchestrator
// configured they wait as "due" for an operator.
//
// Rules come from the setting retention_rules, e.g.
//   "lead=730,prospect=730,former_customer=1095"   (status=days, lower case
//   status names without the PERSON_STATUS_ prefix).
//
// Thread-safe (pure parsing; Sweep uses the caller's transaction).
#pragma once

#include <cstdint>
#include <functional>
#include <pqxx/transaction>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/pg/pool.h"

namespace crm::contacts {

struct RetentionRule {
  int status = 0;                // crm.contacts.v1.PersonStatus
  int64_t days = 0;              // inactivity before a person is due
  std::string Describe() const;  // "lead inactive 730 days"
};

inline constexpr char kDefaultRetentionRules[] = "lead=730,prospect=730,former_customer=1095";

// The rules of a retention_rules setting; INVALID_ARGUMENT naming
// "retention_rules" and the bad entry's position. Empty: no rules.
absl::StatusOr<std::vector<RetentionRule>> ParseRetentionRules(absl::string_view text);

// Records in retention_due every person due under `rules` at `now` (once),
// and removes entries of persons no longer due. Returns how many are due.
absl::StatusOr<int64_t> SweepRetention(pqxx::work& tx, const std::vector<RetentionRule>& rules,
                                       absl::Time now);

// Opens the erasure request of one subject (crm.erasure.v1 SubmitErasure,
// reason retention); OK also when one is open already.
using ErasureSubmitter = std::function<absl::Status(const std::string& subject_id)>;

// Submits, oldest first, up to `max` subjects still "due", each marked
// "erasure_requested" once `submit` accepted it. Stops at the first
// refusal and returns it (what was submitted stays marked; the rest waits
// for the next sweep); otherwise how many were submitted.
absl::StatusOr<int64_t> SubmitDueErasures(pg::Pool& db, const ErasureSubmitter& submit,
                                          int max = 100);

}  // namespace crm::contacts
