#include "services/consent/consent_store.h"

#include <pqxx/binarystring>
#include <pqxx/pqxx>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/pg/array.h"
#include "libs/pg/prepared.h"
#include "libs/pg/sql_time.h"
#include "libs/rpc/handler.h"

namespace crm::consent {
namespace {

using pg::ExecPrepared;
using pg::ExecPrepared1;

constexpr char kPurposeColumns[] =
    "p.purpose_id, p.basis, p.description, p.data_categories::text, p.direct_marketing, "
    "p.validity_days, "
    "COALESCE((SELECT string_agg(n.language || '=' || n.version, ',') FROM ("
    "SELECT DISTINCT ON (language) language, version FROM notices "
    "WHERE purpose_id = p.purpose_id ORDER BY language, seq DESC) n), '')";

constexpr char kEntryColumns[] =
    "sequence, subject_id::text, purpose_id, action, notice_version, method, source, actor, " CRM_TS(
        "given_at") ", " CRM_TS("recorded_at") ", COALESCE(" CRM_TS("expires_at") ", 0), "
    "expires_at IS NOT NULL, previous_hash, entry_hash, evidence IS NOT NULL";

std::vector<std::string> ParseTextArray(const std::string& literal) {
  std::vector<std::string> out;
  pqxx::array_parser parser(literal.c_str());
  for (auto [kind, value] = parser.get_next(); kind != pqxx::array_parser::done;
       std::tie(kind, value) = parser.get_next()) {
    if (kind == pqxx::array_parser::string_value) out.push_back(value);
  }
  return out;
}

v1::Purpose RowToPurpose(const pqxx::row& r) {
  v1::Purpose p;
  p.set_purpose_id(r[0].as<std::string>());
  p.set_basis(static_cast<v1::LawfulBasis>(r[1].as<int>()));
  p.set_description(r[2].as<std::string>());
  for (std::string& c : ParseTextArray(r[3].as<std::string>())) p.add_data_categories(c);
  p.set_direct_marketing(r[4].as<bool>());
  p.set_validity_days(r[5].as<int>());
  const std::string notices = r[6].as<std::string>();
  size_t start = 0;
  while (start < notices.size()) {
    size_t end = notices.find(',', start);
    if (end == std::string::npos) end = notices.size();
    const std::string pair = notices.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (eq != std::string::npos) {
      (*p.mutable_current_notice_versions())[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
    start = end + 1;
  }
  return p;
}

v1::LedgerEntry RowToEntry(const pqxx::row& r) {
  v1::LedgerEntry e;
  e.set_sequence(r[0].as<int64_t>());
  e.set_subject_id(r[1].as<std::string>());
  e.set_purpose_id(r[2].as<std::string>());
  e.set_action(static_cast<v1::Action>(r[3].as<int>()));
  e.set_notice_version(r[4].as<std::string>());
  e.set_method(static_cast<v1::Method>(r[5].as<int>()));
  e.set_source(r[6].as<std::string>());
  e.set_actor(r[7].as<std::string>());
  rpc::SetTime(absl::FromUnixMicros(r[8].as<int64_t>()), e.mutable_given_at());
  rpc::SetTime(absl::FromUnixMicros(r[9].as<int64_t>()), e.mutable_recorded_at());
  if (r[11].as<bool>()) {
    rpc::SetTime(absl::FromUnixMicros(r[10].as<int64_t>()), e.mutable_expires_at());
  }
  e.set_previous_hash(r[12].as<std::string>());
  e.set_entry_hash(r[13].as<std::string>());
  e.set_has_evidence(r[14].as<bool>());
  return e;
}

PurposeState RowToState(const pqxx::row& r, int first) {
  PurposeState s;
  if (r[first].is_null()) return s;
  s.kind = static_cast<PurposeState::Kind>(r[first].as<int>());
  s.notice_version = r[first + 1].as<std::string>();
  s.expires_at = r[first + 2].is_null() ? absl::InfiniteFuture()
                                        : absl::FromUnixMicros(r[first + 2].as<int64_t>());
  s.last_given_at = absl::FromUnixMicros(r[first + 3].as<int64_t>());
  return s;
}

int64_t MicrosOf(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1'000;
}

}  // namespace

absl::Status ConsentStore::InsertPurpose(pqxx::transaction_base& tx, const v1::Purpose& p,
                                         absl::Time now) {
  ExecPrepared(tx,
               "INSERT INTO purposes (purpose_id, basis, description, data_categories, "
               "direct_marketing, validity_days, created_at) VALUES ($1, $2, $3, $4::text[], $5, "
               "$6, " CRM_TS_PARAM("$7") ")",
               p.purpose_id(), static_cast<int>(p.basis()), p.description(),
               pg::ArrayLiteral(std::vector<std::string>(p.data_categories().begin(),
                                                         p.data_categories().end())),
               p.direct_marketing(), p.validity_days(), absl::ToUnixMicros(now));
  return absl::OkStatus();
}

absl::Status ConsentStore::UpdatePurpose(pqxx::transaction_base& tx, const v1::Purpose& p) {
  ExecPrepared(tx,
               "UPDATE purposes SET description = $2, data_categories = $3::text[], "
               "validity_days = $4 WHERE purpose_id = $1",
               p.purpose_id(), p.description(),
               pg::ArrayLiteral(std::vector<std::string>(p.data_categories().begin(),
                                                         p.data_categories().end())),
               p.validity_days());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Purpose>> ConsentStore::ListPurposes(pqxx::transaction_base& tx) {
  std::vector<v1::Purpose> out;
  for (const pqxx::row& r : ExecPrepared(
           tx, absl::StrCat("SELECT ", kPurposeColumns, " FROM purposes p ORDER BY purpose_id"))) {
    out.push_back(RowToPurpose(r));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ConsentStore::PurposeIds(pqxx::transaction_base& tx) {
  std::vector<std::string> out;
  for (const pqxx::row& r : ExecPrepared(tx, "SELECT purpose_id FROM purposes")) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

absl::StatusOr<std::optional<v1::Purpose>> ConsentStore::GetPurpose(pqxx::transaction_base& tx,
                                                                    const std::string& purpose_id) {
  const pqxx::result r = ExecPrepared(
      tx, absl::StrCat("SELECT ", kPurposeColumns, " FROM purposes p WHERE purpose_id = $1"),
      purpose_id);
  if (r.empty()) return std::optional<v1::Purpose>();
  return std::optional<v1::Purpose>(RowToPurpose(r[0]));
}

absl::StatusOr<bool> ConsentStore::PublishNotice(pqxx::transaction_base& tx,
                                                 const std::string& purpose_id,
                                                 const std::string& language,
                                                 const std::string& version,
                                                 const std::string& text, absl::Time now) {
  const pqxx::result r =
      ExecPrepared(tx,
                   "INSERT INTO notices (purpose_id, language, version, text, published_at) "
                   "VALUES ($1, $2, $3, $4, " CRM_TS_PARAM("$5") ") ON CONFLICT DO NOTHING",
                   purpose_id, language, version, text, absl::ToUnixMicros(now));
  return r.affected_rows() == 1;
}

absl::StatusOr<std::string> ConsentStore::CurrentNotice(pqxx::transaction_base& tx,
                                                        const std::string& purpose_id,
                                                        const std::string& language) {
  const pqxx::result r = ExecPrepared(tx,
                                      "SELECT version FROM notices WHERE purpose_id = $1 AND "
                                      "language = $2 ORDER BY seq DESC LIMIT 1",
                                      purpose_id, language);
  return r.empty() ? std::string() : r[0][0].as<std::string>();
}

absl::StatusOr<bool> ConsentStore::NoticeExists(pqxx::transaction_base& tx,
                                                const std::string& purpose_id,
                                                const std::string& language,
                                                const std::string& version) {
  return !ExecPrepared(tx,
                       "SELECT 1 FROM notices WHERE purpose_id = $1 AND language = $2 AND "
                       "version = $3",
                       purpose_id, language, version)
              .empty();
}

absl::StatusOr<std::string> ConsentStore::LockSubject(
    pqxx::transaction_base& tx, const std::string& subject_id,
    const std::function<absl::StatusOr<std::string>()>& make_wrapped, absl::Time now) {
  constexpr char kLock[] =
      "SELECT wrapped FROM subject_keys WHERE subject_id = $1::uuid FOR UPDATE";
  pqxx::result r = ExecPrepared(tx, kLock, subject_id);
  if (!r.empty()) return pqxx::binarystring(r[0][0]).str();
  CRM_ASSIGN_OR_RETURN(std::string wrapped, make_wrapped());
  // A concurrent first statement may insert it meanwhile: keep theirs.
  ExecPrepared(tx,
               "INSERT INTO subject_keys (subject_id, wrapped, created_at) VALUES ($1::uuid, "
               "$2, " CRM_TS_PARAM("$3") ") ON CONFLICT DO NOTHING",
               subject_id, pqxx::binarystring(wrapped.data(), wrapped.size()),
               absl::ToUnixMicros(now));
  r = ExecPrepared(tx, kLock, subject_id);
  if (r.empty()) return absl::InternalError("subject key vanished");
  return pqxx::binarystring(r[0][0]).str();
}

absl::StatusOr<std::optional<v1::LedgerEntry>> ConsentStore::LastEntry(
    pqxx::transaction_base& tx, const std::string& subject_id) {
  const pqxx::result r = ExecPrepared(
      tx,
      absl::StrCat("SELECT ", kEntryColumns,
                   " FROM ledger WHERE subject_id = $1::uuid ORDER BY sequence DESC LIMIT 1"),
      subject_id);
  if (r.empty()) return std::optional<v1::LedgerEntry>();
  return std::optional<v1::LedgerEntry>(RowToEntry(r[0]));
}

constexpr char kStateColumns[] =
    "s.kind, s.notice_version, " CRM_TS("s.expires_at") ", " CRM_TS("s.last_given_at");

absl::StatusOr<PurposeState> ConsentStore::State(pqxx::transaction_base& tx,
                                                 const std::string& subject_id,
                                                 const std::string& purpose_id) {
  const pqxx::result r = ExecPrepared(
      tx,
      absl::StrCat("SELECT ", kStateColumns,
                   " FROM consent_state s WHERE subject_id = $1::uuid AND purpose_id = $2"),
      subject_id, purpose_id);
  if (r.empty()) return PurposeState();
  return RowToState(r[0], 0);
}

absl::StatusOr<std::vector<ConsentStore::Standing>> ConsentStore::Standings(
    pqxx::transaction_base& tx, const std::vector<std::string>& subjects,
    const std::string& purpose_id) {
  std::vector<Standing> out;
  out.reserve(subjects.size());
  if (subjects.size() == 1) {
    // Check: a prepared point read (its generic plan is two primary-key
    // probes whatever the data).
    const pqxx::result r = ExecPrepared(
        tx,
        absl::StrCat("SELECT ", kStateColumns,
                     ", EXISTS (SELECT 1 FROM restrictions x WHERE x.subject_id = $1::uuid) "
                     "FROM (SELECT 1) one LEFT JOIN consent_state s ON s.subject_id = $1::uuid "
                     "AND s.purpose_id = $2"),
        subjects[0], purpose_id);
    for (const pqxx::row& row : r) {
      out.push_back(Standing{.state = RowToState(row, 0), .restricted = row[4].as<bool>()});
    }
    return out;
  }
  // BatchCheck: planned for each call's array. A prepared statement's generic
  // plan assumes a handful of elements and, made while the table was small,
  // probed consent_state by a sequential scan per subject (3 s for 10,000).
  const pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT ", kStateColumns,
                   ", EXISTS (SELECT 1 FROM restrictions x WHERE x.subject_id = u.id) "
                   "FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n) "
                   "LEFT JOIN consent_state s ON s.subject_id = u.id AND s.purpose_id = $2 "
                   "ORDER BY u.n"),
      pg::ArrayLiteral(subjects), purpose_id);
  for (const pqxx::row& row : r) {
    out.push_back(Standing{.state = RowToState(row, 0), .restricted = row[4].as<bool>()});
  }
  return out;
}

absl::Status ConsentStore::Append(pqxx::transaction_base& tx, const v1::LedgerEntry& e,
                                  const std::string& sealed_evidence, const std::string& receipt,
                                  const PurposeState& state) {
  const bool expires = e.has_expires_at();
  ExecPrepared(
      tx,
      "INSERT INTO ledger (subject_id, sequence, purpose_id, action, notice_version, method, "
      "source, actor, given_at, recorded_at, expires_at, previous_hash, entry_hash, evidence, "
      "receipt) "
      "VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, " CRM_TS_PARAM("$9") ", " CRM_TS_PARAM(
          "$10") ", CASE WHEN $11 THEN " CRM_TS_PARAM("$12") " END, $13, $14, "
                 "NULLIF($15, ''::bytea), NULLIF($16, ''))",
      e.subject_id(), e.sequence(), e.purpose_id(), static_cast<int>(e.action()),
      e.notice_version(), static_cast<int>(e.method()), e.source(), e.actor(),
      MicrosOf(e.given_at()), MicrosOf(e.recorded_at()), expires,
      expires ? MicrosOf(e.expires_at()) : int64_t{0}, e.previous_hash(), e.entry_hash(),
      pqxx::binarystring(sealed_evidence.data(), sealed_evidence.size()), receipt);
  const bool lapses = state.expires_at != absl::InfiniteFuture();
  ExecPrepared(tx,
               "INSERT INTO consent_state (subject_id, purpose_id, kind, notice_version, "
               "expires_at, last_given_at) VALUES ($1::uuid, $2, $3, $4, CASE WHEN $5 THEN " CRM_TS_PARAM(
                   "$6") " END, " CRM_TS_PARAM("$7") ") ON CONFLICT (subject_id, purpose_id) DO "
                                                    "UPDATE SET kind = EXCLUDED.kind, "
                                                    "notice_version = EXCLUDED.notice_version, "
                                                    "expires_at = EXCLUDED.expires_at, "
                                                    "last_given_at = EXCLUDED.last_given_at",
               e.subject_id(), e.purpose_id(), static_cast<int>(state.kind), state.notice_version,
               lapses, lapses ? absl::ToUnixMicros(state.expires_at) : int64_t{0},
               absl::ToUnixMicros(state.last_given_at));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ConsentStore::Receipt(pqxx::transaction_base& tx,
                                                  const std::string& subject_id, int64_t sequence,
                                                  const std::string& purpose_id) {
  const pqxx::result r =
      sequence > 0
          ? ExecPrepared(tx,
                         "SELECT receipt FROM ledger WHERE subject_id = $1::uuid AND sequence = $2 "
                         "AND receipt IS NOT NULL",
                         subject_id, sequence)
          : ExecPrepared(tx,
                         "SELECT receipt FROM ledger WHERE subject_id = $1::uuid AND purpose_id = "
                         "$2 AND receipt IS NOT NULL ORDER BY sequence DESC LIMIT 1",
                         subject_id, purpose_id);
  return r.empty() ? std::string() : r[0][0].as<std::string>();
}

absl::StatusOr<std::vector<ConsentStore::Lapsing>> ConsentStore::ListLapsing(
    pqxx::transaction_base& tx, const std::string& purpose_id, absl::Time until,
    const std::optional<Lapsing>& after, int limit) {
  const bool has_after = after.has_value();
  std::vector<Lapsing> out;
  for (const pqxx::row& r : ExecPrepared(
           tx,
           "SELECT subject_id::text, " CRM_TS(
               "expires_at") " FROM consent_state "
                             "WHERE kind = 1 AND purpose_id = $1 AND expires_at < " CRM_TS_PARAM(
                                 "$2") " "
                                       "AND (NOT $3 OR (expires_at, subject_id) > (" CRM_TS_PARAM(
                                           "$4") ", $5::uuid)) "
                                                 "ORDER BY expires_at, subject_id LIMIT $6",
           purpose_id, absl::ToUnixMicros(until), has_after,
           has_after ? absl::ToUnixMicros(after->expires_at) : int64_t{0},
           has_after ? after->subject_id : std::string("00000000-0000-0000-0000-000000000000"),
           limit)) {
    out.push_back(Lapsing{.subject_id = r[0].as<std::string>(),
                          .expires_at = absl::FromUnixMicros(r[1].as<int64_t>())});
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ConsentStore::ReceiptKeys(
    pqxx::transaction_base& tx) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const pqxx::row& r : ExecPrepared(
           tx, "SELECT key_id, public_key FROM receipt_keys ORDER BY created_at DESC, key_id")) {
    out.emplace_back(r[0].as<std::string>(), pqxx::binarystring(r[1]).str());
  }
  return out;
}

absl::StatusOr<std::vector<v1::LedgerEntry>> ConsentStore::History(pqxx::transaction_base& tx,
                                                                   const std::string& subject_id) {
  std::vector<v1::LedgerEntry> out;
  for (const pqxx::row& r :
       ExecPrepared(tx,
                    absl::StrCat("SELECT ", kEntryColumns,
                                 " FROM ledger WHERE subject_id = $1::uuid ORDER BY sequence"),
                    subject_id)) {
    out.push_back(RowToEntry(r));
  }
  return out;
}

absl::StatusOr<bool> ConsentStore::SetRestricted(pqxx::transaction_base& tx,
                                                 const std::string& subject_id, bool restricted,
                                                 absl::Time now) {
  const pqxx::result r =
      restricted
          ? ExecPrepared(
                tx,
                "INSERT INTO restrictions (subject_id, since) VALUES ($1::uuid, " CRM_TS_PARAM(
                    "$2") ") ON CONFLICT DO NOTHING",
                subject_id, absl::ToUnixMicros(now))
          : ExecPrepared(tx, "DELETE FROM restrictions WHERE subject_id = $1::uuid", subject_id);
  return r.affected_rows() == 1;
}

absl::StatusOr<SubjectCounts> ConsentStore::Count(pqxx::transaction_base& tx,
                                                  const std::string& subject_id) {
  const pqxx::row r =
      ExecPrepared1(tx,
                    "SELECT (SELECT count(*) FROM ledger WHERE subject_id = $1::uuid), "
                    "(SELECT count(*) FROM consent_state WHERE subject_id = $1::uuid), "
                    "EXISTS (SELECT 1 FROM restrictions WHERE subject_id = $1::uuid), "
                    "EXISTS (SELECT 1 FROM subject_keys WHERE subject_id = $1::uuid), "
                    "(SELECT count(*) FROM consent_state s JOIN purposes p USING (purpose_id) "
                    " WHERE s.subject_id = $1::uuid AND s.kind = 3 AND p.direct_marketing)",
                    subject_id);
  return SubjectCounts{.entries = r[0].as<int64_t>(),
                       .standings = r[1].as<int64_t>(),
                       .restricted = r[2].as<bool>(),
                       .key_exists = r[3].as<bool>(),
                       .marketing_objections = r[4].as<int64_t>()};
}

absl::StatusOr<std::map<int64_t, std::string>> ConsentStore::Receipts(
    pqxx::transaction_base& tx, const std::string& subject_id) {
  std::map<int64_t, std::string> out;
  for (const pqxx::row& r :
       ExecPrepared(tx,
                    "SELECT sequence, receipt FROM ledger WHERE subject_id = $1::uuid AND "
                    "receipt IS NOT NULL",
                    subject_id)) {
    out.emplace(r[0].as<int64_t>(), r[1].as<std::string>());
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> ConsentStore::Evidence(
    pqxx::transaction_base& tx, const std::string& subject_id) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const pqxx::row& r :
       ExecPrepared(tx,
                    "SELECT sequence, evidence FROM ledger WHERE subject_id = $1::uuid AND "
                    "evidence IS NOT NULL ORDER BY sequence",
                    subject_id)) {
    out.emplace_back(r[0].as<int64_t>(), pqxx::binarystring(r[1]).str());
  }
  return out;
}

absl::StatusOr<std::string> ConsentStore::WrappedKey(pqxx::transaction_base& tx,
                                                     const std::string& subject_id) {
  const pqxx::result r =
      ExecPrepared(tx, "SELECT wrapped FROM subject_keys WHERE subject_id = $1::uuid", subject_id);
  return r.empty() ? std::string() : pqxx::binarystring(r[0][0]).str();
}

absl::Status ConsentStore::Erase(pqxx::transaction_base& tx, const std::string& subject_id) {
  for (const char* table : {"ledger", "consent_state", "restrictions", "subject_keys"}) {
    ExecPrepared(tx, absl::StrCat("DELETE FROM ", table, " WHERE subject_id = $1::uuid"),
                 subject_id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ErasureRecord>> ConsentStore::ErasureRecorded(
    pqxx::transaction_base& tx, const std::string& request_id) {
  const pqxx::result r = ExecPrepared(
      tx,
      "SELECT subject_id::text, entries, standings, restricted, key_existed, suppressed, " CRM_TS(
          "completed_at") " FROM erasure_requests WHERE request_id = $1::uuid",
      request_id);
  if (r.empty()) return std::optional<ErasureRecord>();
  return std::optional<ErasureRecord>(
      ErasureRecord{.subject_id = r[0][0].as<std::string>(),
                    .erased = {.entries = r[0][1].as<int64_t>(),
                               .standings = r[0][2].as<int64_t>(),
                               .restricted = r[0][3].as<bool>(),
                               .key_exists = r[0][4].as<bool>()},
                    .suppressed = r[0][5].as<int64_t>(),
                    .completed_at = absl::FromUnixMicros(r[0][6].as<int64_t>())});
}

absl::Status ConsentStore::RecordErasure(pqxx::transaction_base& tx, const std::string& request_id,
                                         const ErasureRecord& e) {
  ExecPrepared(tx,
               "INSERT INTO erasure_requests (request_id, subject_id, entries, standings, "
               "restricted, key_existed, suppressed, completed_at) VALUES ($1::uuid, $2::uuid, "
               "$3, $4, $5, $6, $7, " CRM_TS_PARAM("$8") ")",
               request_id, e.subject_id, e.erased.entries, e.erased.standings, e.erased.restricted,
               e.erased.key_exists, e.suppressed, absl::ToUnixMicros(e.completed_at));
  return absl::OkStatus();
}

absl::Status ConsentStore::Suppress(pqxx::transaction_base& tx,
                                    const std::vector<std::string>& hashes, absl::Time now) {
  for (const std::string& h : hashes) {
    ExecPrepared(tx,
                 "INSERT INTO suppressions (address_hash, reason, created_on) "
                 "VALUES ($1, 1, (" CRM_TS_PARAM("$2") " AT TIME ZONE 'UTC')::date) "
                 "ON CONFLICT DO NOTHING",
                 pqxx::binarystring(h.data(), h.size()), absl::ToUnixMicros(now));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<bool>> ConsentStore::Suppressed(pqxx::transaction_base& tx,
                                                           const std::vector<std::string>& hashes) {
  std::vector<bool> out(hashes.size(), false);
  if (hashes.empty()) return out;
  std::vector<std::string> hex;
  hex.reserve(hashes.size());
  for (const std::string& h : hashes) hex.push_back(absl::BytesToHexString(h));
  absl::flat_hash_set<std::string> found;
  for (const pqxx::row& r :
       ExecPrepared(tx,
                    "SELECT encode(address_hash, 'hex') FROM suppressions WHERE address_hash = "
                    "ANY (SELECT decode(h, 'hex') FROM unnest($1::text[]) AS h)",
                    pg::ArrayLiteral(hex))) {
    found.insert(r[0].as<std::string>());
  }
  for (size_t i = 0; i < hex.size(); ++i) out[i] = found.contains(hex[i]);
  return out;
}

}  // namespace crm::consent
