// Contacts end to end against its physical baselines (issue 5):
//   - CreatePerson throughput at least 70% of pgbench running the same SQL
//     statements at the same concurrency;
//   - GetPerson and look-up by e-mail with 1,000,000 subjects loaded: p99 under
//     3 ms at half of peak throughput;
//   - bulk import at least 10,000 subjects/s.
//
// The binary starts its own PostgreSQL and Redis (tools/testenv through
// BenchEnv, in a temp dir, stopped at the end; fsync off as in every test
// cluster, see docs/benchmarks.md), migrates a database and serves
// ContactsService as main.cc wires it (sealing under per-subject keys, blind
// indexes, the audit outbox; no relay, so audit events stay in the outbox)
// through a ServerRunner over mutual TLS with a real ApiAuth (ApiTestBed),
// which also serves the platform's Echo (the transport floor of the reads).
// Redis holds identity's mark that its revocation set is complete, as in
// production, so token checks ask Redis alone (redis_revocation.h).
// Every call goes through a gRPC client over mTLS loopback with an access
// token of an operator with contacts.read, .read.all, .read.sensitive and
// .write. Persons look like a shop's customers: two names, one e-mail, one
// phone, one postal address, a job title, a team and an owner.
//
// Set-up, before any benchmark: CheckSameRows creates 200 persons through the
// API and runs 200 transactions of the pgbench script (below), and refuses to
// go on unless both inserted the same number of rows into each table per
// person; then --subjects persons are imported (two ImportPersons streams)
// and the load rate is printed. Last, VACUUM ANALYZE, CHECKPOINT and sync(2),
// so the benchmarks do not meet set-up's aftermath (its checkpoint, the
// kernel writing back gigabytes of dirty pages).
//
//   BM_CreatePerson             CreatePerson with C calls in flight (--clients)
//                               for --seconds, through the load engine
//                               (tools/bench_src/load.h, the callback API)
//   BM_PgbenchCreateSql         pgbench -M prepared -c C -j 2 for --seconds
//                               running CreatePerson's statements in one
//                               transaction: the duplicate check, the key,
//                               person, owner, look-up and outbox inserts,
//                               with the byte sizes of a real person (values
//                               taken from a stored one); blind indexes
//                               come from pgbench's random numbers, and the
//                               subject and event ids from the transaction's
//                               time and them (time-ordered, as the
//                               service's), so each row is new
//   BM_PgbenchCreateSqlPipelined  the same script between \startpipeline and
//                               \endpipeline: sent as CreatePerson sends it
//   BM_ImportPersons            one ImportPersons stream of --import_rows
//                               persons per iteration
//   BM_CopyImportedRows         the floor: COPY of the rows one such import
//                               stored (persons, keys, owners, look-ups,
//                               outbox), in one transaction, into empty copies
//                               of the tables with the same indexes
//   BM_GetPersonAtHalfPeak      first the settling step again (the write
//                               benchmarks before it leave a checkpoint and
//                               dirty pages behind); closed loop with C
//                               threads for 3 s (peak), then GetPerson paced at half that rate for
//                               --seconds, random persons of the load;
//                               latency from the scheduled start (no
//                               coordinated omission): p50_ms p99_ms p999_ms;
//                               then the baseline at the same rate: the
//                               person's row read by primary key, one
//                               autocommit statement on a pooled connection
//                               (base_p50_ms, base_p99_ms); then Echo of
//                               a message the size of a GetPerson response
//                               on the same server and channel at the same
//                               rate (transport_p50_ms, transport_p99_ms);
//                               last the floor (below) at the same rate
//                               (floor_p50_ms, floor_p99_ms)
//   BM_LookupEmailAtHalfPeak    the same for LookupPersons by e-mail; the
//                               baseline reads the blind-index row and the
//                               person's row
//
// The reads' floor: what gRPC and PostgreSQL alone cost a read. A second
// server in this process (a ServerRunner with the same mTLS, policy and
// thread settings; the reads' server idles meanwhile) whose Echo runs the
// read's statements on the service's pool: for GetPerson the person's row
// and its audit event in one statement, for the look-up the persons of the
// e-mail's blind index and then its audit event (sealed as the service
// seals them). No token check, no opening of fields, no Person message; the
// answer is as long as GetPerson's.
//
// Defaults: --subjects=1000000 --clients=8 --import_rows=20000 --seconds=10,
// --benchmark_min_time=3. Set-up with 10^6 subjects takes a few minutes. Run:
// tools/bench writes (or reads, import), or build-release/bench/contacts_bench
// [--subjects=N] [--benchmark_filter=...]. After the table the ratios are
// printed.
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/testing/v1/echo.grpc.pb.h"
#include "libs/base/clock.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/crypto/primitives.h"
#include "libs/log/log.h"
#include "libs/outbox/schema.h"
#include "libs/outbox/writer.h"
#include "libs/rpc/access_policy.h"
#include "libs/rpc/server.h"
#include "libs/rpc/testing/echo_service.h"
#include "libs/testing/api_test_bed.h"
#include "libs/testing/bench_env.h"
#include "libs/testing/bench_latency.h"
#include "libs/testing/bench_ratio.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/raw_pg.h"
#include "libs/testing/subprocess.h"
#include "services/contacts/contacts_service.h"
#include "services/contacts/person_store.h"
#include "tools/bench_src/load.h"

#ifndef CRM_SOURCE_DIR
#error "CRM_SOURCE_DIR must name the source tree (services/contacts/bench.cmake sets it)"
#endif

namespace crm::contacts {
namespace {

using Stub = v1::Contacts::Stub;
using crm::testing::RawConnection;

constexpr char kOperator[] = "0b6f1c3e-8d2a-4f5b-9c1d-2e3f4a5b6c7d";
constexpr char kTeam[] = "3e9c4f6b-b05d-4c8e-af40-5b6c7d8e9fa0";
constexpr int kCheckPersons = 200;
constexpr absl::Duration kPeakPhase = absl::Seconds(3);
// The tables CreatePerson and ImportPersons write.
constexpr const char* kTables[] = {"persons", "subject_keys", "person_owners", "person_lookup",
                                   "audit_outbox"};

struct Flags {
  int64_t subjects = 1'000'000;
  int64_t clients = 8;
  int64_t import_rows = 20'000;
  int64_t seconds = 10;
};
Flags flags;

struct Env {
  std::unique_ptr<crm::testing::BenchEnv> bench;
  std::unique_ptr<crm::testing::ApiTestBed> bed;
  base::Clock* clock = &base::RealClock::Get();
  crm::testing::MigratedDatabase db;
  std::optional<crypto::KeyRing> ring;
  std::optional<crypto::BlindIndexer> indexer;
  std::unique_ptr<outbox::Writer> audit;
  std::unique_ptr<PersonSealer> sealer;
  std::unique_ptr<ContactsService> service;
  rpc::testing::EchoService echo;
  std::unique_ptr<rpc::ServerRunner> server;
  std::unique_ptr<crm::testing::v1::Echo::Service> floor;
  std::unique_ptr<rpc::ServerRunner> floor_server;
  std::unique_ptr<crm::testing::v1::Echo::Stub> floor_stub;
  outbox::SealedEvent floor_event;  // a read's audit event, sealed at set-up
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<Stub> stub;
  std::unique_ptr<crm::testing::v1::Echo::Stub> echo_stub;
  std::string echo_message;  // as long as a GetPerson response
  std::string token;
  // Persons are numbered; each number is used once (e-mail and phone are
  // unique). 0 .. loaded-1 are the load, in `loaded_ids`.
  std::atomic<int64_t> next_person{0};
  std::vector<std::string> loaded_ids;
  // pgbench: the script and its -D variables (values of a stored person).
  std::string pgbench_script;
  std::string pgbench_pipelined_script;  // the same in \startpipeline .. \endpipeline
  std::vector<std::string> pgbench_defines;
  // The rows of one import, as COPY text per table (BM_CopyImportedRows).
  std::map<std::string, std::string> imported_rows;
};
Env* g = nullptr;

// ---- Persons and calls ------------------------------------------------------------

std::string EmailOf(int64_t n) { return absl::StrCat("customer.", n, "@example.com"); }

v1::Person MakePerson(int64_t n) {
  static constexpr const char* kGiven[] = {"Anna", "Piotr", "Maria",     "Jan",
                                           "Ewa",  "Adam",  "Agnieszka", "Paweł"};
  static constexpr const char* kFamily[] = {"Nowak",    "Kowalski",    "Wiśniewska", "Wójcik",
                                            "Kamińska", "Lewandowski", "Zielińska",  "Szymański"};
  v1::Person p;
  p.set_status(v1::PERSON_STATUS_CUSTOMER);
  p.set_given_name(kGiven[n % 8]);
  p.set_family_name(kFamily[(n / 8) % 8]);
  v1::EmailAddress* e = p.add_emails();
  e->set_address(EmailOf(n));
  e->set_label("home");
  v1::PhoneNumber* phone = p.add_phones();
  phone->set_number(absl::StrCat("+48", 500'000'000 + n));
  phone->set_label("mobile");
  v1::PostalAddress* a = p.add_addresses();
  a->set_label("home");
  a->add_street_lines(absl::StrCat("ul. Marszałkowska ", n % 200 + 1, " m. ", n % 50 + 1));
  a->set_postal_code("00-624");
  a->set_city("Warszawa");
  a->set_country_code("PL");
  p.set_job_title("Purchasing manager");
  p.mutable_assignment()->set_team_id(kTeam);
  return p;
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", g->token));
  return ctx;
}

template <typename Req, typename Resp>
absl::Status Call(grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                  const Req& request, Resp* response) {
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  return base::FromGrpcStatus((g->stub.get()->*rpc)(ctx.get(), request, response));
}

absl::Status CreatePerson(int64_t n) {
  v1::CreatePersonRequest req;
  *req.mutable_person() = MakePerson(n);
  v1::CreatePersonResponse resp;
  return Call(&Stub::CreatePerson, req, &resp);
}

// Imports persons first .. first+count-1 on one stream; their subject ids.
absl::StatusOr<std::vector<std::string>> Import(int64_t first, int64_t count) {
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  v1::ImportPersonsResponse resp;
  std::unique_ptr<grpc::ClientWriter<v1::ImportPersonsRequest>> writer =
      g->stub->ImportPersons(ctx.get(), &resp);
  v1::ImportPersonsRequest req;
  req.set_source("bench");
  for (int64_t n = first; n < first + count; ++n) {
    *req.mutable_person() = MakePerson(n);
    if (!writer->Write(req)) break;
  }
  writer->WritesDone();
  CRM_RETURN_IF_ERROR(base::FromGrpcStatus(writer->Finish()));
  if (resp.imported() != count) {
    return absl::InternalError(absl::StrCat("imported ", resp.imported(), " of ", count,
                                            resp.errors_size() > 0 ? ": " : "",
                                            resp.errors_size() > 0 ? resp.errors(0).reason() : ""));
  }
  return std::vector<std::string>(resp.subject_ids().begin(), resp.subject_ids().end());
}

// ---- Rows and pgbench --------------------------------------------------------------

absl::StatusOr<std::map<std::string, int64_t>> CountRows() {
  return g->db.pool->TransactValue<std::map<std::string, int64_t>>(
      [](pqxx::work& tx) -> absl::StatusOr<std::map<std::string, int64_t>> {
        std::map<std::string, int64_t> counts;
        for (const char* t : kTables) {
          counts[t] = tx.exec1(absl::StrCat("SELECT count(*) FROM ", t))[0].as<int64_t>();
        }
        return counts;
      });
}

std::string PgBin(absl::string_view tool) {
  const char* bin = std::getenv("CRM_PG_BIN");
  return absl::StrCat(bin != nullptr && *bin != '\0' ? bin : "/usr/lib/postgresql/15/bin", "/",
                      tool);
}

struct PgbenchRun {
  int64_t transactions = 0;
  double seconds = 0;
};

// pgbench with the script, `clients` clients, and "-T secs" or "-t count".
absl::StatusOr<PgbenchRun> RunPgbench(int64_t clients, const char* limit, int64_t amount,
                                      bool pipelined = false) {
  crm::testing::Subprocess::Options options;
  options.args = {PgBin("pgbench"),
                  "-n",
                  "-M",
                  "prepared",
                  "-c",
                  absl::StrCat(clients),
                  "-j",
                  absl::StrCat(std::min<int64_t>(clients, 2)),
                  limit,
                  absl::StrCat(amount),
                  "-f",
                  pipelined ? g->pgbench_pipelined_script : g->pgbench_script};
  for (const std::string& d : g->pgbench_defines) {
    options.args.push_back("-D");
    options.args.push_back(d);
  }
  options.args.push_back(g->db.db->conninfo());
  options.output_file = absl::StrCat(g->bench->dir(), "/pgbench.log");
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<crm::testing::Subprocess> p,
                       crm::testing::Subprocess::Start(options));
  CRM_ASSIGN_OR_RETURN(crm::testing::ExitStatus exit, p->WaitForExit(absl::Seconds(amount + 120)));
  const std::string out = p->Output();
  PgbenchRun run;
  double tps = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::ConsumePrefix(&line, "number of transactions actually processed: ")) {
      (void)absl::SimpleAtoi(line.substr(0, line.find('/')), &run.transactions);
    } else if (absl::ConsumePrefix(&line, "tps = ")) {
      (void)absl::SimpleAtod(line.substr(0, line.find(' ')), &tps);
    }
  }
  if (!exit.exited_with(0) || run.transactions <= 0 || tps <= 0) {
    return absl::InternalError(absl::StrCat("pgbench failed:\n", out));
  }
  run.seconds = static_cast<double>(run.transactions) / tps;
  return run;
}

// CreatePerson's statements (services/contacts/person_store.cc, the outbox
// writer) as a pgbench script, run as prepared statements as the stores run
// them (libs/pg/prepared.h). The values are pgbench variables (-D, taken
// from a stored person), sent as parameters; the blind indexes are made from
// the random :r, the subject and event ids from the transaction's time and
// :r (time-ordered, as the service makes them).
constexpr char kPgbenchScript[] = R"sql(\set r random(1, 1000000000000000)
BEGIN;
SELECT n - 1, owner FROM (SELECT u.n, (SELECT l.subject_id::text FROM person_lookup l WHERE l.kind = u.kind AND l.blind = decode(u.blind, 'hex')) AS owner FROM unnest(:kinds::text[], ARRAY[md5(:r::text || 'e') || md5(:r::text || 'E'), md5(:r::text || 'p') || md5(:r::text || 'P')]) WITH ORDINALITY AS u(kind, blind, n)) k WHERE owner <> :empty ORDER BY n LIMIT 1;
INSERT INTO subject_keys (subject_id, wrapped, created_at) VALUES ((lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 16, '0') || lpad(to_hex(:r::bigint), 16, '0'))::uuid, :wrapped, now());
INSERT INTO persons (subject_id, status, company_id, team_id, restricted, restriction_reason, notes_sensitive, given_name, family_name, emails, phones, addresses, job_title, personal_id_number, notes, reg_channel, reg_source, created_by, created_at, updated_at, last_activity_at, version) VALUES ((lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 16, '0') || lpad(to_hex(:r::bigint), 16, '0'))::uuid, :status, NULLIF(:company, '')::uuid, NULLIF(:team, '')::uuid, :restricted, NULLIF(:reason, ''::bytea), :notes_sensitive, NULLIF(:given, ''::bytea), NULLIF(:family, ''::bytea), NULLIF(:emails, ''::bytea), NULLIF(:phones, ''::bytea), NULLIF(:addresses, ''::bytea), NULLIF(:job, ''::bytea), NULLIF(:pid, ''::bytea), NULLIF(:notes, ''::bytea), :channel, :source, :created_by, ('epoch'::timestamptz + (:ts)::bigint * interval '1 microsecond'), ('epoch'::timestamptz + (:ts)::bigint * interval '1 microsecond'), ('epoch'::timestamptz + (:ts)::bigint * interval '1 microsecond'), :version);
INSERT INTO person_owners (subject_id, user_id) SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 16, '0') || lpad(to_hex(:r::bigint), 16, '0'))::uuid, u FROM unnest(:owners::uuid[]) AS u ON CONFLICT DO NOTHING;
INSERT INTO person_lookup (kind, blind, subject_id) SELECT u.kind, decode(u.blind, 'hex'), (lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 16, '0') || lpad(to_hex(:r::bigint), 16, '0'))::uuid FROM unnest(:kinds::text[], ARRAY[md5(:r::text || 'e') || md5(:r::text || 'E'), md5(:r::text || 'p') || md5(:r::text || 'P')]) AS u(kind, blind);
INSERT INTO audit_outbox (event_id, payload, created_at) VALUES ((lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 16, '0') || 'e' || lpad(to_hex(:r::bigint), 15, '0'))::uuid, :payload, timestamptz 'epoch' + (:ts)::bigint * interval '1 microsecond');
COMMIT;
)sql";

// Writes the script and takes its variables from the newest stored person
// and outbox row.
absl::Status PreparePgbench() {
  g->pgbench_script = absl::StrCat(g->bench->dir(), "/create_person.sql");
  return g->db.pool->Transact([](pqxx::work& tx) -> absl::Status {
    const pqxx::row p = tx.exec1(
        "SELECT p.status, COALESCE(p.company_id::text, ''), COALESCE(p.team_id::text, ''), "
        "p.restricted::text, p.notes_sensitive::text, "
        "COALESCE('\\x' || encode(p.restriction_reason, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.given_name, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.family_name, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.emails, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.phones, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.addresses, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.job_title, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.personal_id_number, 'hex'), ''), "
        "COALESCE('\\x' || encode(p.notes, 'hex'), ''), p.reg_channel, p.reg_source, "
        "p.created_by, (EXTRACT(EPOCH FROM p.created_at) * 1000000)::bigint, p.version, "
        "'\\x' || encode(k.wrapped, 'hex'), "
        "ARRAY(SELECT o.user_id FROM person_owners o WHERE o.subject_id = p.subject_id)::text "
        "FROM persons p JOIN subject_keys k USING (subject_id) "
        "ORDER BY p.created_at DESC LIMIT 1");
    const pqxx::row o = tx.exec1(
        "SELECT '\\x' || encode(payload, 'hex') FROM audit_outbox "
        "ORDER BY event_id DESC LIMIT 1");
    const char* names[] = {"status",    "company",    "team",   "restricted", "notes_sensitive",
                           "reason",    "given",      "family", "emails",     "phones",
                           "addresses", "job",        "pid",    "notes",      "channel",
                           "source",    "created_by", "ts",     "version",    "wrapped",
                           "owners"};
    // pgbench refuses an empty -D value: those become '' in the script.
    std::string script = kPgbenchScript;
    auto define = [&](const std::string& name, const std::string& value) {
      if (!value.empty()) {
        g->pgbench_defines.push_back(absl::StrCat(name, "=", value));
        return;
      }
      script = std::regex_replace(script, std::regex(absl::StrCat(":", name, "\\b")), "''");
    };
    g->pgbench_defines.clear();
    for (size_t i = 0; i < std::size(names); ++i) define(names[i], p[static_cast<int>(i)].c_str());
    define("payload", o[0].c_str());
    define("kinds", "{email,phone}");
    define("empty", "");
    std::ofstream(g->pgbench_script) << script;
    // The statements sent as CreatePerson sends them: all at once.
    const size_t begin = script.find("BEGIN;");
    script.insert(begin, "\\startpipeline\n");
    script.append("\\endpipeline\n");
    g->pgbench_pipelined_script = absl::StrCat(g->bench->dir(), "/create_person_pipelined.sql");
    std::ofstream(g->pgbench_pipelined_script) << script;
    return absl::OkStatus();
  });
}

// Rows per person of each table, over `persons` persons, since `before`.
absl::StatusOr<std::string> RowsPerPerson(const std::map<std::string, int64_t>& before,
                                          int64_t persons) {
  CRM_ASSIGN_OR_RETURN(auto after, CountRows());
  std::vector<std::string> parts;
  for (const char* t : kTables) {
    parts.push_back(absl::StrCat(t, " ", static_cast<double>(after[t] - before.at(t)) / persons));
  }
  return absl::StrJoin(parts, ", ");
}

// The pgbench script must write what CreatePerson writes: the same number of
// rows per person in each table (FAILED_PRECONDITION otherwise, e.g. after
// the store changed and the script did not).
absl::Status CheckSameRows() {
  CRM_ASSIGN_OR_RETURN(auto before, CountRows());
  for (int i = 0; i < kCheckPersons; ++i) CRM_RETURN_IF_ERROR(CreatePerson(g->next_person++));
  CRM_ASSIGN_OR_RETURN(const std::string service, RowsPerPerson(before, kCheckPersons));
  CRM_RETURN_IF_ERROR(PreparePgbench());
  CRM_ASSIGN_OR_RETURN(before, CountRows());
  CRM_RETURN_IF_ERROR(RunPgbench(1, "-t", kCheckPersons).status());
  CRM_ASSIGN_OR_RETURN(const std::string pgbench, RowsPerPerson(before, kCheckPersons));
  std::printf("rows per person: CreatePerson {%s}; pgbench script {%s}\n", service.c_str(),
              pgbench.c_str());
  if (service != pgbench) {
    return absl::FailedPreconditionError(
        "the pgbench script no longer writes what CreatePerson writes: update kPgbenchScript");
  }
  return absl::OkStatus();
}

// ---- Set-up --------------------------------------------------------------------------

// Imports persons 0 .. subjects-1 on two streams (the numbers before any
// other person's) and keeps their ids in order.
absl::Status Load() {
  const int64_t first = g->next_person.fetch_add(flags.subjects);
  constexpr int64_t kChunk = 50'000;
  g->loaded_ids.assign(flags.subjects, "");
  std::atomic<int64_t> next_chunk{0};
  absl::Status failed;
  std::mutex mu;
  const absl::Time start = absl::Now();
  auto worker = [&] {
    for (int64_t c; (c = next_chunk.fetch_add(kChunk)) < flags.subjects;) {
      const int64_t count = std::min(kChunk, flags.subjects - c);
      absl::StatusOr<std::vector<std::string>> ids = Import(first + c, count);
      if (!ids.ok()) {
        std::lock_guard<std::mutex> l(mu);
        failed = ids.status();
        return;
      }
      std::move(ids->begin(), ids->end(), g->loaded_ids.begin() + c);
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  CRM_RETURN_IF_ERROR(failed);
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("loaded %lld persons through ImportPersons (2 streams) in %.1f s: %.0f /s\n",
              static_cast<long long>(flags.subjects), secs,
              static_cast<double>(flags.subjects) / secs);
  return absl::OkStatus();
}

// The end of set-up: statistics and visibility maps up to date, every dirty
// page written and flushed, as in a database that has been running a while.
absl::Status Settle() {
  return g->db.pool->WithConnection([](pqxx::connection_base& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    tx.exec("VACUUM ANALYZE");
    tx.exec("CHECKPOINT");
    ::sync();
    return absl::OkStatus();
  });
}

// Copies of the written tables for the COPY floor, and the rows of one
// import of --import_rows persons in COPY text.
absl::Status PrepareCopyFloor() {
  const int64_t first = g->next_person.fetch_add(flags.import_rows);
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> ids, Import(first, flags.import_rows));
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<RawConnection> conn,
                       RawConnection::Open(g->db.db->conninfo()));
  CRM_RETURN_IF_ERROR(conn->Exec("BEGIN"));
  CRM_RETURN_IF_ERROR(conn->Exec("CREATE TEMP TABLE floor_ids (subject_id uuid PRIMARY KEY)"));
  CRM_RETURN_IF_ERROR(conn->BeginCopy("floor_ids", "subject_id"));
  CRM_RETURN_IF_ERROR(conn->Put(absl::StrCat(absl::StrJoin(ids, "\n"), "\n")));
  CRM_RETURN_IF_ERROR(conn->EndCopy());
  for (const char* t : kTables) {
    CRM_RETURN_IF_ERROR(conn->Exec(
        absl::StrCat("CREATE TABLE IF NOT EXISTS floor_", t, " (LIKE ", t, " INCLUDING ALL)")
            .c_str()));
    const std::string select =
        std::string(t) == "audit_outbox"
            ? "SELECT * FROM audit_outbox ORDER BY event_id DESC LIMIT " +
                  std::to_string(flags.import_rows)
            : absl::StrCat("SELECT t.* FROM ", t, " t JOIN floor_ids USING (subject_id)");
    std::string& rows = g->imported_rows[t];
    CRM_RETURN_IF_ERROR(
        conn->CopyOut(absl::StrCat("COPY (", select, ") TO STDOUT"), &rows).status());
  }
  return conn->Exec("COMMIT");
}

// The reads' floor (see the top). A message with an '@' is an e-mail to look
// up; any other, a subject id to read.
class ReadFloor final : public crm::testing::v1::Echo::Service {
 public:
  grpc::Status Echo(grpc::ServerContext*, const crm::testing::v1::EchoRequest* req,
                    crm::testing::v1::EchoResponse* resp) override {
    const std::string& key = req->message();
    const Access all{.all = true};
    absl::Status s = g->db.pool->WithConnection([&](pqxx::connection_base& c) -> absl::Status {
      pqxx::nontransaction tx(c);
      if (!absl::StrContains(key, '@')) {
        CRM_ASSIGN_OR_RETURN(outbox::SealedEvent read,
                             g->audit->SealForInsert(Event("contacts.person.read", key)));
        CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> person,
                             PersonStore::GetAudited(tx, key, all, read));
        return person.has_value() ? absl::OkStatus() : absl::NotFoundError("floor: no person");
      }
      CRM_ASSIGN_OR_RETURN(std::vector<StoredPerson> found,
                           PersonStore::FindByKey(tx, g->sealer->EmailKey(key), all));
      if (found.size() != 1) return absl::NotFoundError("floor: not one person");
      return g->audit->Enqueue(tx, Event("contacts.person.lookup", found[0].subject_id));
    });
    resp->set_message(g->echo_message);
    return base::ToGrpcStatus(s);
  }

 private:
  // An event as the service's (ContactsService::Caller::Audit).
  static crm::audit::v1::Event Event(absl::string_view action, const std::string& subject) {
    crm::audit::v1::Event e;
    e.set_action(std::string(action));
    e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
    e.set_subject_id(subject);
    e.set_resource(absl::StrCat("persons/", subject));
    e.mutable_actor()->set_user_id(kOperator);
    e.mutable_actor()->set_session_id(kOperator);
    e.mutable_actor()->set_service_identity("gateway");
    e.set_request_id(base::NewTimeOrderedUuid(g->clock->Now()));
    return e;
  }
};

absl::Status Setup() {
  CRM_ASSIGN_OR_RETURN(g->bench, crm::testing::BenchEnv::Start("contacts_bench", CRM_SOURCE_DIR));
  CRM_ASSIGN_OR_RETURN(g->bed, crm::testing::ApiTestBed::Create("contacts", {"gateway"}));
  CRM_ASSIGN_OR_RETURN(g->db, crm::testing::CreateMigratedDatabase(
                                  "contacts", "contacts_bench",
                                  static_cast<int>(std::max<int64_t>(8, flags.clients + 4))));
  CRM_RETURN_IF_ERROR(outbox::EnsureSchema(*g->db.pool));
  std::vector<crypto::VersionedKey> keks;
  keks.push_back({.version = 1, .key = crypto::SecretBytes::CopyFrom(crypto::RandomBytes(32))});
  CRM_ASSIGN_OR_RETURN(crypto::KeyRing ring, crypto::KeyRing::FromKeys(std::move(keks)));
  g->ring.emplace(std::move(ring));
  CRM_ASSIGN_OR_RETURN(
      crypto::BlindIndexer indexer,
      crypto::BlindIndexer::Create(crypto::SecretBytes::CopyFrom(crypto::RandomBytes(32))));
  g->indexer.emplace(std::move(indexer));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes outbox_key,
                       outbox::LoadOrCreateKey(*g->db.pool, *g->ring));
  // The service runs on the real clock (creation times and event ids grow as
  // in production); the bed's fake clock only governs token expiry.
  g->audit = std::make_unique<outbox::Writer>("contacts", outbox_key.Copy(), *g->clock);
  g->sealer = std::make_unique<PersonSealer>(*g->ring, *g->indexer);
  g->service = std::make_unique<ContactsService>(ContactsDeps{.db = *g->db.pool,
                                                              .sealer = *g->sealer,
                                                              .verifier = g->bed->auth().verifier(),
                                                              .audit = *g->audit,
                                                              .clock = *g->clock});
  rpc::AccessPolicy policy;
  CRM_RETURN_IF_ERROR(AllowContactsMethods(policy));
  policy.AllowService(crm::testing::v1::Echo::service_full_name());
  CRM_ASSIGN_OR_RETURN(g->server,
                       g->bed->Serve("contacts", std::move(policy), {g->service.get(), &g->echo}));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       g->bed->Channel("gateway", g->server->port(), "contacts"));
  g->channel = channel;
  g->stub = v1::Contacts::NewStub(channel);
  g->echo_stub = crm::testing::v1::Echo::NewStub(channel);
  rpc::AccessPolicy floor_policy;
  floor_policy.AllowService(crm::testing::v1::Echo::service_full_name());
  g->floor = std::make_unique<ReadFloor>();
  CRM_ASSIGN_OR_RETURN(g->floor_server,
                       g->bed->Serve("contacts", std::move(floor_policy), {g->floor.get()}));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> floor_channel,
                       g->bed->Channel("gateway", g->floor_server->port(), "contacts"));
  g->floor_stub = crm::testing::v1::Echo::NewStub(floor_channel);
  // As in production: token checks ask Redis alone.
  CRM_RETURN_IF_ERROR(g->bed->MarkRevocationsComplete());
  g->token = g->bed->Token(
      kOperator,
      {"contacts.read", "contacts.read.all", "contacts.read.sensitive", "contacts.write"}, {kTeam});
  // The load first: its persons are numbers 0 .. subjects-1.
  CRM_RETURN_IF_ERROR(Load());
  {
    v1::GetPersonRequest req;
    req.set_subject_id(g->loaded_ids[0]);
    v1::GetPersonResponse resp;
    CRM_RETURN_IF_ERROR(Call(&Stub::GetPerson, req, &resp));
    g->echo_message.assign(resp.ByteSizeLong(), 'e');
  }
  CRM_RETURN_IF_ERROR(CheckSameRows());
  CRM_RETURN_IF_ERROR(PrepareCopyFloor());
  return Settle();
}

void Teardown() {
  for (std::unique_ptr<rpc::ServerRunner>* server : {&g->server, &g->floor_server}) {
    if (*server != nullptr) (*server)->Shutdown();
    server->reset();
  }
  g->service.reset();
  g->db = {};
  g->bed.reset();
  g->bench.reset();
}

// ---- Benchmarks ----------------------------------------------------------------------

void BM_CreatePerson(benchmark::State& state) {
  // --clients calls in flight through the callback API (the load engine, as
  // the echo baseline), each creating a new person: enough distinct requests
  // for 6,000 creates/s, so none is sent twice.
  const absl::Duration warmup = absl::Seconds(1);
  bench::Workload w{.method = "/crm.contacts.v1.Contacts/CreatePerson"};
  w.metadata.emplace_back("authorization", absl::StrCat("Bearer ", g->token));
  const int64_t count = 6000 * (flags.seconds + 1);
  w.requests.reserve(count);
  for (int64_t i = 0; i < count; ++i) {
    v1::CreatePersonRequest req;
    *req.mutable_person() = MakePerson(g->next_person++);
    w.requests.push_back(req.SerializeAsString());
  }
  for (auto _ : state) {
    absl::StatusOr<bench::LoadResult> r =
        bench::RunLoad(g->channel, w,
                       {.concurrency = static_cast<int>(flags.clients),
                        .warmup = warmup,
                        .duration = absl::Seconds(flags.seconds)});
    if (!r.ok() || r->errors > 0 || r->calls > count) {
      state.SkipWithError(r.ok() ? absl::StrCat(r->errors, " errors, first: ", r->first_error, " (",
                                                r->calls, " calls of ", count, " requests)")
                                       .c_str()
                                 : r.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(r->seconds);
    state.SetItemsProcessed(r->calls);
    state.counters["p50_ms"] = r->p50_ms;
    state.counters["p99_ms"] = r->p99_ms;
  }
}

void PgbenchCreateSql(benchmark::State& state, bool pipelined) {
  int64_t transactions = 0;
  for (auto _ : state) {
    absl::StatusOr<PgbenchRun> run = RunPgbench(flags.clients, "-T", flags.seconds, pipelined);
    if (!run.ok()) {
      state.SkipWithError(run.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(run->seconds);
    transactions += run->transactions;
  }
  state.SetItemsProcessed(transactions);
}

void BM_PgbenchCreateSql(benchmark::State& state) { PgbenchCreateSql(state, false); }
void BM_PgbenchCreateSqlPipelined(benchmark::State& state) { PgbenchCreateSql(state, true); }

void BM_ImportPersons(benchmark::State& state) {
  for (auto _ : state) {
    const int64_t first = g->next_person.fetch_add(flags.import_rows);
    if (absl::Status s = Import(first, flags.import_rows).status(); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * flags.import_rows);
}

void BM_CopyImportedRows(benchmark::State& state) {
  absl::StatusOr<std::unique_ptr<RawConnection>> conn = RawConnection::Open(g->db.db->conninfo());
  if (!conn.ok()) {
    state.SkipWithError(conn.status().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    absl::Status s = (*conn)->Exec(
        "TRUNCATE floor_persons, floor_subject_keys, floor_person_owners, floor_person_lookup, "
        "floor_audit_outbox");
    state.ResumeTiming();
    if (s.ok()) s = (*conn)->Exec("BEGIN");
    for (const auto& [table, rows] : g->imported_rows) {
      if (s.ok()) s = (*conn)->BeginCopy(absl::StrCat("floor_", table), "");
      if (s.ok()) s = (*conn)->Put(rows);
      if (s.ok()) s = (*conn)->EndCopy();
    }
    if (s.ok()) s = (*conn)->Exec("COMMIT");
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * flags.import_rows);
}

// ---- Latency at half of peak (libs/testing/bench_latency.h) -------------------------

absl::Status GetPerson(int64_t n) {
  v1::GetPersonRequest req;
  req.set_subject_id(g->loaded_ids[n]);
  v1::GetPersonResponse resp;
  CRM_RETURN_IF_ERROR(Call(&Stub::GetPerson, req, &resp));
  if (resp.person().emails_size() != 1 || resp.person().emails(0).address() != EmailOf(n)) {
    return absl::InternalError("GetPerson: another person came back");
  }
  return absl::OkStatus();
}

absl::Status LookupEmail(int64_t n) {
  v1::LookupPersonsRequest req;
  req.set_email(EmailOf(n));
  v1::LookupPersonsResponse resp;
  CRM_RETURN_IF_ERROR(Call(&Stub::LookupPersons, req, &resp));
  if (resp.persons_size() != 1 || resp.persons(0).subject_id() != g->loaded_ids[n]) {
    return absl::InternalError("LookupPersons: not the person looked up");
  }
  return absl::OkStatus();
}

// The transport floor: Echo of a GetPerson response's bytes, same server,
// channel and token.
absl::Status Echo(int64_t) {
  crm::testing::v1::EchoRequest req;
  req.set_message(g->echo_message);
  crm::testing::v1::EchoResponse resp;
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  return base::FromGrpcStatus(g->echo_stub->Echo(ctx.get(), req, &resp));
}

// The floor of a read of `key` (a subject id or an e-mail; see ReadFloor).
absl::Status Floor(const std::string& key) {
  crm::testing::v1::EchoRequest req;
  req.set_message(key);
  crm::testing::v1::EchoResponse resp;
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  return base::FromGrpcStatus(g->floor_stub->Echo(ctx.get(), req, &resp));
}
absl::Status GetPersonFloor(int64_t n) { return Floor(g->loaded_ids[n]); }
absl::Status LookupEmailFloor(int64_t n) { return Floor(EmailOf(n)); }

// A bare autocommit statement on a pooled connection, as GetPerson's read.
absl::Status Bare(const std::function<void(pqxx::nontransaction&)>& statements) {
  return g->db.pool->WithConnection([&](pqxx::connection_base& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    statements(tx);
    return absl::OkStatus();
  });
}

// The person's row by primary key.
absl::Status SelectPersonRow(int64_t n) {
  return Bare([&](pqxx::nontransaction& tx) {
    tx.exec_params1("SELECT * FROM persons WHERE subject_id = $1::uuid", g->loaded_ids[n]);
  });
}

// The look-up row of the person's e-mail blind index, then the person's row.
absl::Status SelectLookupRows(int64_t n) {
  const std::string blind = g->sealer->EmailKey(EmailOf(n)).blind;
  return Bare([&](pqxx::nontransaction& tx) {
    const pqxx::row r = tx.exec_params1(
        "SELECT subject_id::text FROM person_lookup WHERE kind = 'email' AND blind = $1",
        pqxx::binarystring(blind));
    tx.exec_params1("SELECT * FROM persons WHERE subject_id = $1::uuid", r[0].c_str());
  });
}

void AtHalfPeak(benchmark::State& state, const crm::testing::IndexedCall& call,
                const crm::testing::IndexedCall& baseline, const crm::testing::IndexedCall& floor) {
  if (absl::Status settled = Settle(); !settled.ok()) {
    state.SkipWithError(settled.ToString().c_str());
    return;
  }
  crm::testing::MeasureAtHalfPeak(state, call, baseline,
                                  {.population = flags.subjects,
                                   .threads = static_cast<int>(flags.clients),
                                   .peak_phase = kPeakPhase,
                                   .duration = absl::Seconds(flags.seconds),
                                   .more = {{"transport", Echo}, {"floor", floor}}});
}

void BM_GetPersonAtHalfPeak(benchmark::State& state) {
  AtHalfPeak(state, GetPerson, SelectPersonRow, GetPersonFloor);
}

void BM_LookupEmailAtHalfPeak(benchmark::State& state) {
  AtHalfPeak(state, LookupEmail, SelectLookupRows, LookupEmailFloor);
}

// ---- Registration and ratios -----------------------------------------------------------

void Register() {
  for (auto* b : {benchmark::RegisterBenchmark("BM_CreatePerson", BM_CreatePerson),
                  benchmark::RegisterBenchmark("BM_PgbenchCreateSql", BM_PgbenchCreateSql),
                  benchmark::RegisterBenchmark("BM_PgbenchCreateSqlPipelined",
                                               BM_PgbenchCreateSqlPipelined)}) {
    b->Iterations(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("BM_ImportPersons", BM_ImportPersons)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_CopyImportedRows", BM_CopyImportedRows)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  for (auto* b :
       {benchmark::RegisterBenchmark("BM_GetPersonAtHalfPeak", BM_GetPersonAtHalfPeak),
        benchmark::RegisterBenchmark("BM_LookupEmailAtHalfPeak", BM_LookupEmailAtHalfPeak)}) {
    b->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  }
}

void PrintRatios(const crm::testing::RatioReporter& r) {
  std::printf("\nRatios to the baselines of this run (medians):\n");
  const auto* c = r.Find("BM_CreatePerson/iterations:1/manual_time");
  const auto* p = r.Find("BM_PgbenchCreateSql/iterations:1/manual_time");
  const auto* pp = r.Find("BM_PgbenchCreateSqlPipelined/iterations:1/manual_time");
  if (c != nullptr && p != nullptr && p->items_per_second > 0) {
    std::printf(
        "  CreatePerson %.0f /s = %.2f x pgbench, same SQL, %lld clients (%.0f /s); goal "
        ">= 0.70\n",
        c->items_per_second, c->items_per_second / p->items_per_second,
        static_cast<long long>(flags.clients), p->items_per_second);
  }
  if (c != nullptr && pp != nullptr && pp->items_per_second > 0) {
    std::printf(
        "  CreatePerson = %.2f x pgbench pipelining the same SQL as the service does "
        "(%.0f /s)\n",
        c->items_per_second / pp->items_per_second, pp->items_per_second);
  }
  const auto* i = r.Find("BM_ImportPersons/real_time");
  const auto* f = r.Find("BM_CopyImportedRows/real_time");
  if (i != nullptr && f != nullptr && f->items_per_second > 0) {
    std::printf(
        "  ImportPersons %.0f /s = %.2f x COPY of the same rows (%.0f /s); goal >= "
        "10,000 /s\n",
        i->items_per_second, i->items_per_second / f->items_per_second, f->items_per_second);
  }
  for (const char* name : {"BM_GetPersonAtHalfPeak", "BM_LookupEmailAtHalfPeak"}) {
    const auto* l = r.Find(absl::StrCat(name, "/iterations:1/manual_time"));
    if (l == nullptr) continue;
    auto at = [&](const char* k) {
      auto it = l->counters.find(k);
      return it == l->counters.end() ? 0.0 : it->second;
    };
    // The parts of a read over gRPC, each measured alone: the sum of their
    // p99s, not the p99 of both together (which was not measured).
    const double parts = at("base_p99_ms") + at("transport_p99_ms");
    std::printf(
        "  %s at %lld subjects: %.0f /s (peak %.0f): p50 %.2f ms, p99 %.2f ms = %.2f x "
        "the sum of the bare SQL's p99 (%.2f ms) and the Echo's (%.2f ms) at the same rate; "
        "goal p99 < 3 ms\n",
        name, static_cast<long long>(flags.subjects), at("rate_per_s"), at("peak_per_s"),
        at("p50_ms"), at("p99_ms"), parts > 0 ? at("p99_ms") / parts : 0, at("base_p99_ms"),
        at("transport_p99_ms"));
    std::printf(
        "    = %.2f x its floor's p99 at the same rate (%.2f ms, p50 %.2f ms): gRPC and the "
        "read's statements with no token check, no opening of fields\n",
        at("floor_p99_ms") > 0 ? at("p99_ms") / at("floor_p99_ms") : 0, at("floor_p99_ms"),
        at("floor_p50_ms"));
  }
}

}  // namespace
}  // namespace crm::contacts

int main(int argc, char** argv) {
  using crm::contacts::flags;
  crm::contacts::Env env;
  crm::contacts::g = &env;
  return crm::testing::RunBenchProgram(
      argc, argv,
      {.name = "contacts_bench",
       .usage = "[--subjects=N>=1000] [--clients=N] [--import_rows=N] [--seconds=N]",
       .defaults = {"--benchmark_min_time=3"},
       .flags = {{"subjects", &flags.subjects, 1000},
                 {"clients", &flags.clients, 1},
                 {"import_rows", &flags.import_rows, 1},
                 {"seconds", &flags.seconds, 1}},
       .setup = crm::contacts::Setup,
       .register_all = crm::contacts::Register,
       .print_ratios = crm::contacts::PrintRatios,
       .teardown = crm::contacts::Teardown});
}
