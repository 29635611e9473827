// Small helpers of identity's gRPC handlers: status mapping, time
// conversion, input normalisation and offset page tokens.
#pragma once

#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::identity {

// Runs a handler body and maps its status for gRPC (libs/base ToGrpcStatus).
// Unexpected codes keep their message, which by project rule never holds
// personal data.
template <typename F>
grpc::Status Handle(F&& body);

void SetTime(absl::Time t, google::protobuf::Timestamp* out);
// The time of a set Timestamp; INVALID_ARGUMENT naming `field` if it is out
// of the protobuf range.
absl::StatusOr<absl::Time> GetTime(absl::string_view field, const google::protobuf::Timestamp& ts);

// A login name lower-cased: 3..64 of [a-z0-9._-], starting with a letter or
// digit. INVALID_ARGUMENT naming `field` otherwise (never echoing it).
absl::StatusOr<std::string> NormalizeUsername(absl::string_view field, absl::string_view input);

// spiffe://crm.local/<name> with <name> of [a-z0-9._-]{1,64}.
absl::Status ValidateSpiffeId(absl::string_view field, absl::string_view value);

// `status` with `prefix` put before its message, payloads kept: a check
// that names a generic field ("password: ...") reports the request's field
// ("initial_password: ..."). OK stays OK.
absl::Status PrefixField(absl::string_view prefix, const absl::Status& status);

// "user/<id>", the audit resource of a user.
std::string UserResource(absl::string_view user_id);

// Page tokens for lists paged by position: web-safe base64 of
// "o1|<offset>|<query key>"; a token is accepted only for the same query.
std::string EncodeOffsetToken(size_t offset, absl::string_view query_key);
absl::StatusOr<size_t> DecodeOffsetToken(absl::string_view token, absl::string_view query_key);

grpc::Status ToGrpc(const absl::Status& status);

template <typename F>
grpc::Status Handle(F&& body) {
  return ToGrpc(body());
}

}  // namespace crm::identity
