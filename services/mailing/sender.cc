#include "services/mailing/sender.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "services/mailing/mailing_store.h"
#include "services/mailing/transactional.h"

namespace crm::mailing {
namespace {

// The double opt-in confirmation mail (not consent-gated: the subject has
// just asked to subscribe; nothing is recorded until the link is followed).
const v1::Template& ConfirmationTemplate() {
  static const v1::Template* const t = [] {
    auto* t = new v1::Template;
    t->set_template_id("confirmation");
    t->set_subject("Please confirm your subscription");
    t->set_text_body(
        "Hello {{first_name}},\n\n"
        "please confirm that you want to receive our mailings by following this link:\n\n"
        "{{confirm_url}}\n\n"
        "If you did not ask for this, ignore this message: nothing happens without your "
        "confirmation.\n");
    return t;
  }();
  return *t;
}

}  // namespace

SenderMetrics::SenderMetrics(prometheus::Registry& registry) {
  auto& messages = prometheus::BuildCounter()
                       .Name("crm_mailing_messages_total")
                       .Help("Queued messages handled by the sender, by outcome")
                       .Register(registry);
  sent_ = &messages.Add({{"outcome", "sent"}});
  skipped_consent_ = &messages.Add({{"outcome", "skipped_consent"}});
  skipped_no_address_ = &messages.Add({{"outcome", "skipped_no_address"}});
  retried_ = &messages.Add({{"outcome", "retried"}});
  failed_ = &messages.Add({{"outcome", "failed"}});
  sent_unconfirmed_ = &messages.Add({{"outcome", "sent_unconfirmed"}});
  withdrawn_ = &messages.Add({{"outcome", "withdrawn"}});
  auto& rounds = prometheus::BuildCounter()
                     .Name("crm_mailing_rounds_total")
                     .Help(
                         "Sending rounds, by result (error: consent, contacts or the database "
                         "failed and the batch was put back)")
                     .Register(registry);
  rounds_ok_ = &rounds.Add({{"result", "ok"}});
  rounds_failed_ = &rounds.Add({{"result", "error"}});
}

void SenderMetrics::CountSettled(int n) { sent_unconfirmed_->Increment(n); }

void SenderMetrics::Count(const absl::StatusOr<RoundStats>& round) {
  if (!round.ok()) {
    rounds_failed_->Increment();
    return;
  }
  rounds_ok_->Increment();
  sent_->Increment(round->sent);
  skipped_consent_->Increment(round->skipped_consent);
  skipped_no_address_->Increment(round->skipped_no_address);
  retried_->Increment(round->retried);
  failed_->Increment(round->failed);
  withdrawn_->Increment(round->withdrawn);
}

CampaignSender::CampaignSender(pg::Pool& db, ConsentGate& consent, AddressBook& addresses,
                               smtp::Sender& smtp, const LinkTokens& tokens,
                               const crypto::KeyRing& ring, const dkim::Signer* dkim,
                               const base::Clock& clock, SenderOptions options)
    : db_(db),
      consent_(consent),
      addresses_(addresses),
      smtp_(smtp),
      tokens_(tokens),
      ring_(ring),
      dkim_(dkim),
      clock_(clock),
      options_(std::move(options)) {}

absl::StatusOr<std::shared_ptr<const v1::Template>> CampaignSender::TemplateOf(
    const std::string& id, int64_t version) {
  const std::string key = absl::StrCat(id, "#", version);
  auto it = templates_.find(key);
  if (it != templates_.end()) return it->second;  // versions are immutable
  std::optional<v1::Template> t;
  CRM_RETURN_IF_ERROR(db_.Transact(
      [&](pqxx::work& tx) -> absl::Status {
        CRM_ASSIGN_OR_RETURN(t, MailingStore::GetTemplate(tx, id, version));
        return absl::OkStatus();
      },
      {.read_only = true}));
  if (!t.has_value()) return absl::InternalError("mailing: a campaign's template is missing");
  auto shared = std::make_shared<const v1::Template>(*std::move(t));
  templates_.emplace(key, shared);
  return shared;
}

absl::StatusOr<std::shared_ptr<const v1::Template>> CampaignSender::TransactionalTemplate(
    const TransactionalKind& kind) {
  std::optional<v1::Template> t;
  CRM_RETURN_IF_ERROR(db_.Transact(
      [&](pqxx::work& tx) -> absl::Status {
        CRM_ASSIGN_OR_RETURN(t, MailingStore::GetTemplate(tx, TransactionalTemplateId(kind), 0));
        return absl::OkStatus();
      },
      {.read_only = true}));
  return std::make_shared<const v1::Template>(t.has_value() ? *std::move(t) : kind.builtin);
}

int CampaignSender::ClaimLimit() const {
  if (options_.rate == nullptr) return options_.batch_size;
  const double in_half_a_lease =
      options_.rate->per_second() * absl::ToDoubleSeconds(options_.lease) / 2;
  return static_cast<int>(std::clamp(in_half_a_lease, 1.0, double(options_.batch_size)));
}

absl::StatusOr<RoundStats> CampaignSender::RunOnce() {
  RoundStats stats;
  const absl::Time now = clock_.Now();
  std::vector<Claimed> batch;
  CRM_RETURN_IF_ERROR(db_.Transact([&](pqxx::work& tx) -> absl::Status {
    CRM_RETURN_IF_ERROR(MailingStore::StartDueCampaigns(tx, now).status());
    CRM_ASSIGN_OR_RETURN(const int64_t settled, MailingStore::SettleAbandonedHandOffs(tx, now));
    stats.sent_unconfirmed = static_cast<int>(settled);
    CRM_RETURN_IF_ERROR(MailingStore::CompleteCampaigns(tx));
    CRM_ASSIGN_OR_RETURN(batch, MailingStore::Claim(tx, ClaimLimit(), options_.lease, now));
    return absl::OkStatus();
  }));
  if (options_.metrics != nullptr && stats.sent_unconfirmed > 0) {
    options_.metrics->CountSettled(stats.sent_unconfirmed);
  }
  stats.claimed = static_cast<int>(batch.size());
  if (batch.empty()) return stats;

  auto finish = [&](const Claimed& m, SendState state, const std::string& error = "",
                    absl::Time retry_at = absl::InfinitePast()) {
    return db_.Transact([&](pqxx::work& tx) {
      return MailingStore::Finish(tx, m.message_id, state, clock_.Now(), error, retry_at);
    });
  };
  // Rows the relay took (250 after their hand-off), recorded together at the
  // end: one commit per round instead of one per message. Should the round
  // end early (the database failed) they stay handed off, and a round after
  // their lease settles them as sent: never sent again either way.
  std::vector<std::string> sent;
  auto record_sent = [&] {
    if (sent.empty()) return absl::OkStatus();
    const absl::Status recorded = db_.Transact([&](pqxx::work& tx) {
      return MailingStore::FinishMany(tx, sent, SendState::kSent, clock_.Now());
    });
    sent.clear();
    return recorded;
  };
  // Rows not finished yet; an error from consent or contacts puts them back.
  std::vector<bool> pending(batch.size(), true);
  auto put_back = [&](const absl::Status& why) {
    for (size_t i = 0; i < batch.size(); ++i) {
      if (pending[i]) (void)finish(batch[i], SendState::kQueued, "", now + options_.first_retry);
    }
    return why;
  };
  auto end = [&](size_t i, SendState state, int& counter, const std::string& error = "") {
    pending[i] = false;
    ++counter;
    return finish(batch[i], state, error);
  };

  // The consent gate, per purpose, for the whole batch: campaign mail only.
  // Confirmation mail (the subject has just asked) and transactional mail
  // (needed for the service or by the law) are not gated.
  absl::flat_hash_map<std::string, std::vector<size_t>> by_purpose;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].kind == kCampaignKind) by_purpose[batch[i].purpose_id].push_back(i);
  }
  for (const auto& [purpose, indexes] : by_purpose) {
    std::vector<std::string> subjects;
    for (size_t i : indexes) subjects.push_back(batch[i].subject_id);
    absl::StatusOr<std::vector<bool>> answer = consent_.Allowed(purpose, subjects);
    if (!answer.ok()) return put_back(answer.status());
    for (size_t k = 0; k < indexes.size(); ++k) {
      if (!(*answer)[k])
        CRM_RETURN_IF_ERROR(end(indexes[k], SendState::kSkippedConsent, stats.skipped_consent));
    }
  }

  // Transactional requests (address and parameters) from their payloads.
  std::vector<v1::SendTransactionalRequest> requests(batch.size());
  std::vector<Recipient> recipients(batch.size());
  std::vector<size_t> lookup;  // rows whose address comes from contacts
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!pending[i]) continue;
    if (FindTransactionalKind(batch[i].kind) != nullptr) {
      absl::StatusOr<std::string> plain =
          ring_.Unwrap(batch[i].payload, PayloadAad(batch[i].message_id));
      if (!plain.ok() || !requests[i].ParseFromString(*plain)) {
        CRM_RETURN_IF_ERROR(end(i, SendState::kFailed, stats.failed, "payload unreadable"));
        continue;
      }
      if (requests[i].to_case() == v1::SendTransactionalRequest::kAddress) {
        recipients[i] = {.status = Recipient::Status::kOk, .address = requests[i].address()};
        continue;
      }
    }
    lookup.push_back(i);
  }
  if (!lookup.empty()) {
    std::vector<std::string> subjects;
    for (size_t i : lookup) subjects.push_back(batch[i].subject_id);
    absl::StatusOr<std::vector<Recipient>> found = addresses_.Lookup(subjects);
    if (!found.ok()) return put_back(found.status());
    if (found->size() != lookup.size()) {
      return put_back(absl::InternalError("contacts: answered for fewer subjects"));
    }
    for (size_t k = 0; k < lookup.size(); ++k) {
      recipients[lookup[k]] = std::move((*found)[k]);
      if (recipients[lookup[k]].status != Recipient::Status::kOk) {
        CRM_RETURN_IF_ERROR(end(lookup[k], SendState::kSkippedNoAddress, stats.skipped_no_address));
      }
    }
  }

  // The suppression list (campaign mail).
  std::vector<size_t> gated;
  std::vector<std::string> addresses;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (pending[i] && batch[i].kind == kCampaignKind) {
      gated.push_back(i);
      addresses.push_back(recipients[i].address);
    }
  }
  if (!gated.empty()) {
    absl::StatusOr<std::vector<bool>> suppressed = consent_.Suppressed(addresses);
    if (!suppressed.ok()) return put_back(suppressed.status());
    for (size_t k = 0; k < gated.size(); ++k) {
      if ((*suppressed)[k])
        CRM_RETURN_IF_ERROR(end(gated[k], SendState::kSkippedConsent, stats.skipped_consent));
    }
  }

  // Transactional templates: an operator's replacement (newest version) or
  // the built-in one, looked up once a round.
  absl::flat_hash_map<int, std::shared_ptr<const v1::Template>> transactional;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Claimed& m = batch[i];
    if (!pending[i]) continue;
    const Recipient& r = recipients[i];
    std::string unsubscribe_url;
    Rendered rendered;
    if (m.kind == kConfirmationKind) {
      rendered = Render(
          ConfirmationTemplate(),
          {{"first_name", r.first_name},
           {"confirm_url",
            absl::StrCat(options_.confirm_base,
                         tokens_.Issue(TokenKind::kConfirm, m.subject_id, m.list_id, now))}});
    } else if (const TransactionalKind* kind = FindTransactionalKind(m.kind); kind != nullptr) {
      auto& t = transactional[m.kind];
      if (t == nullptr) {
        CRM_ASSIGN_OR_RETURN(t, TransactionalTemplate(*kind));
      }
      Values values(requests[i].params().begin(), requests[i].params().end());
      values["first_name"] = r.first_name;
      rendered = Render(*t, values);
    } else {
      CRM_ASSIGN_OR_RETURN(std::shared_ptr<const v1::Template> t,
                           TemplateOf(m.template_id, m.template_version));
      unsubscribe_url =
          absl::StrCat(options_.unsubscribe_base,
                       tokens_.Issue(TokenKind::kUnsubscribe, m.subject_id, m.list_id, now));
      rendered = Render(*t, {{"first_name", r.first_name}, {"unsubscribe_url", unsubscribe_url}});
    }
    absl::StatusOr<std::string> message =
        ComposeMessage({.from = options_.from,
                        .to = r.address,
                        .message_id = absl::StrCat(m.message_id, "@", options_.message_domain),
                        .unsubscribe_url = unsubscribe_url,
                        .date = now},
                       rendered);
    if (message.ok() && dkim_ != nullptr) message = dkim_->SignMessage(*message, now);
    if (!message.ok()) {  // an address contacts accepted but a header cannot carry
      CRM_RETURN_IF_ERROR(
          end(i, SendState::kFailed, stats.failed, "message could not be composed"));
      continue;
    }
    if (options_.rate != nullptr) options_.rate->Acquire();
    // The hand-off is committed before the end of data, and only while the
    // row is still this claim's (sender.h): a crash while the relay answers
    // leaves the row handed off, settled as sent and never sent again; a row
    // taken over, cancelled or erased meanwhile is not sent or finished here.
    bool lost = false;
    absl::Status hand_off;
    const absl::Status relay =
        smtp_.Send({.from = options_.envelope_from, .recipients = {r.address}}, *message, [&] {
          absl::StatusOr<bool> ours = false;
          hand_off = db_.Transact([&](pqxx::work& tx) -> absl::Status {
            ours = MailingStore::HandOff(tx, m.message_id, m.attempts, clock_.Now());
            return ours.status();
          });
          lost = hand_off.ok() && !*ours;
          if (lost)
            hand_off = absl::AbortedError("mailing: the queue row is no longer this round's");
          return hand_off;
        });
    if (relay.ok()) {
      pending[i] = false;
      ++stats.sent;
      sent.push_back(m.message_id);
      continue;
    }
    if (lost) {
      pending[i] = false;
      ++stats.withdrawn;
      continue;
    }
    if (!hand_off.ok()) return put_back(hand_off);  // the database failed: nothing went out
    const std::optional<int> code = smtp::ReplyCode(relay);
    const std::string error =
        code.has_value()
            ? absl::StrCat("relay replied ", *code)
            : std::string(smtp::IsRetryable(relay) ? "relay unreachable" : "relay refused");
    if (smtp::IsRetryable(relay) && m.attempts < options_.max_attempts) {
      const absl::Duration backoff = options_.first_retry * (1 << std::min(m.attempts - 1, 10));
      pending[i] = false;
      CRM_RETURN_IF_ERROR(finish(m, SendState::kQueued, error, clock_.Now() + backoff));
      ++stats.retried;
    } else {
      CRM_RETURN_IF_ERROR(end(i, SendState::kFailed, stats.failed, error));
    }
  }
  CRM_RETURN_IF_ERROR(record_sent());
  return stats;
}

}  // namespace crm::mailing
