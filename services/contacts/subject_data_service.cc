#include "services/contacts/subject_data_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/rpc/handler.h"
#include "libs/service/subject_data.h"
#include "services/contacts/contacts_service.h"

namespace crm::contacts {

namespace {

namespace sv1 = crm::subject::v1;
using rpc::Handle;

constexpr char kService[] = "contacts";

constexpr char kInvoiceBasis[] =
    "accounting law: invoice records kept, restricted, until the end of the retention period";

// The invoices kept under the accounting law, as a retained category.
void AddRetained(const SubjectCounts& c,
                 google::protobuf::RepeatedPtrField<sv1::DataCategory>* out) {
  if (c.invoices == 0) return;
  sv1::DataCategory* cat = out->Add();
  cat->set_category("invoices");
  cat->set_record_count(c.invoices);
  cat->set_legally_retained(true);
  cat->set_retention_basis(kInvoiceBasis);
  absl::CivilDay until;
  if (absl::ParseCivilTime(c.retained_until, &until)) {
    // Purged by the sweeper the day after.
    rpc::SetTime(absl::FromCivil(until + 1, absl::UTCTimeZone()), cat->mutable_purge_after());
  }
}

// The erasable categories of `c` with a record count above zero.
void AddCategories(const SubjectCounts& c,
                   google::protobuf::RepeatedPtrField<sv1::DataCategory>* out) {
  for (auto [name, count] :
       {std::pair{"person", c.persons}, std::pair{"email_addresses", c.emails},
        std::pair{"phone_numbers", c.phones}, std::pair{"contact_history", c.interactions}}) {
    if (count == 0) continue;
    sv1::DataCategory* cat = out->Add();
    cat->set_category(name);
    cat->set_record_count(count);
  }
}

}  // namespace

grpc::Status SubjectDataService::DescribeSubjectData(Ctx*,
                                                     const sv1::DescribeSubjectDataRequest* req,
                                                     sv1::DescribeSubjectDataResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::string subject, base::CanonicalUuid("subject_id", req->subject_id()));
    return db_.Transact(
        [&](pqxx::work& tx) -> absl::Status {
          resp->Clear();
          resp->set_service(kService);
          CRM_ASSIGN_OR_RETURN(SubjectCounts counts, PersonStore::Count(tx, subject));
          AddCategories(counts, resp->mutable_categories());
          AddRetained(counts, resp->mutable_categories());
          return absl::OkStatus();
        },
        {.read_only = true});
  });
}

grpc::Status SubjectDataService::ExportSubjectData(Ctx* ctx,
                                                   const sv1::ExportSubjectDataRequest* req,
                                                   sv1::ExportSubjectDataResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::string subject, base::CanonicalUuid("subject_id", req->subject_id()));
    return db_.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      resp->set_service(kService);
      // Invoice records, kept even after an erasure.
      CRM_ASSIGN_OR_RETURN(std::vector<StoredInvoice> invoices,
                           InvoiceStore::List(tx, subject, /*company=*/false, 100'000));
      if (!invoices.empty()) {
        CRM_ASSIGN_OR_RETURN(std::optional<std::string> wrapped,
                             InvoiceStore::WrappedKey(tx, subject));
        if (!wrapped.has_value()) return absl::DataLossError("invoices: their key is missing");
        CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key,
                             sealer_.UnwrapKey(kInvoiceKeyPurpose, *wrapped, subject));
        for (const StoredInvoice& i : invoices) {
          CRM_ASSIGN_OR_RETURN(crm::contacts::v1::Invoice invoice, OpenInvoice(sealer_, key, i));
          sv1::ExportedRecord* record = resp->add_records();
          record->set_category("invoices");
          CRM_RETURN_IF_ERROR(rpc::ToStruct(invoice, record->mutable_data()));
        }
      }
      CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> stored,
                           PersonStore::Get(tx, subject, Access{.all = true}, false));
      if (!stored.has_value()) {
        if (invoices.empty()) return absl::OkStatus();
        return audit_.Enqueue(
            tx, service::SubjectDataEvent(*ctx, "contacts.subject.export", "persons", subject));
      }
      CRM_ASSIGN_OR_RETURN(crm::contacts::v1::Person person, OpenPerson(tx, sealer_, *stored));
      // The restriction reason is the subject's data too.
      std::string reason;
      if (!stored->restriction_reason.empty()) {
        CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key, SubjectKeyOf(tx, sealer_, *stored));
        CRM_ASSIGN_OR_RETURN(reason, sealer_.OpenText(key, subject, "restriction_reason",
                                                      stored->restriction_reason));
      }
      sv1::ExportedRecord* record = resp->add_records();
      record->set_category("person");
      CRM_RETURN_IF_ERROR(rpc::ToStruct(person, record->mutable_data()));
      if (!reason.empty()) {
        (*record->mutable_data()->mutable_fields())["restriction_reason"].set_string_value(reason);
      }
      // The contact history, every entry with its summary.
      std::optional<Cursor> cursor;
      std::optional<crypto::SecretBytes> key;
      while (true) {
        CRM_ASSIGN_OR_RETURN(std::vector<StoredInteraction> page,
                             PersonStore::ListInteractions(tx, subject, cursor, 1000));
        for (const StoredInteraction& i : page) {
          if (!key.has_value()) {
            CRM_ASSIGN_OR_RETURN(std::string wrapped, PersonStore::WrappedKey(tx, subject));
            CRM_ASSIGN_OR_RETURN(key, sealer_.Unwrap(wrapped, subject));
          }
          CRM_ASSIGN_OR_RETURN(
              std::string summary,
              sealer_.OpenText(*key, subject, InteractionSummaryField(i.interaction_id),
                               i.summary));
          sv1::ExportedRecord* entry = resp->add_records();
          entry->set_category("contact_history");
          auto& f = *entry->mutable_data()->mutable_fields();
          f["interaction_id"].set_string_value(i.interaction_id);
          f["kind"].set_string_value(crm::contacts::v1::InteractionKind_Name(
              static_cast<crm::contacts::v1::InteractionKind>(i.kind)));
          f["occurred_at"].set_string_value(
              absl::FormatTime(absl::RFC3339_full, i.occurred_at, absl::UTCTimeZone()));
          f["operator_user_id"].set_string_value(i.operator_user_id);
          f["summary"].set_string_value(summary);
        }
        if (page.size() < 1000) break;
        cursor = Cursor{.at = page.back().occurred_at, .id = page.back().interaction_id};
      }
      return audit_.Enqueue(
          tx, service::SubjectDataEvent(*ctx, "contacts.subject.export", "persons", subject));
    });
  });
}

grpc::Status SubjectDataService::EraseSubjectData(Ctx* ctx, const sv1::EraseSubjectDataRequest* req,
                                                  sv1::EraseSubjectDataResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(service::ErasureRequest erasure, service::ParseErasureRequest(*req));
    const std::string& request_id = erasure.request_id;
    const std::string& subject = erasure.subject_id;
    return db_.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      resp->set_service(kService);
      CRM_ASSIGN_OR_RETURN(std::optional<ErasureRecord> done,
                           PersonStore::ErasureRecorded(tx, request_id));
      if (!done.has_value()) {
        // Serialises erasures of one subject with its updates.
        CRM_ASSIGN_OR_RETURN(std::optional<StoredPerson> locked,
                             PersonStore::Get(tx, subject, Access{.all = true}, /*lock=*/true));
        (void)locked;
        ErasureRecord record;
        record.subject_id = subject;
        CRM_ASSIGN_OR_RETURN(record.erased, PersonStore::Count(tx, subject));
        record.completed_at = absl::FromUnixMicros(absl::ToUnixMicros(clock_.Now()));
        CRM_RETURN_IF_ERROR(PersonStore::Erase(tx, subject));
        CRM_RETURN_IF_ERROR(InvoiceStore::Restrict(tx, subject));
        CRM_RETURN_IF_ERROR(PersonStore::RecordErasure(tx, request_id, record));
        crm::audit::v1::Event event = service::SubjectDataEvent(*ctx, "contacts.subject.erase",
                                                                "persons", subject, request_id);
        CRM_RETURN_IF_ERROR(audit_.Enqueue(tx, event));
        done = std::move(record);
      } else if (done->subject_id != subject) {
        return service::ErasureRequestReused();
      }
      AddCategories(done->erased, resp->mutable_erased());
      AddRetained(done->erased, resp->mutable_retained());
      // Destroyed now, or by an earlier erasure: either way no key is left.
      resp->set_data_key_destroyed(true);
      rpc::SetTime(done->completed_at, resp->mutable_completed_at());
      return absl::OkStatus();
    });
  });
}

void AllowSubjectDataMethods(rpc::AccessPolicy& policy) {
  for (const char* m : {"DescribeSubjectData", "ExportSubjectData", "EraseSubjectData"}) {
    policy.Allow(absl::StrCat("/crm.subject.v1.SubjectData/", m), {"erasure"});
  }
}

}  // namespace crm::contacts
