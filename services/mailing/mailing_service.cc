#include "services/mailing/mailing_service.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/rpc/call_auth.h"
#include "libs/rpc/handler.h"
#include "libs/rpc/peer.h"
#include "libs/rpc/request_id.h"
#include "services/mailing/mailing_store.h"
#include "services/mailing/render.h"
#include "services/mailing/transactional.h"

namespace crm::mailing {
namespace {

namespace cv1 = crm::consent::v1;
using crm::audit::v1::Event;
using rpc::Handle;

constexpr char kSend[] = "mailing.send";
constexpr char kManage[] = "mailing.manage";

absl::Status ValidateId(absl::string_view field, absl::string_view id) {
  return base::ValidateName(field, id, 64);
}

// An audit event by `who` (a principal) or, for link calls, by the subject.
Event AuditEvent(grpc::ServerContext& ctx, const auth::Principal* who, absl::string_view action,
                 absl::string_view resource, absl::string_view subject_id = "") {
  Event e;
  e.set_action(std::string(action));
  e.set_outcome(crm::audit::v1::OUTCOME_SUCCESS);
  e.set_resource(std::string(resource));
  if (!subject_id.empty()) e.set_subject_id(std::string(subject_id));
  if (who != nullptr) {
    e.mutable_actor()->set_user_id(who->user_id);
    e.mutable_actor()->set_session_id(who->session_id);
  }
  e.mutable_actor()->set_service_identity(rpc::PeerIdentity(ctx));
  e.set_request_id(rpc::RequestId(ctx));
  return e;
}

absl::Status ValidateLanguage(absl::string_view lang) {
  if (lang.size() < 2 || lang.size() > 3 ||
      !std::all_of(lang.begin(), lang.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
    return absl::InvalidArgumentError("language: a 2- or 3-letter lower-case code");
  }
  return absl::OkStatus();
}

absl::Status ValidateEvidence(absl::string_view address, absl::string_view agent) {
  if (address.size() > 64) return absl::InvalidArgumentError("source_address: at most 64 bytes");
  CRM_RETURN_IF_ERROR(base::ValidateUtf8("user_agent", agent));
  if (agent.size() > 512) return absl::InvalidArgumentError("user_agent: at most 512 bytes");
  return absl::OkStatus();
}

cv1::Statement StatementFor(const v1::MailingList& list, const std::string& subject,
                            cv1::Method method, const std::string& source) {
  cv1::Statement s;
  s.set_subject_id(subject);
  s.set_purpose_id(list.purpose_id());
  s.set_method(method);
  s.set_source(source);
  return s;
}

absl::Status NotFound(absl::string_view what) {
  return absl::NotFoundError(absl::StrCat(what, ": not found"));
}

// A page token: the last subject id of the page, checked as a UUID.
absl::StatusOr<std::string> AfterOf(const std::string& token) {
  if (token.empty()) return std::string();
  if (!base::IsUuid(token)) return absl::InvalidArgumentError("page_token: not a token of ours");
  return absl::AsciiStrToLower(token);
}

}  // namespace

grpc::Status MailingService::CreateList(Ctx* ctx, const v1::CreateListRequest* req,
                                        v1::CreateListResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kManage));
    const v1::MailingList& l = req->list();
    CRM_RETURN_IF_ERROR(ValidateId("list.list_id", l.list_id()));
    CRM_RETURN_IF_ERROR(ValidateId("list.purpose_id", l.purpose_id()));
    CRM_RETURN_IF_ERROR(base::ValidateText("list.description", l.description(), 0, 500));
    if (l.opt_in() != v1::OPT_IN_SINGLE && l.opt_in() != v1::OPT_IN_DOUBLE) {
      return absl::InvalidArgumentError("list.opt_in: single or double");
    }
    CRM_ASSIGN_OR_RETURN(const bool exists, d_.consent.PurposeExists(l.purpose_id()));
    if (!exists) return absl::InvalidArgumentError("list.purpose_id: unknown consent purpose");
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_RETURN_IF_ERROR(MailingStore::InsertList(tx, l, d_.clock.Now()));
      CRM_ASSIGN_OR_RETURN(std::optional<v1::MailingList> stored,
                           MailingStore::GetList(tx, l.list_id()));
      if (!stored.has_value()) return absl::InternalError("list vanished");
      *resp->mutable_list() = *std::move(stored);
      return d_.audit.Enqueue(tx, AuditEvent(*ctx, caller.get(), "mailing.list.create",
                                             absl::StrCat("lists/", l.list_id())));
    });
  });
}

grpc::Status MailingService::ListLists(Ctx* ctx, const v1::ListListsRequest*,
                                       v1::ListListsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(rpc::AuthorizeCall(*ctx, d_.verifier, kManage).status());
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          resp->Clear();
          CRM_ASSIGN_OR_RETURN(std::vector<v1::MailingList> lists, MailingStore::ListLists(tx));
          for (v1::MailingList& l : lists) *resp->add_lists() = std::move(l);
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status MailingService::Subscribe(Ctx* ctx, const v1::SubscribeRequest* req,
                                       v1::SubscribeResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kSend));
    CRM_RETURN_IF_ERROR(ValidateId("list_id", req->list_id()));
    CRM_ASSIGN_OR_RETURN(const std::string subject,
                         base::CanonicalUuid("subject_id", req->subject_id()));
    CRM_RETURN_IF_ERROR(ValidateId("source", req->source()));
    if (req->notice_version().empty()) {
      return absl::InvalidArgumentError("notice_version: required (the notice the subject saw)");
    }
    CRM_RETURN_IF_ERROR(ValidateId("notice_version", req->notice_version()));
    const std::string language = req->language().empty() ? "en" : req->language();
    CRM_RETURN_IF_ERROR(ValidateLanguage(language));
    CRM_RETURN_IF_ERROR(ValidateEvidence(req->source_address(), req->user_agent()));

    std::optional<v1::MailingList> list;
    std::optional<v1::Subscription> existing;
    CRM_RETURN_IF_ERROR(d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(list, MailingStore::GetList(tx, req->list_id()));
          if (!list.has_value()) return NotFound("list_id");
          CRM_ASSIGN_OR_RETURN(existing,
                               MailingStore::GetSubscription(tx, list->list_id(), subject, false));
          return absl::OkStatus();
        },
        {.read_only = true}));
    if (existing.has_value() && (existing->state() == v1::SUBSCRIPTION_STATE_ACTIVE ||
                                 existing->state() == v1::SUBSCRIPTION_STATE_PENDING)) {
      *resp->mutable_subscription() = *existing;
      resp->set_changed(false);
      return absl::OkStatus();
    }
    const bool single = list->opt_in() == v1::OPT_IN_SINGLE;
    if (single) {
      // The consent first: a grant repeated by a retry records nothing new.
      cv1::Statement s = StatementFor(*list, subject, cv1::METHOD_API, req->source());
      s.set_notice_version(req->notice_version());
      s.set_language(language);
      s.set_source_address(req->source_address());
      s.set_user_agent(req->user_agent());
      CRM_RETURN_IF_ERROR(d_.consent.Grant(s));
    }
    const absl::Time now = d_.clock.Now();
    v1::Subscription sub;
    sub.set_list_id(list->list_id());
    sub.set_subject_id(subject);
    sub.set_source(req->source());
    sub.set_state(single ? v1::SUBSCRIPTION_STATE_ACTIVE : v1::SUBSCRIPTION_STATE_PENDING);
    rpc::SetTime(now, sub.mutable_created_at());
    if (single) rpc::SetTime(now, sub.mutable_confirmed_at());
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_RETURN_IF_ERROR(MailingStore::PutSubscription(
          tx, sub, single ? "" : req->notice_version(), single ? "" : language));
      if (!single) {
        CRM_RETURN_IF_ERROR(MailingStore::QueueConfirmation(tx, list->list_id(), subject, now));
      }
      *resp->mutable_subscription() = sub;
      resp->set_changed(true);
      // A double opt-in's confirmation mail goes out through the queue.
      return d_.audit.Enqueue(
          tx,
          AuditEvent(*ctx, caller.get(), single ? "mailing.subscribe" : "mailing.subscribe.pending",
                     absl::StrCat("lists/", list->list_id()), subject));
    });
  });
}

grpc::Status MailingService::ConfirmSubscription(Ctx* ctx,
                                                 const v1::ConfirmSubscriptionRequest* req,
                                                 v1::ConfirmSubscriptionResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(LinkClaims claims, d_.tokens.Verify(TokenKind::kConfirm, req->token(),
                                                             d_.clock.Now(), d_.confirm_max_age));
    CRM_RETURN_IF_ERROR(ValidateEvidence(req->source_address(), req->user_agent()));
    std::optional<v1::MailingList> list;
    std::optional<v1::Subscription> existing;
    std::pair<std::string, std::string> notice;
    CRM_RETURN_IF_ERROR(d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(list, MailingStore::GetList(tx, claims.list_id));
          if (!list.has_value()) return absl::InvalidArgumentError("token: the list is gone");
          CRM_ASSIGN_OR_RETURN(existing, MailingStore::GetSubscription(tx, list->list_id(),
                                                                       claims.subject_id, false));
          CRM_ASSIGN_OR_RETURN(notice,
                               MailingStore::PendingNotice(tx, list->list_id(), claims.subject_id));
          return absl::OkStatus();
        },
        {.read_only = true}));
    if (!existing.has_value() || existing->state() == v1::SUBSCRIPTION_STATE_UNSUBSCRIBED) {
      return absl::FailedPreconditionError("token: no subscription waits for confirmation");
    }
    if (existing->state() == v1::SUBSCRIPTION_STATE_ACTIVE) {
      *resp->mutable_subscription() = *existing;
      return absl::OkStatus();
    }
    cv1::Statement s = StatementFor(*list, claims.subject_id, cv1::METHOD_EMAIL_LINK, "mailing");
    s.set_notice_version(notice.first);
    s.set_language(notice.second);
    s.set_source_address(req->source_address());
    s.set_user_agent(req->user_agent());
    CRM_RETURN_IF_ERROR(d_.consent.Grant(s));
    v1::Subscription sub = *existing;
    sub.set_state(v1::SUBSCRIPTION_STATE_ACTIVE);
    rpc::SetTime(d_.clock.Now(), sub.mutable_confirmed_at());
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_RETURN_IF_ERROR(MailingStore::PutSubscription(tx, sub, "", ""));
      *resp->mutable_subscription() = sub;
      return d_.audit.Enqueue(
          tx, AuditEvent(*ctx, nullptr, "mailing.subscribe.confirm",
                         absl::StrCat("lists/", list->list_id()), claims.subject_id));
    });
  });
}

grpc::Status MailingService::ListSubscriptions(Ctx* ctx, const v1::ListSubscriptionsRequest* req,
                                               v1::ListSubscriptionsResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(rpc::AuthorizeCall(*ctx, d_.verifier, kManage).status());
    CRM_RETURN_IF_ERROR(ValidateId("list_id", req->list_id()));
    if (!v1::SubscriptionState_IsValid(req->state())) {
      return absl::InvalidArgumentError("state: unknown");
    }
    const int size = req->page_size() == 0 ? 100 : req->page_size();
    if (size < 1 || size > 1000) return absl::InvalidArgumentError("page_size: 1 .. 1000");
    CRM_ASSIGN_OR_RETURN(const std::string after, AfterOf(req->page_token()));
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          resp->Clear();
          CRM_ASSIGN_OR_RETURN(std::optional<v1::MailingList> list,
                               MailingStore::GetList(tx, req->list_id()));
          if (!list.has_value()) return NotFound("list_id");
          CRM_ASSIGN_OR_RETURN(
              std::vector<v1::Subscription> page,
              MailingStore::ListSubscriptions(tx, req->list_id(), req->state(), after, size + 1));
          if (static_cast<int>(page.size()) > size) {
            page.pop_back();
            resp->set_next_page_token(page.back().subject_id());
          }
          for (v1::Subscription& s : page) *resp->add_subscriptions() = std::move(s);
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status MailingService::PutTemplate(Ctx* ctx, const v1::PutTemplateRequest* req,
                                         v1::PutTemplateResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kManage));
    const v1::Template& t = req->template_();
    CRM_RETURN_IF_ERROR(ValidateId("template.template_id", t.template_id()));
    CRM_ASSIGN_OR_RETURN(const absl::flat_hash_set<std::string>* usable,
                         PlaceholdersOf("template.template_id", t.template_id()));
    CRM_RETURN_IF_ERROR(ValidateTemplate(t, *usable, "template"));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(v1::Template stored,
                           MailingStore::InsertTemplate(tx, t, d_.clock.Now()));
      *resp->mutable_template_() = stored;
      return d_.audit.Enqueue(
          tx, AuditEvent(*ctx, caller.get(), "mailing.template.put",
                         absl::StrCat("templates/", t.template_id(), "/", stored.version())));
    });
  });
}

grpc::Status MailingService::GetTemplate(Ctx* ctx, const v1::GetTemplateRequest* req,
                                         v1::GetTemplateResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(rpc::AuthorizeCall(*ctx, d_.verifier, kManage).status());
    CRM_RETURN_IF_ERROR(ValidateId("template_id", req->template_id()));
    if (req->version() < 0) return absl::InvalidArgumentError("version: 0 (newest) or more");
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(std::optional<v1::Template> t,
                               MailingStore::GetTemplate(tx, req->template_id(), req->version()));
          if (!t.has_value()) return NotFound("template_id");
          *resp->mutable_template_() = *std::move(t);
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status MailingService::CreateCampaign(Ctx* ctx, const v1::CreateCampaignRequest* req,
                                            v1::CreateCampaignResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kManage));
    v1::Campaign c = req->campaign();
    CRM_RETURN_IF_ERROR(base::ValidateText("campaign.name", c.name(), 1, 200));
    CRM_RETURN_IF_ERROR(ValidateId("campaign.list_id", c.list_id()));
    CRM_RETURN_IF_ERROR(ValidateId("campaign.template_id", c.template_id()));
    CRM_ASSIGN_OR_RETURN(const absl::flat_hash_set<std::string>* usable,
                         PlaceholdersOf("campaign.template_id", c.template_id()));
    if (usable != &CampaignPlaceholders()) {
      return absl::InvalidArgumentError(
          "campaign.template_id: a transactional template cannot be a campaign's");
    }
    if (c.template_version() < 0) {
      return absl::InvalidArgumentError("campaign.template_version: 0 (newest) or more");
    }
    c.set_campaign_id(base::NewUuid());
    c.set_state(v1::CAMPAIGN_STATE_DRAFT);
    c.clear_counts();
    c.clear_send_at();
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(std::optional<v1::MailingList> list,
                           MailingStore::GetList(tx, c.list_id()));
      if (!list.has_value()) return NotFound("campaign.list_id");
      CRM_ASSIGN_OR_RETURN(std::optional<v1::Template> t,
                           MailingStore::GetTemplate(tx, c.template_id(), c.template_version()));
      if (!t.has_value()) return NotFound("campaign.template_id");
      c.set_template_version(t->version());
      CRM_RETURN_IF_ERROR(MailingStore::InsertCampaign(tx, c, d_.clock.Now()));
      CRM_ASSIGN_OR_RETURN(std::optional<v1::Campaign> stored,
                           MailingStore::GetCampaign(tx, c.campaign_id(), false));
      *resp->mutable_campaign() = *std::move(stored);
      return d_.audit.Enqueue(tx, AuditEvent(*ctx, caller.get(), "mailing.campaign.create",
                                             absl::StrCat("campaigns/", c.campaign_id())));
    });
  });
}

absl::Status MailingService::ChangeCampaign(Ctx* ctx, const std::string& id,
                                            std::initializer_list<v1::CampaignState> from,
                                            v1::CampaignState to, absl::string_view action,
                                            v1::CampaignResponse* resp) {
  CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kManage));
  CRM_ASSIGN_OR_RETURN(const std::string campaign_id, base::CanonicalUuid("campaign_id", id));
  return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::optional<v1::Campaign> c,
                         MailingStore::GetCampaign(tx, campaign_id, /*lock=*/true));
    if (!c.has_value()) return NotFound("campaign_id");
    if (std::find(from.begin(), from.end(), c->state()) == from.end()) {
      return absl::FailedPreconditionError(absl::StrCat("campaign_id: the campaign is ",
                                                        v1::CampaignState_Name(c->state()),
                                                        "; cannot ", action));
    }
    CRM_RETURN_IF_ERROR(MailingStore::SetCampaignState(tx, campaign_id, to));
    if (to == v1::CAMPAIGN_STATE_CANCELLED) {
      CRM_RETURN_IF_ERROR(MailingStore::CancelQueued(tx, campaign_id, d_.clock.Now()).status());
    }
    CRM_ASSIGN_OR_RETURN(c, MailingStore::GetCampaign(tx, campaign_id, false));
    *resp->mutable_campaign() = *std::move(c);
    return d_.audit.Enqueue(
        tx, AuditEvent(*ctx, caller.get(), absl::StrCat("mailing.campaign.", action),
                       absl::StrCat("campaigns/", campaign_id)));
  });
}

grpc::Status MailingService::ScheduleCampaign(Ctx* ctx, const v1::ScheduleCampaignRequest* req,
                                              v1::ScheduleCampaignResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kManage));
    CRM_ASSIGN_OR_RETURN(const std::string campaign_id,
                         base::CanonicalUuid("campaign_id", req->campaign_id()));
    const absl::Time now = d_.clock.Now();
    const absl::Time send_at = req->has_send_at()
                                   ? absl::FromUnixSeconds(req->send_at().seconds()) +
                                         absl::Nanoseconds(req->send_at().nanos())
                                   : now;
    if (send_at > now + absl::Hours(24 * 366)) {
      return absl::InvalidArgumentError("send_at: at most a year ahead");
    }
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(std::optional<v1::Campaign> c,
                           MailingStore::GetCampaign(tx, campaign_id, /*lock=*/true));
      if (!c.has_value()) return NotFound("campaign_id");
      if (c->state() != v1::CAMPAIGN_STATE_DRAFT) {
        return absl::FailedPreconditionError(absl::StrCat("campaign_id: the campaign is ",
                                                          v1::CampaignState_Name(c->state()),
                                                          "; only a draft can be scheduled"));
      }
      CRM_RETURN_IF_ERROR(
          MailingStore::SetCampaignState(tx, campaign_id, v1::CAMPAIGN_STATE_SCHEDULED, send_at));
      CRM_ASSIGN_OR_RETURN(c, MailingStore::GetCampaign(tx, campaign_id, false));
      *resp->mutable_campaign() = *std::move(c);
      return d_.audit.Enqueue(tx, AuditEvent(*ctx, caller.get(), "mailing.campaign.schedule",
                                             absl::StrCat("campaigns/", campaign_id)));
    });
  });
}

grpc::Status MailingService::PauseCampaign(Ctx* ctx, const v1::CampaignRequest* req,
                                           v1::CampaignResponse* resp) {
  return Handle([&] {
    return ChangeCampaign(ctx, req->campaign_id(),
                          {v1::CAMPAIGN_STATE_SCHEDULED, v1::CAMPAIGN_STATE_SENDING},
                          v1::CAMPAIGN_STATE_PAUSED, "pause", resp);
  });
}

grpc::Status MailingService::ResumeCampaign(Ctx* ctx, const v1::CampaignRequest* req,
                                            v1::CampaignResponse* resp) {
  // A paused campaign resumes as scheduled: if it had started, StartDue adds
  // nobody twice (the queue's unique key) and the rest is sent.
  return Handle([&] {
    return ChangeCampaign(ctx, req->campaign_id(), {v1::CAMPAIGN_STATE_PAUSED},
                          v1::CAMPAIGN_STATE_SCHEDULED, "resume", resp);
  });
}

grpc::Status MailingService::CancelCampaign(Ctx* ctx, const v1::CampaignRequest* req,
                                            v1::CampaignResponse* resp) {
  return Handle([&] {
    return ChangeCampaign(ctx, req->campaign_id(),
                          {v1::CAMPAIGN_STATE_DRAFT, v1::CAMPAIGN_STATE_SCHEDULED,
                           v1::CAMPAIGN_STATE_SENDING, v1::CAMPAIGN_STATE_PAUSED},
                          v1::CAMPAIGN_STATE_CANCELLED, "cancel", resp);
  });
}

grpc::Status MailingService::GetCampaign(Ctx* ctx, const v1::CampaignRequest* req,
                                         v1::CampaignResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_RETURN_IF_ERROR(rpc::AuthorizeCall(*ctx, d_.verifier, kManage).status());
    CRM_ASSIGN_OR_RETURN(const std::string campaign_id,
                         base::CanonicalUuid("campaign_id", req->campaign_id()));
    return d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(std::optional<v1::Campaign> c,
                               MailingStore::GetCampaign(tx, campaign_id, false));
          if (!c.has_value()) return NotFound("campaign_id");
          *resp->mutable_campaign() = *std::move(c);
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status MailingService::SendTransactional(Ctx* ctx, const v1::SendTransactionalRequest* req,
                                               v1::SendTransactionalResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(auto caller, rpc::AuthorizeCall(*ctx, d_.verifier, kSend));
    CRM_RETURN_IF_ERROR(ValidateTransactional(*req));
    std::string subject_id;
    if (req->to_case() == v1::SendTransactionalRequest::kSubjectId) {
      CRM_ASSIGN_OR_RETURN(subject_id, base::CanonicalUuid("subject_id", req->subject_id()));
    }
    // Keys are per calling service: one cannot shadow another's messages.
    const std::string dedup_key = absl::StrCat(rpc::PeerIdentity(*ctx), " ", req->dedup_key());
    const std::string message_id = base::NewUuid();
    CRM_ASSIGN_OR_RETURN(std::string payload,
                         d_.ring.Wrap(req->SerializeAsString(), PayloadAad(message_id)));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(auto queued,
                           MailingStore::QueueTransactional(tx, message_id, subject_id, req->kind(),
                                                            dedup_key, payload, d_.clock.Now()));
      resp->set_message_id(absl::StrCat(queued.first, "@", d_.message_domain));
      resp->set_queued(queued.second);
      if (!queued.second) return absl::OkStatus();
      return d_.audit.Enqueue(tx, AuditEvent(*ctx, caller.get(),
                                             absl::StrCat("mailing.transactional.",
                                                          FindTransactionalKind(req->kind())->name),
                                             absl::StrCat("messages/", message_id), subject_id));
    });
  });
}

grpc::Status MailingService::Unsubscribe(Ctx* ctx, const v1::UnsubscribeRequest* req,
                                         v1::UnsubscribeResponse* resp) {
  return Handle([&]() -> absl::Status {
    const absl::Time now = d_.clock.Now();
    CRM_ASSIGN_OR_RETURN(LinkClaims claims,
                         d_.tokens.Verify(TokenKind::kUnsubscribe, req->token(), now));
    resp->set_list_id(claims.list_id);
    std::optional<v1::MailingList> list;
    CRM_RETURN_IF_ERROR(d_.db.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          CRM_ASSIGN_OR_RETURN(list, MailingStore::GetList(tx, claims.list_id));
          return absl::OkStatus();
        },
        {.read_only = true}));
    if (!list.has_value()) return absl::InvalidArgumentError("token: the list is gone");
    // The withdrawal first: it is what stops the next send (the consent gate
    // checks right before sending), and repeating it records nothing new.
    CRM_RETURN_IF_ERROR(d_.consent.Withdraw(
        StatementFor(*list, claims.subject_id, cv1::METHOD_EMAIL_LINK, "mailing")));
    return d_.db.Transact([&](pqxx::work& tx) -> absl::Status {
      CRM_ASSIGN_OR_RETURN(
          std::optional<v1::Subscription> sub,
          MailingStore::GetSubscription(tx, list->list_id(), claims.subject_id, true));
      if (!sub.has_value() || sub->state() == v1::SUBSCRIPTION_STATE_UNSUBSCRIBED) {
        resp->set_changed(false);
        return absl::OkStatus();
      }
      sub->set_state(v1::SUBSCRIPTION_STATE_UNSUBSCRIBED);
      rpc::SetTime(now, sub->mutable_ended_at());
      CRM_RETURN_IF_ERROR(MailingStore::PutSubscription(tx, *sub, "", ""));
      CRM_RETURN_IF_ERROR(
          MailingStore::NoteUnsubscribe(tx, list->list_id(), claims.subject_id, now));
      resp->set_changed(true);
      return d_.audit.Enqueue(
          tx, AuditEvent(*ctx, nullptr, "mailing.unsubscribe",
                         absl::StrCat("lists/", list->list_id()), claims.subject_id));
    });
  });
}

absl::Status AllowMailingMethods(rpc::AccessPolicy& policy) {
  const std::string service = v1::Mailing::service_full_name();
  const google::protobuf::ServiceDescriptor* d =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  if (d == nullptr) return absl::InternalError("mailing: service descriptor missing");
  for (int i = 0; i < d->method_count(); ++i) {
    const std::string method = absl::StrCat("/", service, "/", d->method(i)->name());
    const std::string& name = d->method(i)->name();
    if (name == "Unsubscribe" || name == "ConfirmSubscription") {
      policy.Allow(method, {"gateway"});
    } else {
      policy.AllowAnyPeer(method);
    }
  }
  return policy.Validate();
}

}  // namespace crm::mailing
