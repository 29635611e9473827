#include "services/contacts/retention.h"

#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "libs/base/status_macros.h"

namespace crm::contacts {

std::string RetentionRule::Describe() const {
  const std::string name = absl::AsciiStrToLower(
      crm::contacts::v1::PersonStatus_Name(static_cast<crm::contacts::v1::PersonStatus>(status)));
  return absl::StrCat(absl::StripPrefix(name, "person_status_"), " inactive ", days, " days");
}

absl::StatusOr<std::vector<RetentionRule>> ParseRetentionRules(absl::string_view text) {
  std::vector<RetentionRule> rules;
  if (absl::StripAsciiWhitespace(text).empty()) return rules;
  int i = 0;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    ++i;
    const absl::Status bad = absl::InvalidArgumentError(absl::StrCat(
        "retention_rules: entry ", i, " must be <status>=<days> (e.g. lead=730), days 1..36500"));
    std::vector<absl::string_view> kv = absl::StrSplit(absl::StripAsciiWhitespace(entry), '=');
    if (kv.size() != 2) return bad;
    crm::contacts::v1::PersonStatus status;
    const std::string name =
        absl::StrCat("PERSON_STATUS_", absl::AsciiStrToUpper(absl::StripAsciiWhitespace(kv[0])));
    int64_t days = 0;
    if (!crm::contacts::v1::PersonStatus_Parse(name, &status) ||
        status == crm::contacts::v1::PERSON_STATUS_UNSPECIFIED ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(kv[1]), &days) || days < 1 || days > 36500) {
      return bad;
    }
    for (const RetentionRule& r : rules) {
      if (r.status == status) {
        return absl::InvalidArgumentError(
            absl::StrCat("retention_rules: entry ", i, " repeats a status"));
      }
    }
    rules.push_back({.status = status, .days = days});
  }
  return rules;
}

absl::StatusOr<int64_t> SweepRetention(pqxx::work& tx, const std::vector<RetentionRule>& rules,
                                       absl::Time now) {
  if (rules.empty()) {
    tx.exec("DELETE FROM retention_due");
    return int64_t{0};
  }
  const int64_t now_micros = absl::ToUnixMicros(now);
  constexpr char kTs[] = "('epoch'::timestamptz + $1::bigint * interval '1 microsecond')";
  // Drop entries of persons active again, or whose status has no rule now.
  std::vector<std::string> kept;
  for (const RetentionRule& r : rules) {
    tx.exec_params(absl::StrCat("INSERT INTO retention_due (subject_id, rule, due_since) "
                                "SELECT subject_id, $2, ",
                                kTs,
                                " FROM persons WHERE status = $3 AND NOT restricted AND "
                                "last_activity_at < ",
                                kTs, " - $4::bigint * interval '1 day' ON CONFLICT DO NOTHING"),
                   now_micros, r.Describe(), r.status, r.days);
    kept.push_back(absl::StrCat("(p.status = ", r.status, " AND p.last_activity_at < ", kTs, " - ",
                                r.days, " * interval '1 day')"));
  }
  const std::string still_due = absl::StrJoin(kept, " OR ");
  tx.exec_params(absl::StrCat("DELETE FROM retention_due d USING persons p WHERE p.subject_id = "
                              "d.subject_id AND (p.restricted OR NOT (",
                              still_due, "))"),
                 now_micros);
  return tx.exec("SELECT count(*) FROM retention_due")[0][0].as<int64_t>();
}

absl::StatusOr<int64_t> SubmitDueErasures(pg::Pool& db, const ErasureSubmitter& submit, int max) {
  CRM_ASSIGN_OR_RETURN(
      std::vector<std::string> due, db.TransactValue<std::vector<std::string>>([&](pqxx::work& tx) {
        std::vector<std::string> ids;
        for (const auto& row :
             tx.exec_params("SELECT subject_id::text FROM retention_due WHERE state = 'due' "
                            "ORDER BY due_since, subject_id LIMIT $1",
                            max)) {
          ids.push_back(row[0].as<std::string>());
        }
        return ids;
      }));
  int64_t submitted = 0;
  for (const std::string& subject : due) {
    CRM_RETURN_IF_ERROR(submit(subject));
    CRM_RETURN_IF_ERROR(db.Transact([&](pqxx::work& tx) {
      tx.exec_params(
          "UPDATE retention_due SET state = 'erasure_requested' WHERE subject_id = $1::uuid",
          subject);
      return absl::OkStatus();
    }));
    ++submitted;
  }
  return submitted;
}

}  // namespace crm::contacts
