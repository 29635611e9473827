#include "services/mailing/consent_gate.h"

#include <grpcpp/client_context.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/base/grpc_status.h"
#include "libs/base/status_macros.h"
#include "libs/rpc/channel.h"

namespace crm::mailing {

namespace cv1 = crm::consent::v1;

constexpr size_t kChunk = 10'000;  // consent's limit per call

GrpcConsentGate::GrpcConsentGate(std::shared_ptr<grpc::Channel> channel, TokenSource token,
                                 absl::Duration deadline)
    : stub_(cv1::Consent::NewStub(std::move(channel))),
      token_(std::move(token)),
      deadline_(deadline) {}

template <typename Req, typename Resp>
absl::Status GrpcConsentGate::Call(grpc::Status (cv1::Consent::Stub::*rpc)(grpc::ClientContext*,
                                                                           const Req&, Resp*),
                                   const Req& req, Resp* resp) {
  absl::StatusOr<std::string> token = token_();
  if (!token.ok()) {  // mailing's own set-up, not the caller's fault
    return absl::FailedPreconditionError(
        absl::StrCat("mailing cannot call consent: ", token.status().message()));
  }
  std::unique_ptr<grpc::ClientContext> ctx = rpc::NewClientContext(deadline_, *token);
  absl::Status s = base::FromGrpcStatus(((*stub_).*rpc)(ctx.get(), req, resp));
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("consent: ", s.message()));
}

absl::StatusOr<bool> GrpcConsentGate::PurposeExists(const std::string& purpose_id) {
  cv1::ListPurposesResponse resp;
  CRM_RETURN_IF_ERROR(Call(&cv1::Consent::Stub::ListPurposes, cv1::ListPurposesRequest(), &resp));
  return std::any_of(resp.purposes().begin(), resp.purposes().end(),
                     [&](const cv1::Purpose& p) { return p.purpose_id() == purpose_id; });
}

absl::Status GrpcConsentGate::Grant(const cv1::Statement& statement) {
  cv1::GrantRequest req;
  *req.mutable_statement() = statement;
  cv1::GrantResponse resp;
  return Call(&cv1::Consent::Stub::Grant, req, &resp);
}

absl::Status GrpcConsentGate::Withdraw(const cv1::Statement& statement) {
  cv1::WithdrawRequest req;
  *req.mutable_statement() = statement;
  cv1::WithdrawResponse resp;
  return Call(&cv1::Consent::Stub::Withdraw, req, &resp);
}

absl::StatusOr<std::vector<bool>> GrpcConsentGate::Allowed(
    const std::string& purpose_id, const std::vector<std::string>& subject_ids) {
  std::vector<bool> out;
  out.reserve(subject_ids.size());
  for (size_t start = 0; start < subject_ids.size(); start += kChunk) {
    cv1::BatchCheckRequest req;
    req.set_purpose_id(purpose_id);
    const size_t end = std::min(subject_ids.size(), start + kChunk);
    for (size_t i = start; i < end; ++i) req.add_subject_ids(subject_ids[i]);
    cv1::BatchCheckResponse resp;
    CRM_RETURN_IF_ERROR(Call(&cv1::Consent::Stub::BatchCheck, req, &resp));
    if (resp.decisions_size() != req.subject_ids_size()) {
      return absl::InternalError("consent: BatchCheck answered for fewer subjects");
    }
    for (const cv1::Decision& d : resp.decisions()) out.push_back(d.allowed());
  }
  return out;
}

absl::StatusOr<std::vector<bool>> GrpcConsentGate::Suppressed(
    const std::vector<std::string>& addresses) {
  std::vector<bool> out;
  out.reserve(addresses.size());
  for (size_t start = 0; start < addresses.size(); start += kChunk) {
    cv1::CheckSuppressionRequest req;
    const size_t end = std::min(addresses.size(), start + kChunk);
    for (size_t i = start; i < end; ++i) req.add_email_addresses(addresses[i]);
    cv1::CheckSuppressionResponse resp;
    CRM_RETURN_IF_ERROR(Call(&cv1::Consent::Stub::CheckSuppression, req, &resp));
    if (resp.suppressed_size() != req.email_addresses_size()) {
      return absl::InternalError("consent: CheckSuppression answered for fewer addresses");
    }
    for (bool b : resp.suppressed()) out.push_back(b);
  }
  return out;
}

}  // namespace crm::mailing
