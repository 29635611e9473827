// CampaignSender: the worker that turns queued messages into mail: campaign
// mail, double opt-in confirmations and transactional mail (transactional.h).
//
// One round (RunOnce):
//   1. starts the scheduled campaigns that are due (each active subscriber
//      queued once), settles dead workers' hand-offs (below) and marks
//      finished campaigns done;
//   2. claims a batch of due queue rows (SKIP LOCKED, with a lease, so
//      replicas share the queue and a crashed worker's rows come back);
//   3. asks consent, per purpose and for the whole batch, whether each
//      subject may be mailed right now; denied ones are skipped (counted).
//      Double opt-in confirmation mails are not gated (the subject has just
//      asked; the consent is recorded when the link is followed), nor is
//      transactional mail;
//   4. fetches the allowed subjects' addresses from contacts (AddressBook);
//      unknown, erased, restricted or address-less subjects are skipped.
//      Transactional mail to an address takes it from its payload;
//   5. asks consent which campaign recipients' addresses are on the
//      suppression list; suppressed ones are skipped;
//   6. renders each message (template version pinned by the campaign, the
//      subject's first name, a per-recipient unsubscribe link), composes it,
//      DKIM-signs it and sends it over TLS, committing its hand-off just
//      before the end of data (below); records the outcome at once:
//      sent; a temporary failure retried with backoff up to max_attempts;
//      a permanent one failed (reply code only, never the address).
// Addresses live only in the batch's memory and are dropped with it.
//
// Sends each row once, lost or repeated only where SMTP itself cannot tell
// (RFC 1047): the relay takes a message at the end of data, and a worker
// can die before it hears so. So, just before the end of data, the worker
// commits the row's hand-off, fenced by its claim (MailingStore::HandOff);
// after the relay's reply it records the outcome (sent, with the round's
// other sent rows at its end; a 4xx puts the row back, no longer handed
// off). A row handed off whose worker died is
// counted sent once its lease runs out (SettleAbandonedHandOffs): never
// claimed or sent again. A row another worker took over (this one's lease
// ran out mid-batch), cancelled or erased meanwhile fails the fence and gets
// no end of data. What is left:
// a crash between the hand-off commit and the write of the dot (one system
// call) loses that message, and a connection that breaks after the dot
// without a reply retries it (the relay may have it: the repeat carries the
// same Message-ID).
//
// Thread-compatible: one CampaignSender per sending thread (it owns an SMTP
// connection); several may run against one database (and in several
// replicas).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/base/clock.h"
#include "libs/crypto/key_ring.h"
#include "libs/dkim/signer.h"
#include "libs/pg/pool.h"
#include "libs/smtp/sender.h"
#include "services/mailing/consent_gate.h"
#include "services/mailing/rate_limiter.h"
#include "services/mailing/render.h"
#include "services/mailing/tokens.h"
#include "services/mailing/transactional.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace crm::mailing {

// Where a subject can be mailed (contacts' answer).
struct Recipient {
  enum class Status { kOk, kNotFound, kRestricted, kNoAddress };
  Status status = Status::kNotFound;
  std::string address;
  std::string first_name;
};

class AddressBook {
 public:
  virtual ~AddressBook() = default;
  // recipients[i] for subject_ids[i].
  virtual absl::StatusOr<std::vector<Recipient>> Lookup(
      const std::vector<std::string>& subject_ids) = 0;
};

class SenderMetrics;

struct SenderOptions {
  std::string from;              // the From header: "Shop News <news@shop.example>"
  std::string envelope_from;     // MAIL FROM (bounces); may be empty
  std::string message_domain;    // Message-ID: <message id>@<message_domain>
  std::string unsubscribe_base;  // the token is appended: "https://crm.shop.example/u/"
  std::string confirm_base;      // the same for confirmation links: ".../c/"
  int batch_size = 200;
  absl::Duration lease = absl::Minutes(5);
  int max_attempts = 5;
  absl::Duration first_retry = absl::Minutes(1);  // doubled after each temporary failure
  // The relay's rate limit, shared by a process's senders; null: none. A
  // round then claims no more than it can send in half a lease.
  RateLimiter* rate = nullptr;
  // Counts settled hand-offs the moment they are committed, even when the
  // rest of the round then fails (Count only sees rounds that succeed).
  // Null: not counted.
  SenderMetrics* metrics = nullptr;
};

struct RoundStats {
  int claimed = 0;
  int sent = 0;
  int skipped_consent = 0;
  int skipped_no_address = 0;
  int retried = 0;
  int failed = 0;
  // Rows a dead worker handed off without seeing the relay's reply, now
  // counted sent (not sent again).
  int sent_unconfirmed = 0;
  // Rows this round claimed that were no longer its own at their hand-off:
  // another worker took them over (this round's lease ran out), their
  // campaign was cancelled or their subject erased. Not sent here.
  int withdrawn = 0;
};

// Counters of what rounds did: crm_mailing_messages_total{outcome=sent|
// skipped_consent|skipped_no_address|retried|failed} and
// crm_mailing_rounds_total{result=ok|error}. Shared by a process's senders.
class SenderMetrics {
 public:
  explicit SenderMetrics(prometheus::Registry& registry);
  void Count(const absl::StatusOr<RoundStats>& round);
  // sent_unconfirmed: from the sender itself (SenderOptions::metrics), as
  // Count never sees the stats of a round that failed after settling.
  void CountSettled(int n);

 private:
  prometheus::Counter* sent_;
  prometheus::Counter* skipped_consent_;
  prometheus::Counter* skipped_no_address_;
  prometheus::Counter* retried_;
  prometheus::Counter* failed_;
  prometheus::Counter* sent_unconfirmed_;
  prometheus::Counter* withdrawn_;
  prometheus::Counter* rounds_ok_;
  prometheus::Counter* rounds_failed_;
};

class CampaignSender {
 public:
  // `dkim` may be null (unsigned mail: development only).
  // `ring` opens transactional mail's payloads.
  CampaignSender(pg::Pool& db, ConsentGate& consent, AddressBook& addresses, smtp::Sender& smtp,
                 const LinkTokens& tokens, const crypto::KeyRing& ring, const dkim::Signer* dkim,
                 const base::Clock& clock, SenderOptions options);

  // One round (see above). An error from consent or contacts puts the batch
  // back for a retry and is returned.
  absl::StatusOr<RoundStats> RunOnce();

 private:
  absl::StatusOr<std::shared_ptr<const v1::Template>> TemplateOf(const std::string& id,
                                                                 int64_t version);
  // How many rows a round claims (batch_size, fewer under a low rate limit).
  int ClaimLimit() const;
  absl::StatusOr<std::shared_ptr<const v1::Template>> TransactionalTemplate(
      const TransactionalKind& kind);
  pg::Pool& db_;
  ConsentGate& consent_;
  AddressBook& addresses_;
  smtp::Sender& smtp_;
  const LinkTokens& tokens_;
  const crypto::KeyRing& ring_;
  const dkim::Signer* dkim_;
  const base::Clock& clock_;
  SenderOptions options_;
  absl::flat_hash_map<std::string, std::shared_ptr<const v1::Template>> templates_;
};

}  // namespace crm::mailing
