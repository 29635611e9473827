#include "services/audit/log_store.h"

#include <algorithm>
#include <pqxx/binarystring>
#include <pqxx/pqxx>
#include <pqxx/tablereader>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/base/status_macros.h"
#include "libs/pg/array.h"
#include "libs/pg/sql_time.h"
#include "services/audit/copy_text.h"

namespace crm::audit {

using pg::CopyField;
using pg::CopyIn;
using pg::CopyTime;
using pg::DecodeByteaHex;
using pg::SplitCopyLine;

namespace {

// One writer at a time across replicas ("crm_audt").
constexpr char kLockSql[] = "SELECT pg_advisory_xact_lock(7165064483209737332)";
constexpr char kSizeSql[] = "SELECT COALESCE(max(leaf_index) + 1, 0) FROM audit_log";
constexpr char kExistingSql[] =
    "SELECT event_id::text FROM audit_log WHERE event_id = ANY($1::uuid[])";
constexpr char kLeavesSql[] =
    "SELECT leaf_index, leaf_hash FROM audit_log WHERE leaf_index = ANY($1::bigint[])";
// The subtrees of runs of consecutive node indices, one primary-key range
// scan per run (level, first, last). The LIMIT keeps the planner from
// flattening the subquery into a join: as one, PostgreSQL hashed the whole
// table for a long list, so VerifyLog's checks cost a full scan each,
// quadratic in the log's size (ingest_bench). VerifyLog asks for long runs
// (every subtree over a stretch of leaves), proofs for single nodes.
constexpr char kNodesSql[] =
    "SELECT n.level, n.node_index, n.hash "
    "FROM unnest($1::smallint[], $2::bigint[], $3::bigint[]) AS w(level, first, last) "
    "CROSS JOIN LATERAL (SELECT m.level, m.node_index, m.hash FROM merkle_nodes m "
    "WHERE m.level = w.level AND m.node_index BETWEEN w.first AND w.last "
    "LIMIT w.last - w.first + 1) AS n";

constexpr char kEntryColumns[] =
    "leaf_index, event_id::text, " CRM_TS("event_time") ", service, actor_user_id, actor_service, "
    "actor_session, action, resource, COALESCE(subject_id::text, ''), outcome, request_id, key_scope, "
    "has_changes, clear_part, sealed, leaf_hash, " CRM_TS("ingested_at") ", content_expired";

// $1 after_index, $2 actor_user_id, $3 actor_service, $4 subject_id,
// $5 action, $6 action prefix, $7 actions (text[]), $8 resource,
// $9 start micros, $10 end micros, $11 only_changes, $12 service. Empty strings and
// arrays do not filter; PostgreSQL plans the unnamed statement with the
// values, so the unused conditions fold away and the indexes apply.
constexpr char kFilterSql[] =
    " WHERE leaf_index > $1"
    " AND ($2 = '' OR actor_user_id = $2)"
    " AND ($3 = '' OR actor_service = $3)"
    " AND ($4 = '' OR subject_id = NULLIF($4, '')::uuid)"
    " AND ($5 = '' OR action = $5)"
    " AND ($6 = '' OR starts_with(action, $6))"
    " AND (cardinality($7::text[]) = 0 OR action = ANY($7::text[]))"
    " AND ($8 = '' OR resource = $8)"
    " AND event_time >= " CRM_TS_PARAM("$9") " AND event_time < " CRM_TS_PARAM(
        "$10") " AND (NOT $11::boolean OR has_changes) AND ($12 = '' OR service = $12)";

constexpr char kExpireSql[] =
    "UPDATE audit_log SET service = '', actor_user_id = '', actor_service = '', "
    "actor_session = '', action = '', resource = '', request_id = '', clear_part = NULL, "
    "sealed = NULL, content_expired = true "
    "WHERE leaf_index IN (SELECT leaf_index FROM audit_log WHERE NOT content_expired "
    "AND event_time < " CRM_TS_PARAM("$1") " ORDER BY leaf_index LIMIT $2)";

constexpr char kCheckpointColumns[] =
    "tree_size, root_hash, " CRM_TS("signed_at") ", key_id, signature";
constexpr char kInsertCheckpointSql[] =
    "INSERT INTO checkpoints (tree_size, root_hash, signed_at, key_id, signature) "
    "VALUES ($1, $2, " CRM_TS_PARAM("$3") ", $4, $5) ON CONFLICT (tree_size) DO NOTHING";
constexpr char kInsertKeySql[] =
    "INSERT INTO checkpoint_keys (key_id, public_key, private_wrapped, created_at) "
    "SELECT $1, $2, $3, " CRM_TS_PARAM("$4") " WHERE NOT EXISTS (SELECT 1 FROM checkpoint_keys)";
constexpr char kKeysSql[] = "SELECT key_id, public_key, private_wrapped, " CRM_TS(
    "created_at") " FROM checkpoint_keys ORDER BY created_at, key_id";
constexpr char kKeyLockSql[] = "SELECT pg_advisory_xact_lock(7165064483209737333)";
constexpr char kErasureSql[] = "SELECT subject_id, events, " CRM_TS(
    "completed_at") " FROM erasure_requests WHERE request_id = $1::uuid";
constexpr char kRecordErasureSql[] =
    "INSERT INTO erasure_requests (request_id, subject_id, events, completed_at) "
    "VALUES ($1::uuid, $2, $3, " CRM_TS_PARAM("$4") ") ON CONFLICT (request_id) DO NOTHING";

// Rows of audit_log sent to PostgreSQL at a time during Append (~60 KiB).
constexpr int kRowsPerPiece = 50;

constexpr int64_t kYearOneMicros = -62135596800LL * 1'000'000;
constexpr int64_t kYear9999Micros = 253402300799LL * 1'000'000;

std::string Bytes(const pqxx::field& f) {
  return f.is_null() ? std::string() : pqxx::binarystring(f).str();
}

pqxx::binarystring Bin(const std::string& s) { return pqxx::binarystring(s.data(), s.size()); }

StoredEntry RowToEntry(const pqxx::row& row) {
  StoredEntry e;
  e.index = row[0].as<int64_t>();
  LeafRecord& r = e.record;
  r.event_id = row[1].as<std::string>();
  r.event_time = absl::FromUnixMicros(row[2].as<int64_t>());
  r.service = row[3].as<std::string>();
  r.actor_user_id = row[4].as<std::string>();
  r.actor_service = row[5].as<std::string>();
  r.actor_session = row[6].as<std::string>();
  r.action = row[7].as<std::string>();
  r.resource = row[8].as<std::string>();
  r.subject_id = row[9].as<std::string>();
  r.outcome = row[10].as<int>();
  r.request_id = row[11].as<std::string>();
  r.key_scope = row[12].as<std::string>();
  r.has_changes = row[13].as<bool>();
  r.clear_part = Bytes(row[14]);
  r.sealed = Bytes(row[15]);
  e.leaf_hash = Bytes(row[16]);
  e.ingested_at = absl::FromUnixMicros(row[17].as<int64_t>());
  e.content_expired = row[18].as<bool>();
  return e;
}

// An entry from a line of COPY text output of kEntryColumns. `f` and `e`
// are reused from line to line: their strings are swapped, not reallocated.
absl::Status CopyLineToEntry(absl::string_view line, std::vector<CopyField>& f, StoredEntry& e) {
  CRM_RETURN_IF_ERROR(SplitCopyLine(line, f));
  auto bad = [&](absl::string_view column) {
    return absl::InternalError(absl::StrCat("audit_log row: unreadable ", column));
  };
  if (f.size() != 19) return bad("line");
  if (f[13].value.size() != 1 || f[18].value.size() != 1) return bad("boolean");
  int64_t micros = 0;
  int outcome = 0;
  if (!absl::SimpleAtoi(f[0].value, &e.index)) return bad("leaf_index");
  LeafRecord& r = e.record;
  r.event_id.swap(f[1].value);
  if (!absl::SimpleAtoi(f[2].value, &micros)) return bad("event_time");
  r.event_time = absl::FromUnixMicros(micros);
  r.service.swap(f[3].value);
  r.actor_user_id.swap(f[4].value);
  r.actor_service.swap(f[5].value);
  r.actor_session.swap(f[6].value);
  r.action.swap(f[7].value);
  r.resource.swap(f[8].value);
  r.subject_id.swap(f[9].value);
  if (!absl::SimpleAtoi(f[10].value, &outcome)) return bad("outcome");
  r.outcome = outcome;
  r.request_id.swap(f[11].value);
  r.key_scope.swap(f[12].value);
  r.has_changes = f[13].value == "t";
  for (auto [field, out] : {std::pair{&f[14], &r.clear_part}, std::pair{&f[15], &r.sealed},
                            std::pair{&f[16], &e.leaf_hash}}) {
    if (field->null) {
      out->clear();
    } else {
      if (!DecodeByteaHex(field->value, *out).ok()) return bad("bytea");
    }
  }
  if (!absl::SimpleAtoi(f[17].value, &micros)) return bad("ingested_at");
  e.ingested_at = absl::FromUnixMicros(micros);
  e.content_expired = f[18].value == "t";
  return absl::OkStatus();
}

Checkpoint RowToCheckpoint(const pqxx::row& row) {
  return Checkpoint{.tree_size = row[0].as<uint64_t>(),
                    .root_hash = Bytes(row[1]),
                    .signed_at = absl::FromUnixMicros(row[2].as<int64_t>()),
                    .key_id = row[3].as<std::string>(),
                    .signature = Bytes(row[4])};
}

template <typename... Extra>
pqxx::result RunFilter(pqxx::work& tx, const std::string& sql, const EntryFilter& f,
                       int64_t after_index, const Extra&... extra) {
  return tx.exec_params(
      sql, after_index, f.actor_user_id, f.actor_service, f.subject_id, f.action, f.action_prefix,
      pg::ArrayLiteral(f.actions), f.resource,
      f.start.has_value() ? std::max(kYearOneMicros, absl::ToUnixMicros(*f.start)) : kYearOneMicros,
      f.end.has_value() ? std::min(kYear9999Micros, absl::ToUnixMicros(*f.end)) : kYear9999Micros,
      f.only_changes, f.service, extra...);
}

}  // namespace

namespace {

// The hashes of `ids` within `tx`: leaves from audit_log, subtrees from
// merkle_nodes, one query each. Missing ones are absent from the map.
merkle::NodeMap FetchNodesIn(pqxx::work& tx, const std::vector<merkle::NodeId>& ids) {
  std::vector<std::string> leaf_idx;
  std::vector<merkle::NodeId> subtrees;
  for (const merkle::NodeId& id : ids) {
    if (id.level == 0) {
      leaf_idx.push_back(absl::StrCat(id.index));
    } else {
      subtrees.push_back(id);
    }
  }
  merkle::NodeMap nodes;
  if (!leaf_idx.empty()) {
    for (const auto& row : tx.exec_params(kLeavesSql, pg::ArrayLiteral(leaf_idx))) {
      nodes[{0, row[0].as<uint64_t>()}] = Bytes(row[1]);
    }
  }
  if (subtrees.empty()) return nodes;
  std::sort(subtrees.begin(), subtrees.end(), [](const merkle::NodeId& a, const merkle::NodeId& b) {
    return a.level != b.level ? a.level < b.level : a.index < b.index;
  });
  std::vector<std::string> levels, firsts, lasts;
  for (size_t i = 0; i < subtrees.size();) {
    size_t j = i + 1;
    while (j < subtrees.size() && subtrees[j].level == subtrees[i].level &&
           subtrees[j].index <= subtrees[j - 1].index + 1) {
      ++j;
    }
    levels.push_back(absl::StrCat(subtrees[i].level));
    firsts.push_back(absl::StrCat(subtrees[i].index));
    lasts.push_back(absl::StrCat(subtrees[j - 1].index));
    i = j;
  }
  const absl::flat_hash_set<merkle::NodeId> wanted(subtrees.begin(), subtrees.end());
  for (const auto& row : tx.exec_params(kNodesSql, pg::ArrayLiteral(levels),
                                        pg::ArrayLiteral(firsts), pg::ArrayLiteral(lasts))) {
    const merkle::NodeId id{row[0].as<int>(), row[1].as<uint64_t>()};
    if (wanted.contains(id)) nodes[id] = Bytes(row[2]);
  }
  return nodes;
}

}  // namespace

absl::StatusOr<AppendResult> LogStore::Append(const std::vector<std::string>& event_ids,
                                              absl::Time now, const RecordMaker& make) {
  AppendResult result;
  std::optional<merkle::TreeBuilder> edge;
  {
    absl::MutexLock lock(&mu_);
    edge = edge_;
  }
  // Optimistically without looking the ids up first: the unique index on
  // event_id checks them anyway, and replays are rare (an outbox relay whose
  // acknowledgement was lost). A replayed id fails the COPY; the batch is then
  // appended again with the look-up, which drops the logged events.
  bool probe = false;
  auto attempt = [&](pqxx::work& tx) -> absl::Status {
    result = AppendResult();
    tx.exec(kLockSql);
    const uint64_t size = tx.exec1(kSizeSql)[0].as<uint64_t>();
    // Resume from the stored frontier unless the cached edge is current.
    merkle::TreeBuilder tree;
    if (edge.has_value() && edge->size() == size) {
      tree = *edge;
    } else {
      const merkle::NodeMap nodes = FetchNodesIn(tx, merkle::FrontierNodes(size));
      CRM_ASSIGN_OR_RETURN(tree, merkle::TreeBuilder::Resume(size, nodes));
    }
    // Drop events already logged, and repeats within the batch.
    absl::flat_hash_set<std::string> seen;
    if (probe) {
      for (const auto& row : tx.exec_params(kExistingSql, pg::ArrayLiteral(event_ids))) {
        seen.insert(row[0].as<std::string>());
      }
    }
    const std::string ingested = CopyTime(now);
    std::optional<CopyIn> leaves;
    std::string leaf_rows, node_rows;
    for (size_t i = 0; i < event_ids.size(); ++i) {
      if (!seen.insert(event_ids[i]).second) {
        ++result.duplicates;
        continue;
      }
      CRM_ASSIGN_OR_RETURN(const LeafRecord r, make(i));
      const std::string leaf_hash = merkle::LeafHash(EncodeLeaf(r));
      const uint64_t index = tree.size();
      CRM_RETURN_IF_ERROR(
          tree.Append(leaf_hash, [&](const merkle::NodeId& id, absl::string_view hash) {
            if (id.level > 0) AppendNodeCopyRow(node_rows, id, hash);
          }));
      AppendLeafCopyRow(leaf_rows, index, r, leaf_hash, ingested);
      if (++result.appended % kRowsPerPiece == 0) {
        if (!leaves.has_value()) leaves.emplace(tx, "audit_log", kLeafCopyColumns);
        leaves->Write(leaf_rows);
        leaf_rows.clear();
      }
    }
    if (!leaf_rows.empty() && !leaves.has_value())
      leaves.emplace(tx, "audit_log", kLeafCopyColumns);
    if (leaves.has_value()) {
      leaves->Write(leaf_rows);
      leaves->Complete();
    }
    if (!node_rows.empty()) {
      CopyIn nodes(tx, "merkle_nodes", kNodeCopyColumns);
      nodes.Write(node_rows);
      nodes.Complete();
    }
    result.tree_size = tree.size();
    result.root = tree.Root();
    edge = tree;
    return absl::OkStatus();
  };
  absl::Status status = pool_.Transact(attempt);
  if (absl::IsAlreadyExists(status)) {
    probe = true;
    status = pool_.Transact(attempt);
  }
  CRM_RETURN_IF_ERROR(status);
  absl::MutexLock lock(&mu_);
  edge_ = edge;
  return result;
}

absl::StatusOr<uint64_t> LogStore::Size() {
  return pool_.TransactValue<uint64_t>(
      [&](pqxx::work& tx) -> absl::StatusOr<uint64_t> {
        return tx.exec1(kSizeSql)[0].as<uint64_t>();
      },
      {.read_only = true});
}

absl::StatusOr<merkle::NodeMap> LogStore::FetchNodes(const std::vector<merkle::NodeId>& ids) {
  return pool_.TransactValue<merkle::NodeMap>(
      [&](pqxx::work& tx) -> absl::StatusOr<merkle::NodeMap> { return FetchNodesIn(tx, ids); },
      {.read_only = true});
}

absl::StatusOr<std::vector<StoredEntry>> LogStore::Query(const EntryFilter& filter,
                                                         int64_t after_index, int limit) {
  const std::string sql = absl::StrCat("SELECT ", kEntryColumns, " FROM audit_log", kFilterSql,
                                       " ORDER BY leaf_index LIMIT $13");
  return pool_.TransactValue<std::vector<StoredEntry>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<StoredEntry>> {
        std::vector<StoredEntry> out;
        for (const auto& row : RunFilter(tx, sql, filter, after_index, limit)) {
          out.push_back(RowToEntry(row));
        }
        return out;
      },
      {.read_only = true});
}

absl::StatusOr<int64_t> LogStore::Count(const EntryFilter& filter) {
  const std::string sql = absl::StrCat("SELECT count(*) FROM audit_log", kFilterSql);
  return pool_.TransactValue<int64_t>(
      [&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
        return RunFilter(tx, sql, filter, int64_t{-1})[0][0].as<int64_t>();
      },
      {.read_only = true});
}

// pqxx::tablereader is deprecated in libpqxx 6.4; its stream_from reads
// whole tables only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
absl::Status LogStore::Scan(int64_t from, int batch,
                            const std::function<absl::Status(const StoredEntry&)>& fn) {
  int64_t next = from;
  while (true) {
    int got = 0;
    // Streamed with COPY, so PostgreSQL reads and sends rows while `fn`
    // works on the earlier ones (a SELECT's result arrives whole first):
    // VerifyLog ~2x faster (ingest_bench). A retried transaction resumes at
    // `next`, after the last entry handed to `fn`.
    CRM_RETURN_IF_ERROR(pool_.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          got = 0;
          // tablereader puts its "table" unquoted into COPY <table> TO
          // STDOUT, which takes a parenthesised query; both numbers are ours.
          const std::string query =
              absl::StrCat("(SELECT ", kEntryColumns, " FROM audit_log WHERE leaf_index >= ", next,
                           " ORDER BY leaf_index LIMIT ", batch, ")");
          pqxx::tablereader reader(tx, query);
          std::string line;
          std::vector<CopyField> fields;
          StoredEntry entry;
          while (reader.get_raw_line(line)) {
            if (!line.empty() && line.back() == '\n') line.pop_back();
            CRM_RETURN_IF_ERROR(CopyLineToEntry(line, fields, entry));
            ++got;
            CRM_RETURN_IF_ERROR(fn(entry));
            next = entry.index + 1;
          }
          reader.complete();
          return absl::OkStatus();
        },
        {.read_only = true}));
    if (got < batch) return absl::OkStatus();
  }
}
#pragma GCC diagnostic pop

absl::StatusOr<int64_t> LogStore::ExpireBefore(absl::Time cutoff, int limit) {
  return pool_.TransactValue<int64_t>([&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
    return tx.exec_params(kExpireSql, absl::ToUnixMicros(cutoff), limit).affected_rows();
  });
}

absl::Status LogStore::InsertCheckpoint(const Checkpoint& c) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(kInsertCheckpointSql, static_cast<int64_t>(c.tree_size), Bin(c.root_hash),
                   absl::ToUnixMicros(c.signed_at), c.key_id, Bin(c.signature));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<Checkpoint>> LogStore::LatestCheckpoint() {
  const std::string sql = absl::StrCat("SELECT ", kCheckpointColumns,
                                       " FROM checkpoints ORDER BY tree_size DESC LIMIT 1");
  return pool_.TransactValue<std::optional<Checkpoint>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::optional<Checkpoint>> {
        pqxx::result rows = tx.exec(sql);
        if (rows.empty()) return std::optional<Checkpoint>();
        return std::optional<Checkpoint>(RowToCheckpoint(rows[0]));
      },
      {.read_only = true});
}

absl::StatusOr<Checkpoint> LogStore::CheckpointAt(uint64_t tree_size) {
  const std::string sql =
      absl::StrCat("SELECT ", kCheckpointColumns, " FROM checkpoints WHERE tree_size = $1");
  return pool_.TransactValue<Checkpoint>(
      [&](pqxx::work& tx) -> absl::StatusOr<Checkpoint> {
        pqxx::result rows = tx.exec_params(sql, static_cast<int64_t>(tree_size));
        if (rows.empty()) return absl::NotFoundError("no checkpoint of that tree size");
        return RowToCheckpoint(rows[0]);
      },
      {.read_only = true});
}

absl::StatusOr<std::vector<Checkpoint>> LogStore::Checkpoints() {
  const std::string sql =
      absl::StrCat("SELECT ", kCheckpointColumns, " FROM checkpoints ORDER BY tree_size");
  return pool_.TransactValue<std::vector<Checkpoint>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<Checkpoint>> {
        std::vector<Checkpoint> out;
        for (const auto& row : tx.exec(sql)) out.push_back(RowToCheckpoint(row));
        return out;
      },
      {.read_only = true});
}

absl::StatusOr<CheckpointKeyRow> LogStore::EnsureCheckpointKey(const CheckpointKeyRow& key) {
  return pool_.TransactValue<CheckpointKeyRow>(
      [&](pqxx::work& tx) -> absl::StatusOr<CheckpointKeyRow> {
        tx.exec(kKeyLockSql);
        tx.exec_params(kInsertKeySql, key.key_id, Bin(key.public_key), Bin(key.private_wrapped),
                       absl::ToUnixMicros(key.created_at));
        pqxx::result rows = tx.exec(kKeysSql);
        if (rows.empty()) return absl::InternalError("checkpoint key missing after insert");
        const pqxx::row& row = rows[rows.size() - 1];
        return CheckpointKeyRow{.key_id = row[0].as<std::string>(),
                                .public_key = Bytes(row[1]),
                                .private_wrapped = Bytes(row[2]),
                                .created_at = absl::FromUnixMicros(row[3].as<int64_t>())};
      });
}

absl::StatusOr<std::vector<CheckpointKeyRow>> LogStore::CheckpointKeys() {
  return pool_.TransactValue<std::vector<CheckpointKeyRow>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::vector<CheckpointKeyRow>> {
        std::vector<CheckpointKeyRow> out;
        for (const auto& row : tx.exec(kKeysSql)) {
          out.push_back({.key_id = row[0].as<std::string>(),
                         .public_key = Bytes(row[1]),
                         .private_wrapped = Bytes(row[2]),
                         .created_at = absl::FromUnixMicros(row[3].as<int64_t>())});
        }
        return out;
      },
      {.read_only = true});
}

absl::StatusOr<std::optional<LogStore::ErasureRecord>> LogStore::ErasureRecorded(
    absl::string_view request_id) {
  const std::string id(request_id);
  return pool_.TransactValue<std::optional<ErasureRecord>>(
      [&](pqxx::work& tx) -> absl::StatusOr<std::optional<ErasureRecord>> {
        pqxx::result rows = tx.exec_params(kErasureSql, id);
        if (rows.empty()) return std::optional<ErasureRecord>();
        return std::optional<ErasureRecord>(
            ErasureRecord{.subject_id = rows[0][0].as<std::string>(),
                          .events = rows[0][1].as<int64_t>(),
                          .completed_at = absl::FromUnixMicros(rows[0][2].as<int64_t>())});
      },
      {.read_only = true});
}

absl::Status LogStore::RecordErasure(absl::string_view request_id, absl::string_view subject_id,
                                     int64_t events, absl::Time now) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(kRecordErasureSql, std::string(request_id), std::string(subject_id), events,
                   absl::ToUnixMicros(now));
    return absl::OkStatus();
  });
}

}  // namespace crm::audit
