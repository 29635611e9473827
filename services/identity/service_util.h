// Small helpers of identity's gRPC handlers: input normalisation, field
// prefixes, offset page tokens; the shared ones come from libs/rpc/handler.h.
#pragma once

#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/rpc/handler.h"

namespace crm::identity {

using rpc::GetTime;
using rpc::Handle;
using rpc::SetTime;

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

// Page tokens for lists paged by position (rpc::EncodePageToken).
inline std::string EncodeOffsetToken(size_t offset, absl::string_view query_key) {
  return rpc::EncodePageToken(static_cast<int64_t>(offset), query_key);
}
inline absl::StatusOr<size_t> DecodeOffsetToken(absl::string_view token,
                                                absl::string_view query_key) {
  absl::StatusOr<int64_t> position = rpc::DecodePageToken(token, query_key);
  if (!position.ok()) return position.status();
  if (*position < 0) return absl::InvalidArgumentError("page.page_token: malformed");
  return static_cast<size_t>(*position);
}

}  // namespace crm::identity
