#include "services/mailing/address_book.h"

#include <grpcpp/client_context.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/base/grpc_status.h"

namespace crm::mailing {

namespace cv1 = crm::contacts::v1;

constexpr size_t kChunk = 1'000;  // contacts' limit per call

GrpcAddressBook::GrpcAddressBook(std::shared_ptr<grpc::Channel> contacts, absl::Duration deadline)
    : stub_(cv1::Contacts::NewStub(std::move(contacts))), deadline_(deadline) {}

absl::StatusOr<std::vector<Recipient>> GrpcAddressBook::Lookup(
    const std::vector<std::string>& subject_ids) {
  std::vector<Recipient> out;
  out.reserve(subject_ids.size());
  for (size_t start = 0; start < subject_ids.size(); start += kChunk) {
    cv1::GetMailingAddressesRequest req;
    const size_t end = std::min(subject_ids.size(), start + kChunk);
    for (size_t i = start; i < end; ++i) req.add_subject_ids(subject_ids[i]);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
    cv1::GetMailingAddressesResponse resp;
    absl::Status s = base::FromGrpcStatus(stub_->GetMailingAddresses(&ctx, req, &resp));
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("contacts: ", s.message()));
    if (resp.addresses_size() != req.subject_ids_size()) {
      return absl::InternalError("contacts: answered for fewer subjects");
    }
    for (cv1::MailingAddress& a : *resp.mutable_addresses()) {
      Recipient r;
      switch (a.status()) {
        case cv1::MAILING_STATUS_OK:
          r.status = Recipient::Status::kOk;
          r.address = std::move(*a.mutable_email());
          r.first_name = std::move(*a.mutable_given_name());
          break;
        case cv1::MAILING_STATUS_RESTRICTED:
          r.status = Recipient::Status::kRestricted;
          break;
        case cv1::MAILING_STATUS_NO_ADDRESS:
          r.status = Recipient::Status::kNoAddress;
          break;
        default:
          r.status = Recipient::Status::kNotFound;
      }
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace crm::mailing
