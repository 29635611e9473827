#include "services/contacts/contacts_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/field_mask_util.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <deque>
#include <future>
#include <pqxx/nontransaction>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/primitives.h"
#include "libs/rpc/call_auth.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"
#include "services/contacts/catalogue.h"
#include "services/contacts/company_rules.h"
#include "services/contacts/person_rules.h"
#include "services/contacts/tax_id.h"

namespace crm::contacts {

namespace {

using crm::audit::v1::Event;
using google::protobuf::util::FieldMaskUtil;
using rpc::Handle;
using rpc::SetTime;

constexpr char kRead[] = "contacts.read";
constexpr char kReadAll[] = "contacts.read.all";
constexpr char kReadSensitive[] = "contacts.read.sensitive";
constexpr char kWrite[] = "contacts.write";
constexpr size_t kMaxOwners = 20;

absl::Status NotFound() { return absl::NotFoundError("person not found"); }

// Canonical owners and team of an assignment; INVALID_ARGUMENT naming
// `prefix`.owner_user_ids[i] / .team_id.
absl::Status NormalizeAssignment(absl::string_view prefix, v1::Assignment& a) {
  if (static_cast<size_t>(a.owner_user_ids_size()) > kMaxOwners) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ".owner_user_ids: at most 20"));
  }
  std::vector<std::string> owners;
  for (int i = 0; i < a.owner_user_ids_size(); ++i) {
    CRM_ASSIGN_OR_RETURN(
        std::string id,
        base::CanonicalUuid(absl::StrCat(prefix, ".owner_user_ids[", i, "]"), a.owner_user_ids(i)));
    if (std::find(owners.begin(), owners.end(), id) == owners.end()) owners.push_back(id);
  }
  std::sort(owners.begin(), owners.end());
  a.clear_owner_user_ids();
  for (std::string& o : owners) a.add_owner_user_ids(std::move(o));
  if (!a.team_id().empty()) {
    CRM_ASSIGN_OR_RETURN(std::string team,
                         base::CanonicalUuid(absl::StrCat(prefix, ".team_id"), a.team_id()));
    a.set_team_id(team);
  }
  return absl::OkStatus();
}

// The page size asked for, defaulted and capped.
int PageSize(const crm::common::v1::PageRequest& page) {
  return page.page_size() <= 0 ? kDefaultPageSize : std::min(page.page_size(), kMaxPageSize);
}

// Page tokens of newest-first lists: web-safe base64 of
// "c1|<time micros>|<id>|<filter key>".
std::string EncodeCursor(const Cursor& c, absl::string_view filter_key) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("c1|", absl::ToUnixMicros(c.at), "|", c.id, "|", filter_key));
}

absl::StatusOr<std::optional<Cursor>> DecodeCursor(const std::string& token,
                                                   absl::string_view filter_key) {
  if (token.empty()) return std::optional<Cursor>();
  const absl::Status bad =
      absl::InvalidArgumentError("page.page_token: not a token of this listing with these filters");
  std::string raw;
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('|', 3));
  int64_t micros = 0;
  if (parts.size() != 4 || parts[0] != "c1" || !absl::SimpleAtoi(parts[1], &micros) ||
      !base::IsUuid(parts[2]) || parts[3] != filter_key) {
    return bad;
  }
  return std::optional<Cursor>(Cursor{.at = absl::FromUnixMicros(micros), .id = parts[2]});
}

void AddChanges(Event& event, std::vector<PersonChange> changes) {
  event.mutable_changes()->Reserve(event.changes_size() + static_cast<int>(changes.size()));
  for (PersonChange& c : changes) {
    crm::audit::v1::FieldChange* fc = event.add_changes();
    fc->set_field(std::move(c.path));
    fc->set_old_value(std::move(c.old_value));
    fc->set_new_value(std::move(c.new_value));
  }
}

}  // namespace

namespace {
// What a data subject may correct themselves (Art. 16; the privacy portal):
// not e-mails (their sign-in), assignment, notes or the id number.
constexpr const char* kSubjectCorrectable[] = {"given_name", "family_name", "phones", "addresses"};
}  // namespace

struct ContactsService::Caller {
  grpc::ServerContext* ctx = nullptr;
  std::shared_ptr<const auth::Principal> principal;
  Access access;
  bool sensitive = false;
  // The data subject themselves (a subject.self token for this person): sees
  // all of their own record and may correct only kSubjectCorrectable.
  bool subject_self = false;

  // Normalises `a` (errors name `prefix`): owners default to the caller when
  // `default_owner` and none are given; a team the caller is not in needs
  // contacts.read.all.
  absl::Status CheckAssignment(absl::string_view prefix, v1::Assignment& a,
                               bool default_owner) const {
    CRM_RETURN_IF_ERROR(NormalizeAssignment(prefix, a));
    if (default_owner && a.owner_user_ids_size() == 0 && base::IsUuid(principal->user_id)) {
      a.add_owner_user_ids(principal->user_id);
    }
    if (!a.team_id().empty() && !access.all && !principal->InTeam(a.team_id())) {
      return absl::PermissionDeniedError(absl::StrCat(
          prefix, ".team_id: assigning to a team you are not in needs contacts.read.all"));
    }
    return absl::OkStatus();
  }

  // An audit event by this caller about `subject_id` (may be empty).
  Event Audit(absl::string_view action, absl::string_view subject_id) const {
    Event e;
    e.set_action(std::string(action));
    e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
    if (!subject_id.empty()) {
      e.set_subject_id(std::string(subject_id));
      e.set_resource(absl::StrCat("persons/", subject_id));
    }
    e.mutable_actor()->set_user_id(principal->user_id);
    e.mutable_actor()->set_session_id(principal->session_id);
    e.mutable_actor()->set_service_identity(rpc::PeerIdentity(*ctx));
    e.set_request_id(rpc::RequestId(*ctx));
    return e;
  }
};

absl::StatusOr<ContactsService::Caller> ContactsService::Authorize(Ctx* ctx,
                                                                   absl::string_view permission,
                                                                   absl::string_view subject_id) {
  Caller c;
  c.ctx = ctx;
  if (subject_id.empty()) {
    CRM_ASSIGN_OR_RETURN(c.principal, rpc::AuthorizeCall(*ctx, d_.verifier, permission));
  } else {
    CRM_ASSIGN_OR_RETURN(c.principal, rpc::AuthenticateCall(*ctx, d_.verifier));
    if (!c.principal->Has(permission)) {
      if (!c.principal->IsSubject(absl::AsciiStrToLower(subject_id))) {
        return absl::PermissionDeniedError(absl::StrCat("needs permission ", permission));
      }
      c.access.all = true;
      c.sensitive = true;
      c.subject_self = true;
      return c;
    }
  }
  c.access.all = c.principal->Has(kReadAll);
  c.access.user_id = c.principal->user_id;
  c.access.team_ids = c.principal->teams;
  c.sensitive = c.principal->Has(kReadSensitive);
  return c;
}

namespace {

// `stored` opened (the subject's key read in `tx`), then masked as the
// caller may see it (the paths cleared added to `masked`).
absl::StatusOr<v1::Person> Present(pqxx::transaction_base& tx, const PersonSealer& sealer,
                                   const StoredPerson& stored, bool sensitive,
                                   std::vector<std::string>& masked) {
  CRM_ASSIGN_OR_RETURN(v1::Person p, OpenPerson(tx, sealer, stored));
  if (!sensitive) {
    for (std::string& path : MaskSensitive(p)) {
      if (std::find(masked.begin(), masked.end(), path) == masked.end()) {
        masked.push_back(std::move(path));
      }
    }
  }
  return p;
}

}  // namespace

// ---- Persons -----------------------------------------------------------------

// A person validated, normalised and sealed, ready to insert.
struct ContactsService::PreparedPerson {
  v1::Person person;  // normalised
  StoredPerson stored;
  std::string wrapped_key;
  std::vector<LookupKey> keys;
  Event event;
  std::string duplicate_of;  // set by InsertPrepared: the visible existing subject
};

absl::StatusOr<ContactsService::PreparedPerson> ContactsService::PreparePerson(
    const Caller& caller, v1::Person p, absl::string_view default_channel) {
  const std::string channel = p.registration().channel().empty() ? std::string(default_channel)
                                                                 : p.registration().channel();
  CRM_RETURN_IF_ERROR(base::ValidateName("person.registration.channel", channel, 32));
  const std::string source = p.registration().source();
  CRM_RETURN_IF_ERROR(base::ValidateText("person.registration.source", source, 0, 200));
  v1::Assignment assignment = p.assignment();
  CRM_RETURN_IF_ERROR(caller.CheckAssignment("person.assignment", assignment, true));
  // Read-only fields are the service's to set.
  for (const char* ro :
       {"subject_id", "registration", "assignment", "restricted", "updated_at", "version"}) {
    p.GetReflection()->ClearField(&p, p.GetDescriptor()->FindFieldByName(ro));
  }
  CRM_RETURN_IF_ERROR(NormalizePerson(p, WritablePersonFields(), /*creating=*/true));

  PreparedPerson out;
  StoredPerson& stored = out.stored;
  const absl::Time now = d_.clock.Now();
  // Time-ordered: the person's rows join the right edge of every index keyed
  // by subject id instead of random pages (bulk imports run at several times
  // the speed). The id tells its creation time to the millisecond, as
  // registration.created_at does (docs/contacts.md).
  stored.subject_id = base::NewTimeOrderedUuid(now);
  stored.status = p.status();
  stored.company_id = p.company_id();
  stored.team_id = assignment.team_id();
  stored.owner_user_ids.assign(assignment.owner_user_ids().begin(),
                               assignment.owner_user_ids().end());
  stored.notes_sensitive = p.notes_sensitive();
  stored.reg_channel = channel;
  stored.reg_source = source;
  stored.created_by = caller.principal->user_id;
  stored.created_at = absl::FromUnixMicros(absl::ToUnixMicros(now));
  stored.updated_at = stored.created_at;
  stored.last_activity_at = stored.created_at;
  stored.version = 1;
  CRM_ASSIGN_OR_RETURN(PersonSealer::SubjectKey key, d_.sealer.NewSubjectKey(stored.subject_id));
  CRM_RETURN_IF_ERROR(d_.sealer.SealFields(key.key, p, stored));
  out.wrapped_key = std::move(key.wrapped);
  out.keys = d_.sealer.KeysOf(p);
  out.event = caller.Audit("contacts.person.create", stored.subject_id);
  AddChanges(out.event, DiffPerson(v1::Person(), p, WritablePersonFields()));
  out.person = std::move(p);
  return out;
}

namespace {

// ALREADY_EXISTS naming key `index` of `keys` by its field, and the subject
// it is registered to when `owner` is not empty (the caller may see it).
absl::Status DuplicateKeyError(const std::vector<LookupKey>& keys, size_t index,
                               const std::string& owner) {
  const LookupKey& k = keys[index];
  int n = 0;
  for (size_t i = 0; i < index; ++i) n += keys[i].kind == k.kind ? 1 : 0;
  const std::string field = k.kind == "email" ? absl::StrCat("person.emails[", n, "].address")
                                              : absl::StrCat("person.phones[", n, "].number");
  return absl::AlreadyExistsError(absl::StrCat(
      field, ": already registered", owner.empty() ? "" : absl::StrCat(" to subject ", owner)));
}

// Whether `access` sees `p` (PersonStore's rule, for a person not stored yet).
bool Sees(const Access& access, const StoredPerson& p) {
  return access.all ||
         std::find(p.owner_user_ids.begin(), p.owner_user_ids.end(), access.user_id) !=
             p.owner_user_ids.end() ||
         (!p.team_id.empty() && std::find(access.team_ids.begin(), access.team_ids.end(),
                                          p.team_id) != access.team_ids.end());
}

}  // namespace

absl::Status ContactsService::InsertPrepared(const Caller& caller, PreparedPerson& prepared) {
  const std::vector<LookupKey>& keys = prepared.keys;
  // The duplicate check, the inserts and the audit event in one round trip:
  // a registered key fails the look-up insert (its unique index), which
  // rolls the rest back, and the check says whose it is. A key registered
  // by a concurrent create between check and insert is seen by a second try.
  absl::Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    pg::Pipeline pipeline;
    const std::optional<size_t> check = PersonStore::AddFindOwnerOfKeys(pipeline, keys);
    PersonStore::AddInsert(pipeline, prepared.stored, prepared.wrapped_key, keys);
    CRM_RETURN_IF_ERROR(d_.audit.Enqueue(pipeline, prepared.event));
    s = d_.db.RunPipeline(pipeline);
    if (!absl::IsAlreadyExists(s)) return s;
    const std::optional<DuplicateKey> dup = PersonStore::OwnerFound(pipeline, check);
    if (!dup.has_value()) continue;
    // Name the existing person only to a caller allowed to see them.
    CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> visible,
                         d_.db.TransactValue<std::optional<StoredPerson>>(
                             [&](pqxx::work& tx) -> absl::StatusOr<std::optional<StoredPerson>> {
                               return PersonStore::Get(tx, dup->subject_id, caller.access, false);
                             }));
    prepared.duplicate_of = visible.has_value() ? dup->subject_id : "";
    return DuplicateKeyError(keys, dup->key_index, prepared.duplicate_of);
  }
  return s;
}

absl::StatusOr<std::vector<absl::Status>> ContactsService::InsertBatch(
    pqxx::work& tx, const Caller& caller, std::vector<PreparedPerson>& batch) {
  std::vector<absl::Status> outcome(batch.size());
  // Keys registered before: one query for the whole batch.
  std::vector<LookupKey> all;
  std::vector<std::pair<size_t, size_t>> origin;  // (row, key of the row)
  for (size_t r = 0; r < batch.size(); ++r) {
    for (size_t k = 0; k < batch[r].keys.size(); ++k) {
      all.push_back(batch[r].keys[k]);
      origin.emplace_back(r, k);
    }
  }
  CRM_ASSIGN_OR_RETURN(std::vector<DuplicateKey> taken, PersonStore::FindOwnersOfKeys(tx, all));
  std::vector<std::optional<DuplicateKey>> stored_dup(batch.size());
  for (const DuplicateKey& d : taken) {
    auto [r, k] = origin[d.key_index];
    if (!stored_dup[r].has_value())
      stored_dup[r] = DuplicateKey{.key_index = k, .subject_id = d.subject_id};
  }
  // Keys of earlier rows of the batch: the first row with a key wins.
  absl::flat_hash_map<std::string, size_t> first_with;
  std::vector<PersonStore::NewPerson> accepted;
  std::vector<crm::audit::v1::Event*> events;
  for (size_t r = 0; r < batch.size(); ++r) {
    PreparedPerson& p = batch[r];
    if (stored_dup[r].has_value()) {
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> visible,
                           PersonStore::Get(tx, stored_dup[r]->subject_id, caller.access, false));
      p.duplicate_of = visible.has_value() ? stored_dup[r]->subject_id : "";
      outcome[r] = DuplicateKeyError(p.keys, stored_dup[r]->key_index, p.duplicate_of);
      continue;
    }
    for (size_t k = 0; k < p.keys.size() && outcome[r].ok(); ++k) {
      auto it = first_with.find(absl::StrCat(p.keys[k].kind, ":", p.keys[k].blind));
      if (it == first_with.end()) continue;
      const StoredPerson& earlier = batch[it->second].stored;
      p.duplicate_of = Sees(caller.access, earlier) ? earlier.subject_id : "";
      outcome[r] = DuplicateKeyError(p.keys, k, p.duplicate_of);
    }
    if (!outcome[r].ok()) continue;
    for (const LookupKey& k : p.keys) first_with.emplace(absl::StrCat(k.kind, ":", k.blind), r);
    accepted.push_back({.person = &p.stored, .wrapped_key = &p.wrapped_key, .keys = &p.keys});
    events.push_back(&p.event);
  }
  CRM_RETURN_IF_ERROR(PersonStore::InsertMany(tx, accepted));
  CRM_RETURN_IF_ERROR(d_.audit.EnqueueAll(tx, events));
  return outcome;
}

grpc::Status ContactsService::CreatePerson(Ctx* ctx, const v1::CreatePersonRequest* req,
                                           v1::CreatePersonResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    CRM_ASSIGN_OR_RETURN(PreparedPerson prepared, PreparePerson(caller, req->person(), "api"));
    CRM_RETURN_IF_ERROR(InsertPrepared(caller, prepared));
    // The fields as stored, masked like any read.
    v1::Person p = std::move(prepared.person);
    p.MergeFrom(PersonSkeleton(prepared.stored));
    if (!caller.sensitive) MaskSensitive(p);
    *resp->mutable_person() = std::move(p);
    return absl::OkStatus();
  });
}

namespace {

constexpr int kImportBatch = 500;
constexpr size_t kImportInFlight = 2;  // batches committing at once, per stream
constexpr int kMaxImportErrors = 1000;

// Splits a status message "field: rule" into its parts.
std::pair<std::string, std::string> FieldAndReason(absl::string_view message) {
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos) return {"", std::string(message)};
  return {std::string(message.substr(0, colon)), std::string(message.substr(colon + 2))};
}

}  // namespace

grpc::Status ContactsService::ImportPersons(Ctx* ctx,
                                            grpc::ServerReader<v1::ImportPersonsRequest>* reader,
                                            v1::ImportPersonsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    auto report = [&](int64_t row, const absl::Status& s, const std::string& existing) {
      resp->set_errors_total(resp->errors_total() + 1);
      if (resp->errors_size() >= kMaxImportErrors) return;
      v1::ImportRowError* e = resp->add_errors();
      e->set_row(row);
      auto [field, reason] = FieldAndReason(s.message());
      e->set_field(field);
      e->set_reason(reason);
      e->set_existing_subject_id(existing);
    };
    // Rows are prepared (validated, sealed) on this thread in batches; full
    // batches commit on other threads while the next is prepared, up to
    // kImportInFlight at a time, and are reported in stream order. Two
    // batches commit side by side only when no key of the one is a key of
    // the other: duplicates within the stream are then always found by the
    // later batch's look-up, after the earlier one committed, so the first
    // row with a key wins as on a single connection.
    struct Batch {
      std::vector<int64_t> rows;  // stream positions
      std::vector<PreparedPerson> persons;
      std::vector<absl::Status> outcome;              // per person, once committed
      absl::flat_hash_set<absl::string_view> blinds;  // its persons' keys
      std::future<absl::Status> committed;
    };
    // Every person of `b` that is not a duplicate, in one transaction. A key
    // registered by another transaction meanwhile fails the COPY
    // (ALREADY_EXISTS): the batch is then checked and written again.
    auto commit = [&](Batch& b) -> absl::Status {
      absl::Status s;
      for (int attempt = 0; attempt < 3; ++attempt) {
        s = d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(b.outcome, InsertBatch(tx, caller, b.persons));
          return absl::OkStatus();
        });
        if (!absl::IsAlreadyExists(s)) break;
      }
      return s;
    };
    // Oldest first. A deque keeps the batches where they are as it grows and
    // shrinks at its ends: the committing threads hold references.
    std::deque<Batch> in_flight;
    Batch filling;
    std::vector<Batch> spare;  // drained batches, their vectors' capacity kept
    // Waits for the oldest batch in flight and reports its rows.
    auto settle = [&]() -> absl::Status {
      Batch& b = in_flight.front();
      CRM_RETURN_IF_ERROR(b.committed.get());
      for (size_t i = 0; i < b.persons.size(); ++i) {
        const PreparedPerson& p = b.persons[i];
        if (!b.outcome[i].ok()) {
          report(b.rows[i], b.outcome[i], p.duplicate_of);
          continue;
        }
        resp->set_imported(resp->imported() + 1);
        resp->add_subject_ids(p.stored.subject_id);
      }
      b.rows.clear();
      b.persons.clear();
      b.outcome.clear();
      b.blinds.clear();
      spare.push_back(std::move(b));
      in_flight.pop_front();
      return absl::OkStatus();
    };
    auto shares_key = [](const Batch& a, const Batch& b) {
      for (absl::string_view blind : b.blinds) {
        if (a.blinds.contains(blind)) return true;
      }
      return false;
    };
    auto flush = [&]() -> absl::Status {
      if (filling.persons.empty()) return absl::OkStatus();
      for (const PreparedPerson& p : filling.persons) {
        for (const LookupKey& k : p.keys) filling.blinds.insert(k.blind);
      }
      while (!in_flight.empty() &&
             (in_flight.size() >= kImportInFlight ||
              std::any_of(in_flight.begin(), in_flight.end(),
                          [&](const Batch& b) { return shares_key(b, filling); }))) {
        CRM_RETURN_IF_ERROR(settle());
      }
      Batch& b = in_flight.emplace_back(std::move(filling));
      b.committed = std::async(std::launch::async, [&] { return commit(b); });
      if (spare.empty()) {
        filling = Batch();
      } else {
        filling = std::move(spare.back());
        spare.pop_back();
      }
      return absl::OkStatus();
    };
    v1::ImportPersonsRequest msg;
    while (reader->Read(&msg)) {
      const int64_t row = resp->received() + 1;
      resp->set_received(row);
      v1::Person p = msg.person();
      p.mutable_registration()->set_channel(msg.channel());
      p.mutable_registration()->set_source(msg.source());
      absl::StatusOr<PreparedPerson> prepared = PreparePerson(caller, std::move(p), "import");
      if (!prepared.ok()) {
        if (!absl::IsInvalidArgument(prepared.status()) &&
            !absl::IsPermissionDenied(prepared.status())) {
          return prepared.status();
        }
        report(row, prepared.status(), "");
        continue;
      }
      filling.rows.push_back(row);
      filling.persons.push_back(*std::move(prepared));
      if (filling.persons.size() == kImportBatch) CRM_RETURN_IF_ERROR(flush());
    }
    CRM_RETURN_IF_ERROR(flush());
    while (!in_flight.empty()) CRM_RETURN_IF_ERROR(settle());
    return absl::OkStatus();
  });
}

absl::Status ContactsService::AuditedRead(const ReadFunction& read) {
  return d_.db.WithConnection([&](pqxx::connection_base& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    std::vector<Event> events;
    CRM_RETURN_IF_ERROR(read(tx, events));
    for (Event& e : events) CRM_RETURN_IF_ERROR(d_.audit.Enqueue(tx, std::move(e)));
    return absl::OkStatus();
  });
}

grpc::Status ContactsService::GetPerson(Ctx* ctx, const v1::GetPersonRequest* req,
                                        v1::GetPersonResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead, req->subject_id()));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    // The read and its audit event in one statement, one round trip: the
    // event is written if and only if the person's row is read (so also when
    // its fields then fail to open). Sealed per attempt, so a retry after a
    // lost connection writes its own event.
    return d_.db.WithConnection([&](pqxx::connection_base& c) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(outbox::SealedEvent read,
                           d_.audit.SealForInsert(caller.Audit("contacts.person.read", id)));
      pqxx::nontransaction tx(c);
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> stored,
                           PersonStore::GetAudited(tx, id, caller.access, read));
      if (!stored.has_value()) return NotFound();
      std::vector<std::string> masked;
      CRM_ASSIGN_OR_RETURN(v1::Person p, Present(tx, d_.sealer, *stored, caller.sensitive, masked));
      *resp->mutable_person() = std::move(p);
      for (std::string& m : masked) resp->add_masked_fields(std::move(m));
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::UpdatePerson(Ctx* ctx, const v1::UpdatePersonRequest* req,
                                           v1::UpdatePersonResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite, req->subject_id()));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    CRM_RETURN_IF_ERROR(Catalogue::Get().ValidateUpdateMask("person", req->update_mask()));
    const std::vector<std::string> fields(req->update_mask().paths().begin(),
                                          req->update_mask().paths().end());
    if (caller.subject_self) {
      for (const std::string& f : fields) {
        if (std::find(std::begin(kSubjectCorrectable), std::end(kSubjectCorrectable), f) ==
            std::end(kSubjectCorrectable)) {
          return absl::PermissionDeniedError(absl::StrCat(
              "update_mask: ", f,
              ": a subject corrects given_name, family_name, phones and addresses themselves; "
              "ask staff for the rest"));
        }
      }
    }
    // Validate the new values before touching the database.
    v1::Person incoming;
    FieldMaskUtil::MergeOptions replace;
    replace.set_replace_repeated_fields(true);
    replace.set_replace_message_fields(true);
    FieldMaskUtil::MergeMessageTo(req->person(), req->update_mask(), replace, &incoming);
    CRM_RETURN_IF_ERROR(NormalizePerson(incoming, fields, /*creating=*/false));
    const bool keys_change = std::any_of(fields.begin(), fields.end(), [](const std::string& f) {
      return f == "emails" || f == "phones";
    });
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> stored,
                           PersonStore::Get(tx, id, caller.access, /*lock=*/true));
      if (!stored.has_value()) return NotFound();
      if (stored->restricted) {
        return absl::FailedPreconditionError(
            "person is restricted (Art. 18): read-only until the restriction is lifted");
      }
      if (req->expected_version() != 0 && req->expected_version() != stored->version) {
        return absl::AbortedError("expected_version: the person changed meanwhile");
      }
      CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, SubjectKeyOf(tx, d_.sealer, *stored));
      v1::Person before = PersonSkeleton(*stored);
      CRM_RETURN_IF_ERROR(d_.sealer.OpenFields(key, *stored, before));
      v1::Person after = before;
      FieldMaskUtil::MergeMessageTo(incoming, req->update_mask(), replace, &after);
      std::vector<PersonChange> changes = DiffPerson(before, after, fields);
      std::optional<std::vector<LookupKey>> keys;
      if (!changes.empty()) {
        if (keys_change) {
          keys = d_.sealer.KeysOf(after);
          CRM_ASSIGN_OR_RETURN(std::optional<DuplicateKey> dup,
                               PersonStore::FindOwnerOfKeys(tx, *keys, id));
          if (dup.has_value()) {
            CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> visible,
                                 PersonStore::Get(tx, dup->subject_id, caller.access, false));
            return absl::AlreadyExistsError(absl::StrCat(
                "person.", (*keys)[dup->key_index].kind == "email" ? "emails" : "phones",
                ": already registered",
                // A data subject sees all of their own record, nobody else's.
                visible.has_value() && !caller.subject_self
                    ? absl::StrCat(" to subject ", dup->subject_id)
                    : ""));
          }
        }
        stored->status = after.status();
        stored->company_id = after.company_id();
        stored->notes_sensitive = after.notes_sensitive();
        CRM_RETURN_IF_ERROR(d_.sealer.SealFields(key, after, *stored));
        stored->updated_at = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()));
        stored->last_activity_at = stored->updated_at;
        ++stored->version;
        CRM_RETURN_IF_ERROR(PersonStore::Update(tx, *stored, keys));
        Event event = caller.Audit("contacts.person.update", id);
        AddChanges(event, std::move(changes));
        CRM_RETURN_IF_ERROR(d_.audit.Enqueue(tx, event));
      }
      std::vector<std::string> masked;
      v1::Person out = PersonSkeleton(*stored);
      CRM_RETURN_IF_ERROR(d_.sealer.OpenFields(key, *stored, out));
      if (!caller.sensitive) masked = MaskSensitive(out);
      *resp->mutable_person() = std::move(out);
      for (std::string& m : masked) resp->add_masked_fields(std::move(m));
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::ListPersons(Ctx* ctx, const v1::ListPersonsRequest* req,
                                          v1::ListPersonsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead));
    if (req->include_restricted() && !caller.access.all) {
      return absl::PermissionDeniedError("include_restricted: needs permission contacts.read.all");
    }
    if (!v1::PersonStatus_IsValid(req->status())) {
      return absl::InvalidArgumentError("status: unknown value");
    }
    PersonFilter f{.status = req->status(), .include_restricted = req->include_restricted()};
    for (auto [name, value, out] :
         {std::tuple{"owner_user_id", &req->owner_user_id(), &f.owner_user_id},
          std::tuple{"team_id", &req->team_id(), &f.team_id},
          std::tuple{"company_id", &req->company_id(), &f.company_id}}) {
      if (value->empty()) continue;
      CRM_ASSIGN_OR_RETURN(*out, base::CanonicalUuid(name, *value));
    }
    const int size = PageSize(req->page());
    const std::string filter_key = absl::StrCat(f.status, ",", f.owner_user_id, ",", f.team_id, ",",
                                                f.company_id, ",", f.include_restricted);
    CRM_ASSIGN_OR_RETURN(std::optional<Cursor> cursor,
                         DecodeCursor(req->page().page_token(), filter_key));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::vector<StoredPerson> rows,
                           PersonStore::List(tx, f, caller.access, cursor, size + 1));
      const bool more = rows.size() > static_cast<size_t>(size);
      if (more) rows.resize(size);
      std::vector<std::string> masked;
      for (const StoredPerson& s : rows) {
        CRM_ASSIGN_OR_RETURN(v1::Person p, Present(tx, d_.sealer, s, caller.sensitive, masked));
        *resp->add_persons() = std::move(p);
        CRM_RETURN_IF_ERROR(
            d_.audit.Enqueue(tx, caller.Audit("contacts.person.list", s.subject_id)));
      }
      for (std::string& m : masked) resp->add_masked_fields(std::move(m));
      if (more) {
        resp->mutable_page()->set_next_page_token(
            EncodeCursor({.at = rows.back().created_at, .id = rows.back().subject_id}, filter_key));
      }
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::LookupPersons(Ctx* ctx, const v1::LookupPersonsRequest* req,
                                            v1::LookupPersonsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead));
    LookupKey key;
    std::vector<LookupKey> tax_keys;
    switch (req->key_case()) {
      case v1::LookupPersonsRequest::kEmail: {
        const std::string email = base::NormalizeEmail(req->email());
        CRM_RETURN_IF_ERROR(base::ValidateEmail("email", email));
        key = d_.sealer.EmailKey(email);
        break;
      }
      case v1::LookupPersonsRequest::kPhone: {
        const std::string phone = base::NormalizePhone(req->phone());
        CRM_RETURN_IF_ERROR(base::ValidatePhoneE164("phone", phone));
        key = d_.sealer.PhoneKey(phone);
        break;
      }
      case v1::LookupPersonsRequest::kCompanyTaxId: {
        // Any kind the text is a valid number of.
        for (auto [kind, name] :
             {std::pair{TaxIdKind::kNip, "nip"}, std::pair{TaxIdKind::kRegon, "regon"},
              std::pair{TaxIdKind::kKrs, "krs"}, std::pair{TaxIdKind::kEuVat, "eu_vat"}}) {
          absl::StatusOr<std::string> canonical =
              NormalizeTaxId("company_tax_id", kind, req->company_tax_id());
          if (canonical.ok()) tax_keys.push_back(d_.sealer.TaxIdKey(name, *canonical));
        }
        if (tax_keys.empty()) {
          return absl::InvalidArgumentError(
              "company_tax_id: not a valid NIP, REGON, KRS or EU VAT number");
        }
        break;
      }
      default:
        return absl::InvalidArgumentError("key: one of email, phone, company_tax_id is required");
    }
    return AuditedRead([&](pqxx::transaction_base& tx, std::vector<Event>& events) -> absl::Status {
      resp->Clear();
      std::vector<StoredPerson> rows;
      if (tax_keys.empty()) {
        CRM_ASSIGN_OR_RETURN(rows, PersonStore::FindByKey(tx, key, caller.access));
      } else {
        // The visible persons of the visible companies with that tax id.
        CRM_ASSIGN_OR_RETURN(std::vector<std::string> companies,
                             CompanyStore::FindByKeys(tx, tax_keys, caller.access));
        for (const std::string& company : companies) {
          CRM_ASSIGN_OR_RETURN(std::vector<StoredPerson> of_company,
                               PersonStore::List(tx, {.company_id = company}, caller.access,
                                                 std::nullopt, kMaxPageSize));
          rows.insert(rows.end(), of_company.begin(), of_company.end());
        }
      }
      std::vector<std::string> masked;
      for (const StoredPerson& s : rows) {
        CRM_ASSIGN_OR_RETURN(v1::Person p, Present(tx, d_.sealer, s, caller.sensitive, masked));
        *resp->add_persons() = std::move(p);
        events.push_back(caller.Audit("contacts.person.lookup", s.subject_id));
      }
      for (std::string& m : masked) resp->add_masked_fields(std::move(m));
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::SetRestriction(Ctx* ctx, const v1::SetRestrictionRequest* req,
                                             v1::SetRestrictionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    if (req->restricted()) {
      CRM_RETURN_IF_ERROR(base::ValidateText("reason", req->reason(), 1, 500));
    } else {
      CRM_RETURN_IF_ERROR(base::ValidateText("reason", req->reason(), 0, 500));
    }
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> stored,
                           PersonStore::Get(tx, id, caller.access, /*lock=*/true));
      if (!stored.has_value()) return NotFound();
      if (stored->restricted == req->restricted()) return absl::OkStatus();
      CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, SubjectKeyOf(tx, d_.sealer, *stored));
      stored->restricted = req->restricted();
      CRM_ASSIGN_OR_RETURN(stored->restriction_reason,
                           d_.sealer.SealText(key, id, "restriction_reason",
                                              req->restricted() ? req->reason() : ""));
      stored->updated_at = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()));
      ++stored->version;
      CRM_RETURN_IF_ERROR(PersonStore::Update(tx, *stored, std::nullopt));
      Event event = caller.Audit(
          req->restricted() ? "contacts.person.restrict" : "contacts.person.unrestrict", id);
      if (!req->reason().empty()) {
        crm::audit::v1::Detail* d = event.add_details();
        d->set_key("reason");
        d->set_value(req->reason());
        d->set_personal(true);
      }
      CRM_RETURN_IF_ERROR(d_.audit.Enqueue(tx, event));
      resp->set_changed(true);
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::AssignPerson(Ctx* ctx, const v1::AssignPersonRequest* req,
                                           v1::AssignPersonResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    v1::Assignment a = req->assignment();
    CRM_RETURN_IF_ERROR(caller.CheckAssignment("assignment", a, false));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> stored,
                           PersonStore::Get(tx, id, caller.access, /*lock=*/true));
      if (!stored.has_value()) return NotFound();
      const std::vector<std::string> owners(a.owner_user_ids().begin(), a.owner_user_ids().end());
      Event event = caller.Audit("contacts.person.assign", id);
      if (owners != stored->owner_user_ids) {
        crm::audit::v1::FieldChange* c = event.add_changes();
        c->set_field("assignment.owner_user_ids");
        c->set_old_value(absl::StrJoin(stored->owner_user_ids, ","));
        c->set_new_value(absl::StrJoin(owners, ","));
      }
      if (a.team_id() != stored->team_id) {
        crm::audit::v1::FieldChange* c = event.add_changes();
        c->set_field("assignment.team_id");
        c->set_old_value(stored->team_id);
        c->set_new_value(a.team_id());
      }
      if (event.changes_size() > 0) {
        CRM_RETURN_IF_ERROR(PersonStore::SetOwners(tx, id, owners));
        stored->team_id = a.team_id();
        stored->updated_at = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()));
        ++stored->version;
        CRM_RETURN_IF_ERROR(PersonStore::Update(tx, *stored, std::nullopt));
        CRM_RETURN_IF_ERROR(d_.audit.Enqueue(tx, event));
      }
      *resp->mutable_assignment() = a;
      return absl::OkStatus();
    });
  });
}

// ---- Companies -------------------------------------------------------------------

namespace {

constexpr char kCompanyKeyPurpose[] = "contacts.company";

const std::vector<std::string>& SealedCompanyFields() {
  static const std::vector<std::string>* const kFields = new std::vector<std::string>(
      std::begin(kSealedCompanyFields), std::end(kSealedCompanyFields));
  return *kFields;
}

std::string CompanyOwner(const std::string& company_id) {
  return absl::StrCat("company:", company_id);
}

absl::Status CompanyNotFound() { return absl::NotFoundError("company not found"); }

// The look-up kind of a tax id kind ("nip", ...).
std::string TaxKindName(v1::TaxIdKind kind) {
  switch (kind) {
    case v1::TAX_ID_KIND_NIP:
      return "nip";
    case v1::TAX_ID_KIND_REGON:
      return "regon";
    case v1::TAX_ID_KIND_KRS:
      return "krs";
    default:
      return "eu_vat";
  }
}

std::vector<LookupKey> TaxKeysOf(const PersonSealer& sealer, const v1::Company& c) {
  std::vector<LookupKey> keys;
  for (const v1::TaxId& t : c.tax_ids())
    keys.push_back(sealer.TaxIdKey(TaxKindName(t.kind()), t.value()));
  return keys;
}

v1::Company CompanySkeleton(const StoredCompany& s) {
  v1::Company c;
  c.set_company_id(s.company_id);
  for (const std::string& o : s.owner_user_ids) c.mutable_assignment()->add_owner_user_ids(o);
  c.mutable_assignment()->set_team_id(s.team_id);
  SetTime(s.created_at, c.mutable_created_at());
  c.set_version(s.version);
  return c;
}

// `stored` opened with the company's key (read in `tx`) and masked as the
// caller may see it.
absl::StatusOr<v1::Company> PresentCompany(pqxx::work& tx, const PersonSealer& sealer,
                                           const StoredCompany& stored, bool sensitive,
                                           std::vector<std::string>& masked) {
  v1::Company c = CompanySkeleton(stored);
  CRM_ASSIGN_OR_RETURN(std::string wrapped, CompanyStore::WrappedKey(tx, stored.company_id));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key,
                       sealer.UnwrapKey(kCompanyKeyPurpose, wrapped, stored.company_id));
  CRM_RETURN_IF_ERROR(
      sealer.OpenMessageFields(key, stored.sealed, CompanyOwner(stored.company_id), "company", c));
  if (!sensitive) {
    for (std::string& path : MaskCompany(c)) {
      if (std::find(masked.begin(), masked.end(), path) == masked.end()) {
        masked.push_back(std::move(path));
      }
    }
  }
  return c;
}

// The changed top-level `fields` of a company, old and new as JSON.
void AddCompanyChanges(Event& event, const v1::Company& before, const v1::Company& after,
                       const std::vector<std::string>& fields) {
  for (const std::string& field : fields) {
    google::protobuf::FieldMask mask;
    mask.add_paths(field);
    v1::Company a, b;
    FieldMaskUtil::MergeMessageTo(before, mask, FieldMaskUtil::MergeOptions(), &a);
    FieldMaskUtil::MergeMessageTo(after, mask, FieldMaskUtil::MergeOptions(), &b);
    if (a.SerializeAsString() == b.SerializeAsString()) continue;
    std::string old_json, new_json;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(a, &old_json, options);
    (void)google::protobuf::util::MessageToJsonString(b, &new_json, options);
    crm::audit::v1::FieldChange* c = event.add_changes();
    c->set_field(field);
    c->set_old_value(old_json == "{}" ? "" : old_json);
    c->set_new_value(new_json == "{}" ? "" : new_json);
  }
}

// ALREADY_EXISTS for tax id `index` of `keys`, naming the company only to a
// caller who can see it.
absl::Status TaxIdTaken(pqxx::work& tx, const std::vector<LookupKey>& keys, const DuplicateKey& dup,
                        const Access& access) {
  CRM_ASSIGN_OR_RETURN(std::optional<StoredCompany> visible,
                       CompanyStore::Get(tx, dup.subject_id, access, false));
  return absl::AlreadyExistsError(
      absl::StrCat("company.tax_ids[", dup.key_index, "].value: already registered",
                   visible.has_value() ? absl::StrCat(" to company ", dup.subject_id) : ""));
}

}  // namespace

grpc::Status ContactsService::CreateCompany(Ctx* ctx, const v1::CreateCompanyRequest* req,
                                            v1::CreateCompanyResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    v1::Company c = req->company();
    v1::Assignment assignment = c.assignment();
    CRM_RETURN_IF_ERROR(caller.CheckAssignment("company.assignment", assignment, true));
    for (const char* ro : {"company_id", "assignment", "created_at", "version"}) {
      c.GetReflection()->ClearField(&c, c.GetDescriptor()->FindFieldByName(ro));
    }
    if (c.name().empty()) return absl::InvalidArgumentError("company.name: required");
    CRM_RETURN_IF_ERROR(NormalizeCompany(c, WritableCompanyFields()));

    StoredCompany stored;
    stored.company_id = base::NewUuid();
    stored.team_id = assignment.team_id();
    stored.owner_user_ids.assign(assignment.owner_user_ids().begin(),
                                 assignment.owner_user_ids().end());
    stored.created_by = caller.principal->user_id;
    stored.created_at = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()));
    stored.updated_at = stored.created_at;
    stored.version = 1;
    CRM_ASSIGN_OR_RETURN(PersonSealer::SubjectKey key,
                         d_.sealer.NewKey(kCompanyKeyPurpose, stored.company_id));
    CRM_RETURN_IF_ERROR(d_.sealer.SealMessageFields(
        key.key, c, SealedCompanyFields(), CompanyOwner(stored.company_id), stored.sealed));
    const std::vector<LookupKey> keys = TaxKeysOf(d_.sealer, c);
    Event event = caller.Audit("contacts.company.create", "");
    event.set_resource(absl::StrCat("companies/", stored.company_id));
    AddCompanyChanges(event, v1::Company(), c, WritableCompanyFields());
    CRM_RETURN_IF_ERROR(d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(std::optional<DuplicateKey> dup,
                           CompanyStore::FindOwnerOfKeys(tx, keys));
      if (dup.has_value()) return TaxIdTaken(tx, keys, *dup, caller.access);
      CRM_RETURN_IF_ERROR(CompanyStore::Insert(tx, stored, key.wrapped, keys));
      return d_.audit.Enqueue(tx, event);
    }));
    c.MergeFrom(CompanySkeleton(stored));
    if (!caller.sensitive) MaskCompany(c);
    *resp->mutable_company() = std::move(c);
    return absl::OkStatus();
  });
}

grpc::Status ContactsService::GetCompany(Ctx* ctx, const v1::GetCompanyRequest* req,
                                         v1::GetCompanyResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead));
    CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("company_id", req->company_id()));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::optional<StoredCompany> stored,
                           CompanyStore::Get(tx, id, caller.access, false));
      if (!stored.has_value()) return CompanyNotFound();
      std::vector<std::string> masked;
      CRM_ASSIGN_OR_RETURN(*resp->mutable_company(),
                           PresentCompany(tx, d_.sealer, *stored, caller.sensitive, masked));
      for (std::string& m : masked) resp->add_masked_fields(std::move(m));
      Event event = caller.Audit("contacts.company.read", "");
      event.set_resource(absl::StrCat("companies/", id));
      return d_.audit.Enqueue(tx, event);
    });
  });
}

grpc::Status ContactsService::UpdateCompany(Ctx* ctx, const v1::UpdateCompanyRequest* req,
                                            v1::UpdateCompanyResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    CRM_ASSIGN_OR_RETURN(std::string id, base::CanonicalUuid("company_id", req->company_id()));
    CRM_RETURN_IF_ERROR(Catalogue::Get().ValidateUpdateMask("company", req->update_mask()));
    const std::vector<std::string> fields(req->update_mask().paths().begin(),
                                          req->update_mask().paths().end());
    FieldMaskUtil::MergeOptions replace;
    replace.set_replace_repeated_fields(true);
    replace.set_replace_message_fields(true);
    v1::Company incoming;
    FieldMaskUtil::MergeMessageTo(req->company(), req->update_mask(), replace, &incoming);
    CRM_RETURN_IF_ERROR(NormalizeCompany(incoming, fields));
    const bool keys_change = std::find(fields.begin(), fields.end(), "tax_ids") != fields.end();
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::optional<StoredCompany> stored,
                           CompanyStore::Get(tx, id, caller.access, /*lock=*/true));
      if (!stored.has_value()) return CompanyNotFound();
      if (req->expected_version() != 0 && req->expected_version() != stored->version) {
        return absl::AbortedError("expected_version: the company changed meanwhile");
      }
      std::vector<std::string> unused;
      CRM_ASSIGN_OR_RETURN(v1::Company before,
                           PresentCompany(tx, d_.sealer, *stored, /*sensitive=*/true, unused));
      v1::Company after = before;
      FieldMaskUtil::MergeMessageTo(incoming, req->update_mask(), replace, &after);
      Event event = caller.Audit("contacts.company.update", "");
      event.set_resource(absl::StrCat("companies/", id));
      AddCompanyChanges(event, before, after, fields);
      if (event.changes_size() > 0) {
        std::optional<std::vector<LookupKey>> keys;
        if (keys_change) {
          keys = TaxKeysOf(d_.sealer, after);
          CRM_ASSIGN_OR_RETURN(std::optional<DuplicateKey> dup,
                               CompanyStore::FindOwnerOfKeys(tx, *keys, id));
          if (dup.has_value()) return TaxIdTaken(tx, *keys, *dup, caller.access);
        }
        CRM_ASSIGN_OR_RETURN(std::string wrapped, CompanyStore::WrappedKey(tx, id));
        CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key,
                             d_.sealer.UnwrapKey(kCompanyKeyPurpose, wrapped, id));
        CRM_RETURN_IF_ERROR(d_.sealer.SealMessageFields(key, after, SealedCompanyFields(),
                                                        CompanyOwner(id), stored->sealed));
        stored->updated_at = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()));
        ++stored->version;
        CRM_RETURN_IF_ERROR(CompanyStore::Update(tx, *stored, keys));
        CRM_RETURN_IF_ERROR(d_.audit.Enqueue(tx, event));
      }
      after.clear_assignment();  // `before` had it: merged again, owners would repeat
      after.MergeFrom(CompanySkeleton(*stored));
      after.set_version(stored->version);
      if (!caller.sensitive) {
        for (std::string& m : MaskCompany(after)) resp->add_masked_fields(std::move(m));
      }
      *resp->mutable_company() = std::move(after);
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::ListCompanies(Ctx* ctx, const v1::ListCompaniesRequest* req,
                                            v1::ListCompaniesResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead));
    const int size = PageSize(req->page());
    CRM_ASSIGN_OR_RETURN(std::optional<Cursor> cursor,
                         DecodeCursor(req->page().page_token(), "companies"));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::vector<StoredCompany> rows,
                           CompanyStore::List(tx, caller.access, cursor, size + 1));
      const bool more = rows.size() > static_cast<size_t>(size);
      if (more) rows.resize(size);
      std::vector<std::string> masked;
      for (const StoredCompany& s : rows) {
        CRM_ASSIGN_OR_RETURN(*resp->add_companies(),
                             PresentCompany(tx, d_.sealer, s, caller.sensitive, masked));
      }
      for (std::string& m : masked) resp->add_masked_fields(std::move(m));
      if (more) {
        resp->mutable_page()->set_next_page_token(EncodeCursor(
            {.at = rows.back().created_at, .id = rows.back().company_id}, "companies"));
      }
      if (rows.empty()) return absl::OkStatus();
      return d_.audit.Enqueue(tx, caller.Audit("contacts.company.list", ""));
    });
  });
}

// ---- Invoices ----------------------------------------------------------------------

std::string InvoiceOwner(absl::string_view invoice_id) {
  return absl::StrCat("invoice:", invoice_id);
}

namespace {

constexpr int kMaxInvoices = 500;

// The invoice's sealed part: number and amounts.
v1::Invoice SealedPart(const v1::Invoice& in) {
  v1::Invoice part;
  part.set_number(in.number());
  part.set_net_minor(in.net_minor());
  part.set_tax_minor(in.tax_minor());
  part.set_gross_minor(in.gross_minor());
  return part;
}

// The owner's invoice key (read in `tx`), made and stored if it has none.
absl::StatusOr<crypto::SecretBytes> InvoiceKey(pqxx::work& tx, const PersonSealer& sealer,
                                               const std::string& owner, bool create) {
  CRM_ASSIGN_OR_RETURN(std::optional<std::string> wrapped, InvoiceStore::WrappedKey(tx, owner));
  if (wrapped.has_value()) return sealer.UnwrapKey(kInvoiceKeyPurpose, *wrapped, owner);
  if (!create) return absl::NotFoundError("owner has no invoice key");
  CRM_ASSIGN_OR_RETURN(PersonSealer::SubjectKey key, sealer.NewKey(kInvoiceKeyPurpose, owner));
  CRM_RETURN_IF_ERROR(InvoiceStore::InsertKey(tx, owner, key.wrapped));
  return std::move(key.key);
}

// NOT_FOUND unless `access` can see the invoice owner (a company or person).
absl::Status CheckInvoiceOwner(pqxx::work& tx, const Access& access, const std::string& owner,
                               bool company) {
  if (company) {
    CRM_ASSIGN_OR_RETURN(std::optional<StoredCompany> c,
                         CompanyStore::Get(tx, owner, access, false));
    return c.has_value() ? absl::OkStatus() : CompanyNotFound();
  }
  CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> p, PersonStore::Get(tx, owner, access, false));
  return p.has_value() ? absl::OkStatus() : NotFound();
}

}  // namespace

absl::StatusOr<v1::Invoice> OpenInvoice(const PersonSealer& sealer, const crypto::SecretBytes& key,
                                        const StoredInvoice& s) {
  v1::Invoice out;
  CRM_ASSIGN_OR_RETURN(std::string plain,
                       sealer.OpenText(key, InvoiceOwner(s.invoice_id), "invoice", s.sealed));
  if (!out.ParseFromString(plain))
    return absl::DataLossError("invoice: stored value does not open");
  out.set_invoice_id(s.invoice_id);
  out.set_subject_id(s.subject_id);
  out.set_company_id(s.company_id);
  out.set_issue_date(s.issue_date);
  out.set_currency(s.currency);
  out.set_retain_until(s.retain_until);
  return out;
}

grpc::Status ContactsService::RecordInvoice(Ctx* ctx, const v1::RecordInvoiceRequest* req,
                                            v1::RecordInvoiceResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    v1::Invoice in = req->invoice();
    if (in.subject_id().empty() == in.company_id().empty()) {
      return absl::InvalidArgumentError("invoice: exactly one of subject_id and company_id");
    }
    const bool company = !in.company_id().empty();
    CRM_ASSIGN_OR_RETURN(std::string owner,
                         base::CanonicalUuid(company ? "invoice.company_id" : "invoice.subject_id",
                                             company ? in.company_id() : in.subject_id()));
    CRM_RETURN_IF_ERROR(NormalizeSingleLineText("invoice.number", *in.mutable_number(), 64));
    if (in.number().empty()) return absl::InvalidArgumentError("invoice.number: required");
    absl::CivilDay issued;
    const absl::CivilDay today = absl::ToCivilDay(d_.clock.Now(), absl::UTCTimeZone());
    if (in.issue_date().size() != 10 || !absl::ParseCivilTime(in.issue_date(), &issued) ||
        issued.year() < 2000 || issued > today + 1) {
      return absl::InvalidArgumentError(
          "invoice.issue_date: must be a date YYYY-MM-DD between 2000 and tomorrow");
    }
    const std::string currency = absl::AsciiStrToUpper(in.currency());
    if (currency.size() != 3 || !std::all_of(currency.begin(), currency.end(),
                                             [](char c) { return c >= 'A' && c <= 'Z'; })) {
      return absl::InvalidArgumentError("invoice.currency: must be an ISO 4217 code");
    }
    in.set_currency(currency);
    constexpr int64_t kMaxAmount = int64_t{1} << 53;
    for (auto [name, v] : {std::pair{"invoice.net_minor", in.net_minor()},
                           std::pair{"invoice.tax_minor", in.tax_minor()},
                           std::pair{"invoice.gross_minor", in.gross_minor()}}) {
      if (v < -kMaxAmount || v > kMaxAmount) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": out of range"));
      }
    }
    if (in.net_minor() + in.tax_minor() != in.gross_minor()) {
      return absl::InvalidArgumentError("invoice.gross_minor: must equal net_minor + tax_minor");
    }
    const absl::CivilDay retain(issued.year() + d_.invoice_retention_years, 12, 31);
    StoredInvoice stored{.invoice_id = base::NewUuid(),
                         .subject_id = company ? "" : owner,
                         .company_id = company ? owner : "",
                         .sealed = {},
                         .issue_date = absl::FormatCivilTime(issued),
                         .currency = currency,
                         .retain_until = absl::FormatCivilTime(retain),
                         .restricted = false,
                         .created_by = caller.principal->user_id,
                         .created_at = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()))};
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_RETURN_IF_ERROR(CheckInvoiceOwner(tx, caller.access, owner, company));
      CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, InvoiceKey(tx, d_.sealer, owner, true));
      CRM_ASSIGN_OR_RETURN(stored.sealed,
                           d_.sealer.SealText(key, InvoiceOwner(stored.invoice_id), "invoice",
                                              SealedPart(in).SerializeAsString()));
      CRM_RETURN_IF_ERROR(InvoiceStore::Insert(tx, stored));
      Event event = caller.Audit("contacts.invoice.record", stored.subject_id);
      event.set_resource(absl::StrCat("invoices/", stored.invoice_id));
      CRM_RETURN_IF_ERROR(d_.audit.Enqueue(tx, event));
      CRM_ASSIGN_OR_RETURN(*resp->mutable_invoice(), OpenInvoice(d_.sealer, key, stored));
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::ListInvoices(Ctx* ctx, const v1::ListInvoicesRequest* req,
                                           v1::ListInvoicesResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead));
    const bool company = req->owner_case() == v1::ListInvoicesRequest::kCompanyId;
    if (req->owner_case() == v1::ListInvoicesRequest::OWNER_NOT_SET) {
      return absl::InvalidArgumentError("owner: one of subject_id and company_id is required");
    }
    CRM_ASSIGN_OR_RETURN(std::string owner,
                         base::CanonicalUuid(company ? "company_id" : "subject_id",
                                             company ? req->company_id() : req->subject_id()));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_RETURN_IF_ERROR(CheckInvoiceOwner(tx, caller.access, owner, company));
      CRM_ASSIGN_OR_RETURN(std::vector<StoredInvoice> rows,
                           InvoiceStore::List(tx, owner, company, kMaxInvoices));
      if (rows.empty()) return absl::OkStatus();
      CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, InvoiceKey(tx, d_.sealer, owner, false));
      for (const StoredInvoice& s : rows) {
        CRM_ASSIGN_OR_RETURN(*resp->add_invoices(), OpenInvoice(d_.sealer, key, s));
      }
      Event event = caller.Audit("contacts.invoice.list", company ? "" : owner);
      if (company) event.set_resource(absl::StrCat("companies/", owner));
      return d_.audit.Enqueue(tx, event);
    });
  });
}

// ---- Contact history ---------------------------------------------------------

grpc::Status ContactsService::AddInteraction(Ctx* ctx, const v1::AddInteractionRequest* req,
                                             v1::AddInteractionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kWrite));
    const v1::Interaction& in = req->interaction();
    CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("subject_id", in.subject_id()));
    if (!v1::InteractionKind_IsValid(in.kind()) || in.kind() == v1::INTERACTION_KIND_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          "interaction.kind: one of call, meeting, e-mail or note is required");
    }
    const FieldSpec* summary_spec = Catalogue::Get().Find("interaction.summary");
    CRM_RETURN_IF_ERROR(base::ValidateText("interaction.summary", in.summary(), 1,
                                           static_cast<size_t>(summary_spec->max_length)));
    const absl::Time now = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()));
    absl::Time occurred = now;
    if (in.has_occurred_at()) {
      CRM_ASSIGN_OR_RETURN(occurred, rpc::GetTime("interaction.occurred_at", in.occurred_at()));
      occurred = absl::FromUnixMicros(absl::ToUnixMicros(occurred));
      if (occurred > now + absl::Hours(24) || occurred < absl::FromUnixSeconds(946684800)) {
        return absl::InvalidArgumentError(
            "interaction.occurred_at: must be between the year 2000 and tomorrow");
      }
    }
    StoredInteraction entry{.interaction_id = base::NewUuid(),
                            .subject_id = id,
                            .kind = in.kind(),
                            .occurred_at = occurred,
                            .operator_user_id = caller.principal->user_id,
                            .summary = {},
                            .sensitive = in.sensitive(),
                            .created_at = now};
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> person,
                           PersonStore::Get(tx, id, caller.access, /*lock=*/false));
      if (!person.has_value()) return NotFound();
      if (person->restricted) {
        return absl::FailedPreconditionError(
            "person is restricted (Art. 18): no new processing until the restriction is lifted");
      }
      CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, SubjectKeyOf(tx, d_.sealer, *person));
      CRM_ASSIGN_OR_RETURN(
          entry.summary,
          d_.sealer.SealText(key, id, InteractionSummaryField(entry.interaction_id), in.summary()));
      CRM_RETURN_IF_ERROR(PersonStore::AddInteraction(tx, entry));
      Event event = caller.Audit("contacts.interaction.add", id);
      crm::audit::v1::Detail* kind = event.add_details();
      kind->set_key("kind");
      kind->set_value(v1::InteractionKind_Name(in.kind()));
      crm::audit::v1::Detail* entry_id = event.add_details();
      entry_id->set_key("interaction_id");
      entry_id->set_value(entry.interaction_id);
      CRM_RETURN_IF_ERROR(d_.audit.Enqueue(tx, event));
      v1::Interaction* out = resp->mutable_interaction();
      *out = in;
      out->set_interaction_id(entry.interaction_id);
      out->set_subject_id(id);
      out->set_operator_user_id(entry.operator_user_id);
      SetTime(occurred, out->mutable_occurred_at());
      if (entry.sensitive && !caller.sensitive) out->clear_summary();
      return absl::OkStatus();
    });
  });
}

grpc::Status ContactsService::ListInteractions(Ctx* ctx, const v1::ListInteractionsRequest* req,
                                               v1::ListInteractionsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    const int size = PageSize(req->page());
    CRM_ASSIGN_OR_RETURN(std::optional<Cursor> cursor, DecodeCursor(req->page().page_token(), id));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> person,
                           PersonStore::Get(tx, id, caller.access, /*lock=*/false));
      if (!person.has_value()) return NotFound();
      CRM_ASSIGN_OR_RETURN(std::vector<StoredInteraction> rows,
                           PersonStore::ListInteractions(tx, id, cursor, size + 1));
      const bool more = rows.size() > static_cast<size_t>(size);
      if (more) rows.resize(size);
      std::optional<crypto::SecretBytes> key;
      bool masked = false;
      for (const StoredInteraction& r : rows) {
        v1::Interaction* out = resp->add_interactions();
        out->set_interaction_id(r.interaction_id);
        out->set_subject_id(r.subject_id);
        out->set_kind(static_cast<v1::InteractionKind>(r.kind));
        SetTime(r.occurred_at, out->mutable_occurred_at());
        out->set_operator_user_id(r.operator_user_id);
        out->set_sensitive(r.sensitive);
        if (r.sensitive && !caller.sensitive) {
          masked = true;
          continue;
        }
        if (!key.has_value()) {
          CRM_ASSIGN_OR_RETURN(key, SubjectKeyOf(tx, d_.sealer, *person));
        }
        CRM_ASSIGN_OR_RETURN(
            *out->mutable_summary(),
            d_.sealer.OpenText(*key, id, InteractionSummaryField(r.interaction_id), r.summary));
      }
      if (masked) resp->add_masked_fields("interaction.summary");
      if (more) {
        resp->mutable_page()->set_next_page_token(
            EncodeCursor({.at = rows.back().occurred_at, .id = rows.back().interaction_id}, id));
      }
      return d_.audit.Enqueue(tx, caller.Audit("contacts.interaction.list", id));
    });
  });
}

grpc::Status ContactsService::ListRetentionDue(Ctx* ctx, const v1::ListRetentionDueRequest* req,
                                               v1::ListRetentionDueResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kReadAll));
    const int size = PageSize(req->page());
    CRM_ASSIGN_OR_RETURN(std::optional<Cursor> cursor,
                         DecodeCursor(req->page().page_token(), "retention"));
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          resp->Clear();
          const bool has_cursor = cursor.has_value();
          pqxx::result rows = tx.exec_params(
              "SELECT subject_id::text, rule, (EXTRACT(EPOCH FROM due_since) * 1000000)::bigint, "
              "state FROM retention_due WHERE NOT $1::boolean OR (due_since, subject_id) > "
              "('epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3::uuid) "
              "ORDER BY due_since, subject_id LIMIT $4",
              has_cursor, has_cursor ? absl::ToUnixMicros(cursor->at) : int64_t{0},
              has_cursor ? cursor->id : std::string("00000000-0000-0000-0000-000000000000"),
              size + 1);
          const bool more = rows.size() > static_cast<size_t>(size);
          for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
            v1::RetentionDue* due = resp->add_due();
            due->set_subject_id(rows[i][0].as<std::string>());
            due->set_rule(rows[i][1].as<std::string>());
            SetTime(absl::FromUnixMicros(rows[i][2].as<int64_t>()), due->mutable_due_since());
            due->set_state(rows[i][3].as<std::string>());
          }
          if (more) {
            const v1::RetentionDue& last = resp->due(size - 1);
            resp->mutable_page()->set_next_page_token(
                EncodeCursor({.at = absl::FromUnixSeconds(last.due_since().seconds()) +
                                    absl::Nanoseconds(last.due_since().nanos()),
                              .id = last.subject_id()},
                             "retention"));
          }
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status ContactsService::GetFieldCatalogue(Ctx* ctx, const v1::GetFieldCatalogueRequest*,
                                                v1::GetFieldCatalogueResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(Caller caller, Authorize(ctx, kRead));
    *resp = Catalogue::Get().ToProto();
    return absl::OkStatus();
  });
}

// ---- For the mailing service ------------------------------------------------------

namespace {

constexpr char kMailingRead[] = "contacts.person.read_for_mailing";

// `row` as mailing may see it, into `out` (subject_id left to the caller).
// OK with the opened address for a disclosable person; DATA_LOSS if a key or
// field does not open.
absl::Status MailingAnswer(const PersonSealer& sealer, const MailingRow& row,
                           v1::MailingAddress& out) {
  if (row.restricted) {
    out.set_status(v1::MAILING_STATUS_RESTRICTED);
    return absl::OkStatus();
  }
  if (row.sealed.find("emails") == row.sealed.end()) {
    out.set_status(v1::MAILING_STATUS_NO_ADDRESS);
    return absl::OkStatus();
  }
  if (row.wrapped_key.empty()) {  // the key is gone: erased meanwhile
    out.set_status(v1::MAILING_STATUS_NOT_FOUND);
    return absl::OkStatus();
  }
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, sealer.Unwrap(row.wrapped_key, row.subject_id));
  v1::Person p;
  CRM_RETURN_IF_ERROR(sealer.OpenMessageFields(key, row.sealed, row.subject_id, "person", p));
  if (p.emails().empty()) {
    out.set_status(v1::MAILING_STATUS_NO_ADDRESS);
    return absl::OkStatus();
  }
  out.set_status(v1::MAILING_STATUS_OK);
  for (v1::EmailAddress& e : *p.mutable_emails()) {
    if (e.primary()) {
      out.set_email(std::move(*e.mutable_address()));
      break;
    }
  }
  if (out.email().empty()) out.set_email(std::move(*p.mutable_emails(0)->mutable_address()));
  out.set_given_name(std::move(*p.mutable_given_name()));
  return absl::OkStatus();
}

}  // namespace

grpc::Status ContactsService::GetMailingAddresses(Ctx* ctx,
                                                  const v1::GetMailingAddressesRequest* req,
                                                  v1::GetMailingAddressesResponse* resp) {
  return Handle([&]() -> absl::Status {
    // Who may call is the access policy's (AllowContactsMethods): the
    // mailing identity only, without a token.
    const int n = req->subject_ids_size();
    if (n == 0) return absl::InvalidArgumentError("subject_ids: required");
    if (n > kMaxMailingBatch) {
      return absl::InvalidArgumentError(
          absl::StrCat("subject_ids: at most ", kMaxMailingBatch, " per call"));
    }
    // Each distinct subject is read, opened and audited once: `distinct`
    // holds them in order of first appearance, `index` finds one's position
    // and slot[i] is the position answering subject_ids[i].
    std::vector<std::string> distinct;
    absl::flat_hash_map<std::string, size_t> index;
    std::vector<size_t> slot(n);
    distinct.reserve(n);
    index.reserve(n);
    for (int i = 0; i < n; ++i) {
      const std::string& id = req->subject_ids(i);
      // The field's name is made only for the error.
      if (!base::IsUuid(id)) return base::ValidateUuid(absl::StrCat("subject_ids[", i, "]"), id);
      auto [it, inserted] = index.try_emplace(absl::AsciiStrToLower(id), distinct.size());
      if (inserted) distinct.push_back(it->first);
      slot[i] = it->second;
    }
    const std::string peer = rpc::PeerIdentity(*ctx);
    const std::string request_id = rpc::RequestId(*ctx);
    std::vector<v1::MailingAddress> answers(distinct.size());
    CRM_RETURN_IF_ERROR(d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      for (v1::MailingAddress& a : answers) {
        a.Clear();
        a.set_status(v1::MAILING_STATUS_NOT_FOUND);
      }
      CRM_ASSIGN_OR_RETURN(std::vector<MailingRow> rows, PersonStore::GetForMailing(tx, distinct));
      std::vector<Event> events;
      events.reserve(rows.size());
      for (const MailingRow& row : rows) {
        auto it = index.find(row.subject_id);
        if (it == index.end()) continue;
        v1::MailingAddress& a = answers[it->second];
        CRM_RETURN_IF_ERROR(MailingAnswer(d_.sealer, row, a));
        if (a.status() != v1::MAILING_STATUS_OK) continue;
        Event& e = events.emplace_back();
        e.set_action(kMailingRead);
        e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
        e.set_subject_id(row.subject_id);
        e.set_resource(absl::StrCat("persons/", row.subject_id));
        e.mutable_actor()->set_service_identity(peer);
        e.set_request_id(request_id);
      }
      std::vector<Event*> sealed;
      for (Event& e : events) sealed.push_back(&e);
      return d_.audit.EnqueueAll(tx, sealed);
    }));
    resp->Clear();
    resp->mutable_addresses()->Reserve(n);
    for (int i = 0; i < n; ++i) {
      v1::MailingAddress* a = resp->add_addresses();
      *a = answers[slot[i]];
      a->set_subject_id(distinct[slot[i]]);
    }
    return absl::OkStatus();
  });
}

absl::Status AllowContactsMethods(rpc::AccessPolicy& policy) {
  const google::protobuf::ServiceDescriptor* service =
      v1::GetMailingAddressesRequest::descriptor()->file()->FindServiceByName("Contacts");
  if (service == nullptr) return absl::InternalError("crm.contacts.v1.Contacts is not linked in");
  for (int i = 0; i < service->method_count(); ++i) {
    const google::protobuf::MethodDescriptor* m = service->method(i);
    const std::string method = absl::StrCat("/", service->full_name(), "/", m->name());
    // By its request type, so that a renamed method could not become open.
    if (m->input_type() == v1::GetMailingAddressesRequest::descriptor()) {
      policy.Allow(method, {kMailingCaller});
    } else {
      policy.AllowAnyPeer(method);
    }
  }
  return policy.Validate();
}

}  // namespace crm::contacts
