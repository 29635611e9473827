#include "services/erasure/erasure_service.h"

#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/aead.h"
#include "libs/rpc/call_auth.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"
#include "services/erasure/erasure_store.h"

namespace crm::erasure {
namespace {

using rpc::Handle;
constexpr char kDsrManage[] = "dsr.manage";

crm::audit::v1::Event Event(grpc::ServerContext& ctx, const auth::Principal& who,
                            absl::string_view action, const v1::ErasureRequest& r) {
  crm::audit::v1::Event e;
  e.set_action(std::string(action));
  e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
  e.set_resource(absl::StrCat("erasure/", r.request_id()));
  e.set_subject_id(r.subject_id());
  e.mutable_actor()->set_user_id(who.user_id);
  e.mutable_actor()->set_session_id(who.session_id);
  e.mutable_actor()->set_service_identity(rpc::PeerIdentity(ctx));
  e.set_request_id(rpc::RequestId(ctx));
  return e;
}

absl::Status NotFound() { return absl::NotFoundError("request_id: not found"); }

// dsr.manage, or a data subject's own token (subject.self), whom the
// handlers then hold to their own requests (MaySee, SubjectMay).
absl::StatusOr<std::shared_ptr<const auth::Principal>> StaffOrSubject(
    const grpc::ServerContextBase& ctx, auth::TokenVerifier& verifier) {
  CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthenticateCall(ctx, verifier));
  if (caller->Has(kDsrManage) || caller->Has(auth::kSubjectSelf)) return caller;
  return absl::PermissionDeniedError(absl::StrCat("needs permission ", kDsrManage));
}

bool IsStaff(const auth::Principal& caller) { return caller.Has(kDsrManage); }

// Staff see every request; a subject their own (others are NOT_FOUND to them).
bool MaySee(const auth::Principal& caller, const v1::ErasureRequest& r) {
  return IsStaff(caller) || caller.IsSubject(r.subject_id());
}

// What a subject sees of their own request: not the staff member who
// submitted it, nor the operators' notes on what needs attention.
void ForSubject(const auth::Principal& caller, v1::ErasureRequest& r) {
  if (IsStaff(caller)) return;
  r.clear_requester();
  r.clear_attention();
}

// A subject submits for themselves only, by subject_id.
absl::Status SubjectMay(const auth::Principal& caller, bool by_email, const std::string& subject) {
  if (IsStaff(caller)) return absl::OkStatus();
  if (by_email) return absl::PermissionDeniedError("email: a subject submits by their subject_id");
  if (subject.empty()) return absl::InvalidArgumentError("subject_id: required");
  if (!caller.IsSubject(absl::AsciiStrToLower(subject))) {
    return absl::PermissionDeniedError("subject_id: a subject may submit only for themselves");
  }
  return absl::OkStatus();
}

// Page tokens: "<due_at unix micros>.<request id>" of the page's last row.
absl::StatusOr<std::optional<ErasureStore::Cursor>> CursorOf(const std::string& token) {
  if (token.empty()) return std::nullopt;
  const std::vector<std::string> parts = absl::StrSplit(token, '.');
  int64_t micros = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &micros) || !base::IsUuid(parts[1])) {
    return absl::InvalidArgumentError("page_token: not a token of ours");
  }
  return ErasureStore::Cursor{absl::FromUnixMicros(micros), parts[1]};
}

}  // namespace

absl::Time AddMonths(absl::Time t, int months) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilSecond s = absl::ToCivilSecond(t, utc);
  const absl::CivilMonth target = absl::CivilMonth(s) + months;
  // The month's last day: the day before the next month's first.
  const int last_day = (absl::CivilDay(target + 1) - 1).day();
  const absl::CivilSecond due(target.year(), target.month(), std::min(s.day(), last_day), s.hour(),
                              s.minute(), s.second());
  return absl::FromCivil(due, utc) + (t - absl::FromCivil(s, utc));  // keep sub-seconds
}

ErasureService::ErasureService(ErasureDeps deps) : d_(std::move(deps)) {
  if (d_.record == nullptr) d_.record = ProcessingRecord::Unconfigured();
}

absl::StatusOr<std::string> ErasureService::Subject(const std::string* subject_id,
                                                    const std::string* email) {
  if (email != nullptr) {
    CRM_RETURN_IF_ERROR(base::ValidateEmail("email", *email));
    if (d_.lookup == nullptr) {
      return absl::FailedPreconditionError(
          "email: submitting by address needs contacts (setting contacts_addr)");
    }
    CRM_ASSIGN_OR_RETURN(std::vector<std::string> found, d_.lookup->ByEmail(*email));
    if (found.empty()) return absl::NotFoundError("email: no person has this address");
    if (found.size() > 1) {
      return absl::FailedPreconditionError(
          "email: more than one person has this address; submit by subject_id");
    }
    return base::CanonicalUuid("subject_id", found[0]);
  }
  return base::CanonicalUuid("subject_id", subject_id == nullptr ? "" : *subject_id);
}

void ErasureService::Created(const v1::SubmitErasureResponse& resp) const {
  if (resp.created() && d_.on_created) d_.on_created();
}

grpc::Status ErasureService::SubmitErasure(Ctx* ctx, const v1::SubmitErasureRequest* req,
                                           v1::SubmitErasureResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, StaffOrSubject(*ctx, d_.verifier));
    const bool by_email = req->subject_case() == v1::SubmitErasureRequest::kEmail;
    CRM_RETURN_IF_ERROR(SubjectMay(*caller, by_email, req->subject_id()));
    CRM_ASSIGN_OR_RETURN(const std::string subject,
                         Subject(&req->subject_id(), by_email ? &req->email() : nullptr));
    v1::ErasureReason reason = req->reason();
    if (!IsStaff(*caller) && reason == v1::ERASURE_REASON_UNSPECIFIED) {
      reason = v1::ERASURE_REASON_SUBJECT_REQUEST;
    }
    if (reason == v1::ERASURE_REASON_UNSPECIFIED || !v1::ErasureReason_IsValid(reason)) {
      return absl::InvalidArgumentError("reason: subject_request, retention or administrator");
    }
    if (!IsStaff(*caller) && reason != v1::ERASURE_REASON_SUBJECT_REQUEST) {
      return absl::PermissionDeniedError("reason: a subject's own request is subject_request");
    }
    CRM_RETURN_IF_ERROR(d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(auto stored, Open(tx, *ctx, *caller, subject, v1::KIND_ERASURE, reason));
      ForSubject(*caller, stored.first);
      *resp->mutable_request() = std::move(stored.first);
      resp->set_created(stored.second);
      return absl::OkStatus();
    }));
    Created(*resp);
    return absl::OkStatus();
  });
}

grpc::Status ErasureService::SubmitAccess(Ctx* ctx, const v1::SubmitAccessRequest* req,
                                          v1::SubmitErasureResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, StaffOrSubject(*ctx, d_.verifier));
    const bool by_email = req->subject_case() == v1::SubmitAccessRequest::kEmail;
    CRM_RETURN_IF_ERROR(SubjectMay(*caller, by_email, req->subject_id()));
    CRM_ASSIGN_OR_RETURN(const std::string subject,
                         Subject(&req->subject_id(), by_email ? &req->email() : nullptr));
    CRM_RETURN_IF_ERROR(d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(auto stored, Open(tx, *ctx, *caller, subject, v1::KIND_ACCESS,
                                             v1::ERASURE_REASON_SUBJECT_REQUEST));
      ForSubject(*caller, stored.first);
      *resp->mutable_request() = std::move(stored.first);
      resp->set_created(stored.second);
      return absl::OkStatus();
    }));
    Created(*resp);
    return absl::OkStatus();
  });
}

grpc::Status ErasureService::GetAccessExport(Ctx* ctx, const v1::GetAccessExportRequest* req,
                                             grpc::ServerWriter<v1::AccessExportChunk>* writer) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, StaffOrSubject(*ctx, d_.verifier));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("request_id", req->request_id()));
    if (d_.ring == nullptr) return absl::UnavailableError("erasure: no KEK ring configured");
    // The request and its key; the download is audited before a byte goes.
    std::optional<v1::ErasureRequest> r;
    std::optional<std::string> wrapped;
    int64_t parts = 0;
    CRM_RETURN_IF_ERROR(d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(r, ErasureStore::Get(tx, id, false, false));
      if (!r.has_value() || r->kind() != v1::KIND_ACCESS || !MaySee(*caller, *r)) {
        return NotFound();
      }
      if (r->state() == v1::STATE_EXPIRED) {
        return absl::FailedPreconditionError("request_id: the export has expired and is deleted");
      }
      CRM_ASSIGN_OR_RETURN(ErasureStore::Secrets secrets, ErasureStore::GetSecrets(tx, id));
      wrapped = std::move(secrets.export_key);
      CRM_ASSIGN_OR_RETURN(parts, ErasureStore::CountExportParts(tx, id));
      if (r->state() != v1::STATE_COMPLETED || !wrapped.has_value()) {
        return absl::FailedPreconditionError("request_id: the export is not ready yet");
      }
      return d_.audit.Enqueue(tx, Event(*ctx, *caller, "erasure.access.downloaded", *r));
    }));
    CRM_ASSIGN_OR_RETURN(const crypto::SecretBytes key,
                         d_.ring->UnwrapSecret(*wrapped, ExportKeyAad(id)));
    auto send = [&](std::string data) -> absl::Status {
      v1::AccessExportChunk chunk;
      chunk.set_data(std::move(data));
      if (!writer->Write(chunk)) return absl::CancelledError("the client went away");
      return absl::OkStatus();
    };
    CRM_RETURN_IF_ERROR(send(d_.record->Head(*r, rpc::ToTime(r->completed_at()))));
    // One part at a time: memory stays at one chunk, whatever the export's size.
    std::string service;
    int seq = -1;
    bool first = true;
    for (;;) {
      std::optional<ErasureStore::ExportPart> part;
      CRM_RETURN_IF_ERROR(d_.db.Transact(
          [&](pqxx::work& tx) -> absl::Status {
            CRM_ASSIGN_OR_RETURN(part, ErasureStore::NextExportPart(tx, id, service, seq));
            return absl::OkStatus();
          },
          {.read_only = true}));
      if (!part.has_value()) break;
      CRM_ASSIGN_OR_RETURN(
          std::string text,
          crypto::Open(key, part->sealed, ExportPartAad(id, part->service, part->seq)));
      if (part->seq == 0 && !first) text.insert(0, ",");
      first = false;
      service = part->service;
      seq = part->seq;
      CRM_RETURN_IF_ERROR(send(std::move(text)));
      --parts;
    }
    // Parts are read one transaction each: an export that expired meanwhile
    // must not end as a complete-looking document.
    if (parts != 0) {
      return absl::AbortedError("request_id: the export expired during the download");
    }
    return send(std::string(ProcessingRecord::kTail));
  });
}

absl::StatusOr<std::pair<v1::ErasureRequest, bool>> ErasureService::Open(
    pqxx::transaction_base& tx, Ctx& ctx, const auth::Principal& caller, const std::string& subject,
    v1::RequestKind kind, v1::ErasureReason reason) {
  const absl::Time now = d_.clock.Now();
  v1::ErasureRequest r;
  r.set_request_id(base::NewUuid());
  r.set_subject_id(subject);
  r.set_kind(kind);
  r.set_reason(reason);
  r.set_requester(caller.user_id);
  rpc::SetTime(now, r.mutable_received_at());
  rpc::SetTime(now + d_.cancel_window, r.mutable_not_before());
  rpc::SetTime(AddMonths(now, 1), r.mutable_due_at());
  CRM_ASSIGN_OR_RETURN(auto stored, ErasureStore::Insert(tx, r, d_.targets));
  if (stored.second) {
    CRM_RETURN_IF_ERROR(d_.audit.Enqueue(
        tx, Event(ctx, caller,
                  kind == v1::KIND_ACCESS ? "erasure.access.received" : "erasure.request.received",
                  stored.first)));
  }
  return stored;
}

grpc::Status ErasureService::GetErasure(Ctx* ctx, const v1::GetErasureRequest* req,
                                        v1::GetErasureResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, StaffOrSubject(*ctx, d_.verifier));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("request_id", req->request_id()));
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(auto r, ErasureStore::Get(tx, id, true, false));
          if (!r.has_value() || !MaySee(*caller, *r)) return NotFound();
          ForSubject(*caller, *r);
          *resp->mutable_request() = *std::move(r);
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status ErasureService::ListErasures(Ctx* ctx, const v1::ListErasuresRequest* req,
                                          v1::ListErasuresResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, StaffOrSubject(*ctx, d_.verifier));
    std::string subject = caller->user_id;
    if (IsStaff(*caller)) {
      subject.clear();
      if (!req->subject_id().empty()) {
        CRM_ASSIGN_OR_RETURN(subject, base::CanonicalUuid("subject_id", req->subject_id()));
      }
    }
    if (!v1::State_IsValid(req->state())) return absl::InvalidArgumentError("state: unknown");
    if (!v1::RequestKind_IsValid(req->kind())) return absl::InvalidArgumentError("kind: unknown");
    if (req->unfinished() && req->state() != v1::STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError("unfinished: not with state");
    }
    const int size = req->page_size() == 0 ? 100 : req->page_size();
    if (size < 1 || size > 500) return absl::InvalidArgumentError("page_size: 1 .. 500");
    CRM_ASSIGN_OR_RETURN(auto after, CursorOf(req->page_token()));
    absl::Time due_before = absl::InfiniteFuture();
    if (req->has_due_before()) {
      CRM_ASSIGN_OR_RETURN(due_before, rpc::GetTime("due_before", req->due_before()));
    }
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          resp->Clear();
          CRM_ASSIGN_OR_RETURN(std::vector<v1::ErasureRequest> page,
                               ErasureStore::List(tx, req->state(), due_before, after, size + 1,
                                                  req->unfinished(), req->kind(), subject));
          if (static_cast<int>(page.size()) > size) {
            page.pop_back();
            resp->set_next_page_token(
                absl::StrCat(absl::ToUnixMicros(rpc::ToTime(page.back().due_at())), ".",
                             page.back().request_id()));
          }
          for (v1::ErasureRequest& r : page) {
            ForSubject(*caller, r);
            *resp->add_requests() = std::move(r);
          }
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status ErasureService::CancelErasure(Ctx* ctx, const v1::CancelErasureRequest* req,
                                           v1::CancelErasureResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, StaffOrSubject(*ctx, d_.verifier));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("request_id", req->request_id()));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(auto r, ErasureStore::Get(tx, id, false, true));
      if (!r.has_value() || !MaySee(*caller, *r)) return NotFound();
      // A subject may withdraw their own request, not one staff opened (a
      // retention erasure the law requires, an administrator's).
      if (!IsStaff(*caller) && (r->reason() != v1::ERASURE_REASON_SUBJECT_REQUEST ||
                                r->requester() != caller->user_id)) {
        return absl::PermissionDeniedError(
            "request_id: a subject may cancel only a request they made themselves");
      }
      if (r->state() == v1::STATE_CANCELLED) {
        ForSubject(*caller, *r);
        *resp->mutable_request() = *std::move(r);
        return absl::OkStatus();  // idempotent
      }
      CRM_ASSIGN_OR_RETURN(const bool cancelled, ErasureStore::Cancel(tx, id));
      if (!cancelled) {
        return absl::FailedPreconditionError(
            "request_id: erasing has begun; a request can be cancelled only before it is planned");
      }
      CRM_ASSIGN_OR_RETURN(r, ErasureStore::Get(tx, id, true, false));
      CRM_RETURN_IF_ERROR(
          d_.audit.Enqueue(tx, Event(*ctx, *caller, "erasure.request.cancelled", *r)));
      ForSubject(*caller, *r);
      *resp->mutable_request() = *r;
      return absl::OkStatus();
    });
  });
}

grpc::Status ErasureService::ExtendErasure(Ctx* ctx, const v1::ExtendErasureRequest* req,
                                           v1::ExtendErasureResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kDsrManage));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("request_id", req->request_id()));
    if (req->months() < 1 || req->months() > 2) {
      return absl::InvalidArgumentError("months: 1 or 2");
    }
    CRM_RETURN_IF_ERROR(base::ValidateText("reason", req->reason(), 1, 500));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(auto r, ErasureStore::Get(tx, id, false, true));
      if (!r.has_value()) return NotFound();
      if (!IsOpen(r->state()) && r->state() != v1::STATE_NEEDS_ATTENTION) {
        return absl::FailedPreconditionError("request_id: the request is finished");
      }
      const int months = r->extended_months() + req->months();
      if (months > 2) {
        return absl::FailedPreconditionError(
            absl::StrCat("months: the due date can move by two months in all; ",
                         r->extended_months(), " already used"));
      }
      CRM_RETURN_IF_ERROR(ErasureStore::Extend(tx, id,
                                               AddMonths(rpc::ToTime(r->received_at()), 1 + months),
                                               months, req->reason(), d_.clock.Now()));
      CRM_ASSIGN_OR_RETURN(r, ErasureStore::Get(tx, id, true, false));
      *resp->mutable_request() = *r;
      return d_.audit.Enqueue(tx, Event(*ctx, *caller, "erasure.request.extended", *r));
    });
  });
}

grpc::Status ErasureService::GetCertificate(Ctx* ctx, const v1::GetCertificateRequest* req,
                                            v1::GetCertificateResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, StaffOrSubject(*ctx, d_.verifier));
    CRM_ASSIGN_OR_RETURN(const std::string id,
                         base::CanonicalUuid("request_id", req->request_id()));
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(auto r, ErasureStore::Get(tx, id, false, false));
          if (!r.has_value() || !MaySee(*caller, *r)) return NotFound();
          if (r->kind() == v1::KIND_ACCESS) {
            return absl::FailedPreconditionError(
                "request_id: an access request has an export (GetAccessExport), not a certificate");
          }
          CRM_ASSIGN_OR_RETURN(auto cert, ErasureStore::GetCertificate(tx, id));
          if (!cert.has_value()) {
            return absl::FailedPreconditionError(
                "request_id: no certificate until the request is completed");
          }
          resp->set_certificate(cert->first);
          resp->set_signature(cert->second);
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status ErasureService::ReapplyErasures(Ctx* ctx, const v1::ReapplyErasuresRequest* req,
                                             v1::ReapplyErasuresResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kDsrManage));
    if (!req->has_completed_since()) {
      return absl::InvalidArgumentError("completed_since: required");
    }
    CRM_ASSIGN_OR_RETURN(const absl::Time since,
                         rpc::GetTime("completed_since", req->completed_since()));
    resp->Clear();
    // In pages, a transaction each: a restore may follow many erasures.
    std::string after;
    for (;;) {
      std::vector<std::string> page;
      int submitted = 0, open = 0;
      CRM_RETURN_IF_ERROR(d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
        submitted = open = 0;  // the transaction may run again
        CRM_ASSIGN_OR_RETURN(page, ErasureStore::CompletedSubjects(tx, since, after, 500));
        for (const std::string& subject : page) {
          CRM_ASSIGN_OR_RETURN(auto stored, Open(tx, *ctx, *caller, subject, v1::KIND_ERASURE,
                                                 v1::ERASURE_REASON_ADMINISTRATOR));
          (stored.second ? submitted : open) += 1;
        }
        return absl::OkStatus();
      }));
      resp->set_submitted(resp->submitted() + submitted);
      resp->set_already_open(resp->already_open() + open);
      if (page.size() < 500) return absl::OkStatus();
      after = page.back();
    }
  });
}

grpc::Status ErasureService::GetVerificationKey(Ctx* ctx, const v1::GetVerificationKeyRequest*,
                                                v1::GetVerificationKeyResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(rpc::AuthenticateCall(*ctx, d_.verifier).status());
    resp->set_public_key_pem(d_.certificate_key.ToPem());
    return absl::OkStatus();
  });
}

}  // namespace crm::erasure
