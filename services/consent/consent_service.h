// ConsentService: crm.consent.v1.Consent over ConsentStore and the rules
// (rules.h, ledger_chain.h). See docs/consent.md.
//
// Statements (Grant, Withdraw, Object) are validated, planned against the
// subject's state, linked into the subject's ledger under a row lock on the
// subject and audited through the outbox in the same transaction; evidence
// is sealed under the subject's data key. Checks read the folded state in
// autocommit (one round trip for the purpose, one for the state).
//
// Check is a gRPC callback method: a cached answer for a purpose already in
// memory is read from Redis without holding a thread (the Redis client's
// thread pipelines the checks in flight and finishes each call); anything
// else (a miss, Redis down, a purpose not yet read) is decided by one of
// `kSlowCheckThreads` threads, as the other methods are, from PostgreSQL.
//
// Permissions (access token): consent.read (purposes, history),
// consent.check, consent.write (statements, restriction), consent.admin
// (purposes, notices). Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/base/thread_pool.h"
#include "libs/crypto/blind_index.h"
#include "libs/crypto/key_ring.h"
#include "libs/outbox/writer.h"
#include "libs/pg/pool.h"
#include "libs/rpc/access_policy.h"
#include "services/consent/check_cache.h"
#include "services/consent/receipts.h"

namespace crm::consent {

struct ConsentDeps {
  pg::Pool& db;
  const crypto::KeyRing& ring;  // wraps the subjects' data keys
  auth::TokenVerifier& verifier;
  outbox::Writer& audit;
  const base::Clock& clock;
  // Check's cache in Redis; null: every check reads PostgreSQL.
  CheckCache* cache = nullptr;
  // Signs a receipt for every grant; null: no receipts.
  const ReceiptSigner* receipts = nullptr;
  // Keys the suppression list's address hashes; null: CheckSuppression
  // answers FAILED_PRECONDITION.
  const crypto::BlindIndexer* suppression = nullptr;
};

// The purpose of subject data keys (crypto::WrapDataKey).
inline constexpr char kConsentKeyPurpose[] = "consent";
inline constexpr int kMaxBatchCheck = 10'000;

// The suppression-list hashes of `addresses` (field `field`, at most `max`):
// each validated as a mailbox (INVALID_ARGUMENT naming "<field>[i]"),
// normalised and keyed by `indexer`; duplicates kept, in order.
absl::StatusOr<std::vector<std::string>> SuppressionHashes(
    const crypto::BlindIndexer& indexer, absl::string_view field,
    const google::protobuf::RepeatedPtrField<std::string>& addresses, int max);

class ConsentService final : public v1::Consent::WithRawCallbackMethod_Check<v1::Consent::Service> {
 public:
  static constexpr int kSlowCheckThreads = 4;
  explicit ConsentService(ConsentDeps deps) : d_(deps), slow_checks_(kSlowCheckThreads) {}

  using Ctx = grpc::ServerContext;
  grpc::Status ListPurposes(Ctx* ctx, const v1::ListPurposesRequest* req,
                            v1::ListPurposesResponse* resp) override;
  grpc::Status DefinePurpose(Ctx* ctx, const v1::DefinePurposeRequest* req,
                             v1::DefinePurposeResponse* resp) override;
  grpc::Status PublishNotice(Ctx* ctx, const v1::PublishNoticeRequest* req,
                             v1::PublishNoticeResponse* resp) override;
  grpc::Status Grant(Ctx* ctx, const v1::GrantRequest* req, v1::GrantResponse* resp) override;
  grpc::Status Withdraw(Ctx* ctx, const v1::WithdrawRequest* req,
                        v1::WithdrawResponse* resp) override;
  grpc::Status Object(Ctx* ctx, const v1::ObjectRequest* req, v1::ObjectResponse* resp) override;
  // Raw bytes, parsed here: a request that does not parse is INVALID_ARGUMENT
  // naming "request" (gRPC's callback handler would answer UNIMPLEMENTED).
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::Status BatchCheck(Ctx* ctx, const v1::BatchCheckRequest* req,
                          v1::BatchCheckResponse* resp) override;
  grpc::Status CheckSuppression(Ctx* ctx, const v1::CheckSuppressionRequest* req,
                                v1::CheckSuppressionResponse* resp) override;
  grpc::Status GetHistory(Ctx* ctx, const v1::GetHistoryRequest* req,
                          v1::GetHistoryResponse* resp) override;
  grpc::Status SetRestriction(Ctx* ctx, const v1::SetRestrictionRequest* req,
                              v1::SetRestrictionResponse* resp) override;
  grpc::Status ListReconsent(Ctx* ctx, const v1::ListReconsentRequest* req,
                             v1::ListReconsentResponse* resp) override;
  grpc::Status GetReceipt(Ctx* ctx, const v1::GetReceiptRequest* req,
                          v1::GetReceiptResponse* resp) override;
  grpc::Status GetReceiptKeys(Ctx* ctx, const v1::GetReceiptKeysRequest* req,
                              v1::GetReceiptKeysResponse* resp) override;

 private:
  // Grant, Withdraw, Object: *changed, the entry appended if it did, and
  // for a grant its receipt (or the receipt of the grant in force).
  absl::Status Record(Ctx* ctx, v1::Action action, const v1::Statement& statement, bool* changed,
                      v1::LedgerEntry* entry, std::string* receipt = nullptr);
  absl::Status RecordInTransaction(Ctx* ctx, v1::Action action, const v1::Statement& statement,
                                   bool* changed, v1::LedgerEntry* entry, std::string* receipt,
                                   int64_t* invalidation);
  // The decisions for `subjects` (canonical ids) on `purpose_id`.
  // `out` gets one per subject, in order. `ask_cache` false: the caller
  // found none of them in the cache (they are read from PostgreSQL and
  // cached).
  absl::Status Decide(const std::string& purpose_id, const std::vector<std::string>& subjects,
                      google::protobuf::RepeatedPtrField<v1::Decision>& out, bool ask_cache = true);
  // The purpose if it is in memory already, else null.
  std::shared_ptr<const v1::Purpose> KnownPurpose(const std::string& purpose_id);
  // The purpose, from memory after its first read (what a decision uses of
  // it, basis and direct marketing, never changes); INVALID_ARGUMENT if
  // unknown.
  absl::StatusOr<std::shared_ptr<const v1::Purpose>> PurposeOf(pqxx::transaction_base& tx,
                                                               const std::string& purpose_id);

  ConsentDeps d_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const v1::Purpose>> purposes_
      ABSL_GUARDED_BY(mu_);
  // Last: destroyed first, running what is queued while the rest still is.
  base::ThreadPool slow_checks_;
};

// Allows every method of crm.consent.v1.Consent to any peer of the
// deployment's CA (they authorize by the call's access token).
absl::Status AllowConsentMethods(rpc::AccessPolicy& policy);

}  // namespace crm::consent
