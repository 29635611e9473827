#include "services/mailing/subject_data_service.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/rpc/handler.h"
#include "libs/service/subject_data.h"
#include "services/mailing/mailing_store.h"

namespace crm::mailing {
namespace {

namespace sv1 = crm::subject::v1;
using rpc::Handle;

constexpr char kService[] = "mailing";

void AddCategories(const SubjectCounts& c,
                   google::protobuf::RepeatedPtrField<sv1::DataCategory>* out) {
  for (auto [name, count] :
       {std::pair{"mailing_subscriptions", c.subscriptions}, std::pair{"mailing_sends", c.sends}}) {
    if (count == 0) continue;
    sv1::DataCategory* cat = out->Add();
    cat->set_category(name);
    cat->set_record_count(count);
  }
}

absl::string_view StateName(SendState s) {
  switch (s) {
    case SendState::kQueued:
      return "queued";
    case SendState::kSent:
      return "sent";
    case SendState::kSkippedConsent:
      return "skipped_consent";
    case SendState::kSkippedNoAddress:
      return "skipped_no_address";
    case SendState::kFailed:
      return "failed";
    case SendState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
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
          CRM_ASSIGN_OR_RETURN(SubjectCounts counts, MailingStore::CountSubject(tx, subject));
          AddCategories(counts, resp->mutable_categories());
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
      CRM_ASSIGN_OR_RETURN(std::vector<v1::Subscription> subscriptions,
                           MailingStore::SubjectSubscriptions(tx, subject));
      CRM_ASSIGN_OR_RETURN(std::vector<SendRecord> sends, MailingStore::SubjectSends(tx, subject));
      if (subscriptions.empty() && sends.empty()) return absl::OkStatus();
      for (const v1::Subscription& s : subscriptions) {
        sv1::ExportedRecord* record = resp->add_records();
        record->set_category("mailing_subscriptions");
        CRM_RETURN_IF_ERROR(rpc::ToStruct(s, record->mutable_data()));
      }
      for (const SendRecord& s : sends) {
        sv1::ExportedRecord* record = resp->add_records();
        record->set_category("mailing_sends");
        auto& f = *record->mutable_data()->mutable_fields();
        f["message_id"].set_string_value(s.message_id);
        f["campaign_id"].set_string_value(s.campaign_id);
        f["list_id"].set_string_value(s.list_id);
        f["state"].set_string_value(std::string(StateName(s.state)));
        f["queued_at"].set_string_value(Rfc3339(s.queued_at));
        if (s.finished_at.has_value()) f["finished_at"].set_string_value(Rfc3339(*s.finished_at));
        f["unsubscribed_through_it"].set_bool_value(s.unsubscribed);
      }
      return audit_.Enqueue(
          tx, service::SubjectDataEvent(*ctx, "mailing.subject.export", "mailing", subject));
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
      CRM_ASSIGN_OR_RETURN(std::optional<MailingStore::Erasure> done,
                           MailingStore::ErasureRecorded(tx, request_id));
      if (!done.has_value()) {
        MailingStore::Erasure e;
        e.subject_id = subject;
        CRM_ASSIGN_OR_RETURN(e.erased, MailingStore::CountSubject(tx, subject));
        e.completed_at = absl::FromUnixMicros(absl::ToUnixMicros(clock_.Now()));
        CRM_RETURN_IF_ERROR(MailingStore::EraseSubject(tx, subject));
        CRM_RETURN_IF_ERROR(MailingStore::RecordErasure(tx, request_id, e));
        crm::audit::v1::Event event = service::SubjectDataEvent(*ctx, "mailing.subject.erase",
                                                                "mailing", subject, request_id);
        CRM_RETURN_IF_ERROR(audit_.Enqueue(tx, event));
        done = std::move(e);
      } else if (done->subject_id != subject) {
        return service::ErasureRequestReused();
      }
      AddCategories(done->erased, resp->mutable_erased());
      resp->set_data_key_destroyed(false);  // mailing keeps no data key
      rpc::SetTime(done->completed_at, resp->mutable_completed_at());
      return absl::OkStatus();
    });
  });
}

absl::Status AllowMailingSubjectData(rpc::AccessPolicy& policy) {
  return policy.AllowService(crm::subject::v1::SubjectData::service_full_name(), {"erasure"})
      .Validate();
}

}  // namespace crm::mailing
