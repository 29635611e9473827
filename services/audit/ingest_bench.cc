// The audit log end to end on PostgreSQL against its physical floors (issue 4:
// ingestion >= 20,000 events/s in batches of 500 with hashing and encryption;
// full verification >= 500,000 entries/s; a proof in under 5 ms at 10^7
// entries).
//
// The binary starts its own PostgreSQL (tools/testenv through BenchEnv, in a
// temp dir, stopped at the end; fsync off as in every test cluster, see
// docs/benchmarks.md) and migrates a database per need.
//
// Ingestion, one iteration = one batch of 500 events, --ingest_batches per run
// on a fresh database of its own (so every repetition starts empty):
//   BM_IngestBatch500    AuditLog::Ingest: validation, split, sealing of the
//                        personal part under the subject's data key (1,000
//                        subjects: keys are created by the first batches and
//                        cached after), leaf encoding and hashing, the tree,
//                        and LogStore::Append's transaction (advisory lock,
//                        size, duplicate check, COPY of leaves and nodes).
//                        Events look like an edit of a contact: actor,
//                        session, resource, request id, three details (one
//                        personal), one field change, source address, user
//                        agent.
//   BM_IngestBatch500Durable  the same with commits flushed to disk as in
//                        production (SetDurableCommits: fsync,
//                        synchronous_commit, full_page_writes on)
//   BM_IngestBatch500TwoCallers  the same from two threads on one AuditLog
//                        (half the batches each), as when several services
//                        send at once: one caller prepares while the other
//                        appends
//   BM_RawCopyBatch500   the floor: the same rows (made outside the timing by
//                        the same code: split, sealed, hashed, tree nodes) as
//                        the COPY text LogStore sends, written with libpq into
//                        the same two tables of a fresh database, one
//                        transaction per batch; no hashing, sealing or tree.
// Both report events/s, table_bytes_per_row (audit_log with its indexes: the
// rows are the same size), client_cpu_us (this process, timed calls only) and
// server_cpu_us (the PostgreSQL backends of the run's database, from /proc),
// per event.
//
// Verification over --verify_entries entries, ingested through Ingest at the
// first use (with a checkpoint signed every 10,000 entries):
//   BM_VerifyLog         VerifyLog (the audit-verify tool's work)
//   BM_ScanOnly          LogStore::Scan over the same rows doing nothing: the
//                        read floor through LogStore
//   BM_RawCopyOutBinary  the same rows and columns as binary COPY TO STDOUT
//                        through libpq, discarded: what PostgreSQL and the
//                        socket deliver at best
//   BM_VerifyComputeOnly VerifyLog's work per entry on entries in memory
//                        (encode, leaf hash, compare, tree append)
//   BM_Sha256PerEntry    one SHA-256 of each entry's leaf bytes
// The three reading ones report client_cpu_us and server_cpu_us per entry.
//
// Proofs at --proof_size entries (10^7 by default). Filling that through
// Ingest would take far too long, so at the first use the two tables are
// written directly: leaf i is an expired entry (content cleared, as retention
// leaves it) whose leaf hash is LeafHash of its 8-byte big-endian index, and
// every complete subtree is hashed by merkle::TreeBuilder; both tables are
// streamed with COPY over two connections, then a checkpoint of that size is
// signed. One inclusion and one consistency proof are verified against the
// checkpoint before anything is timed.
//   BM_InclusionProof    GetInclusionProof's work: InclusionProofNodes, one
//                        FetchNodes transaction, InclusionProof; random index
//   BM_ConsistencyProof  GetConsistencyProof's work for PROOF(m, size),
//                        random m
//   BM_ReadOnlyRoundTrip the floor of "one query": a read-only transaction
//                        running SELECT 1 through the same pool
// Both proofs report p50_ms and p99_ms.
//
// Defaults, each unless given: --benchmark_repetitions=3 with
// --benchmark_enable_random_interleaving=true and
// --benchmark_display_aggregates_only=true; after the table the ratios of the
// medians are printed. Run: tools/bench audit, or
// build-release/bench/ingest_bench [--ingest_batches=200]
// [--verify_entries=200000] [--proof_size=10000000] [--benchmark_filter=...].
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/clock.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/data_key.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/pg/pool.h"
#include "libs/testing/bench_env.h"
#include "libs/testing/bench_ratio.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/raw_pg.h"
#include "services/audit/audit_log.h"
#include "services/audit/copy_text.h"
#include "services/audit/data_keys.h"
#include "services/audit/leaf.h"
#include "services/audit/log_store.h"
#include "services/audit/merkle.h"

#ifndef CRM_SOURCE_DIR
#error "CRM_SOURCE_DIR must name the source tree (services/audit/bench.cmake sets it)"
#endif

namespace crm::audit {
namespace {

using crm::audit::v1::Event;
using pg::AppendCopyBytea;
using pg::CopyTime;

constexpr int kBatch = 500;
constexpr int kScanBatch = 10'000;  // VerifyLog's
constexpr int64_t kCheckpointEvery = 10'000;
constexpr size_t kSampleEntries = 10'000;
constexpr size_t kProofRequests = 1024;
// What LogStore::Scan selects, in the columns' own types.
constexpr char kScanColumns[] =
    "leaf_index, event_id, event_time, service, actor_user_id, actor_service, actor_session, "
    "action, resource, subject_id, outcome, request_id, key_scope, has_changes, clear_part, "
    "sealed, leaf_hash, ingested_at, content_expired";

struct Flags {
  int64_t ingest_batches = 200;
  int64_t verify_entries = 200'000;
  int64_t proof_size = 10'000'000;
  int64_t subjects = 1'000;
};
Flags flags;

struct Env {
  std::unique_ptr<crm::testing::BenchEnv> bench;
  std::unique_ptr<crypto::KeyRing> ring;
  base::Clock* clock = &base::RealClock::Get();
  std::vector<std::string> subjects;
  std::vector<std::string> operators;

  std::optional<absl::Status> verify_ready;  // set by the first use
  crm::testing::MigratedDatabase verify_db;
  std::unique_ptr<LogStore> verify_store;
  std::vector<StoredEntry> sample;  // the first kSampleEntries entries

  std::optional<absl::Status> proof_ready;
  crm::testing::MigratedDatabase proof_db;
  std::unique_ptr<LogStore> proof_store;
  uint64_t proof_size = 0;
};
Env* g = nullptr;

// ---- Events -------------------------------------------------------------------

// Edits of contacts by operators, subjects drawn at random from the pool.
class EventGenerator {
 public:
  explicit EventGenerator(uint64_t seed) : rng_(seed) {}

  std::vector<Event> Next(int n) {
    std::vector<Event> out(n);
    for (Event& e : out) {
      const uint64_t i = next_++;
      const std::string& subject = g->subjects[rng_() % g->subjects.size()];
      const std::string& op = g->operators[i % g->operators.size()];
      const absl::Time t = absl::FromUnixSeconds(1'796'083'200) + absl::Milliseconds(i);
      // Time-ordered, as the outbox makes them.
      e.set_event_id(base::NewTimeOrderedUuid(t));
      e.mutable_time()->set_seconds(absl::ToUnixSeconds(t));
      e.mutable_time()->set_nanos(static_cast<int32_t>(i % 1000 * 1'000'000));
      e.set_service("contacts");
      e.mutable_actor()->set_user_id(op);
      e.mutable_actor()->set_service_identity("gateway");
      e.mutable_actor()->set_session_id(absl::StrCat("sess-", op.substr(0, 8), "-", i / 1000));
      e.set_action("contacts.person.update");
      e.set_resource(absl::StrCat("persons/", subject));
      e.set_subject_id(subject);
      e.set_outcome(v1::OUTCOME_SUCCESS);
      e.set_request_id(base::NewUuid());
      AddDetail(e, "channel", "web", false);
      AddDetail(e, "ticket", absl::StrCat("SR-", 100'000 + i % 900'000), false);
      AddDetail(e, "reason", "Customer asked by phone to correct the postal address", true);
      v1::FieldChange* c = e.add_changes();
      c->set_field("postal_address");
      c->set_old_value("Hauptstraße 12, 10115 Berlin");
      c->set_new_value(absl::StrCat("Lindenallee ", 1 + i % 97, ", 80331 München"));
      e.set_source_address(absl::StrCat("203.0.113.", 1 + i % 250));
      e.set_user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0");
    }
    return out;
  }

 private:
  static void AddDetail(Event& e, const char* key, absl::string_view value, bool personal) {
    v1::Detail* d = e.add_details();
    d->set_key(key);
    d->set_value(std::string(value));
    d->set_personal(personal);
  }

  std::mt19937_64 rng_;
  uint64_t next_ = 0;
};

uint64_t NextSeed() {
  static uint64_t seed = 0;
  return ++seed;
}

std::vector<const Event*> Pointers(const std::vector<Event>& events) {
  std::vector<const Event*> out;
  out.reserve(events.size());
  for (const Event& e : events) out.push_back(&e);
  return out;
}

// Makes the rows of successive batches as Ingest + LogStore::Append would
// (split, sealed under a per-scope key, leaf hash, the nodes each leaf
// completes), as COPY text for audit_log and merkle_nodes.
class CopyRows {
 public:
  struct Batch {
    std::string leaves;
    std::string nodes;
  };

  absl::StatusOr<Batch> Make(const std::vector<Event>& events, absl::Time now) {
    Batch b;
    const std::string ingested = CopyTime(now);
    for (size_t i = 0; i < events.size(); ++i) {
      CRM_RETURN_IF_ERROR(ValidateEvent(events[i], i));
      SplitResult s = Split(events[i]);
      LeafRecord& r = s.record;
      if (s.personal_plaintext.has_value()) {
        auto key = keys_.find(r.key_scope);
        if (key == keys_.end()) key = keys_.emplace(r.key_scope, crypto::NewDataKey()).first;
        CRM_ASSIGN_OR_RETURN(r.sealed,
                             crypto::Seal(key->second, *s.personal_plaintext, SealAad(r.event_id)));
      }
      const std::string leaf_hash = merkle::LeafHash(EncodeLeaf(r));
      const uint64_t index = tree_.size();
      CRM_RETURN_IF_ERROR(
          tree_.Append(leaf_hash, [&](const merkle::NodeId& id, absl::string_view hash) {
            if (id.level > 0) AppendNodeCopyRow(b.nodes, id, hash);
          }));
      AppendLeafCopyRow(b.leaves, index, r, leaf_hash, ingested);
    }
    return b;
  }

 private:
  absl::flat_hash_map<std::string, crypto::SecretBytes> keys_;
  merkle::TreeBuilder tree_;
};

using crm::testing::RawConnection;

// ---- The floor and the bulk load: COPY through libpq (RawConnection) ----------

// One batch as its own transaction, on a libpq connection of its own.
absl::Status CopyBatch(RawConnection& conn, const CopyRows::Batch& b) {
  CRM_RETURN_IF_ERROR(conn.Exec("BEGIN"));
  CRM_RETURN_IF_ERROR(conn.BeginCopy("audit_log", kLeafCopyColumns));
  CRM_RETURN_IF_ERROR(conn.Put(b.leaves));
  CRM_RETURN_IF_ERROR(conn.EndCopy());
  if (!b.nodes.empty()) {
    CRM_RETURN_IF_ERROR(conn.BeginCopy("merkle_nodes", kNodeCopyColumns));
    CRM_RETURN_IF_ERROR(conn.Put(b.nodes));
    CRM_RETURN_IF_ERROR(conn.EndCopy());
  }
  return conn.Exec("COMMIT");
}

// ---- Set-up -------------------------------------------------------------------

absl::StatusOr<crm::testing::MigratedDatabase> FreshDatabase(absl::string_view prefix) {
  return crm::testing::CreateMigratedDatabase("audit", prefix, 4);
}

// Bytes of audit_log with its indexes and TOAST, per row.
absl::StatusOr<double> TableBytesPerRow(pg::Pool& pool) {
  return pool.TransactValue<double>([](pqxx::work& tx) -> absl::StatusOr<double> {
    const pqxx::row r = tx.exec1(
        "SELECT pg_total_relation_size('audit_log')::float8 / GREATEST(count(*), 1) "
        "FROM audit_log");
    return r[0].as<double>();
  });
}

// CPU seconds this thread has used.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds (user + system) used so far by the server processes of the
// pool's database (PostgreSQL runs on this machine; /proc/<pid>/stat).
absl::StatusOr<double> ServerCpuSeconds(pg::Pool& pool) {
  std::vector<int> pids;
  CRM_RETURN_IF_ERROR(pool.Transact([&](pqxx::work& tx) -> absl::Status {
    pids.clear();
    for (const auto& row :
         tx.exec("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")) {
      pids.push_back(row[0].as<int>());
    }
    return absl::OkStatus();
  }));
  double ticks = 0;
  for (int pid : pids) {
    std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name: state is field 3, utime 14, stime 15.
    const size_t end = stat.rfind(')');
    if (end == std::string::npos) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(absl::string_view(stat).substr(end + 2), ' ', absl::SkipEmpty());
    double utime = 0, stime = 0;
    if (f.size() > 12 && absl::SimpleAtod(f[11], &utime) && absl::SimpleAtod(f[12], &stime)) {
      ticks += utime + stime;
    }
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Client and server CPU per item of one benchmark run: Client() brackets the
// timed calls; Report sets client_cpu_us and server_cpu_us (per item).
class CpuMeter {
 public:
  explicit CpuMeter(pg::Pool& pool) : pool_(pool), server_start_(ServerCpuSeconds(pool)) {}

  template <typename Fn>
  auto Client(Fn fn) {
    const double t0 = ThreadCpuSeconds();
    auto result = fn();
    client_ += ThreadCpuSeconds() - t0;
    return result;
  }

  void Report(benchmark::State& state, double items) {
    if (items <= 0) return;
    state.counters["client_cpu_us"] = client_ / items * 1e6;
    absl::StatusOr<double> server_end = ServerCpuSeconds(pool_);
    if (server_start_.ok() && server_end.ok()) {
      state.counters["server_cpu_us"] = (*server_end - *server_start_) / items * 1e6;
    }
  }

 private:
  pg::Pool& pool_;
  absl::StatusOr<double> server_start_;
  double client_ = 0;
};

absl::Status Ingest(AuditLog& log, EventGenerator& gen, int64_t entries, Checkpointer& cp) {
  for (int64_t done = 0; done < entries; done += kBatch) {
    const std::vector<Event> batch =
        gen.Next(static_cast<int>(std::min<int64_t>(kBatch, entries - done)));
    CRM_ASSIGN_OR_RETURN(AppendResult r, log.Ingest(Pointers(batch)));
    if (r.appended != static_cast<int>(batch.size())) {
      return absl::InternalError("ingest appended fewer events than sent");
    }
    CRM_RETURN_IF_ERROR(cp.MaybeCheckpoint().status());
  }
  return cp.MaybeCheckpoint(/*force=*/true).status();
}

absl::Status PrepareVerifyLog() {
  CRM_ASSIGN_OR_RETURN(g->verify_db, FreshDatabase("verify"));
  g->verify_store = std::make_unique<LogStore>(*g->verify_db.pool);
  DataKeys keys(*g->verify_db.pool, *g->ring, *g->clock);
  AuditLog log(*g->verify_store, keys, *g->clock);
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<Checkpointer> cp,
                       Checkpointer::Create(*g->verify_store, *g->ring, *g->clock, kCheckpointEvery,
                                            absl::Hours(1)));
  EventGenerator gen(7);
  const absl::Time t0 = absl::Now();
  CRM_RETURN_IF_ERROR(Ingest(log, gen, flags.verify_entries, *cp));
  const absl::Duration took = absl::Now() - t0;
  std::printf("verify log: %lld entries ingested in %.1f s (%.0f events/s, with checkpoints)\n",
              static_cast<long long>(flags.verify_entries), absl::ToDoubleSeconds(took),
              static_cast<double>(flags.verify_entries) / absl::ToDoubleSeconds(took));
  CRM_ASSIGN_OR_RETURN(VerifyReport report, VerifyLog(*g->verify_store));
  if (!report.ok || report.entries_checked != flags.verify_entries) {
    return absl::InternalError(absl::StrCat("the fresh log does not verify: ", report.problem));
  }
  absl::Status scan = g->verify_store->Scan(0, kScanBatch, [](const StoredEntry& e) {
    if (g->sample.size() >= kSampleEntries) return absl::CancelledError("enough");
    g->sample.push_back(e);
    return absl::OkStatus();
  });
  if (!scan.ok() && !absl::IsCancelled(scan)) return scan;
  return absl::OkStatus();
}

std::string BigEndian64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
  return out;
}

// Leaf i of the proof log.
std::string ProofLeafHash(uint64_t i) { return merkle::LeafHash(BigEndian64(i)); }

// Writes the proof log's two tables (see the header comment).
absl::Status BuildProofTables(const std::string& conninfo, uint64_t size) {
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<RawConnection> leaves, RawConnection::Open(conninfo));
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<RawConnection> nodes, RawConnection::Open(conninfo));
  // Truncated in the loading transaction: with wal_level=minimal PostgreSQL
  // then writes no WAL for the rows.
  for (auto& [conn, table] :
       {std::pair{leaves.get(), "audit_log"}, std::pair{nodes.get(), "merkle_nodes"}}) {
    CRM_RETURN_IF_ERROR(conn->Exec("BEGIN"));
    CRM_RETURN_IF_ERROR(conn->Exec(absl::StrCat("TRUNCATE ", table).c_str()));
  }
  CRM_RETURN_IF_ERROR(
      leaves->BeginCopy("audit_log", absl::StrCat(kLeafCopyColumns, ", content_expired")));
  CRM_RETURN_IF_ERROR(nodes->BeginCopy("merkle_nodes", kNodeCopyColumns));
  const std::string time = CopyTime(absl::FromUnixSeconds(1'796'083'200));
  const std::string day_scope = "day:2026-12-01";
  merkle::TreeBuilder tree;
  std::string leaf_text, node_text;
  for (uint64_t i = 0; i < size; ++i) {
    const std::string hash = ProofLeafHash(i);
    CRM_RETURN_IF_ERROR(tree.Append(hash, [&](const merkle::NodeId& id, absl::string_view h) {
      if (id.level > 0) AppendNodeCopyRow(node_text, id, h);
    }));
    // Expired: the content columns cleared, ids, time, outcome, scope kept.
    absl::StrAppend(&leaf_text, i, "\t", absl::StrFormat("00000000-0000-4000-8000-%012x", i), "\t",
                    time, "\t\t\t\t\t\t\t\\N\t1\t\t", day_scope, "\tf\t\\N\t\\N\t");
    AppendCopyBytea(leaf_text, hash, false);
    absl::StrAppend(&leaf_text, "\t", time, "\tt\n");
    if (leaf_text.size() >= (4 << 20) || i + 1 == size) {
      CRM_RETURN_IF_ERROR(leaves->Put(leaf_text));
      CRM_RETURN_IF_ERROR(nodes->Put(node_text));
      leaf_text.clear();
      node_text.clear();
    }
  }
  for (RawConnection* conn : {leaves.get(), nodes.get()}) {
    CRM_RETURN_IF_ERROR(conn->EndCopy());
    CRM_RETURN_IF_ERROR(conn->Exec("COMMIT"));
  }
  // As autovacuum would, but before the timing rather than during it: sets
  // the rows' hint bits and the visibility map, and the planner's statistics.
  return leaves->Exec("VACUUM (ANALYZE) audit_log, merkle_nodes");
}

// One inclusion and one consistency proof of the checkpoint, verified.
absl::Status CheckProofs(LogStore& store, const Checkpoint& c) {
  const uint64_t n = c.tree_size;
  const uint64_t index = n * 2 / 3;
  CRM_ASSIGN_OR_RETURN(std::vector<merkle::NodeId> ids, merkle::InclusionProofNodes(index, n));
  ids.push_back({0, index});
  CRM_ASSIGN_OR_RETURN(merkle::NodeMap nodes, store.FetchNodes(ids));
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> path, merkle::InclusionProof(index, n, nodes));
  if (nodes[{0, index}] != ProofLeafHash(index)) {
    return absl::DataLossError("the stored leaf hash is not the one written");
  }
  CRM_RETURN_IF_ERROR(merkle::VerifyInclusion(nodes[{0, index}], index, n, path, c.root_hash));

  const uint64_t m = std::max<uint64_t>(1, n / 3);
  CRM_ASSIGN_OR_RETURN(std::vector<merkle::NodeId> root_ids, merkle::RootNodes(m));
  CRM_ASSIGN_OR_RETURN(merkle::NodeMap root_nodes, store.FetchNodes(root_ids));
  CRM_ASSIGN_OR_RETURN(std::string root_m, merkle::RootHash(m, root_nodes));
  CRM_ASSIGN_OR_RETURN(ids, merkle::ConsistencyProofNodes(m, n));
  CRM_ASSIGN_OR_RETURN(nodes, store.FetchNodes(ids));
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> proof, merkle::ConsistencyProof(m, n, nodes));
  return merkle::VerifyConsistency(m, n, root_m, c.root_hash, proof);
}

absl::Status PrepareProofLog() {
  CRM_ASSIGN_OR_RETURN(g->proof_db, FreshDatabase("proof"));
  g->proof_store = std::make_unique<LogStore>(*g->proof_db.pool);
  const uint64_t size = static_cast<uint64_t>(flags.proof_size);
  const absl::Time t0 = absl::Now();
  CRM_RETURN_IF_ERROR(BuildProofTables(g->proof_db.db->conninfo(), size));
  CRM_ASSIGN_OR_RETURN(
      std::unique_ptr<Checkpointer> cp,
      Checkpointer::Create(*g->proof_store, *g->ring, *g->clock, 1, absl::Hours(1)));
  CRM_ASSIGN_OR_RETURN(std::optional<Checkpoint> c, cp->MaybeCheckpoint(/*force=*/true));
  if (!c.has_value() || c->tree_size != size) {
    return absl::InternalError("no checkpoint of the proof log's size");
  }
  const absl::Duration took = absl::Now() - t0;
  std::printf("proof log: %llu entries and their subtrees written and checkpointed in %.1f s\n",
              static_cast<unsigned long long>(size), absl::ToDoubleSeconds(took));
  CRM_RETURN_IF_ERROR(CheckProofs(*g->proof_store, *c));
  g->proof_size = size;
  return absl::OkStatus();
}

// Runs `prepare` once; later calls return its status.
bool Ready(benchmark::State& state, std::optional<absl::Status>& ready, absl::Status (*prepare)()) {
  if (!ready.has_value()) {
    ready = prepare();
    if (!ready->ok()) std::fprintf(stderr, "ingest_bench: %s\n", ready->ToString().c_str());
  }
  if (!ready->ok()) state.SkipWithError("set-up failed (see stderr)");
  return ready->ok();
}

// ---- Ingestion ----------------------------------------------------------------

// BM_IngestBatch500's body; `durable`: commits flushed to disk meanwhile.
void RunIngest(benchmark::State& state, bool durable) {
  absl::StatusOr<crm::testing::MigratedDatabase> db = FreshDatabase("ingest");
  if (!db.ok()) {
    state.SkipWithError("cannot create the database");
    return;
  }
  if (durable && !crm::testing::SetDurableCommits(*db->pool, true).ok()) {
    state.SkipWithError("cannot make commits durable");
    return;
  }
  {
    LogStore store(*db->pool);
    DataKeys keys(*db->pool, *g->ring, *g->clock);
    AuditLog log(store, keys, *g->clock);
    EventGenerator gen(NextSeed());
    CpuMeter cpu(*db->pool);
    for (auto _ : state) {
      state.PauseTiming();
      const std::vector<Event> batch = gen.Next(kBatch);
      const std::vector<const Event*> events = Pointers(batch);
      state.ResumeTiming();
      absl::StatusOr<AppendResult> r = cpu.Client([&] { return log.Ingest(events); });
      if (!r.ok() || r->appended != kBatch) {
        std::fprintf(stderr, "ingest_bench: %s\n", r.status().ToString().c_str());
        state.SkipWithError("ingest failed");
        break;
      }
    }
    cpu.Report(state, static_cast<double>(state.iterations() * kBatch));
  }
  if (durable && !crm::testing::SetDurableCommits(*db->pool, false).ok()) {
    state.SkipWithError("cannot turn durable commits off again");
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  if (absl::StatusOr<double> b = TableBytesPerRow(*db->pool); b.ok()) {
    state.counters["table_bytes_per_row"] = *b;
  }
}

void BM_IngestBatch500(benchmark::State& state) { RunIngest(state, false); }
void BM_IngestBatch500Durable(benchmark::State& state) { RunIngest(state, true); }

// BM_IngestBatch500 with two callers at once on one AuditLog (as when
// several services send together): each thread ingests its own batches; the
// appends take turns under the advisory lock while the other caller
// validates, splits and seals.
struct SharedIngest {
  crm::testing::MigratedDatabase db;
  std::unique_ptr<LogStore> store;
  std::unique_ptr<DataKeys> keys;
  std::unique_ptr<AuditLog> log;
};
SharedIngest* shared_ingest = nullptr;

void BM_IngestBatch500TwoCallers(benchmark::State& state) {
  // Thread 0 sets up before, and tears down after, the loop; the other
  // thread waits at the loop's start and end.
  if (state.thread_index() == 0) {
    shared_ingest = nullptr;
    if (absl::StatusOr<crm::testing::MigratedDatabase> db = FreshDatabase("ingest2"); db.ok()) {
      shared_ingest = new SharedIngest{.db = *std::move(db)};
      shared_ingest->store = std::make_unique<LogStore>(*shared_ingest->db.pool);
      shared_ingest->keys =
          std::make_unique<DataKeys>(*shared_ingest->db.pool, *g->ring, *g->clock);
      shared_ingest->log =
          std::make_unique<AuditLog>(*shared_ingest->store, *shared_ingest->keys, *g->clock);
    }
  }
  EventGenerator gen(NextSeed() + 1000 * static_cast<uint64_t>(state.thread_index()));
  for (auto _ : state) {
    if (shared_ingest == nullptr) {
      state.SkipWithError("cannot create the database");
      break;
    }
    state.PauseTiming();
    const std::vector<Event> batch = gen.Next(kBatch);
    const std::vector<const Event*> events = Pointers(batch);
    state.ResumeTiming();
    absl::StatusOr<AppendResult> r = shared_ingest->log->Ingest(events);
    if (!r.ok() || r->appended != kBatch) {
      std::fprintf(stderr, "ingest_bench: %s\n", r.status().ToString().c_str());
      state.SkipWithError("ingest failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  if (state.thread_index() == 0) {
    delete shared_ingest;
    shared_ingest = nullptr;
  }
}

void BM_RawCopyBatch500(benchmark::State& state) {
  absl::StatusOr<crm::testing::MigratedDatabase> db = FreshDatabase("rawcopy");
  if (!db.ok()) {
    state.SkipWithError("cannot create the database");
    return;
  }
  {
    absl::StatusOr<std::unique_ptr<RawConnection>> conn = RawConnection::Open(db->db->conninfo());
    if (!conn.ok()) {
      state.SkipWithError("cannot connect");
      return;
    }
    CopyRows rows;
    EventGenerator gen(NextSeed());
    CpuMeter cpu(*db->pool);
    for (auto _ : state) {
      state.PauseTiming();
      absl::StatusOr<CopyRows::Batch> batch = rows.Make(gen.Next(kBatch), g->clock->Now());
      state.ResumeTiming();
      absl::Status s =
          batch.ok() ? cpu.Client([&] { return CopyBatch(**conn, *batch); }) : batch.status();
      if (!s.ok()) {
        std::fprintf(stderr, "ingest_bench: %s\n", s.ToString().c_str());
        state.SkipWithError("COPY failed");
        break;
      }
    }
    cpu.Report(state, static_cast<double>(state.iterations() * kBatch));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  if (absl::StatusOr<double> b = TableBytesPerRow(*db->pool); b.ok()) {
    state.counters["table_bytes_per_row"] = *b;
  }
}

// ---- Verification ---------------------------------------------------------------

void BM_VerifyLog(benchmark::State& state) {
  if (!Ready(state, g->verify_ready, PrepareVerifyLog)) return;
  CpuMeter cpu(*g->verify_db.pool);
  for (auto _ : state) {
    absl::StatusOr<VerifyReport> r = cpu.Client([] { return VerifyLog(*g->verify_store); });
    if (!r.ok() || !r->ok || r->entries_checked != flags.verify_entries) {
      state.SkipWithError("verification failed");
      break;
    }
  }
  cpu.Report(state, static_cast<double>(state.iterations() * flags.verify_entries));
  state.SetItemsProcessed(state.iterations() * flags.verify_entries);
}

void BM_ScanOnly(benchmark::State& state) {
  if (!Ready(state, g->verify_ready, PrepareVerifyLog)) return;
  CpuMeter cpu(*g->verify_db.pool);
  for (auto _ : state) {
    int64_t seen = 0;
    absl::Status s = cpu.Client([&] {
      return g->verify_store->Scan(0, kScanBatch, [&](const StoredEntry& e) {
        benchmark::DoNotOptimize(e);
        ++seen;
        return absl::OkStatus();
      });
    });
    if (!s.ok() || seen != flags.verify_entries) {
      state.SkipWithError("scan failed");
      break;
    }
  }
  cpu.Report(state, static_cast<double>(state.iterations() * flags.verify_entries));
  state.SetItemsProcessed(state.iterations() * flags.verify_entries);
}

// The same rows and columns as Scan, in PostgreSQL's binary COPY format
// straight from libpq, discarded: what the server and the socket can deliver.
void BM_RawCopyOutBinary(benchmark::State& state) {
  if (!Ready(state, g->verify_ready, PrepareVerifyLog)) return;
  absl::StatusOr<std::unique_ptr<RawConnection>> conn =
      RawConnection::Open(g->verify_db.db->conninfo());
  if (!conn.ok()) {
    state.SkipWithError("cannot connect");
    return;
  }
  CpuMeter cpu(*g->verify_db.pool);
  for (auto _ : state) {
    absl::StatusOr<int64_t> rows = cpu.Client([&] {
      return (*conn)->CopyOut(absl::StrCat("COPY (SELECT ", kScanColumns,
                                           " FROM audit_log ORDER BY leaf_index) TO STDOUT "
                                           "(FORMAT binary)"));
    });
    // The binary format has a header and a trailer "row".
    if (!rows.ok() || *rows < flags.verify_entries) {
      state.SkipWithError("COPY TO failed");
      break;
    }
  }
  cpu.Report(state, static_cast<double>(state.iterations() * flags.verify_entries));
  state.SetItemsProcessed(state.iterations() * flags.verify_entries);
}

void BM_VerifyComputeOnly(benchmark::State& state) {
  if (!Ready(state, g->verify_ready, PrepareVerifyLog)) return;
  merkle::TreeBuilder tree;
  size_t i = 0;
  for (auto _ : state) {
    const StoredEntry& e = g->sample[i++ % g->sample.size()];
    if (merkle::LeafHash(EncodeLeaf(e.record)) != e.leaf_hash || !tree.Append(e.leaf_hash).ok()) {
      state.SkipWithError("entry does not verify");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Sha256PerEntry(benchmark::State& state) {
  if (!Ready(state, g->verify_ready, PrepareVerifyLog)) return;
  std::vector<std::string> leaves;
  for (const StoredEntry& e : g->sample) leaves.push_back(EncodeLeaf(e.record));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& leaf = leaves[i++ % leaves.size()];
    if (EVP_DigestInit_ex2(ctx, md, nullptr) != 1 ||
        EVP_DigestUpdate(ctx, leaf.data(), leaf.size()) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &len) != 1) {
      state.SkipWithError("SHA-256 failed");
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  EVP_MD_free(md);
  EVP_MD_CTX_free(ctx);
  state.SetItemsProcessed(state.iterations());
}

// ---- Proofs ---------------------------------------------------------------------

// Times each call of `fn(r)` (r: a random 64-bit number), reporting p50/p99.
template <typename Fn>
void RunTimed(benchmark::State& state, Fn fn) {
  std::mt19937_64 rng(42);
  std::vector<double> ms;
  for (auto _ : state) {
    const absl::Time t0 = absl::Now();
    absl::Status s = fn(rng());
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (!s.ok()) {
      std::fprintf(stderr, "ingest_bench: %s\n", s.ToString().c_str());
      state.SkipWithError("proof failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  state.counters["p50_ms"] = ms[ms.size() / 2];
  state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
}

void BM_InclusionProof(benchmark::State& state) {
  if (!Ready(state, g->proof_ready, PrepareProofLog)) return;
  const uint64_t n = g->proof_size;
  RunTimed(state, [n](uint64_t r) -> absl::Status {
    const uint64_t index = r % n;
    CRM_ASSIGN_OR_RETURN(std::vector<merkle::NodeId> ids, merkle::InclusionProofNodes(index, n));
    ids.push_back({0, index});
    CRM_ASSIGN_OR_RETURN(merkle::NodeMap nodes, g->proof_store->FetchNodes(ids));
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> path, merkle::InclusionProof(index, n, nodes));
    benchmark::DoNotOptimize(path);
    return absl::OkStatus();
  });
}

void BM_ConsistencyProof(benchmark::State& state) {
  if (!Ready(state, g->proof_ready, PrepareProofLog)) return;
  const uint64_t n = g->proof_size;
  RunTimed(state, [n](uint64_t r) -> absl::Status {
    const uint64_t m = 1 + r % n;
    CRM_ASSIGN_OR_RETURN(std::vector<merkle::NodeId> ids, merkle::ConsistencyProofNodes(m, n));
    CRM_ASSIGN_OR_RETURN(merkle::NodeMap nodes, g->proof_store->FetchNodes(ids));
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> proof, merkle::ConsistencyProof(m, n, nodes));
    benchmark::DoNotOptimize(proof);
    return absl::OkStatus();
  });
}

void BM_ReadOnlyRoundTrip(benchmark::State& state) {
  if (!Ready(state, g->proof_ready, PrepareProofLog)) return;
  RunTimed(state, [](uint64_t) -> absl::Status {
    return g->proof_db.pool->Transact(
        [](pqxx::work& tx) -> absl::Status {
          tx.exec1("SELECT 1");
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

// ---- Main -----------------------------------------------------------------------

void Register() {
  using benchmark::RegisterBenchmark;
  if (flags.ingest_batches > 0) {
    for (auto* b : {RegisterBenchmark("BM_RawCopyBatch500", BM_RawCopyBatch500),
                    RegisterBenchmark("BM_IngestBatch500", BM_IngestBatch500),
                    RegisterBenchmark("BM_IngestBatch500Durable", BM_IngestBatch500Durable)}) {
      b->Iterations(flags.ingest_batches)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
    // Each of the two threads runs half the batches.
    RegisterBenchmark("BM_IngestBatch500TwoCallers", BM_IngestBatch500TwoCallers)
        ->Iterations(std::max<int64_t>(1, flags.ingest_batches / 2))
        ->Threads(2)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  if (flags.verify_entries > 0) {
    RegisterBenchmark("BM_VerifyLog", BM_VerifyLog)->Unit(benchmark::kMillisecond)->UseRealTime();
    RegisterBenchmark("BM_ScanOnly", BM_ScanOnly)->Unit(benchmark::kMillisecond)->UseRealTime();
    RegisterBenchmark("BM_RawCopyOutBinary", BM_RawCopyOutBinary)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    RegisterBenchmark("BM_VerifyComputeOnly", BM_VerifyComputeOnly);
    RegisterBenchmark("BM_Sha256PerEntry", BM_Sha256PerEntry);
  }
  if (flags.proof_size > 0) {
    for (auto* b : {RegisterBenchmark("BM_ReadOnlyRoundTrip", BM_ReadOnlyRoundTrip),
                    RegisterBenchmark("BM_InclusionProof", BM_InclusionProof),
                    RegisterBenchmark("BM_ConsistencyProof", BM_ConsistencyProof)}) {
      b->Unit(benchmark::kMicrosecond)->UseRealTime();
    }
  }
}

// The run's name as Google Benchmark reports it.
std::string RunName(absl::string_view name) {
  if (name == "BM_IngestBatch500TwoCallers") {
    return absl::StrCat(name, "/iterations:", std::max<int64_t>(1, flags.ingest_batches / 2),
                        "/real_time/threads:2");
  }
  if (name == "BM_IngestBatch500" || name == "BM_IngestBatch500Durable" ||
      name == "BM_RawCopyBatch500") {
    return absl::StrCat(name, "/iterations:", flags.ingest_batches, "/real_time");
  }
  if (name == "BM_VerifyComputeOnly" || name == "BM_Sha256PerEntry") return std::string(name);
  return absl::StrCat(name, "/real_time");
}

// items_per_second of `name`, 0 if it did not run.
double Rate(const crm::testing::RatioReporter& r, absl::string_view name) {
  const crm::testing::RatioReporter::Figures* f = r.Find(RunName(name));
  return f == nullptr ? 0.0 : f->items_per_second;
}

void PrintIngestRatios(const crm::testing::RatioReporter& r) {
  std::printf("\nIngestion, batches of %d (goal: at least 20,000 events/s):\n", kBatch);
  r.PrintCostRatio("Ingest vs raw COPY of the same rows", RunName("BM_IngestBatch500"),
                   RunName("BM_RawCopyBatch500"));
  r.PrintCostRatio("Ingest, durable commits, vs raw COPY", RunName("BM_IngestBatch500Durable"),
                   RunName("BM_RawCopyBatch500"));
  r.PrintCostRatio("Ingest, two callers, vs raw COPY", RunName("BM_IngestBatch500TwoCallers"),
                   RunName("BM_RawCopyBatch500"));
  if (const double v = Rate(r, "BM_IngestBatch500"); v > 0) {
    std::printf("    goal %s: %.0f events/s\n", v >= 20'000 ? "met" : "MISSED", v);
  }
}

void PrintVerifyRatios(const crm::testing::RatioReporter& r) {
  std::printf("\nFull verification of %lld entries (goal: at least 500,000 entries/s):\n",
              static_cast<long long>(flags.verify_entries));
  r.PrintCostRatio("VerifyLog vs Scan alone", RunName("BM_VerifyLog"), RunName("BM_ScanOnly"));
  r.PrintCostRatio("Scan vs raw binary COPY out", RunName("BM_ScanOnly"),
                   RunName("BM_RawCopyOutBinary"));
  r.PrintCostRatio("VerifyLog vs raw binary COPY out", RunName("BM_VerifyLog"),
                   RunName("BM_RawCopyOutBinary"));
  r.PrintCostRatio("VerifyLog vs one SHA-256 per entry", RunName("BM_VerifyLog"),
                   RunName("BM_Sha256PerEntry"));
  r.PrintCostRatio("in-memory part vs one SHA-256", RunName("BM_VerifyComputeOnly"),
                   RunName("BM_Sha256PerEntry"));
  if (const double v = Rate(r, "BM_VerifyLog"); v > 0) {
    std::printf("    goal %s: %.0f entries/s\n", v >= 500'000 ? "met" : "MISSED", v);
  }
}

void PrintProofRatios(const crm::testing::RatioReporter& r) {
  std::printf("\nProofs at %lld entries (goal: under 5 ms):\n",
              static_cast<long long>(flags.proof_size));
  for (const char* name : {"BM_InclusionProof", "BM_ConsistencyProof"}) {
    r.PrintTimeRatio(name, RunName(name), RunName("BM_ReadOnlyRoundTrip"),
                     "a read-only SELECT 1 transaction");
    if (const auto* f = r.Find(RunName(name)); f != nullptr && f->counters.contains("p50_ms")) {
      const double p50 = f->counters.at("p50_ms");
      std::printf("    %-40s p50 %.2f ms, p99 %.2f ms: goal %s by the median\n", "", p50,
                  f->counters.at("p99_ms"), p50 < 5 ? "met" : "MISSED");
    }
  }
}

// The ratios to the same run's baselines, for the parts that ran.
void PrintRatios(const crm::testing::RatioReporter& r) {
  if (flags.ingest_batches > 0) PrintIngestRatios(r);
  if (flags.verify_entries > 0) PrintVerifyRatios(r);
  if (flags.proof_size > 0) PrintProofRatios(r);
}

absl::Status Setup() {
  CRM_ASSIGN_OR_RETURN(g->bench, crm::testing::BenchEnv::Start("ingest_bench", CRM_SOURCE_DIR));
  CRM_ASSIGN_OR_RETURN(crypto::KeyRing ring,
                       crypto::KeyRing::Parse(
                           absl::StrCat("1 ", absl::Base64Escape(crypto::RandomBytes(32)), "\n")));
  g->ring = std::make_unique<crypto::KeyRing>(std::move(ring));
  for (int64_t i = 0; i < flags.subjects; ++i) g->subjects.push_back(base::NewUuid());
  for (int i = 0; i < 50; ++i) g->operators.push_back(base::NewUuid());
  return absl::OkStatus();
}

void Teardown() {
  g->verify_store.reset();
  g->proof_store.reset();
  g->verify_db = {};
  g->proof_db = {};
  g->bench.reset();
}

}  // namespace
}  // namespace crm::audit

int main(int argc, char** argv) {
  using crm::audit::flags;
  crm::audit::Env env;
  crm::audit::g = &env;
  return crm::testing::RunBenchProgram(
      argc, argv,
      {.name = "ingest_bench",
       .usage = "[--ingest_batches=N] [--verify_entries=N] [--proof_size=N] [--subjects=N>0]",
       .defaults = {"--benchmark_repetitions=3", "--benchmark_enable_random_interleaving=true",
                    "--benchmark_display_aggregates_only=true"},
       .flags = {{"ingest_batches", &flags.ingest_batches, 0},
                 {"verify_entries", &flags.verify_entries, 0},
                 {"proof_size", &flags.proof_size, 0},
                 {"subjects", &flags.subjects, 1}},
       .setup = crm::audit::Setup,
       .register_all = crm::audit::Register,
       .print_ratios = crm::audit::PrintRatios,
       .teardown = crm::audit::Teardown});
}
