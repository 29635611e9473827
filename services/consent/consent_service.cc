#include "services/consent/consent_service.h"

#include <algorithm>
#include <pqxx/nontransaction>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/base64url.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/data_key.h"
#include "libs/crypto/primitives.h"
#include "libs/rpc/call_auth.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"
#include "services/consent/consent_store.h"
#include "services/consent/ledger_chain.h"
#include "services/consent/rules.h"

namespace crm::consent {
namespace {

using crm::audit::v1::Event;
using rpc::Handle;

constexpr char kRead[] = "consent.read";
constexpr char kCheck[] = "consent.check";
constexpr char kWrite[] = "consent.write";
constexpr char kAdmin[] = "consent.admin";

absl::StatusOr<std::shared_ptr<const auth::Principal>> Authorize(grpc::ServerContext* ctx,
                                                                 auth::TokenVerifier& verifier,
                                                                 absl::string_view permission) {
  return rpc::AuthorizeCall(*ctx, verifier, permission);
}

// `permission`, or the data subject `subject` acting on their own consents
// with their token (subject.self; the privacy portal).
absl::StatusOr<std::shared_ptr<const auth::Principal>> AuthorizeFor(grpc::ServerContextBase* ctx,
                                                                    auth::TokenVerifier& verifier,
                                                                    absl::string_view permission,
                                                                    absl::string_view subject) {
  CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthenticateCall(*ctx, verifier));
  if (caller->Has(permission) || caller->IsSubject(absl::AsciiStrToLower(subject))) return caller;
  return absl::PermissionDeniedError(absl::StrCat("needs permission ", permission));
}

absl::Status ValidatePurposeId(absl::string_view field, absl::string_view id) {
  return base::ValidateName(field, id, 64);
}

absl::Status UnknownPurpose(absl::string_view field) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown purpose"));
}

Event AuditEvent(grpc::ServerContext& ctx, const auth::Principal& who, absl::string_view action,
                 absl::string_view subject_id) {
  Event e;
  e.set_action(std::string(action));
  e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
  if (!subject_id.empty()) {
    e.set_subject_id(std::string(subject_id));
    e.set_resource(absl::StrCat("consent/", subject_id));
  }
  e.mutable_actor()->set_user_id(who.user_id);
  e.mutable_actor()->set_session_id(who.session_id);
  e.mutable_actor()->set_service_identity(rpc::PeerIdentity(ctx));
  e.set_request_id(rpc::RequestId(ctx));
  return e;
}

// The evidence bytes sealed per entry: both values length-prefixed.
std::string EvidenceOf(const v1::Statement& s) {
  if (s.source_address().empty() && s.user_agent().empty()) return "";
  return absl::StrCat(s.source_address().size(), ":", s.source_address(), s.user_agent());
}

}  // namespace

grpc::Status ConsentService::ListPurposes(Ctx* ctx, const v1::ListPurposesRequest*,
                                          v1::ListPurposesResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthenticateCall(*ctx, d_.verifier));
    if (!caller->Has(kRead) && !caller->Has(auth::kSubjectSelf)) {
      return absl::PermissionDeniedError(absl::StrCat("needs permission ", kRead));
    }
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::vector<v1::Purpose> purposes, ConsentStore::ListPurposes(tx));
      for (v1::Purpose& p : purposes) *resp->add_purposes() = std::move(p);
      return absl::OkStatus();
    });
  });
}

grpc::Status ConsentService::DefinePurpose(Ctx* ctx, const v1::DefinePurposeRequest* req,
                                           v1::DefinePurposeResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, Authorize(ctx, d_.verifier, kAdmin));
    v1::Purpose p = req->purpose();
    p.clear_current_notice_versions();
    CRM_RETURN_IF_ERROR(ValidatePurposeId("purpose.purpose_id", p.purpose_id()));
    if (p.basis() == v1::LAWFUL_BASIS_UNSPECIFIED || !v1::LawfulBasis_IsValid(p.basis())) {
      return absl::InvalidArgumentError("purpose.basis: required (consent, contract, ...)");
    }
    CRM_RETURN_IF_ERROR(base::ValidateText("purpose.description", p.description(), 1, 500));
    if (p.data_categories_size() > 32) {
      return absl::InvalidArgumentError("purpose.data_categories: at most 32");
    }
    for (int i = 0; i < p.data_categories_size(); ++i) {
      CRM_RETURN_IF_ERROR(ValidatePurposeId(absl::StrCat("purpose.data_categories[", i, "]"),
                                            p.data_categories(i)));
    }
    if (p.validity_days() < 0 || p.validity_days() > 3650) {
      return absl::InvalidArgumentError("purpose.validity_days: 0 (no limit) .. 3650");
    }
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(std::optional<v1::Purpose> existing,
                           ConsentStore::GetPurpose(tx, p.purpose_id()));
      if (existing.has_value()) {
        if (existing->basis() != p.basis() ||
            existing->direct_marketing() != p.direct_marketing()) {
          return absl::FailedPreconditionError(
              "purpose.basis: a purpose's basis and direct_marketing never change; define a new "
              "purpose");
        }
        CRM_RETURN_IF_ERROR(ConsentStore::UpdatePurpose(tx, p));
      } else {
        CRM_RETURN_IF_ERROR(ConsentStore::InsertPurpose(tx, p, d_.clock.Now()));
      }
      resp->set_created(!existing.has_value());
      Event e = AuditEvent(*ctx, *caller,
                           existing ? "consent.purpose.update" : "consent.purpose.define", "");
      e.set_resource(absl::StrCat("purposes/", p.purpose_id()));
      return d_.audit.Enqueue(tx, std::move(e));
    });
  });
}

grpc::Status ConsentService::PublishNotice(Ctx* ctx, const v1::PublishNoticeRequest* req,
                                           v1::PublishNoticeResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, Authorize(ctx, d_.verifier, kAdmin));
    CRM_RETURN_IF_ERROR(ValidatePurposeId("purpose_id", req->purpose_id()));
    const std::string& lang = req->language();
    if (lang.size() < 2 || lang.size() > 3 ||
        !std::all_of(lang.begin(), lang.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
      return absl::InvalidArgumentError("language: a 2- or 3-letter lower-case code");
    }
    CRM_RETURN_IF_ERROR(base::ValidateUtf8("text", req->text()));
    if (req->text().empty() || req->text().size() > 100'000) {
      return absl::InvalidArgumentError("text: 1 .. 100,000 bytes");
    }
    const std::string version = absl::BytesToHexString(crypto::Sha256(req->text()));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(std::optional<v1::Purpose> purpose,
                           ConsentStore::GetPurpose(tx, req->purpose_id()));
      if (!purpose.has_value()) return UnknownPurpose("purpose_id");
      CRM_ASSIGN_OR_RETURN(const bool created,
                           ConsentStore::PublishNotice(tx, req->purpose_id(), lang, version,
                                                       req->text(), d_.clock.Now()));
      resp->set_version(version);
      resp->set_created(created);
      if (!created) return absl::OkStatus();
      Event e = AuditEvent(*ctx, *caller, "consent.notice.publish", "");
      e.set_resource(absl::StrCat("purposes/", req->purpose_id(), "/notices/", lang, "/", version));
      return d_.audit.Enqueue(tx, std::move(e));
    });
  });
}

absl::Status ConsentService::Record(Ctx* ctx, v1::Action action, const v1::Statement& in,
                                    bool* changed, v1::LedgerEntry* entry, std::string* receipt) {
  int64_t invalidation = 0;
  absl::Status s = RecordInTransaction(ctx, action, in, changed, entry, receipt, &invalidation);
  if (s.ok() && *changed && d_.cache != nullptr) {
    d_.cache->Committed(d_.db, invalidation, entry->subject_id(), {entry->purpose_id()});
  }
  return s;
}

absl::Status ConsentService::RecordInTransaction(Ctx* ctx, v1::Action action,
                                                 const v1::Statement& in, bool* changed,
                                                 v1::LedgerEntry* entry, std::string* receipt,
                                                 int64_t* invalidation) {
  CRM_ASSIGN_OR_RETURN(auto caller, AuthorizeFor(ctx, d_.verifier, kWrite, in.subject_id()));
  const absl::Time now = absl::FromUnixMicros(absl::ToUnixMicros(d_.clock.Now()));
  CRM_RETURN_IF_ERROR(ValidateStatement(in, now));
  const std::string subject = absl::AsciiStrToLower(in.subject_id());
  // A subject speaks for themselves now, on the web: they may not back-date a
  // statement or claim it came on paper or from a shop.
  if (!caller->Has(kWrite)) {
    if (in.has_given_at()) {
      return absl::InvalidArgumentError("statement.given_at: a subject's statement is dated now");
    }
    if (in.method() != v1::METHOD_WEB_FORM) {
      return absl::InvalidArgumentError("statement.method: a subject's statement is web_form");
    }
    if (in.source() != "portal") {
      return absl::InvalidArgumentError("statement.source: a subject's statement is from portal");
    }
  }
  const std::string language = in.language().empty() ? "en" : in.language();
  absl::Time given_at = now;
  if (in.has_given_at()) {
    CRM_ASSIGN_OR_RETURN(given_at, rpc::GetTime("statement.given_at", in.given_at()));
    given_at = absl::FromUnixMicros(absl::ToUnixMicros(given_at));
  }
  return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
    *changed = false;
    entry->Clear();
    CRM_ASSIGN_OR_RETURN(std::optional<v1::Purpose> purpose,
                         ConsentStore::GetPurpose(tx, in.purpose_id()));
    if (!purpose.has_value()) return UnknownPurpose("statement.purpose_id");
    CRM_ASSIGN_OR_RETURN(const std::string current,
                         ConsentStore::CurrentNotice(tx, in.purpose_id(), language));
    bool known = false;
    if (!in.notice_version().empty()) {
      CRM_ASSIGN_OR_RETURN(
          known, ConsentStore::NoticeExists(tx, in.purpose_id(), language, in.notice_version()));
    }
    auto plan = [&]() -> absl::StatusOr<std::pair<Plan, PurposeState>> {
      CRM_ASSIGN_OR_RETURN(PurposeState state, ConsentStore::State(tx, subject, in.purpose_id()));
      CRM_ASSIGN_OR_RETURN(Plan p,
                           PlanStatement(*purpose, state, action, in, given_at, current, known));
      return std::make_pair(p, state);
    };
    // Decided without a lock first (a repeated statement creates nothing),
    // then again under the subject's lock.
    // Nothing to record; a grant in force answers with its receipt.
    auto unchanged = [&]() -> absl::Status {
      if (receipt == nullptr || action != v1::ACTION_GRANT) return absl::OkStatus();
      CRM_ASSIGN_OR_RETURN(*receipt, ConsentStore::Receipt(tx, subject, 0, in.purpose_id()));
      return absl::OkStatus();
    };
    CRM_ASSIGN_OR_RETURN(auto first, plan());
    if (!first.first.record) return unchanged();
    CRM_ASSIGN_OR_RETURN(const std::string wrapped, ConsentStore::LockSubject(
                                                        tx, subject,
                                                        [&]() -> absl::StatusOr<std::string> {
                                                          return crypto::WrapDataKey(
                                                              d_.ring, crypto::NewDataKey(),
                                                              kConsentKeyPurpose, subject);
                                                        },
                                                        now));
    CRM_ASSIGN_OR_RETURN(auto locked, plan());
    auto [decided, state] = locked;
    if (!decided.record) return unchanged();

    CRM_ASSIGN_OR_RETURN(std::optional<v1::LedgerEntry> last, ConsentStore::LastEntry(tx, subject));
    entry->set_subject_id(subject);
    entry->set_purpose_id(in.purpose_id());
    entry->set_action(action);
    entry->set_notice_version(action == v1::ACTION_GRANT ? in.notice_version() : "");
    entry->set_method(in.method());
    entry->set_source(in.source());
    entry->set_actor(caller->user_id.empty() ? absl::StrCat("service:", rpc::PeerIdentity(*ctx))
                     : caller->IsSubject(subject) ? "subject"
                                                  : caller->user_id);
    rpc::SetTime(given_at, entry->mutable_given_at());
    rpc::SetTime(now, entry->mutable_recorded_at());
    if (action == v1::ACTION_GRANT && decided.expires_at != absl::InfiniteFuture()) {
      rpc::SetTime(decided.expires_at, entry->mutable_expires_at());
    }
    const std::string evidence = EvidenceOf(in);
    entry->set_has_evidence(!evidence.empty());
    Link(*entry, last.has_value() ? &*last : nullptr);
    std::string sealed;
    if (!evidence.empty()) {
      CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key,
                           crypto::UnwrapDataKey(d_.ring, wrapped, kConsentKeyPurpose, subject));
      CRM_ASSIGN_OR_RETURN(sealed, crypto::Seal(key, evidence,
                                                absl::StrCat("crm.consent.v1|", subject, "|",
                                                             entry->sequence(), "|evidence")));
    }
    std::string signed_receipt;
    if (action == v1::ACTION_GRANT && d_.receipts != nullptr) {
      CRM_ASSIGN_OR_RETURN(signed_receipt, d_.receipts->Sign(*entry, *purpose));
    }
    Apply(state, *entry);
    CRM_RETURN_IF_ERROR(ConsentStore::Append(tx, *entry, sealed, signed_receipt, state));
    if (receipt != nullptr) *receipt = signed_receipt;
    if (d_.cache != nullptr) {
      CRM_ASSIGN_OR_RETURN(*invalidation, d_.cache->Pending(tx, subject, {in.purpose_id()}));
    }
    *changed = true;
    Event e = AuditEvent(*ctx, *caller,
                         absl::StrCat("consent.", action == v1::ACTION_GRANT      ? "grant"
                                                  : action == v1::ACTION_WITHDRAW ? "withdraw"
                                                                                  : "object"),
                         subject);
    crm::audit::v1::Detail* d = e.add_details();
    d->set_key("purpose_id");
    d->set_value(in.purpose_id());
    d = e.add_details();
    d->set_key("sequence");
    d->set_value(absl::StrCat(entry->sequence()));
    return d_.audit.Enqueue(tx, std::move(e));
  });
}

grpc::Status ConsentService::Grant(Ctx* ctx, const v1::GrantRequest* req, v1::GrantResponse* resp) {
  return Handle([&]() -> absl::Status {
    bool changed = false;
    CRM_RETURN_IF_ERROR(Record(ctx, v1::ACTION_GRANT, req->statement(), &changed,
                               resp->mutable_entry(), resp->mutable_receipt_jws()));
    resp->set_changed(changed);
    if (!changed) resp->clear_entry();
    return absl::OkStatus();
  });
}

grpc::Status ConsentService::Withdraw(Ctx* ctx, const v1::WithdrawRequest* req,
                                      v1::WithdrawResponse* resp) {
  return Handle([&]() -> absl::Status {
    bool changed = false;
    CRM_RETURN_IF_ERROR(
        Record(ctx, v1::ACTION_WITHDRAW, req->statement(), &changed, resp->mutable_entry()));
    resp->set_changed(changed);
    if (!changed) resp->clear_entry();
    return absl::OkStatus();
  });
}

grpc::Status ConsentService::Object(Ctx* ctx, const v1::ObjectRequest* req,
                                    v1::ObjectResponse* resp) {
  return Handle([&]() -> absl::Status {
    bool changed = false;
    CRM_RETURN_IF_ERROR(
        Record(ctx, v1::ACTION_OBJECT, req->statement(), &changed, resp->mutable_entry()));
    resp->set_changed(changed);
    if (!changed) resp->clear_entry();
    return absl::OkStatus();
  });
}

absl::StatusOr<std::shared_ptr<const v1::Purpose>> ConsentService::PurposeOf(
    pqxx::transaction_base& tx, const std::string& purpose_id) {
  {
    absl::MutexLock l(&mu_);
    auto it = purposes_.find(purpose_id);
    if (it != purposes_.end()) return it->second;
  }
  CRM_ASSIGN_OR_RETURN(std::optional<v1::Purpose> purpose,
                       ConsentStore::GetPurpose(tx, purpose_id));
  if (!purpose.has_value()) return UnknownPurpose("purpose_id");
  auto shared = std::make_shared<const v1::Purpose>(*std::move(purpose));
  absl::MutexLock l(&mu_);
  purposes_.emplace(purpose_id, shared);
  return shared;
}

std::shared_ptr<const v1::Purpose> ConsentService::KnownPurpose(const std::string& purpose_id) {
  absl::MutexLock l(&mu_);
  auto it = purposes_.find(purpose_id);
  return it != purposes_.end() ? it->second : nullptr;
}

namespace {

v1::Decision DecisionFor(const v1::Purpose& purpose, const ConsentStore::Standing& standing,
                         const std::string& subject, absl::Time now) {
  v1::Decision d = consent::Decide(purpose, standing.state, standing.restricted, now);
  d.set_subject_id(subject);
  return d;
}

}  // namespace

absl::Status ConsentService::Decide(const std::string& purpose_id,
                                    const std::vector<std::string>& subjects,
                                    google::protobuf::RepeatedPtrField<v1::Decision>& out,
                                    bool ask_cache) {
  const absl::Time now = d_.clock.Now();
  out.Clear();
  // The cache first (one MGET for all), PostgreSQL for the misses.
  std::vector<std::optional<ConsentStore::Standing>> cached =
      d_.cache != nullptr && ask_cache
          ? d_.cache->GetMany(subjects, purpose_id)
          : std::vector<std::optional<ConsentStore::Standing>>(subjects.size());
  std::vector<ConsentStore::Standing> standings(subjects.size());
  std::vector<size_t> misses;
  for (size_t i = 0; i < subjects.size(); ++i) {
    if (cached[i].has_value()) {
      standings[i] = *cached[i];
    } else {
      misses.push_back(i);
    }
  }
  std::shared_ptr<const v1::Purpose> purpose = KnownPurpose(purpose_id);
  if (purpose == nullptr || !misses.empty()) {
    // Generations first, so that what is read cannot be put back over a
    // change that commits meanwhile.
    const std::vector<std::string> generations =
        d_.cache != nullptr ? d_.cache->Generations(subjects, misses) : std::vector<std::string>();
    std::vector<ConsentStore::Standing> read;
    CRM_RETURN_IF_ERROR(d_.db.WithConnection([&](pqxx::connection_base& c) -> absl::Status {
      pqxx::nontransaction tx(c);
      CRM_ASSIGN_OR_RETURN(purpose, PurposeOf(tx, purpose_id));
      if (misses.empty()) return absl::OkStatus();
      std::vector<std::string> ids;
      ids.reserve(misses.size());
      for (size_t i : misses) ids.push_back(subjects[i]);
      CRM_ASSIGN_OR_RETURN(read, ConsentStore::Standings(tx, ids, purpose_id));
      if (read.size() != misses.size()) return absl::InternalError("standings missing");
      return absl::OkStatus();
    }));
    for (size_t k = 0; k < read.size(); ++k) standings[misses[k]] = read[k];
    if (d_.cache != nullptr && !misses.empty()) {
      d_.cache->PutMany(subjects, misses, purpose_id, generations, read);
    }
  }
  out.Reserve(static_cast<int>(subjects.size()));
  for (size_t i = 0; i < subjects.size(); ++i) {
    *out.Add() = DecisionFor(*purpose, standings[i], subjects[i], now);
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ConsentService::Check(grpc::CallbackServerContext* ctx,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // Answers the call: `resp` serialized into `response` when OK.
  auto finish = [reactor, response](absl::Status status, const v1::CheckResponse& resp) {
    bool own_buffer = false;
    if (status.ok()) {
      status = base::FromGrpcStatus(
          grpc::SerializationTraits<v1::CheckResponse>::Serialize(resp, response, &own_buffer));
    }
    reactor->Finish(base::ToGrpcStatus(status));
  };
  v1::CheckRequest req;
  grpc::ByteBuffer bytes(*request);  // Deserialize consumes its buffer
  if (!grpc::SerializationTraits<v1::CheckRequest>::Deserialize(&bytes, &req).ok()) {
    // (gRPC's own answer, had it parsed for us, would be UNIMPLEMENTED.)
    finish(absl::InvalidArgumentError("request: not a crm.consent.v1.CheckRequest"), {});
    return reactor;
  }
  std::string subject;
  absl::Status valid = [&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(AuthorizeFor(ctx, d_.verifier, kCheck, req.subject_id()).status());
    CRM_ASSIGN_OR_RETURN(subject, base::CanonicalUuid("subject_id", req.subject_id()));
    return ValidatePurposeId("purpose_id", req.purpose_id());
  }();
  if (!valid.ok()) {
    finish(valid, {});
    return reactor;
  }
  // Decided from PostgreSQL on a thread of slow_checks_ (the cache asked
  // first unless it was already).
  auto decide_slowly = [this, finish, purpose_id = req.purpose_id(), subject](bool ask_cache) {
    slow_checks_.Run([this, finish, purpose_id, subject, ask_cache] {
      v1::CheckResponse resp;
      google::protobuf::RepeatedPtrField<v1::Decision> decisions;
      absl::Status s = Decide(purpose_id, {subject}, decisions, ask_cache);
      if (s.ok() && decisions.size() != 1) s = absl::InternalError("check: no decision");
      if (s.ok()) resp.mutable_decision()->Swap(&decisions[0]);
      finish(s, resp);
    });
  };
  std::shared_ptr<const v1::Purpose> purpose = KnownPurpose(req.purpose_id());
  if (d_.cache == nullptr || purpose == nullptr) {
    decide_slowly(/*ask_cache=*/true);
    return reactor;
  }
  d_.cache->GetAsync(subject, req.purpose_id(),
                     [this, finish, subject, purpose,
                      decide_slowly](std::optional<ConsentStore::Standing> standing) {
                       if (!standing.has_value()) {
                         decide_slowly(/*ask_cache=*/false);
                         return;
                       }
                       v1::CheckResponse resp;
                       *resp.mutable_decision() =
                           DecisionFor(*purpose, *standing, subject, d_.clock.Now());
                       finish(absl::OkStatus(), resp);
                     });
  return reactor;
}

grpc::Status ConsentService::BatchCheck(Ctx* ctx, const v1::BatchCheckRequest* req,
                                        v1::BatchCheckResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(Authorize(ctx, d_.verifier, kCheck).status());
    CRM_RETURN_IF_ERROR(ValidatePurposeId("purpose_id", req->purpose_id()));
    if (req->subject_ids_size() > kMaxBatchCheck) {
      return absl::InvalidArgumentError("subject_ids: at most 10,000");
    }
    std::vector<std::string> subjects;
    subjects.reserve(req->subject_ids_size());
    for (int i = 0; i < req->subject_ids_size(); ++i) {
      absl::StatusOr<std::string> id = base::CanonicalUuid("subject_ids", req->subject_ids(i));
      if (!id.ok()) {  // named with its index (built only now: 10,000 calls)
        return base::CanonicalUuid(absl::StrCat("subject_ids[", i, "]"), req->subject_ids(i))
            .status();
      }
      subjects.push_back(*std::move(id));
    }
    if (!subjects.empty()) {
      CRM_RETURN_IF_ERROR(Decide(req->purpose_id(), subjects, *resp->mutable_decisions()));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::string>> SuppressionHashes(
    const crypto::BlindIndexer& indexer, absl::string_view field,
    const google::protobuf::RepeatedPtrField<std::string>& addresses, int max) {
  if (addresses.size() > max) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", max));
  }
  std::vector<std::string> out;
  out.reserve(addresses.size());
  for (int i = 0; i < addresses.size(); ++i) {
    const std::string normalized = base::NormalizeEmail(addresses[i]);
    CRM_RETURN_IF_ERROR(base::ValidateEmail(absl::StrCat(field, "[", i, "]"), normalized));
    out.push_back(indexer.Raw(normalized));
  }
  return out;
}

grpc::Status ConsentService::CheckSuppression(Ctx* ctx, const v1::CheckSuppressionRequest* req,
                                              v1::CheckSuppressionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(Authorize(ctx, d_.verifier, kCheck).status());
    if (d_.suppression == nullptr) {
      return absl::FailedPreconditionError("the suppression list is not configured");
    }
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> hashes,
                         SuppressionHashes(*d_.suppression, "email_addresses",
                                           req->email_addresses(), kMaxBatchCheck));
    return d_.db.WithConnection([&](pqxx::connection_base& c) -> absl::Status {
      pqxx::nontransaction tx(c);
      CRM_ASSIGN_OR_RETURN(std::vector<bool> suppressed, ConsentStore::Suppressed(tx, hashes));
      resp->Clear();
      for (bool b : suppressed) resp->add_suppressed(b);
      return absl::OkStatus();
    });
  });
}

grpc::Status ConsentService::GetHistory(Ctx* ctx, const v1::GetHistoryRequest* req,
                                        v1::GetHistoryResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, AuthorizeFor(ctx, d_.verifier, kRead, req->subject_id()));
    CRM_ASSIGN_OR_RETURN(const std::string subject,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(std::vector<v1::LedgerEntry> entries,
                           ConsentStore::History(tx, subject));
      const int64_t broken = FirstBroken(entries);
      resp->set_chain_intact(broken == 0);
      resp->set_first_broken_sequence(broken);
      for (v1::LedgerEntry& e : entries) *resp->add_entries() = std::move(e);
      return d_.audit.Enqueue(tx, AuditEvent(*ctx, *caller, "consent.history.read", subject));
    });
  });
}

grpc::Status ConsentService::SetRestriction(Ctx* ctx, const v1::SetRestrictionRequest* req,
                                            v1::SetRestrictionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, Authorize(ctx, d_.verifier, kWrite));
    CRM_ASSIGN_OR_RETURN(const std::string subject,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    std::vector<std::string> purposes;
    int64_t invalidation = 0;
    absl::Status s = d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(const bool changed, ConsentStore::SetRestricted(
                                                   tx, subject, req->restricted(), d_.clock.Now()));
      resp->set_changed(changed);
      if (!changed) return absl::OkStatus();
      CRM_ASSIGN_OR_RETURN(purposes, ConsentStore::PurposeIds(tx));
      if (d_.cache != nullptr) {
        CRM_ASSIGN_OR_RETURN(invalidation, d_.cache->Pending(tx, subject, purposes));
      }
      return d_.audit.Enqueue(
          tx, AuditEvent(*ctx, *caller,
                         req->restricted() ? "consent.restrict" : "consent.unrestrict", subject));
    });
    if (s.ok() && resp->changed() && d_.cache != nullptr) {
      d_.cache->Committed(d_.db, invalidation, subject, purposes);
    }
    return s;
  });
}

grpc::Status ConsentService::ListReconsent(Ctx* ctx, const v1::ListReconsentRequest* req,
                                           v1::ListReconsentResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(Authorize(ctx, d_.verifier, kRead).status());
    CRM_RETURN_IF_ERROR(ValidatePurposeId("purpose_id", req->purpose_id()));
    if (req->within_days() < 0 || req->within_days() > 3650) {
      return absl::InvalidArgumentError("within_days: 0 .. 3650");
    }
    if (req->page_size() < 0 || req->page_size() > 1000) {
      return absl::InvalidArgumentError("page_size: 0 (100) .. 1,000");
    }
    const int size = req->page_size() == 0 ? 100 : req->page_size();
    // Page tokens: web-safe base64 of "r1|<expires µs>|<subject id>|<purpose>|<days>".
    const std::string query = absl::StrCat(req->purpose_id(), "|", req->within_days());
    std::optional<ConsentStore::Lapsing> after;
    if (!req->page_token().empty()) {
      std::string raw;
      std::vector<std::string> parts;
      if (req->page_token().size() <= 512 && absl::WebSafeBase64Unescape(req->page_token(), &raw)) {
        parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
      }
      int64_t micros = 0;
      if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &micros) || !base::IsUuid(parts[1]) ||
          parts[2] != query) {
        return absl::InvalidArgumentError("page_token: not a token of this listing");
      }
      after =
          ConsentStore::Lapsing{.subject_id = parts[1], .expires_at = absl::FromUnixMicros(micros)};
    }
    const absl::Time until = d_.clock.Now() + absl::Hours(24) * req->within_days();
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_RETURN_IF_ERROR(PurposeOf(tx, req->purpose_id()).status());
      CRM_ASSIGN_OR_RETURN(
          std::vector<ConsentStore::Lapsing> rows,
          ConsentStore::ListLapsing(tx, req->purpose_id(), until, after, size + 1));
      const bool more = rows.size() > static_cast<size_t>(size);
      if (more) rows.resize(size);
      for (const ConsentStore::Lapsing& l : rows) {
        v1::ReconsentEntry* e = resp->add_entries();
        e->set_subject_id(l.subject_id);
        rpc::SetTime(l.expires_at, e->mutable_expires_at());
      }
      if (more) {
        resp->set_next_page_token(absl::WebSafeBase64Escape(absl::StrCat(
            absl::ToUnixMicros(rows.back().expires_at), "|", rows.back().subject_id, "|", query)));
      }
      return absl::OkStatus();
    });
  });
}

grpc::Status ConsentService::GetReceipt(Ctx* ctx, const v1::GetReceiptRequest* req,
                                        v1::GetReceiptResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(Authorize(ctx, d_.verifier, kRead).status());
    CRM_ASSIGN_OR_RETURN(const std::string subject,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    if (req->sequence() <= 0) return absl::InvalidArgumentError("sequence: must be positive");
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(std::string receipt,
                           ConsentStore::Receipt(tx, subject, req->sequence()));
      if (receipt.empty()) return absl::NotFoundError("receipt not found");
      resp->set_receipt_jws(std::move(receipt));
      return absl::OkStatus();
    });
  });
}

grpc::Status ConsentService::GetReceiptKeys(Ctx* ctx, const v1::GetReceiptKeysRequest*,
                                            v1::GetReceiptKeysResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(Authorize(ctx, d_.verifier, kRead).status());
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      CRM_ASSIGN_OR_RETURN(auto keys, ConsentStore::ReceiptKeys(tx));
      for (const auto& [kid, raw] : keys) {
        v1::ReceiptKey* k = resp->add_keys();
        k->set_kid(kid);
        k->set_public_key(auth::Base64UrlEncode(raw));
      }
      return absl::OkStatus();
    });
  });
}

absl::Status AllowConsentMethods(rpc::AccessPolicy& policy) {
  return policy.AllowService(v1::Consent::service_full_name()).Validate();
}

}  // namespace crm::consent
