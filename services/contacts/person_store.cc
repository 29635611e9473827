#include "services/contacts/person_store.h"

#include <algorithm>
#include <pqxx/binarystring>
#include <pqxx/pqxx>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/base/uuid.h"
#include "libs/pg/array.h"
#include "libs/pg/copy_text.h"
#include "libs/pg/prepared.h"
#include "libs/pg/sql_time.h"

namespace crm::contacts {

namespace {

// The columns RowToPerson reads, in order.
constexpr char kColumns[] =
    "p.subject_id::text, p.status, COALESCE(p.company_id::text, ''), "
    "COALESCE(p.team_id::text, ''), p.restricted, p.restriction_reason, p.notes_sensitive, "
    "p.given_name, p.family_name, p.emails, p.phones, p.addresses, p.job_title, "
    "p.personal_id_number, p.notes, p.reg_channel, p.reg_source, p.created_by, " CRM_TS(
        "p.created_at") ", " CRM_TS("p.updated_at") ", " CRM_TS("p.last_activity_at") ", "
    "p.version, "
    "ARRAY(SELECT o.user_id::text FROM person_owners o WHERE o.subject_id = p.subject_id "
    "ORDER BY 1)::text, "
    "(SELECT k.wrapped FROM subject_keys k WHERE k.subject_id = p.subject_id)";
constexpr int kFirstSealed = 7;

// Visibility of row p of a table with team_id, whose owners are in
// `owners` keyed by `id`, to ($1 all, $2 user id or '', $3 team ids).
std::string VisibleTo(absl::string_view owners, absl::string_view id) {
  return absl::StrCat("($1::boolean OR p.team_id = ANY($3::uuid[]) OR EXISTS (SELECT 1 FROM ",
                      owners, " o WHERE o.", id, " = p.", id,
                      " AND o.user_id = NULLIF($2, '')::uuid))");
}
const std::string& kVisible = *new std::string(VisibleTo("person_owners", "subject_id"));
const std::string& kCompanyVisible = *new std::string(VisibleTo("company_owners", "company_id"));

constexpr char kCompanyColumns[] =
    "p.company_id::text, COALESCE(p.team_id::text, ''), p.name, p.tax_ids, p.addresses, "
    "p.billing, p.created_by, " CRM_TS("p.created_at") ", " CRM_TS(
        "p.updated_at") ", p.version, "
                        "ARRAY(SELECT o.user_id::text FROM company_owners o WHERE o.company_id = "
                        "p.company_id ORDER BY 1)::text";
constexpr char kInsertCompanyKeySql[] =
    "INSERT INTO company_keys (company_id, wrapped, created_at) VALUES ($1::uuid, $2, now())";
constexpr char kInsertCompanySql[] =
    "INSERT INTO companies (company_id, team_id, name, tax_ids, addresses, billing, created_by, "
    "created_at, updated_at, version) VALUES ($1::uuid, NULLIF($2, '')::uuid, $3, "
    "NULLIF($4, ''::bytea), NULLIF($5, ''::bytea), NULLIF($6, ''::bytea), $7, " CRM_TS_PARAM(
        "$8") ", " CRM_TS_PARAM("$9") ", $10)";
constexpr char kUpdateCompanySql[] =
    "UPDATE companies SET name = $2, tax_ids = NULLIF($3, ''::bytea), "
    "addresses = NULLIF($4, ''::bytea), billing = NULLIF($5, ''::bytea), "
    "updated_at = " CRM_TS_PARAM("$6") ", version = $7 WHERE company_id = $1::uuid";
constexpr char kInsertCompanyOwnersSql[] =
    "INSERT INTO company_owners (company_id, user_id) "
    "SELECT $1::uuid, u FROM unnest($2::uuid[]) AS u ON CONFLICT DO NOTHING";
constexpr char kInsertCompanyLookupSql[] =
    "INSERT INTO company_lookup (kind, blind, company_id) "
    "SELECT u.kind, decode(u.blind, 'hex'), $3::uuid "
    "FROM unnest($1::text[], $2::text[]) AS u(kind, blind)";
constexpr char kDeleteCompanyLookupSql[] = "DELETE FROM company_lookup WHERE company_id = $1::uuid";
// The keys of $1 (kinds) and $2 (blinds in hex) registered in `table` to an
// owner (column `id`) other than $3 ('' for none): the key's index and the
// owner, in key order. One primary-key probe per key (a correlated subquery:
// for a batch's hundreds of keys the planner would otherwise hash the whole
// look-up table).
std::string OwnersOfKeysSql(absl::string_view table, absl::string_view id, bool first_only) {
  return absl::StrCat("SELECT n - 1, owner FROM (SELECT u.n, (SELECT l.", id, "::text FROM ", table,
                      " l WHERE l.kind = u.kind AND l.blind = decode(u.blind, 'hex')) AS owner "
                      "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(kind, blind, n)) "
                      "k WHERE owner <> $3 ORDER BY n",
                      first_only ? " LIMIT 1" : "");
}
const std::string& kCompanyOwnerOfKeysSql =
    *new std::string(OwnersOfKeysSql("company_lookup", "company_id", true));
constexpr char kCompanyKeySql[] = "SELECT wrapped FROM company_keys WHERE company_id = $1::uuid";

constexpr char kInsertKeySql[] =
    "INSERT INTO subject_keys (subject_id, wrapped, created_at) VALUES ($1::uuid, $2, "
    "now())";
constexpr char kInsertPersonSql[] =
    "INSERT INTO persons (subject_id, status, company_id, team_id, restricted, "
    "restriction_reason, notes_sensitive, given_name, family_name, emails, phones, addresses, "
    "job_title, personal_id_number, notes, reg_channel, reg_source, created_by, created_at, "
    "updated_at, last_activity_at, version) VALUES ($1::uuid, $2, NULLIF($3, '')::uuid, "
    "NULLIF($4, '')::uuid, $5, NULLIF($6, ''::bytea), $7, NULLIF($8, ''::bytea), "
    "NULLIF($9, ''::bytea), NULLIF($10, ''::bytea), NULLIF($11, ''::bytea), "
    "NULLIF($12, ''::bytea), NULLIF($13, ''::bytea), NULLIF($14, ''::bytea), "
    "NULLIF($15, ''::bytea), $16, $17, $18, " CRM_TS_PARAM("$19") ", " CRM_TS_PARAM(
        "$20") ", " CRM_TS_PARAM("$21") ", $22)";
constexpr char kUpdatePersonSql[] =
    "UPDATE persons SET status = $2, company_id = NULLIF($3, '')::uuid, "
    "team_id = NULLIF($4, '')::uuid, restricted = $5, restriction_reason = NULLIF($6, ''::bytea), "
    "notes_sensitive = $7, given_name = NULLIF($8, ''::bytea), "
    "family_name = NULLIF($9, ''::bytea), emails = NULLIF($10, ''::bytea), "
    "phones = NULLIF($11, ''::bytea), addresses = NULLIF($12, ''::bytea), "
    "job_title = NULLIF($13, ''::bytea), personal_id_number = NULLIF($14, ''::bytea), "
    "notes = NULLIF($15, ''::bytea), updated_at = " CRM_TS_PARAM(
        "$16") ", last_activity_at = " CRM_TS_PARAM("$17") ", version = $18 "
                                                           "WHERE subject_id = $1::uuid";
constexpr char kInsertLookupSql[] =
    "INSERT INTO person_lookup (kind, blind, subject_id) "
    "SELECT u.kind, decode(u.blind, 'hex'), $3::uuid "
    "FROM unnest($1::text[], $2::text[]) AS u(kind, blind)";
constexpr char kDeleteLookupSql[] = "DELETE FROM person_lookup WHERE subject_id = $1::uuid";
const std::string& kOwnerOfKeysSql =
    *new std::string(OwnersOfKeysSql("person_lookup", "subject_id", true));
const std::string& kOwnersOfKeysSql =
    *new std::string(OwnersOfKeysSql("person_lookup", "subject_id", false));
// The columns of InsertMany's COPY rows.
constexpr char kPersonCopyColumns[] =
    "subject_id, status, company_id, team_id, restricted, restriction_reason, notes_sensitive, "
    "given_name, family_name, emails, phones, addresses, job_title, personal_id_number, notes, "
    "reg_channel, reg_source, created_by, created_at, updated_at, last_activity_at, version";
// GetForMailing: the restriction flag for every person asked about; the
// sealed given name and e-mail addresses only of unrestricted ones; the
// wrapped key only where there is an address to open (a primary-key probe
// per person, like kColumns').
constexpr char kMailingSql[] =
    "SELECT p.subject_id::text, p.restricted, "
    "CASE WHEN p.restricted THEN NULL ELSE p.given_name END, "
    "CASE WHEN p.restricted THEN NULL ELSE p.emails END, "
    "CASE WHEN p.restricted OR p.emails IS NULL THEN NULL ELSE "
    "(SELECT k.wrapped FROM subject_keys k WHERE k.subject_id = p.subject_id) END "
    "FROM persons p WHERE p.subject_id = ANY($1::uuid[])";
constexpr char kWrappedKeySql[] = "SELECT wrapped FROM subject_keys WHERE subject_id = $1::uuid";
constexpr char kDeleteOwnersSql[] = "DELETE FROM person_owners WHERE subject_id = $1::uuid";
constexpr char kInsertOwnersSql[] =
    "INSERT INTO person_owners (subject_id, user_id) "
    "SELECT $1::uuid, u FROM unnest($2::uuid[]) AS u ON CONFLICT DO NOTHING";

constexpr char kCountSql[] =
    "SELECT (SELECT count(*) FROM persons WHERE subject_id = $1::uuid), "
    "(SELECT count(*) FROM interactions WHERE subject_id = $1::uuid), "
    "(SELECT count(*) FROM person_lookup WHERE subject_id = $1::uuid AND kind = 'email'), "
    "(SELECT count(*) FROM person_lookup WHERE subject_id = $1::uuid AND kind = 'phone'), "
    "EXISTS (SELECT 1 FROM subject_keys WHERE subject_id = $1::uuid), "
    "(SELECT count(*) FROM invoices WHERE subject_id = $1::uuid), "
    "COALESCE((SELECT max(retain_until)::text FROM invoices WHERE subject_id = $1::uuid), '')";
constexpr char kAddInteractionSql[] =
    "INSERT INTO interactions (interaction_id, subject_id, kind, occurred_at, operator_user_id, "
    "summary, sensitive, created_at) VALUES ($1::uuid, $2::uuid, $3, " CRM_TS_PARAM(
        "$4") ", $5, $6, $7, " CRM_TS_PARAM("$8") ")";
constexpr char kTouchPersonSql[] =
    "UPDATE persons SET last_activity_at = GREATEST(last_activity_at, " CRM_TS_PARAM(
        "$2") ") WHERE subject_id = $1::uuid";
constexpr char kListInteractionsSql[] =
    "SELECT interaction_id::text, subject_id::text, kind, " CRM_TS(
        "occurred_at") ", operator_user_id, summary, sensitive, " CRM_TS("created_at") " "
    "FROM interactions WHERE subject_id = $1::uuid AND (NOT $2::boolean OR "
    "(occurred_at, interaction_id) < (" CRM_TS_PARAM("$3") ", $4::uuid)) "
    "ORDER BY occurred_at DESC, interaction_id DESC LIMIT $5";
constexpr char kErasePersonSql[] = "DELETE FROM persons WHERE subject_id = $1::uuid";
constexpr char kEraseKeySql[] = "DELETE FROM subject_keys WHERE subject_id = $1::uuid";
constexpr char kErasureSql[] =
    "SELECT subject_id::text, persons, emails, phones, key_existed, " CRM_TS(
        "completed_at") ", interactions, invoices_retained, COALESCE(retained_until::text, '') "
                        "FROM erasure_requests WHERE request_id = $1::uuid";
constexpr char kRecordErasureSql[] =
    "INSERT INTO erasure_requests (request_id, subject_id, persons, emails, phones, key_existed, "
    "completed_at, interactions, invoices_retained, retained_until) VALUES ($1::uuid, $2::uuid, "
    "$3, $4, $5, $6, " CRM_TS_PARAM("$7") ", $8, $9, NULLIF($10, '')::date)";

pqxx::binarystring Bin(const std::string& s) { return pqxx::binarystring(s.data(), s.size()); }

std::string Bytes(const pqxx::field& f) {
  return f.is_null() ? std::string() : pqxx::binarystring(f).str();
}

// The text form of a PostgreSQL text[] of UUIDs ("{a,b}"): no quoting needed.
std::vector<std::string> ParseUuidArray(const std::string& text) {
  std::vector<std::string> out;
  if (text.size() < 2) return out;
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(text).substr(1, text.size() - 2), ',')) {
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

StoredPerson RowToPerson(const pqxx::row& row) {
  StoredPerson p;
  p.subject_id = row[0].as<std::string>();
  p.status = row[1].as<int>();
  p.company_id = row[2].as<std::string>();
  p.team_id = row[3].as<std::string>();
  p.restricted = row[4].as<bool>();
  p.restriction_reason = Bytes(row[5]);
  p.notes_sensitive = row[6].as<bool>();
  int col = kFirstSealed;
  for (const char* field : kSealedPersonFields) {
    if (!row[col].is_null()) p.sealed[field] = Bytes(row[col]);
    ++col;
  }
  p.reg_channel = row[col++].as<std::string>();
  p.reg_source = row[col++].as<std::string>();
  p.created_by = row[col++].as<std::string>();
  p.created_at = absl::FromUnixMicros(row[col++].as<int64_t>());
  p.updated_at = absl::FromUnixMicros(row[col++].as<int64_t>());
  p.last_activity_at = absl::FromUnixMicros(row[col++].as<int64_t>());
  p.version = row[col++].as<int64_t>();
  p.owner_user_ids = ParseUuidArray(row[col++].as<std::string>());
  if (!row[col].is_null()) p.wrapped_key = Bytes(row[col]);
  return p;
}

std::string SealedOf(const StoredPerson& p, const char* field) {
  auto it = p.sealed.find(field);
  return it == p.sealed.end() ? std::string() : it->second;
}

// The visibility parameters ($1..$3) of `access`.
std::string UserParam(const Access& a) { return base::IsUuid(a.user_id) ? a.user_id : ""; }
std::string TeamsParam(const Access& a) {
  std::vector<std::string> teams;
  for (const std::string& t : a.team_ids) {
    if (base::IsUuid(t)) teams.push_back(t);
  }
  return pg::ArrayLiteral(teams);
}

std::pair<std::string, std::string> KeyArrays(const std::vector<LookupKey>& keys) {
  std::vector<std::string> kinds, blinds;
  for (const LookupKey& k : keys) {
    kinds.push_back(k.kind);
    blinds.push_back(absl::BytesToHexString(k.blind));
  }
  return {pg::ArrayLiteral(kinds), pg::ArrayLiteral(blinds)};
}

absl::Status InsertKeys(pqxx::work& tx, const std::string& subject_id,
                        const std::vector<LookupKey>& keys) {
  if (keys.empty()) return absl::OkStatus();
  auto [kinds, blinds] = KeyArrays(keys);
  pg::ExecPrepared(tx, kInsertLookupSql, kinds, blinds, subject_id);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<DuplicateKey>> PersonStore::FindOwnerOfKeys(
    pqxx::work& tx, const std::vector<LookupKey>& keys, const std::string& except_subject) {
  if (keys.empty()) return std::optional<DuplicateKey>();
  auto [kinds, blinds] = KeyArrays(keys);
  pqxx::result r = pg::ExecPrepared(tx, kOwnerOfKeysSql, kinds, blinds, except_subject);
  if (r.empty()) return std::optional<DuplicateKey>();
  return std::optional<DuplicateKey>(
      DuplicateKey{.key_index = r[0][0].as<size_t>(), .subject_id = r[0][1].as<std::string>()});
}

std::optional<size_t> PersonStore::AddFindOwnerOfKeys(pg::Pipeline& pipeline,
                                                      const std::vector<LookupKey>& keys) {
  if (keys.empty()) return std::nullopt;
  auto [kinds, blinds] = KeyArrays(keys);
  return pipeline.Add(kOwnerOfKeysSql, kinds, blinds, "");
}

std::optional<DuplicateKey> PersonStore::OwnerFound(const pg::Pipeline& pipeline,
                                                    std::optional<size_t> statement) {
  if (!statement.has_value() || !pipeline.Ran(*statement)) return std::nullopt;
  const std::vector<pg::Pipeline::Row>& rows = pipeline.Rows(*statement);
  if (rows.empty() || !rows[0][0].has_value() || !rows[0][1].has_value()) return std::nullopt;
  size_t index = 0;
  if (!absl::SimpleAtoi(*rows[0][0], &index)) return std::nullopt;
  return DuplicateKey{.key_index = index, .subject_id = *rows[0][1]};
}

absl::StatusOr<std::vector<DuplicateKey>> PersonStore::FindOwnersOfKeys(
    pqxx::work& tx, const std::vector<LookupKey>& keys) {
  std::vector<DuplicateKey> out;
  if (keys.empty()) return out;
  auto [kinds, blinds] = KeyArrays(keys);
  for (const pqxx::row& r : pg::ExecPrepared(tx, kOwnersOfKeysSql, kinds, blinds, "")) {
    out.push_back({.key_index = r[0].as<size_t>(), .subject_id = r[1].as<std::string>()});
  }
  return out;
}

absl::Status PersonStore::InsertMany(pqxx::work& tx, const std::vector<NewPerson>& persons) {
  if (persons.empty()) return absl::OkStatus();
  using pg::AppendCopyBytea;
  using pg::AppendCopyText;
  auto nullable = [](std::string& out, const std::string& s) {
    if (s.empty()) {
      out.append("\\N");
    } else {
      AppendCopyText(out, s);
    }
  };
  std::string keys, rows, owners, lookups;
  for (const NewPerson& n : persons) {
    const StoredPerson& p = *n.person;
    absl::StrAppend(&keys, p.subject_id, "\t");
    AppendCopyBytea(keys, *n.wrapped_key, false);
    absl::StrAppend(&keys, "\t", pg::CopyTime(p.created_at), "\n");

    absl::StrAppend(&rows, p.subject_id, "\t", p.status, "\t");
    nullable(rows, p.company_id);
    rows.push_back('\t');
    nullable(rows, p.team_id);
    absl::StrAppend(&rows, "\t", p.restricted ? "t" : "f", "\t");
    AppendCopyBytea(rows, p.restriction_reason, true);
    absl::StrAppend(&rows, "\t", p.notes_sensitive ? "t" : "f");
    for (const char* field : kSealedPersonFields) {
      rows.push_back('\t');
      AppendCopyBytea(rows, SealedOf(p, field), true);
    }
    for (const std::string* text : {&p.reg_channel, &p.reg_source, &p.created_by}) {
      rows.push_back('\t');
      AppendCopyText(rows, *text);
    }
    absl::StrAppend(&rows, "\t", pg::CopyTime(p.created_at), "\t", pg::CopyTime(p.updated_at), "\t",
                    pg::CopyTime(p.last_activity_at), "\t", p.version, "\n");

    for (const std::string& owner : p.owner_user_ids) {
      absl::StrAppend(&owners, p.subject_id, "\t", owner, "\n");
    }
    for (const LookupKey& k : *n.keys) {
      AppendCopyText(lookups, k.kind);
      lookups.push_back('\t');
      AppendCopyBytea(lookups, k.blind, false);
      absl::StrAppend(&lookups, "\t", p.subject_id, "\n");
    }
  }
  for (auto [table, columns, data] :
       {std::tuple("subject_keys", "subject_id, wrapped, created_at", &keys),
        std::tuple("persons", kPersonCopyColumns, &rows),
        std::tuple("person_owners", "subject_id, user_id", &owners),
        std::tuple("person_lookup", "kind, blind, subject_id", &lookups)}) {
    if (data->empty()) continue;
    pg::CopyIn copy(tx, table, columns);
    copy.Write(*data);
    copy.Complete();
  }
  return absl::OkStatus();
}

void PersonStore::AddInsert(pg::Pipeline& pipeline, const StoredPerson& p,
                            const std::string& wrapped_key, const std::vector<LookupKey>& keys) {
  pipeline.Add(kInsertKeySql, p.subject_id, Bin(wrapped_key));
  pipeline.Add(kInsertPersonSql, p.subject_id, p.status, p.company_id, p.team_id, p.restricted,
               Bin(p.restriction_reason), p.notes_sensitive, Bin(SealedOf(p, "given_name")),
               Bin(SealedOf(p, "family_name")), Bin(SealedOf(p, "emails")),
               Bin(SealedOf(p, "phones")), Bin(SealedOf(p, "addresses")),
               Bin(SealedOf(p, "job_title")), Bin(SealedOf(p, "personal_id_number")),
               Bin(SealedOf(p, "notes")), p.reg_channel, p.reg_source, p.created_by,
               absl::ToUnixMicros(p.created_at), absl::ToUnixMicros(p.updated_at),
               absl::ToUnixMicros(p.last_activity_at), p.version);
  if (!p.owner_user_ids.empty()) {
    pipeline.Add(kInsertOwnersSql, p.subject_id, pg::ArrayLiteral(p.owner_user_ids));
  }
  if (!keys.empty()) {
    auto [kinds, blinds] = KeyArrays(keys);
    pipeline.Add(kInsertLookupSql, kinds, blinds, p.subject_id);
  }
}

absl::StatusOr<std::optional<StoredPerson>> PersonStore::Get(pqxx::transaction_base& tx,
                                                             const std::string& subject_id,
                                                             const Access& access, bool lock) {
  if (!base::IsUuid(subject_id)) return std::optional<StoredPerson>();
  const std::string sql = absl::StrCat("SELECT ", kColumns, " FROM persons p WHERE ", kVisible,
                                       " AND p.subject_id = $4::uuid", lock ? " FOR UPDATE" : "");
  pqxx::result r =
      pg::ExecPrepared(tx, sql, access.all, UserParam(access), TeamsParam(access), subject_id);
  if (r.empty()) return std::optional<StoredPerson>();
  return std::optional<StoredPerson>(RowToPerson(r[0]));
}

absl::StatusOr<std::optional<StoredPerson>> PersonStore::GetAudited(
    pqxx::transaction_base& tx, const std::string& subject_id, const Access& access,
    const outbox::SealedEvent& read) {
  if (!base::IsUuid(subject_id)) return std::optional<StoredPerson>();
  static const std::string* const kSql = new std::string(
      absl::StrCat("WITH found AS (SELECT ", kColumns, " FROM persons p WHERE ", kVisible,
                   " AND p.subject_id = $4::uuid), audited AS (", outbox::InsertSelectSql(5),
                   " WHERE EXISTS (SELECT 1 FROM found)) SELECT * FROM found"));
  pqxx::result r =
      pg::ExecPrepared(tx, *kSql, access.all, UserParam(access), TeamsParam(access), subject_id,
                       read.event_id, pqxx::binarystring(read.payload), read.created_at_micros);
  if (r.empty()) return std::optional<StoredPerson>();
  return std::optional<StoredPerson>(RowToPerson(r[0]));
}

absl::StatusOr<std::vector<MailingRow>> PersonStore::GetForMailing(
    pqxx::transaction_base& tx, const std::vector<std::string>& subject_ids) {
  std::vector<MailingRow> out;
  if (subject_ids.empty()) return out;
  pqxx::result r = pg::ExecPrepared(tx, MailingSql(), pg::ArrayLiteral(subject_ids));
  out.reserve(r.size());
  for (const auto& row : r) {
    MailingRow m;
    m.subject_id = row[0].as<std::string>();
    m.restricted = row[1].as<bool>();
    if (!row[2].is_null()) m.sealed["given_name"] = Bytes(row[2]);
    if (!row[3].is_null()) m.sealed["emails"] = Bytes(row[3]);
    m.wrapped_key = Bytes(row[4]);
    out.push_back(std::move(m));
  }
  return out;
}

const std::string& PersonStore::MailingSql() {
  static const std::string* const kSql = new std::string(kMailingSql);
  return *kSql;
}

absl::StatusOr<std::string> PersonStore::WrappedKey(pqxx::transaction_base& tx,
                                                    const std::string& subject_id) {
  pqxx::result r = pg::ExecPrepared(tx, kWrappedKeySql, subject_id);
  if (r.empty()) return absl::NotFoundError("subject has no data key");
  return Bytes(r[0][0]);
}

absl::Status PersonStore::Update(pqxx::work& tx, const StoredPerson& p,
                                 const std::optional<std::vector<LookupKey>>& keys) {
  pg::ExecPrepared(
      tx, kUpdatePersonSql, p.subject_id, p.status, p.company_id, p.team_id, p.restricted,
      Bin(p.restriction_reason), p.notes_sensitive, Bin(SealedOf(p, "given_name")),
      Bin(SealedOf(p, "family_name")), Bin(SealedOf(p, "emails")), Bin(SealedOf(p, "phones")),
      Bin(SealedOf(p, "addresses")), Bin(SealedOf(p, "job_title")),
      Bin(SealedOf(p, "personal_id_number")), Bin(SealedOf(p, "notes")),
      absl::ToUnixMicros(p.updated_at), absl::ToUnixMicros(p.last_activity_at), p.version);
  if (!keys.has_value()) return absl::OkStatus();
  pg::ExecPrepared(tx, kDeleteLookupSql, p.subject_id);
  return InsertKeys(tx, p.subject_id, *keys);
}

absl::Status PersonStore::SetOwners(pqxx::work& tx, const std::string& subject_id,
                                    const std::vector<std::string>& owner_user_ids) {
  pg::ExecPrepared(tx, kDeleteOwnersSql, subject_id);
  if (!owner_user_ids.empty()) {
    pg::ExecPrepared(tx, kInsertOwnersSql, subject_id, pg::ArrayLiteral(owner_user_ids));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredPerson>> PersonStore::List(pqxx::transaction_base& tx,
                                                            const PersonFilter& f,
                                                            const Access& access,
                                                            const std::optional<Cursor>& cursor,
                                                            int limit) {
  const std::string sql = absl::StrCat(
      "SELECT ", kColumns, " FROM persons p WHERE ", kVisible,
      " AND ($4 = 0 OR p.status = $4)"
      " AND ($5 = '' OR EXISTS (SELECT 1 FROM person_owners o2 WHERE o2.subject_id = "
      "p.subject_id AND o2.user_id = NULLIF($5, '')::uuid))"
      " AND ($6 = '' OR p.team_id = NULLIF($6, '')::uuid)"
      " AND ($7 = '' OR p.company_id = NULLIF($7, '')::uuid)"
      " AND ($8::boolean OR NOT p.restricted)"
      " AND (NOT $9::boolean OR (p.created_at, p.subject_id) < (" CRM_TS_PARAM("$10") ", $11::uuid))"
      " ORDER BY p.created_at DESC, p.subject_id DESC LIMIT $12");
  const bool has_cursor = cursor.has_value();
  pqxx::result r = pg::ExecPrepared(
      tx, sql, access.all, UserParam(access), TeamsParam(access), f.status, f.owner_user_id,
      f.team_id, f.company_id, f.include_restricted, has_cursor,
      has_cursor ? absl::ToUnixMicros(cursor->at) : int64_t{0},
      has_cursor ? cursor->id : std::string("00000000-0000-0000-0000-000000000000"), limit);
  std::vector<StoredPerson> out;
  out.reserve(r.size());
  for (const auto& row : r) out.push_back(RowToPerson(row));
  return out;
}

absl::Status PersonStore::AddInteraction(pqxx::work& tx, const StoredInteraction& e) {
  pg::ExecPrepared(tx, kAddInteractionSql, e.interaction_id, e.subject_id, e.kind,
                   absl::ToUnixMicros(e.occurred_at), e.operator_user_id, Bin(e.summary),
                   e.sensitive, absl::ToUnixMicros(e.created_at));
  pg::ExecPrepared(tx, kTouchPersonSql, e.subject_id, absl::ToUnixMicros(e.created_at));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredInteraction>> PersonStore::ListInteractions(
    pqxx::work& tx, const std::string& subject_id, const std::optional<Cursor>& cursor, int limit) {
  const bool has_cursor = cursor.has_value();
  pqxx::result r = pg::ExecPrepared(
      tx, kListInteractionsSql, subject_id, has_cursor,
      has_cursor ? absl::ToUnixMicros(cursor->at) : int64_t{0},
      has_cursor ? cursor->id : std::string("00000000-0000-0000-0000-000000000000"), limit);
  std::vector<StoredInteraction> out;
  out.reserve(r.size());
  for (const auto& row : r) {
    out.push_back(StoredInteraction{.interaction_id = row[0].as<std::string>(),
                                    .subject_id = row[1].as<std::string>(),
                                    .kind = row[2].as<int>(),
                                    .occurred_at = absl::FromUnixMicros(row[3].as<int64_t>()),
                                    .operator_user_id = row[4].as<std::string>(),
                                    .summary = Bytes(row[5]),
                                    .sensitive = row[6].as<bool>(),
                                    .created_at = absl::FromUnixMicros(row[7].as<int64_t>())});
  }
  return out;
}

absl::StatusOr<SubjectCounts> PersonStore::Count(pqxx::work& tx, const std::string& subject_id) {
  const pqxx::row r = pg::ExecPrepared1(tx, kCountSql, subject_id);
  return SubjectCounts{.persons = r[0].as<int64_t>(),
                       .interactions = r[1].as<int64_t>(),
                       .emails = r[2].as<int64_t>(),
                       .phones = r[3].as<int64_t>(),
                       .invoices = r[5].as<int64_t>(),
                       .retained_until = r[6].as<std::string>(),
                       .key_exists = r[4].as<bool>()};
}

absl::Status PersonStore::Erase(pqxx::work& tx, const std::string& subject_id) {
  pg::ExecPrepared(tx, kErasePersonSql, subject_id);
  pg::ExecPrepared(tx, kEraseKeySql, subject_id);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ErasureRecord>> PersonStore::ErasureRecorded(
    pqxx::work& tx, const std::string& request_id) {
  pqxx::result r = pg::ExecPrepared(tx, kErasureSql, request_id);
  if (r.empty()) return std::optional<ErasureRecord>();
  ErasureRecord e;
  e.subject_id = r[0][0].as<std::string>();
  e.erased = SubjectCounts{.persons = r[0][1].as<int64_t>(),
                           .emails = r[0][2].as<int64_t>(),
                           .phones = r[0][3].as<int64_t>(),
                           .key_exists = r[0][4].as<bool>()};
  e.completed_at = absl::FromUnixMicros(r[0][5].as<int64_t>());
  e.erased.interactions = r[0][6].as<int64_t>();
  e.erased.invoices = r[0][7].as<int64_t>();
  e.erased.retained_until = r[0][8].as<std::string>();
  return std::optional<ErasureRecord>(std::move(e));
}

absl::Status PersonStore::RecordErasure(pqxx::work& tx, const std::string& request_id,
                                        const ErasureRecord& e) {
  pg::ExecPrepared(tx, kRecordErasureSql, request_id, e.subject_id, e.erased.persons,
                   e.erased.emails, e.erased.phones, e.erased.key_exists,
                   absl::ToUnixMicros(e.completed_at), e.erased.interactions, e.erased.invoices,
                   e.erased.retained_until);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredPerson>> PersonStore::FindByKey(pqxx::transaction_base& tx,
                                                                 const LookupKey& key,
                                                                 const Access& access) {
  const std::string sql =
      absl::StrCat("SELECT ", kColumns,
                   " FROM persons p JOIN person_lookup l ON l.subject_id = p.subject_id "
                   "WHERE ",
                   kVisible, " AND l.kind = $4 AND l.blind = $5");
  pqxx::result r = pg::ExecPrepared(tx, sql, access.all, UserParam(access), TeamsParam(access),
                                    key.kind, Bin(key.blind));
  std::vector<StoredPerson> out;
  for (const auto& row : r) out.push_back(RowToPerson(row));
  return out;
}

// ---- Invoices ------------------------------------------------------------------

namespace {

constexpr char kInvoiceColumns[] =
    "invoice_id::text, COALESCE(subject_id::text, ''), COALESCE(company_id::text, ''), sealed, "
    "issue_date::text, currency, retain_until::text, restricted, created_by, " CRM_TS("created_at");

StoredInvoice RowToInvoice(const pqxx::row& row) {
  return StoredInvoice{.invoice_id = row[0].as<std::string>(),
                       .subject_id = row[1].as<std::string>(),
                       .company_id = row[2].as<std::string>(),
                       .sealed = Bytes(row[3]),
                       .issue_date = row[4].as<std::string>(),
                       .currency = row[5].as<std::string>(),
                       .retain_until = row[6].as<std::string>(),
                       .restricted = row[7].as<bool>(),
                       .created_by = row[8].as<std::string>(),
                       .created_at = absl::FromUnixMicros(row[9].as<int64_t>())};
}

}  // namespace

absl::StatusOr<std::optional<std::string>> InvoiceStore::WrappedKey(pqxx::work& tx,
                                                                    const std::string& owner_id) {
  pqxx::result r =
      pg::ExecPrepared(tx, "SELECT wrapped FROM invoice_keys WHERE owner_id = $1::uuid", owner_id);
  if (r.empty()) return std::optional<std::string>();
  return std::optional<std::string>(Bytes(r[0][0]));
}

absl::Status InvoiceStore::InsertKey(pqxx::work& tx, const std::string& owner_id,
                                     const std::string& wrapped) {
  pg::ExecPrepared(
      tx, "INSERT INTO invoice_keys (owner_id, wrapped, created_at) VALUES ($1::uuid, $2, now())",
      owner_id, Bin(wrapped));
  return absl::OkStatus();
}

absl::Status InvoiceStore::Insert(pqxx::work& tx, const StoredInvoice& i) {
  pg::ExecPrepared(
      tx,
      "INSERT INTO invoices (invoice_id, subject_id, company_id, sealed, issue_date, currency, "
      "retain_until, restricted, created_by, created_at) VALUES ($1::uuid, NULLIF($2, '')::uuid, "
      "NULLIF($3, '')::uuid, $4, $5::date, $6, $7::date, $8, $9, " CRM_TS_PARAM("$10") ")",
      i.invoice_id, i.subject_id, i.company_id, Bin(i.sealed), i.issue_date, i.currency,
      i.retain_until, i.restricted, i.created_by, absl::ToUnixMicros(i.created_at));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredInvoice>> InvoiceStore::List(pqxx::work& tx,
                                                              const std::string& owner_id,
                                                              bool company, int limit) {
  const std::string sql = absl::StrCat(
      "SELECT ", kInvoiceColumns, " FROM invoices WHERE ", company ? "company_id" : "subject_id",
      " = $1::uuid ORDER BY issue_date DESC, invoice_id DESC LIMIT $2");
  std::vector<StoredInvoice> out;
  for (const auto& row : pg::ExecPrepared(tx, sql, owner_id, limit))
    out.push_back(RowToInvoice(row));
  return out;
}

absl::Status InvoiceStore::Restrict(pqxx::work& tx, const std::string& subject_id) {
  pg::ExecPrepared(tx, "UPDATE invoices SET restricted = true WHERE subject_id = $1::uuid",
                   subject_id);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> InvoiceStore::PurgeExpired(pqxx::work& tx, const std::string& today) {
  const int64_t purged =
      pg::ExecPrepared(tx, "DELETE FROM invoices WHERE retain_until < $1::date", today)
          .affected_rows();
  tx.exec(
      "DELETE FROM invoice_keys k WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE "
      "i.subject_id = k.owner_id OR i.company_id = k.owner_id)");
  return purged;
}

// ---- Companies -----------------------------------------------------------------

namespace {

StoredCompany RowToCompany(const pqxx::row& row) {
  StoredCompany c;
  c.company_id = row[0].as<std::string>();
  c.team_id = row[1].as<std::string>();
  int col = 2;
  for (const char* field : kSealedCompanyFields) {
    if (!row[col].is_null()) c.sealed[field] = Bytes(row[col]);
    ++col;
  }
  c.created_by = row[col++].as<std::string>();
  c.created_at = absl::FromUnixMicros(row[col++].as<int64_t>());
  c.updated_at = absl::FromUnixMicros(row[col++].as<int64_t>());
  c.version = row[col++].as<int64_t>();
  c.owner_user_ids = ParseUuidArray(row[col++].as<std::string>());
  return c;
}

std::string CompanySealed(const StoredCompany& c, const char* field) {
  auto it = c.sealed.find(field);
  return it == c.sealed.end() ? std::string() : it->second;
}

}  // namespace

absl::StatusOr<std::optional<DuplicateKey>> CompanyStore::FindOwnerOfKeys(
    pqxx::work& tx, const std::vector<LookupKey>& keys, const std::string& except_company) {
  if (keys.empty()) return std::optional<DuplicateKey>();
  auto [kinds, blinds] = KeyArrays(keys);
  pqxx::result r = pg::ExecPrepared(tx, kCompanyOwnerOfKeysSql, kinds, blinds, except_company);
  if (r.empty()) return std::optional<DuplicateKey>();
  return std::optional<DuplicateKey>(
      DuplicateKey{.key_index = r[0][0].as<size_t>(), .subject_id = r[0][1].as<std::string>()});
}

absl::Status CompanyStore::Insert(pqxx::work& tx, const StoredCompany& c,
                                  const std::string& wrapped_key,
                                  const std::vector<LookupKey>& keys) {
  pg::ExecPrepared(tx, kInsertCompanyKeySql, c.company_id, Bin(wrapped_key));
  pg::ExecPrepared(tx, kInsertCompanySql, c.company_id, c.team_id, Bin(CompanySealed(c, "name")),
                   Bin(CompanySealed(c, "tax_ids")), Bin(CompanySealed(c, "addresses")),
                   Bin(CompanySealed(c, "billing")), c.created_by, absl::ToUnixMicros(c.created_at),
                   absl::ToUnixMicros(c.updated_at), c.version);
  if (!c.owner_user_ids.empty()) {
    pg::ExecPrepared(tx, kInsertCompanyOwnersSql, c.company_id, pg::ArrayLiteral(c.owner_user_ids));
  }
  if (!keys.empty()) {
    auto [kinds, blinds] = KeyArrays(keys);
    pg::ExecPrepared(tx, kInsertCompanyLookupSql, kinds, blinds, c.company_id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StoredCompany>> CompanyStore::Get(pqxx::work& tx,
                                                               const std::string& company_id,
                                                               const Access& access, bool lock) {
  if (!base::IsUuid(company_id)) return std::optional<StoredCompany>();
  const std::string sql =
      absl::StrCat("SELECT ", kCompanyColumns, " FROM companies p WHERE ", kCompanyVisible,
                   " AND p.company_id = $4::uuid", lock ? " FOR UPDATE" : "");
  pqxx::result r =
      pg::ExecPrepared(tx, sql, access.all, UserParam(access), TeamsParam(access), company_id);
  if (r.empty()) return std::optional<StoredCompany>();
  return std::optional<StoredCompany>(RowToCompany(r[0]));
}

absl::StatusOr<std::string> CompanyStore::WrappedKey(pqxx::work& tx,
                                                     const std::string& company_id) {
  pqxx::result r = pg::ExecPrepared(tx, kCompanyKeySql, company_id);
  if (r.empty()) return absl::NotFoundError("company has no data key");
  return Bytes(r[0][0]);
}

absl::Status CompanyStore::Update(pqxx::work& tx, const StoredCompany& c,
                                  const std::optional<std::vector<LookupKey>>& keys) {
  pg::ExecPrepared(tx, kUpdateCompanySql, c.company_id, Bin(CompanySealed(c, "name")),
                   Bin(CompanySealed(c, "tax_ids")), Bin(CompanySealed(c, "addresses")),
                   Bin(CompanySealed(c, "billing")), absl::ToUnixMicros(c.updated_at), c.version);
  if (!keys.has_value()) return absl::OkStatus();
  pg::ExecPrepared(tx, kDeleteCompanyLookupSql, c.company_id);
  if (!keys->empty()) {
    auto [kinds, blinds] = KeyArrays(*keys);
    pg::ExecPrepared(tx, kInsertCompanyLookupSql, kinds, blinds, c.company_id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredCompany>> CompanyStore::List(pqxx::work& tx, const Access& access,
                                                              const std::optional<Cursor>& cursor,
                                                              int limit) {
  const std::string sql = absl::StrCat(
      "SELECT ", kCompanyColumns, " FROM companies p WHERE ", kCompanyVisible,
      " AND (NOT $4::boolean OR (p.created_at, p.company_id) < (" CRM_TS_PARAM("$5") ", $6::uuid))"
      " ORDER BY p.created_at DESC, p.company_id DESC LIMIT $7");
  const bool has_cursor = cursor.has_value();
  pqxx::result r = pg::ExecPrepared(
      tx, sql, access.all, UserParam(access), TeamsParam(access), has_cursor,
      has_cursor ? absl::ToUnixMicros(cursor->at) : int64_t{0},
      has_cursor ? cursor->id : std::string("00000000-0000-0000-0000-000000000000"), limit);
  std::vector<StoredCompany> out;
  for (const auto& row : r) out.push_back(RowToCompany(row));
  return out;
}

absl::StatusOr<std::vector<std::string>> CompanyStore::FindByKeys(
    pqxx::transaction_base& tx, const std::vector<LookupKey>& keys, const Access& access) {
  std::vector<std::string> out;
  if (keys.empty()) return out;
  auto [kinds, blinds] = KeyArrays(keys);
  const std::string sql = absl::StrCat(
      "SELECT DISTINCT p.company_id::text FROM companies p JOIN company_lookup l "
      "ON l.company_id = p.company_id JOIN unnest($4::text[], $5::text[]) AS u(kind, blind) "
      "ON l.kind = u.kind AND l.blind = decode(u.blind, 'hex') WHERE ",
      kCompanyVisible, " ORDER BY 1");
  for (const auto& row : pg::ExecPrepared(tx, sql, access.all, UserParam(access),
                                          TeamsParam(access), kinds, blinds)) {
    out.push_back(row[0].as<std::string>());
  }
  return out;
}

}  // namespace crm::contacts
