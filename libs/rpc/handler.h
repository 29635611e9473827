// Small helpers every service's gRPC handlers share: running a handler body
// that returns absl::Status, protobuf Timestamps, and page tokens bound to
// the query they were issued for.
#pragma once

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/base/grpc_status.h"

namespace crm::rpc {

// Runs a handler body (returning absl::Status) and maps its status for gRPC
// (base::ToGrpcStatus). Messages by project rule never hold personal data.
template <typename F>
grpc::Status Handle(F&& body) {
  return base::ToGrpcStatus(body());
}

void SetTime(absl::Time t, google::protobuf::Timestamp* out);

// `message` as a google.protobuf.Struct (its proto3 JSON form, with the proto
// field names): how SubjectData exports records. INTERNAL if it does not
// convert.
absl::Status ToStruct(const google::protobuf::Message& message, google::protobuf::Struct* out);
// The time of a Timestamp the service made itself (stored, or from its own
// store): no range check. Client-given ones go through GetTime.
absl::Time ToTime(const google::protobuf::Timestamp& ts);

// The time of a set Timestamp; INVALID_ARGUMENT naming `field` if it is out
// of the protobuf range (years 1..9999, nanos 0..999999999).
absl::StatusOr<absl::Time> GetTime(absl::string_view field, const google::protobuf::Timestamp& ts);

// Page tokens carrying a position (an offset or the last key seen):
// web-safe base64 of "p1|<position>|<query key>". A token is accepted only
// with the same query key; INVALID_ARGUMENT naming page.page_token otherwise.
// An empty token decodes to `first`.
std::string EncodePageToken(int64_t position, absl::string_view query_key);
absl::StatusOr<int64_t> DecodePageToken(absl::string_view token, absl::string_view query_key,
                                        int64_t first = 0);

}  // namespace crm::rpc
