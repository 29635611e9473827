// UUIDs as canonical lower-case strings (8-4-4-4-12). Used for subject ids,
// event ids, request ids. Thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::base {

// A random (version 4) UUID from the OpenSSL CSPRNG.
std::string NewUuid();

// A time-ordered (version 7, RFC 9562) UUID: the Unix time of `now` in
// milliseconds in the first 48 bits, then 74 random bits. Ids made later sort
// after earlier ones (to the millisecond), so an index on them grows at its
// right edge instead of on random pages: the outbox's event ids.
std::string NewTimeOrderedUuid(absl::Time now);

// True if `s` is a UUID in canonical form (lower or upper hex).
bool IsUuid(absl::string_view s);

// OK if `value` is a UUID; otherwise INVALID_ARGUMENT naming `field`.
absl::Status ValidateUuid(absl::string_view field, absl::string_view value);

// The canonical lower-case form of a UUID, or INVALID_ARGUMENT naming `field`.
absl::StatusOr<std::string> CanonicalUuid(absl::string_view field, absl::string_view value);

}  // namespace crm::base
