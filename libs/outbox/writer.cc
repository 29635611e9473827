#include "libs/outbox/writer.h"

#include <pqxx/binarystring>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/aead.h"
#include "libs/pg/copy_text.h"
#include "libs/pg/prepared.h"

namespace crm::outbox {
namespace {

// created_at is the writer's clock, so that lag is measured on one clock.
const std::string& InsertSql() {
  static const std::string* const sql = new std::string(InsertSelectSql(1));
  return *sql;
}

}  // namespace

std::string InsertSelectSql(int first_param) {
  return absl::StrCat("INSERT INTO audit_outbox (event_id, payload, created_at) SELECT $",
                      first_param, "::uuid, $", first_param + 1, "::bytea, timestamptz 'epoch' + $",
                      first_param + 2, "::bigint * interval '1 microsecond'");
}

namespace internal {

absl::Status PrepareEvent(absl::string_view service, absl::Time now, crm::audit::v1::Event& event) {
  CRM_RETURN_IF_ERROR(base::ValidateText("action", event.action(), 1, kMaxActionLength));
  if (event.service().empty()) {
    if (service.empty()) return absl::InvalidArgumentError("service: required");
    event.set_service(std::string(service));
  } else if (!service.empty() && event.service() != service) {
    return absl::InvalidArgumentError("service: differs from the writer's service");
  }
  CRM_RETURN_IF_ERROR(base::ValidateText("service", event.service(), 1, kMaxServiceLength));
  if (event.event_id().empty()) {
    event.set_event_id(base::NewTimeOrderedUuid(now));
  } else {
    CRM_ASSIGN_OR_RETURN(std::string canonical, base::CanonicalUuid("event_id", event.event_id()));
    event.set_event_id(std::move(canonical));
  }
  if (!event.has_time()) {
    const int64_t micros = absl::ToUnixMicros(now);
    int64_t seconds = micros / 1'000'000;
    int64_t rem = micros % 1'000'000;
    if (rem < 0) {
      rem += 1'000'000;
      --seconds;
    }
    event.mutable_time()->set_seconds(seconds);
    event.mutable_time()->set_nanos(static_cast<int32_t>(rem * 1000));
  }
  return absl::OkStatus();
}

}  // namespace internal

Writer::Writer(std::string service, crypto::SecretBytes key, base::Clock& clock)
    : service_(std::move(service)), key_(std::move(key)), clock_(clock) {}

absl::StatusOr<crypto::SealingKey> Writer::Key() const {
  if (key_.size() != crypto::kAes256KeySize) {
    return absl::InvalidArgumentError("outbox key: must be 32 bytes");
  }
  return crypto::SealingKey::Create(key_);
}

absl::StatusOr<std::string> Writer::Seal(absl::Time now, crm::audit::v1::Event& event,
                                         crypto::SealingKey& key) const {
  CRM_RETURN_IF_ERROR(internal::PrepareEvent(service_, now, event));
  std::string plaintext;
  if (!event.SerializeToString(&plaintext)) {
    return absl::InternalError("outbox: cannot serialize the event");
  }
  return key.Seal(plaintext, event.event_id());
}

absl::StatusOr<SealedEvent> Writer::SealForInsert(crm::audit::v1::Event event) const {
  const absl::Time now = clock_.Now();
  CRM_ASSIGN_OR_RETURN(crypto::SealingKey key, Key());
  CRM_ASSIGN_OR_RETURN(std::string sealed, Seal(now, event, key));
  return SealedEvent{.event_id = event.event_id(),
                     .payload = std::move(sealed),
                     .created_at_micros = absl::ToUnixMicros(now)};
}

absl::Status Writer::Enqueue(pqxx::transaction_base& tx, crm::audit::v1::Event event,
                             std::string* event_id) const {
  CRM_ASSIGN_OR_RETURN(SealedEvent e, SealForInsert(std::move(event)));
  pg::ExecPrepared(tx, InsertSql(), e.event_id, pqxx::binarystring(e.payload), e.created_at_micros);
  if (event_id != nullptr) *event_id = std::move(e.event_id);
  return absl::OkStatus();
}

absl::Status Writer::Enqueue(pg::Pipeline& pipeline, crm::audit::v1::Event event) const {
  CRM_ASSIGN_OR_RETURN(SealedEvent e, SealForInsert(std::move(event)));
  pipeline.Add(InsertSql(), e.event_id, pqxx::binarystring(e.payload), e.created_at_micros);
  return absl::OkStatus();
}

absl::Status Writer::EnqueueAll(pqxx::transaction_base& tx,
                                absl::Span<crm::audit::v1::Event* const> events) const {
  if (events.empty()) return absl::OkStatus();
  const absl::Time now = clock_.Now();
  const std::string created_at = pg::CopyTime(now);
  CRM_ASSIGN_OR_RETURN(crypto::SealingKey key, Key());
  std::string rows;
  for (crm::audit::v1::Event* event : events) {
    CRM_ASSIGN_OR_RETURN(std::string sealed, Seal(now, *event, key));
    if (rows.empty()) {
      // Sized once for the batch: id, tab, bytea escaped as \\x + hex, tab,
      // time, newline per row.
      rows.reserve(events.size() * (36 + 4 + 2 * sealed.size() + 64 + created_at.size()));
    }
    absl::StrAppend(&rows, event->event_id(), "\t");
    pg::AppendCopyBytea(rows, sealed, false);
    absl::StrAppend(&rows, "\t", created_at, "\n");
  }
  pg::CopyIn copy(tx, "audit_outbox", "event_id, payload, created_at");
  copy.Write(rows);
  copy.Complete();
  return absl::OkStatus();
}

}  // namespace crm::outbox
