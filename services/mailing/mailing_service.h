// crm.mailing.v1.Mailing: lists, subscriptions, templates and campaigns
// (what people manage), and the two methods the gateway calls for links in
// mails: ConfirmSubscription and Unsubscribe (the token in the link is the
// authority; only the gateway's identity may call them).
//
// Subscriptions record consent through the consent service (ConsentGate):
// a single opt-in grants at once, a double opt-in grants when the
// confirmation link is followed; unsubscribing withdraws. The consent call
// comes first and is idempotent, so a retry after a failure in between
// completes the subscription without a second ledger entry.
//
// SendTransactional queues one message for the sender; sending (queue,
// consent gate, SMTP) is CampaignSender's. Every change is audited through
// the outbox.
//
// Thread-safe.
#pragma once

#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"
#include "services/mailing/consent_gate.h"
#include "services/mailing/tokens.h"

namespace crm::mailing {

struct MailingDeps {
  pg::Pool& db;
  auth::TokenVerifier& verifier;
  outbox::Writer& audit;
  const base::Clock& clock;
  ConsentGate& consent;
  const LinkTokens& tokens;
  // Encrypts the address and parameters of queued transactional mail.
  const crypto::KeyRing& ring;
  // Message-IDs are <message id>@<message_domain> (SenderOptions).
  std::string message_domain;
  // How long a double opt-in confirmation link stays valid.
  absl::Duration confirm_max_age = absl::Hours(72);
};

class MailingService final : public v1::Mailing::Service {
 public:
  explicit MailingService(MailingDeps deps) : d_(deps) {}
  using Ctx = grpc::ServerContext;
  grpc::Status CreateList(Ctx*, const v1::CreateListRequest*, v1::CreateListResponse*) override;
  grpc::Status ListLists(Ctx*, const v1::ListListsRequest*, v1::ListListsResponse*) override;
  grpc::Status Subscribe(Ctx*, const v1::SubscribeRequest*, v1::SubscribeResponse*) override;
  grpc::Status ConfirmSubscription(Ctx*, const v1::ConfirmSubscriptionRequest*,
                                   v1::ConfirmSubscriptionResponse*) override;
  grpc::Status ListSubscriptions(Ctx*, const v1::ListSubscriptionsRequest*,
                                 v1::ListSubscriptionsResponse*) override;
  grpc::Status PutTemplate(Ctx*, const v1::PutTemplateRequest*, v1::PutTemplateResponse*) override;
  grpc::Status GetTemplate(Ctx*, const v1::GetTemplateRequest*, v1::GetTemplateResponse*) override;
  grpc::Status CreateCampaign(Ctx*, const v1::CreateCampaignRequest*,
                              v1::CreateCampaignResponse*) override;
  grpc::Status ScheduleCampaign(Ctx*, const v1::ScheduleCampaignRequest*,
                                v1::ScheduleCampaignResponse*) override;
  grpc::Status PauseCampaign(Ctx*, const v1::CampaignRequest*, v1::CampaignResponse*) override;
  grpc::Status ResumeCampaign(Ctx*, const v1::CampaignRequest*, v1::CampaignResponse*) override;
  grpc::Status CancelCampaign(Ctx*, const v1::CampaignRequest*, v1::CampaignResponse*) override;
  grpc::Status GetCampaign(Ctx*, const v1::CampaignRequest*, v1::CampaignResponse*) override;
  grpc::Status SendTransactional(Ctx*, const v1::SendTransactionalRequest*,
                                 v1::SendTransactionalResponse*) override;
  grpc::Status Unsubscribe(Ctx*, const v1::UnsubscribeRequest*, v1::UnsubscribeResponse*) override;

 private:
  // Moves a campaign from one of `from` to `to`, answering it.
  absl::Status ChangeCampaign(Ctx* ctx, const std::string& campaign_id,
                              std::initializer_list<v1::CampaignState> from, v1::CampaignState to,
                              absl::string_view action, v1::CampaignResponse* resp);
  MailingDeps d_;
};

// The access policy: every method to any peer (they authorize by token),
// except ConfirmSubscription and Unsubscribe: the gateway's identity only.
absl::Status AllowMailingMethods(rpc::AccessPolicy& policy);

}  // namespace crm::mailing
