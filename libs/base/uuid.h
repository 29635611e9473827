// UUIDs as canonical lower-case strings (8-4-4-4-12). Used for subject ids,
// event ids, request ids. Thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::base {

// A random (version 4) UUID from the OpenSSL CSPRNG.
std::string NewUuid();

// True if `s` is a UUID in canonical form (lower or upper hex).
bool IsUuid(absl::string_view s);

// OK if `value` is a UUID; otherwise INVALID_ARGUMENT naming `field`.
absl::Status ValidateUuid(absl::string_view field, absl::string_view value);

// The canonical lower-case form of a UUID, or INVALID_ARGUMENT naming `field`.
absl::StatusOr<std::string> CanonicalUuid(absl::string_view field, absl::string_view value);

}  // namespace crm::base
