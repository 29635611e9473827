// GrpcAddressBook: the AddressBook of the sender (sender.h) over contacts'
// internal GetMailingAddresses (crm.contacts.v1), which contacts answers only
// to the mailing service's mTLS identity; chunked at contacts' limit of
// 1,000 subjects per call. Thread-safe.
#pragma once

#include <grpcpp/channel.h>

#include <memory>

#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "services/mailing/sender.h"

namespace crm::mailing {

class GrpcAddressBook final : public AddressBook {
 public:
  explicit GrpcAddressBook(std::shared_ptr<grpc::Channel> contacts,
                           absl::Duration deadline = absl::Seconds(10));
  absl::StatusOr<std::vector<Recipient>> Lookup(
      const std::vector<std::string>& subject_ids) override;

 private:
  std::unique_ptr<crm::contacts::v1::Contacts::Stub> stub_;
  absl::Duration deadline_;
};

}  // namespace crm::mailing
