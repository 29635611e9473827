#include "services/consent/subject_data_service.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/data_key.h"
#include "libs/rpc/handler.h"
#include "libs/service/subject_data.h"
#include "services/consent/consent_service.h"
#include "services/consent/consent_store.h"

namespace crm::consent {
namespace {

namespace sv1 = crm::subject::v1;
using rpc::Handle;

constexpr char kService[] = "consent";

void AddCategories(const SubjectCounts& c,
                   google::protobuf::RepeatedPtrField<sv1::DataCategory>* out) {
  for (auto [name, count] :
       {std::pair{"consent_records", c.entries}, std::pair{"consent_standing", c.standings},
        std::pair{"restriction", int64_t{c.restricted ? 1 : 0}}}) {
    if (count == 0) continue;
    sv1::DataCategory* cat = out->Add();
    cat->set_category(name);
    cat->set_record_count(count);
  }
}

constexpr char kSuppressionCategory[] = "marketing_suppression";
constexpr char kSuppressionBasis[] =
    "Art. 21(3) GDPR: an objection to direct marketing outlives the erasure; only a keyed hash "
    "of each e-mail address is kept, without the subject id, so a re-imported record is not "
    "mailed";

sv1::DataCategory* AddSuppression(int64_t count,
                                  google::protobuf::RepeatedPtrField<sv1::DataCategory>* out) {
  sv1::DataCategory* cat = out->Add();
  cat->set_category(kSuppressionCategory);
  cat->set_record_count(count);
  cat->set_legally_retained(true);
  cat->set_retention_basis(kSuppressionBasis);
  return cat;
}

// "<length>:<address><user agent>" (consent_service.cc EvidenceOf).
void AddEvidence(const std::string& evidence, google::protobuf::Struct& data) {
  const size_t colon = evidence.find(':');
  size_t length = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(evidence).substr(0, colon), &length) ||
      colon + 1 + length > evidence.size()) {
    return;
  }
  auto& f = *data.mutable_fields();
  f["source_address"].set_string_value(evidence.substr(colon + 1, length));
  f["user_agent"].set_string_value(evidence.substr(colon + 1 + length));
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
          CRM_ASSIGN_OR_RETURN(SubjectCounts counts, ConsentStore::Count(tx, subject));
          AddCategories(counts, resp->mutable_categories());
          // What an erasure would keep: one entry per e-mail address.
          if (counts.marketing_objections > 0) AddSuppression(1, resp->mutable_categories());
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
      CRM_ASSIGN_OR_RETURN(std::vector<v1::LedgerEntry> entries,
                           ConsentStore::History(tx, subject));
      CRM_ASSIGN_OR_RETURN(SubjectCounts counts, ConsentStore::Count(tx, subject));
      if (entries.empty() && !counts.restricted) return absl::OkStatus();
      CRM_ASSIGN_OR_RETURN(auto sealed, ConsentStore::Evidence(tx, subject));
      std::map<int64_t, std::string> evidence;
      if (!sealed.empty()) {
        CRM_ASSIGN_OR_RETURN(const std::string wrapped, ConsentStore::WrappedKey(tx, subject));
        CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key,
                             crypto::UnwrapDataKey(ring_, wrapped, kConsentKeyPurpose, subject));
        for (auto& [sequence, ciphertext] : sealed) {
          CRM_ASSIGN_OR_RETURN(
              evidence[sequence],
              crypto::Open(key, ciphertext,
                           absl::StrCat("crm.consent.v1|", subject, "|", sequence, "|evidence")));
        }
      }
      CRM_ASSIGN_OR_RETURN(const auto receipts, ConsentStore::Receipts(tx, subject));
      for (const v1::LedgerEntry& e : entries) {
        sv1::ExportedRecord* record = resp->add_records();
        record->set_category("consent_records");
        CRM_RETURN_IF_ERROR(rpc::ToStruct(e, record->mutable_data()));
        auto it = evidence.find(e.sequence());
        if (it != evidence.end()) AddEvidence(it->second, *record->mutable_data());
        // A grant's signed receipt, verifiable with GetReceiptKeys' keys.
        auto receipt = receipts.find(e.sequence());
        if (receipt != receipts.end()) {
          (*record->mutable_data()->mutable_fields())["receipt_jws"].set_string_value(
              receipt->second);
        }
      }
      if (counts.restricted) {
        sv1::ExportedRecord* record = resp->add_records();
        record->set_category("restriction");
        (*record->mutable_data()->mutable_fields())["restricted"].set_bool_value(true);
      }
      return audit_.Enqueue(
          tx, service::SubjectDataEvent(*ctx, "consent.subject.export", "consent", subject));
    });
  });
}

grpc::Status SubjectDataService::EraseSubjectData(Ctx* ctx, const sv1::EraseSubjectDataRequest* req,
                                                  sv1::EraseSubjectDataResponse* resp) {
  return Handle([&]() -> absl::Status {
    CRM_ASSIGN_OR_RETURN(service::ErasureRequest erasure, service::ParseErasureRequest(*req));
    const std::string& request_id = erasure.request_id;
    const std::string& subject = erasure.subject_id;
    CRM_ASSIGN_OR_RETURN(
        std::vector<std::string> hashes,
        SuppressionHashes(suppression_, "email_addresses", req->email_addresses(), 16));
    std::sort(hashes.begin(), hashes.end());
    hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
    std::vector<std::string> purposes;  // whose cached standings to drop
    int64_t invalidation = 0;           // their row in cache_invalidations
    absl::Status s = db_.Transact([&](pqxx::work& tx) -> absl::Status {
      resp->Clear();
      resp->set_service(kService);
      CRM_ASSIGN_OR_RETURN(std::optional<ErasureRecord> done,
                           ConsentStore::ErasureRecorded(tx, request_id));
      if (!done.has_value()) {
        // Serialises the erasure with the subject's statements.
        tx.exec_params("SELECT 1 FROM subject_keys WHERE subject_id = $1::uuid FOR UPDATE",
                       subject);
        ErasureRecord record;
        record.subject_id = subject;
        CRM_ASSIGN_OR_RETURN(record.erased, ConsentStore::Count(tx, subject));
        record.completed_at = absl::FromUnixMicros(absl::ToUnixMicros(clock_.Now()));
        CRM_ASSIGN_OR_RETURN(purposes, ConsentStore::PurposeIds(tx));
        if (cache_ != nullptr && !purposes.empty()) {
          CRM_ASSIGN_OR_RETURN(invalidation, cache_->Pending(tx, subject, purposes));
        }
        if (record.erased.marketing_objections > 0 && !hashes.empty()) {
          CRM_RETURN_IF_ERROR(ConsentStore::Suppress(tx, hashes, record.completed_at));
          record.suppressed = static_cast<int64_t>(hashes.size());
        }
        CRM_RETURN_IF_ERROR(ConsentStore::Erase(tx, subject));
        CRM_RETURN_IF_ERROR(ConsentStore::RecordErasure(tx, request_id, record));
        crm::audit::v1::Event event = service::SubjectDataEvent(*ctx, "consent.subject.erase",
                                                                "consent", subject, request_id);
        if (record.suppressed > 0) {
          crm::audit::v1::Detail* kept = event.add_details();
          kept->set_key("suppressed_addresses");
          kept->set_value(absl::StrCat(record.suppressed));
        }
        CRM_RETURN_IF_ERROR(audit_.Enqueue(tx, event));
        done = std::move(record);
      } else if (done->subject_id != subject) {
        return service::ErasureRequestReused();
      }
      AddCategories(done->erased, resp->mutable_erased());
      if (done->suppressed > 0) AddSuppression(done->suppressed, resp->mutable_retained());
      resp->set_data_key_destroyed(true);  // now, or by an earlier erasure
      rpc::SetTime(done->completed_at, resp->mutable_completed_at());
      return absl::OkStatus();
    });
    if (s.ok() && cache_ != nullptr && !purposes.empty()) {
      cache_->Committed(db_, invalidation, subject, purposes);
    }
    return s;
  });
}

absl::Status AllowConsentSubjectData(rpc::AccessPolicy& policy) {
  return policy.AllowService(crm::subject::v1::SubjectData::service_full_name(), {"erasure"})
      .Validate();
}

}  // namespace crm::consent
