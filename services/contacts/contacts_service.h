// crm-contacts' gRPC handlers for crm.contacts.v1.Contacts (persons,
// companies, contact history, the field catalogue, the mailing service's
// address look-up). Thin: authentication and authorization
// (permissions from the access token, record-level visibility by owner or team), validation
// (person_rules.h, catalogue.h), sealing (person_sealer.h), storage
// (person_store.h) and the audit event of every read of personal data and
// every change, written through the outbox in the change's transaction.
//
//
// Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "libs/auth/principal.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"
#include "services/contacts/person_sealer.h"

namespace crm::contacts {

inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 500;

struct ContactsDeps {
  pg::Pool& db;
  const PersonSealer& sealer;
  auth::TokenVerifier& verifier;
  outbox::Writer& audit;
  const base::Clock& clock;
  // Invoices are kept until the end of the issue year plus this many years
  // (setting invoice_retention_years).
  int invoice_retention_years = 5;
};

// The purpose of invoice keys (crypto::WrapDataKey): separate from the
// subject's data key, which erasure destroys while invoices must stay
// readable until their retention ends.
inline constexpr char kInvoiceKeyPurpose[] = "contacts.invoice";

// The owner name sealing an invoice's number and amounts ("invoice:<id>").
std::string InvoiceOwner(absl::string_view invoice_id);

// A stored invoice opened with its owner's invoice key.
absl::StatusOr<crm::contacts::v1::Invoice> OpenInvoice(const PersonSealer& sealer,
                                                       const crypto::SecretBytes& key,
                                                       const StoredInvoice& stored);

class ContactsService final : public crm::contacts::v1::Contacts::Service {
 public:
  explicit ContactsService(ContactsDeps d) : d_(d) {}
  using Ctx = grpc::ServerContext;

  grpc::Status CreatePerson(Ctx*, const v1::CreatePersonRequest*,
                            v1::CreatePersonResponse*) override;
  grpc::Status GetPerson(Ctx*, const v1::GetPersonRequest*, v1::GetPersonResponse*) override;
  grpc::Status ImportPersons(Ctx*, grpc::ServerReader<v1::ImportPersonsRequest>*,
                             v1::ImportPersonsResponse*) override;
  grpc::Status UpdatePerson(Ctx*, const v1::UpdatePersonRequest*,
                            v1::UpdatePersonResponse*) override;
  grpc::Status ListPersons(Ctx*, const v1::ListPersonsRequest*, v1::ListPersonsResponse*) override;
  grpc::Status LookupPersons(Ctx*, const v1::LookupPersonsRequest*,
                             v1::LookupPersonsResponse*) override;
  grpc::Status SetRestriction(Ctx*, const v1::SetRestrictionRequest*,
                              v1::SetRestrictionResponse*) override;
  grpc::Status AssignPerson(Ctx*, const v1::AssignPersonRequest*,
                            v1::AssignPersonResponse*) override;
  grpc::Status CreateCompany(Ctx*, const v1::CreateCompanyRequest*,
                             v1::CreateCompanyResponse*) override;
  grpc::Status GetCompany(Ctx*, const v1::GetCompanyRequest*, v1::GetCompanyResponse*) override;
  grpc::Status UpdateCompany(Ctx*, const v1::UpdateCompanyRequest*,
                             v1::UpdateCompanyResponse*) override;
  grpc::Status ListCompanies(Ctx*, const v1::ListCompaniesRequest*,
                             v1::ListCompaniesResponse*) override;
  grpc::Status RecordInvoice(Ctx*, const v1::RecordInvoiceRequest*,
                             v1::RecordInvoiceResponse*) override;
  grpc::Status ListInvoices(Ctx*, const v1::ListInvoicesRequest*,
                            v1::ListInvoicesResponse*) override;
  grpc::Status AddInteraction(Ctx*, const v1::AddInteractionRequest*,
                              v1::AddInteractionResponse*) override;
  grpc::Status ListInteractions(Ctx*, const v1::ListInteractionsRequest*,
                                v1::ListInteractionsResponse*) override;
  grpc::Status ListRetentionDue(Ctx*, const v1::ListRetentionDueRequest*,
                                v1::ListRetentionDueResponse*) override;
  grpc::Status GetFieldCatalogue(Ctx*, const v1::GetFieldCatalogueRequest*,
                                 v1::GetFieldCatalogueResponse*) override;
  // For the mailing service only (the access policy, AllowContactsMethods);
  // no token. One read of the batch and one COPY of its audit events, in one
  // transaction.
  grpc::Status GetMailingAddresses(Ctx*, const v1::GetMailingAddressesRequest*,
                                   v1::GetMailingAddressesResponse*) override;

 private:
  struct Caller;
  // `permission`, or (subject_id given) the data subject themselves with
  // their subject.self token.
  absl::StatusOr<Caller> Authorize(Ctx* ctx, absl::string_view permission,
                                   absl::string_view subject_id = "");
  struct PreparedPerson;
  // A new person validated, normalised and sealed (CreatePerson, import);
  // INVALID_ARGUMENT / PERMISSION_DENIED naming the field.
  absl::StatusOr<PreparedPerson> PreparePerson(const Caller& caller, v1::Person person,
                                               absl::string_view default_channel);
  // Inserts it with its audit event in one transaction and one round trip;
  // ALREADY_EXISTS naming the field (and the existing subject, if visible)
  // for a registered e-mail or phone.
  absl::Status InsertPrepared(const Caller& caller, PreparedPerson& prepared);
  // Inserts the persons of `batch` that are not duplicates (of a registered
  // person or of an earlier row) with their audit events, a COPY per table;
  // each row's outcome (OK or InsertPrepared's ALREADY_EXISTS).
  // Runs `read` on a connection in autocommit mode (no BEGIN and COMMIT
  // round trips: a point read is one statement), then stores the audit
  // events it produced before returning: data read here reaches the caller
  // only once the record of its reading is stored.
  using ReadFunction = std::function<absl::Status(pqxx::transaction_base& tx,
                                                  std::vector<crm::audit::v1::Event>& events)>;
  absl::Status AuditedRead(const ReadFunction& read);
  absl::StatusOr<std::vector<absl::Status>> InsertBatch(pqxx::work& tx, const Caller& caller,
                                                        std::vector<PreparedPerson>& batch);

  ContactsDeps d_;
};

// The most subject ids one GetMailingAddresses call may ask about.
inline constexpr int kMaxMailingBatch = 1000;

// The only identity that may call GetMailingAddresses.
inline constexpr char kMailingCaller[] = "mailing";

// Allows every method of crm.contacts.v1.Contacts to any peer of the
// deployment's CA (they authorize by the call's access token), except
// GetMailingAddresses: to kMailingCaller only. Returns policy.Validate():
// the first error made building the policy, this or an earlier one.
absl::Status AllowContactsMethods(rpc::AccessPolicy& policy);

}  // namespace crm::contacts
